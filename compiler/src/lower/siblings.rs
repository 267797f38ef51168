//! Horizontal fusion: sibling kernels in one dispatch.
//!
//! Kernel formation fuses along data flow (producers into consumers). Two kernels that do not
//! depend on each other still cost a dispatch each, which dominates a small model's decode step
//! (an LLM layer appends its K and V rows to the cache in two tiny kernels over one projection
//! output). Here an injective or state-write kernel absorbs a later one when both
//!
//! - cover the same number of elements (one launch shape: the same grid and bounds check), and
//!   either both or neither write an f16 state (whose threads write pairs of elements),
//! - read at least one common value (siblings; unrelated kernels are left alone),
//! - are independent: the later one reads nothing that the earlier one, or any kernel between
//!   them, writes, and no kernel between them reads or writes a state it appends to, so moving
//!   it up to the earlier one's place changes no value,
//! - fit in the target's storage-buffer limit together (union of inputs plus one binding per
//!   output).
//!
//! The result is one [`KernelBody::Parts`] kernel: each part keeps its own expression and output
//! binding. The rule looks only at kernel bodies, so any frontend's graph of the same shape
//! (ONNX included) gets the same kernel.

use super::{Expr, KernelBody, KernelDraft};
use kiln_ir::{Dim, Graph, NodeId, Op};

/// How many later kernels a kernel looks at for siblings (they are adjacent in practice: both
/// users of one producer, formed one after the other).
pub const SIBLING_WINDOW: usize = 8;

/// Merges sibling kernels of `kernels` (in dispatch order) into kernels of several parts;
/// `max_bindings` is the target's storage-buffer limit per kernel (inputs plus outputs).
pub fn merge_siblings(g: &Graph, kernels: Vec<KernelDraft>, max_bindings: usize) -> Vec<KernelDraft> {
    let mut slots: Vec<Option<KernelDraft>> = kernels.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len());
    for i in 0..slots.len() {
        let Some(mut group) = slots[i].take() else { continue };
        if let Some(n) = launch_size(&group) {
            let mut parts = vec![group.clone()];
            let mut inputs = group.inputs.clone();
            for j in i + 1..(i + 1 + SIBLING_WINDOW).min(slots.len()) {
                let Some(cand) = slots[j].as_ref() else { continue };
                if launch_size(cand).as_ref() != Some(&n) {
                    continue;
                }
                let shares = cand.inputs.iter().any(|x| inputs.contains(x));
                let fresh = cand.inputs.iter().filter(|x| !inputs.contains(x)).count();
                if !shares || inputs.len() + fresh + parts.len() + 1 > max_bindings {
                    continue;
                }
                // What runs before the candidate today but after it once merged: the group
                // and the kernels between.
                let passed = parts.iter().chain(slots[i + 1..j].iter().flatten());
                if !independent(g, cand, passed) {
                    continue;
                }
                let cand = slots[j].take().expect("checked above");
                for &x in &cand.inputs {
                    if !inputs.contains(&x) {
                        inputs.push(x);
                    }
                }
                parts.push(cand);
            }
            if parts.len() > 1 {
                log::debug!(
                    "siblings: {} kernels in one dispatch: {}",
                    parts.len(),
                    parts.iter().map(|p| p.label.as_str()).collect::<Vec<_>>().join(" | ")
                );
                group = join(parts, inputs);
            }
        }
        out.push(group);
    }
    out
}

/// The element count of a kernel that may be a part (a plain injective or state-write kernel),
/// and whether it writes f16 pairs (a thread per two elements: an f16 state's packed words).
pub(super) fn launch_size(d: &KernelDraft) -> Option<(Dim, bool)> {
    match &d.body {
        KernelBody::Injective { shape, .. } if d.operands.is_empty() && d.epilogue.is_none() => {
            Some((Dim::product(shape), false))
        }
        KernelBody::StateWrite { shape, dtype, .. } if d.epilogue.is_none() && *dtype != kiln_ir::DType::Bool => {
            Some((Dim::product(shape), *dtype == kiln_ir::DType::F16))
        }
        _ => None,
    }
}

/// The value whose buffer a kernel input lives in (reshapes are views).
pub(super) fn base(g: &Graph, id: NodeId) -> NodeId {
    crate::plan::root(g, id)
}

/// The state a node appends to, if it is a state append.
fn state_of(g: &Graph, id: NodeId) -> Option<&str> {
    match &g.node(base(g, id)).op {
        Op::StateAppend { state, .. } => Some(state.as_str()),
        _ => None,
    }
}

/// Whether `cand` may run before the kernels `passed` (which run before it today): it reads
/// nothing they write and shares no state with them.
fn independent<'a>(g: &Graph, cand: &KernelDraft, passed: impl Iterator<Item = &'a KernelDraft>) -> bool {
    let reads: Vec<NodeId> = cand.inputs.iter().map(|&x| base(g, x)).collect();
    let states: Vec<&str> = cand
        .outputs()
        .into_iter()
        .chain(cand.inputs.iter().copied())
        .filter_map(|x| state_of(g, x))
        .collect();
    for k in passed {
        let written = k.outputs();
        if written.iter().any(|w| reads.contains(w)) {
            return false;
        }
        let touches = written.iter().chain(&k.inputs).filter_map(|&x| state_of(g, x));
        if touches.into_iter().any(|s| states.contains(&s)) {
            return false;
        }
    }
    true
}

/// One kernel of several parts over the union `inputs`: each part's input slots are renumbered
/// into the union and its operand made explicit.
pub(super) fn join(parts: Vec<KernelDraft>, inputs: Vec<NodeId>) -> KernelDraft {
    let label = parts.iter().map(|p| p.label.as_str()).collect::<Vec<_>>().join(" | ");
    let output = parts[0].output;
    let parts = parts
        .into_iter()
        .map(|p| {
            let map: Vec<usize> = p
                .inputs
                .iter()
                .map(|x| inputs.iter().position(|y| y == x).expect("union of the parts' inputs"))
                .collect();
            let operand = renumber(&p.operand(0), &map);
            let body = match p.body {
                KernelBody::Injective { shape, dtype, expr } => KernelBody::Injective {
                    shape,
                    dtype,
                    expr: renumber(&expr, &map),
                },
                other => other,
            };
            let operands = match body {
                KernelBody::StateWrite { .. } => vec![operand],
                _ => Vec::new(),
            };
            KernelDraft {
                label: p.label,
                inputs: inputs.clone(),
                output: p.output,
                body,
                operands,
                epilogue: None,
            }
        })
        .collect();
    KernelDraft::plain(label, inputs, output, KernelBody::Parts(parts))
}

/// `e` with every input slot `s` replaced by `map[s]`.
pub(super) fn renumber(e: &Expr, map: &[usize]) -> Expr {
    e.rewrite(&mut |n| match n {
        Expr::Read(s, a) => Expr::Read(map[s], a),
        Expr::LoadAt(s, ix, shape) => Expr::LoadAt(map[s], ix, shape),
        Expr::LoadIdx(s, ix) => Expr::LoadIdx(map[s], ix),
        n => n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{BinaryOp, DType, TensorType, UnaryOp};

    fn input(g: &mut Graph, name: &str, shape: &[usize]) -> NodeId {
        g.add_input(name, TensorType::new(DType::F32, shape))
    }

    fn kernels(g: &Graph) -> Vec<KernelDraft> {
        crate::lower::fuse::form_kernels(g, 2, 7).expect("forms")
    }

    #[test]
    fn two_users_of_one_value_with_one_size_share_a_dispatch() {
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[4, 8]);
        let y = input(&mut g, "y", &[4, 8]);
        let a = g.add("a", Op::Unary(UnaryOp::Exp), &[x]).unwrap();
        let b = g.add("b", Op::Binary(BinaryOp::Mul), &[x, y]).unwrap();
        g.add_output("a", a);
        g.add_output("b", b);
        let k = kernels(&g);
        assert_eq!(k.len(), 1, "{k:#?}");
        let mut outs = k[0].outputs();
        outs.sort();
        assert_eq!(outs, vec![a, b]);
        let slot = |v: NodeId| k[0].inputs.iter().position(|&i| i == v).expect("an input");
        let KernelBody::Parts(parts) = &k[0].body else {
            panic!("{:?}", k[0].body)
        };
        // Each part reads its values at their slots of the union.
        let part = |o: NodeId| match &parts.iter().find(|p| p.output == o).expect("a part").body {
            KernelBody::Injective { expr, .. } => expr.clone(),
            other => panic!("{other:?}"),
        };
        assert!(part(b).reads_slot(slot(x)) && part(b).reads_slot(slot(y)));
        assert!(part(a).reads_slot(slot(x)) && !part(a).reads_slot(slot(y)));
    }

    #[test]
    fn a_kernel_reading_its_sibling_or_of_another_size_stays_apart() {
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[4, 8]);
        let a = g.add("a", Op::Unary(UnaryOp::Exp), &[x]).unwrap();
        let b = g.add("b", Op::Binary(BinaryOp::Add), &[x, a]).unwrap();
        let sum = Op::Reduce {
            op: kiln_ir::ReduceOp::Sum,
            axes: vec![1],
            keep_dims: true,
        };
        let c = g.add("c", sum, &[x]).unwrap();
        let d = g.add("d", Op::Unary(UnaryOp::Neg), &[c]).unwrap();
        g.add_output("a", a);
        g.add_output("b", b);
        g.add_output("d", d);
        let k = kernels(&g);
        assert!(k.iter().all(|d| !matches!(d.body, KernelBody::Parts(_))), "{k:#?}");
    }
}
