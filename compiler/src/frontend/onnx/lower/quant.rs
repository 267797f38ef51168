//! Quantization: `DequantizeLinear` (per-tensor and per-axis).

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, Dim, NodeId, Op};

/// `y = (x - zero_point) * scale`, computed in the scale's dtype. A 1-D scale (and zero point)
/// applies along `axis`; `block_size` (opset 21 blocked quantization) is not supported.
pub(crate) fn dequantize(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let scale = cx.input(n, 1)?;
    let zp = cx.opt_input(n, 2)?;
    if n.attr_i("block_size", 0)? != 0 {
        return Err(n.err("blocked quantization (block_size > 0) is not supported"));
    }
    let xt = cx.ty(x).clone();
    let st = cx.ty(scale).clone();
    let dt = st.dtype;
    if !dt.is_float() {
        return Err(n.err(format!(
            "x_scale must be floating point, got {}",
            st.describe()
        )));
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
            _ => Err(n.err(format!(
                "{suffix} must be a scalar or 1-D, got {}",
                t.describe()
            ))),
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
    Ok(one(cx.add(
        n,
        "",
        Op::Binary(BinaryOp::Mul),
        &[centered, s],
    )?))
}
