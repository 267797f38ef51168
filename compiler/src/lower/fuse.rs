//! Kernel formation: which nodes share a dispatch.
//!
//! At opt-level 0 every non-free node is its own kernel. From level 1, chains and trees of
//! elementwise nodes collapse into one injective kernel: a producer is absorbed into its
//! consumer when the consumer is its only user, it is not a graph output, and it has the
//! consumer group's output shape (so nothing is recomputed per element). Scalar constants are
//! inlined as literals. A group stops growing when another input would exceed the target's
//! storage-buffer limit, or at [`MAX_FUSED_NODES`] members (which bounds the depth of the fused
//! expression tree, so rendering it recursively cannot overflow the stack however long a chain
//! the model has).

use super::{broadcast_access, elementwise_expr, is_elementwise, is_free, lower_node, Expr, KernelBody, KernelDraft};
use crate::CompileError;
use kiln_ir::{Graph, NodeId, Op};
use std::collections::{HashMap, HashSet};

/// Most nodes fused into one kernel. Longer chains are split into several kernels; beyond a few
/// hundred ops per element a kernel gains nothing from more fusion.
pub const MAX_FUSED_NODES: usize = 256;

/// Forms kernels for the whole graph, in an order that respects data dependencies.
pub fn form_kernels(g: &Graph, opt_level: u8, max_inputs: usize) -> Result<Vec<KernelDraft>, CompileError> {
    form_kernels_with(g, opt_level, max_inputs, true)
}

/// [`form_kernels`], with `rounded_x_prologue` deciding whether a gated GEMV may normalize and
/// round its own x (`KernelBody::QGemm::quantize_x`; only GGUF's row layout has that form, so
/// `--weight-layout block-columns` turns it off).
pub fn form_kernels_with(
    g: &Graph,
    opt_level: u8,
    max_inputs: usize,
    rounded_x_prologue: bool,
) -> Result<Vec<KernelDraft>, CompileError> {
    let order = g.topo_order();
    if opt_level == 0 {
        return order
            .into_iter()
            .filter(|&id| !is_free(&g.node(id).op))
            .map(|id| lower_node(g, id))
            .collect();
    }
    if opt_level >= 2 {
        // Attention is one kernel at opt-level 3 at any size; at level 2 for a few query rows
        // (the decode schedule, split over keys) and for a prompt over many or symbolic keys
        // (flash attention, the scores never stored) from anchor::MIN_FLASH_KEYS (128) keys:
        // shorter constant sequences stay two GEMMs and a softmax. Sibling injective kernels
        // of one element count then share a dispatch (super::siblings), and a decode step's
        // cache appends move into later kernels (super::defer).
        let kernels = super::anchor::form_kernels(g, max_inputs, opt_level >= 3, rounded_x_prologue)?;
        let kernels = super::siblings::merge_siblings(g, kernels, max_inputs + 1);
        return Ok(super::defer::defer_appends(g, kernels, max_inputs + 1));
    }
    let outputs: HashSet<NodeId> = g.outputs().iter().map(|o| o.1).collect();
    let mut absorbed: HashSet<NodeId> = HashSet::new();
    let mut groups: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for &id in order.iter().rev() {
        if absorbed.contains(&id) || !is_elementwise(&g.node(id).op) {
            continue;
        }
        let root_shape = &g.node(id).ty.shape;
        let mut members = vec![id];
        let mut externals: HashSet<NodeId> = HashSet::new();
        let mut work = vec![id];
        while let Some(m) = work.pop() {
            for p in g.inputs_of(m) {
                let pn = g.node(p);
                if members.contains(&p) || is_scalar_const(g, p) {
                    continue;
                }
                let can_absorb = is_elementwise(&pn.op)
                    && members.len() < MAX_FUSED_NODES
                    && !outputs.contains(&p)
                    && !absorbed.contains(&p)
                    && g.users_of(p).len() == 1
                    && pn.ty.shape == *root_shape;
                if can_absorb {
                    // Absorbing p replaces it (as an external) by its own inputs.
                    let mut trial = externals.clone();
                    trial.remove(&p);
                    for q in g.inputs_of(p) {
                        if !is_scalar_const(g, q) && !members.contains(&q) {
                            trial.insert(q);
                        }
                    }
                    if trial.len() <= max_inputs {
                        members.push(p);
                        externals = trial;
                        work.push(p);
                        continue;
                    }
                }
                externals.insert(p);
            }
        }
        for &m in &members[1..] {
            absorbed.insert(m);
        }
        groups.insert(id, members);
    }
    let mut kernels = Vec::new();
    for id in order {
        let op = &g.node(id).op;
        if is_free(op) || absorbed.contains(&id) {
            continue;
        }
        match groups.get(&id) {
            Some(members) => kernels.push(fused_kernel(g, id, members)),
            None => kernels.push(lower_node(g, id)?),
        }
    }
    Ok(kernels)
}

fn is_scalar_const(g: &Graph, id: NodeId) -> bool {
    matches!(&g.node(id).op, Op::Constant(t) if t.numel() == 1)
}

/// Builds the injective kernel for a fused group rooted at `root`.
fn fused_kernel(g: &Graph, root: NodeId, members: &[NodeId]) -> KernelDraft {
    let mut inputs: Vec<NodeId> = Vec::new();
    let expr = member_expr(g, root, members, &g.node(root).ty.shape, &mut inputs);
    let mut names: Vec<&str> = members.iter().rev().map(|&m| g.node(m).name.as_str()).collect();
    names.dedup();
    let n = g.node(root);
    KernelDraft::plain(
        names.join("+"),
        inputs,
        root,
        KernelBody::Injective {
            shape: n.ty.shape.clone(),
            dtype: n.ty.dtype,
            expr,
        },
    )
}

fn member_expr(
    g: &Graph,
    id: NodeId,
    members: &[NodeId],
    root_shape: &[kiln_ir::Dim],
    inputs: &mut Vec<NodeId>,
) -> Expr {
    let n = g.node(id);
    let ins = g.inputs_of(id);
    let dtypes: Vec<_> = ins.iter().map(|&i| g.node(i).ty.dtype).collect();
    let args = ins
        .iter()
        .map(|&p| {
            if members.contains(&p) {
                member_expr(g, p, members, root_shape, inputs)
            } else if let Op::Constant(t) = &g.node(p).op {
                if t.numel() == 1 {
                    return Expr::Lit(t.to_f64()[0], t.dtype());
                }
                load(g, p, root_shape, inputs)
            } else {
                load(g, p, root_shape, inputs)
            }
        })
        .collect();
    elementwise_expr(&n.op, args, &dtypes)
}

fn load(g: &Graph, p: NodeId, root_shape: &[kiln_ir::Dim], inputs: &mut Vec<NodeId>) -> Expr {
    let slot = inputs.iter().position(|&i| i == p).unwrap_or_else(|| {
        inputs.push(p);
        inputs.len() - 1
    });
    Expr::Read(slot, Box::new(broadcast_access(&g.node(p).ty.shape, root_shape)))
}
