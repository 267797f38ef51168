//! Index inputs: graph inputs whose values are used as indices (a `Gather` or a packed table's
//! `QGather`, e.g. an embedding lookup of token ids).
//!
//! The GPU cannot report an out-of-range index; the kernel would read another tensor's memory
//! or zeros and return a plausible wrong answer. So the compiler records, for each such input,
//! the size of the axis it indexes ([`kiln_abi::IndexBound`]), and the runtime checks every
//! value before upload (`IoSpec::check_index_values`).

use kiln_abi::IndexBound;
use kiln_ir::{Graph, NodeId, Op};

/// The bound of graph input `input` if its values reach the indices operand of a `Gather` over
/// an axis of constant size (or of a `QGather`: the table's rows), through ops that keep values unchanged (reshape, transpose,
/// expand, integer casts). With several such uses the tightest bound wins.
pub fn index_bound(g: &Graph, input: NodeId) -> Option<IndexBound> {
    // Float inputs cast to indices are left alone: their values are not checked as integers.
    if !g.node(input).ty.dtype.is_int() {
        return None;
    }
    let mut best: Option<IndexBound> = None;
    let mut stack = vec![input];
    let mut seen = std::collections::HashSet::new();
    while let Some(v) = stack.pop() {
        if !seen.insert(v) {
            continue;
        }
        for u in g.users_of(v) {
            let node = g.node(u);
            match &node.op {
                Op::Reshape { .. } | Op::Transpose { .. } | Op::Expand { .. } => stack.push(u),
                Op::Cast(t) if t.is_int() => stack.push(u),
                Op::Gather { axis } => {
                    let ins = g.inputs_of(u);
                    if ins.get(1) != Some(&v) {
                        continue;
                    }
                    let Some(size) = g.node(ins[0]).ty.shape.get(*axis).and_then(|d| d.as_const()) else {
                        continue;
                    };
                    let Ok(bound) = u64::try_from(size) else { continue };
                    if best.as_ref().is_none_or(|b| bound < b.bound) {
                        best = Some(IndexBound {
                            bound,
                            negative: true,
                            used_by: node.name.clone(),
                        });
                    }
                }
                // A packed table's rows (indices are input 0).
                Op::QGather { n, .. } => {
                    if g.inputs_of(u).first() != Some(&v) {
                        continue;
                    }
                    let bound = *n as u64;
                    if best.as_ref().is_none_or(|b| bound < b.bound) {
                        best = Some(IndexBound {
                            bound,
                            negative: true,
                            used_by: node.name.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{DType, Dim, Tensor, TensorType};

    #[test]
    fn an_embedding_lookup_bounds_its_ids_input() {
        let mut g = Graph::new();
        let ids = g.add_input(
            "ids",
            TensorType {
                dtype: DType::I32,
                shape: vec![Dim::sym("batch"), Dim::sym("seq")],
            },
        );
        let other = g.add_input(
            "x",
            TensorType {
                dtype: DType::F32,
                shape: vec![Dim::c(3)],
            },
        );
        let table = g.add_const("table", Tensor::f32(vec![10, 4], vec![0.0; 40]));
        let small = g.add_const("small", Tensor::f32(vec![7, 4], vec![0.0; 28]));
        let flat = g
            .add(
                "flat",
                Op::Reshape {
                    shape: vec![Dim::sym("batch").mul(&Dim::sym("seq"))],
                },
                &[ids],
            )
            .unwrap();
        let e = g.add("embed", Op::Gather { axis: 0 }, &[table, flat]).unwrap();
        let e2 = g.add("embed_small", Op::Gather { axis: 0 }, &[small, ids]).unwrap();
        g.add_output("e", e);
        g.add_output("e2", e2);
        let as_ids = g.add("as_ids", Op::Cast(DType::I32), &[other]).unwrap();
        let e3 = g.add("embed_float", Op::Gather { axis: 0 }, &[table, as_ids]).unwrap();
        g.add_output("x", other);
        g.add_output("e3", e3);
        let b = index_bound(&g, ids).expect("ids index the tables");
        assert_eq!((b.bound, b.negative, b.used_by.as_str()), (7, true, "embed_small"));
        // A float input cast to indices is not an index input (its values are not integers).
        assert_eq!(index_bound(&g, other), None);
    }
}
