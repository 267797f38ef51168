//! Where a language model's weights come from.
//!
//! The builder asks a [`LlamaWeights`] source for small tensors by name (norm weights,
//! biases, the embedding table) and, for every linear layer, for the node that applies it: a
//! source with f32 weights adds a `MatMul` with a constant, a source with packed quantized
//! weights adds a quantized matmul, without the builder knowing which. Names follow GGUF
//! (`token_embd.weight`, `blk.N.attn_q.weight`, ..., `output.weight`).

use super::{LlamaConfig, LlmError};
use kiln_ir::{DType, Graph, NodeId, Op, Tensor};
use std::collections::HashMap;

/// A source of weights for [`super::build`].
pub trait LlamaWeights {
    /// The tensor `name` as f32 in its natural shape (norm weights `[dim]`, biases `[out]`,
    /// the embedding table `[vocab, dim]`), or `None` if the source has no such tensor.
    fn tensor(&mut self, name: &str) -> Result<Option<Tensor>, LlmError>;

    /// Adds to `g` the linear layer `name` (a weight of `out_features` rows of `in_features`)
    /// applied to `x` (`[rows, in_features]`), returning the `[rows, out_features]` node.
    /// `Err(MissingTensor)` if the source has no such weight.
    fn linear(
        &mut self,
        g: &mut Graph,
        name: &str,
        x: NodeId,
        in_features: usize,
        out_features: usize,
    ) -> Result<NodeId, LlmError>;

    /// The block type the linear weight `name` stays packed in (its [`Op::QMatMul`]'s), or
    /// `None` when the source multiplies by an f32 weight or has no such tensor.
    fn packed_block(&self, _name: &str) -> Option<kiln_ir::BlockType> {
        None
    }

    /// Adds to `g` the lookup of `tokens` (i32 `[n]`) in the embedding table `name`
    /// (`[vocab, dim]`), returning the f32 `[n, dim]` node. By default the table is an f32
    /// constant read by a `Gather`; a source with a packed table gathers from it directly
    /// (then the tied output head's [`LlamaWeights::linear`] reads the same packed constant).
    fn embedding(
        &mut self,
        g: &mut Graph,
        name: &str,
        tokens: NodeId,
        vocab: usize,
        dim: usize,
    ) -> Result<NodeId, LlmError> {
        let t = self.tensor(name)?.ok_or_else(|| LlmError::MissingTensor(name.into()))?;
        if t.shape != [vocab, dim] || t.dtype() != DType::F32 {
            return Err(LlmError::Tensor {
                name: name.into(),
                msg: format!("expected f32 [{vocab}, {dim}], got {} {:?}", t.dtype(), t.shape),
            });
        }
        let table = g.add_const(name, t);
        Ok(g.add("embed", Op::Gather { axis: 0 }, &[table, tokens])?)
    }
}

/// Adds `x · w` for an f32 weight given as `[out, in]` rows (GGUF and PyTorch order): the
/// constant is stored transposed, `[in, out]`, so the product is a plain `MatMul`.
pub fn f32_linear(g: &mut Graph, name: &str, x: NodeId, w_out_in: &Tensor) -> Result<NodeId, LlmError> {
    let (out_f, in_f) = match w_out_in.shape.as_slice() {
        [o, i] => (*o, *i),
        s => {
            return Err(LlmError::Tensor {
                name: name.into(),
                msg: format!("a linear weight has 2 dims, this one {s:?}"),
            })
        }
    };
    let v = w_out_in.to_f32();
    let mut t = vec![0f32; v.len()];
    for o in 0..out_f {
        for i in 0..in_f {
            t[i * out_f + o] = v[o * in_f + i];
        }
    }
    let w = g.add_const(name, Tensor::f32(vec![in_f, out_f], t));
    Ok(g.add(&format!("{name}:matmul"), Op::MatMul, &[x, w])?)
}

/// Deterministic random f32 weights for tests and benchmarks: uniform in `±1/sqrt(fan_in)`
/// for linear layers and the embedding, `1 ± 0.1` for norm weights, `±0.1` for biases.
#[derive(Clone, Debug)]
pub struct RandomWeights {
    tensors: HashMap<String, Tensor>,
}

/// A small, seedable generator (SplitMix64); tests need reproducible, not strong, randomness.
struct SplitMix(u64);

impl SplitMix {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // Uniform in [-1, 1).
        ((z >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

impl RandomWeights {
    /// Every tensor `config` needs, drawn from `seed`.
    pub fn new(config: &LlamaConfig, seed: u64) -> RandomWeights {
        let mut rng = SplitMix(seed);
        let mut tensors = HashMap::new();
        let mut add = |name: String, shape: Vec<usize>, center: f32, scale: f32| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| center + scale * rng.next_f32()).collect();
            tensors.insert(name, Tensor::f32(shape, v));
        };
        let c = config;
        let lin = |fan_in: usize| 1.0 / (fan_in as f32).sqrt();
        add("token_embd.weight".into(), vec![c.vocab, c.dim], 0.0, 1.0);
        for l in 0..c.layers {
            let p = |s: &str| format!("blk.{l}.{s}");
            let qd = c.heads * c.head_dim;
            let kd = c.kv_heads * c.head_dim;
            add(p("attn_norm.weight"), vec![c.dim], 1.0, 0.1);
            add(p("attn_q.weight"), vec![qd, c.dim], 0.0, lin(c.dim));
            add(p("attn_k.weight"), vec![kd, c.dim], 0.0, lin(c.dim));
            add(p("attn_v.weight"), vec![kd, c.dim], 0.0, lin(c.dim));
            if c.qkv_bias {
                add(p("attn_q.bias"), vec![qd], 0.0, 0.1);
                add(p("attn_k.bias"), vec![kd], 0.0, 0.1);
                add(p("attn_v.bias"), vec![kd], 0.0, 0.1);
            }
            add(p("attn_output.weight"), vec![c.dim, qd], 0.0, lin(qd));
            add(p("ffn_norm.weight"), vec![c.dim], 1.0, 0.1);
            add(p("ffn_gate.weight"), vec![c.ffn, c.dim], 0.0, lin(c.dim));
            add(p("ffn_up.weight"), vec![c.ffn, c.dim], 0.0, lin(c.dim));
            add(p("ffn_down.weight"), vec![c.dim, c.ffn], 0.0, lin(c.ffn));
        }
        add("output_norm.weight".into(), vec![c.dim], 1.0, 0.1);
        if !c.tied_output {
            add("output.weight".into(), vec![c.vocab, c.dim], 0.0, lin(c.dim));
        }
        RandomWeights { tensors }
    }

    /// Every tensor by name, sorted by name.
    pub fn tensors(&self) -> Vec<(&str, &Tensor)> {
        let mut v: Vec<(&str, &Tensor)> = self.tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Removes a tensor (to test the error for a missing one).
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        self.tensors.remove(name)
    }
}

impl LlamaWeights for RandomWeights {
    fn tensor(&mut self, name: &str) -> Result<Option<Tensor>, LlmError> {
        Ok(self.tensors.get(name).cloned())
    }

    fn linear(
        &mut self,
        g: &mut Graph,
        name: &str,
        x: NodeId,
        in_features: usize,
        out_features: usize,
    ) -> Result<NodeId, LlmError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| LlmError::MissingTensor(name.into()))?;
        if t.shape != [out_features, in_features] || t.dtype() != DType::F32 {
            return Err(LlmError::Tensor {
                name: name.into(),
                msg: format!(
                    "expected f32 [{out_features}, {in_features}], got {} {:?}",
                    t.dtype(),
                    t.shape
                ),
            });
        }
        f32_linear(g, name, x, t)
    }
}
