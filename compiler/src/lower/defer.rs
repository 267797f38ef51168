//! Deferred state appends: a decode step's KV-cache append leaves its own dispatch.
//!
//! A language model's decode step appends one row to each layer's K and V caches
//! ([`kiln_ir::Op::StateAppend`]) in a kernel of its own (the layer's K and V appends are one
//! [`KernelBody::Parts`] kernel, [`super::siblings`]), which the layer's attention then reads.
//! Each dispatch costs a few microseconds whatever it does, so that kernel is moved into
//! another one:
//!
//! 1. **Read-through.** The appended value at element `e` of the state is the update's element
//!    `e - offset` where `e`'s row is at least the append's first row, else the old state
//!    (the op's definition). A decode attention that reads the value is rewritten to read it
//!    that way: each load of the state becomes `select(row >= past, update(e - offset),
//!    state[e])`, with the update's expression (RoPE, the f16 rounding: whatever the append
//!    kernel computes) inlined over the attention's own inputs. The result is exactly the value
//!    the interpreter reads back from the state, and the attention no longer needs the new row
//!    in the state: it reads the state only below `past` (the decode template hoists the
//!    update's one row out of its key loop, `codegen`).
//! 2. **Deferral.** Nothing else in the step reads the new row, so the append kernel may run
//!    later: it becomes extra parts of a later injective or state-write kernel (the next
//!    layer's append kernel), or the tail of a later decode GEMV (workgroups after the GEMV's
//!    own: the layer's O projection, `KernelBody::QGemm::tail`), when the kernels it moves
//!    past neither write what it reads nor touch its states (other than the rewritten
//!    attentions) and both fit the storage-binding limit together. The memory plan keeps what it reads alive until then (lifetimes follow
//!    dispatch order).
//!
//! No state is bound read-only and writable in one dispatch: the attention only reads the
//! state, and the host kernel writes it without reading it. A kernel with no later host stays
//! where it is and its readers are left as they were. Only kernel formation changes, not the
//! graph, so the interpreter stays the oracle.

use super::siblings::{base, join, launch_size, renumber};
use super::{Expr, KernelBody, KernelDraft};
use kiln_ir::{BinaryOp, DType, Dim, Graph, NodeId, Op};

/// Moves single-row state-append kernels of `kernels` (in dispatch order) into later kernels;
/// `max_bindings` is the target's storage-buffer limit per kernel (inputs plus outputs).
pub fn defer_appends(g: &Graph, kernels: Vec<KernelDraft>, max_bindings: usize) -> Vec<KernelDraft> {
    let mut slots: Vec<Option<KernelDraft>> = kernels.into_iter().map(Some).collect();
    let mut hosts = vec![false; slots.len()];
    for i in 0..slots.len() {
        if hosts[i] {
            continue;
        }
        let Some(writes) = slots[i].as_ref().and_then(|k| single_row_appends(g, k)) else {
            continue;
        };
        let Some((j, rewritten)) = find_host(g, &slots, &hosts, i, &writes, max_bindings) else {
            continue;
        };
        let k = slots[i].take().expect("checked above");
        for (r, d) in rewritten {
            slots[r] = Some(d);
        }
        let host = slots[j].take().expect("a host kernel");
        if matches!(host.body, KernelBody::QGemm { .. }) {
            slots[j] = Some(gemv_with_tail(host, k));
            hosts[j] = true;
            continue;
        }
        let mut parts = flatten(host);
        let mut inputs = parts[0].inputs.clone();
        for p in &parts {
            merge_inputs(&mut inputs, &p.inputs);
        }
        for p in flatten(k) {
            merge_inputs(&mut inputs, &p.inputs);
            parts.push(p);
        }
        log::debug!(
            "defer: {} kernels in one dispatch: {}",
            parts.len(),
            parts.iter().map(|p| p.label.as_str()).collect::<Vec<_>>().join(" | ")
        );
        slots[j] = Some(join(parts, inputs));
        hosts[j] = true;
    }
    slots.into_iter().flatten().collect()
}

/// The appended states of a kernel whose every part writes one row of a state (a decode step's
/// cache append): `(value, update part)` pairs.
fn single_row_appends<'a>(g: &Graph, k: &'a KernelDraft) -> Option<Vec<(NodeId, &'a KernelDraft)>> {
    let parts: Vec<&KernelDraft> = match &k.body {
        KernelBody::Parts(parts) => parts.iter().collect(),
        _ => vec![k],
    };
    parts
        .into_iter()
        .map(|p| match (&p.body, &g.node(p.output).op) {
            (KernelBody::StateWrite { shape, .. }, Op::StateAppend { .. })
                if shape.first() == Some(&Dim::c(1)) && p.epilogue.is_none() =>
            {
                Some((p.output, p))
            }
            _ => None,
        })
        .collect()
}

/// A kernel's parts, each a plain draft over its own inputs.
fn flatten(k: KernelDraft) -> Vec<KernelDraft> {
    match k.body {
        KernelBody::Parts(parts) => parts,
        _ => vec![k],
    }
}

fn merge_inputs(into: &mut Vec<NodeId>, from: &[NodeId]) {
    for &x in from {
        if !into.contains(&x) {
            into.push(x);
        }
    }
}

/// The first kernel after `i` that can take kernel `i`'s appends `writes` as extra parts, with
/// the kernels between that read the appended values rewritten to read through (see the
/// module doc): `(host, [(kernel, rewritten draft)])`.
fn find_host(
    g: &Graph,
    slots: &[Option<KernelDraft>],
    hosts: &[bool],
    i: usize,
    writes: &[(NodeId, &KernelDraft)],
    max_bindings: usize,
) -> Option<(usize, Vec<(usize, KernelDraft)>)> {
    let k = slots[i].as_ref()?;
    let reads: Vec<NodeId> = k.inputs.iter().map(|&x| base(g, x)).collect();
    let states: Vec<NodeId> = writes.iter().map(|w| w.0).collect();
    let mut rewritten = Vec::new();
    for j in i + 1..slots.len() {
        let Some(c) = slots[j].as_ref() else { continue };
        let written = c.outputs();
        if written.iter().any(|w| reads.contains(w) || states.contains(w)) {
            return None;
        }
        let touched: Vec<NodeId> = c
            .inputs
            .iter()
            .map(|&x| base(g, x))
            .filter(|x| states.contains(x))
            .collect();
        if touched.is_empty() && !hosts[j] && can_host(c, k, max_bindings) {
            return Some((j, rewritten));
        }
        if !touched.is_empty() {
            rewritten.push((j, read_through(g, c, writes, max_bindings)?));
        }
    }
    None
}

/// GEMV `host` with kernel `k`'s parts as its tail (`QGemm::tail`): run by workgroups after
/// the GEMV's own, over the host's inputs followed by theirs.
fn gemv_with_tail(mut host: KernelDraft, k: KernelDraft) -> KernelDraft {
    let mut inputs = host.inputs.clone();
    merge_inputs(&mut inputs, &k.inputs);
    let label = format!("{} | {}", host.label, k.label);
    let KernelBody::Parts(parts) = join(flatten(k), inputs.clone()).body else {
        unreachable!("join makes a kernel of parts")
    };
    log::debug!("defer: {} parts as the tail of {}", parts.len(), host.label);
    let KernelBody::QGemm { tail, .. } = &mut host.body else {
        unreachable!("a GEMV host")
    };
    tail.extend(parts);
    host.inputs = inputs;
    host.label = label;
    host
}

/// Whether kernel `c` can take kernel `k`'s parts: both injective or state writes, of thread
/// counts one launch covers (equal, or constants: each part checks its own bound), within the
/// storage-binding limit together; or `c` a decode GEMV (one row of x) and `k`'s parts of
/// constant thread counts that read none of its inputs (they run in workgroups of their own
/// after the GEMV's, `QGemm::tail`).
fn can_host(c: &KernelDraft, k: &KernelDraft, max_bindings: usize) -> bool {
    if let KernelBody::QGemm { x, .. } = &c.body {
        let one_row = Dim::product(&x[..x.len().saturating_sub(1)]).as_const() == Some(1);
        let parts = flatten(k.clone());
        let constant = parts.iter().all(|p| {
            launch_size(p).is_some() && crate::codegen::part_threads(p).is_some_and(|n| n.as_const().is_some())
        });
        let apart = k.inputs.iter().all(|i| !c.inputs.contains(i));
        return one_row
            && constant
            && apart
            && c.inputs.len() + k.inputs.len() + c.outputs().len() + k.outputs().len() <= max_bindings;
    }
    let parts = |d: &KernelDraft| match &d.body {
        KernelBody::Parts(parts) => parts.clone(),
        _ => vec![d.clone()],
    };
    let all: Vec<KernelDraft> = parts(c).into_iter().chain(parts(k)).collect();
    if !all.iter().all(|p| launch_size(p).is_some()) {
        return false;
    }
    let Some(counts) = all
        .iter()
        .map(crate::codegen::part_threads)
        .collect::<Option<Vec<Dim>>>()
    else {
        return false;
    };
    if crate::codegen::launch_threads(&counts).is_none() {
        return false;
    }
    let mut inputs = c.inputs.clone();
    merge_inputs(&mut inputs, &k.inputs);
    inputs.len() + c.outputs().len() + k.outputs().len() <= max_bindings
}

/// A decode attention `c` that reads the values of `writes` through: each load of one becomes
/// the value the append defines, with the update inlined (see the module doc). `None` when `c`
/// is not a decode attention, reads a value elsewhere than in its K and V operands or in
/// another form than a load at an index, or the update's inputs would exceed the binding limit.
fn read_through(
    g: &Graph,
    c: &KernelDraft,
    writes: &[(NodeId, &KernelDraft)],
    max_bindings: usize,
) -> Option<KernelDraft> {
    let KernelBody::Attention { sq, .. } = &c.body else {
        return None;
    };
    crate::codegen::decode_rows(sq)?;
    let mut d = c.clone();
    d.operands = (0..3).map(|o| c.operand(o)).collect();
    for (value, part) in writes {
        let Some(slot) = c.inputs.iter().position(|&x| base(g, x) == *value) else {
            continue;
        };
        if c.inputs.iter().filter(|&&x| base(g, x) == *value).count() > 1
            || reads_slot_other_than_loads(&d.operands[0], slot)
            || d.epilogue
                .as_ref()
                .is_some_and(|e| reads_slot_other_than_loads(e, slot) || e.reads_slot(slot))
            || d.operands[0].reads_slot(slot)
            || reads_slot_other_than_loads(&d.operands[1], slot)
            || reads_slot_other_than_loads(&d.operands[2], slot)
        {
            return None;
        }
        let Op::StateAppend {
            offset, state_shape, ..
        } = &g.node(*value).op
        else {
            return None;
        };
        let row = Dim::c(state_shape[1..].iter().product::<usize>() as i64);
        let KernelBody::StateWrite { offset: first, .. } = &part.body else {
            return None;
        };
        // The update over the attention's slots.
        let map: Vec<usize> = part
            .inputs
            .iter()
            .map(|&x| match d.inputs.iter().position(|&y| y == x) {
                Some(s) => s,
                None => {
                    d.inputs.push(x);
                    d.inputs.len() - 1
                }
            })
            .collect();
        let update = renumber(&part.operand(0), &map);
        for o in 1..3 {
            d.operands[o] = d.operands[o].rewrite(&mut |x| match x {
                Expr::LoadIdx(s, idx) if s == slot => {
                    // Row of element idx (a coordinate the decode template can recognize).
                    let at_row = Expr::CoordOf {
                        index: idx.clone(),
                        stride: row.clone(),
                        dim: None,
                    };
                    let fresh = Expr::Binary(
                        BinaryOp::GreaterEqual,
                        Box::new(at_row),
                        Box::new(Expr::Dim(offset.clone())),
                        DType::I32,
                    );
                    let within = Expr::Binary(
                        BinaryOp::Sub,
                        idx.clone(),
                        Box::new(Expr::Dim(first.clone())),
                        DType::I32,
                    );
                    let new = update.rewrite(&mut |u| match u {
                        Expr::Index => within.clone(),
                        u => u,
                    });
                    Expr::Select(Box::new(fresh), Box::new(new), Box::new(Expr::LoadIdx(s, idx)))
                }
                x => x,
            });
        }
    }
    (d.inputs.len() + d.outputs().len() <= max_bindings).then_some(d)
}

/// Whether `e` reads input slot `s` other than by [`Expr::LoadIdx`] (a linear index).
fn reads_slot_other_than_loads(e: &Expr, s: usize) -> bool {
    match e {
        Expr::Read(x, _) | Expr::LoadAt(x, ..) if *x == s => true,
        e => e.children().into_iter().any(|c| reads_slot_other_than_loads(c, s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{TensorType, UnaryOp};

    /// `x [1, 2, 8]` appended (as f16) to a state of 16 rows; returns the append's value.
    fn append(g: &mut Graph) -> (NodeId, NodeId) {
        let x = g.add_input("x", TensorType::new(DType::F32, &[1, 2, 8]));
        let h = g.add("x_store", Op::Cast(DType::F16), &[x]).unwrap();
        let op = Op::StateAppend {
            state: "cache".into(),
            state_shape: vec![16, 2, 8],
            offset: Dim::sym("past"),
        };
        (x, g.add("cache", op, &[h]).unwrap())
    }

    fn kernels(g: &Graph) -> Vec<KernelDraft> {
        crate::lower::fuse::form_kernels(g, 2, 7).expect("forms")
    }

    #[test]
    fn a_one_row_append_moves_into_a_later_injective_kernel_of_another_count() {
        let mut g = Graph::new();
        let (x, s) = append(&mut g);
        let n = g.add("neg", Op::Unary(UnaryOp::Neg), &[x]).unwrap();
        g.add_output("cache", s);
        g.add_output("neg", n);
        // The two kernels are independent: put the append first.
        let mut k = crate::lower::anchor::form_kernels(&g, 7, false, true).expect("forms");
        k.sort_by_key(|d| !d.outputs().contains(&s));
        assert_eq!(k.len(), 2, "{k:#?}");
        let k = defer_appends(&g, k, 8);
        assert_eq!(k.len(), 1, "{k:#?}");
        let KernelBody::Parts(parts) = &k[0].body else {
            panic!("{:?}", k[0].body)
        };
        assert_eq!(k[0].outputs(), vec![n, s], "the host's part first");
        let counts: Vec<Dim> = parts.iter().map(|p| crate::codegen::part_threads(p).unwrap()).collect();
        assert_eq!(counts, vec![Dim::c(16), Dim::c(8)], "16 elements, 8 f16 words");
    }

    #[test]
    fn a_one_row_append_becomes_the_tail_of_a_later_decode_gemv() {
        let mut g = Graph::new();
        let (x, s) = append(&mut g);
        // A one-row quantized projection of another input, after the append.
        let (n, k) = (8, 32);
        let h = g.add_input("h", TensorType::new(DType::F32, &[1, k]));
        let words = kiln_ir::quant::packed_words(kiln_ir::BlockType::Q8_0, n, k).unwrap();
        let w = g.add_const(
            "w",
            kiln_ir::Tensor {
                shape: vec![words],
                data: kiln_ir::TensorData::U32(vec![0; words]),
            },
        );
        let block = kiln_ir::BlockType::Q8_0;
        let y = g.add("proj", Op::QMatMul { block, n, k }, &[h, w]).unwrap();
        g.add_output("cache", s);
        g.add_output("y", y);
        let mut k = crate::lower::anchor::form_kernels(&g, 7, false, true).expect("forms");
        k.sort_by_key(|d| !d.outputs().contains(&s));
        assert_eq!(k.len(), 2, "{k:#?}");
        // Too few bindings for both (GEMV: 2 inputs + 1 output; append: 1 + 1): apart.
        assert_eq!(defer_appends(&g, k.clone(), 4).len(), 2);
        let k = defer_appends(&g, k, 5);
        assert_eq!(k.len(), 1, "{k:#?}");
        let KernelBody::QGemm { tail, .. } = &k[0].body else {
            panic!("{:?}", k[0].body)
        };
        assert_eq!(k[0].outputs(), vec![y, s], "the GEMV's output first");
        assert_eq!(k[0].inputs, vec![h, w, x], "the tail's inputs after the GEMV's");
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].inputs, k[0].inputs, "a part over the host's slots");
    }

    #[test]
    fn an_append_whose_value_a_kernel_reads_stays_before_it() {
        let mut g = Graph::new();
        let (x, s) = append(&mut g);
        let f = g.add("cache_f32", Op::Cast(DType::F32), &[s]).unwrap();
        let sq = g.add("squared", Op::Binary(kiln_ir::BinaryOp::Mul), &[f, f]).unwrap();
        let n = g.add("neg", Op::Unary(UnaryOp::Neg), &[x]).unwrap();
        g.add_output("squared", sq);
        g.add_output("neg", n);
        let k = kernels(&g);
        let writer = k.iter().position(|d| d.outputs().contains(&s)).expect("the append");
        let reader = k.iter().position(|d| d.output == sq).expect("the reader");
        assert!(writer < reader, "{k:#?}");
        assert!(k.iter().all(|d| !matches!(d.body, KernelBody::Parts(_))), "{k:#?}");
    }
}
