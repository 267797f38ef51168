//! Which read-only f16 values stay f16 on the GPU.
//!
//! Kiln computes f16 tensors in f32 and stores them as f32 words, so every kernel reads one
//! value per word. A graph input or a weight of dtype f16 whose only readers are tiled GEMMs,
//! as a plain operand (no prologue, not read by the epilogue), is instead stored as f16 pairs
//! in 32-bit words ([`crate::codegen::Slots::packed`]): half the bytes to upload and to keep,
//! and half the bytes the GEMM streams from memory. The cooperative-matrix variant reads such
//! an operand eight values per 16-byte load, which is what lifts it toward the tensor cores'
//! rate (an f32 operand costs twice the bytes, and `array<vec4<f16>>` loads ran slower than f32
//! on the H200: docs/performance.md, twenty-fourth session); the f32 kernels unpack the pairs
//! with `unpack2x16float`, which every WebGPU adapter has.
//!
//! Only values no kernel writes qualify (inputs and constants, not graph outputs), so no kernel
//! ever stores pairs here; f16 states have their own packed form.

use crate::lower::{Expr, KernelBody, KernelDraft};
use crate::plan::root;
use kiln_ir::{DType, Graph, NodeId, Op};
use kiln_schedules::Schedule;
use std::collections::{HashMap, HashSet};

/// The values stored as f16 pairs: f16 graph inputs and constants, not graph outputs, whose
/// every reading kernel is a GEMM with a tiled schedule (`schedules[i]` for `drafts[i]`, and
/// `fallbacks[i]`, the schedule it would take if its own could not be rendered) reading them
/// only as a plain operand.
pub fn half_values(
    g: &Graph,
    drafts: &[KernelDraft],
    schedules: &[Schedule],
    fallbacks: &[Schedule],
) -> HashSet<NodeId> {
    let outputs: HashSet<NodeId> = g.outputs().iter().map(|o| root(g, o.1)).collect();
    // Per value: whether every read seen so far is a plain tiled-GEMM operand.
    let mut ok: HashMap<NodeId, bool> = HashMap::new();
    for ((d, s), f) in drafts.iter().zip(schedules).zip(fallbacks) {
        for (slot, &i) in d.inputs.iter().enumerate() {
            let v = root(g, i);
            let node = g.node(v);
            let candidate = node.ty.dtype == DType::F16
                && (g.inputs().contains(&v) || matches!(node.op, Op::Constant(_)))
                && !outputs.contains(&v);
            if !candidate {
                continue;
            }
            let plain = plain_gemm_operand(d, slot) && matches!(s, Schedule::Gemm(_)) && matches!(f, Schedule::Gemm(_));
            *ok.entry(v).or_insert(true) &= plain;
        }
    }
    ok.into_iter().filter(|(_, ok)| *ok).map(|(v, _)| v).collect()
}

/// Whether input `slot` of `d` is read only as a plain operand of a float GEMM: operand 0 or 1
/// is exactly a load of the slot at the operand's own index, the other operand does not read
/// it, and neither does the epilogue.
fn plain_gemm_operand(d: &KernelDraft, slot: usize) -> bool {
    let KernelBody::Gemm { dtype, .. } = &d.body else {
        return false;
    };
    if !dtype.is_float() {
        return false;
    }
    let plain = |e: &Expr| matches!(e, Expr::LoadIdx(s, ix) if *s == slot && **ix == Expr::Index);
    let (a, b) = (d.operand(0), d.operand(1));
    let in_epilogue = d.epilogue.as_ref().is_some_and(|e| e.reads_slot(slot));
    !in_epilogue && ((plain(&a) && (plain(&b) || !b.reads_slot(slot))) || (plain(&b) && !a.reads_slot(slot)))
}

/// Bytes of a value of `numel` elements stored as f16 pairs (whole 32-bit words).
pub fn half_bytes(numel: usize) -> u64 {
    numel.div_ceil(2) as u64 * 4
}
