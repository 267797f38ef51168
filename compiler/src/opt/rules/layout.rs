//! Layout rules: transposes and reshapes that cancel, merge, or do nothing.
//!
//! (Transposes and reshapes of constant weights need no rule: the analysis evaluates any op
//! whose operands are all constant, see `analysis.rs`.)

use crate::opt::analysis::KGraph;
use crate::opt::lang::KOp;
use crate::opt::rule::{nodes_where, Plan, Rule};
use egg::Id;

/// `Transpose(q, Transpose(p, x))` → `Transpose(p∘q, x)`, or `x` when that is the identity.
pub struct TransposeTranspose;

impl Rule for TransposeTranspose {
    fn name(&self) -> &'static str {
        "transpose-transpose"
    }

    fn find(&self, eg: &KGraph, id: Id) -> Vec<Plan> {
        let mut out = Vec::new();
        for (op, kids) in nodes_where(eg, id, |k| matches!(k, KOp::Transpose(_))) {
            let KOp::Transpose(q) = op else { continue };
            for (inner, xs) in nodes_where(eg, kids[0], |k| matches!(k, KOp::Transpose(_))) {
                let KOp::Transpose(p) = inner else { continue };
                // Output axis i of the outer is its input axis q[i], which is x's axis p[q[i]].
                let perm: Vec<usize> = q.iter().map(|&i| p[i]).collect();
                out.push(if is_identity(&perm) {
                    Plan::Class(xs[0])
                } else {
                    Plan::Node(KOp::Transpose(perm), vec![Plan::Class(xs[0])])
                });
            }
        }
        out
    }
}

/// `Transpose(identity, x)` → `x`.
pub struct IdentityTranspose;

impl Rule for IdentityTranspose {
    fn name(&self) -> &'static str {
        "identity-transpose"
    }

    fn find(&self, eg: &KGraph, id: Id) -> Vec<Plan> {
        nodes_where(eg, id, |k| matches!(k, KOp::Transpose(p) if is_identity(p)))
            .into_iter()
            .map(|(_, kids)| Plan::Class(kids[0]))
            .collect()
    }
}

/// `Transpose(p, x)` → `Reshape(shape, x)` when `p` moves only axes of size 1: the other axes
/// keep their order, so the elements do too (a decode step's `[heads, group, 1, hd]` →
/// `[1, heads, group, hd]`), and the copy kernel the transpose would need goes away.
pub struct UnitAxisTranspose;

impl Rule for UnitAxisTranspose {
    fn name(&self) -> &'static str {
        "unit-axis-transpose"
    }

    fn find(&self, eg: &KGraph, id: Id) -> Vec<Plan> {
        let out_shape = eg[id].data.ty.shape.clone();
        nodes_where(eg, id, |k| matches!(k, KOp::Transpose(p) if !is_identity(p)))
            .into_iter()
            .filter(|(op, kids)| {
                let KOp::Transpose(p) = op else { return false };
                let x = &eg[kids[0]].data.ty.shape;
                let kept: Vec<usize> = p.iter().copied().filter(|&a| x[a].as_const() != Some(1)).collect();
                kept.windows(2).all(|w| w[0] < w[1])
            })
            .map(|(_, kids)| Plan::Node(KOp::Reshape(out_shape.clone()), vec![Plan::Class(kids[0])]))
            .collect()
    }
}

/// `Reshape(s, Reshape(t, x))` → `Reshape(s, x)` (a reshape keeps the element order).
pub struct ReshapeReshape;

impl Rule for ReshapeReshape {
    fn name(&self) -> &'static str {
        "reshape-reshape"
    }

    fn find(&self, eg: &KGraph, id: Id) -> Vec<Plan> {
        let mut out = Vec::new();
        for (op, kids) in nodes_where(eg, id, |k| matches!(k, KOp::Reshape(_))) {
            for (_, xs) in nodes_where(eg, kids[0], |k| matches!(k, KOp::Reshape(_))) {
                out.push(Plan::Node(op.clone(), vec![Plan::Class(xs[0])]));
            }
        }
        out
    }
}

/// `Reshape(s, x)` → `x` when x already has shape `s`.
pub struct IdentityReshape;

impl Rule for IdentityReshape {
    fn name(&self) -> &'static str {
        "identity-reshape"
    }

    fn find(&self, eg: &KGraph, id: Id) -> Vec<Plan> {
        nodes_where(eg, id, |k| matches!(k, KOp::Reshape(_)))
            .into_iter()
            .filter(|(op, kids)| matches!(op, KOp::Reshape(s) if *s == eg[kids[0]].data.ty.shape))
            .map(|(_, kids)| Plan::Class(kids[0]))
            .collect()
    }
}

/// True for `[0, 1, 2, ...]`.
pub fn is_identity(perm: &[usize]) -> bool {
    perm.iter().enumerate().all(|(i, &p)| i == p)
}
