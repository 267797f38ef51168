//! Ops of the `ai.onnx.ml` domain that are plain tensor expressions: `Binarizer` and
//! `ArrayFeatureExtractor`.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Expr, Op};

/// `Binarizer`: 1 where `x > threshold`, else 0, in the input's dtype.
pub(crate) fn binarizer(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let ty = cx.ty(x).clone();
    if !matches!(ty.dtype, DType::F32 | DType::F16 | DType::I32) {
        return Err(n.err(format!("input must be numeric, got {}", ty.describe())));
    }
    let threshold = n.attr_f("threshold", 0.0)? as f64;
    let load = Expr::Load {
        input: 0,
        index: (0..ty.rank()).map(Expr::Coord).collect(),
    };
    let expr = Expr::select(
        load.cmp(BinaryOp::Greater, Expr::Lit(threshold, ty.dtype), ty.dtype),
        Expr::Lit(1.0, ty.dtype),
        Expr::Lit(0.0, ty.dtype),
    );
    let op = Op::Compute {
        shape: ty.shape.clone(),
        dtype: ty.dtype,
        expr,
        name: "Binarizer".into(),
    };
    Ok(one(cx.add(n, "", op, &[x])?))
}

/// `ArrayFeatureExtractor`: `x[..., y]` along the last axis for the flat index list `y`.
pub(crate) fn array_feature_extractor(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let y = cx.input(n, 1)?;
    let (xt, yt) = (cx.ty(x).clone(), cx.ty(y).clone());
    if xt.rank() == 0 || yt.dtype != DType::I32 {
        return Err(n.err(format!(
            "x {} must have rank >= 1 and y {} must be integer indices",
            xt.describe(),
            yt.describe()
        )));
    }
    let flat = cx.add(
        n,
        "indices",
        Op::Reshape {
            shape: vec![yt.shape.iter().fold(kiln_ir::Dim::c(1), |a, d| a.mul(d))],
        },
        &[y],
    )?;
    Ok(one(cx.add(n, "", Op::Gather { axis: xt.rank() - 1 }, &[x, flat])?))
}
