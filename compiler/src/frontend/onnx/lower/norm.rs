//! Softmax and normalizations: `Softmax`/`LogSoftmax` (both opset semantics),
//! `LayerNormalization`, `BatchNormalization` (inference), `InstanceNormalization`,
//! `RMSNormalization`.

use super::elementwise::with_scalar;
use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, Dim, NodeId, Op, ReduceOp, UnaryOp};

/// `Softmax` / `LogSoftmax`. Before opset 13 the input is flattened to 2-D at `axis` and the
/// softmax runs over the whole trailing block; from 13 on it runs over the one axis.
pub(crate) fn softmax(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let log = n.op == "LogSoftmax";
    let shape = cx.ty(x).shape.clone();
    let rank = shape.len();
    let legacy = n.opset < 13;
    let axis = n.attr_i("axis", if legacy { 1 } else { -1 })?;
    if rank == 0 {
        return Err(n.err("input must have rank >= 1"));
    }
    let axis = n.axis(axis, rank, "axis")?;
    if !legacy || axis + 1 == rank {
        return Ok(one(cx.add(n, "", Op::Softmax { axis, log }, &[x])?));
    }
    // Flatten semantics: [prod(d[..axis]), prod(d[axis..])], softmax over axis 1, reshape back.
    let rows = Dim::product(&shape[..axis]);
    let cols = Dim::product(&shape[axis..]);
    let flat = cx.add(
        n,
        "flatten",
        Op::Reshape {
            shape: vec![rows, cols],
        },
        &[x],
    )?;
    let s = cx.add(n, "softmax", Op::Softmax { axis: 1, log }, &[flat])?;
    Ok(one(cx.add(n, "", Op::Reshape { shape }, &[s])?))
}

/// `LayerNormalization` (opset 17): normalizes axes `axis..`; bias optional.
pub(crate) fn layer_norm(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let scale = cx.input(n, 1)?;
    let dt = cx.ty(x).dtype;
    let bias = match cx.opt_input(n, 2)? {
        Some(b) => b,
        None => cx.scalar(n, "bias", dt, 0.0),
    };
    let rank = cx.ty(x).rank();
    let axis = n.axis(n.attr_i("axis", -1)?, rank, "axis")?;
    let epsilon = n.attr_f("epsilon", 1e-5)?;
    let y = cx.add(n, "", Op::LayerNorm { axis, epsilon }, &[x, scale, bias])?;
    let wants = |k: usize| n.proto.output.get(k).is_some_and(|s| !s.is_empty());
    if !wants(1) && !wants(2) {
        return Ok(one(y));
    }
    // Optional outputs: Mean and InvStdDev over the normalized axes (kept as size 1).
    let axes: Vec<usize> = (axis..rank).collect();
    let mean_op = Op::Reduce {
        op: ReduceOp::Mean,
        axes,
        keep_dims: true,
    };
    let mean = cx.add(n, "mean", mean_op.clone(), &[x])?;
    let centered = cx.add(n, "centered", Op::Binary(BinaryOp::Sub), &[x, mean])?;
    let sq = cx.add(
        n,
        "centered_sq",
        Op::Binary(BinaryOp::Mul),
        &[centered, centered],
    )?;
    let var = cx.add(n, "var", mean_op, &[sq])?;
    let ve = with_scalar(cx, n, "var_eps", BinaryOp::Add, var, epsilon as f64)?;
    let inv = cx.add(n, "inv_std_dev", Op::Unary(UnaryOp::Rsqrt), &[ve])?;
    Ok(vec![Value::Node(y), Value::Node(mean), Value::Node(inv)])
}

/// Reshapes a per-channel `[C]` tensor to `[C, 1, ...]` so it broadcasts against `[N, C, ...]`.
fn per_channel(
    cx: &mut Ctx,
    n: &N,
    suffix: &str,
    v: NodeId,
    rank: usize,
) -> Result<NodeId, OnnxError> {
    let ty = cx.ty(v).clone();
    if ty.rank() != 1 {
        return Err(n.err(format!(
            "per-channel parameter '{suffix}' must be 1-D, got {}",
            ty.describe()
        )));
    }
    let mut shape = vec![ty.shape[0].clone()];
    shape.extend(std::iter::repeat_n(Dim::c(1), rank.saturating_sub(2)));
    cx.add(n, suffix, Op::Reshape { shape }, &[v])
}

/// `BatchNormalization` in inference mode: `x * s + t` with `s = scale / sqrt(var + eps)` and
/// `t = bias - mean * s` (constants fold when the statistics are initializers).
pub(crate) fn batch_norm(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    if n.attr_i("training_mode", 0)? != 0 {
        return Err(n.err("training_mode=1 is not supported (Kiln compiles inference graphs)"));
    }
    if n.attr_i("spatial", 1)? == 0 {
        return Err(n.err("spatial=0 is not supported"));
    }
    let x = cx.input(n, 0)?;
    let scale = cx.input(n, 1)?;
    let bias = cx.input(n, 2)?;
    let mean = cx.input(n, 3)?;
    let var = cx.input(n, 4)?;
    let eps = n.attr_f("epsilon", 1e-5)? as f64;
    let rank = cx.ty(x).rank();
    if rank < 2 {
        return Err(n.err(format!(
            "input X must have rank >= 2, got {}",
            cx.ty(x).describe()
        )));
    }
    let ve = with_scalar(cx, n, "var_eps", BinaryOp::Add, var, eps)?;
    let inv = cx.add(n, "inv_std", Op::Unary(UnaryOp::Rsqrt), &[ve])?;
    let s = cx.add(n, "s", Op::Binary(BinaryOp::Mul), &[scale, inv])?;
    let ms = cx.add(n, "mean_s", Op::Binary(BinaryOp::Mul), &[mean, s])?;
    let t = cx.add(n, "t", Op::Binary(BinaryOp::Sub), &[bias, ms])?;
    let s = per_channel(cx, n, "scale_c", s, rank)?;
    let t = per_channel(cx, n, "shift_c", t, rank)?;
    let y = cx.add(n, "scaled", Op::Binary(BinaryOp::Mul), &[x, s])?;
    Ok(one(cx.add(n, "", Op::Binary(BinaryOp::Add), &[y, t])?))
}

/// `InstanceNormalization`: a layer norm over the spatial axes `2..`, then per-channel scale and
/// bias.
pub(crate) fn instance_norm(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let scale = cx.input(n, 1)?;
    let bias = cx.input(n, 2)?;
    let eps = n.attr_f("epsilon", 1e-5)?;
    let ty = cx.ty(x).clone();
    if ty.rank() < 3 {
        return Err(n.err(format!(
            "input must have rank >= 3 ([N, C, D...]), got {}",
            ty.describe()
        )));
    }
    let one_c = cx.scalar(n, "one", ty.dtype, 1.0);
    let zero_c = cx.scalar(n, "zero", ty.dtype, 0.0);
    let norm = cx.add(
        n,
        "normalized",
        Op::LayerNorm {
            axis: 2,
            epsilon: eps,
        },
        &[x, one_c, zero_c],
    )?;
    let s = per_channel(cx, n, "scale_c", scale, ty.rank())?;
    let b = per_channel(cx, n, "bias_c", bias, ty.rank())?;
    let y = cx.add(n, "scaled", Op::Binary(BinaryOp::Mul), &[norm, s])?;
    Ok(one(cx.add(n, "", Op::Binary(BinaryOp::Add), &[y, b])?))
}

/// `RMSNormalization` (opset 23): `x / sqrt(mean(x^2 over axis..) + eps) * scale`.
pub(crate) fn rms_norm(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let scale = cx.input(n, 1)?;
    let rank = cx.ty(x).rank();
    let axis = n.axis(n.attr_i("axis", -1)?, rank, "axis")?;
    let eps = n.attr_f("epsilon", 1e-5)? as f64;
    let sq = cx.add(n, "square", Op::Binary(BinaryOp::Mul), &[x, x])?;
    let ms = cx.add(
        n,
        "mean_square",
        Op::Reduce {
            op: ReduceOp::Mean,
            axes: (axis..rank).collect(),
            keep_dims: true,
        },
        &[sq],
    )?;
    let me = with_scalar(cx, n, "mean_square_eps", BinaryOp::Add, ms, eps)?;
    let inv = cx.add(n, "inv_rms", Op::Unary(UnaryOp::Rsqrt), &[me])?;
    let y = cx.add(n, "normalized", Op::Binary(BinaryOp::Mul), &[x, inv])?;
    Ok(one(cx.add(
        n,
        "",
        Op::Binary(BinaryOp::Mul),
        &[y, scale],
    )?))
}
