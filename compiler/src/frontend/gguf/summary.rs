//! A human-readable summary of a GGUF file (`kiln inspect MODEL.gguf`).

use super::reader::Gguf;
use super::value::MetaValue;
use std::collections::BTreeMap;
use std::fmt::Write;

impl Gguf {
    /// The file's version and sizes, the architecture with its hyper-parameters (every
    /// `ARCH.*` key), the tokenizer, the count of tensors per type, and a tensor table (name,
    /// type, dims outermost first, bytes).
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let data: u64 = self.tensor_infos().iter().map(|t| t.n_bytes).sum();
        let _ = writeln!(
            s,
            "GGUF v{}, alignment {}, {} metadata keys, {} tensors ({:.1} MB of tensor data)",
            self.version(),
            self.alignment(),
            self.metadata().count(),
            self.tensor_infos().len(),
            data as f64 / 1e6
        );
        let arch = self.architecture().unwrap_or("(no general.architecture)");
        let _ = writeln!(s, "architecture: {arch}");
        if let Ok(name) = self.get_str("general.name") {
            let _ = writeln!(s, "name: {name}");
        }
        let prefix = format!("{arch}.");
        for (k, v) in self.metadata().filter(|(k, _)| k.starts_with(&prefix)) {
            let _ = writeln!(s, "  {k} = {v}");
        }
        if let Ok(model) = self.get_str("tokenizer.ggml.model") {
            let tokens = self.get_array("tokenizer.ggml.tokens").map(|t| t.len()).unwrap_or(0);
            let template = matches!(self.get("tokenizer.chat_template"), Some(MetaValue::String(_)));
            let _ = writeln!(
                s,
                "tokenizer: {model}, {tokens} tokens, chat template: {}",
                if template { "yes" } else { "no" }
            );
        }
        let mut types: BTreeMap<&str, usize> = BTreeMap::new();
        for t in self.tensor_infos() {
            *types.entry(t.type_name).or_default() += 1;
        }
        let types: Vec<String> = types.iter().map(|(t, n)| format!("{t} x{n}")).collect();
        let _ = writeln!(s, "tensor types: {}", types.join(", "));
        let width = self
            .tensor_infos()
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(s, "{:width$}  {:6}  {:16}  {:>10}", "name", "type", "dims", "bytes");
        for t in self.tensor_infos() {
            let dims = format!("{:?}", t.dims);
            let _ = writeln!(
                s,
                "{:width$}  {:6}  {:16}  {:>10}",
                t.name, t.type_name, dims, t.n_bytes
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use crate::frontend::gguf::{Gguf, GgufWriter};

    #[test]
    fn summary_lists_hyper_parameters_and_tensors() {
        let g = Gguf::from_bytes(
            GgufWriter::new()
                .meta_str("general.architecture", "llama")
                .meta_u32("llama.block_count", 2)
                .meta_str("tokenizer.ggml.model", "gpt2")
                .meta_array_str("tokenizer.ggml.tokens", &["a", "b"])
                .tensor_f32("output_norm.weight", &[4], &[1.0; 4])
                .to_bytes(),
        )
        .unwrap();
        let s = g.summary();
        assert!(s.contains("architecture: llama"), "{s}");
        assert!(s.contains("llama.block_count = 2"), "{s}");
        assert!(s.contains("tokenizer: gpt2, 2 tokens, chat template: no"), "{s}");
        assert!(s.contains("tensor types: f32 x1"), "{s}");
        assert!(
            s.lines()
                .any(|l| l.starts_with("output_norm.weight") && l.contains("[4]")),
            "{s}"
        );
    }
}
