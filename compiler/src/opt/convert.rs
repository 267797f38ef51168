//! Conversion between the IR graph and the e-graph: `Graph → KGraph` adds one e-node per IR
//! node; `KGraph → Graph` rebuilds a graph from the e-node an extractor chose in each needed
//! class, sharing each class's node among its users.

use super::analysis::{KAnalysis, KGraph};
use super::extract::Extractor;
use super::lang::{KNode, KOp};
use crate::CompileError;
use egg::{CostFunction, Id};
use kiln_ir::{Graph, NodeId, Op};
use std::collections::{HashMap, HashSet};

/// A graph in an e-graph, with the classes of its outputs.
pub struct Converted {
    /// The e-graph.
    pub egraph: KGraph,
    /// `(output name, class)` in the graph's output order.
    pub outputs: Vec<(String, Id)>,
}

/// Adds every node of `g` to a new e-graph. The constants move into the e-graph's table:
/// `g` keeps its inputs, outputs and assumptions, with empty constants.
pub fn to_egraph(g: &mut Graph, fold_max_elems: usize) -> Converted {
    let analysis = KAnalysis::new(
        g.inputs().iter().map(|&i| g.node(i).ty.clone()).collect(),
        fold_max_elems,
    );
    let mut eg = KGraph::new(analysis);
    let input_index: HashMap<NodeId, u32> = g.inputs().iter().enumerate().map(|(i, &n)| (n, i as u32)).collect();
    let mut class: HashMap<NodeId, Id> = HashMap::new();
    for id in g.topo_order() {
        let name = g.node(id).name.clone();
        let op = match &g.node(id).op {
            Op::Input { .. } => KOp::Input(input_index[&id]),
            Op::Constant(_) => {
                let empty = Op::Constant(kiln_ir::Tensor::f32(vec![0], vec![]));
                let Op::Constant(t) = std::mem::replace(&mut g.node_mut(id).op, empty) else {
                    unreachable!("matched a constant")
                };
                eg.analysis.add_const(t)
            }
            // Unhashable (Compute) or stateful (StateAppend: an in-place write, never merged
            // with another or folded) ops are kept whole in the opaque table.
            Op::Compute { .. } | Op::StateAppend { .. } => {
                eg.analysis.opaque.push(g.node(id).op.clone());
                KOp::Opaque(eg.analysis.opaque.len() as u32 - 1)
            }
            op => KOp::from_op(op).expect("every other op has a key"),
        };
        let children = g.inputs_of(id).iter().map(|i| class[i]).collect();
        let c = eg.add(KNode::new(op, children));
        if eg[c].data.name.is_none() {
            eg[c].data.name = Some(name);
        }
        class.insert(id, c);
    }
    let outputs = g.outputs().iter().map(|(name, id)| (name.clone(), class[id])).collect();
    eg.rebuild();
    Converted { egraph: eg, outputs }
}

/// The best e-node of each class reachable from `outputs`, operands before users.
pub fn extraction_order<CF: CostFunction<KNode>>(
    eg: &KGraph,
    ex: &Extractor<'_, CF>,
    outputs: &[(String, Id)],
) -> Result<Vec<(Id, KNode)>, CompileError> {
    let mut order = Vec::new();
    let mut done: HashSet<Id> = HashSet::new();
    // Iterative post-order (graphs may be deep chains).
    let mut stack: Vec<(Id, bool)> = outputs.iter().rev().map(|o| (eg.find(o.1), false)).collect();
    let mut on_path: HashSet<Id> = HashSet::new();
    while let Some((c, ready)) = stack.pop() {
        if done.contains(&c) {
            continue;
        }
        let best = ex.find_best_node(c);
        if !ready {
            if !on_path.insert(c) {
                return Err(CompileError::Internal(format!(
                    "optimizer extracted a cycle at class {c}"
                )));
            }
            stack.push((c, true));
            for &k in best.children.iter().rev() {
                let k = eg.find(k);
                if !done.contains(&k) {
                    stack.push((k, false));
                }
            }
            continue;
        }
        on_path.remove(&c);
        done.insert(c);
        let mut node = best.clone();
        for k in node.children.iter_mut() {
            *k = eg.find(*k);
        }
        order.push((c, node));
    }
    Ok(order)
}

/// Builds the graph of an [`extraction_order`]. Constants move out of the e-graph's table
/// (each `Const` e-node is in one class, so each is taken once). `like` supplies the inputs
/// (kept in order, even unused ones) and the dim assumptions.
pub fn from_egraph(
    eg: &mut KGraph,
    order: Vec<(Id, KNode)>,
    outputs: &[(String, Id)],
    like: &Graph,
) -> Result<Graph, CompileError> {
    let mut g = Graph::new();
    let inputs: Vec<NodeId> = like
        .inputs()
        .iter()
        .map(|&i| g.add_input(&like.node(i).name, like.node(i).ty.clone()))
        .collect();
    for a in like.assumptions() {
        g.assume_at_most(a.dim.clone(), a.max.clone(), a.why.clone())?;
    }
    let mut used: HashSet<String> = inputs.iter().map(|&i| g.node(i).name.clone()).collect();
    let mut made: HashMap<Id, NodeId> = HashMap::new();
    let mut fresh = 0usize;
    for (c, best) in order {
        let base = eg[c].data.name.clone().unwrap_or_else(|| "opt".to_string());
        let mut name = base.clone();
        while used.contains(&name) {
            fresh += 1;
            name = format!("{base}.opt{fresh}");
        }
        let node = match &best.op {
            KOp::Input(i) => inputs[*i as usize],
            KOp::Const(i) => {
                used.insert(name.clone());
                let t = std::mem::replace(
                    &mut eg.analysis.consts[*i as usize],
                    kiln_ir::Tensor::f32(vec![0], vec![]),
                );
                g.add_const(&name, t)
            }
            k => {
                let op = eg.analysis.op_of(k).expect("non-leaf");
                let kids: Vec<NodeId> = best.children.iter().map(|k| made[k]).collect();
                used.insert(name.clone());
                g.add(&name, op, &kids)?
            }
        };
        made.insert(c, node);
    }
    for (name, c) in outputs {
        g.add_output(name, made[&eg.find(*c)]);
    }
    Ok(g)
}
