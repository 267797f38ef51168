//! The op graph (petgraph underneath).
//!
//! Nodes own their op and inferred output type; an edge `a -> b` with weight `k` says that the
//! output of `a` is input `k` of `b`. Types are inferred as nodes are added, so a graph that exists
//! is well typed.

use crate::{infer, Dim, DimBindings, IrError, Op, Tensor, TensorType};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

/// Identifies a node (and so its output value).
pub type NodeId = NodeIndex;

/// One node: a named op with its inferred output type.
#[derive(Clone, Debug)]
pub struct Node {
    /// Unique, human-readable name (from the model where it has one).
    pub name: String,
    /// What the node computes.
    pub op: Op,
    /// Inferred output type.
    pub ty: TensorType,
}

/// An assumption the graph's shapes rely on: `dim <= max` once the symbols are bound. A
/// frontend records one where the source model's semantics depend on a symbolic value it
/// cannot check at compile time (e.g. a `Slice` of a 512-row table up to `seq`, which ONNX
/// would clamp): the runtime and the interpreter then refuse dims that break it instead of
/// reading out of range.
#[derive(Clone, Debug, PartialEq)]
pub struct DimAssumption {
    /// The bounded value.
    pub dim: Dim,
    /// Its largest allowed value.
    pub max: Dim,
    /// Which node relies on it and why, for messages.
    pub why: String,
}

/// A dataflow graph of ops with named inputs and outputs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    g: StableDiGraph<Node, usize>,
    inputs: Vec<NodeId>,
    outputs: Vec<(String, NodeId)>,
    assumptions: Vec<DimAssumption>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Adds a graph input of the given type.
    pub fn add_input(&mut self, name: &str, ty: TensorType) -> NodeId {
        let id = self.g.add_node(Node {
            name: name.to_string(),
            op: Op::Input { name: name.to_string() },
            ty,
        });
        self.inputs.push(id);
        id
    }

    /// Adds a constant (a weight or literal).
    pub fn add_const(&mut self, name: &str, t: Tensor) -> NodeId {
        let ty = t.ty();
        self.g.add_node(Node {
            name: name.to_string(),
            op: Op::Constant(t),
            ty,
        })
    }

    /// Adds an op node, inferring its type; errors name the node and say what is wrong.
    pub fn add(&mut self, name: &str, op: Op, inputs: &[NodeId]) -> Result<NodeId, IrError> {
        let in_types: Vec<&TensorType> = inputs.iter().map(|&i| &self.g[i].ty).collect();
        let consts: Vec<Option<&Tensor>> = inputs
            .iter()
            .map(|&i| match &self.g[i].op {
                Op::Constant(t) => Some(t),
                _ => None,
            })
            .collect();
        let ty = infer::infer(&op, &in_types, &consts).map_err(|error| IrError::Infer {
            node: name.to_string(),
            op: op.name(),
            error: Box::new(error),
        })?;
        let id = self.g.add_node(Node {
            name: name.to_string(),
            op,
            ty,
        });
        for (slot, &src) in inputs.iter().enumerate() {
            self.g.add_edge(src, id, slot);
        }
        Ok(id)
    }

    /// Marks a node's value as a named graph output.
    pub fn add_output(&mut self, name: &str, id: NodeId) {
        self.outputs.push((name.to_string(), id));
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    /// Mutable access to a node (callers keep its type consistent).
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id]
    }

    /// The node's inputs in slot order.
    pub fn inputs_of(&self, id: NodeId) -> Vec<NodeId> {
        let mut e: Vec<(usize, NodeId)> = self
            .g
            .edges_directed(id, Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        e.sort();
        e.into_iter().map(|(_, s)| s).collect()
    }

    /// Nodes that read this node's output.
    pub fn users_of(&self, id: NodeId) -> Vec<NodeId> {
        let mut u: Vec<NodeId> = self.g.neighbors_directed(id, Direction::Outgoing).collect();
        u.sort();
        u.dedup();
        u
    }

    /// Graph inputs in declaration order.
    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    /// Named graph outputs in declaration order.
    pub fn outputs(&self) -> &[(String, NodeId)] {
        &self.outputs
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.g.node_count()
    }

    /// True if the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.g.node_count() == 0
    }

    /// All node ids in a topological order (inputs before users).
    pub fn topo_order(&self) -> Vec<NodeId> {
        petgraph::algo::toposort(&self.g, None).expect("graph edges only point from earlier to later nodes")
    }

    /// Redirects every use of `old` (including graph outputs) to `new`.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        let edges: Vec<(NodeId, usize)> = self
            .g
            .edges_directed(old, Direction::Outgoing)
            .map(|e| (e.target(), *e.weight()))
            .collect();
        for (target, slot) in edges {
            if let Some(e) = self.g.find_edge(old, target) {
                self.g.remove_edge(e);
            }
            self.g.add_edge(new, target, slot);
        }
        for o in &mut self.outputs {
            if o.1 == old {
                o.1 = new;
            }
        }
    }

    /// Removes nodes whose values reach no output. Graph inputs are kept.
    pub fn remove_dead(&mut self) {
        let mut live = std::collections::HashSet::new();
        let mut stack: Vec<NodeId> = self.outputs.iter().map(|o| o.1).collect();
        while let Some(n) = stack.pop() {
            if live.insert(n) {
                stack.extend(self.g.neighbors_directed(n, Direction::Incoming));
            }
        }
        let dead: Vec<NodeId> = self
            .g
            .node_indices()
            .filter(|n| !live.contains(n) && !self.inputs.contains(n))
            .collect();
        for n in dead {
            self.g.remove_node(n);
        }
    }

    /// The symbolic dims that appear in the input types.
    /// Records that the graph assumes `dim <= max` (see [`DimAssumption`]). When both are
    /// constants it is checked now: a violation is an error naming `why`, a satisfied one is
    /// not recorded.
    pub fn assume_at_most(&mut self, dim: Dim, max: Dim, why: impl Into<String>) -> Result<(), IrError> {
        let why = why.into();
        if let (Some(v), Some(m)) = (dim.as_const(), max.as_const()) {
            if v > m {
                return Err(IrError::Graph(format!("{v} exceeds {m}: {why}")));
            }
            return Ok(());
        }
        if !self.assumptions.iter().any(|a| a.dim == dim && a.max == max) {
            self.assumptions.push(DimAssumption { dim, max, why });
        }
        Ok(())
    }

    /// The recorded assumptions on symbolic dims.
    pub fn assumptions(&self) -> &[DimAssumption] {
        &self.assumptions
    }

    /// Checks every assumption for bound dims; the error names the values and the reason.
    pub fn check_assumptions(&self, b: &DimBindings) -> Result<(), IrError> {
        for a in &self.assumptions {
            if let (Ok(v), Ok(m)) = (a.dim.eval(b), a.max.eval(b)) {
                if v > m {
                    return Err(IrError::Graph(format!(
                        "'{}' = {v} exceeds '{}' = {m}: {}",
                        a.dim, a.max, a.why
                    )));
                }
            }
        }
        Ok(())
    }

    /// Every symbol used anywhere in the graph's types, including scalar symbols that no input
    /// shape carries (e.g. `past`).
    pub fn all_symbols(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .g
            .node_weights()
            .flat_map(|n| n.ty.shape.iter().flat_map(Dim::symbols))
            .collect();
        for n in self.g.node_weights() {
            if let Op::StateAppend { offset, .. } = &n.op {
                s.extend(offset.symbols());
            }
        }
        s.sort();
        s.dedup();
        s
    }

    /// The persistent states the graph writes: (name, shape, dtype), in node order.
    pub fn states(&self) -> Vec<(String, Vec<usize>, crate::DType)> {
        self.topo_order()
            .into_iter()
            .filter_map(|id| match &self.g[id].op {
                Op::StateAppend { state, state_shape, .. } => {
                    Some((state.clone(), state_shape.clone(), self.g[id].ty.dtype))
                }
                _ => None,
            })
            .collect()
    }

    pub fn symbols(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .inputs
            .iter()
            .flat_map(|&i| self.g[i].ty.shape.iter().flat_map(Dim::symbols))
            .collect();
        s.sort();
        s.dedup();
        s
    }

    /// A copy with the given symbols replaced by constants, every type re-inferred.
    pub fn specialize(&self, b: &DimBindings) -> Result<Graph, IrError> {
        let mut out = Graph::new();
        let mut map = std::collections::HashMap::new();
        for id in self.topo_order() {
            let n = &self.g[id];
            let new_id = match &n.op {
                Op::Input { name } => {
                    let ty = TensorType {
                        dtype: n.ty.dtype,
                        shape: n.ty.shape.iter().map(|d| d.substitute(b)).collect(),
                    };
                    out.add_input(name, ty)
                }
                Op::Constant(t) => out.add_const(&n.name, t.clone()),
                op => {
                    let op = substitute_op(op, b);
                    let ins: Vec<NodeId> = self.inputs_of(id).iter().map(|i| map[i]).collect();
                    out.add(&n.name, op, &ins)?
                }
            };
            map.insert(id, new_id);
        }
        for a in &self.assumptions {
            out.assume_at_most(a.dim.substitute(b), a.max.substitute(b), a.why.clone())?;
        }
        // Keep the input declaration order.
        out.inputs = self.inputs.iter().map(|i| map[i]).collect();
        out.outputs = self.outputs.iter().map(|(n, i)| (n.clone(), map[i])).collect();
        Ok(out)
    }
}

/// Substitutes bound symbols inside an op's shape attributes.
fn substitute_op(op: &Op, b: &DimBindings) -> Op {
    match op {
        Op::Reshape { shape } => Op::Reshape {
            shape: shape.iter().map(|d| d.substitute(b)).collect(),
        },
        Op::Expand { shape } => Op::Expand {
            shape: shape.iter().map(|d| d.substitute(b)).collect(),
        },
        Op::Compute {
            shape,
            dtype,
            expr,
            name,
        } => Op::Compute {
            shape: shape.iter().map(|d| d.substitute(b)).collect(),
            dtype: *dtype,
            expr: substitute_expr(expr, b),
            name: name.clone(),
        },
        Op::StateAppend {
            state,
            state_shape,
            offset,
        } => Op::StateAppend {
            state: state.clone(),
            state_shape: state_shape.clone(),
            offset: offset.substitute(b),
        },
        other => other.clone(),
    }
}

fn substitute_expr(e: &crate::Expr, b: &DimBindings) -> crate::Expr {
    e.rewrite(&mut |n| match n {
        crate::Expr::Dim(d) => crate::Expr::Dim(d.substitute(b)),
        n => n,
    })
}
