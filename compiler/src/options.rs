//! Compile options.

use kiln_ir::DimBindings;
use kiln_schedules::tuning::TuningDb;
use kiln_schedules::DeviceLimits;

/// How to compile a model.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// 0: one kernel per op; 1: fuse same-shape elementwise chains and inline scalar
    /// constants; 2 (default): the optimizer (graph rewrites, injective ops fused into their
    /// consumers, GEMM prologues and epilogues); 3: level 2 plus attention as one kernel
    /// (experimental: one thread per query row, slower than unfused attention on large GPUs).
    pub opt_level: u8,
    /// Values for symbolic dims (`--dim NAME=VALUE`).
    pub dims: DimBindings,
    /// Limits every kernel is checked against.
    pub target: DeviceLimits,
    /// Measured schedules that override the analytic defaults.
    pub tuning: Option<TuningDb>,
    /// Write intermediate forms (`kiln compile --dump`/`--dump-after`).
    pub dump: Option<crate::passes::DumpOptions>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            opt_level: 2,
            dims: DimBindings::new(),
            target: DeviceLimits::webgpu_default(),
            tuning: None,
            dump: None,
        }
    }
}
