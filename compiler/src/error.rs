//! Compiler errors: each says what went wrong and where (node, kernel, file).

use thiserror::Error;

/// An error from any compiler stage.
#[derive(Debug, Error)]
pub enum CompileError {
    /// The model file could not be read or understood.
    #[error("{0}")]
    Frontend(String),
    /// The graph is malformed (shape/dtype inference, unsupported construct).
    #[error(transparent)]
    Ir(#[from] kiln_ir::IrError),
    /// A construct the backend cannot compile yet, naming the node.
    #[error("node '{node}' ({op}): {msg}")]
    Unsupported {
        /// Node name.
        node: String,
        /// Op name.
        op: String,
        /// What is missing.
        msg: String,
    },
    /// A kernel does not fit the target's limits.
    #[error("kernel for '{node}' does not fit target '{target}': {msg}")]
    Limits {
        /// Node(s) the kernel computes.
        node: String,
        /// Target profile.
        target: String,
        /// Which limit, what is needed, what the target has.
        msg: String,
    },
    /// Generated WGSL failed naga validation: always a compiler bug.
    #[error("internal compiler bug: generated WGSL for kernel '{kernel}' failed naga validation:\n{message}\n--- shader source ---\n{source_text}")]
    InvalidWgsl {
        /// Kernel name.
        kernel: String,
        /// naga's diagnostic.
        message: String,
        /// The shader source.
        source_text: String,
    },
    /// A template failed to render: a compiler bug.
    #[error("internal compiler bug: template '{template}' failed to render: {msg}")]
    Template {
        /// Template name.
        template: String,
        /// tera's message.
        msg: String,
    },
    /// An inconsistency the compiler produced itself (a bug, never the user's input).
    #[error("internal compiler bug: {0}")]
    Internal(String),
    /// Bad command-line style input (e.g. `--dim` values).
    #[error("{0}")]
    Usage(String),
    /// Writing the bundle failed.
    #[error("writing bundle {path}: {msg}")]
    Io {
        /// Path being written.
        path: String,
        /// OS message.
        msg: String,
    },
}
