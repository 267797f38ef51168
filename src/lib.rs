//! Kiln: an ahead-of-time tensor compiler for WebGPU.
//!
//! This root crate re-exports the workspace crates (so top-level `tests/`, `benches/` and
//! `examples/` can use them) and holds what the `kiln` CLI needs on top of them: `.npy` I/O,
//! interpreter/runtime tensor conversion and the embedded demo model.

pub mod convert;
pub mod demo;
pub mod npy;
pub mod tune;
pub mod tune_check;

pub use kiln_abi as abi;
pub use kiln_compiler as compiler;
pub use kiln_conformance as conformance;
pub use kiln_ir as ir;
pub use kiln_runtime as runtime;
pub use kiln_schedules as schedules;
