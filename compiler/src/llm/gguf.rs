//! Llama-family models from GGUF files: the configuration from `{arch}.*` metadata and the
//! weights from the tensor table (GGUF names are the builder's names).
//!
//! Supported architectures: `llama` (Llama 2/3, SmolLM/SmolLM2, Mistral as converted by
//! llama.cpp; normal RoPE, since the converter permutes Q/K for it) and `qwen2` (NeoX RoPE,
//! q/k/v biases). Linear weights in a GGML block type stay packed (`Op::QMatMul`); f32/f16/bf16
//! weights, norms, biases and the embedding table become f32 constants.

use super::{weights::f32_linear, LlamaConfig, LlamaWeights, LlmError, RopeStyle};
use crate::frontend::gguf::{Gguf, GgufError};
use kiln_ir::{Graph, NodeId, Op, Tensor};

/// Architectures [`config_from_gguf`] understands.
pub const ARCHITECTURES: &[&str] = &["llama", "qwen2"];

impl From<GgufError> for LlmError {
    fn from(e: GgufError) -> LlmError {
        match e {
            GgufError::MissingTensor { name } => LlmError::MissingTensor(name),
            other => LlmError::Config(other.to_string()),
        }
    }
}

/// The model's configuration from GGUF metadata, with a KV cache of `context` tokens (the
/// model's own `{arch}.context_length` when `None`; a larger value is refused).
pub fn config_from_gguf(g: &Gguf, name: &str, context: Option<usize>) -> Result<LlamaConfig, LlmError> {
    let arch = g.architecture()?.to_string();
    let (rope_style, qkv_bias) = match arch.as_str() {
        "llama" => (RopeStyle::Normal, false),
        "qwen2" => (RopeStyle::Neox, true),
        other => {
            return Err(LlmError::Config(format!(
                "unsupported architecture '{other}' (general.architecture); Kiln builds {}",
                ARCHITECTURES.join(", ")
            )))
        }
    };
    let key = |k: &str| format!("{arch}.{k}");
    let u = |k: &str| g.get_u32(&key(k)).map(|v| v as usize);
    let dim = u("embedding_length")?;
    let heads = u("attention.head_count")?;
    let kv_heads = if g.get(&key("attention.head_count_kv")).is_some() {
        u("attention.head_count_kv")?
    } else {
        heads
    };
    let head_dim = if g.get(&key("attention.key_length")).is_some() {
        u("attention.key_length")?
    } else {
        dim.checked_div(heads).unwrap_or(0)
    };
    let rope_dims = if g.get(&key("rope.dimension_count")).is_some() {
        u("rope.dimension_count")?
    } else {
        head_dim
    };
    let rope_base = if g.get(&key("rope.freq_base")).is_some() {
        g.get_f32(&key("rope.freq_base"))?
    } else {
        10000.0
    };
    let trained = u("context_length")?;
    let context = match context {
        None => trained,
        Some(c) if c > trained => {
            return Err(LlmError::Config(format!(
                "--context {c} is longer than the model's context length {trained} ({arch}.context_length)"
            )))
        }
        Some(c) => c,
    };
    let embd = g.tensor_info("token_embd.weight")?;
    let vocab = *embd.dims.first().unwrap_or(&0);
    let c = LlamaConfig {
        name: name.to_string(),
        dim,
        layers: u("block_count")?,
        heads,
        kv_heads,
        head_dim,
        ffn: u("feed_forward_length")?,
        vocab,
        rope_base,
        rope_dims,
        rope_style,
        rms_eps: g.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
        tied_output: !g.has_tensor("output.weight"),
        qkv_bias,
        context,
        kv_cache: super::DEFAULT_KV_CACHE,
        activations: super::DEFAULT_ACTIVATIONS,
    };
    c.validate()?;
    Ok(c)
}

/// Weights read from a GGUF file.
pub struct GgufWeights<'g> {
    gguf: &'g Gguf,
    /// Packed constants already added to the graph, by tensor name: a tied output head and the
    /// embedding gather read one copy of the table.
    packed: std::collections::HashMap<String, kiln_ir::NodeId>,
}

impl<'g> GgufWeights<'g> {
    /// Weights of `gguf`.
    pub fn new(gguf: &'g Gguf) -> GgufWeights<'g> {
        GgufWeights {
            gguf,
            packed: Default::default(),
        }
    }

    fn f32_tensor(&self, name: &str) -> Result<Tensor, LlmError> {
        let info = self.gguf.tensor_info(name)?;
        let v = self.gguf.tensor_f32(name)?;
        Ok(Tensor::f32(info.dims.clone(), v))
    }
}

impl LlamaWeights for GgufWeights<'_> {
    fn tensor(&mut self, name: &str) -> Result<Option<Tensor>, LlmError> {
        if !self.gguf.has_tensor(name) {
            return Ok(None);
        }
        self.f32_tensor(name).map(Some)
    }

    fn packed_block(&self, name: &str) -> Option<kiln_ir::BlockType> {
        let block = self.gguf.tensor_info(name).ok()?.block_type().ok()?;
        block.is_quantized().then_some(block)
    }

    fn linear(
        &mut self,
        g: &mut Graph,
        name: &str,
        x: NodeId,
        in_features: usize,
        out_features: usize,
    ) -> Result<NodeId, LlmError> {
        let info = self.gguf.tensor_info(name)?;
        if info.dims != [out_features, in_features] {
            return Err(LlmError::Tensor {
                name: name.into(),
                msg: format!("expected [{out_features}, {in_features}], the file has {:?}", info.dims),
            });
        }
        let block = info.block_type()?;
        if !block.is_quantized() {
            let t = self.f32_tensor(name)?;
            return f32_linear(g, name, x, &t);
        }
        // Quantized blocks stay packed: the file's bytes as u32 words, decoded by the
        // QMatMul kernels as they read them (never a dequantized copy).
        let w = self.packed_const(g, name, block, out_features, in_features)?;
        let op = Op::QMatMul {
            block,
            n: out_features,
            k: in_features,
        };
        Ok(g.add(&format!("{name}:qmatmul"), op, &[x, w])?)
    }

    fn embedding(
        &mut self,
        g: &mut Graph,
        name: &str,
        tokens: kiln_ir::NodeId,
        vocab: usize,
        dim: usize,
    ) -> Result<kiln_ir::NodeId, LlmError> {
        let info = self.gguf.tensor_info(name)?;
        if info.dims != [vocab, dim] {
            return Err(LlmError::Tensor {
                name: name.into(),
                msg: format!("expected [{vocab}, {dim}], the file has {:?}", info.dims),
            });
        }
        let block = info.block_type()?;
        if !block.is_quantized() {
            let t = self.f32_tensor(name)?;
            let table = g.add_const(name, t);
            return Ok(g.add("embed", Op::Gather { axis: 0 }, &[table, tokens])?);
        }
        // A packed table is gathered from directly (each row decoded in the kernel), so the
        // model holds no f32 copy of it; a tied output head reads the same constant.
        let table = self.packed_const(g, name, block, vocab, dim)?;
        let op = Op::QGather {
            block,
            n: vocab,
            k: dim,
        };
        Ok(g.add("embed", op, &[tokens, table])?)
    }
}

impl GgufWeights<'_> {
    /// The packed `[rows, cols]` constant of tensor `name` (added to `g` once, then reused).
    fn packed_const(
        &mut self,
        g: &mut Graph,
        name: &str,
        block: kiln_ir::BlockType,
        rows: usize,
        cols: usize,
    ) -> Result<kiln_ir::NodeId, LlmError> {
        if let Some(&id) = self.packed.get(name) {
            return Ok(id);
        }
        let info = self.gguf.tensor_info(name)?;
        let bytes = self.gguf.tensor_bytes(info);
        let packed = kiln_ir::quant::packed_tensor(block, rows, cols, bytes).ok_or_else(|| LlmError::Tensor {
            name: name.into(),
            msg: format!("{} bytes do not hold [{rows}, {cols}] in {block}", bytes.len()),
        })?;
        let id = g.add_const(name, packed);
        self.packed.insert(name.into(), id);
        Ok(id)
    }
}

/// Reads a GGUF language model into a [`crate::Model`] (see [`super::build`]).
pub fn load_gguf_llm(path: &std::path::Path, context: Option<usize>) -> Result<crate::Model, LlmError> {
    let g = Gguf::open(path)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "model".into());
    model_from_gguf(&g, &name, context)
}

/// Builds the model of an opened GGUF file (see [`load_gguf_llm`]).
pub fn model_from_gguf(g: &Gguf, name: &str, context: Option<usize>) -> Result<crate::Model, LlmError> {
    let config = config_from_gguf(g, name, context)?;
    super::build(&config, &mut GgufWeights::new(g))
}

/// A GGUF file (bytes) of a random-weight model with `config`'s shape, for tests and
/// benchmarks: metadata as llama.cpp writes it for `arch` (`llama` or `qwen2`), 2-D weights
/// stored as `block` (e.g. Q8_0; F32 keeps them exact), 1-D tensors as f32.
pub fn random_gguf(
    config: &LlamaConfig,
    arch: &str,
    seed: u64,
    block: kiln_ir::BlockType,
) -> Result<Vec<u8>, LlmError> {
    Ok(random_gguf_writer(config, arch, seed, block)?.to_bytes())
}

/// The writer behind [`random_gguf`], so a test can add metadata (e.g. a tokenizer) first.
pub fn random_gguf_writer(
    config: &LlamaConfig,
    arch: &str,
    seed: u64,
    block: kiln_ir::BlockType,
) -> Result<crate::frontend::gguf::GgufWriter, LlmError> {
    use crate::frontend::gguf::GgufWriter;
    let c = config;
    let k = |s: &str| format!("{arch}.{s}");
    let mut w = GgufWriter::new()
        .meta_str("general.architecture", arch)
        .meta_str("general.name", &c.name)
        .meta_u32(&k("context_length"), c.context as u32)
        .meta_u32(&k("embedding_length"), c.dim as u32)
        .meta_u32(&k("block_count"), c.layers as u32)
        .meta_u32(&k("feed_forward_length"), c.ffn as u32)
        .meta_u32(&k("attention.head_count"), c.heads as u32)
        .meta_u32(&k("attention.head_count_kv"), c.kv_heads as u32)
        .meta_u32(&k("attention.key_length"), c.head_dim as u32)
        .meta_u32(&k("attention.value_length"), c.head_dim as u32)
        .meta_u32(&k("rope.dimension_count"), c.rope_dims as u32)
        .meta_f32(&k("rope.freq_base"), c.rope_base)
        .meta_f32(&k("attention.layer_norm_rms_epsilon"), c.rms_eps);
    for (name, t) in super::RandomWeights::new(c, seed).tensors() {
        let v = t.to_f32();
        w = if t.shape.len() == 2 && block != kiln_ir::BlockType::F32 {
            let bytes = kiln_ir::quant::quantize(block, &v).map_err(|e| LlmError::Tensor {
                name: name.into(),
                msg: e.to_string(),
            })?;
            w.tensor(name, &t.shape, block, bytes)
        } else {
            w.tensor_f32(name, &t.shape, &v)
        };
    }
    Ok(w)
}
