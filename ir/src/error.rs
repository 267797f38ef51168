//! IR errors: each names the node (or value) and what is wrong with it.

use thiserror::Error;

/// An error building, inferring or evaluating a graph.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum IrError {
    /// Shape or dtype inference rejected a node.
    #[error("node '{node}' ({op}): {error}")]
    Infer {
        /// Node name.
        node: String,
        /// Op name.
        op: String,
        /// What is wrong.
        #[source]
        error: Box<crate::InferError>,
    },
    /// The interpreter could not evaluate a node.
    #[error("evaluating node '{node}' ({op}): {msg}")]
    Eval {
        /// Node name.
        node: String,
        /// Op name.
        op: String,
        /// What is wrong.
        msg: String,
    },
    /// A graph input was missing or does not fit its declared type.
    #[error("input '{name}': {msg}")]
    Input {
        /// Input name.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// Anything else about the graph's structure.
    #[error("{0}")]
    Graph(String),
}
