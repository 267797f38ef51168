//! Losses: `NegativeLogLikelihoodLoss` and `SoftmaxCrossEntropyLoss`.
//!
//! Both pick, for every target position `(n, d1, ..)`, the input element of the target class
//! `x[n, target[n, d1, ..], d1, ..]`: one tensor expression whose loads use a loaded target as a
//! coordinate. Per-position weights (`weight[target]`, zero where the target is `ignore_index`)
//! are a second expression. The reductions follow the ONNX reference: `none`, `sum`, and `mean`
//! (the weighted mean `sum(w * l) / sum(w)` when weights or `ignore_index` are given).

use super::math::bin;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Expr, NodeId, Op, ReduceOp, UnaryOp};

/// The target at the output coordinates, loaded from input `slot`.
fn target_at(slot: usize, rank: usize) -> Expr {
    Expr::Load {
        input: slot,
        index: (0..rank).map(Expr::Coord).collect(),
    }
}

/// `target != ignore_index` (`None` when there is no ignore index), a bool expression.
fn kept(target: Expr, ignore: Option<i64>) -> Option<Expr> {
    ignore.map(|ig| {
        Expr::Unary(
            UnaryOp::Not,
            Box::new(target.cmp(BinaryOp::Equal, Expr::int(ig), DType::I32)),
            DType::Bool,
        )
    })
}

/// The loss of log-probabilities `logp` `[N, C, D..]` against class indices `target` `[N, D..]`.
fn nll(cx: &mut Ctx, n: &N, logp: NodeId, target: NodeId, weight: Option<NodeId>) -> Result<NodeId, OnnxError> {
    let xt = cx.ty(logp).clone();
    let mut tt = cx.ty(target).clone();
    let dt = xt.dtype;
    if !dt.is_float() {
        return Err(n.err(format!("input must be floating point, got {}", xt.describe())));
    }
    if xt.rank() < 2 {
        return Err(n.err(format!(
            "input must be [N, C] or [N, C, D1, ...], got {}",
            xt.describe()
        )));
    }
    let target = if tt.dtype == DType::I32 {
        target
    } else if tt.dtype.is_int() {
        let c = cx.add(n, "target_i32", Op::Cast(DType::I32), &[target])?;
        tt = cx.ty(c).clone();
        c
    } else {
        return Err(n.err(format!("target must be integer, got {}", tt.describe())));
    };
    let mut want = xt.shape.clone();
    want.remove(1);
    if tt.shape != want {
        return Err(n.err(format!(
            "target {} does not fit input {} (expected [N, D1, ...] = {want:?})",
            tt.describe(),
            xt.describe()
        )));
    }
    let reduction = n.attr_s("reduction")?.unwrap_or_else(|| "mean".into());
    if !["none", "sum", "mean"].contains(&reduction.as_str()) {
        return Err(n.err(format!(
            "attribute 'reduction' must be none, sum or mean, got '{reduction}'"
        )));
    }
    let ignore = n.attr_i_opt("ignore_index")?;
    let rank_t = tt.rank();
    // In the pick and weight expressions, input slot 1 is the target.
    let t_load = target_at(1, rank_t);
    let keep = kept(t_load.clone(), ignore);
    // -x[n, t, d..] (0 where ignored).
    let mut x_index = vec![Expr::Coord(0), t_load.clone()];
    x_index.extend((1..rank_t).map(Expr::Coord));
    let picked = Expr::Unary(
        UnaryOp::Neg,
        Box::new(Expr::Load {
            input: 0,
            index: x_index,
        }),
        dt,
    );
    let zero = Expr::Lit(0.0, dt);
    let picked = match &keep {
        Some(k) => Expr::select(k.clone(), picked, zero.clone()),
        None => picked,
    };
    let mut loss = cx.add(
        n,
        "picked",
        Op::Compute {
            shape: tt.shape.clone(),
            dtype: dt,
            expr: picked,
            name: "NllPick".into(),
        },
        &[logp, target],
    )?;
    // Per-position weights.
    let w = match weight {
        Some(wt) => {
            let wty = cx.ty(wt).clone();
            if wty.rank() != 1 || wty.shape[0] != xt.shape[1] {
                return Err(n.err(format!(
                    "weight must be [C] = [{}], got {}",
                    xt.shape[1],
                    wty.describe()
                )));
            }
            let wt = if wty.dtype != dt {
                cx.add(n, "weight_cast", Op::Cast(dt), &[wt])?
            } else {
                wt
            };
            let g = Expr::Load {
                input: 0,
                index: vec![t_load.clone()],
            };
            let e = match &keep {
                Some(k) => Expr::select(k.clone(), g, zero.clone()),
                None => g,
            };
            Some(cx.add(
                n,
                "weights",
                Op::Compute {
                    shape: tt.shape.clone(),
                    dtype: dt,
                    expr: e,
                    name: "NllWeight".into(),
                },
                &[wt, target],
            )?)
        }
        None => match kept(target_at(0, rank_t), ignore) {
            // The count of kept positions divides the sum.
            Some(k) if reduction == "mean" => {
                let e = Expr::select(k, Expr::Lit(1.0, dt), zero.clone());
                Some(cx.add(
                    n,
                    "weights",
                    Op::Compute {
                        shape: tt.shape.clone(),
                        dtype: dt,
                        expr: e,
                        name: "NllWeight".into(),
                    },
                    &[target],
                )?)
            }
            _ => None,
        },
    };
    if let (Some(w), Some(_)) = (w, weight) {
        loss = bin(cx, n, "weighted", BinaryOp::Mul, loss, w)?;
    }
    let all: Vec<usize> = (0..rank_t).collect();
    let reduce = |cx: &mut Ctx, suffix: &str, op: ReduceOp, x: NodeId| {
        cx.add(
            n,
            suffix,
            Op::Reduce {
                op,
                axes: all.clone(),
                keep_dims: false,
            },
            &[x],
        )
    };
    Ok(match reduction.as_str() {
        "none" => loss,
        "sum" => reduce(cx, "sum", ReduceOp::Sum, loss)?,
        _ => match w {
            Some(w) => {
                let s = reduce(cx, "loss_sum", ReduceOp::Sum, loss)?;
                let ws = reduce(cx, "weight_sum", ReduceOp::Sum, w)?;
                bin(cx, n, "mean", BinaryOp::Div, s, ws)?
            }
            None => reduce(cx, "mean", ReduceOp::Mean, loss)?,
        },
    })
}

/// `NegativeLogLikelihoodLoss(input, target, weight?)`.
pub(crate) fn nll_loss(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let t = cx.input(n, 1)?;
    let w = cx.opt_input(n, 2)?;
    Ok(vec![Value::Node(nll(cx, n, x, t, w)?)])
}

/// `SoftmaxCrossEntropyLoss(scores, labels, weights?)`: `log_softmax` over axis 1, then the NLL
/// loss; the optional second output is the log-probabilities.
pub(crate) fn softmax_cross_entropy(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let t = cx.input(n, 1)?;
    let w = cx.opt_input(n, 2)?;
    if cx.ty(x).rank() < 2 {
        return Err(n.err(format!(
            "scores must be [N, C] or [N, C, D1, ...], got {}",
            cx.ty(x).describe()
        )));
    }
    let logp = cx.add(n, "log_prob", Op::Softmax { axis: 1, log: true }, &[x])?;
    let loss = nll(cx, n, logp, t, w)?;
    Ok(vec![Value::Node(loss), Value::Node(logp)])
}
