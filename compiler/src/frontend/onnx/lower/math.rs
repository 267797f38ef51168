//! Math ops composed from IR primitives, and small node-building helpers that the other lowering
//! files of this family (`attention.rs`, `loss.rs`, `gather.rs`) share.

use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, Dim, NodeId, Op, UnaryOp};

/// `a op b` (broadcasting).
pub(crate) fn bin(
    cx: &mut Ctx,
    n: &N,
    suffix: &str,
    op: BinaryOp,
    a: NodeId,
    b: NodeId,
) -> Result<NodeId, OnnxError> {
    cx.add(n, suffix, Op::Binary(op), &[a, b])
}

/// `op x`.
pub(crate) fn unary(
    cx: &mut Ctx,
    n: &N,
    suffix: &str,
    op: UnaryOp,
    x: NodeId,
) -> Result<NodeId, OnnxError> {
    cx.add(n, suffix, Op::Unary(op), &[x])
}

/// Reshape to `shape` (skipped when the shape is already that).
pub(crate) fn reshape(
    cx: &mut Ctx,
    n: &N,
    suffix: &str,
    x: NodeId,
    shape: Vec<Dim>,
) -> Result<NodeId, OnnxError> {
    if cx.ty(x).shape == shape {
        return Ok(x);
    }
    cx.add(n, suffix, Op::Reshape { shape }, &[x])
}

/// Transpose by `perm` (skipped for the identity permutation).
pub(crate) fn transpose(
    cx: &mut Ctx,
    n: &N,
    suffix: &str,
    x: NodeId,
    perm: Vec<usize>,
) -> Result<NodeId, OnnxError> {
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(x);
    }
    cx.add(n, suffix, Op::Transpose { perm }, &[x])
}
