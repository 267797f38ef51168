//! More quantization: `QLinearMatMul` and `DynamicQuantizeLinear`.
//!
//! `QLinearMatMul` is an exact integer product of the zero-point-centered operands (IR i32
//! `MatMul`), requantized with `a_scale * b_scale / y_scale` (computed in the scales' dtype, as the
//! reference does), rounded half to even and saturated. `DynamicQuantizeLinear` derives the
//! uint8 scale and zero point from the tensor's range (two full reductions) and quantizes.

use super::math::bin;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Dim, NodeId, Op, ReduceOp, UnaryOp};

/// Saturation range of a quantized dtype.
fn q_range(n: &N, d: DType) -> Result<(f64, f64), OnnxError> {
    match d {
        DType::U8 => Ok((0.0, 255.0)),
        DType::I8 => Ok((-128.0, 127.0)),
        other => Err(n.unsupported(format!("quantized type {other} is not supported (only int8 and uint8)"))),
    }
}

/// A scalar or `[1]` stays as it is; a 1-D per-row parameter of A (`[M]`) becomes `[M, 1]`;
/// per-column parameters of B (`[N]`) broadcast along the last axis as they are.
fn per_row(cx: &mut Ctx, n: &N, suffix: &str, v: NodeId) -> Result<NodeId, OnnxError> {
    let t = cx.ty(v).clone();
    if t.rank() == 1 && t.shape[0] != Dim::c(1) {
        return cx.add(
            n,
            suffix,
            Op::Reshape {
                shape: vec![t.shape[0].clone(), Dim::c(1)],
            },
            &[v],
        );
    }
    Ok(v)
}

/// `QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp)`.
pub(crate) fn qlinear_matmul(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let mut centered = Vec::new();
    for (i, z, what) in [(0, 2, "a"), (3, 5, "b")] {
        let v = cx.input(n, i)?;
        let vi = cx.add(n, &format!("{what}_i32"), Op::Cast(DType::I32), &[v])?;
        let c = match cx.opt_input(n, z)? {
            Some(zp) => {
                let zi = cx.add(n, &format!("{what}_zero_point_i32"), Op::Cast(DType::I32), &[zp])?;
                let zi = if what == "a" {
                    per_row(cx, n, "a_zero_point_rows", zi)?
                } else {
                    zi
                };
                bin(cx, n, &format!("{what}_centered"), BinaryOp::Sub, vi, zi)?
            }
            None => vi,
        };
        centered.push(c);
    }
    let prod = cx.add(n, "product", Op::MatMul, &centered)?;
    let a_scale = cx.input(n, 1)?;
    let b_scale = cx.input(n, 4)?;
    let y_scale = cx.input(n, 6)?;
    let sd = cx.ty(a_scale).dtype;
    if !sd.is_float() {
        return Err(n.err(format!(
            "a_scale must be floating point, got {}",
            cx.ty(a_scale).describe()
        )));
    }
    let a_scale = per_row(cx, n, "a_scale_rows", a_scale)?;
    let ab = bin(cx, n, "ab_scale", BinaryOp::Mul, a_scale, b_scale)?;
    let mult = bin(cx, n, "multiplier", BinaryOp::Div, ab, y_scale)?;
    let mult = if sd == DType::F32 {
        mult
    } else {
        cx.add(n, "multiplier_f32", Op::Cast(DType::F32), &[mult])?
    };
    let pf = cx.add(n, "product_f32", Op::Cast(DType::F32), &[prod])?;
    let mut y = bin(cx, n, "requantized", BinaryOp::Mul, pf, mult)?;
    let out_dt = match cx.opt_input(n, 7)? {
        Some(z) => {
            let zd = cx.ty(z).dtype;
            let zf = cx.add(n, "y_zero_point_f32", Op::Cast(DType::F32), &[z])?;
            let zf = per_row(cx, n, "y_zero_point_rows", zf)?;
            y = bin(cx, n, "shifted", BinaryOp::Add, y, zf)?;
            zd
        }
        None => {
            let a = cx.input(n, 0)?;
            cx.ty(a).dtype
        }
    };
    let (lo, hi) = q_range(n, out_dt)?;
    y = cx.add(n, "rounded", Op::Unary(UnaryOp::Round), &[y])?;
    let lo = cx.scalar(n, "qmin", DType::F32, lo);
    let hi = cx.scalar(n, "qmax", DType::F32, hi);
    y = bin(cx, n, "clamp_low", BinaryOp::Max, y, lo)?;
    y = bin(cx, n, "clamped", BinaryOp::Min, y, hi)?;
    Ok(vec![Value::Node(cx.add(n, "", Op::Cast(out_dt), &[y])?)])
}

/// `DynamicQuantizeLinear(x) -> (y, y_scale, y_zero_point)` (uint8):
/// `scale = (max(0, max x) - min(0, min x)) / 255` (1/255 for an all-zero range),
/// `zp = rint(clamp(-min / scale, 0, 255))`, `y = clamp(rint(x / scale) + zp, 0, 255)`.
pub(crate) fn dynamic_quantize(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let xt = cx.ty(x).clone();
    if xt.dtype != DType::F32 {
        return Err(n.err(format!("x must be float32, got {}", xt.describe())));
    }
    let all: Vec<usize> = (0..xt.rank()).collect();
    let red = |cx: &mut Ctx, s: &str, op| {
        cx.add(
            n,
            s,
            Op::Reduce {
                op,
                axes: all.clone(),
                keep_dims: false,
            },
            &[x],
        )
    };
    let mx = red(cx, "max", ReduceOp::Max)?;
    let mn = red(cx, "min", ReduceOp::Min)?;
    let zero = cx.scalar(n, "zero", DType::F32, 0.0);
    let mx = bin(cx, n, "max0", BinaryOp::Max, mx, zero)?;
    let mn = bin(cx, n, "min0", BinaryOp::Min, mn, zero)?;
    let range = bin(cx, n, "range", BinaryOp::Sub, mx, mn)?;
    let same = bin(cx, n, "empty_range", BinaryOp::Equal, mx, mn)?;
    let one_c = cx.scalar(n, "one", DType::F32, 1.0);
    let range = cx.add(n, "range_or_one", Op::Where, &[same, one_c, range])?;
    let q = cx.scalar(n, "qmax", DType::F32, 255.0);
    let scale = bin(cx, n, "y_scale", BinaryOp::Div, range, q)?;
    let neg_min = cx.add(n, "neg_min", Op::Unary(UnaryOp::Neg), &[mn])?;
    let zp = bin(cx, n, "zp_raw", BinaryOp::Div, neg_min, scale)?;
    let zp = bin(cx, n, "zp_low", BinaryOp::Max, zp, zero)?;
    let zp = bin(cx, n, "zp_clamped", BinaryOp::Min, zp, q)?;
    let zp = cx.add(n, "zp_rounded", Op::Unary(UnaryOp::Round), &[zp])?;
    let y = bin(cx, n, "scaled", BinaryOp::Div, x, scale)?;
    let y = cx.add(n, "rounded", Op::Unary(UnaryOp::Round), &[y])?;
    let y = bin(cx, n, "shifted", BinaryOp::Add, y, zp)?;
    let y = bin(cx, n, "clamp_low", BinaryOp::Max, y, zero)?;
    let y = bin(cx, n, "clamped", BinaryOp::Min, y, q)?;
    let y = cx.add(n, "y", Op::Cast(DType::U8), &[y])?;
    let zp = cx.add(n, "y_zero_point", Op::Cast(DType::U8), &[zp])?;
    Ok(vec![Value::Node(y), Value::Node(scale), Value::Node(zp)])
}
