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

/// Workgroups a default schedule aims to launch: about one per multiprocessor of a large
/// desktop GPU (the H200 has 132), so a mid-sized problem does not leave most of it idle.
pub const TARGET_WORKGROUPS: u64 = 128;

/// GEMM (`batch` products of M x K by K x N): the largest block tile that still launches
/// [`TARGET_WORKGROUPS`] and fits `limits`, from 128x128 blocks with 8x8 vec4 register tiles
/// down to 32x32 blocks with 2x2 scalar tiles; M <= 4 (a convolution with few output
/// channels) gets a 4x256 block. Measured on the H200 (docs/performance.md): 128x128 is best at
/// 2048^3 and 4096^3, while at 1024^3 it launches only 64 workgroups and 128x64 is 1.5x faster.
pub fn gemm(batch: u64, m: u64, n: u64, _k: u64, limits: &DeviceLimits) -> Schedule {
    let p = |bm, bn, bk, tm, tn| Schedule::Gemm(GemmParams::new(bm, bn, bk, tm, tn));
    if m <= 4 {
        return first_valid([p(4, 256, 8, 1, 4)], limits);
    }
    let order = [
        p(128, 128, 16, 8, 8),
        p(128, 128, 8, 8, 8),
        p(128, 64, 16, 4, 8),
        p(64, 64, 16, 4, 4),
        p(64, 64, 8, 4, 4),
        p(32, 32, 16, 2, 2),
    ];
    let blocks = |s: &Schedule| match s {
        Schedule::Gemm(g) => batch * m.div_ceil(g.bm as u64) * n.div_ceil(g.bn as u64),
        _ => 0,
    };
    let valid: Vec<Schedule> = order.into_iter().filter(|s| s.validate(limits).is_ok()).collect();
    valid
        .iter()
        .find(|s| blocks(s) >= TARGET_WORKGROUPS)
        .or(valid.last())
        .copied()
        .unwrap_or_else(|| p(32, 32, 16, 2, 2))
}

/// Fewest K elements a split-K slice keeps (4 K-steps of 16), so the partial sums stay a small
/// share of the work.
pub const MIN_SPLIT_K_LEN: u64 = 64;

/// GEMM for an f32 matmul that may split K: [`gemm`], unless its output tiles launch fewer than
/// [`TARGET_WORKGROUPS`] workgroups while K is long (at least 256). Then 64x64 vec4 blocks with
/// K split in the fewest power-of-two slices that launch 2 x [`TARGET_WORKGROUPS`] workgroups,
/// each slice keeping at least [`MIN_SPLIT_K_LEN`] of K. MiniLM's FFN-down GEMM at batch 1
/// (128x384x1536) gets 12 tiles x 16 slices = 192 workgroups instead of 48 32x32 blocks that
/// each walk all 1536 of K.
pub fn gemm_split_k(batch: u64, m: u64, n: u64, k: u64, limits: &DeviceLimits) -> Schedule {
    let base = gemm(batch, m, n, k, limits);
    let blocks = |p: &GemmParams| batch * m.div_ceil(p.bm as u64) * n.div_ceil(p.bn as u64);
    let few = match &base {
        Schedule::Gemm(p) => blocks(p) < TARGET_WORKGROUPS,
        _ => false,
    };
    if !few || k < 4 * MIN_SPLIT_K_LEN {
        return base;
    }
    let tile = [GemmParams::new(64, 64, 16, 4, 4), GemmParams::new(64, 64, 8, 4, 4)]
        .into_iter()
        .find(|t| Schedule::Gemm(*t).validate(limits).is_ok());
    let Some(tile) = tile else {
        return base;
    };
    let tiles = blocks(&tile);
    let mut s = 1u32;
    while tiles * (s as u64) < 2 * TARGET_WORKGROUPS && k / (2 * s as u64) >= MIN_SPLIT_K_LEN && s < crate::MAX_KSPLIT {
        s *= 2;
    }
    if s == 1 {
        return base;
    }
    Schedule::Gemm(tile.with_ksplit(s))
}

/// A plain matrix product (not a convolution): the GEMV kind for up to 8 rows of A, whose
/// split-K keeps the whole GPU streaming B; else [`gemm`].
///
/// GEMV: 8 lanes x 32 K-slices (256 threads) when that launches 2 x [`TARGET_WORKGROUPS`],
/// else 4 lanes x 64 slices (measured on the H200: 8x32 is best at N = 11008, 4x64 at
/// N = 4096); a workgroup takes all rows of A when there are at most 4, else 4 at a time.
pub fn matmul(batch: u64, m: u64, n: u64, k: u64, limits: &DeviceLimits) -> Schedule {
    matmul_with(batch, m, n, k, limits, false)
}

/// [`matmul`], taking [`gemm_split_k`] instead of [`gemm`] for more rows when `split_k`.
pub fn matmul_with(batch: u64, m: u64, n: u64, k: u64, limits: &DeviceLimits, split_k: bool) -> Schedule {
    if m <= 8 {
        let rows = m.clamp(1, 4) as u32;
        let g = |lanes, ksplit| Schedule::Gemv(GemvParams { lanes, ksplit, rows });
        let cols = if n.is_multiple_of(4) { n / 4 } else { n };
        let valid: Vec<Schedule> = [g(8, 32), g(4, 64), g(8, 16), g(4, 32), g(4, 16)]
            .into_iter()
            .filter(|s| s.validate(limits).is_ok())
            .collect();
        let blocks = |s: &Schedule| match s {
            Schedule::Gemv(v) => batch * cols.div_ceil(v.lanes as u64),
            _ => 0,
        };
        if let Some(s) = valid
            .iter()
            .find(|s| blocks(s) >= 2 * TARGET_WORKGROUPS)
            .or(valid.get(1))
            .or(valid.first())
        {
            return *s;
        }
    }
    if split_k {
        gemm_split_k(batch, m, n, k, limits)
    } else {
        gemm(batch, m, n, k, limits)
    }
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
