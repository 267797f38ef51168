//! A convolution followed by a per-channel constant scale or shift (a BatchNorm that the ONNX
//! frontend lowered to `Mul`/`Add`, or an explicit one) folded into the convolution's weights
//! and bias: `conv(x, w, b) * s = conv(x, w*s, b*s)`, `conv(x, w, b) + t = conv(x, w, b + t)`.

use crate::opt::analysis::{const_of, KGraph};
use crate::opt::lang::{BinaryKey, KOp};
use crate::opt::rule::{has_node, nodes_where, Plan, Rule};
use egg::Id;
use kiln_ir::{BinaryOp, DType, Dim, Tensor};

/// Folds per-channel constant `Mul`/`Add` into a convolution with constant weights.
pub struct ConvAffine;

/// The per-output-channel values of constant `c` broadcast against a conv output of `oc`
/// channels and rank `rank`, when it varies along the channel axis only.
fn per_channel(c: &Tensor, oc: usize, rank: usize) -> Option<Vec<f64>> {
    if c.dtype() != DType::F32 || c.shape.len() > rank {
        return None;
    }
    let mut dims = vec![1usize; rank - c.shape.len()];
    dims.extend(&c.shape);
    let ok = dims.iter().enumerate().all(|(i, &d)| d == 1 || (i == 1 && d == oc));
    if !ok {
        return None;
    }
    let v = c.to_f64();
    Some(if v.len() == oc { v } else { vec![v[0]; oc] })
}

/// A match: the conv's op and operands, the per-channel values, and whether they scale.
struct Affine {
    conv: KOp,
    operands: Vec<Id>,
    values: Vec<f64>,
    scale: bool,
}

impl ConvAffine {
    /// Matches at class `id` (cheap: no weights are computed).
    fn candidates(&self, eg: &KGraph, id: Id) -> Vec<Affine> {
        let mut out = Vec::new();
        if has_node(eg, id, |k| matches!(k, KOp::Conv(..))) {
            return out; // folded already
        }
        for (op, k) in nodes_where(eg, id, |k| {
            matches!(
                k,
                KOp::Binary(BinaryKey(BinaryOp::Mul)) | KOp::Binary(BinaryKey(BinaryOp::Add))
            )
        }) {
            let scale = op == KOp::Binary(BinaryKey(BinaryOp::Mul));
            for (conv, c) in [(k[0], k[1]), (k[1], k[0])] {
                // Only when the scaled value is the conv's sole use: otherwise both convs run.
                if eg[conv].parents().any(|p| eg.find(p) != eg.find(id)) {
                    continue;
                }
                let Some(ct) = const_of(eg, c) else { continue };
                for (cop, ck) in nodes_where(eg, conv, |k| matches!(k, KOp::Conv(..))) {
                    let ty = &eg[conv].data.ty;
                    let Some(oc) = ty.shape.get(1).and_then(Dim::as_const) else {
                        continue;
                    };
                    let oc = oc as usize;
                    let Some(values) = per_channel(ct, oc, ty.rank()) else {
                        continue;
                    };
                    let Some(w) = const_of(eg, ck[1]) else { continue };
                    let bias_ok = ck
                        .get(2)
                        .is_none_or(|&b| const_of(eg, b).is_some_and(|t| t.numel() == oc));
                    if w.dtype() != DType::F32 || w.numel() % oc != 0 || !bias_ok {
                        continue;
                    }
                    out.push(Affine {
                        conv: cop,
                        operands: ck,
                        values,
                        scale,
                    });
                }
            }
        }
        out
    }
}

impl Rule for ConvAffine {
    fn name(&self) -> &'static str {
        "conv-affine-fold"
    }

    fn matches(&self, eg: &KGraph, id: Id) -> bool {
        !self.candidates(eg, id).is_empty()
    }

    fn find(&self, eg: &KGraph, id: Id) -> Vec<Plan> {
        let mut out = Vec::new();
        for a in self.candidates(eg, id) {
            let (v, ck) = (&a.values, &a.operands);
            let oc = v.len();
            let Some(w) = const_of(eg, ck[1]) else { continue };
            let bias = match ck.get(2).and_then(|&b| const_of(eg, b)) {
                Some(t) => t.to_f64(),
                None => vec![0.0; oc],
            };
            let (w2, b2) = if a.scale {
                let per = w.numel() / oc;
                let wv: Vec<f64> = w.to_f64().iter().enumerate().map(|(i, x)| x * v[i / per]).collect();
                let bv: Vec<f64> = bias.iter().zip(v).map(|(b, s)| b * s).collect();
                (Plan::Tensor(Tensor::from_f64(DType::F32, w.shape.clone(), &wv)), bv)
            } else {
                (Plan::Class(ck[1]), bias.iter().zip(v).map(|(b, t)| b + t).collect())
            };
            let b2 = Plan::Tensor(Tensor::from_f64(DType::F32, vec![oc], &b2));
            out.push(Plan::Node(a.conv.clone(), vec![Plan::Class(ck[0]), w2, b2]));
        }
        out
    }
}
