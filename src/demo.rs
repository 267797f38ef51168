//! The embedded default model for `kiln demo`: a small transformer-style block (layer norm,
//! single-head attention with softmax, a ReLU MLP, residual connections) over a symbolic batch,
//! with deterministic pseudo-random weights. It exercises every kernel kind.

use kiln_abi::ElemType;
use kiln_compiler::Model;
use kiln_ir::{BinaryOp, DType, Dim, Graph, IrError, Op, ReduceOp, Tensor, TensorType, UnaryOp};
use std::collections::BTreeMap;

/// Sequence length of the demo block.
pub const SEQ: usize = 8;
/// Model width of the demo block.
pub const WIDTH: usize = 32;

/// Deterministic values in [-scale, scale) from a 64-bit LCG (no dependency needed for a demo).
pub fn pseudo_random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Builds the demo model: input `x: f32[batch, 8, 32]`, outputs `y` (same shape) and
/// `pooled: f32[batch, 32]` (mean over the sequence).
pub fn demo_model() -> Result<Model, IrError> {
    let mut g = Graph::new();
    let w = WIDTH;
    let x = g.add_input(
        "x",
        TensorType {
            dtype: DType::F32,
            shape: vec![Dim::sym("batch"), Dim::c(SEQ as i64), Dim::c(w as i64)],
        },
    );
    let weight = |g: &mut Graph, name: &str, shape: Vec<usize>, seed: u64, scale: f32| {
        let n = shape.iter().product();
        g.add_const(name, Tensor::f32(shape, pseudo_random(n, seed, scale)))
    };
    let ln_scale = weight(&mut g, "ln.scale", vec![w], 1, 0.2);
    let ln_scale = {
        let one = g.add_const("one", Tensor::scalar(DType::F32, 1.0));
        g.add("ln.scale_plus_one", Op::Binary(BinaryOp::Add), &[ln_scale, one])?
    };
    let ln_bias = weight(&mut g, "ln.bias", vec![w], 2, 0.1);
    let h = g.add("ln", Op::LayerNorm { axis: 2, epsilon: 1e-5 }, &[x, ln_scale, ln_bias])?;
    let wq = weight(&mut g, "attn.wq", vec![w, w], 3, 0.3);
    let wk = weight(&mut g, "attn.wk", vec![w, w], 4, 0.3);
    let wv = weight(&mut g, "attn.wv", vec![w, w], 5, 0.3);
    let q = g.add("q", Op::MatMul, &[h, wq])?;
    let k = g.add("k", Op::MatMul, &[h, wk])?;
    let v = g.add("v", Op::MatMul, &[h, wv])?;
    let kt = g.add("k_t", Op::Transpose { perm: vec![0, 2, 1] }, &[k])?;
    let scores = g.add("scores", Op::MatMul, &[q, kt])?;
    let scale = g.add_const("inv_sqrt_d", Tensor::scalar(DType::F32, 1.0 / (w as f64).sqrt()));
    let scores = g.add("scores_scaled", Op::Binary(BinaryOp::Mul), &[scores, scale])?;
    let probs = g.add("probs", Op::Softmax { axis: 2, log: false }, &[scores])?;
    let ctx = g.add("context", Op::MatMul, &[probs, v])?;
    let h1 = g.add("residual1", Op::Binary(BinaryOp::Add), &[x, ctx])?;
    let w1 = weight(&mut g, "mlp.w1", vec![w, 2 * w], 6, 0.3);
    let b1 = weight(&mut g, "mlp.b1", vec![2 * w], 7, 0.1);
    let w2 = weight(&mut g, "mlp.w2", vec![2 * w, w], 8, 0.3);
    let m = g.add("mlp.fc1", Op::MatMul, &[h1, w1])?;
    let m = g.add("mlp.bias1", Op::Binary(BinaryOp::Add), &[m, b1])?;
    let m = g.add("mlp.relu", Op::Unary(UnaryOp::Relu), &[m])?;
    let m = g.add("mlp.fc2", Op::MatMul, &[m, w2])?;
    let y = g.add("residual2", Op::Binary(BinaryOp::Add), &[h1, m])?;
    let y = g.add("tanh", Op::Unary(UnaryOp::Tanh), &[y])?;
    let pooled = g.add(
        "pool",
        Op::Reduce {
            op: ReduceOp::Mean,
            axes: vec![1],
            keep_dims: false,
        },
        &[y],
    )?;
    g.add_output("y", y);
    g.add_output("pooled", pooled);
    Ok(Model {
        name: "kiln-demo-block".into(),
        graph: g,
        io_dtypes: BTreeMap::<String, ElemType>::new(),
    })
}

/// The demo input for a batch size.
pub fn demo_input(batch: usize) -> Tensor {
    Tensor::f32(vec![batch, SEQ, WIDTH], pseudo_random(batch * SEQ * WIDTH, 42, 1.0))
}
