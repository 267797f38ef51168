//! Schedule selection: the compiler describes each kernel as a [`Workload`] (the shape of the
//! problem, not how it is computed) and [`select`] returns its schedule: a tuning record for
//! the workload's key when one exists and is valid for the target, else the analytic default.

use crate::tuning::TuningDb;
use crate::{defaults, DeviceLimits, InjectiveParams, Schedule};
use std::fmt;

/// The problem a kernel solves, as far as scheduling cares. Sizes are estimates where the
/// model's dims are symbolic (the compiler substitutes a typical value).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    /// One output element per thread-step (elementwise, data movement, fused chains).
    Injective {
        /// Output elements.
        numel: u64,
        /// Whether 4-vector loads and stores apply and pay (f32 output, a multiple of 4 elements, an
        /// input read at the output's own index).
        vec4: bool,
    },
    /// A reduction (or softmax, layer norm) along rows: one workgroup per row.
    RowReduce {
        /// Rows.
        rows: u64,
        /// Elements per row.
        len: u64,
    },
    /// A layer norm or RMS norm along rows: one workgroup per row ([`defaults::norm`]).
    Norm {
        /// Rows.
        rows: u64,
        /// Elements per row.
        len: u64,
    },
    /// A batched matrix product (or implicit-GEMM convolution).
    Gemm {
        /// Rows of C.
        m: u64,
        /// Columns of C.
        n: u64,
        /// Reduction length.
        k: u64,
        /// Batch count.
        batch: u64,
        /// A plain f32 matmul whose operands are read directly, so the GEMV kind may serve it
        /// when it has few rows (not a convolution, not an integer product).
        gemv: bool,
        /// An f32 matmul (not a convolution) whose K may be split over workgroups, with a
        /// combine dispatch that has a binding to spare for the partial sums.
        split_k: bool,
    },
    /// A matrix product with packed (quantized) weights `x · Wᵀ`: GEMV for few rows, else the
    /// vec4 register tiles of [`defaults::quant_gemm`] (no split-K).
    QuantGemm {
        /// Rows of x (tokens).
        m: u64,
        /// Output columns (rows of W).
        n: u64,
        /// Reduction length.
        k: u64,
        /// The GEMV applies a fused RMS norm to x as it reads it.
        norm: bool,
        /// Each output is a gated pair of W rows (`n` counts the pairs).
        glu: bool,
    },
    /// Prefill attention tiled over keys (flash attention).
    Attention {
        /// Batch (heads) count.
        batch: u64,
        /// Query rows per batch.
        rows: u64,
    },
    /// One thread per row of a data-dependent kernel (top-k, scatter, attention): fixed
    /// 64-thread workgroups.
    PerRow {
        /// Rows.
        rows: u64,
    },
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::Injective { numel, vec4 } => {
                write!(f, "injective(numel={numel}")?;
                if *vec4 {
                    write!(f, ", vec4")?;
                }
                write!(f, ")")
            }
            Workload::RowReduce { rows, len } => write!(f, "row_reduce(rows={rows}, len={len})"),
            Workload::Norm { rows, len } => write!(f, "norm(rows={rows}, len={len})"),
            Workload::Gemm { m, n, k, batch, .. } => write!(f, "gemm(m={m}, n={n}, k={k}, batch={batch})"),
            Workload::QuantGemm { m, n, k, norm, glu } => {
                write!(f, "quant_gemm(m={m}, n={n}, k={k}")?;
                if *norm {
                    write!(f, ", norm")?;
                }
                if *glu {
                    write!(f, ", glu")?;
                }
                write!(f, ")")
            }
            Workload::PerRow { rows } => write!(f, "per_row(rows={rows})"),
            Workload::Attention { batch, rows } => write!(f, "attention(batch={batch}, rows={rows})"),
        }
    }
}

/// Where a selected schedule came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A record of the tuning database.
    Tuned,
    /// The analytic default.
    Default,
}

/// The analytic default schedule of a workload on a limits profile.
pub fn default_for(w: &Workload, limits: &DeviceLimits) -> Schedule {
    match *w {
        Workload::Injective { numel, vec4 } => defaults::injective(numel, vec4),
        Workload::RowReduce { len, .. } => defaults::row_reduce(len),
        Workload::Norm { len, .. } => defaults::norm(len),
        Workload::Gemm {
            m,
            n,
            k,
            batch,
            gemv: true,
            split_k,
        } => defaults::matmul_with(batch, m, n, k, limits, split_k),
        Workload::Gemm {
            m,
            n,
            k,
            batch,
            split_k: true,
            ..
        } => defaults::gemm_split_k(batch, m, n, k, limits),
        Workload::Gemm { m, n, k, batch, .. } => defaults::gemm(batch, m, n, k, limits),
        Workload::QuantGemm { m, n, k, norm, glu } => defaults::quant_matmul(m, n, k, norm, glu, limits),
        Workload::Attention { batch, rows } => defaults::attention(batch, rows, limits),
        Workload::PerRow { .. } => Schedule::Injective(InjectiveParams {
            workgroup_size: 64,
            elems_per_thread: 1,
            vector: 1,
        }),
    }
}

/// Selects the schedule of a workload: the tuning record stored under `key` when there is one,
/// else the analytic default. Either is then validated against the target's limits by the
/// caller, so a record that does not fit the target is reported, not silently replaced.
pub fn select(w: &Workload, key: &str, tuning: Option<&TuningDb>, limits: &DeviceLimits) -> (Schedule, Source) {
    match tuning.and_then(|t| t.get(key)) {
        Some(s) => (s, Source::Tuned),
        None => (default_for(w, limits), Source::Default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_workload_kind() {
        let (s, src) = select(
            &Workload::Gemm {
                m: 1024,
                n: 1024,
                k: 64,
                batch: 1,
                gemv: true,
                split_k: true,
            },
            "k",
            None,
            &DeviceLimits::desktop(),
        );
        // 1024^2: 128x128 blocks launch 64 workgroups, so the default steps down to 128x64.
        assert!(matches!(s, Schedule::Gemm(p) if p.bm == 128 && p.bn == 64 && p.ksplit == 1));
        assert_eq!(src, Source::Default);
        // MiniLM's FFN-down GEMM at batch 1: few output tiles, so K = 1536 is split and every
        // workgroup walks a few K-steps (the model prices each step's latency); without split-K
        // allowed (a convolution) the plain default stays.
        let ffn_down = |split_k| Workload::Gemm {
            m: 128,
            n: 384,
            k: 1536,
            batch: 1,
            gemv: false,
            split_k,
        };
        for d in [DeviceLimits::desktop(), DeviceLimits::h200()] {
            let (s, _) = select(&ffn_down(true), "k", None, &d);
            let Schedule::Gemm(p) = s else { panic!("{s}") };
            let steps = 1536u32.div_ceil(p.ksplit).div_ceil(p.bk);
            let wgs = 128u32.div_ceil(p.bm) * 384u32.div_ceil(p.bn) * p.ksplit;
            assert!(p.ksplit > 1 && steps <= 8 && wgs >= 64, "{s} on {}", d.name);
            let (s, _) = select(&ffn_down(false), "k", None, &d);
            assert!(matches!(s, Schedule::Gemm(p) if p.ksplit == 1), "{s}");
        }
        let d = DeviceLimits::desktop();
        // Enough tiles (batch 32) or a short K: no split.
        for (m, k) in [(4096, 384), (128, 128)] {
            let w = Workload::Gemm {
                m,
                n: 1152,
                k,
                batch: 1,
                gemv: true,
                split_k: true,
            };
            let (s, _) = select(&w, "k", None, &d);
            assert!(matches!(s, Schedule::Gemm(p) if p.ksplit == 1), "{m}x{k}: {s}");
        }
        // Quantized matmuls: GEMV for decode steps, vec4 register tiles for a prefill; the
        // 1.7B shapes at 512 tokens get blocks of at least 64x64 on the H200 profile.
        let q = |m, n, k| Workload::QuantGemm {
            m,
            n,
            k,
            norm: false,
            glu: false,
        };
        let (s, _) = select(&q(1, 576, 576), "k", None, &d);
        assert!(matches!(s, Schedule::Gemv(_)), "{s}");
        for (m, n, k) in [(64, 576, 576), (512, 3072, 2048), (512, 2048, 8192), (512, 16384, 2048)] {
            for l in [
                DeviceLimits::desktop(),
                DeviceLimits::h200(),
                DeviceLimits::webgpu_default(),
            ] {
                let (s, _) = select(&q(m, n, k), "k", None, &l);
                assert!(matches!(s, Schedule::Gemm(p) if p.is_vec4() && p.ksplit == 1), "{s}");
            }
        }
        for (n, k) in [(3072, 2048), (2048, 8192)] {
            let (s, _) = select(&q(512, n, k), "k", None, &DeviceLimits::h200());
            assert!(
                matches!(s, Schedule::Gemm(p) if p.bm >= 64 && p.bn >= 64),
                "{n}x{k}: {s}"
            );
        }
        // A decode step's `probs · V` (3 query rows per KV head, one head's 64 columns, K the
        // context): one 4x256 block per head walking all of K is latency-bound, so K is split.
        for d in [DeviceLimits::desktop(), DeviceLimits::h200()] {
            let pv_split = |split_k| Workload::Gemm {
                m: 3,
                n: 64,
                k: 1024,
                batch: 3,
                gemv: false,
                split_k,
            };
            let pv = pv_split(true);
            let (s, _) = select(&pv, "k", None, &d);
            assert!(
                matches!(s, Schedule::Gemm(p) if p.bm == 4 && p.ksplit >= 4),
                "{s} on {}",
                d.name
            );
            let (s, _) = select(&pv_split(false), "k", None, &d);
            assert!(
                matches!(s, Schedule::Gemm(p) if p.bm == 4 && p.ksplit == 1),
                "{s} on {}",
                d.name
            );
        }
        let l = DeviceLimits::desktop();
        let (s, _) = select(&Workload::RowReduce { rows: 8, len: 100 }, "k", None, &l);
        assert!(matches!(s, Schedule::RowReduce(p) if p.workgroup_size == 128));
        let (s, _) = select(&Workload::PerRow { rows: 8 }, "k", None, &l);
        assert!(matches!(s, Schedule::Injective(p) if p.workgroup_size == 64));
    }
}
