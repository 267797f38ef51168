//! Llama-family language models as IR graphs (see docs/llm.md).
//!
//! [`build`] turns a [`LlamaConfig`] and a [`LlamaWeights`] source (GGUF, random test weights,
//! safetensors) into one IR graph for one forward step over `n` new tokens at positions
//! `past .. past + n`, with the KV cache as persistent states written by
//! [`kiln_ir::Op::StateAppend`]. Everything is plain IR (RMSNorm, RoPE, grouped-query
//! attention, SwiGLU), never hand-fused: the optimizer decides what fuses, so an ONNX model of
//! the same architecture gets the same kernels. [`compile_llm`] compiles the graph twice into
//! one bundle (`prefill`, `decode`), and [`reference`] is the interpreter's generation loop.

pub mod gguf;
pub mod graph;
pub mod reference;
pub mod weights;

pub use graph::build;
pub use reference::Reference;
pub use weights::{LlamaWeights, RandomWeights};

use crate::{CompileError, CompileOptions, CompiledBundle, Model};
use kiln_ir::{DType, IrError};

/// Name of the token-id input (`[n]`, i32).
pub const TOKENS: &str = "tokens";
/// Name of the logits output (`[1, vocab]`, f32): the last position's.
pub const LOGITS: &str = "logits";
/// Name of the next-token output (`[1]`, i32): drawn from the logits on the GPU
/// ([`kiln_ir::Op::Sample`]; the ArgMax when the temperature is 0).
pub const NEXT_TOKEN: &str = "next_token";
/// Name of the sampling-parameter input (`[kiln_ir::sample::PARAMS_LEN]` i32, encoded by
/// [`kiln_ir::sample::SampleParams::encode`]).
pub const SAMPLING: &str = "sampling";
/// Name of the recent-token input (`[REPEAT_WINDOW]` i32, -1 padded): the ids the repetition
/// penalty applies to.
pub const RECENT_TOKENS: &str = "recent_tokens";
/// Tokens the repetition penalty looks back over (llama.cpp's default `repeat_last_n`).
pub const REPEAT_WINDOW: usize = 64;
/// The symbol for new tokens in one step.
pub const N: &str = "n";
/// The scalar symbol for the number of tokens already in the KV cache.
pub const PAST: &str = "past";
/// Program that processes a prompt (`n` symbolic).
pub const PREFILL: &str = "prefill";
/// Program that processes one token (`n = 1`).
pub const DECODE: &str = "decode";

/// How RoPE pairs the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2j, 2j+1)` (Llama, Mistral, SmolLM in GGUF's layout).
    Normal,
    /// Halves `(j, j + rope_dims/2)` (GPT-NeoX, Qwen2).
    Neox,
}

/// The shape of a Llama-family model.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Model name (for the manifest).
    pub name: String,
    /// Hidden size.
    pub dim: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention; divides `heads`).
    pub kv_heads: usize,
    /// Dims per head.
    pub head_dim: usize,
    /// Feed-forward hidden size.
    pub ffn: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// RoPE frequency base.
    pub rope_base: f32,
    /// Dims of each head that RoPE rotates (even, at most `head_dim`).
    pub rope_dims: usize,
    /// RoPE pairing.
    pub rope_style: RopeStyle,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// The output head is the token embedding (no `output.weight`).
    pub tied_output: bool,
    /// q/k/v projections have biases (Qwen2).
    pub qkv_bias: bool,
    /// Tokens the KV cache holds (`past + n <= context`).
    pub context: usize,
    /// Element type of the KV cache: [`DType::F32`], or [`DType::F16`] (half the memory and
    /// the attention's cache reads; keys and values are rounded to f16 as they are appended,
    /// and the GPU stores two per 32-bit word, so no `shader-f16` is needed).
    pub kv_cache: DType,
    /// How the inputs of the projections that follow an RMS norm (q/k/v, gate/up, the output
    /// head) or the SwiGLU (down) reach a q4_0, q4_1 or q8_0 weight.
    pub activations: Activations,
}

/// The KV cache's element type when the caller does not choose one (`kiln compile --kv-cache`).
pub const DEFAULT_KV_CACHE: DType = DType::F16;

/// The numerics of the inputs of the projections that follow an RMS norm (q/k/v, gate/up and
/// the output head) or the SwiGLU (down), where their weight is q4_0, q4_1 or q8_0 (`kiln
/// compile --activations`). The attention output's projection (O) and other block types
/// always take f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activations {
    /// f32 values as computed.
    F32,
    /// Rounded to 8-bit integers per block of 32 values ([`kiln_ir::Op::QuantizeQ8`]), as
    /// llama.cpp's integer-dot kernels do: a decode step's GEMVs then dot integers with
    /// integers (`dot4I8Packed`), the faster inner loop, but each norm that quantizes is a
    /// dispatch of its own (docs/llm.md "Activations as 8-bit integers").
    Q8,
    /// [`Activations::Q8`] for the projections of one input that read at least
    /// [`AUTO_Q8_MIN_BYTES`] of such weights per token, where the integer dot products save
    /// more than the quantizer's dispatch costs; f32 for the others.
    Auto,
}

/// The activations' numerics when the caller does not choose (`kiln compile --activations`).
pub const DEFAULT_ACTIVATIONS: Activations = Activations::Auto;

/// Weight bytes per token from which [`Activations::Auto`] quantizes a projection input.
/// Measured on the H200 (docs/performance.md, fourteenth session): the integer-dot GEMVs
/// save about 0.4 us per MiB of q4_1 weights read, and the quantizing norm costs about 3.3 us
/// of a decode step.
pub const AUTO_Q8_MIN_BYTES: u64 = 8 << 20;

impl Activations {
    /// Parses `f32`, `q8` or `auto`.
    pub fn from_name(s: &str) -> Option<Activations> {
        match s {
            "f32" => Some(Activations::F32),
            "q8" => Some(Activations::Q8),
            "auto" => Some(Activations::Auto),
            _ => None,
        }
    }

    /// Whether projections of one input that read `weight_bytes` of q4_0, q4_1 or q8_0
    /// weights per token take it as 8-bit integers.
    pub fn quantizes(self, weight_bytes: u64) -> bool {
        match self {
            Activations::F32 => false,
            Activations::Q8 => weight_bytes > 0,
            Activations::Auto => weight_bytes >= AUTO_Q8_MIN_BYTES,
        }
    }
}

impl LlamaConfig {
    /// Checks that the sizes fit together; the error names the field.
    pub fn validate(&self) -> Result<(), LlmError> {
        let bad = |m: String| Err(LlmError::Config(m));
        for (name, v) in [
            ("dim", self.dim),
            ("layers", self.layers),
            ("heads", self.heads),
            ("kv_heads", self.kv_heads),
            ("head_dim", self.head_dim),
            ("ffn", self.ffn),
            ("vocab", self.vocab),
            ("context", self.context),
        ] {
            if v == 0 {
                return bad(format!("{name} is 0"));
            }
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return bad(format!(
                "heads ({}) is not a multiple of kv_heads ({})",
                self.heads, self.kv_heads
            ));
        }
        if !self.rope_dims.is_multiple_of(2) || self.rope_dims > self.head_dim {
            return bad(format!(
                "rope dims {} must be even and at most head_dim {}",
                self.rope_dims, self.head_dim
            ));
        }
        if !matches!(self.kv_cache, DType::F32 | DType::F16) {
            return bad(format!("KV cache type {} (expected f32 or f16)", self.kv_cache));
        }
        if self.kv_cache == DType::F16 && !(self.kv_heads * self.head_dim).is_multiple_of(2) {
            return bad(format!(
                "an f16 KV cache needs an even row (kv_heads {} x head_dim {})",
                self.kv_heads, self.head_dim
            ));
        }
        if self.context > i32::MAX as usize / 2 || self.vocab > i32::MAX as usize {
            return bad(format!("context {} or vocab {} is too large", self.context, self.vocab));
        }
        if self.rope_base.is_nan() || self.rope_base <= 0.0 || self.rms_eps.is_nan() || self.rms_eps < 0.0 {
            return bad(format!(
                "rope base {} / rms eps {} out of range",
                self.rope_base, self.rms_eps
            ));
        }
        Ok(())
    }
}

/// Why a language model could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The configuration is inconsistent.
    #[error("model configuration: {0}")]
    Config(String),
    /// A weight the architecture needs is absent.
    #[error("missing tensor '{0}'")]
    MissingTensor(String),
    /// A weight has the wrong shape or type.
    #[error("tensor '{name}': {msg}")]
    Tensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// Building or evaluating the graph failed.
    #[error(transparent)]
    Ir(#[from] IrError),
}

impl From<LlmError> for CompileError {
    fn from(e: LlmError) -> CompileError {
        match e {
            LlmError::Ir(e) => CompileError::from(e),
            other => CompileError::Usage(other.to_string()),
        }
    }
}

/// Compiles a language model (from [`build`]) into one bundle with programs `prefill` (`n`
/// symbolic) and `decode` (`n = 1`, so its GEMMs are GEMVs), sharing weights and the KV cache.
pub fn compile_llm(model: &Model, opts: &CompileOptions) -> Result<CompiledBundle, CompileError> {
    crate::programs::compile_programs(model, &programs(), opts)
}

/// A language model's programs: `prefill` (the prompt length `n` symbolic) and `decode`
/// (`n = 1`).
pub fn programs() -> Vec<crate::programs::ProgramSpec> {
    vec![
        crate::programs::ProgramSpec {
            name: PREFILL.into(),
            dims: Default::default(),
        },
        crate::programs::ProgramSpec {
            name: DECODE.into(),
            dims: [(N.to_string(), 1)].into_iter().collect(),
        },
    ]
}

#[cfg(test)]
mod tests;
