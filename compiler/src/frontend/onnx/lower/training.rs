//! The optimizer update rules of the `ai.onnx.preview.training` domain: `Adagrad`, `Momentum`
//! (standard and Nesterov) and `Adam`, each output one elementwise tensor expression over the
//! learning rate `R`, the step count `T` and the per-tensor inputs.

use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::fexpr::{add, bin, div, lit, mul, sqrt, sub};
use kiln_ir::{BinaryOp, DType, Expr, NodeId, Op};

const F: DType = DType::F32;

/// The inputs of one update: `R`, `T`, then the per-tensor inputs, as loads (scalars R and T
/// read at their only element).
struct Update {
    ins: Vec<NodeId>,
    rank: usize,
    r_rank: usize,
    t_rank: usize,
}

impl Update {
    fn r(&self) -> Expr {
        Expr::Load {
            input: 0,
            index: vec![Expr::int(0); self.r_rank],
        }
    }
    /// T as f32.
    fn t(&self) -> Expr {
        let e = Expr::Load {
            input: 1,
            index: vec![Expr::int(0); self.t_rank],
        };
        Expr::Cast(Box::new(e), DType::I32, F)
    }
    /// Per-tensor input `k` (0-based after R and T) at the output coordinates.
    fn v(&self, k: usize) -> Expr {
        Expr::Load {
            input: 2 + k,
            index: (0..self.rank).map(Expr::Coord).collect(),
        }
    }
}

/// Reads R, T and the `groups` per-tensor inputs of tensor `i` out of `count` tensors.
fn update(cx: &mut Ctx, n: &N, i: usize, count: usize, groups: usize) -> Result<Update, OnnxError> {
    let r = cx.input(n, 0)?;
    let t = cx.input(n, 1)?;
    let (rt, tt) = (cx.ty(r).clone(), cx.ty(t).clone());
    if rt.dtype != F || rt.shape.iter().any(|d| d.as_const() != Some(1)) {
        return Err(n.err(format!("R {} must be one f32 value", rt.describe())));
    }
    if tt.dtype != DType::I32 || tt.shape.iter().any(|d| d.as_const() != Some(1)) {
        return Err(n.err(format!("T {} must be one integer", tt.describe())));
    }
    let mut ins = vec![r, t];
    for g in 0..groups {
        ins.push(cx.input(n, 2 + g * count + i)?);
    }
    let x = cx.ty(ins[2]).clone();
    if x.dtype != F {
        return Err(n.unsupported(format!("X {} must be f32", x.describe())));
    }
    for &v in &ins[3..] {
        if cx.ty(v) != &x {
            return Err(n.err(format!(
                "every input of tensor {i} must be {}, got {}",
                x.describe(),
                cx.ty(v).describe()
            )));
        }
    }
    Ok(Update {
        ins,
        rank: x.rank(),
        r_rank: rt.rank(),
        t_rank: tt.rank(),
    })
}

fn emit(cx: &mut Ctx, n: &N, what: &str, u: &Update, expr: Expr) -> Result<NodeId, OnnxError> {
    let shape = cx.ty(u.ins[2]).shape.clone();
    let op = Op::Compute {
        shape,
        dtype: F,
        expr,
        name: format!("{}{what}", n.op),
    };
    cx.add(n, what, op, &u.ins)
}

/// `Adagrad`, `Momentum`, `Adam`.
pub(crate) fn optimizer(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let groups = match n.op {
        "Adam" => 4,
        _ => 3,
    };
    let per = n.n_inputs().saturating_sub(2);
    if per == 0 || !per.is_multiple_of(groups) {
        return Err(n.err(format!(
            "has {} inputs; {} takes R, T and {groups} inputs per optimized tensor",
            n.n_inputs(),
            n.op
        )));
    }
    let count = per / groups;
    let nc = n.attr_f("norm_coefficient", 0.0)?;
    let outs_per = groups - 1;
    let mut outs: Vec<Vec<NodeId>> = vec![Vec::new(); outs_per];
    for i in 0..count {
        let u = update(cx, n, i, count, groups)?;
        let g_reg = add(mul(lit(nc), u.v(0)), u.v(1));
        let t_pos = u.t().cmp(BinaryOp::Greater, lit(0.0), F);
        match n.op {
            "Adagrad" => {
                let decay = n.attr_f("decay_factor", 0.0)?;
                let eps = n.attr_f("epsilon", 0.0)?;
                let r = div(u.r(), add(lit(1.0), mul(u.t(), lit(decay))));
                let h_new = add(u.v(2), mul(g_reg.clone(), g_reg.clone()));
                let x_new = sub(u.v(0), div(mul(r, g_reg), add(sqrt(h_new.clone()), lit(eps))));
                outs[0].push(emit(cx, n, &format!("x{i}"), &u, x_new)?);
                outs[1].push(emit(cx, n, &format!("h{i}"), &u, h_new)?);
            }
            "Momentum" => {
                let alpha = n.attr_f("alpha", 0.0)?;
                let beta = n.attr_f("beta", 0.0)?;
                let mode = n.attr_s("mode")?.unwrap_or_else(|| "standard".into());
                let beta_adj = Expr::select(t_pos, lit(beta), lit(1.0));
                let v_new = add(mul(lit(alpha), u.v(2)), mul(beta_adj, g_reg.clone()));
                let step = match mode.as_str() {
                    "standard" => v_new.clone(),
                    "nesterov" => add(g_reg, mul(lit(alpha), v_new.clone())),
                    m => return Err(n.unsupported(format!("attribute 'mode': '{m}' is not supported"))),
                };
                let x_new = sub(u.v(0), mul(u.r(), step));
                outs[0].push(emit(cx, n, &format!("x{i}"), &u, x_new)?);
                outs[1].push(emit(cx, n, &format!("v{i}"), &u, v_new)?);
            }
            _ => {
                let alpha = n.attr_f("alpha", 0.9)?;
                let beta = n.attr_f("beta", 0.999)?;
                let eps = n.attr_f("epsilon", 0.0)?;
                let post = n.attr_f("norm_coefficient_post", 0.0)?;
                let v_new = add(mul(lit(alpha), u.v(2)), mul(lit(1.0 - alpha), g_reg.clone()));
                let h_new = add(mul(lit(beta), u.v(3)), mul(lit(1.0 - beta), mul(g_reg.clone(), g_reg)));
                let pow = |b: f32| bin(BinaryOp::Pow, lit(b), u.t());
                let r_adj = Expr::select(
                    t_pos,
                    div(mul(u.r(), sqrt(sub(lit(1.0), pow(beta)))), sub(lit(1.0), pow(alpha))),
                    u.r(),
                );
                let x_new = sub(
                    u.v(0),
                    mul(r_adj, div(v_new.clone(), add(sqrt(h_new.clone()), lit(eps)))),
                );
                let x_final = mul(lit(1.0 - post), x_new);
                outs[0].push(emit(cx, n, &format!("x{i}"), &u, x_final)?);
                outs[1].push(emit(cx, n, &format!("v{i}"), &u, v_new)?);
                outs[2].push(emit(cx, n, &format!("h{i}"), &u, h_new)?);
            }
        }
    }
    Ok(outs.into_iter().flatten().map(Value::Node).collect())
}
