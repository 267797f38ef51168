//! Constant folding during lowering: a node whose inputs are all constants is evaluated with the
//! reference interpreter and replaced by its value.

use kiln_ir::{interp, Graph, IrError, NodeId, Op, Tensor};
use std::collections::HashMap;

/// Results may grow past the inputs' total size by at most this many elements (so a constant
/// `Expand` to a large shape stays a cheap broadcast instead of becoming a large weight).
const GROWTH_LIMIT: usize = 1 << 16;

/// Evaluates node `id` (already in `g`) if every input is a constant and the result is not much
/// larger than the inputs; `None` leaves the node as it is.
pub(crate) fn try_fold(g: &Graph, id: NodeId, ins: &[NodeId]) -> Result<Option<Tensor>, IrError> {
    let consts: Option<Vec<&Tensor>> = ins
        .iter()
        .map(|&i| match &g.node(i).op {
            Op::Constant(t) => Some(t),
            _ => None,
        })
        .collect();
    let Some(consts) = consts else {
        return Ok(None);
    };
    if ins.is_empty() {
        return Ok(None);
    }
    let node = g.node(id);
    let Some(out_shape) = node.ty.const_shape() else {
        return Ok(None);
    };
    let in_total: usize = consts.iter().map(|t| t.numel()).sum();
    let out_total = out_shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if out_total.is_none_or(|n| n > in_total + GROWTH_LIMIT) {
        return Ok(None);
    }
    let mut tiny = Graph::new();
    let tiny_ins: Vec<NodeId> = consts
        .iter()
        .enumerate()
        .map(|(k, t)| tiny.add_const(&format!("c{k}"), (*t).clone()))
        .collect();
    let out = tiny.add(&node.name, node.op.clone(), &tiny_ins)?;
    tiny.add_output("out", out);
    let mut vals = interp::evaluate(&tiny, &HashMap::new())?;
    Ok(vals.remove("out"))
}
