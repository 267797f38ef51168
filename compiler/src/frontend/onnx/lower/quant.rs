//! Quantization: `DequantizeLinear` and `QuantizeLinear` (per tensor, per axis and blocked).

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Dim, NodeId, Op, UnaryOp};

/// `y = (x - zero_point) * scale`, computed in the scale's dtype. A 1-D scale (and zero point)
/// applies along `axis`; with `block_size` (opset 21 blocked quantization) each scale covers a
/// block of `axis`.
pub(crate) fn dequantize(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let scale = cx.input(n, 1)?;
    let zp = cx.opt_input(n, 2)?;
    let xt = cx.ty(x).clone();
    let (scale, zp) = blocked(cx, n, &xt, scale, zp)?;
    let st = cx.ty(scale).clone();
    let dt = st.dtype;
    if !dt.is_float() {
        return Err(n.err(format!("x_scale must be floating point, got {}", st.describe())));
    }
    let per_axis = |cx: &mut Ctx, suffix: &str, v: NodeId| -> Result<NodeId, OnnxError> {
        let t = cx.ty(v).clone();
        match t.rank() {
            0 => Ok(v),
            1 => {
                let axis = n.axis(n.attr_i("axis", 1)?, xt.rank(), "axis")?;
                if t.shape[0] != xt.shape[axis] {
                    return Err(n.err(format!(
                        "{suffix} has {} elements but axis {axis} of x {} has {}",
                        t.shape[0],
                        xt.describe(),
                        xt.shape[axis]
                    )));
                }
                let mut shape = vec![Dim::c(1); xt.rank()];
                shape[axis] = t.shape[0].clone();
                cx.add(n, &format!("{suffix}_axis"), Op::Reshape { shape }, &[v])
            }
            _ if t.shape == xt.shape => Ok(v),
            _ => Err(n.err(format!("{suffix} must be a scalar or 1-D, got {}", t.describe()))),
        }
    };
    let xf = cx.add(n, "x_float", Op::Cast(dt), &[x])?;
    let centered = match zp {
        Some(z) => {
            let zf = cx.add(n, "zero_point_float", Op::Cast(dt), &[z])?;
            let zf = per_axis(cx, "zero_point", zf)?;
            cx.add(n, "centered", Op::Binary(BinaryOp::Sub), &[xf, zf])?
        }
        None => xf,
    };
    let s = per_axis(cx, "scale", scale)?;
    Ok(one(cx.add(n, "", Op::Binary(BinaryOp::Mul), &[centered, s])?))
}

/// `QuantizeLinear` to i8/u8: `saturate(round_half_even(x / scale) + zero_point)`, per tensor or
/// per axis.
pub(crate) fn quantize(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let scale = cx.input(n, 1)?;
    let zp = cx.opt_input(n, 2)?;
    let xt = cx.ty(x).clone();
    let (scale, zp) = blocked(cx, n, &xt, scale, zp)?;
    let ft = cx.ty(scale).dtype;
    let target = match (zp, n.attr_i("output_dtype", 0)?) {
        (Some(z), _) => cx.ty(z).dtype,
        (None, 0) => DType::U8,
        (None, t) => crate::frontend::onnx::data::ir_dtype(t as i32)
            .map_err(|m| n.err(format!("attribute 'output_dtype': {m}")))?,
    };
    let (lo, hi) = match target {
        DType::I8 => (-128.0, 127.0),
        DType::U8 => (0.0, 255.0),
        other => return Err(n.unsupported(format!("quantizing to {other} is not supported (only int8 and uint8)"))),
    };
    let axis = n.attr_i("axis", 1)?;
    let xs = if xt.dtype == ft {
        x
    } else {
        cx.add(n, "x_cast", Op::Cast(ft), &[x])?
    };
    let s = along_axis(cx, n, "scale", scale, &xt, axis)?;
    let q = cx.add(n, "scaled", Op::Binary(BinaryOp::Div), &[xs, s])?;
    let mut r = cx.add(n, "rounded", Op::Unary(UnaryOp::Round), &[q])?;
    if let Some(z) = zp {
        let zf = cx.add(n, "zero_point_float", Op::Cast(ft), &[z])?;
        let zf = along_axis(cx, n, "zero_point", zf, &xt, axis)?;
        r = cx.add(n, "shifted", Op::Binary(BinaryOp::Add), &[r, zf])?;
    }
    let lo_c = cx.scalar(n, "min", ft, lo);
    let hi_c = cx.scalar(n, "max", ft, hi);
    let c = cx.add(n, "clamp_low", Op::Binary(BinaryOp::Max), &[r, lo_c])?;
    let c = cx.add(n, "clamped", Op::Binary(BinaryOp::Min), &[c, hi_c])?;
    Ok(one(cx.add(n, "", Op::Cast(target), &[c])?))
}

/// Blocked quantization (`block_size` > 0): the scale and zero point have x's shape except
/// along `axis`, where each element covers `block_size` consecutive elements of x; both are
/// expanded to x's shape (one tensor expression each). Without `block_size` they are returned
/// as they are.
fn blocked(
    cx: &mut Ctx,
    n: &N,
    xt: &kiln_ir::TensorType,
    scale: NodeId,
    zp: Option<NodeId>,
) -> Result<(NodeId, Option<NodeId>), OnnxError> {
    let block = n.attr_i("block_size", 0)?;
    if block == 0 {
        return Ok((scale, zp));
    }
    if block < 0 {
        return Err(n.err(format!("attribute 'block_size' must be non-negative, got {block}")));
    }
    let axis = n.axis(n.attr_i("axis", 1)?, xt.rank(), "axis")?;
    let mut expand = |what: &str, v: NodeId| -> Result<NodeId, OnnxError> {
        let t = cx.ty(v).clone();
        let fits = t.rank() == xt.rank()
            && (0..xt.rank()).all(|a| {
                if a == axis {
                    match (xt.shape[a].as_const(), t.shape[a].as_const()) {
                        (Some(l), Some(b)) => b == (l + block - 1) / block,
                        _ => false,
                    }
                } else {
                    t.shape[a] == xt.shape[a]
                }
            });
        if !fits {
            return Err(n.err(format!(
                "{what} {} does not fit x {} with block_size {block} along axis {axis}",
                t.describe(),
                xt.describe()
            )));
        }
        let mut index: Vec<kiln_ir::Expr> = (0..xt.rank()).map(kiln_ir::Expr::Coord).collect();
        index[axis] = kiln_ir::Expr::Coord(axis).div(kiln_ir::Expr::int(block));
        let op = Op::Compute {
            shape: xt.shape.clone(),
            dtype: t.dtype,
            expr: kiln_ir::Expr::Load { input: 0, index },
            name: "QuantBlocks".into(),
        };
        cx.add(n, &format!("{what}_blocks"), op, &[v])
    };
    let s = expand("scale", scale)?;
    let z = zp.map(|z| expand("zero_point", z)).transpose()?;
    Ok((s, z))
}

/// A scalar stays as it is; a 1-D tensor is reshaped to lie along `axis` of `x`.
fn along_axis(
    cx: &mut Ctx,
    n: &N,
    what: &str,
    v: NodeId,
    xt: &kiln_ir::TensorType,
    axis: i64,
) -> Result<NodeId, OnnxError> {
    let t = cx.ty(v).clone();
    match t.rank() {
        0 => Ok(v),
        1 if t.shape[0] == Dim::c(1) => cx.add(n, &format!("{what}_scalar"), Op::Reshape { shape: vec![] }, &[v]),
        1 => {
            let axis = n.axis(axis, xt.rank(), "axis")?;
            if t.shape[0] != xt.shape[axis] {
                return Err(n.err(format!(
                    "{what} has {} elements but axis {axis} of x {} has {}",
                    t.shape[0],
                    xt.describe(),
                    xt.shape[axis]
                )));
            }
            let mut shape = vec![Dim::c(1); xt.rank()];
            shape[axis] = t.shape[0].clone();
            cx.add(n, &format!("{what}_axis"), Op::Reshape { shape }, &[v])
        }
        _ if t.shape == xt.shape => Ok(v),
        _ => Err(n.err(format!("{what} must be a scalar or 1-D, got {}", t.describe()))),
    }
}
