//! Analytic default schedules: chosen from the problem shape alone, no search, so they suit an
//! unknown browser GPU. Each rule is deliberately simple and documented.

use crate::{DeviceLimits, GemmParams, GemvParams, InjectiveParams, RowReduceParams, Schedule};

/// Injective kernels: 256 threads; 4 elements per thread once there is enough work to keep
/// every thread busy, which amortizes index math.
pub fn injective(numel: u64) -> Schedule {
    let elems_per_thread = if numel >= 1 << 20 { 4 } else { 1 };
    Schedule::Injective(InjectiveParams {
        workgroup_size: 256,
        elems_per_thread,
    })
}

/// Row reductions: the smallest power of two covering the row, between 32 and 256 threads.
pub fn row_reduce(row_len: u64) -> Schedule {
    let wg = row_len.next_power_of_two().clamp(32, 256) as u32;
    Schedule::RowReduce(RowReduceParams { workgroup_size: wg })
}

/// GEMM: the first valid schedule for `limits` from an ordered list, by problem size.
///
/// - M, N >= 512: 128x128 blocks with 8x8 vec4 register tiles (256 threads, 64 accumulators),
///   bk 16 where workgroup memory allows, else bk 8.
/// - M, N >= 64: 64x64 blocks with 4x4 vec4 tiles (256 threads).
/// - M <= 4: a 4x256 block (bk 8) for GEMV-like shapes the GEMV kind cannot take (convolutions).
/// - otherwise 32x32 blocks with 2x2 scalar tiles, so that mid-sized problems still launch
///   enough workgroups.
pub fn gemm(m: u64, n: u64, _k: u64, limits: &DeviceLimits) -> Schedule {
    let p = |bm, bn, bk, tm, tn| GemmParams { bm, bn, bk, tm, tn };
    let candidates = if m >= 512 && n >= 512 {
        vec![p(128, 128, 16, 8, 8), p(128, 128, 8, 8, 8), p(64, 64, 16, 4, 4)]
    } else if m >= 64 && n >= 64 {
        vec![p(64, 64, 16, 4, 4), p(64, 64, 8, 4, 4)]
    } else if m <= 4 {
        vec![p(4, 256, 8, 1, 4)]
    } else {
        vec![p(32, 32, 16, 2, 2)]
    };
    first_valid(candidates.into_iter().map(Schedule::Gemm), limits)
}

/// A plain matrix product (not a convolution): the GEMV kind for up to 8 rows of A, whose
/// split-K keeps the whole GPU streaming B; else [`gemm`].
///
/// GEMV: 8 lanes x 32 K-slices (256 threads); a workgroup takes all rows of A when there are
/// at most 4, else 4 at a time (8 rows would need 32 KiB of partial sums at this shape).
pub fn matmul(m: u64, n: u64, k: u64, limits: &DeviceLimits) -> Schedule {
    if m <= 8 {
        let rows = m.clamp(1, 4) as u32;
        let candidates = [32, 16, 8].map(|ksplit| Schedule::Gemv(GemvParams { lanes: 8, ksplit, rows }));
        if let Some(s) = candidates.into_iter().find(|s| s.validate(limits).is_ok()) {
            return s;
        }
    }
    gemm(m, n, k, limits)
}

/// The first candidate that is valid on `limits`, else the last one (whose error then names
/// the limit when the kernel is rendered).
fn first_valid(candidates: impl IntoIterator<Item = Schedule>, limits: &DeviceLimits) -> Schedule {
    let mut last = None;
    for c in candidates {
        if c.validate(limits).is_ok() {
            return c;
        }
        last = Some(c);
    }
    last.expect("at least one candidate")
}
