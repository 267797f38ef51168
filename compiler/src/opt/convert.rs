//! Conversion between the IR graph and the e-graph: `Graph → KGraph` adds one e-node per IR
//! node; `KGraph → Graph` rebuilds a graph from the e-node an extractor chose in each needed
//! class, sharing each class's node among its users.

use super::analysis::{KAnalysis, KGraph};
use super::lang::{KNode, KOp};
use crate::CompileError;
use egg::{CostFunction, Extractor, Id};
use kiln_ir::{Graph, NodeId, Op};
use std::collections::{HashMap, HashSet};

/// A graph in an e-graph, with the classes of its outputs.
pub struct Converted {
    /// The e-graph.
    pub egraph: KGraph,
    /// `(output name, class)` in the graph's output order.
    pub outputs: Vec<(String, Id)>,
}

/// Adds every node of `g` to a new e-graph.
pub fn to_egraph(g: &Graph, fold_max_elems: usize) -> Converted {
    let analysis = KAnalysis::new(
        g.inputs().iter().map(|&i| g.node(i).ty.clone()).collect(),
        fold_max_elems,
    );
    let mut eg = KGraph::new(analysis);
    let input_index: HashMap<NodeId, u32> = g.inputs().iter().enumerate().map(|(i, &n)| (n, i as u32)).collect();
    let mut class: HashMap<NodeId, Id> = HashMap::new();
    for id in g.topo_order() {
        let n = g.node(id);
        let op = match &n.op {
            Op::Input { .. } => KOp::Input(input_index[&id]),
            Op::Constant(t) => eg.analysis.add_const(t.clone()),
            Op::Compute { .. } => {
                eg.analysis.opaque.push(n.op.clone());
                KOp::Opaque(eg.analysis.opaque.len() as u32 - 1)
            }
            op => KOp::from_op(op).expect("every other op has a key"),
        };
        let children = g.inputs_of(id).iter().map(|i| class[i]).collect();
        let c = eg.add(KNode::new(op, children));
        if eg[c].data.name.is_none() {
            eg[c].data.name = Some(n.name.clone());
        }
        class.insert(id, c);
    }
    let outputs = g.outputs().iter().map(|(name, id)| (name.clone(), class[id])).collect();
    eg.rebuild();
    Converted { egraph: eg, outputs }
}

/// Rebuilds a graph from the best e-node of each class reachable from the outputs. `like`
/// supplies the inputs (kept in order, even unused ones) and the dim assumptions.
pub fn from_egraph<CF: CostFunction<KNode>>(
    eg: &KGraph,
    ex: &Extractor<'_, CF, KNode, KAnalysis>,
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
    // Iterative post-order (graphs may be deep chains).
    let mut stack: Vec<(Id, bool)> = outputs.iter().rev().map(|o| (eg.find(o.1), false)).collect();
    let mut on_path: HashSet<Id> = HashSet::new();
    while let Some((c, ready)) = stack.pop() {
        if made.contains_key(&c) {
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
                if !made.contains_key(&k) {
                    stack.push((k, false));
                }
            }
            continue;
        }
        on_path.remove(&c);
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
                g.add_const(&name, eg.analysis.consts[*i as usize].clone())
            }
            k => {
                let op = eg.analysis.op_of(k).expect("non-leaf");
                let kids: Vec<NodeId> = best.children.iter().map(|&k| made[&eg.find(k)]).collect();
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
