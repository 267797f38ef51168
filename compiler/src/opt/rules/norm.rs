//! Normalizations recognized from their decomposed forms: LayerNorm (as the ONNX exporter
//! writes it), RMSNorm (as Llama-style builders write it) and softmax (the max-subtracted form
//! only: the form without the max overflows for large logits, and a fused softmax would
//! silently change that result).
//!
//! Binary `Add`/`Mul` operands are matched in both orders; nothing is reassociated.

use crate::opt::analysis::KGraph;
use crate::opt::lang::{BinaryKey, KOp, ReduceKey, UnaryKey};
use crate::opt::rule::{has_node, nodes_where, scalar, Plan, Rule};
use egg::Id;
use kiln_ir::{BinaryOp, Dim, ReduceOp, Tensor, UnaryOp};

/// Operand pairs of the `Binary(op)` e-nodes of a class; for commutative ops both orders.
fn binary(eg: &KGraph, id: Id, op: BinaryOp) -> Vec<(Id, Id)> {
    let mut out = Vec::new();
    for (_, k) in nodes_where(eg, id, |k| *k == KOp::Binary(BinaryKey(op))) {
        out.push((k[0], k[1]));
        if matches!(op, BinaryOp::Add | BinaryOp::Mul) {
            out.push((k[1], k[0]));
        }
    }
    out
}

/// Operands of the `Unary(op)` e-nodes of a class.
fn unary(eg: &KGraph, id: Id, op: UnaryOp) -> Vec<Id> {
    nodes_where(eg, id, |k| *k == KOp::Unary(UnaryKey(op)))
        .into_iter()
        .map(|(_, k)| k[0])
        .collect()
}

/// `(input, first axis)` of `Reduce(op)` e-nodes that keep dims and reduce a tail of axes.
fn reduce_tail(eg: &KGraph, id: Id, want: ReduceOp) -> Vec<(Id, usize)> {
    let mut out = Vec::new();
    for (op, k) in nodes_where(eg, id, |k| matches!(k, KOp::Reduce { .. })) {
        let KOp::Reduce { op, axes, keep_dims } = op else {
            continue;
        };
        let rank = eg[k[0]].data.ty.rank();
        let tail = !axes.is_empty() && axes.iter().enumerate().all(|(i, &a)| a == axes[0] + i);
        if op == ReduceKey(want) && keep_dims && tail && axes.last() == Some(&(rank - 1)) {
            out.push((k[0], axes[0]));
        }
    }
    out
}

/// Classes `d` with `id = d * d` or `id = d ^ 2`.
fn square_of(eg: &KGraph, id: Id) -> Vec<Id> {
    let mut out: Vec<Id> = binary(eg, id, BinaryOp::Mul)
        .into_iter()
        .filter(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    for (d, e) in binary(eg, id, BinaryOp::Pow) {
        if scalar(eg, e) == Some(2.0) {
            out.push(d);
        }
    }
    out
}

/// `(var, eps)` with `id = var + eps`, eps a scalar constant.
fn plus_eps(eg: &KGraph, id: Id) -> Vec<(Id, f64)> {
    binary(eg, id, BinaryOp::Add)
        .into_iter()
        .filter_map(|(v, e)| scalar(eg, e).map(|e| (v, e)))
        .collect()
}

/// `(v, var, eps)` with `id = v / sqrt(var + eps)` in any of its spellings: `v / Sqrt(..)`,
/// `v * Rsqrt(..)`, `v * Reciprocal(Sqrt(..))`.
fn normalized(eg: &KGraph, id: Id) -> Vec<(Id, Id, f64)> {
    let mut out = Vec::new();
    let root_of = |r: Id| -> Vec<(Id, f64)> {
        unary(eg, r, UnaryOp::Sqrt)
            .into_iter()
            .flat_map(|s| plus_eps(eg, s))
            .collect()
    };
    for (v, r) in binary(eg, id, BinaryOp::Div) {
        out.extend(root_of(r).into_iter().map(|(var, e)| (v, var, e)));
    }
    for (v, r) in binary(eg, id, BinaryOp::Mul) {
        for s in unary(eg, r, UnaryOp::Rsqrt) {
            out.extend(plus_eps(eg, s).into_iter().map(|(var, e)| (v, var, e)));
        }
        for s in unary(eg, r, UnaryOp::Reciprocal) {
            out.extend(root_of(s).into_iter().map(|(var, e)| (v, var, e)));
        }
    }
    out
}

/// A decomposed normalization found at a class: the input, first axis and epsilon.
type NormMatch = (Id, usize, f64);

/// LayerNorm cores: `(x - mean(x)) / sqrt(mean((x - mean(x))²) + eps)`.
fn layer_norm_core(eg: &KGraph, id: Id) -> Vec<NormMatch> {
    let mut out = Vec::new();
    for (d, var, eps) in normalized(eg, id) {
        for (x, mean) in binary(eg, d, BinaryOp::Sub) {
            for (x2, axis) in reduce_tail(eg, mean, ReduceOp::Mean) {
                if eg.find(x2) != eg.find(x) {
                    continue;
                }
                let var_ok = reduce_tail(eg, var, ReduceOp::Mean)
                    .into_iter()
                    .any(|(sq, a)| a == axis && square_of(eg, sq).iter().any(|&s| eg.find(s) == eg.find(d)));
                if var_ok {
                    out.push((x, axis, eps));
                }
            }
        }
    }
    out
}

/// RMSNorm cores: `x / sqrt(mean(x²) + eps)`.
fn rms_norm_core(eg: &KGraph, id: Id) -> Vec<NormMatch> {
    let mut out = Vec::new();
    for (x, var, eps) in normalized(eg, id) {
        for (sq, axis) in reduce_tail(eg, var, ReduceOp::Mean) {
            if square_of(eg, sq).iter().any(|&s| eg.find(s) == eg.find(x)) {
                out.push((x, axis, eps));
            }
        }
    }
    out
}

/// A scale or bias operand reshaped/expanded to exactly the normalized shape (what the norm
/// kernels read), or `None` when it varies along the non-normalized axes.
fn param(eg: &KGraph, p: Id, x: Id, axis: usize) -> Option<Plan> {
    let (xt, pt) = (&eg[x].data.ty, &eg[p].data.ty);
    if pt.dtype != xt.dtype {
        return None;
    }
    let norm: Vec<Dim> = xt.shape[axis..].to_vec();
    let mut plan = Plan::Class(p);
    let mut shape = pt.shape.clone();
    if shape.len() > norm.len() {
        let extra = shape.len() - norm.len();
        if shape[..extra].iter().any(|d| *d != Dim::c(1)) {
            return None;
        }
        shape = shape[extra..].to_vec();
        plan = Plan::Node(KOp::Reshape(shape.clone()), vec![plan]);
    }
    let off = norm.len() - shape.len();
    if shape
        .iter()
        .enumerate()
        .any(|(i, d)| *d != norm[off + i] && *d != Dim::c(1))
    {
        return None;
    }
    if shape != norm {
        plan = Plan::Node(KOp::Expand(norm), vec![plan]);
    }
    Some(plan)
}

/// A constant filled with `v` in the normalized shape of `x` (a constant shape only).
fn filled(eg: &KGraph, x: Id, axis: usize, v: f64) -> Option<Plan> {
    let t = &eg[x].data.ty;
    let shape: Vec<usize> = t.shape[axis..]
        .iter()
        .map(|d| d.as_const().map(|c| c as usize))
        .collect::<Option<_>>()?;
    let n = shape.iter().product();
    Some(Plan::Tensor(Tensor::from_f64(t.dtype, shape, &vec![v; n])))
}

/// Which normalization a [`NormRule`] recognizes.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Layer,
    Rms,
}

/// The normalization op over `x` with the given scale (and bias, for LayerNorm).
fn norm_plan(kind: Kind, m: NormMatch, scale: Plan, bias: Option<Plan>) -> Option<Plan> {
    let (x, axis, eps) = m;
    let eps = (eps as f32).to_bits();
    Some(match kind {
        Kind::Layer => Plan::Node(KOp::LayerNorm(axis, eps), vec![Plan::Class(x), scale, bias?]),
        Kind::Rms => Plan::Node(KOp::RmsNorm(axis, eps), vec![Plan::Class(x), scale]),
    })
}

/// Recognizes a decomposed LayerNorm or RMSNorm at a class: the bare core, the core times a
/// scale, and (LayerNorm) the scaled core plus a bias.
struct NormRule(Kind);

impl NormRule {
    fn cores(&self, eg: &KGraph, id: Id) -> Vec<NormMatch> {
        match self.0 {
            Kind::Layer => layer_norm_core(eg, id),
            Kind::Rms => rms_norm_core(eg, id),
        }
    }

    /// The op for `scale * core` at class `id` (`bias` added for LayerNorm).
    fn scaled(&self, eg: &KGraph, id: Id, bias: Option<Id>) -> Vec<Plan> {
        let mut out = Vec::new();
        for (n, s) in binary(eg, id, BinaryOp::Mul) {
            for m in self.cores(eg, n) {
                let scale = param(eg, s, m.0, m.1);
                let b = match (self.0, bias) {
                    (Kind::Layer, Some(b)) => param(eg, b, m.0, m.1),
                    (Kind::Layer, None) => filled(eg, m.0, m.1, 0.0),
                    (Kind::Rms, _) => None,
                };
                if let Some(scale) = scale {
                    out.extend(norm_plan(self.0, m, scale, b));
                }
            }
        }
        out
    }
}

impl Rule for NormRule {
    fn name(&self) -> &'static str {
        match self.0 {
            Kind::Layer => "layer-norm",
            Kind::Rms => "rms-norm",
        }
    }

    fn find(&self, eg: &KGraph, id: Id) -> Vec<Plan> {
        let mut out = Vec::new();
        let kind = self.0;
        if has_node(eg, id, |k| match kind {
            Kind::Layer => matches!(k, KOp::LayerNorm(..)),
            Kind::Rms => matches!(k, KOp::RmsNorm(..)),
        }) {
            return out;
        }
        for m in self.cores(eg, id) {
            let bias = filled(eg, m.0, m.1, 0.0);
            if let Some(one) = filled(eg, m.0, m.1, 1.0) {
                out.extend(norm_plan(self.0, m, one, bias));
            }
        }
        match self.0 {
            Kind::Rms => out.extend(self.scaled(eg, id, None)),
            Kind::Layer => {
                out.extend(self.scaled(eg, id, None));
                for (sm, b) in binary(eg, id, BinaryOp::Add) {
                    out.extend(self.scaled(eg, sm, Some(b)));
                }
            }
        }
        out
    }
}

/// `LayerNorm` from `((x - mean) / sqrt(mean((x - mean)²) + eps)) * scale + bias`.
pub fn layer_norm() -> impl Rule {
    NormRule(Kind::Layer)
}

/// `RmsNorm` from `x * rsqrt(mean(x²) + eps) * weight` (and its Pow/Sqrt/Div spellings).
pub fn rms_norm() -> impl Rule {
    NormRule(Kind::Rms)
}

/// `Softmax` from `exp(x - max(x)) / sum(exp(x - max(x)))` over one axis.
pub struct SoftmaxRule;

impl Rule for SoftmaxRule {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn find(&self, eg: &KGraph, id: Id) -> Vec<Plan> {
        let mut out = Vec::new();
        if has_node(eg, id, |k| matches!(k, KOp::Softmax(..))) {
            return out;
        }
        for (e, s) in binary(eg, id, BinaryOp::Div) {
            let sums: Vec<(Id, usize)> = nodes_where(eg, s, |k| matches!(k, KOp::Reduce { .. }))
                .into_iter()
                .filter_map(|(op, k)| match op {
                    KOp::Reduce {
                        op,
                        axes,
                        keep_dims: true,
                    } if op == ReduceKey(ReduceOp::Sum) && axes.len() == 1 => Some((k[0], axes[0])),
                    _ => None,
                })
                .collect();
            for (e2, axis) in sums {
                if eg.find(e2) != eg.find(e) {
                    continue;
                }
                for d in unary(eg, e, UnaryOp::Exp) {
                    for (x, m) in binary(eg, d, BinaryOp::Sub) {
                        let max_ok = nodes_where(eg, m, |k| {
                            matches!(k, KOp::Reduce { op, axes, keep_dims: true }
                                if *op == ReduceKey(ReduceOp::Max) && *axes == [axis])
                        })
                        .iter()
                        .any(|(_, k)| eg.find(k[0]) == eg.find(x));
                        if max_ok {
                            out.push(Plan::Node(KOp::Softmax(axis, false), vec![Plan::Class(x)]));
                        }
                    }
                }
            }
        }
        out
    }
}
