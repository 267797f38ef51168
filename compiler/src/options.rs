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
    /// Arithmetic precision of the kernels: f32 only (the default), or f32 kernels plus f16
    /// variants that the runtime picks where the adapter supports them (`--precision f16`).
    pub precision: Precision,
    /// Storage order of packed quantized weights in the bundle (`--weight-layout`).
    pub quant_layout: QuantLayout,
}

/// How the bundle stores the blocks of a packed quantized weight (`QMatMul` and `QGather`
/// constants). The IR and the interpreter always hold GGUF's order; only the stored bytes and
/// the kernels' block addresses change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QuantLayout {
    /// GGUF's order: each row's blocks one after another (block `kb` of row `r` at byte
    /// `r * row_bytes + kb * block_bytes`).
    #[default]
    Rows,
    /// Block-column-major: block 0 of every row, then block 1, .. (block `kb` of row `r` at
    /// byte `(kb * n + r) * block_bytes`), so consecutive rows' blocks are adjacent.
    BlockColumns,
}

impl std::str::FromStr for QuantLayout {
    type Err = String;

    fn from_str(s: &str) -> Result<QuantLayout, String> {
        match s {
            "rows" => Ok(QuantLayout::Rows),
            "block-columns" => Ok(QuantLayout::BlockColumns),
            other => Err(format!(
                "unknown weight layout '{other}' (expected rows or block-columns)"
            )),
        }
    }
}

/// Which arithmetic the bundle's kernels may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Every kernel computes in f32 (storage is 32-bit in v1).
    #[default]
    F32,
    /// Each f32 GEMM whose operands can be read as vec4s and whose dims are constant also
    /// ships a cooperative-matrix variant (f16 operands, f32 accumulation: tensor cores),
    /// which the runtime runs on adapters with `shader-f16`, cooperative matrices (16x16x16
    /// f16 -> f32) and 32-wide subgroups; elsewhere the f32 kernel runs.
    F16,
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Precision, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            other => Err(format!("unknown precision '{other}' (expected f32 or f16)")),
        }
    }
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            opt_level: 2,
            dims: DimBindings::new(),
            target: DeviceLimits::webgpu_default(),
            tuning: None,
            dump: None,
            precision: Precision::F32,
            quant_layout: QuantLayout::Rows,
        }
    }
}
