//! Kiln's tensor IR.
//!
//! A model is a [`Graph`] of [`Op`] nodes (petgraph underneath). Every node produces one tensor whose
//! [`TensorType`] (dtype + symbolic [`Shape`]) is inferred when the node is added, so a malformed
//! graph is rejected at the point where it goes wrong. [`interp::evaluate`] is the CPU reference
//! interpreter: the oracle that every GPU result is compared against.

pub mod dim;
pub mod dtype;
pub mod error;
pub mod expr;
pub mod fexpr;
pub mod graph;
pub mod infer;
pub mod interp;
pub mod op;
pub mod quant;
pub mod sample;
pub mod tensor;

pub use dim::{Dim, DimBindings, DimParseError, UnboundDim};
pub use dtype::DType;
pub use error::IrError;
pub use expr::{Access, Expr, ExprError};
pub use graph::{DimAssumption, Graph, Node, NodeId};
pub use infer::InferError;
pub use op::{BinaryOp, Op, ReduceOp, ScatterReduction, SliceAxis, UnaryOp};
pub use quant::BlockType;
pub use tensor::{ByteLengthError, Shape, Tensor, TensorData, TensorType};
