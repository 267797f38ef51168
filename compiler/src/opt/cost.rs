//! The extraction cost model: estimated seconds on a device profile.
//!
//! The cost of an expression is the sum over the kernels it will become (tree cost: a shared
//! operand is counted once per use, egg's greedy extraction) of
//! `dispatch + max(bytes moved / bandwidth, flops / peak)`, from a
//! [`kiln_schedules::PerfProfile`]. It follows opt-level 2's kernel formation:
//! - GEMM and convolution anchors are kernels that read their operands and write their
//!   output; injective consumers fuse into them as epilogues;
//! - reductions, softmax, layer/RMS norm, arg-reduce, top-k and scatter are kernels whose
//!   injective producers fuse into their input; an injective op that reads such a result
//!   starts a new injective kernel (they have no epilogue slot), which pays a dispatch and
//!   its traffic;
//! - other injective ops fuse into their consumer: the intermediate is never materialized and
//!   costs only its arithmetic; reshapes are views; constants and inputs are free.

use super::analysis::{numel_estimate, KGraph};
use super::lang::{KNode, KOp};
use egg::{CostFunction, Id, Language};
use kiln_schedules::PerfProfile;
use std::cmp::Ordering;
use std::collections::HashMap;

/// The estimated cost of an expression.
#[derive(Clone, Debug)]
pub struct Cost {
    /// Seconds.
    pub seconds: f64,
    /// The value is the output of a kernel without an epilogue slot: an injective consumer
    /// cannot fuse into it.
    pub closed: bool,
    /// Seconds of this node's own kernel work plus its operands' own work (one level): the
    /// tie-break when tree costs are equal to rounding. A tree cost counts a shared operand
    /// once per use, so it grows exponentially with depth where a value has several users
    /// (a residual stream read by its norm and its add); 30 transformer layers in, the
    /// difference between two forms of one node is below an f64 ulp of the total.
    pub local: f64,
    /// Seconds of this node's own work.
    pub own: f64,
}

/// Relative difference under which two tree costs count as equal (f64 rounding of deep sums).
const SAME_COST: f64 = 1e-9;

impl Cost {
    fn ordering(&self, o: &Self) -> Option<Ordering> {
        let scale = self.seconds.abs().max(o.seconds.abs());
        if self.seconds.is_finite() && o.seconds.is_finite() && (self.seconds - o.seconds).abs() <= SAME_COST * scale {
            return self.local.partial_cmp(&o.local);
        }
        self.seconds.partial_cmp(&o.seconds)
    }
}

impl PartialEq for Cost {
    fn eq(&self, o: &Self) -> bool {
        self.ordering(o) == Some(Ordering::Equal)
    }
}

impl PartialOrd for Cost {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        self.ordering(o)
    }
}

/// The cost function the extractor ([`super::extract::Extractor`]) calls.
pub struct KernelCost<'a> {
    /// The e-graph (for the types of a node's operands and result).
    pub eg: &'a KGraph,
    /// Device figures.
    pub profile: &'a PerfProfile,
    /// Value assumed for each symbolic dim.
    pub symbol_guess: i64,
    /// Estimated element count of each (canonical) class, computed once: evaluating a
    /// symbolic shape builds a symbol table, and every e-node asks about its operands.
    numel: HashMap<Id, f64>,
}

/// How kernel formation treats an op.
enum Role {
    /// No work (inputs, constants, views).
    Free,
    /// Fuses into its consumer.
    Fused,
    /// A kernel with an epilogue slot.
    Gemm,
    /// A kernel without an epilogue slot.
    Closed,
}

fn role(op: &KOp) -> Role {
    match op {
        KOp::Input(_) | KOp::Const(_) | KOp::Reshape(_) => Role::Free,
        KOp::MatMul | KOp::QMatMul(..) | KOp::Conv(..) => Role::Gemm,
        KOp::Reduce { .. }
        | KOp::ArgReduce(..)
        | KOp::Softmax(..)
        | KOp::LayerNorm(..)
        | KOp::RmsNorm(..)
        | KOp::TopK(..)
        | KOp::ScatterNd(_)
        | KOp::Sample
        | KOp::QGather(..)
        | KOp::QuantizeQ8 => Role::Closed,
        _ => Role::Fused,
    }
}

impl<'a> KernelCost<'a> {
    /// The cost model for `eg` on `profile`, with `symbol_guess` for every symbolic dim.
    pub fn new(eg: &'a KGraph, profile: &'a PerfProfile, symbol_guess: i64) -> Self {
        KernelCost {
            eg,
            profile,
            symbol_guess,
            numel: HashMap::new(),
        }
    }

    /// Estimated elements of class `id`'s value (cached).
    fn class_numel(&mut self, id: Id) -> f64 {
        let id = self.eg.find(id);
        let (eg, guess) = (self.eg, self.symbol_guess);
        *self
            .numel
            .entry(id)
            .or_insert_with(|| numel_estimate(&eg[id].data.ty, guess))
    }

    fn bytes(&mut self, id: Id) -> f64 {
        // Storage is 32-bit (as `bytes_estimate`).
        self.class_numel(id) * 4.0
    }

    /// Multiply-adds ×2 of a GEMM or convolution producing `out` elements.
    fn anchor_flops(&self, n: &KNode, out: f64) -> f64 {
        let ty = |i: usize| &self.eg[n.children[i]].data.ty;
        let k = match &n.op {
            KOp::MatMul => {
                let a = ty(0);
                a.shape
                    .last()
                    .map_or(1.0, |d| super::analysis::dim_estimate(d, self.symbol_guess))
            }
            KOp::Conv(..) => {
                let w = ty(1);
                numel_estimate(w, self.symbol_guess)
                    / w.shape
                        .first()
                        .map_or(1.0, |d| super::analysis::dim_estimate(d, self.symbol_guess))
                        .max(1.0)
            }
            KOp::QMatMul(_, _, k) => *k as f64,
            _ => 1.0,
        };
        2.0 * out * k
    }
}

impl CostFunction<KNode> for KernelCost<'_> {
    type Cost = Cost;

    fn cost<C>(&mut self, n: &KNode, mut costs: C) -> Cost
    where
        C: FnMut(Id) -> Cost,
    {
        let class = self.eg.lookup(n.clone());
        if class.is_some_and(|id| n.children().contains(&id)) {
            // A node that reads its own class (e.g. the transpose of a tensor of unit dims,
            // equal to the tensor) can never be extracted: it would be its own operand. The
            // tie-break below compares nearly equal trees by their top nodes' own work, which
            // could otherwise prefer it to the class's real node and extract a cycle.
            return Cost {
                seconds: f64::INFINITY,
                closed: false,
                local: f64::INFINITY,
                own: f64::INFINITY,
            };
        }
        let kids: Vec<Cost> = n.children().iter().map(|&c| costs(c)).collect();
        let below: f64 = kids.iter().map(|c| c.seconds).sum();
        let out_elems = match class {
            Some(id) => Some(self.class_numel(id)),
            None => super::analysis::infer_type(self.eg, &n.op, &n.children)
                .ok()
                .map(|ty| numel_estimate(&ty, self.symbol_guess)),
        };
        let Some(out_elems) = out_elems else {
            return Cost {
                seconds: f64::INFINITY,
                closed: false,
                local: f64::INFINITY,
                own: f64::INFINITY,
            };
        };
        let out_bytes = out_elems * 4.0;
        let in_bytes: f64 = n.children().iter().map(|&c| self.bytes(c)).sum();
        let p = self.profile;
        // A tiny per-node charge, so that of two equally fast forms the one with fewer ops wins.
        let tie = 1e-15;
        let (own, closed) = match role(&n.op) {
            Role::Free => (tie, matches!(n.op, KOp::Reshape(_)) && kids.iter().any(|c| c.closed)),
            Role::Fused => {
                let arith = out_elems / p.peak_flops;
                if kids.iter().any(|c| c.closed) {
                    (p.kernel_seconds(in_bytes + out_bytes, out_elems) + tie, false)
                } else {
                    (arith + tie, false)
                }
            }
            Role::Gemm => (
                p.kernel_seconds(in_bytes + out_bytes, self.anchor_flops(n, out_elems)),
                false,
            ),
            Role::Closed => {
                let elems_in = n.children().first().map_or(0.0, |&c| self.class_numel(c));
                (p.kernel_seconds(in_bytes + out_bytes, 4.0 * elems_in), true)
            }
        };
        Cost {
            seconds: below + own,
            closed,
            local: own + kids.iter().map(|c| c.own).sum::<f64>(),
            own,
        }
    }
}
