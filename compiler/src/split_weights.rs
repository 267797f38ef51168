//! Weight splitting: a constant larger than the target's `maxStorageBufferBindingSize` cannot
//! be bound as one storage buffer (128 MiB for `webgpu-default`), so the consumer is split
//! into consumers of column blocks that each fit, and their results are concatenated:
//!
//! - `MatMul(a, w)` with a constant `w: [K, N]` becomes `MatMul(a, w[:, j0..j1])` per block of
//!   columns, concatenated along the last axis (a classic CNN's `25088 x 4096` FC layer);
//! - `Gather(table, ids)` on axis 0 of a constant `table: [V, D, ...]` becomes one gather per
//!   block of `D`, concatenated along the output axis that `D` becomes (an embedding table).
//!
//! Concatenations take at most [`FAN_IN`] inputs each (a tree above that), so no kernel binds
//! more buffers than a split consumer did. Any other reader of a too-large constant is left as
//! it is, and the limit check after planning reports it.

use crate::error::CompileError;
use kiln_ir::{Graph, NodeId, Op, Tensor};

/// Most inputs of one concatenation the split adds.
const FAN_IN: usize = 4;

/// Bytes of a constant on the GPU (storage is 32-bit per element in v1).
fn stored_bytes(t: &Tensor) -> u64 {
    t.numel() as u64 * 4
}

/// Splits every `MatMul` and `Gather` that reads a constant larger than `limit` bytes (see the
/// module docs); `target` names the limits profile in errors. Returns how many consumers were
/// split. Dead nodes are left for the caller's
/// `remove_dead`.
pub fn split_large_weights(g: &mut Graph, limit: u64, target: &str) -> Result<usize, CompileError> {
    let mut split = 0;
    for id in g.topo_order() {
        let Op::Constant(t) = &g.node(id).op else {
            continue;
        };
        if stored_bytes(t) <= limit || t.shape.len() < 2 {
            continue;
        }
        let t = t.clone();
        for user in g.users_of(id) {
            let ins = g.inputs_of(user);
            let (col_axis, out_axis) = match &g.node(user).op {
                Op::MatMul if t.shape.len() == 2 && ins.get(1) == Some(&id) && ins[0] != id => {
                    (1, g.node(user).ty.rank() - 1)
                }
                Op::Gather { axis: 0 } if ins.first() == Some(&id) && ins.get(1) != Some(&id) => {
                    (1, g.node(ins[1]).ty.rank())
                }
                _ => continue,
            };
            let blocks = column_blocks(&t, col_axis, limit).ok_or_else(|| CompileError::Limits {
                node: g.node(user).name.clone(),
                target: target.to_string(),
                msg: format!(
                    "its weight {:?} is too large to split: one column of it exceeds maxStorageBufferBindingSize = {limit}",
                    t.shape
                ),
            })?;
            let name = g.node(user).name.clone();
            let op = g.node(user).op.clone();
            let mut parts = Vec::with_capacity(blocks.len());
            for (b, (j0, j1)) in blocks.into_iter().enumerate() {
                let w = g.add_const(&format!("{name}/weight{b}"), columns(&t, col_axis, j0, j1));
                let new_ins: Vec<NodeId> = ins.iter().map(|&i| if i == id { w } else { i }).collect();
                parts.push(g.add(&format!("{name}/part{b}"), op.clone(), &new_ins)?);
            }
            let joined = concat_tree(g, &name, parts, out_axis)?;
            g.replace_uses(user, joined);
            split += 1;
            log::info!("weight splitting: '{name}' reads {:?} in column blocks", t.shape);
        }
    }
    Ok(split)
}

/// [`split_large_weights`] at the target's `maxStorageBufferBindingSize`, then removes the
/// nodes the split left unused.
pub fn split_for_target(g: &mut Graph, target: &kiln_schedules::DeviceLimits) -> Result<(), CompileError> {
    if split_large_weights(g, target.max_storage_buffer_binding_size, &target.name)? > 0 {
        g.remove_dead();
    }
    Ok(())
}

/// Column ranges `[j0, j1)` along `axis` whose blocks each fit in `limit` bytes; `None` when
/// one column alone does not fit.
fn column_blocks(t: &Tensor, axis: usize, limit: u64) -> Option<Vec<(usize, usize)>> {
    let cols = t.shape[axis];
    let per_col = stored_bytes(t) / cols.max(1) as u64;
    let per_block = usize::try_from(limit / per_col.max(1)).ok()?.min(cols);
    if per_block == 0 {
        return None;
    }
    Some(
        (0..cols)
            .step_by(per_block)
            .map(|j| (j, (j + per_block).min(cols)))
            .collect(),
    )
}

/// `t[.., j0..j1, ..]` along `axis`, as a new constant.
fn columns(t: &Tensor, axis: usize, j0: usize, j1: usize) -> Tensor {
    let bytes = t.to_le_bytes();
    let elem = bytes.len() / t.numel().max(1);
    let outer: usize = t.shape[..axis].iter().product();
    let inner: usize = t.shape[axis + 1..].iter().product();
    let cols = t.shape[axis];
    let mut out = Vec::with_capacity(outer * (j1 - j0) * inner * elem);
    for o in 0..outer {
        let start = (o * cols + j0) * inner * elem;
        out.extend_from_slice(&bytes[start..start + (j1 - j0) * inner * elem]);
    }
    let mut shape = t.shape.clone();
    shape[axis] = j1 - j0;
    Tensor::from_le_bytes(t.dtype(), shape, &out).expect("a slice of a valid tensor is valid")
}

/// Concatenates `parts` along `axis` with at most [`FAN_IN`] inputs per `Concat`.
fn concat_tree(g: &mut Graph, name: &str, mut parts: Vec<NodeId>, axis: usize) -> Result<NodeId, CompileError> {
    let mut level = 0;
    while parts.len() > 1 {
        let mut next = Vec::new();
        for (k, chunk) in parts.chunks(FAN_IN).enumerate() {
            next.push(if chunk.len() == 1 {
                chunk[0]
            } else {
                g.add(&format!("{name}/concat{level}.{k}"), Op::Concat { axis }, chunk)?
            });
        }
        parts = next;
        level += 1;
    }
    Ok(parts[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{interp, DType, TensorType};
    use std::collections::HashMap;

    fn values(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect()
    }

    /// `y = x @ w` and `e = gather(table, ids)` with a 1,000-byte limit: both split into blocks,
    /// and the interpreter gives the same outputs as before.
    #[test]
    fn split_consumers_compute_the_same_values() {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[3, 20]));
        let ids = g.add_input("ids", TensorType::new(DType::I32, &[2, 2]));
        let w = g.add_const("w", Tensor::f32(vec![20, 30], values(600)));
        let table = g.add_const("table", Tensor::f32(vec![7, 50], values(350)));
        let y = g.add("fc", Op::MatMul, &[x, w]).unwrap();
        let e = g.add("embed", Op::Gather { axis: 0 }, &[table, ids]).unwrap();
        g.add_output("y", y);
        g.add_output("e", e);
        let inputs = HashMap::from([
            ("x".to_string(), Tensor::f32(vec![3, 20], values(60))),
            ("ids".to_string(), Tensor::i32(vec![2, 2], vec![0, 6, 3, 3])),
        ]);
        let want = interp::evaluate(&g, &inputs).unwrap();
        let mut s = g.clone();
        assert_eq!(split_large_weights(&mut s, 1000, "test").unwrap(), 2);
        s.remove_dead();
        // 2,400 bytes of w in blocks of 12 columns (960 bytes); 1,400 of table in blocks of 35.
        for id in s.topo_order() {
            if let Op::Constant(t) = &s.node(id).op {
                assert!(stored_bytes(t) <= 1000, "{:?} left whole", t.shape);
            }
        }
        let got = interp::evaluate(&s, &inputs).unwrap();
        for k in ["y", "e"] {
            assert_eq!(got[k].shape, want[k].shape);
            assert_eq!(got[k].to_f32(), want[k].to_f32(), "{k}");
        }
    }

    #[test]
    fn a_column_larger_than_the_limit_is_an_error_naming_the_node() {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[1, 300]));
        let w = g.add_const("w", Tensor::f32(vec![300, 2], values(600)));
        let y = g.add("fc", Op::MatMul, &[x, w]).unwrap();
        g.add_output("y", y);
        let err = split_large_weights(&mut g, 1000, "test").unwrap_err().to_string();
        assert!(err.contains("fc") && err.contains("too large to split"), "{err}");
    }
}
