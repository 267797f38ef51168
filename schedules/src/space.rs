//! Enumerable parameter spaces: every candidate schedule of a kind that is valid on a limits
//! profile. The tuner and the benchmark sweep draw from these; the analytic defaults are
//! members of them.

use crate::{defaults, CoopGemmParams, DeviceLimits, GemmParams, GemvParams, Schedule};

/// Tiled GEMM candidates: blocks of 32 to 128, bk 8 to 32, scalar 2x2 and vec4 4x4 to 8x8
/// thread tiles (each vec4 tile also double-buffered), keeping 64 to 256 threads per workgroup;
/// plus every tile the analytic defaults choose from and the [`WIDE_GEMM_TILES`].
pub fn gemm(limits: &DeviceLimits) -> Vec<Schedule> {
    let mut out = Vec::new();
    let mut push = |p: GemmParams| {
        let s = Schedule::Gemm(p);
        if s.validate(limits).is_ok() && !out.contains(&s) {
            out.push(s);
        }
    };
    for bm in [32, 64, 128] {
        for bn in [32, 64, 128] {
            for bk in [8, 16, 32] {
                for (tm, tn) in [(2, 2), (4, 4), (4, 8), (8, 4), (8, 8)] {
                    let p = GemmParams::new(bm, bn, bk, tm, tn);
                    if bm % tm != 0 || bn % tn != 0 || !(64..=256).contains(&p.threads()) {
                        continue;
                    }
                    push(p);
                    if p.is_vec4() {
                        push(p.double_buffered());
                    }
                }
            }
        }
    }
    for p in defaults::gemm_tiles() {
        push(p);
    }
    for (bm, bn, bk, tm, tn) in WIDE_GEMM_TILES {
        push(GemmParams::new(bm, bn, bk, tm, tn));
    }
    out
}

/// Register tiles of 8x16 and 16x8 (128 accumulators per thread: 6 workgroup-memory vec4
/// reads per 128 FMAs instead of 4 per 64) for large products, in 128x128 blocks of 128
/// threads and 128x256 / 256x128 blocks of 256 threads; members of [`gemm`].
pub const WIDE_GEMM_TILES: [(u32, u32, u32, u32, u32); 8] = [
    (128, 128, 8, 8, 16),
    (128, 128, 16, 8, 16),
    (128, 128, 8, 16, 8),
    (128, 128, 16, 16, 8),
    (128, 256, 8, 8, 16),
    (128, 256, 16, 8, 16),
    (256, 128, 8, 16, 8),
    (256, 128, 16, 16, 8),
];

/// The 8x8 register tile in blocks of 64 and 128 threads (64x64, 128x64, 64x128): a finer grain
/// of work than the 128x128 block for products whose 128x128 grid leaves the multiprocessors
/// unevenly loaded (MiniLM-L3 at 32x128: 288 blocks of 4096x1152 on 132 multiprocessors);
/// members of [`gemm`], split over K in [`gemm_split_k`].
pub const SMALL_8X8_TILES: [(u32, u32, u32, u32, u32); 3] =
    [(64, 64, 16, 8, 8), (128, 64, 16, 8, 8), (64, 128, 16, 8, 8)];

/// Split-K GEMM candidates for plain f32 matmuls with few output tiles and a long K: every
/// tile the analytic defaults choose from ([`defaults::gemm_tiles`]) and the
/// [`SMALL_8X8_TILES`], with K split 2 to 32 ways. Not for convolutions (their epilogue adds the
/// bias inside the kernel).
pub fn gemm_split_k(limits: &DeviceLimits) -> Vec<Schedule> {
    let mut out = Vec::new();
    let small = SMALL_8X8_TILES.map(|(bm, bn, bk, tm, tn)| GemmParams::new(bm, bn, bk, tm, tn));
    for t in defaults::gemm_tiles().into_iter().chain(small) {
        for ksplit in [2, 4, 8, 16, 32] {
            let s = Schedule::Gemm(t.with_ksplit(ksplit));
            if s.validate(limits).is_ok() {
                out.push(s);
            }
        }
    }
    out
}

/// Quantized GEMM candidates (the `qgemm_vec4` template: vec4 thread tiles, no split-K): the
/// vec4 members of [`gemm`] with bk a multiple of 4 and at most 8x8 accumulators, plus [`defaults::quant_gemm_tiles`].
pub fn quant_gemm(limits: &DeviceLimits) -> Vec<Schedule> {
    let mut out: Vec<Schedule> = gemm(limits)
        .into_iter()
        .filter(|s| {
            matches!(s, Schedule::Gemm(p) if p.is_vec4() && p.bk.is_multiple_of(4) && p.ksplit == 1 && p.tm * p.tn <= 64)
        })
        .collect();
    for p in defaults::quant_gemm_tiles() {
        let s = Schedule::Gemm(p);
        if s.validate(limits).is_ok() && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Cooperative-matrix GEMM candidates: tiles with 1 to 16 subgroups of at least 4 fragments
/// each whose stages fit the workgroup memory (128x256 and 256x128 blocks of 64x64 subgroup
/// tiles with bk 16, and 128x256 of 64x32 or 32x64; where 48 KiB are allowed also 256x128 of
/// 64x32 with bk 16, 128x256 of 64x32 with bk 32 and 128x256 and 256x128 of 64x64 with bk
/// 32; deeper steps, 128x256 and 256x128 of 64x32
/// with bk 48 and 128x128 of 64x32 with bk 48 or 64, whose stages leave no room for the
/// epilogue scratch at 48 KiB and so serve whole-block products without an epilogue; 128x128
/// blocks of 64x64, 64x32 or 32x32 tiles with bk 16, of 64x64 or 64x32 with bk 32; 128x64 of
/// 64x32; 64x128 of 32x64; 64x64 with bk 64 or 32; and, for narrow products, 32x64, 64x32 and
/// 32x32 blocks of 32x32 tiles), each staging f16 scalars or vec4s, and each vec4-staged tile
/// also double-buffered where its two stages fit (two K-steps per loop iteration, so every
/// stage offset is a constant; on the H200 the 128x256 bk-16 form is within a few percent of
/// the single-stage bk-32 default, the other double-buffered tiles are slower).
pub fn coop_gemm(limits: &DeviceLimits) -> Vec<Schedule> {
    let tiles = [
        (128, 256, 16, 64, 64),
        (256, 128, 16, 64, 64),
        (128, 256, 16, 64, 32),
        (128, 256, 16, 32, 64),
        // 16 subgroups that need more than 32 KiB (an adapter with 48 KiB, as NVIDIA's).
        (256, 128, 16, 64, 32),
        (128, 256, 32, 64, 32),
        // 8 subgroups of 64x64 tiles (16 accumulators each: fewer fragment loads per
        // multiply) with bk 32.
        (128, 256, 32, 64, 64),
        (256, 128, 32, 64, 64),
        // Deeper K-steps whose stages fit 48 KiB only without the epilogue scratch: for
        // whole-block products without an epilogue, which store fragments straight to C.
        (128, 256, 48, 64, 32),
        (256, 128, 48, 64, 32),
        (128, 128, 48, 64, 32),
        (128, 128, 64, 64, 32),
        (128, 128, 16, 64, 64),
        (128, 128, 16, 64, 32),
        (128, 128, 16, 32, 32),
        (128, 128, 32, 64, 32),
        (128, 128, 32, 64, 64),
        (128, 64, 32, 64, 32),
        (64, 128, 32, 32, 64),
        (128, 64, 64, 64, 32),
        (64, 64, 64, 32, 32),
        (64, 64, 32, 32, 32),
        (32, 64, 32, 32, 32),
        (64, 32, 32, 32, 32),
        (32, 32, 32, 32, 32),
    ];
    let mut out = Vec::new();
    for vec_stage in [false, true] {
        for (bm, bn, bk, sm, sn) in tiles {
            let p = CoopGemmParams {
                bm,
                bn,
                bk,
                sm,
                sn,
                vec_stage,
                double_buffer: false,
            };
            let variants = if vec_stage {
                vec![p, p.double_buffered()]
            } else {
                vec![p]
            };
            for p in variants {
                let s = Schedule::CoopGemm(p);
                if s.validate(limits).is_ok() {
                    out.push(s);
                }
            }
        }
    }
    out
}

/// Cooperative-matrix candidates of the quantized GEMM's f16 variant (`qgemm_coop.wgsl`, which
/// always stages vec4s and stores C through the epilogue scratch): the vec4-staged members of
/// [`coop_gemm`] that fit the limits with the scratch.
pub fn quant_coop_gemm(limits: &DeviceLimits) -> Vec<Schedule> {
    coop_gemm(limits)
        .into_iter()
        .filter(|s| matches!(s, Schedule::CoopGemm(p) if p.vec_stage && p.fits_with_scratch(limits)))
        .collect()
}

/// GEMV candidates: 4 to 64 lanes, K split 4 to 64 ways (64 to 256 threads), 1 to 8 rows;
/// then, for f32 products of few columns, the wider splits of [`gemv_wide_k`] and the splits
/// over workgroups of [`gemv_k_slices`].
pub fn gemv(limits: &DeviceLimits, max_rows: u32) -> Vec<Schedule> {
    let mut out = gemv_base(limits, max_rows);
    out.extend(gemv_wide_k(limits, max_rows));
    out.extend(gemv_k_slices(limits, max_rows));
    out
}

/// f32 GEMV candidates that split K over 2 to 16 workgroups ([`GemvParams::slices`]): 16 to
/// 64 lanes of vec4s (256 to 1024 contiguous bytes of each row of B) with K split 4 or 8 ways
/// inside the workgroup (64 to 512 threads). A product the split does not apply to (see the
/// compiler's `GemvSlices`) rejects them when they are rendered.
pub fn gemv_k_slices(limits: &DeviceLimits, max_rows: u32) -> Vec<Schedule> {
    let mut out = Vec::new();
    for slices in [2, 4, 8, 16] {
        for s in gemv_grid(limits, max_rows, &[16, 32, 64], &[4, 8], 64..=512) {
            if let Schedule::Gemv(p) = s {
                out.push(Schedule::Gemv(p.with_slices(slices)));
            }
        }
    }
    out
}

/// The GEMV candidates every kind takes: 4 to 64 lanes, K split 4 to 64 ways (64 to 256
/// threads), 1 to 8 rows.
fn gemv_base(limits: &DeviceLimits, max_rows: u32) -> Vec<Schedule> {
    gemv_grid(limits, max_rows, &[4, 8, 16, 32, 64], &[4, 8, 16, 32, 64], 64..=256)
}

/// GEMV candidates that split K further for outputs too few to fill the device with 4-lane
/// workgroups (a 4096-wide f32 GEMV launches 256 of them): 2 lanes (32 bytes of each W row,
/// a whole memory sector) split 32 to 128 ways, and 4 lanes split 128 ways (512 threads).
/// Not offered to the quantized GEMV, whose weight rows are read a block at a time.
pub fn gemv_wide_k(limits: &DeviceLimits, max_rows: u32) -> Vec<Schedule> {
    let mut out = gemv_grid(limits, max_rows, &[2], &[32, 64, 128], 64..=256);
    out.extend(gemv_grid(limits, max_rows, &[4], &[128], 512..=512));
    out
}

/// The valid GEMV schedules of each `lanes` x `ksplit` x rows (1 to 8, at most `max_rows`)
/// whose thread count is in `threads`.
fn gemv_grid(
    limits: &DeviceLimits,
    max_rows: u32,
    lanes: &[u32],
    ksplits: &[u32],
    threads: std::ops::RangeInclusive<u32>,
) -> Vec<Schedule> {
    let mut out = Vec::new();
    for &l in lanes {
        for &ksplit in ksplits {
            for rows in [1, 2, 4, 8] {
                if rows > max_rows.max(1) {
                    continue;
                }
                let p = GemvParams::new(l, ksplit, rows);
                if !threads.contains(&p.threads()) {
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

/// Quantized GEMV candidates: the [`gemv`] candidates of 4 to 64 lanes and K split 4 to 64
/// ways, each also with 2 and 4 rows of W per
/// lane where the accumulators (rows of x times lane rows) stay at most 8, and those whose
/// lanes have at most [`SUBGROUP_SUM_MAX_KSPLIT`] threads also with subgroup sums
/// (`GemvParams::sg`).
pub fn quant_gemv(limits: &DeviceLimits, max_rows: u32) -> Vec<Schedule> {
    let mut out = Vec::new();
    for s in gemv_base(limits, max_rows) {
        let Schedule::Gemv(p) = s else { continue };
        for lane_rows in [1, 2, 4] {
            for sg in [false, true] {
                if sg && p.ksplit > SUBGROUP_SUM_MAX_KSPLIT {
                    continue;
                }
                let c = Schedule::Gemv(GemvParams { lane_rows, sg, ..p });
                if c.validate(limits).is_ok() {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// Quantized GEMV candidates of 512 and 1024 threads for GEMVs that must own whole blocks of
/// 32 outputs per workgroup (a GEMV that rounds its outputs to 8 bits): 32 lanes of 1 or 2
/// rows or 16 lanes of 2, 32 threads each, with and without subgroup sums, valid on `limits`. At the 1.7B
/// SwiGLU shape on the H200 these kept as many threads in flight as the gated GEMV's 4-lane
/// default, where the 256-thread forms of [`quant_gemv`] launched an eighth as many
/// (docs/performance.md, fifteenth session).
pub fn quant_gemv_wide(limits: &DeviceLimits, max_rows: u32) -> Vec<Schedule> {
    let mut out = Vec::new();
    for lanes in [16, 32] {
        for lane_rows in [1, 2] {
            for rows in [1, 2, 4, 8] {
                if rows > max_rows.max(1) || rows * lane_rows > 8 || !(lanes * lane_rows).is_multiple_of(32) {
                    continue;
                }
                for sg in [true, false] {
                    let c = Schedule::Gemv(GemvParams {
                        lane_rows,
                        sg,
                        ..GemvParams::new(lanes, 32, rows)
                    });
                    if c.validate(limits).is_ok() {
                        out.push(c);
                    }
                }
            }
        }
    }
    out
}

/// The widest lane the tuner tries with subgroup sums: 32 threads, the subgroup width of
/// NVIDIA, Apple and most AMD and Intel GPUs (wider lanes would run as the variant on few).
pub const SUBGROUP_SUM_MAX_KSPLIT: u32 = 32;

/// Cooperative-matrix attention candidates: 1, 2 or 4 subgroups of 16 query rows, key blocks
/// of 16, 32 or 64, and 1, 2, 4 or 8 key slices, valid on `limits` (workgroup memory checked
/// at head dim 64).
pub fn coop_attention(limits: &DeviceLimits) -> Vec<Schedule> {
    let mut out = Vec::new();
    for subgroups in [1, 2, 4] {
        for bk in [16, 32, 64] {
            for slices in [1, 2, 4, 8] {
                let s = Schedule::CoopAttention(crate::CoopAttentionParams { subgroups, bk, slices });
                if s.validate(limits).is_ok() {
                    out.push(s);
                }
            }
        }
    }
    out
}

/// Prefill attention candidates: 16, 32 or 64 query rows per workgroup, 1, 2, 4 or 8
/// threads per row with 4 or 8 keys each per block (blocks of 8 to 64 keys), 32 to 256
/// threads, valid on `limits` (workgroup memory checked at head dim 64); those of 32 or 64
/// rows with 8 keys per thread also with the keys split over 2 or 4 workgroups; smallest
/// workgroup memory first.
pub fn attention(limits: &DeviceLimits) -> Vec<Schedule> {
    let mut out = Vec::new();
    for rows in [16, 32, 64] {
        for splits in [1, 2, 4, 8] {
            for keys in [4, 8] {
                let p = crate::AttentionParams {
                    rows,
                    bk: splits * keys,
                    splits,
                    slices: 1,
                    tm: 1,
                    pbuf: false,
                    sg: false,
                    vhalf: false,
                };
                let s = Schedule::Attention(p);
                if p.bk >= 8 && (32..=256).contains(&p.threads()) && s.validate(limits).is_ok() {
                    out.push(s);
                    // Tiles of 32 or 64 rows with 8 keys per thread also split over 2 or 4
                    // key slices (few heads of a long sequence).
                    if rows >= 32 && keys == 8 {
                        for slices in [2, 4] {
                            out.push(Schedule::Attention(crate::AttentionParams { slices, ..p }));
                        }
                    }
                }
            }
        }
    }
    // The register-tiled kernel: 16, 32 or 64 rows in groups of 4 per thread, 4, 8 or 16
    // threads per row group with 4 or 8 keys each per block, the probabilities over the key
    // block or in their own (`pbuf`, where it fits), the latter also with the subgroup variant
    // (`sg`); those of 32 or 64 rows also over 2, 4 or 8 key slices.
    for rows in [16, 32, 64] {
        for splits in [4, 8, 16] {
            for keys in [4, 8] {
                for (pbuf, sg) in [(false, false), (true, false), (true, true)] {
                    let p = crate::AttentionParams {
                        pbuf,
                        sg,
                        ..crate::AttentionParams::tiled(rows, splits * keys, splits)
                    };
                    let s = Schedule::Attention(p);
                    if (32..=256).contains(&p.threads()) && s.validate(limits).is_ok() {
                        out.push(s);
                        if rows >= 32 {
                            for slices in [2, 4, 8] {
                                out.push(Schedule::Attention(crate::AttentionParams { slices, ..p }));
                            }
                        }
                    }
                }
            }
        }
    }
    // 64-key blocks of 64 rows over 16 threads per row group (256 threads: twice the warps of
    // the 32-key tile, which on the H200 waited on workgroup-memory latency), the values in
    // two halves so that they fit 48 KiB, with and without the subgroup variant, unsplit and
    // over 2, 4 or 8 key slices. (8 threads per row group, a 4 x 8 score tile, measured no
    // faster than the 32-key tile: docs/performance.md, twenty-second session.)
    for sg in [false, true] {
        let p = crate::AttentionParams {
            vhalf: true,
            sg,
            ..crate::AttentionParams::tiled(64, 64, 16)
        };
        if Schedule::Attention(p).validate(limits).is_ok() {
            for slices in [1, 2, 4, 8] {
                out.push(Schedule::Attention(crate::AttentionParams { slices, ..p }));
            }
        }
    }
    let bytes = |s: &Schedule| match s {
        Schedule::Attention(p) => p.workgroup_bytes(64, 64),
        _ => 0,
    };
    out.sort_by_key(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_hold_only_valid_schedules_and_contain_the_defaults() {
        for l in [
            DeviceLimits::webgpu_default(),
            DeviceLimits::desktop(),
            DeviceLimits::h200(),
        ] {
            let g = gemm(&l);
            let v = gemv(&l, 4);
            let q = quant_gemv(&l, 1);
            assert!(q.len() > 2 * gemv_base(&l, 1).len(), "{} quantized gemv", q.len());
            assert!(q
                .iter()
                .all(|s| matches!(s, Schedule::Gemv(p) if p.rows * p.lane_rows <= 8)));
            assert!(g.len() > 20 && v.len() > 10, "{} gemm, {} gemv", g.len(), v.len());
            assert!(g.iter().chain(&v).all(|s| s.validate(&l).is_ok()));
            for (m, n) in [(4096, 4096), (128, 384), (20, 20)] {
                assert!(g.contains(&defaults::gemm(1, m, n, 64, &l)), "{m}x{n} on {}", l.name);
            }
            assert!(v.contains(&defaults::matmul(1, 1, 4096, 4096, &l)));
            assert!(v.contains(&defaults::matmul(1, 1, 11008, 4096, &l)));
            assert!(v.contains(&defaults::matmul(1, 2, 4096, 4096, &l)));
            // The quantized GEMM's defaults (a prefill's shapes) are members of its space.
            let q = quant_gemm(&l);
            assert!(q.len() > 10 && q.iter().all(|s| s.validate(&l).is_ok()));
            for (m, n, k) in [(512, 3072, 2048), (512, 2048, 8192), (64, 576, 576), (13, 8, 256)] {
                let d = defaults::quant_matmul(m, n, k, false, false, &l);
                assert!(q.contains(&d), "{d} on {}", l.name);
            }
            // So are the decode step's GEMV defaults, with and without a fused norm or gated pair.
            let qv = quant_gemv(&l, 4);
            for (norm, glu) in [(false, false), (true, false), (true, true)] {
                let d = defaults::quant_matmul(1, 8192, 2048, norm, glu, &l);
                assert!(qv.contains(&d), "{d} on {}", l.name);
            }
            // The f16 variants' defaults (f32 GEMM and the quantized GEMM of a prefill).
            let c = coop_gemm(&l);
            let qc = quant_coop_gemm(&l);
            assert!(qc.len() >= 4 && qc.iter().all(|s| c.contains(s)));
            for (m, n) in [(4096, 4096), (512, 576), (512, 8192)] {
                let d = defaults::coop_gemm(1, m, n, &l);
                if d.validate(&l).is_ok() {
                    assert!(c.contains(&d), "{d} on {}", l.name);
                }
                let d = defaults::quant_coop_gemm(m, n, &l);
                if d.validate(&l).is_ok() {
                    assert!(qc.contains(&d), "{d} on {}", l.name);
                }
            }
            // Attention: every candidate valid (two fit WebGPU's 16 KiB of workgroup memory, 16
            // on `desktop`), the defaults (short and long sequences) members.
            let a = attention(&l);
            assert!(a.len() >= 2 && a.iter().all(|s| s.validate(&l).is_ok()), "{a:?}");
            for (batch, sq) in [(12, 512), (12, 128), (384, 128), (1, 1)] {
                assert!(
                    a.contains(&defaults::attention(batch, sq, &l)),
                    "{batch}x{sq} on {}",
                    l.name
                );
            }
            if l.max_compute_workgroup_storage_size >= 32768 {
                assert!(a.len() >= 10, "{a:?}");
            }
            let sk = gemm_split_k(&l);
            assert!(sk.len() >= 20 && sk.iter().all(|s| s.validate(&l).is_ok()));
            // Every default of MiniLM's shapes (M = 128 and 4096) and the square sizes, with
            // and without split-K, is a member the tuner and the sweep try.
            for (m, n, k) in [
                (128, 384, 1536),
                (128, 1152, 384),
                (128, 1536, 384),
                (128, 384, 384),
                (4096, 384, 1536),
                (4096, 1152, 384),
                (4096, 1536, 384),
                (1024, 1024, 1024),
                (4096, 4096, 4096),
            ] {
                let d = defaults::gemm_split_k(1, m, n, k, &l);
                assert!(sk.contains(&d) || g.contains(&d), "{d} on {}", l.name);
                let d = defaults::gemm(1, m, n, k, &l);
                assert!(g.contains(&d), "{d} on {}", l.name);
            }
        }
    }
}
