//! The pass pipeline. [`crate::compile`] runs these passes in order, each a small function with
//! a clear input and output type:
//!
//! | pass | input → output | where |
//! | --- | --- | --- |
//! | `specialize` | `Model` → `Graph` | [`crate::specialize`]: `--dim` values, dead nodes removed |
//! | `optimize` | `Graph` → `Graph` | [`crate::opt::optimize`]: e-graph rewriting and cost-model extraction (opt-level ≥ 2) |
//! | `rewrite` | `Graph` → `Graph` | [`rewrite`]: graph rewrites (opt-level 2: sibling matmuls merged) |
//! | `form-kernels` | `Graph` → `Vec<KernelDraft>` | [`crate::lower::fuse::form_kernels`]: fusion per opt-level |
//! | `schedule` | drafts → schedules | [`kiln_schedules::select`] on each draft's [`kiln_schedules::Workload`] |
//! | `codegen` | drafts + schedules → WGSL | [`crate::codegen::render`]: templates, naga validation |
//! | `plan` | drafts → `MemoryPlan` | [`crate::plan::plan`]: buffers and their reuse |
//! | `manifest` | all of the above → `CompiledBundle` | dispatches, weights, limits |
//!
//! `kiln compile --dump DIR` writes the graph after each graph pass as text and Graphviz DOT,
//! and the kernel list after `form-kernels` and `schedule`; `--dump-after PASS` only after one.
//! Per-pass wall times are logged at `-v`.

pub mod dump;
pub mod merge_matmuls;

use crate::{CompileError, CompileOptions};
use kiln_ir::Graph;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Pass names in pipeline order.
pub const PASSES: &[&str] = &[
    "specialize",
    "optimize",
    "rewrite",
    "form-kernels",
    "schedule",
    "codegen",
    "plan",
    "manifest",
];

/// Where and after which pass to write intermediate forms.
#[derive(Clone, Debug)]
pub struct DumpOptions {
    /// Output directory (created if missing).
    pub dir: PathBuf,
    /// Only after this pass (`None`: after every pass that has something to show).
    pub after: Option<String>,
}

impl DumpOptions {
    /// Checks that `after` names a pass.
    pub fn check(&self) -> Result<(), CompileError> {
        match &self.after {
            Some(p) if !PASSES.contains(&p.as_str()) => Err(CompileError::Usage(format!(
                "--dump-after {p}: no such pass (passes: {})",
                PASSES.join(", ")
            ))),
            _ => Ok(()),
        }
    }

    /// Whether to dump after `pass`.
    pub fn wants(&self, pass: &str) -> bool {
        self.after.as_deref().is_none_or(|a| a == pass)
    }
}

/// Wall time of each pass run so far.
#[derive(Clone, Debug, Default)]
pub struct PassTimes {
    /// (pass, time) in order.
    pub times: Vec<(&'static str, Duration)>,
    last: Option<Instant>,
}

impl PassTimes {
    /// Starts timing.
    pub fn start() -> PassTimes {
        PassTimes {
            times: Vec::new(),
            last: Some(Instant::now()),
        }
    }

    /// Records that `pass` ended now.
    pub fn done(&mut self, pass: &'static str) {
        let now = Instant::now();
        let t = now - self.last.unwrap_or(now);
        log::debug!("pass {pass}: {t:.2?}");
        self.times.push((pass, t));
        self.last = Some(now);
    }

    /// One line: every pass with its time, and the total.
    pub fn summary(&self) -> String {
        let total: Duration = self.times.iter().map(|t| t.1).sum();
        let parts: Vec<String> = self.times.iter().map(|(p, t)| format!("{p} {t:.1?}")).collect();
        format!("{} (total {total:.1?})", parts.join(", "))
    }
}

/// The `rewrite` pass: graph-to-graph rewrites enabled at this opt-level.
pub fn rewrite(mut g: Graph, opts: &CompileOptions) -> Result<Graph, CompileError> {
    if opts.opt_level >= 2 {
        let n = merge_matmuls::merge_sibling_matmuls(&mut g)?;
        log::debug!("rewrite: {n} groups of sibling matmuls merged");
        let n = merge_matmuls::merge_sibling_qmatmuls(&mut g)?;
        log::debug!("rewrite: {n} groups of sibling quantized matmuls merged");
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use crate::{compile, CompileOptions, Model};
    use kiln_ir::{DType, Graph, Op, Tensor, TensorType, UnaryOp};

    #[test]
    fn layers_that_render_the_same_wgsl_share_one_kernel() {
        // Four identical layers (different weights, different node names in each kernel's
        // header comment): one kernel per distinct shader, one dispatch per layer.
        let mut g = Graph::new();
        let mut x = g.add_input("x", TensorType::new(DType::F32, &[4, 8]));
        for l in 0..4 {
            let w = g.add_const(
                &format!("w{l}"),
                Tensor::f32(vec![8, 8], (0..64).map(|i| (i + l) as f32 * 0.01).collect()),
            );
            let m = g.add(&format!("mm{l}"), Op::MatMul, &[x, w]).unwrap();
            x = g.add(&format!("act{l}"), Op::Unary(UnaryOp::Tanh), &[m]).unwrap();
        }
        g.add_output("y", x);
        let model = Model {
            name: "layers".into(),
            graph: g,
            io_dtypes: Default::default(),
        };
        let b = compile(&model, &CompileOptions::default()).unwrap();
        let dispatches = b.manifest.programs[0].dispatches.len();
        assert_eq!(dispatches, 4);
        assert_eq!(
            b.manifest.kernels.len(),
            1,
            "the four layers' GEMM+tanh kernels are one"
        );
        assert_eq!(b.kernel_sources.len(), 1);
    }
}
