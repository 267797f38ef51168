//! The e-graph analysis: every e-class knows its dtype and symbolic shape (so rules can check
//! shapes and the converter can rebuild a typed graph), whether it is a known constant (so
//! weight-only subgraphs are computed at compile time), and its size in bytes.

use super::lang::{KNode, KOp};
use egg::{Analysis, DidMerge, EGraph, Id};
use kiln_ir::{Dim, Graph, Op, Tensor, TensorType};
use std::collections::HashMap;

/// The e-graph Kiln's optimizer rewrites.
pub type KGraph = EGraph<KNode, KAnalysis>;

/// What the analysis knows about one e-class.
#[derive(Clone, Debug)]
pub struct Meta {
    /// Element type and symbolic shape (equal for every e-node of the class).
    pub ty: TensorType,
    /// The class's value when it is known at compile time: an id into [`KAnalysis::consts`].
    pub constant: Option<u32>,
    /// The IR node name the class came from (for the rebuilt graph and for logs).
    pub name: Option<String>,
}

/// Side tables and settings of the analysis.
#[derive(Debug, Default)]
pub struct KAnalysis {
    /// Constant tensors, indexed by [`KOp::Const`]. Weights live here, never in e-nodes.
    pub consts: Vec<Tensor>,
    /// Ops with unhashable payloads, indexed by [`KOp::Opaque`].
    pub opaque: Vec<Op>,
    /// Graph input types, indexed by [`KOp::Input`].
    pub inputs: Vec<TensorType>,
    /// A weight-only op is evaluated at compile time when its result has at most this many
    /// elements, or no more than its largest constant operand.
    pub fold_max_elems: usize,
    /// How many ops were evaluated at compile time.
    pub folded: usize,
    /// Content keys of the constants that rules and folding made, so that a rule firing
    /// again reuses its constant (and its e-node) instead of adding a copy. The model's own
    /// weights are never hashed.
    made: HashMap<u64, u32>,
}

impl KAnalysis {
    /// Empty tables for a graph with these input types.
    pub fn new(inputs: Vec<TensorType>, fold_max_elems: usize) -> KAnalysis {
        KAnalysis {
            inputs,
            fold_max_elems,
            ..KAnalysis::default()
        }
    }

    /// Adds a model constant to the constant table.
    pub fn add_const(&mut self, t: Tensor) -> KOp {
        self.consts.push(t);
        KOp::Const(self.consts.len() as u32 - 1)
    }

    /// Adds a constant a rule or folding computed, reusing an equal one made before.
    pub fn intern_const(&mut self, t: Tensor) -> KOp {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (t.dtype(), &t.shape, t.to_le_bytes()).hash(&mut h);
        let key = h.finish();
        if let Some(&i) = self.made.get(&key) {
            if self.consts[i as usize] == t {
                return KOp::Const(i);
            }
        }
        let k = self.add_const(t);
        if let KOp::Const(i) = k {
            self.made.insert(key, i);
        }
        k
    }

    /// The IR op of a non-leaf key (opaque ops resolved through the table).
    pub fn op_of(&self, k: &KOp) -> Option<Op> {
        match k {
            KOp::Opaque(i) => Some(self.opaque[*i as usize].clone()),
            k => k.to_op(),
        }
    }
}

/// The type an e-node of `op` over `children` would have, or why it is ill-typed.
pub fn infer_type(eg: &KGraph, op: &KOp, children: &[Id]) -> Result<TensorType, kiln_ir::InferError> {
    match op {
        KOp::Input(i) => Ok(eg.analysis.inputs[*i as usize].clone()),
        KOp::Const(i) => Ok(eg.analysis.consts[*i as usize].ty()),
        k => {
            let op = eg.analysis.op_of(k).expect("non-leaf ops have an IR op");
            let ins: Vec<&TensorType> = children.iter().map(|&c| &eg[c].data.ty).collect();
            let consts = vec![None; ins.len()];
            kiln_ir::infer::infer(&op, &ins, &consts)
        }
    }
}

/// The constant tensor of a class, if known.
pub fn const_of(eg: &KGraph, id: Id) -> Option<&Tensor> {
    eg[id].data.constant.map(|c| &eg.analysis.consts[c as usize])
}

/// Element count with each symbol replaced by `guess` (for cost estimates).
pub fn numel_estimate(ty: &TensorType, guess: i64) -> f64 {
    ty.shape.iter().map(|d| dim_estimate(d, guess)).product()
}

/// A dim's value with each symbol replaced by `guess`.
pub fn dim_estimate(d: &Dim, guess: i64) -> f64 {
    if let Some(c) = d.as_const() {
        return c as f64;
    }
    let b: HashMap<String, i64> = d.symbols().into_iter().map(|s| (s, guess)).collect();
    d.eval(&b).unwrap_or(guess) as f64
}

/// Bytes of a tensor of this type on the GPU (storage is 32-bit; see ARCHITECTURE.md).
pub fn bytes_estimate(ty: &TensorType, guess: i64) -> f64 {
    numel_estimate(ty, guess) * 4.0
}

/// Evaluates `op` on constant operands with the reference interpreter.
fn fold(op: &Op, args: &[&Tensor]) -> Result<Tensor, String> {
    let mut g = Graph::new();
    let ids: Vec<_> = args
        .iter()
        .enumerate()
        .map(|(i, t)| g.add_const(&format!("c{i}"), (*t).clone()))
        .collect();
    let y = g.add("fold", op.clone(), &ids).map_err(|e| e.to_string())?;
    g.add_output("y", y);
    let mut out = kiln_ir::interp::evaluate(&g, &HashMap::new()).map_err(|e| e.to_string())?;
    out.remove("y").ok_or_else(|| "no output".to_string())
}

impl Analysis<KNode> for KAnalysis {
    type Data = Meta;

    fn make(eg: &mut KGraph, n: &KNode, _id: Id) -> Meta {
        let ty = infer_type(eg, &n.op, &n.children)
            .unwrap_or_else(|e| panic!("optimizer bug: e-node {:?} is ill-typed: {e}", n.op));
        let mut constant = match n.op {
            KOp::Const(i) => Some(i),
            _ => None,
        };
        let stateful = matches!(&n.op, KOp::Opaque(i)
            if matches!(eg.analysis.opaque[*i as usize], Op::StateAppend { .. }));
        let foldable = !stateful && !n.children.is_empty() && !matches!(n.op, KOp::Input(_) | KOp::Const(_));
        if foldable && n.children.iter().all(|&c| eg[c].data.constant.is_some()) {
            if let Some(out) = ty.const_shape().map(|s| s.iter().product::<usize>()) {
                let largest = n
                    .children
                    .iter()
                    .filter_map(|&c| const_of(eg, c).map(|t| t.numel()))
                    .max()
                    .unwrap_or(0);
                if out <= eg.analysis.fold_max_elems.max(largest) {
                    let op = eg.analysis.op_of(&n.op).expect("non-leaf");
                    let args: Vec<&Tensor> = n.children.iter().filter_map(|&c| const_of(eg, c)).collect();
                    match fold(&op, &args) {
                        Ok(t) => {
                            log::debug!("optimize: fold-constant {} ({out} elements)", op.name());
                            eg.analysis.folded += 1;
                            if let KOp::Const(i) = eg.analysis.intern_const(t) {
                                constant = Some(i);
                            }
                        }
                        Err(e) => log::debug!("optimize: {} not folded: {e}", op.name()),
                    }
                }
            }
        }
        Meta {
            ty,
            constant,
            name: None,
        }
    }

    fn merge(&mut self, a: &mut Meta, b: Meta) -> DidMerge {
        debug_assert_eq!(a.ty, b.ty, "optimizer bug: merged classes of different types");
        let mut changed = DidMerge(false, false);
        if a.constant.is_none() && b.constant.is_some() {
            a.constant = b.constant;
            changed.0 = true;
        } else if a.constant.is_some() && b.constant.is_none() {
            changed.1 = true;
        }
        if a.name.is_none() && b.name.is_some() {
            a.name = b.name;
            changed.0 = true;
        }
        changed
    }

    fn modify(eg: &mut KGraph, id: Id) {
        if let Some(c) = eg[id].data.constant {
            let has_leaf = eg[id].nodes.iter().any(|n| matches!(n.op, KOp::Const(_)));
            if !has_leaf {
                let leaf = eg.add(KNode::new(KOp::Const(c), vec![]));
                eg.union(id, leaf);
            }
        }
    }
}
