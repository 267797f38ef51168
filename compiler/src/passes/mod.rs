//! Graph-to-graph optimization passes (opt-level 2), one per file.

pub mod merge_matmuls;
