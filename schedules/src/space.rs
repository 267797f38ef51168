//! Enumerable parameter spaces: every candidate schedule of a kind that is valid on a limits
//! profile. The tuner and the benchmark sweep draw from these; the analytic defaults are
//! members of them.

use crate::{DeviceLimits, GemmParams, GemvParams, Schedule};

/// Tiled GEMM candidates: blocks of 32 to 128, bk 8 to 32, scalar 2x2 and vec4 4x4 to 8x8
/// thread tiles, keeping 64 to 256 threads per workgroup.
pub fn gemm(limits: &DeviceLimits) -> Vec<Schedule> {
    let mut out = Vec::new();
    for bm in [32, 64, 128] {
        for bn in [32, 64, 128] {
            for bk in [8, 16, 32] {
                for (tm, tn) in [(2, 2), (4, 4), (4, 8), (8, 4), (8, 8)] {
                    let p = GemmParams::new(bm, bn, bk, tm, tn);
                    if bm % tm != 0 || bn % tn != 0 || !(64..=256).contains(&p.threads()) {
                        continue;
                    }
                    let s = Schedule::Gemm(p);
                    if s.validate(limits).is_ok() {
                        out.push(s);
                    }
                }
            }
        }
    }
    out
}

/// Split-K GEMM candidates for plain f32 matmuls with few output tiles and a long K: the
/// 32x32 to 128x64 blocks (vec4 tiles where they fit) with K split 2 to 32 ways. Not for
/// convolutions (their epilogue adds the bias inside the kernel).
pub fn gemm_split_k(limits: &DeviceLimits) -> Vec<Schedule> {
    let tiles = [
        GemmParams::new(32, 32, 16, 2, 2),
        GemmParams::new(32, 64, 16, 4, 4),
        GemmParams::new(64, 64, 16, 4, 4),
        GemmParams::new(64, 64, 8, 4, 4),
        GemmParams::new(128, 64, 16, 4, 8),
    ];
    let mut out = Vec::new();
    for t in tiles {
        for ksplit in [2, 4, 8, 16, 32] {
            let s = Schedule::Gemm(t.with_ksplit(ksplit));
            if s.validate(limits).is_ok() {
                out.push(s);
            }
        }
    }
    out
}

/// GEMV candidates: 4 to 64 lanes, K split 4 to 64 ways (64 to 256 threads), 1 to 8 rows.
pub fn gemv(limits: &DeviceLimits, max_rows: u32) -> Vec<Schedule> {
    let mut out = Vec::new();
    for lanes in [4, 8, 16, 32, 64] {
        for ksplit in [4, 8, 16, 32, 64] {
            for rows in [1, 2, 4, 8] {
                if rows > max_rows.max(1) {
                    continue;
                }
                let p = GemvParams { lanes, ksplit, rows };
                if !(64..=256).contains(&p.threads()) {
                    continue;
                }
                let s = Schedule::Gemv(p);
                if s.validate(limits).is_ok() {
                    out.push(s);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults;

    #[test]
    fn spaces_hold_only_valid_schedules_and_contain_the_defaults() {
        for l in [DeviceLimits::webgpu_default(), DeviceLimits::desktop()] {
            let g = gemm(&l);
            let v = gemv(&l, 4);
            assert!(g.len() > 20 && v.len() > 10, "{} gemm, {} gemv", g.len(), v.len());
            assert!(g.iter().chain(&v).all(|s| s.validate(&l).is_ok()));
            for (m, n) in [(4096, 4096), (128, 384), (20, 20)] {
                assert!(g.contains(&defaults::gemm(1, m, n, 64, &l)), "{m}x{n} on {}", l.name);
            }
            assert!(v.contains(&defaults::matmul(1, 1, 4096, 4096, &l)));
            let sk = gemm_split_k(&l);
            assert!(sk.len() >= 20 && sk.iter().all(|s| s.validate(&l).is_ok()));
            let d = defaults::gemm_split_k(1, 128, 384, 1536, &l);
            assert!(sk.contains(&d), "{d} on {}", l.name);
        }
    }
}
