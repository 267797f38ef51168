//! `MatMul`, `Gemm` and `MatMulInteger`.

use super::elementwise::with_scalar;
use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Dim, Op};

/// `MatMul` (numpy semantics, as the IR's).
pub(crate) fn matmul(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let a = cx.input(n, 0)?;
    let b = cx.input(n, 1)?;
    Ok(one(cx.add(n, "", Op::MatMul, &[a, b])?))
}

/// `Gemm`: `alpha * A' B' + beta * C` with `A'`/`B'` optionally transposed.
///
/// Transposes are `Transpose` ops (folded away for constant weights); `alpha` scales a constant
/// `B` (so it folds) or else the product; scalings by 1 are skipped; `C` broadcasts.
pub(crate) fn gemm(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let mut a = cx.input(n, 0)?;
    let mut b = cx.input(n, 1)?;
    let c = cx.opt_input(n, 2)?;
    let alpha = n.attr_f("alpha", 1.0)? as f64;
    let beta = n.attr_f("beta", 1.0)? as f64;
    for (id, what) in [(a, "A"), (b, "B")] {
        if cx.ty(id).rank() != 2 {
            return Err(n.err(format!("input {what} must be a matrix, got {}", cx.ty(id).describe())));
        }
    }
    if n.attr_i("transA", 0)? != 0 {
        a = cx.add(n, "transpose_a", Op::Transpose { perm: vec![1, 0] }, &[a])?;
    }
    if n.attr_i("transB", 0)? != 0 {
        b = cx.add(n, "transpose_b", Op::Transpose { perm: vec![1, 0] }, &[b])?;
    }
    let b_const = matches!(cx.g.node(b).op, Op::Constant(_));
    if alpha != 1.0 && b_const {
        b = with_scalar(cx, n, "alpha_b", BinaryOp::Mul, b, alpha)?;
    }
    let c = c.filter(|_| beta != 0.0);
    let last_is_mm = c.is_none() && (alpha == 1.0 || b_const);
    let mut y = cx.add(n, if last_is_mm { "" } else { "matmul" }, Op::MatMul, &[a, b])?;
    if alpha != 1.0 && !b_const {
        y = with_scalar(cx, n, if c.is_none() { "" } else { "alpha" }, BinaryOp::Mul, y, alpha)?;
    }
    if let Some(mut c) = c {
        if beta != 1.0 {
            c = with_scalar(cx, n, "beta_c", BinaryOp::Mul, c, beta)?;
        }
        y = cx.add(n, "", Op::Binary(BinaryOp::Add), &[y, c])?;
    }
    Ok(one(y))
}

/// `MatMulInteger`: `(A - a_zero_point) @ (B - b_zero_point)` in i32 (`a_zero_point` per row
/// or scalar, `b_zero_point` per column or scalar).
pub(crate) fn matmul_integer(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let mut ops = Vec::new();
    for (i, z, what) in [(0, 2, "a"), (1, 3, "b")] {
        let v = cx.input(n, i)?;
        let vi = cx.add(n, &format!("{what}_i32"), Op::Cast(DType::I32), &[v])?;
        let r = match cx.opt_input(n, z)? {
            Some(zp) => {
                let zi = cx.add(n, &format!("{what}_zero_point_i32"), Op::Cast(DType::I32), &[zp])?;
                let zt = cx.ty(zi).clone();
                let zi = if what == "a" && zt.rank() == 1 && zt.shape[0] != Dim::c(1) {
                    // One zero point per row of A.
                    cx.add(
                        n,
                        "a_zero_point_rows",
                        Op::Reshape {
                            shape: vec![zt.shape[0].clone(), Dim::c(1)],
                        },
                        &[zi],
                    )?
                } else {
                    zi
                };
                cx.add(n, &format!("{what}_centered"), Op::Binary(BinaryOp::Sub), &[vi, zi])?
            }
            None => vi,
        };
        ops.push(r);
    }
    Ok(one(cx.add(n, "", Op::MatMul, &ops)?))
}
