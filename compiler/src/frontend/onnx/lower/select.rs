//! TopK (IR `TopK` indices + a gather of the values) and ScatterND (IR `ScatterNd`).

use super::super::ctx::{Ctx, N};
use super::super::value::Value;
use super::super::OnnxError;
use kiln_ir::{DType, Expr, Op, ScatterReduction};

/// `TopK`: k from the attribute (opset 1) or the constant input `K` (opset 10+).
pub(crate) fn top_k(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let ty = cx.ty(x).clone();
    let axis = n.axis(n.attr_i("axis", -1)?, ty.rank(), "axis")?;
    let k = if n.opset < 10 {
        n.attr_i("k", -1)?
    } else {
        let ks = cx.const_ints(n, 1, "K")?;
        *ks.first().ok_or_else(|| n.err("input 'K' is empty"))?
    };
    if k < 0 {
        return Err(n.err(format!("k must be non-negative, got {k}")));
    }
    if n.attr_i("largest", 1)? == 0 && n.attr_i("sorted", 1)? == 0 {
        // Unsorted output may be in any order; sorted order is one valid answer.
    }
    let largest = n.attr_i("largest", 1)? != 0;
    let indices = cx.add(
        n,
        "indices",
        Op::TopK {
            k: k as usize,
            axis,
            largest,
        },
        &[x],
    )?;
    // values[c] = x[c with axis coordinate replaced by indices[c]]
    let out_shape = cx.ty(indices).shape.clone();
    let index: Vec<Expr> = (0..ty.rank())
        .map(|a| {
            if a == axis {
                Expr::Load {
                    input: 1,
                    index: (0..ty.rank()).map(Expr::Coord).collect(),
                }
            } else {
                Expr::Coord(a)
            }
        })
        .collect();
    let values = cx.add(
        n,
        "values",
        Op::Compute {
            shape: out_shape,
            dtype: ty.dtype,
            expr: Expr::Load { input: 0, index },
            name: "TopKValues".into(),
        },
        &[x, indices],
    )?;
    Ok(vec![Value::Node(values), Value::Node(indices)])
}

/// `ScatterND` with the optional `reduction` attribute (opset 16+).
pub(crate) fn scatter_nd(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let data = cx.input(n, 0)?;
    let idx = cx.input(n, 1)?;
    let updates = cx.input(n, 2)?;
    let reduction = match n.attr_s("reduction")?.as_deref().unwrap_or("none") {
        "none" => ScatterReduction::None,
        "add" => ScatterReduction::Add,
        "mul" => ScatterReduction::Mul,
        "max" => ScatterReduction::Max,
        "min" => ScatterReduction::Min,
        other => return Err(n.err(format!("reduction '{other}' is not one of none, add, mul, max, min"))),
    };
    let idx = if cx.ty(idx).dtype == DType::I32 {
        idx
    } else {
        cx.add(n, "indices_i32", Op::Cast(DType::I32), &[idx])?
    };
    Ok(vec![Value::Node(cx.add(
        n,
        "",
        Op::ScatterNd { reduction },
        &[data, idx, updates],
    )?)])
}
