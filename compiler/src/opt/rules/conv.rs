//! A convolution followed by a per-channel constant scale or shift (a BatchNorm that the ONNX
//! frontend lowered to `Mul`/`Add`, or an explicit one) folded into the convolution's weights
//! and bias: `conv(x, w, b) * s = conv(x, w*s, b*s)`, `conv(x, w, b) + t = conv(x, w, b + t)`.

use crate::opt::analysis::{const_of, KGraph};
use crate::opt::lang::{BinaryKey, KOp};
use crate::opt::rule::{nodes_where, Plan, Rule};
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

impl Rule for ConvAffine {
    fn name(&self) -> &'static str {
        "conv-affine-fold"
    }

    fn find(&self, eg: &KGraph, id: Id) -> Vec<Plan> {
        let mut out = Vec::new();
        for (op, k) in nodes_where(eg, id, |k| {
            matches!(
                k,
                KOp::Binary(BinaryKey(BinaryOp::Mul)) | KOp::Binary(BinaryKey(BinaryOp::Add))
            )
        }) {
            let is_mul = op == KOp::Binary(BinaryKey(BinaryOp::Mul));
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
                    let Some(v) = per_channel(ct, oc, ty.rank()) else {
                        continue;
                    };
                    let Some(w) = const_of(eg, ck[1]) else { continue };
                    let bias = match ck.get(2) {
                        Some(&b) => match const_of(eg, b) {
                            Some(t) if t.numel() == oc => t.to_f64(),
                            _ => continue,
                        },
                        None => vec![0.0; oc],
                    };
                    if w.dtype() != DType::F32 || w.numel() % oc != 0 {
                        continue;
                    }
                    let (w2, b2) = if is_mul {
                        let per = w.numel() / oc;
                        let wv: Vec<f64> = w.to_f64().iter().enumerate().map(|(i, x)| x * v[i / per]).collect();
                        let bv: Vec<f64> = bias.iter().zip(&v).map(|(b, s)| b * s).collect();
                        (Plan::Tensor(Tensor::from_f64(DType::F32, w.shape.clone(), &wv)), bv)
                    } else {
                        (Plan::Class(ck[1]), bias.iter().zip(&v).map(|(b, t)| b + t).collect())
                    };
                    let b2 = Plan::Tensor(Tensor::from_f64(DType::F32, vec![oc], &b2));
                    out.push(Plan::Node(cop.clone(), vec![Plan::Class(ck[0]), w2, b2]));
                }
            }
        }
        out
    }
}
