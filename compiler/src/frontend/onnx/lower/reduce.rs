//! Reductions: `Reduce*` (axes from attributes or, by opset, from an input), `ArgMax`/`ArgMin`,
//! `GlobalAveragePool`/`GlobalMaxPool`.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{infer::reduced_shape, BinaryOp, DType, Expr, NodeId, Op, ReduceOp, UnaryOp};

/// The reduced axes of a `Reduce*` node, or `None` when the node is the identity
/// (`noop_with_empty_axes` with no axes).
fn reduce_axes(cx: &Ctx, n: &N, rank: usize) -> Result<Option<Vec<usize>>, OnnxError> {
    // ReduceSum takes axes as an input from opset 13, the others from opset 18.
    let from_input = if n.op == "ReduceSum" {
        n.opset >= 13
    } else {
        n.opset >= 18
    };
    let axes = if from_input {
        if cx.has_input(n, 1) {
            Some(cx.const_ints(n, 1, "axes")?)
        } else {
            None
        }
    } else {
        n.attr_ints("axes")?
    };
    let axes = axes.filter(|a| !a.is_empty());
    match axes {
        Some(a) => Ok(Some(n.axes(&a, rank, "axis")?)),
        None if from_input && n.attr_i("noop_with_empty_axes", 0)? != 0 => Ok(None),
        None => Ok(Some((0..rank).collect())),
    }
}

/// `ReduceSum`, `ReduceMean`, `ReduceMax`, `ReduceMin`, `ReduceProd`, and the composite
/// `ReduceL1`, `ReduceL2`, `ReduceSumSquare`, `ReduceLogSum`, `ReduceLogSumExp`.
pub(crate) fn reduce(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let ty = cx.ty(x).clone();
    let keep_dims = n.attr_i("keepdims", 1)? != 0;
    let Some(axes) = reduce_axes(cx, n, ty.rank())? else {
        return Ok(one(x));
    };
    let red = |cx: &mut Ctx, suffix: &str, op: ReduceOp, v: NodeId, keep: bool| {
        cx.add(
            n,
            suffix,
            Op::Reduce {
                op,
                axes: axes.clone(),
                keep_dims: keep,
            },
            &[v],
        )
    };
    let un = |cx: &mut Ctx, suffix: &str, u: UnaryOp, v: NodeId| cx.add(n, suffix, Op::Unary(u), &[v]);
    if ty.dtype == DType::Bool && matches!(n.op, "ReduceMax" | "ReduceMin") {
        // any / all: reduce 0/1 as i32, then back to bool.
        let xi = cx.add(n, "as_int", Op::Cast(DType::I32), &[x])?;
        let op = if n.op == "ReduceMax" {
            ReduceOp::Max
        } else {
            ReduceOp::Min
        };
        let r = red(cx, "reduced", op, xi, keep_dims)?;
        return Ok(one(cx.add(n, "", Op::Cast(DType::Bool), &[r])?));
    }
    let y = match n.op {
        "ReduceSum" => red(cx, "", ReduceOp::Sum, x, keep_dims)?,
        "ReduceMean" => red(cx, "", ReduceOp::Mean, x, keep_dims)?,
        "ReduceMax" => red(cx, "", ReduceOp::Max, x, keep_dims)?,
        "ReduceMin" => red(cx, "", ReduceOp::Min, x, keep_dims)?,
        "ReduceProd" => red(cx, "", ReduceOp::Prod, x, keep_dims)?,
        "ReduceL1" => {
            let a = un(cx, "abs", UnaryOp::Abs, x)?;
            red(cx, "", ReduceOp::Sum, a, keep_dims)?
        }
        "ReduceSumSquare" | "ReduceL2" => {
            let sq = cx.add(n, "square", Op::Binary(BinaryOp::Mul), &[x, x])?;
            if n.op == "ReduceL2" {
                let s = red(cx, "sum", ReduceOp::Sum, sq, keep_dims)?;
                un(cx, "", UnaryOp::Sqrt, s)?
            } else {
                red(cx, "", ReduceOp::Sum, sq, keep_dims)?
            }
        }
        "ReduceLogSum" => {
            let s = red(cx, "sum", ReduceOp::Sum, x, keep_dims)?;
            un(cx, "", UnaryOp::Log, s)?
        }
        "ReduceLogSumExp" => {
            // max + log(sum(exp(x - max))), stable for large x.
            let m = red(cx, "max", ReduceOp::Max, x, true)?;
            let d = cx.add(n, "shifted", Op::Binary(BinaryOp::Sub), &[x, m])?;
            let e = un(cx, "exp", UnaryOp::Exp, d)?;
            let s = red(cx, "sum", ReduceOp::Sum, e, true)?;
            let l = un(cx, "log", UnaryOp::Log, s)?;
            let r = cx.add(
                n,
                if keep_dims { "" } else { "keep" },
                Op::Binary(BinaryOp::Add),
                &[l, m],
            )?;
            if keep_dims {
                r
            } else {
                cx.add(
                    n,
                    "",
                    Op::Reshape {
                        shape: reduced_shape(&ty.shape, &axes, false),
                    },
                    &[r],
                )?
            }
        }
        _ => unreachable!("dispatched"),
    };
    Ok(one(y))
}

/// `ArgMax` / `ArgMin` (i32 indices in the IR; int64 in ONNX).
pub(crate) fn arg(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let rank = cx.ty(x).rank();
    let axis = n.axis(n.attr_i("axis", 0)?, rank, "axis")?;
    let op = Op::ArgReduce {
        max: n.op == "ArgMax",
        axis,
        keep_dims: n.attr_i("keepdims", 1)? != 0,
        select_last: n.attr_i("select_last_index", 0)? != 0,
    };
    Ok(one(cx.add(n, "", op, &[x])?))
}

/// `GlobalAveragePool` / `GlobalMaxPool`: reduce the spatial axes `2..`, keeping them as 1.
pub(crate) fn global_pool(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let rank = cx.ty(x).rank();
    if rank < 3 {
        return Err(n.err(format!(
            "input must have rank >= 3 ([N, C, D...]), got {}",
            cx.ty(x).describe()
        )));
    }
    let op = if n.op == "GlobalAveragePool" {
        ReduceOp::Mean
    } else {
        ReduceOp::Max
    };
    Ok(one(cx.add(
        n,
        "",
        Op::Reduce {
            op,
            axes: (2..rank).collect(),
            keep_dims: true,
        },
        &[x],
    )?))
}

/// `CumSum` as a matmul with a constant triangular 0/1 matrix along the (concrete) axis;
/// `exclusive` and `reverse` pick the triangle.
pub(crate) fn cumsum(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let ty = cx.ty(x).clone();
    let rank = ty.rank();
    let axis = *cx
        .const_ints(n, 1, "axis")?
        .first()
        .ok_or_else(|| n.err("input 1 ('axis') is empty"))?;
    let axis = n.axis(axis, rank, "axis")?;
    let len = ty.shape[axis]
        .as_const()
        .ok_or_else(|| n.err(format!("axis {axis} of {} must be concrete (use --dim)", ty.describe())))?
        as usize;
    let exclusive = n.attr_i("exclusive", 0)? != 0;
    let reverse = n.attr_i("reverse", 0)? != 0;
    // y[.., i] = sum_j x[.., j] * t[j, i]
    let t: Vec<f64> = (0..len * len)
        .map(|p| {
            let (j, i) = (p / len, p % len);
            (match (reverse, exclusive) {
                (false, false) => j <= i,
                (false, true) => j < i,
                (true, false) => j >= i,
                (true, true) => j > i,
            }) as u8 as f64
        })
        .collect();
    let tri = cx.constant(n, "triangle", kiln_ir::Tensor::from_f64(ty.dtype, vec![len, len], &t));
    let last = rank - 1;
    if axis == last {
        return Ok(one(cx.add(n, "", Op::MatMul, &[x, tri])?));
    }
    let mut perm: Vec<usize> = (0..rank).collect();
    perm.swap(axis, last);
    let moved = cx.add(n, "moved", Op::Transpose { perm: perm.clone() }, &[x])?;
    let s = cx.add(n, "scan", Op::MatMul, &[moved, tri])?;
    Ok(one(cx.add(n, "", Op::Transpose { perm }, &[s])?))
}

/// Most elements along the axis of a `CumProd` (each output element multiplies up to this many
/// selected inputs in one expression).
const MAX_CUMPROD_LEN: usize = 1024;

/// `CumProd` (opset 26): the running product along `axis` (exclusive and/or reverse), one
/// tensor expression per element: the product over every position of the axis of either the
/// input (when the position is included) or 1.
pub(crate) fn cumprod(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let ty = cx.ty(x).clone();
    let rank = ty.rank();
    if rank == 0 {
        return Err(n.err("input must have rank >= 1"));
    }
    let axis = *cx
        .const_ints(n, 1, "axis")?
        .first()
        .ok_or_else(|| n.err("input 1 ('axis') is empty"))?;
    let axis = n.axis(axis, rank, "axis")?;
    let len = ty.shape[axis]
        .as_const()
        .ok_or_else(|| n.err(format!("axis {axis} of {} must be concrete (use --dim)", ty.describe())))?
        as usize;
    if len > MAX_CUMPROD_LEN {
        return Err(n.unsupported(format!(
            "an axis of {len} elements is longer than the {MAX_CUMPROD_LEN} that CumProd unrolls"
        )));
    }
    let exclusive = n.attr_i("exclusive", 0)? != 0;
    let reverse = n.attr_i("reverse", 0)? != 0;
    let dt = ty.dtype;
    let i = || Expr::Coord(axis);
    let mut prod = Expr::Lit(1.0, dt);
    for j in 0..len {
        let jj = Expr::int(j as i64);
        // Whether position j is part of the product for output position i.
        let cond = match (reverse, exclusive) {
            (false, false) => jj.cmp(BinaryOp::LessEqual, i(), DType::I32),
            (false, true) => jj.cmp(BinaryOp::Less, i(), DType::I32),
            (true, false) => jj.cmp(BinaryOp::GreaterEqual, i(), DType::I32),
            (true, true) => jj.cmp(BinaryOp::Greater, i(), DType::I32),
        };
        let mut index: Vec<Expr> = (0..rank).map(Expr::Coord).collect();
        index[axis] = Expr::int(j as i64);
        let term = Expr::select(cond, Expr::Load { input: 0, index }, Expr::Lit(1.0, dt));
        prod = if j == 0 {
            term
        } else {
            Expr::Binary(BinaryOp::Mul, Box::new(prod), Box::new(term), dt)
        };
    }
    let op = Op::Compute {
        shape: ty.shape.clone(),
        dtype: dt,
        expr: prod,
        name: "CumProd".into(),
    };
    Ok(one(cx.add(n, "", op, &[x])?))
}
