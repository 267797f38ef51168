//! Sibling matmuls merged: MatMuls that read the same activation with constant 2-D weights of
//! the same K (attention's Q, K and V projections; an MLP's gate and up projections) become one
//! MatMul with the weights concatenated along N, followed by slices. When every sibling adds a
//! constant bias of its own width, the biases are concatenated too, so the merged GEMM carries
//! one bias epilogue. One GEMM of width ΣN replaces several dispatches and reads the activation
//! once. A SwiGLU's gate and up projections (`silu(gate) * up`, both quantized) merge the same
//! way, gate rows first, so that kernel formation can compute the pair in one decode GEMV
//! (`anchor::Former::gated_pair_root`).

use crate::CompileError;
use kiln_ir::{BinaryOp, DType, Dim, Graph, NodeId, Op, SliceAxis, Tensor, UnaryOp};

/// A constant operand as a tensor.
fn constant(g: &Graph, id: NodeId) -> Option<&Tensor> {
    match &g.node(id).op {
        Op::Constant(t) => Some(t),
        _ => None,
    }
}

/// The constant bias a sibling's only user adds: `(add node, bias tensor)`, when the bias is
/// `[n]`-shaped f32.
fn bias_of(g: &Graph, mm: NodeId, n: usize, outputs: &[NodeId]) -> Option<(NodeId, Tensor)> {
    if outputs.contains(&mm) {
        return None;
    }
    let users = g.users_of(mm);
    let [add] = users[..] else { return None };
    if !matches!(g.node(add).op, Op::Binary(BinaryOp::Add)) || g.node(add).ty.shape != g.node(mm).ty.shape {
        return None;
    }
    let ins = g.inputs_of(add);
    let other = if ins[0] == mm { ins[1] } else { ins[0] };
    if other == mm {
        return None;
    }
    let t = constant(g, other)?;
    let dims = t.shape.clone();
    (t.dtype() == DType::F32 && dims.iter().rev().skip(1).all(|&d| d == 1) && dims.last() == Some(&n))
        .then(|| (add, t.clone()))
}

/// Merges sibling MatMuls; returns how many groups were merged.
pub fn merge_sibling_matmuls(g: &mut Graph) -> Result<usize, CompileError> {
    let mut merged = 0;
    let outputs: Vec<NodeId> = g.outputs().iter().map(|o| o.1).collect();
    for a in g.topo_order() {
        // Siblings: MatMul users of `a` as the left operand, with [K, N] f32 constant weights.
        let mut sibs: Vec<(NodeId, usize, usize)> = Vec::new(); // (matmul, K, N)
        for u in g.users_of(a) {
            if !matches!(g.node(u).op, Op::MatMul) {
                continue;
            }
            let ins = g.inputs_of(u);
            if ins[0] != a || ins[1] == a || g.node(a).ty.rank() < 2 {
                continue;
            }
            if let Some(w) = constant(g, ins[1]) {
                if w.shape.len() == 2 && w.dtype() == DType::F32 {
                    sibs.push((u, w.shape[0], w.shape[1]));
                }
            }
        }
        let Some(&(_, k, _)) = sibs.first() else { continue };
        sibs.retain(|s| s.1 == k);
        if sibs.len() < 2 {
            continue;
        }
        let total: usize = sibs.iter().map(|s| s.2).sum();
        let mut w = vec![0.0f64; k * total];
        let mut off = 0;
        for &(u, _, n) in &sibs {
            let t = constant(g, g.inputs_of(u)[1]).expect("checked above").to_f64();
            for r in 0..k {
                w[r * total + off..r * total + off + n].copy_from_slice(&t[r * n..(r + 1) * n]);
            }
            off += n;
        }
        let biases: Option<Vec<(NodeId, Tensor)>> = sibs.iter().map(|&(u, _, n)| bias_of(g, u, n, &outputs)).collect();
        let name = g.node(sibs[0].0).name.clone() + "_merged";
        let wc = g.add_const(
            &format!("{name}.weight"),
            Tensor::from_f64(DType::F32, vec![k, total], &w),
        );
        let mm = g.add(&name, Op::MatMul, &[a, wc])?;
        let widths: Vec<(NodeId, usize)> = sibs.iter().map(|&(u, _, n)| (u, n)).collect();
        split_merged(g, &name, mm, total, &widths, biases.as_deref())?;
        log::debug!(
            "rewrite: merged {} sibling matmuls of {} into {name} (N = {total}{})",
            sibs.len(),
            g.node(a).name,
            if biases.is_some() { ", biases merged" } else { "" }
        );
        merged += 1;
    }
    g.remove_dead();
    Ok(merged)
}

/// True when a sibling's value only moves on to its consumers (reshape, slice, transpose,
/// state append, ...): merging then costs no epilogue. A sibling read by an elementwise op
/// (SwiGLU's gate) keeps that op as its kernel's epilogue when it stays apart, and merged it
/// would need a kernel of its own, so such groups are left alone.
fn only_moved_on(g: &Graph, m: NodeId, outputs: &[NodeId]) -> bool {
    !outputs.contains(&m)
        && g.users_of(m).iter().all(|&u| {
            !matches!(
                g.node(u).op,
                Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast(_) | Op::QMatMul { .. } | Op::MatMul
            )
        })
}

/// The SwiGLU `act = (gate * sigmoid(gate)) * up` (products in either order) of the values
/// `a` and `b` (in either role): `Some((gate, up, act))` when each intermediate, `a` and `b`
/// are used only inside it and none is a graph output.
pub(crate) fn swiglu(g: &Graph, a: NodeId, b: NodeId, outputs: &[NodeId]) -> Option<(NodeId, NodeId, NodeId)> {
    let other = |m: NodeId, x: NodeId| {
        let ins = g.inputs_of(m);
        (ins.len() == 2 && matches!(g.node(m).op, Op::Binary(BinaryOp::Mul)))
            .then(|| {
                if ins[0] == x {
                    Some(ins[1])
                } else if ins[1] == x {
                    Some(ins[0])
                } else {
                    None
                }
            })
            .flatten()
    };
    let single = |n: NodeId| {
        let users = g.users_of(n);
        (users.len() == 1 && !outputs.contains(&n)).then(|| users[0])
    };
    [(a, b), (b, a)].into_iter().find_map(|(gate, up)| {
        let act = single(up)?;
        let silu = other(act, up)?;
        if silu == up || outputs.contains(&gate) {
            return None;
        }
        let sig = other(silu, gate)?;
        let mut users = g.users_of(gate);
        users.sort();
        let mut want = vec![sig, silu];
        want.sort();
        (matches!(g.node(sig).op, Op::Unary(UnaryOp::Sigmoid))
            && g.inputs_of(sig) == [gate]
            && single(sig) == Some(silu)
            && single(silu) == Some(act)
            && users == want
            && g.node(gate).ty == g.node(up).ty)
            .then_some((gate, up, act))
    })
}

/// Merges sibling quantized matmuls: [`Op::QMatMul`]s of the same activation whose packed
/// weights have the same block type and K (Q/K/V) become one QMatMul over the rows of all of
/// them, followed by slices. A packed weight is its rows' blocks in row order, so the merged
/// weight is the siblings' bytes one after another, repacked into words at compile time.
/// When every sibling adds a bias of its own width (Qwen2), the biases are concatenated into
/// one add; otherwise every sibling's users must only move its value on (see
/// [`only_moved_on`]), or the two siblings are a SwiGLU's gate and up ([`swiglu`]; merged gate
/// first). Returns how many groups were merged.
pub fn merge_sibling_qmatmuls(g: &mut Graph) -> Result<usize, CompileError> {
    let mut merged = 0;
    let outputs: Vec<NodeId> = g.outputs().iter().map(|o| o.1).collect();
    for a in g.topo_order() {
        // (matmul, block, n, k) of QMatMul users of `a` with a constant packed weight.
        let mut all: Vec<(NodeId, kiln_ir::BlockType, usize, usize)> = Vec::new();
        for u in g.users_of(a) {
            let Op::QMatMul { block, n, k } = g.node(u).op else {
                continue;
            };
            let ins = g.inputs_of(u);
            if ins[0] == a && ins[1] != a && constant(g, ins[1]).is_some() {
                all.push((u, block, n, k));
            }
        }
        let mut groups: Vec<Vec<(NodeId, kiln_ir::BlockType, usize, usize)>> = Vec::new();
        for s in all {
            match groups.iter_mut().find(|gr| gr[0].1 == s.1 && gr[0].3 == s.3) {
                Some(gr) => gr.push(s),
                None => groups.push(vec![s]),
            }
        }
        for mut sibs in groups {
            if sibs.len() < 2 {
                continue;
            }
            let (block, k) = (sibs[0].1, sibs[0].3);
            let biases: Option<Vec<(NodeId, Tensor)>> =
                sibs.iter().map(|&(u, _, n, _)| bias_of(g, u, n, &outputs)).collect();
            if biases.is_none() && !sibs.iter().all(|s| only_moved_on(g, s.0, &outputs)) {
                let pair = match sibs[..] {
                    [a, b] => swiglu(g, a.0, b.0, &outputs),
                    _ => None,
                };
                let Some((gate, ..)) = pair else { continue };
                if sibs[0].0 != gate {
                    sibs.swap(0, 1);
                }
            }
            let total: usize = sibs.iter().map(|s| s.2).sum();
            let mut bytes = Vec::new();
            for &(u, _, n, _) in &sibs {
                let Some(Tensor {
                    data: kiln_ir::TensorData::U32(words),
                    ..
                }) = constant(g, g.inputs_of(u)[1])
                else {
                    return Err(CompileError::Internal("a QMatMul weight is not u32 words".into()));
                };
                let len = block
                    .bytes_for(n as u64 * k as u64)
                    .ok_or_else(|| CompileError::Internal(format!("{block} weight [{n}, {k}] has no byte size")))?
                    as usize;
                let wb = kiln_ir::quant::words_to_bytes(words);
                if wb.len() < len {
                    return Err(CompileError::Internal(format!(
                        "packed {block} weight [{n}, {k}] has {} bytes, needs {len}",
                        wb.len()
                    )));
                }
                bytes.extend_from_slice(&wb[..len]);
            }
            let packed = kiln_ir::quant::packed_tensor(block, total, k, &bytes)
                .ok_or_else(|| CompileError::Internal(format!("merged {block} weight [{total}, {k}] does not pack")))?;
            let name = g.node(sibs[0].0).name.clone() + "_merged";
            let wc = g.add_const(&format!("{name}.weight"), packed);
            let mm = g.add(&name, Op::QMatMul { block, n: total, k }, &[a, wc])?;
            let widths: Vec<(NodeId, usize)> = sibs.iter().map(|&(u, _, n, _)| (u, n)).collect();
            split_merged(g, &name, mm, total, &widths, biases.as_deref())?;
            log::debug!(
                "rewrite: merged {} sibling {block} qmatmuls of {} into {name} (N = {total}{})",
                sibs.len(),
                g.node(a).name,
                if biases.is_some() { ", biases merged" } else { "" }
            );
            merged += 1;
        }
    }
    g.remove_dead();
    Ok(merged)
}

/// Gives each sibling its columns of the merged product `mm` (`total` wide): the merged
/// biases are added first when every sibling had one (`biases`, in sibling order), and each
/// sibling's value (its bias add, if any) is replaced by a slice of its `widths` entry.
fn split_merged(
    g: &mut Graph,
    name: &str,
    mm: NodeId,
    total: usize,
    widths: &[(NodeId, usize)],
    biases: Option<&[(NodeId, Tensor)]>,
) -> Result<(), CompileError> {
    let (base, targets): (NodeId, Vec<NodeId>) = match biases {
        Some(bs) => {
            let data: Vec<f64> = bs.iter().flat_map(|(_, t)| t.to_f64()).collect();
            let bc = g.add_const(
                &format!("{name}.bias"),
                Tensor::from_f64(DType::F32, vec![total], &data),
            );
            let add = g.add(&format!("{name}.bias_add"), Op::Binary(BinaryOp::Add), &[mm, bc])?;
            (add, bs.iter().map(|b| b.0).collect())
        }
        None => (mm, widths.iter().map(|w| w.0).collect()),
    };
    let axis = g.node(base).ty.rank() - 1;
    let mut off = 0i64;
    for (&(_, n), &t) in widths.iter().zip(&targets) {
        let slice = SliceAxis {
            axis,
            start: off,
            end: off + n as i64,
            step: 1,
        };
        let tname = g.node(t).name.clone();
        let s = g.add(&format!("{tname}.slice"), Op::Slice { axes: vec![slice] }, &[base])?;
        debug_assert_eq!(g.node(s).ty.shape.last(), Some(&Dim::c(n as i64)));
        g.replace_uses(t, s);
        off += n as i64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::interp::evaluate as run;
    use kiln_ir::TensorType;

    fn weights(k: usize, n: usize, seed: f32) -> Tensor {
        Tensor::f32(vec![k, n], (0..k * n).map(|i| (i as f32 * 0.37 + seed).sin()).collect())
    }

    #[test]
    fn qkv_projections_with_biases_become_one_matmul_and_keep_their_values() {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[2, 3, 4]));
        let mut outs = Vec::new();
        for (i, n) in [5usize, 5, 3].into_iter().enumerate() {
            let w = g.add_const(&format!("w{i}"), weights(4, n, i as f32));
            let b = g.add_const(
                &format!("b{i}"),
                Tensor::f32(vec![n], (0..n).map(|j| j as f32 * 0.1).collect()),
            );
            let m = g.add(&format!("m{i}"), Op::MatMul, &[x, w]).unwrap();
            let a = g.add(&format!("a{i}"), Op::Binary(BinaryOp::Add), &[b, m]).unwrap();
            let r = g
                .add(&format!("r{i}"), Op::Unary(kiln_ir::UnaryOp::Relu), &[a])
                .unwrap();
            g.add_output(&format!("y{i}"), r);
            outs.push(r);
        }
        let xin = Tensor::f32(vec![2, 3, 4], (0..24).map(|i| i as f32 * 0.05 - 0.5).collect());
        let before = run(&g, &[("x".to_string(), xin.clone())].into_iter().collect()).unwrap();
        let mut h = g.clone();
        assert_eq!(merge_sibling_matmuls(&mut h).unwrap(), 1);
        let matmuls = h
            .topo_order()
            .into_iter()
            .filter(|&n| matches!(h.node(n).op, Op::MatMul))
            .count();
        assert_eq!(matmuls, 1);
        let adds = h
            .topo_order()
            .into_iter()
            .filter(|&n| matches!(h.node(n).op, Op::Binary(BinaryOp::Add)))
            .count();
        assert_eq!(adds, 1, "the three bias adds became one");
        let after = run(&h, &[("x".to_string(), xin)].into_iter().collect()).unwrap();
        for (k, v) in &before {
            let (a, b) = (v.to_f64(), after[k].to_f64());
            assert_eq!(v.shape, after[k].shape);
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-5, "{k}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn matmuls_with_different_k_or_activation_weights_are_left_alone() {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[3, 4]));
        let y = g.add_input("y", TensorType::new(DType::F32, &[4, 2]));
        let w = g.add_const("w", weights(4, 2, 0.0));
        let m0 = g.add("m0", Op::MatMul, &[x, w]).unwrap();
        let m1 = g.add("m1", Op::MatMul, &[x, y]).unwrap();
        g.add_output("a", m0);
        g.add_output("b", m1);
        assert_eq!(merge_sibling_matmuls(&mut g).unwrap(), 0);
    }

    /// A `[n, k]` weight quantized as `block`, as the packed u32 constant QMatMul reads.
    fn packed(block: kiln_ir::BlockType, n: usize, k: usize, seed: f32) -> Tensor {
        let v: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.61 + seed).sin()).collect();
        let bytes = kiln_ir::quant::quantize(block, &v).unwrap();
        kiln_ir::quant::packed_tensor(block, n, k, &bytes).unwrap()
    }

    fn same_outputs(g: &Graph, h: &Graph, x: &Tensor) {
        let ins: std::collections::HashMap<String, Tensor> = [("x".to_string(), x.clone())].into_iter().collect();
        let (before, after) = (run(g, &ins).unwrap(), run(h, &ins).unwrap());
        for (k, v) in &before {
            assert_eq!(v.shape, after[k].shape, "{k}");
            for (a, b) in v.to_f64().iter().zip(after[k].to_f64()) {
                assert!((a - b).abs() <= 1e-5 * a.abs() + 1e-6, "{k}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn quantized_qkv_projections_become_one_qmatmul_per_block_type() {
        use kiln_ir::BlockType;
        // Q and K in q4_0 (18-byte blocks: rows are not word-aligned), V in q8_0 and one
        // more q8_0 sibling: two groups, each merged by concatenating the packed bytes.
        let (k, rows) = (64, 3);
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[rows, k]));
        let specs = [
            (BlockType::Q4_0, 5usize),
            (BlockType::Q4_0, 3),
            (BlockType::Q8_0, 4),
            (BlockType::Q8_0, 2),
        ];
        for (i, &(block, n)) in specs.iter().enumerate() {
            let w = g.add_const(&format!("w{i}"), packed(block, n, k, i as f32));
            let m = g.add(&format!("m{i}"), Op::QMatMul { block, n, k }, &[x, w]).unwrap();
            let r = g
                .add(
                    &format!("heads{i}"),
                    Op::Reshape {
                        shape: vec![Dim::c(rows as i64), Dim::c(n as i64), Dim::c(1)],
                    },
                    &[m],
                )
                .unwrap();
            g.add_output(&format!("y{i}"), r);
        }
        let mut h = g.clone();
        assert_eq!(merge_sibling_qmatmuls(&mut h).unwrap(), 2);
        let qmms: Vec<(BlockType, usize)> = h
            .topo_order()
            .into_iter()
            .filter_map(|n| match h.node(n).op {
                Op::QMatMul { block, n, .. } => Some((block, n)),
                _ => None,
            })
            .collect();
        assert_eq!(qmms.len(), 2, "{qmms:?}");
        assert!(qmms.contains(&(BlockType::Q4_0, 8)) && qmms.contains(&(BlockType::Q8_0, 6)));
        let xin = Tensor::f32(vec![rows, k], (0..rows * k).map(|i| (i as f32 * 0.13).cos()).collect());
        same_outputs(&g, &h, &xin);
    }

    #[test]
    fn quantized_siblings_read_by_elementwise_ops_are_left_alone() {
        // SwiGLU: the gate's activation is its kernel's epilogue while it stays apart.
        use kiln_ir::BlockType;
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[2, 32]));
        let wg = g.add_const("wg", packed(BlockType::Q4_1, 4, 32, 0.0));
        let wu = g.add_const("wu", packed(BlockType::Q4_1, 4, 32, 1.0));
        let q = |block| Op::QMatMul { block, n: 4, k: 32 };
        let gate = g.add("gate", q(BlockType::Q4_1), &[x, wg]).unwrap();
        let up = g.add("up", q(BlockType::Q4_1), &[x, wu]).unwrap();
        let s = g.add("sig", Op::Unary(kiln_ir::UnaryOp::Sigmoid), &[gate]).unwrap();
        let y = g.add("mul", Op::Binary(BinaryOp::Mul), &[s, up]).unwrap();
        g.add_output("y", y);
        assert_eq!(merge_sibling_qmatmuls(&mut g).unwrap(), 0);
    }

    #[test]
    fn a_swiglu_gate_and_up_merge_gate_first_and_keep_their_values() {
        // up created first and the products written in the other order: the merged weight
        // still has the gate's rows first (what the paired GEMV kernel reads).
        use kiln_ir::BlockType;
        let (k, n) = (64, 5);
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[1, k]));
        let q = |block| Op::QMatMul { block, n, k };
        let wu = g.add_const("wu", packed(BlockType::Q8_0, n, k, 1.0));
        let up = g.add("up", q(BlockType::Q8_0), &[x, wu]).unwrap();
        let wg = g.add_const("wg", packed(BlockType::Q8_0, n, k, 2.0));
        let gate = g.add("gate", q(BlockType::Q8_0), &[x, wg]).unwrap();
        let s = g.add("sig", Op::Unary(UnaryOp::Sigmoid), &[gate]).unwrap();
        let silu = g.add("silu", Op::Binary(BinaryOp::Mul), &[s, gate]).unwrap();
        let y = g.add("act", Op::Binary(BinaryOp::Mul), &[up, silu]).unwrap();
        g.add_output("y", y);
        let mut h = g.clone();
        assert_eq!(merge_sibling_qmatmuls(&mut h).unwrap(), 1);
        let merged: Vec<NodeId> = h
            .topo_order()
            .into_iter()
            .filter(|&m| matches!(h.node(m).op, Op::QMatMul { n: 10, .. }))
            .collect();
        assert_eq!(merged.len(), 1);
        let gate_half = h
            .topo_order()
            .into_iter()
            .find(|&m| h.node(m).name == "gate.slice")
            .expect("the gate's slice");
        match &h.node(gate_half).op {
            Op::Slice { axes } => assert_eq!((axes[0].start, axes[0].end), (0, n as i64)),
            op => panic!("{op:?}"),
        }
        let xin = Tensor::f32(vec![1, k], (0..k).map(|i| (i as f32 * 0.29).sin()).collect());
        same_outputs(&g, &h, &xin);
        // The same products with the sigmoid also read elsewhere are no SwiGLU of the pair.
        let mut o = g.clone();
        o.add_output("s", s);
        assert_eq!(merge_sibling_qmatmuls(&mut o).unwrap(), 0);
    }
}
