//! The lowering context: the IR graph being built, the ONNX value table, node and attribute
//! access with errors that name the node, and the model-level driver ([`lower_model`]).

use super::data::{self, Literal};
use super::proto::{
    attribute_proto::AttributeType, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};
use super::value::{Ints, Value};
use super::{fold, lower, OnnxError, MAX_OPSET, MIN_OPSET};
use crate::Model;
use kiln_ir::{DType, Dim, DimBindings, Graph, IrError, NodeId, Op, Tensor, TensorData, TensorType};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Integer initializers up to this many elements are tracked as compile-time [`Ints`].
const INTS_LIMIT: usize = 1 << 16;

/// Ops whose opset-1 definition means what their current lowering implements (no legacy
/// attributes such as `broadcast` or `consumed_inputs`): a model below [`MIN_OPSET`] that uses
/// only these is accepted.
const OPS_UNCHANGED_SINCE_OPSET_1: &[&str] = &["Not", "Identity", "Shape", "Size", "Transpose"];

/// True for the default ONNX operator domain.
pub(crate) fn is_default_domain(d: &str) -> bool {
    d.is_empty() || d == "ai.onnx"
}

/// State of one model's lowering.
pub(crate) struct Ctx {
    /// The IR graph being built.
    pub g: Graph,
    values: HashMap<String, Value>,
    materialized: HashMap<String, NodeId>,
    base_dir: Option<PathBuf>,
}

/// One ONNX node being lowered: identity, opset and attribute access.
pub(crate) struct N<'a> {
    /// Node name (generated as `{op_type}_{index}` when the model has none).
    pub name: String,
    /// ONNX op type.
    pub op: &'a str,
    /// The node proto.
    pub proto: &'a NodeProto,
    /// Default-domain opset version in effect.
    pub opset: i64,
}

impl<'a> N<'a> {
    /// An error about this node.
    pub fn err(&self, msg: impl Into<String>) -> OnnxError {
        OnnxError::Node {
            node: self.name.clone(),
            op_type: self.op.to_string(),
            msg: msg.into(),
        }
    }

    /// An error saying that input slot `input` must be known at compile time; `msg` names the slot
    /// and what is needed. The model driver adds the graph input to freeze, if one feeds the slot.
    pub fn needs_constant(&self, input: usize, msg: impl Into<String>) -> OnnxError {
        OnnxError::NeedsConstant {
            node: self.name.clone(),
            op_type: self.op.to_string(),
            input,
            msg: msg.into(),
            graph_input: None,
        }
    }

    /// An error saying that this (well-formed) node uses a feature Kiln does not implement;
    /// `msg` names the feature and says that it is not supported.
    pub fn unsupported(&self, msg: impl Into<String>) -> OnnxError {
        OnnxError::Unsupported {
            node: self.name.clone(),
            op_type: self.op.to_string(),
            msg: msg.into(),
        }
    }

    /// Number of input slots (including empty optional ones).
    pub fn n_inputs(&self) -> usize {
        self.proto.input.len()
    }

    /// The value name in input slot `i`, or `None` if the slot is absent or empty.
    pub fn input_name(&self, i: usize) -> Option<&'a str> {
        self.proto.input.get(i).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// A name for an IR node of this lowering: the node name, or `node/suffix`.
    pub fn sub(&self, suffix: &str) -> String {
        if suffix.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{suffix}", self.name)
        }
    }

    fn attr(&self, name: &str, want: AttributeType) -> Result<Option<&'a AttributeProto>, OnnxError> {
        let Some(a) = self.proto.attribute.iter().find(|a| a.name.as_deref() == Some(name)) else {
            return Ok(None);
        };
        if a.ref_attr_name.as_deref().is_some_and(|r| !r.is_empty()) {
            return Err(self.unsupported(format!(
                "attribute '{name}' refers to a function attribute, which is not supported"
            )));
        }
        if let Some(t) = a.r#type.and_then(|t| AttributeType::try_from(t).ok()) {
            if t != want && t != AttributeType::Undefined {
                return Err(self.err(format!(
                    "attribute '{name}' should be {} but is {}",
                    want.as_str_name(),
                    t.as_str_name()
                )));
            }
        }
        Ok(Some(a))
    }

    /// True if the node has the attribute.
    pub fn has_attr(&self, name: &str) -> bool {
        self.proto.attribute.iter().any(|a| a.name.as_deref() == Some(name))
    }

    /// An int attribute, if present.
    pub fn attr_i_opt(&self, name: &str) -> Result<Option<i64>, OnnxError> {
        Ok(match self.attr(name, AttributeType::Int)? {
            Some(a) => Some(a.i.ok_or_else(|| self.err(format!("attribute '{name}' has no int value")))?),
            None => None,
        })
    }

    /// An int attribute with a default.
    pub fn attr_i(&self, name: &str, default: i64) -> Result<i64, OnnxError> {
        Ok(self.attr_i_opt(name)?.unwrap_or(default))
    }

    /// A float attribute with a default.
    pub fn attr_f(&self, name: &str, default: f32) -> Result<f32, OnnxError> {
        Ok(match self.attr(name, AttributeType::Float)? {
            Some(a) => {
                a.f.ok_or_else(|| self.err(format!("attribute '{name}' has no float value")))?
            }
            None => default,
        })
    }

    /// A float attribute, if present.
    pub fn attr_f_opt(&self, name: &str) -> Result<Option<f32>, OnnxError> {
        Ok(match self.attr(name, AttributeType::Float)? {
            Some(a) => Some(a.f.ok_or_else(|| self.err(format!("attribute '{name}' has no float value")))?),
            None => None,
        })
    }

    /// An ints attribute, if present.
    pub fn attr_ints(&self, name: &str) -> Result<Option<Vec<i64>>, OnnxError> {
        Ok(self.attr(name, AttributeType::Ints)?.map(|a| a.ints.clone()))
    }

    /// A floats attribute, if present.
    pub fn attr_floats(&self, name: &str) -> Result<Option<Vec<f32>>, OnnxError> {
        Ok(self.attr(name, AttributeType::Floats)?.map(|a| a.floats.clone()))
    }

    /// A string attribute, if present.
    pub fn attr_s(&self, name: &str) -> Result<Option<String>, OnnxError> {
        Ok(self
            .attr(name, AttributeType::String)?
            .map(|a| String::from_utf8_lossy(a.s.as_deref().unwrap_or_default()).into_owned()))
    }

    /// A tensor attribute, if present.
    pub fn attr_t(&self, name: &str) -> Result<Option<&'a TensorProto>, OnnxError> {
        Ok(match self.attr(name, AttributeType::Tensor)? {
            Some(a) => Some(
                a.t.as_ref()
                    .ok_or_else(|| self.err(format!("attribute '{name}' has no tensor")))?,
            ),
            None => None,
        })
    }

    /// A graph attribute (a control-flow body), which must be present.
    pub fn attr_g(&self, name: &str) -> Result<&'a GraphProto, OnnxError> {
        self.attr(name, AttributeType::Graph)?
            .and_then(|a| a.g.as_ref())
            .ok_or_else(|| self.err(format!("graph attribute '{name}' is required but missing")))
    }

    /// Normalizes a possibly negative axis against `rank`.
    pub fn axis(&self, axis: i64, rank: usize, what: &str) -> Result<usize, OnnxError> {
        let r = rank as i64;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a >= r {
            return Err(self.err(format!("{what} {axis} is out of range for rank {rank}")));
        }
        Ok(a as usize)
    }

    /// Normalizes a list of axes (sorted, unique).
    pub fn axes(&self, axes: &[i64], rank: usize, what: &str) -> Result<Vec<usize>, OnnxError> {
        let mut out = axes
            .iter()
            .map(|&a| self.axis(a, rank, what))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_unstable();
        let before = out.len();
        out.dedup();
        if out.len() != before {
            return Err(self.err(format!("{what}s {axes:?} repeat an axis")));
        }
        Ok(out)
    }
}

/// Most elements of any tensor: kernels index with i32 (WGSL has no 64-bit integers).
pub(crate) const MAX_TENSOR_ELEMS: u64 = i32::MAX as u64;

impl Ctx {
    fn new(base_dir: Option<&Path>) -> Ctx {
        Ctx {
            g: Graph::new(),
            values: HashMap::new(),
            materialized: HashMap::new(),
            base_dir: base_dir.map(Path::to_path_buf),
        }
    }

    /// The value in input slot `i` (`None` for an absent optional input).
    pub fn value(&self, n: &N, i: usize) -> Result<Option<&Value>, OnnxError> {
        let Some(name) = n.input_name(i) else {
            return Ok(None);
        };
        self.values.get(name).map(Some).ok_or_else(|| {
            n.err(format!(
                "input {i} '{name}' is not produced by an earlier node, an initializer or a graph input"
            ))
        })
    }

    /// True if input slot `i` holds a value.
    pub fn has_input(&self, n: &N, i: usize) -> bool {
        n.input_name(i).is_some()
    }

    /// The IR node for input slot `i`, which must be present.
    pub fn input(&mut self, n: &N, i: usize) -> Result<NodeId, OnnxError> {
        self.opt_input(n, i)?
            .ok_or_else(|| n.err(format!("input {i} is required but missing")))
    }

    /// The IR node for input slot `i`, if present (compile-time integer values become constants).
    pub fn opt_input(&mut self, n: &N, i: usize) -> Result<Option<NodeId>, OnnxError> {
        let Some(name) = n.input_name(i) else {
            return Ok(None);
        };
        let v = self.value(n, i)?.cloned().expect("present");
        Ok(Some(
            self.node_of(name, &v)
                .map_err(|m| n.err(format!("input {i} '{name}': {m}")))?,
        ))
    }

    /// The IR node of a value (compile-time integers become a constant named `name`).
    pub fn node_of(&mut self, name: &str, v: &Value) -> Result<NodeId, String> {
        match v {
            Value::Node(id) => Ok(*id),
            Value::Ints(ints) => {
                if let Some(&id) = self.materialized.get(name) {
                    return Ok(id);
                }
                let id = self.g.add_const(name, ints.to_tensor()?);
                self.materialized.insert(name.to_string(), id);
                Ok(id)
            }
        }
    }

    /// Input slot `i` as compile-time integers, if it is known at compile time and integral.
    pub fn ints(&self, n: &N, i: usize) -> Result<Option<Ints>, OnnxError> {
        Ok(match self.value(n, i)? {
            Some(Value::Ints(x)) => Some(x.clone()),
            Some(Value::Node(id)) => match &self.g.node(*id).op {
                Op::Constant(t) if matches!(t.dtype(), DType::I32 | DType::Bool) => {
                    let mut v = Ints::from_i64(
                        t.shape.clone(),
                        &t.to_f64().iter().map(|&x| x as i64).collect::<Vec<_>>(),
                    );
                    v.boolean = t.dtype() == DType::Bool;
                    Some(v)
                }
                _ => None,
            },
            None => None,
        })
    }

    /// Input slot `i` as constant integers (axes, pads, ...): must be present and constant.
    pub fn const_ints(&self, n: &N, i: usize, what: &str) -> Result<Vec<i64>, OnnxError> {
        let v = self.ints(n, i)?.ok_or_else(|| {
            if n.input_name(i).is_none() {
                n.err(format!("input {i} ('{what}') is required but missing"))
            } else {
                n.needs_constant(
                    i,
                    format!("input {i} ('{what}') must be a compile-time constant integer tensor"),
                )
            }
        })?;
        v.consts().ok_or_else(|| {
            n.err(format!(
                "input {i} ('{what}') depends on a symbolic dim ({}); bind it with --dim",
                v.elems
                    .iter()
                    .find(|d| !d.is_const())
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            ))
        })
    }

    /// Input slot `i` as a constant tensor, if it is one.
    pub fn const_tensor(&self, n: &N, i: usize) -> Result<Option<Tensor>, OnnxError> {
        Ok(match self.value(n, i)? {
            Some(Value::Ints(x)) => x.to_tensor().ok(),
            Some(Value::Node(id)) => match &self.g.node(*id).op {
                Op::Constant(t) => Some(t.clone()),
                _ => None,
            },
            None => None,
        })
    }

    /// The type of an IR node.
    pub fn ty(&self, id: NodeId) -> &TensorType {
        &self.g.node(id).ty
    }

    /// The dims of an ONNX input as known at compile time, without materializing it.
    pub fn input_shape(&self, n: &N, i: usize) -> Result<Vec<Dim>, OnnxError> {
        match self.value(n, i)? {
            Some(Value::Node(id)) => Ok(self.ty(*id).shape.clone()),
            Some(Value::Ints(x)) => Ok(x.shape.iter().map(|&d| Dim::from(d)).collect()),
            None => Err(n.err(format!("input {i} is required but missing"))),
        }
    }

    /// Adds an IR op for node `n` (named `node/suffix`), folding it to a constant when every input
    /// is constant; inference errors name the ONNX node.
    pub fn add(&mut self, n: &N, suffix: &str, op: Op, ins: &[NodeId]) -> Result<NodeId, OnnxError> {
        let name = n.sub(suffix);
        let unified = self.unify_symbolic_dims(n, &name, &op, ins)?;
        let ins = unified.as_deref().unwrap_or(ins);
        let id = self.g.add(&name, op, ins).map_err(|e| ir_err(n, e))?;
        let ty = &self.g.node(id).ty;
        if let Some(shape) = ty.const_shape() {
            let elems = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
            if elems.is_none_or(|e| e > MAX_TENSOR_ELEMS) {
                return Err(n.err(format!(
                    "its result {} has more than {MAX_TENSOR_ELEMS} elements; kernels index tensors with 32-bit integers",
                    ty.describe()
                )));
            }
        }
        match fold::try_fold(&self.g, id, ins) {
            Ok(Some(t)) => Ok(self.g.add_const(&name, t)),
            Ok(None) => Ok(id),
            Err(e) => Err(ir_err(n, e)),
        }
    }

    /// Where an elementwise op or a `Concat` meets inputs whose dims on an axis differ
    /// symbolically but must be equal (e.g. `2*((h + 31) / 32)` from an upsampled feature
    /// map and `((h + 15) / 16)` from the level above, equal for the input sizes the model
    /// was made for), records the equality as two graph assumptions, checked once the
    /// symbols are bound (so other sizes get a clear error, as onnxruntime gives, never a
    /// wrong answer), and retypes the differing inputs to the common dims with an identity
    /// `Compute` (fused into the consumer). `None` when nothing needs unifying.
    fn unify_symbolic_dims(
        &mut self,
        n: &N,
        name: &str,
        op: &Op,
        ins: &[NodeId],
    ) -> Result<Option<Vec<NodeId>>, OnnxError> {
        let concat_axis = match op {
            Op::Binary(_) | Op::Where => None,
            Op::Concat { axis } => Some(*axis),
            _ => return Ok(None),
        };
        let shapes: Vec<Vec<Dim>> = ins.iter().map(|&i| self.ty(i).shape.clone()).collect();
        let rank = shapes.iter().map(Vec::len).max().unwrap_or(0);
        if concat_axis.is_some() && shapes.iter().any(|s| s.len() != rank) {
            return Ok(None);
        }
        let one = Dim::c(1);
        let mut targets = shapes.clone();
        let mut changed = false;
        for axis in 0..rank {
            if concat_axis == Some(axis) {
                continue;
            }
            // Each input's dim on this (right-aligned) axis, where it has one other than 1.
            let at = |s: &Vec<Dim>| (axis + s.len()).checked_sub(rank).map(|j| (j, s[j].clone()));
            let dims: Vec<(usize, usize, Dim)> = shapes
                .iter()
                .enumerate()
                .filter_map(|(k, s)| at(s).map(|(j, d)| (k, j, d)))
                .filter(|(_, _, d)| *d != one)
                .collect();
            let Some(rep) = dims
                .iter()
                .map(|(_, _, d)| d)
                .min_by_key(|d| (d.has_quotient(), !d.is_const(), d.to_string().len()))
                .cloned()
            else {
                continue;
            };
            for (k, j, d) in &dims {
                if *d == rep || (d.is_const() && rep.is_const()) {
                    continue;
                }
                let why = format!(
                    "node '{}' ({}) needs axis {j} of input {k} ('{d}') to equal '{rep}'",
                    n.name, n.op
                );
                self.g
                    .assume_at_most(d.clone(), rep.clone(), why.clone())
                    .and_then(|_| self.g.assume_at_most(rep.clone(), d.clone(), why))
                    .map_err(|e| ir_err(n, e))?;
                targets[*k][*j] = rep.clone();
                changed = true;
            }
        }
        if !changed {
            return Ok(None);
        }
        let mut out = ins.to_vec();
        for (k, &id) in ins.iter().enumerate() {
            if targets[k] == shapes[k] {
                continue;
            }
            let ty = self.ty(id).clone();
            let op = Op::Compute {
                shape: targets[k].clone(),
                dtype: ty.dtype,
                expr: kiln_ir::Expr::Load {
                    input: 0,
                    index: (0..ty.rank()).map(kiln_ir::Expr::Coord).collect(),
                },
                name: "UnifyDims".into(),
            };
            out[k] = self
                .g
                .add(&format!("{name}/unify{k}"), op, &[id])
                .map_err(|e| ir_err(n, e))?;
        }
        Ok(Some(out))
    }

    /// Lowers a subgraph (a control-flow body) into this graph: its inputs are bound to
    /// `inputs` in order, its nodes see the enclosing scopes' values, and its IR nodes are named
    /// `prefix/<node>`. Returns the values of its outputs in order.
    pub fn lower_subgraph(
        &mut self,
        outer: &N,
        g: &GraphProto,
        prefix: &str,
        inputs: &[Value],
    ) -> Result<Vec<Value>, OnnxError> {
        if g.input.len() != inputs.len() {
            return Err(outer.err(format!(
                "subgraph '{}' declares {} inputs; {} binds {}",
                g.name.as_deref().unwrap_or(""),
                g.input.len(),
                outer.op,
                inputs.len()
            )));
        }
        for t in &g.initializer {
            let name = t.name.clone().unwrap_or_default();
            let v = self.literal(&format!("{prefix}/{name}"), t)?;
            self.define(&name, v);
        }
        for (decl, v) in g.input.iter().zip(inputs) {
            self.define(decl.name.as_deref().unwrap_or(""), v.clone());
        }
        for (i, node) in g.node.iter().enumerate() {
            let d = node.domain.as_deref().unwrap_or("");
            let inner = node_name(node, i);
            let op = node.op_type.as_deref().unwrap_or("");
            if !is_default_domain(d) {
                return Err(outer.unsupported(format!(
                    "subgraph node '{inner}' ({op}) uses operator domain '{d}'; only the default ONNX domain is supported"
                )));
            }
            let n = N {
                name: format!("{prefix}/{inner}"),
                op,
                proto: node,
                opset: outer.opset,
            };
            let outs = lower::lower_node(self, &n)?;
            for (k, out) in node.output.iter().enumerate() {
                if out.is_empty() {
                    continue;
                }
                match outs.get(k) {
                    Some(v) => self.define(out, v.clone()),
                    None => {
                        return Err(n.unsupported(format!(
                            "output {k} '{out}' is not supported by Kiln's lowering of {}",
                            n.op
                        )))
                    }
                }
            }
        }
        g.output
            .iter()
            .map(|o| {
                let name = o.name.as_deref().unwrap_or("");
                self.values.get(name).cloned().ok_or_else(|| {
                    outer.err(format!(
                        "subgraph output '{name}' is not produced by any of its nodes or an enclosing scope"
                    ))
                })
            })
            .collect()
    }

    /// A rank-0 constant of `dtype`.
    pub fn scalar(&mut self, n: &N, suffix: &str, dtype: DType, v: f64) -> NodeId {
        self.g.add_const(&n.sub(suffix), Tensor::scalar(dtype, v))
    }

    /// A constant.
    pub fn constant(&mut self, n: &N, suffix: &str, t: Tensor) -> NodeId {
        self.g.add_const(&n.sub(suffix), t)
    }

    fn define(&mut self, name: &str, v: Value) {
        self.materialized.remove(name);
        self.values.insert(name.to_string(), v);
    }

    /// Reads a tensor proto into a value (`Ints` for small integer tensors).
    pub fn literal(&mut self, name: &str, t: &TensorProto) -> Result<Value, OnnxError> {
        let lit = data::read_tensor(t, self.base_dir.as_deref())
            .map_err(|msg| OnnxError::Tensor { name: name.into(), msg })?;
        Ok(match lit {
            Literal::Tensor(t) => Value::Node(self.g.add_const(name, t)),
            Literal::Int { shape, values } if values.len() <= INTS_LIMIT => Value::Ints(Ints::from_i64(shape, &values)),
            Literal::Int { shape, values } => {
                let v = values
                    .iter()
                    .map(|&x| {
                        i32::try_from(x).map_err(|_| OnnxError::Tensor {
                            name: name.into(),
                            msg: format!("value {x} is outside the i32 range that Kiln uses for ONNX int64 data"),
                        })
                    })
                    .collect::<Result<Vec<i32>, _>>()?;
                Value::Node(self.g.add_const(
                    name,
                    Tensor {
                        shape,
                        data: TensorData::I32(v),
                    },
                ))
            }
        })
    }
}

/// Maps an IR error from a node's lowering to an error naming the ONNX node.
pub(crate) fn ir_err(n: &N, e: IrError) -> OnnxError {
    let msg = match e {
        IrError::Infer { node, op, error } => {
            let msg = error.to_string();
            if node == n.name && op == n.op {
                msg
            } else if node == n.name {
                format!("{op}: {msg}")
            } else {
                format!("'{node}' ({op}): {msg}")
            }
        }
        IrError::Eval { node, op, msg } => {
            if node == n.name && op == n.op {
                msg
            } else if node == n.name {
                format!("{op}: {msg}")
            } else {
                format!("'{node}' ({op}): {msg}")
            }
        }
        other => other.to_string(),
    };
    n.err(msg)
}

/// Makes a dim_param usable as a symbol name (letters, digits, `_`, `.`, `:`).
pub(crate) fn symbol_name(p: &str) -> String {
    let s: String = p
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '.' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        format!("d_{s}")
    } else {
        s
    }
}

/// The IR type of a graph input/output declaration.
fn value_type(
    v: &ValueInfoProto,
    kind: &'static str,
    dims: &DimBindings,
    unk: &mut usize,
    symbols: &mut Vec<String>,
) -> Result<(i32, TensorType), OnnxError> {
    use super::proto::tensor_shape_proto::dimension::Value as D;
    use super::proto::type_proto::Value as T;
    let name = v.name.clone().unwrap_or_default();
    let err = |msg: String| OnnxError::GraphIo {
        kind,
        name: name.clone(),
        msg,
    };
    let tt = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(T::TensorType(t)) => t,
        Some(_) => {
            return Err(err(
                "sequences, maps, optionals and sparse tensors are not supported (only tensors)".into(),
            ))
        }
        None => return Err(err("has no type".into())),
    };
    let et = tt.elem_type.unwrap_or(0);
    data::io_elem(et).map_err(err)?;
    let dtype = data::ir_dtype(et).map_err(err)?;
    let shape_proto = tt
        .shape
        .as_ref()
        .ok_or_else(|| err("has no shape; Kiln needs at least the rank".into()))?;
    let mut shape = Vec::new();
    for d in &shape_proto.dim {
        shape.push(match &d.value {
            Some(D::DimValue(x)) if *x >= 0 => Dim::c(*x),
            // A param without a letter or digit ("?", "-1"-like placeholders) names nothing.
            Some(D::DimParam(p)) if p.chars().any(|c| c.is_alphabetic()) => {
                let s = symbol_name(p);
                symbols.push(p.clone());
                symbols.push(s.clone());
                match dims.get(p).or_else(|| dims.get(&s)) {
                    Some(&c) => Dim::c(c),
                    None => Dim::sym(&s),
                }
            }
            _ => {
                let s = format!("unk_{unk}");
                *unk += 1;
                symbols.push(s.clone());
                match dims.get(&s) {
                    Some(&c) => Dim::c(c),
                    None => Dim::sym(&s),
                }
            }
        });
    }
    Ok((et, TensorType { dtype, shape }))
}

/// Lowers a decoded model.
pub(crate) fn lower_model(
    m: &ModelProto,
    fallback_name: &str,
    dims: &DimBindings,
    base_dir: Option<&Path>,
) -> Result<Model, OnnxError> {
    let graph = m.graph.as_ref().ok_or_else(|| OnnxError::Decode {
        name: fallback_name.into(),
        reason: "it has no graph".into(),
    })?;
    // Opsets.
    let mut opsets: HashMap<String, i64> = HashMap::new();
    for o in &m.opset_import {
        let d = o.domain.clone().unwrap_or_default();
        let d = if is_default_domain(&d) { String::new() } else { d };
        opsets.insert(d, o.version.unwrap_or(0));
    }
    // A node of another domain is accepted when Kiln lowers that (domain, op) and the model
    // imports the domain.
    let other_domain_ok = |node: &NodeProto| {
        let d = node.domain.as_deref().unwrap_or("");
        let op = node.op_type.as_deref().unwrap_or("");
        opsets.contains_key(d) && lower::SUPPORTED_DOMAIN_OPS.contains(&(d, op))
    };
    // The first node of another domain that Kiln does not lower, as the error that names it
    // (checked before the opset, so a model of only such nodes learns which op is missing).
    let unsupported_domain_node = || -> Result<(), OnnxError> {
        for (i, node) in graph.node.iter().enumerate() {
            let d = node.domain.as_deref().unwrap_or("");
            if !is_default_domain(d) && !other_domain_ok(node) {
                let name = node_name(node, i);
                let op = node.op_type.as_deref().unwrap_or("");
                let version = opsets
                    .get(d)
                    .map(|v| format!("opset {v}"))
                    .unwrap_or_else(|| "not imported".into());
                let lowered: Vec<&str> = lower::SUPPORTED_DOMAIN_OPS
                    .iter()
                    .filter(|(dd, _)| *dd == d)
                    .map(|(_, o)| *o)
                    .collect();
                let msg = if lowered.is_empty() {
                    format!(
                        "node '{name}' ({op}) uses operator domain '{d}' ({version}); Kiln supports only the default ONNX domain \
                         ('' / 'ai.onnx'), so op '{op}' of domain '{d}' is unsupported"
                    )
                } else {
                    format!(
                        "node '{name}' ({op}) uses operator domain '{d}' ({version}); of that domain Kiln lowers only {}, so op \
                         '{op}' is unsupported",
                        lowered.join(", ")
                    )
                };
                return Err(OnnxError::Opset(msg));
            }
        }
        Ok(())
    };
    let only_other_domains = !graph.node.is_empty()
        && graph
            .node
            .iter()
            .all(|n| !is_default_domain(n.domain.as_deref().unwrap_or("")) && other_domain_ok(n));
    let opset = match opsets.get("") {
        Some(&v) => v,
        // No default-domain op is used: the newest opset's rules apply to nothing.
        None if only_other_domains => MAX_OPSET,
        None => {
            unsupported_domain_node()?;
            return Err(OnnxError::Opset(
                "the model imports no opset of the default ONNX domain ('' / 'ai.onnx')".into(),
            ));
        }
    };
    let legacy_ok = (1..MIN_OPSET).contains(&opset)
        && graph
            .node
            .iter()
            .all(|n| OPS_UNCHANGED_SINCE_OPSET_1.contains(&n.op_type.as_deref().unwrap_or("")));
    if !legacy_ok && !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
        return Err(OnnxError::Opset(format!(
            "the model imports default-domain opset {opset}; Kiln supports opsets {MIN_OPSET}..={MAX_OPSET}"
        )));
    }
    unsupported_domain_node()?;
    if !graph.sparse_initializer.is_empty() {
        return Err(OnnxError::Model("sparse initializers are not supported".into()));
    }

    let mut cx = Ctx::new(base_dir);
    for t in &graph.initializer {
        let name = t.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(OnnxError::Model("an initializer has no name".into()));
        }
        let v = cx.literal(&name, t)?;
        cx.define(&name, v);
    }
    let mut io_dtypes = BTreeMap::new();
    let mut unk = 0usize;
    let mut symbols = Vec::new();
    for v in &graph.input {
        let name = v.name.clone().unwrap_or_default();
        if cx.values.contains_key(&name) {
            continue; // an initializer with a declared input: a constant here
        }
        let (et, ty) = value_type(v, "input", dims, &mut unk, &mut symbols)?;
        let elem = data::io_elem(et).expect("checked");
        if elem != data::elem_of(ty.dtype) {
            io_dtypes.insert(name.clone(), elem);
        }
        let id = cx.g.add_input(&name, ty);
        cx.define(&name, Value::Node(id));
    }
    // Every --dim must name a symbolic dim of a graph input.
    let mut unknown: Vec<&String> = dims.keys().filter(|k| !symbols.contains(k)).collect();
    if !unknown.is_empty() {
        unknown.sort();
        let mut known: Vec<String> = symbols.clone();
        known.sort();
        known.dedup();
        return Err(OnnxError::Model(format!(
            "--dim {}: the model has no symbolic dim of that name (its symbolic input dims: {})",
            unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    for (i, node) in graph.node.iter().enumerate() {
        let n = N {
            name: node_name(node, i),
            op: node.op_type.as_deref().unwrap_or(""),
            proto: node,
            opset,
        };
        let outs = match lower::lower_node(&mut cx, &n) {
            Ok(outs) => outs,
            Err(e) => return Err(symbolic_dims_hint(freeze_hint(e, node, graph), &cx, node)),
        };
        for (k, out) in node.output.iter().enumerate() {
            if out.is_empty() {
                continue;
            }
            match outs.get(k) {
                Some(v) => cx.define(out, v.clone()),
                None => {
                    return Err(n.unsupported(format!(
                        "output {k} '{out}' is not supported by Kiln's lowering of {}",
                        n.op
                    )))
                }
            }
        }
    }
    for v in &graph.output {
        let name = v.name.clone().unwrap_or_default();
        let val = cx.values.get(&name).cloned().ok_or_else(|| OnnxError::GraphIo {
            kind: "output",
            name: name.clone(),
            msg: "is not produced by any node, initializer or input".into(),
        })?;
        let id = cx.node_of(&name, &val).map_err(|msg| OnnxError::GraphIo {
            kind: "output",
            name: name.clone(),
            msg,
        })?;
        let dtype = cx.ty(id).dtype;
        let declared = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(super::proto::type_proto::Value::TensorType(t)) => t.elem_type.filter(|&e| e != 0),
            _ => None,
        };
        if let Some(et) = declared {
            let elem = data::io_elem(et).map_err(|msg| OnnxError::GraphIo {
                kind: "output",
                name: name.clone(),
                msg,
            })?;
            let ir = data::ir_dtype(et).map_err(|msg| OnnxError::GraphIo {
                kind: "output",
                name: name.clone(),
                msg,
            })?;
            if ir != dtype {
                return Err(OnnxError::GraphIo {
                    kind: "output",
                    name,
                    msg: format!(
                        "is declared {} but the lowered graph computes {}",
                        data::type_name(et),
                        cx.ty(id).describe()
                    ),
                });
            }
            if elem != data::elem_of(dtype) {
                io_dtypes.insert(name.clone(), elem);
            }
        }
        cx.g.add_output(&name, id);
    }
    if graph.output.is_empty() {
        return Err(OnnxError::Model("the graph has no outputs".into()));
    }
    cx.g.remove_dead();
    let name = graph
        .name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| fallback_name.to_string());
    Ok(Model {
        name,
        graph: cx.g,
        io_dtypes,
    })
}

/// Names the graph input to freeze in an error that asks for a compile-time value in an input
/// slot: the graph input (not an initializer) that feeds the slot directly, or else the first
/// one whose value (not merely its shape) the slot is computed from; freezing it makes the
/// computation fold, or moves the error on to the next such input.
fn freeze_hint(e: OnnxError, node: &NodeProto, graph: &super::proto::GraphProto) -> OnnxError {
    match e {
        OnnxError::NeedsConstant {
            node: name,
            op_type,
            input,
            mut msg,
            graph_input: None,
        } => {
            let is_graph_input = |v: &str| {
                graph.input.iter().any(|g| g.name.as_deref() == Some(v))
                    && !graph.initializer.iter().any(|t| t.name.as_deref() == Some(v))
            };
            // An error from inside a control-flow body names a body node (`outer/.../inner`):
            // its slot is that node's input.
            let slot_node = if name == node_name_of(node, graph) {
                Some(node)
            } else {
                find_body_node(node, &name, &op_type)
            };
            let slot = slot_node.and_then(|sn| sn.input.get(input)).filter(|v| !v.is_empty());
            let graph_input = match slot {
                Some(v) if is_graph_input(v) => Some(v.clone()),
                Some(v) => {
                    let found = computed_from(graph, v, &is_graph_input);
                    if let Some(g) = &found {
                        msg = format!("{msg} (it is computed from graph input '{g}')");
                    }
                    found
                }
                None => None,
            };
            OnnxError::NeedsConstant {
                node: name,
                op_type,
                input,
                msg,
                graph_input,
            }
        }
        other => other,
    }
}

/// The name the driver gives a top-level node.
fn node_name_of(node: &NodeProto, graph: &super::proto::GraphProto) -> String {
    let i = graph.node.iter().position(|n| std::ptr::eq(n, node)).unwrap_or(0);
    node_name(node, i)
}

/// The node inside `node`'s control-flow bodies (at any depth) whose lowering name is `name`
/// (it ends in `/<its name>`) and whose op is `op`.
fn find_body_node<'g>(node: &'g NodeProto, name: &str, op: &str) -> Option<&'g NodeProto> {
    for a in &node.attribute {
        for g in a.g.iter().chain(&a.graphs) {
            for (i, sub) in g.node.iter().enumerate() {
                if sub.op_type.as_deref() == Some(op) && name.ends_with(&format!("/{}", node_name(sub, i))) {
                    return Some(sub);
                }
                if let Some(found) = find_body_node(sub, name, op) {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// Every node of a graph and of its control-flow bodies, at any depth.
fn all_nodes<'g>(nodes: &'g [NodeProto], out: &mut Vec<&'g NodeProto>) {
    for n in nodes {
        out.push(n);
        for a in &n.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                all_nodes(&g.node, out);
            }
        }
    }
}

/// The first graph input (depth first, in input order) whose value `value` is computed from,
/// not looking through `Shape` and `Size` (which read only a shape, known at compile time).
fn computed_from(graph: &super::proto::GraphProto, value: &str, is_input: &dyn Fn(&str) -> bool) -> Option<String> {
    let mut nodes = Vec::new();
    all_nodes(&graph.node, &mut nodes);
    let producer: HashMap<&str, &NodeProto> = nodes
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), *n)))
        .collect();
    let mut stack = vec![value];
    let mut seen = std::collections::HashSet::new();
    while let Some(v) = stack.pop() {
        if !seen.insert(v) {
            continue;
        }
        if is_input(v) {
            return Some(v.to_string());
        }
        let Some(p) = producer.get(v) else { continue };
        if matches!(p.op_type.as_deref(), Some("Shape" | "Size")) {
            continue;
        }
        stack.extend(p.input.iter().rev().filter(|i| !i.is_empty()).map(String::as_str));
        // A control-flow body reads enclosing values by name.
        for a in &p.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                for sub in &g.node {
                    stack.extend(sub.input.iter().filter(|i| !i.is_empty()).map(String::as_str));
                }
            }
        }
    }
    None
}

/// Adds to a node error every symbolic dim in the node's inputs, so a node that needs concrete
/// sizes (a strided convolution, a pooling window) names all the `--dim`s it needs at once
/// instead of one per attempt.
fn symbolic_dims_hint(e: OnnxError, cx: &Ctx, node: &NodeProto) -> OnnxError {
    let OnnxError::Node {
        node: name,
        op_type,
        msg,
    } = e
    else {
        return e;
    };
    let mut dims: Vec<String> = node
        .input
        .iter()
        .filter_map(|i| match cx.values.get(i) {
            Some(Value::Node(id)) => Some(cx.ty(*id).shape.iter().flat_map(Dim::symbols).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    dims.sort();
    dims.dedup();
    let msg = if dims.is_empty() {
        msg
    } else {
        let flags: Vec<String> = dims.iter().map(|d| format!("--dim {d}=VALUE")).collect();
        format!(
            "{msg} (its inputs have symbolic dims {}; where concrete sizes are needed, give them all: {})",
            dims.join(", "),
            flags.join(" ")
        )
    };
    OnnxError::Node {
        node: name,
        op_type,
        msg,
    }
}

/// A node's name, or `{op_type}_{index}` when it has none.
pub(crate) fn node_name(node: &NodeProto, i: usize) -> String {
    match node.name.as_deref() {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => format!("{}_{i}", node.op_type.as_deref().unwrap_or("node")),
    }
}
