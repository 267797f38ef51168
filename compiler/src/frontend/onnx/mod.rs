//! ONNX frontend: decodes a `.onnx` file (protobuf), validates its opset imports, and lowers its
//! graph into Kiln's IR primitives.
//!
//! The flow is [`load_onnx`] / [`load_onnx_bytes`] -> decode ([`proto`]) -> graph inputs given
//! fixed values are frozen into initializers ([`freeze_inputs`], [`load_onnx_frozen`]) -> initializers and
//! `Constant` nodes become IR constants (small integer tensors are tracked as compile-time values,
//! see `value.rs`) -> graph inputs become IR inputs with symbolic dims -> every node is lowered by
//! the rule for its `op_type` (`lower/`) -> nodes whose inputs are all constant are evaluated at
//! load time (`fold.rs`) -> graph outputs.
//!
//! Every error names what went wrong and where: the file, the node (name and op type), the input
//! or attribute.

pub mod builder;
mod ctx;
mod data;
mod fold;
mod freeze;
mod lower;
#[rustfmt::skip]
pub mod proto;
mod value;

pub use freeze::{freeze_input_protos, freeze_inputs};
pub use lower::SUPPORTED_OPS;

use crate::Model;
use kiln_ir::{DimBindings, IrError, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Lowest default-domain opset the frontend accepts (numpy broadcasting everywhere from 7 on).
pub const MIN_OPSET: i64 = 7;
/// Highest default-domain opset the frontend knows (the `onnx` 1.23 release).
pub const MAX_OPSET: i64 = 28;

/// An error loading an ONNX model. Each variant says what is wrong and where.
#[derive(Debug, Error)]
pub enum OnnxError {
    /// The model file could not be read.
    #[error("cannot read ONNX model '{path}': {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not a protobuf `ModelProto`.
    #[error("'{name}' is not a valid ONNX model: {reason}")]
    Decode {
        /// File path or model name.
        name: String,
        /// prost's reason.
        reason: String,
    },
    /// An opset import (or its absence) that the frontend cannot lower.
    #[error("{0}")]
    Opset(String),
    /// A node whose op has no lowering.
    #[error("unsupported op '{op_type}' (node '{node}', domain '{domain}')")]
    UnsupportedOp {
        /// ONNX op type.
        op_type: String,
        /// Node name.
        node: String,
        /// Operator domain ('' is the default ONNX domain).
        domain: String,
    },
    /// A node that cannot be lowered: bad attribute, missing input, shapes that do not fit.
    #[error("node '{node}' ({op_type}): {msg}")]
    Node {
        /// Node name.
        node: String,
        /// ONNX op type.
        op_type: String,
        /// What is wrong.
        msg: String,
    },
    /// A node input that Kiln needs at compile time (an op parameter such as a shape, axes, pads,
    /// scales or `k`) is only known at run time. When a graph input feeds the slot (directly, or
    /// through a computation on its value), freezing that input (`kiln compile --freeze
    /// NAME=FILE.npy`) supplies the value.
    #[error("node '{node}' ({op_type}): {msg}{}", freeze_advice(.graph_input))]
    NeedsConstant {
        /// Node name.
        node: String,
        /// ONNX op type.
        op_type: String,
        /// The node's input slot that must be known at compile time.
        input: usize,
        /// What is needed, naming the slot (e.g. "input 1 ('shape') must be known at compile time").
        msg: String,
        /// The graph input that feeds the slot, directly or through a computation on its value,
        /// if any: the input to freeze.
        graph_input: Option<String>,
    },
    /// A well-formed node that uses an op feature Kiln does not implement (an attribute value, a
    /// mode, an optional output): a limitation of Kiln, not an error in the model.
    #[error("node '{node}' ({op_type}): {msg}")]
    Unsupported {
        /// Node name.
        node: String,
        /// ONNX op type.
        op_type: String,
        /// The feature and that it is not supported, e.g. "antialias=1 is not supported".
        msg: String,
    },
    /// An initializer (or `Constant` tensor) that cannot be read.
    #[error("tensor '{name}': {msg}")]
    Tensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// A graph input or output that cannot be represented.
    #[error("graph {kind} '{name}': {msg}")]
    GraphIo {
        /// "input" or "output".
        kind: &'static str,
        /// Value name.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// An IR error outside any node (should not happen for a valid model).
    #[error(transparent)]
    Ir(#[from] IrError),
    /// Anything else about the model's structure.
    #[error("{0}")]
    Model(String),
}

/// The hint that ends a [`OnnxError::NeedsConstant`] message when a graph input can be frozen.
fn freeze_advice(graph_input: &Option<String>) -> String {
    match graph_input {
        Some(v) => format!("; freeze graph input '{v}' to a value with `kiln compile --freeze {v}=FILE.npy`"),
        None => String::new(),
    }
}

/// Loads an ONNX model file and lowers it to the IR.
///
/// `dims` gives values for named symbolic dims (`dim_param`s), as `kiln compile --dim NAME=VALUE`
/// does; bound dims become constants, the others stay symbolic. External tensor data files are
/// looked up relative to the model's directory. The model's name is the graph name, or else the
/// file stem.
pub fn load_onnx(path: &Path, dims: &DimBindings) -> Result<Model, OnnxError> {
    load_onnx_frozen(path, dims, &HashMap::new())
}

/// [`load_onnx`] with some graph inputs frozen to fixed values first ([`freeze_inputs`]), as
/// `kiln compile --freeze NAME=FILE.npy` does: op parameters that a model takes as inputs
/// (Reshape's shape, Slice's starts, Resize's scales, ...) become compile-time constants, and
/// the loaded model no longer has those inputs. Each value must have the input's declared
/// element type (`INT64` inputs take i32 tensors) and fit its declared shape and `dims`.
pub fn load_onnx_frozen(path: &Path, dims: &DimBindings, values: &HashMap<String, Tensor>) -> Result<Model, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let mut proto = decode(&bytes, &path.display().to_string())?;
    let dims = if values.is_empty() {
        dims.clone()
    } else {
        freeze::freeze_with_dims(&mut proto, values, dims)?
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    ctx::lower_model(&proto, &stem, &dims, Some(&base))
}

/// Loads an ONNX model from bytes; `name` is used when the graph has none and in messages.
///
/// Tensors with external data are resolved relative to the current directory.
pub fn load_onnx_bytes(bytes: &[u8], name: &str, dims: &DimBindings) -> Result<Model, OnnxError> {
    let proto = decode(bytes, name)?;
    ctx::lower_model(&proto, name, dims, None)
}

/// Lowers an already decoded `ModelProto` (external data relative to `base_dir`, if given).
pub fn load_onnx_proto(
    model: &proto::ModelProto,
    name: &str,
    dims: &DimBindings,
    base_dir: Option<&Path>,
) -> Result<Model, OnnxError> {
    ctx::lower_model(model, name, dims, base_dir)
}

fn decode(bytes: &[u8], name: &str) -> Result<proto::ModelProto, OnnxError> {
    use prost::Message;
    let m = proto::ModelProto::decode(bytes).map_err(|e| OnnxError::Decode {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    if m.graph.is_none() {
        return Err(OnnxError::Decode {
            name: name.to_string(),
            reason: if bytes.is_empty() {
                "the file is empty".into()
            } else {
                "it has no graph".into()
            },
        });
    }
    Ok(m)
}

/// Converts a `TensorProto` (e.g. a test input read from a `.pb` file) to an IR tensor with the
/// frontend's dtype rules: int64/int32/int16 data become i32 (values must fit), f64/bf16 become
/// f32. External data is resolved relative to `base_dir`.
pub fn tensor_from_proto(t: &proto::TensorProto, base_dir: Option<&Path>) -> Result<kiln_ir::Tensor, OnnxError> {
    let name = t.name.clone().unwrap_or_default();
    let err = |msg: String| OnnxError::Tensor {
        name: name.clone(),
        msg,
    };
    match data::read_tensor(t, base_dir).map_err(err)? {
        data::Literal::Tensor(t) => Ok(t),
        data::Literal::Int { shape, values } => {
            let v = values
                .iter()
                .map(|&x| i32::try_from(x).map_err(|_| err(format!("value {x} is outside the i32 range"))))
                .collect::<Result<Vec<i32>, _>>()?;
            Ok(kiln_ir::Tensor::i32(shape, v))
        }
    }
}
