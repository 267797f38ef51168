//! A model as a frontend hands it to the compiler.

use kiln_abi::ElemType;
use kiln_ir::Graph;
use std::collections::BTreeMap;

/// A loaded model: the IR graph plus what the graph alone cannot say.
#[derive(Clone, Debug)]
pub struct Model {
    /// Model name (from the file).
    pub name: String,
    /// The lowered graph.
    pub graph: Graph,
    /// Element type that callers use for a graph input or output when it differs from the IR
    /// dtype (e.g. ONNX i64 tensors are i32 in the IR, `i64` here). Keyed by input/output name.
    pub io_dtypes: BTreeMap<String, ElemType>,
}
