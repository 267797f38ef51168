//! Frontends: parse a model file, validate it, lower it into the IR.

pub mod gguf;
pub mod onnx;
