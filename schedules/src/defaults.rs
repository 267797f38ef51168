//! Analytic default schedules: chosen from the problem shape alone, no search, so they suit an
//! unknown browser GPU. Each rule is deliberately simple and documented.

use crate::{
    AttentionParams, CoopAttentionParams, CoopGemmParams, DeviceLimits, GemmParams, GemvParams, InjectiveParams,
    RowReduceParams, Schedule,
};

/// Injective kernels: 256 threads; 4 elements per thread once there is enough work to keep
/// every thread busy, which amortizes index math and keeps several loads in flight per thread.
/// Those large kernels also take 4-vector loads and stores where they apply and pay (`vec4`,
/// see `compiler::codegen::injective_vec4_pays`): on the H200 a copy of 16M f32 went from
/// 2.49 to 3.1–3.4 TB/s and an add from 3.0 to 3.6 TB/s (PyTorch 3.85 and 4.05), while small
/// ones (PP-OCRv4's kernels of 1 element per thread) were about 1 µs slower with 4-vectors.
pub fn injective(numel: u64, vec4: bool) -> Schedule {
    let large = numel >= 1 << 20;
    Schedule::Injective(InjectiveParams {
        workgroup_size: 256,
        elems_per_thread: if large { 4 } else { 1 },
        vector: if vec4 && large { 4 } else { 1 },
    })
}

/// Row reductions: the smallest power of two covering the row, between 32 and 256 threads.
pub fn row_reduce(row_len: u64) -> Schedule {
    let wg = row_len.next_power_of_two().clamp(32, 256) as u32;
    Schedule::RowReduce(RowReduceParams { workgroup_size: wg })
}

/// Longest row a norm kernel reduces with [`NORM_SHORT_ROW_THREADS`] threads.
pub const NORM_SHORT_ROW: u64 = 512;

/// Threads of a norm kernel over a short row: a few elements per thread. The layer-norm
/// template reduces twice (mean, then variance) through a tree in workgroup memory, a barrier
/// per level, so a short row is bound by those rounds rather than by its bytes: on the H200
/// (docs/performance.md, ninth session) MiniLM-L3's seven 4096x384 layer norms at 32x128 took
/// 16 us each with 256 threads (1.5 elements per thread, 8 levels), and the model ran 2.337 ms
/// with 64 threads (6 per thread, 6 levels) against 2.417 ms.
pub const NORM_SHORT_ROW_THREADS: u32 = 64;

/// Layer and RMS norms: [`row_reduce`], at most [`NORM_SHORT_ROW_THREADS`] threads for rows of
/// up to [`NORM_SHORT_ROW`] elements.
pub fn norm(row_len: u64) -> Schedule {
    match row_reduce(row_len) {
        Schedule::RowReduce(p) if row_len <= NORM_SHORT_ROW => Schedule::RowReduce(RowReduceParams {
            workgroup_size: p.workgroup_size.min(NORM_SHORT_ROW_THREADS),
        }),
        s => s,
    }
}

/// Workgroups a default schedule aims to launch: about one per multiprocessor of a large
/// desktop GPU (the H200 has 132), so a mid-sized problem does not leave most of it idle. The
/// GEMV default uses it; the GEMM defaults reason with the profile's
/// [`DeviceLimits::compute_units`] instead.
pub const TARGET_WORKGROUPS: u64 = 128;

/// Fewest K elements a split-K slice keeps, so the partial sums stay a small share of the work.
pub const MIN_SPLIT_K_LEN: u64 = 64;

/// The block tiles the GEMM defaults choose from, in order of preference (ties go to the
/// earlier one): the 8x8 vec4 register tiles measured best at 2048^3 and 4096^3 on the H200
/// first, then narrower tiles for problems with few output blocks, and the scalar 2x2 tile last
/// (the only one whose K-step fits every profile). Each vec4 tile is also tried double-buffered.
pub const GEMM_TILES: [(u32, u32, u32, u32, u32); 13] = [
    (128, 128, 16, 8, 8),
    (128, 128, 8, 8, 8),
    (128, 64, 16, 4, 8),
    (64, 128, 16, 8, 4),
    (128, 64, 32, 4, 8),
    (64, 64, 16, 4, 4),
    (64, 64, 32, 4, 4),
    (64, 64, 8, 4, 4),
    (32, 64, 32, 4, 4),
    (32, 64, 16, 4, 4),
    (32, 32, 32, 4, 4),
    (32, 32, 16, 4, 4),
    (32, 32, 16, 2, 2),
];

/// [`GEMM_TILES`] as schedules: each tile, then (vec4 tiles) its double-buffered form.
pub fn gemm_tiles() -> Vec<GemmParams> {
    let mut out = Vec::new();
    for (bm, bn, bk, tm, tn) in GEMM_TILES {
        let p = GemmParams::new(bm, bn, bk, tm, tn);
        out.push(p);
        if p.is_vec4() {
            out.push(p.double_buffered());
        }
    }
    out
}

/// The cost model's constants. They are the H200's (Vulkan through wgpu, measured in
/// docs/performance.md) divided per multiprocessor, so a profile with fewer compute units gets
/// proportionally less throughput; only their ratios steer the choice.
mod model {
    /// f32 FLOP/s one multiprocessor reaches with the 128x128 block of 8x8 vec4 register tiles
    /// when it holds enough threads (Kiln's 4096^3 GEMM: 41 TFLOP/s over 132 SMs).
    pub const FLOPS_PER_CU: f64 = 41e12 / 132.0;
    /// Bytes/s of DRAM traffic per multiprocessor (a copy: about 3.8 TB/s over 132 SMs).
    pub const BYTES_PER_CU: f64 = 3.8e12 / 132.0;
    /// Least time of one K-step of a workgroup, whatever its arithmetic: the global loads'
    /// latency and two barriers. The H200 took about 2 us per step with the scalar tile (58 us
    /// for 24 steps of 128x1152x384, 194 us for 96 steps of 128x384x1536); the vec4 tiles load
    /// one step ahead, so 1.5 us.
    pub const STEP_SECONDS: f64 = 1.5e-6;
    /// One more dependent dispatch (the split-K combine): about 2.9 us on the H200.
    pub const DISPATCH_SECONDS: f64 = 3e-6;
    /// Registers and threads of one multiprocessor (NVIDIA since Volta; AMD's CUs are similar).
    pub const REGISTERS_PER_CU: f64 = 65536.0;
    /// See [`REGISTERS_PER_CU`].
    pub const THREADS_PER_CU: f64 = 2048.0;
    /// Threads a multiprocessor needs at once to reach its full rate; with `t` fewer it runs at
    /// `(t / SATURATING_THREADS)^OCCUPANCY_EXPONENT` of it. On the H200 (twenty-third session)
    /// one workgroup of 256 threads alone on a multiprocessor ran at about 0.78 of the rate of
    /// two, one of 128 threads at about 0.59.
    pub const SATURATING_THREADS: f64 = 512.0;
    /// See [`SATURATING_THREADS`].
    pub const OCCUPANCY_EXPONENT: f64 = 0.4;
}

/// Share of [`model::FLOPS_PER_CU`] a tile reaches: the block's operand traffic
/// ([`block_efficiency`]) times the thread tile's. An 8x8 or 8x4 vec4 thread tile keeps the
/// multiprocessor busy (the 8x4 tiles ran as fast as the 8x8 ones in blocks of the same size on
/// the H200, twenty-third session), a 4x8 tile reached 0.91-0.98 of the 8x4 tile in the same
/// block (1024^3 to 4096^3 and MiniLM's products); the 8x16 and 16x8 tiles (128 FMAs per 6 reads)
/// measured 0.83-0.90 of the 8x8 tile at 4096^3 (fewer threads per multiprocessor), and
/// double-buffered stages 0.74 (their k-row index is not a constant, so every workgroup-memory
/// read is clamped and addressed anew). 4x4 and scalar tiles keep their earlier shares.
fn tile_efficiency(p: &GemmParams) -> f64 {
    let thread = match (p.is_vec4(), p.tm * p.tn) {
        (true, 128) => 0.9,
        (true, 64) => 1.0,
        (true, 32) if p.tm >= p.tn => 1.0,
        (true, 32) => 0.95,
        (true, 16) => 0.64,
        (true, _) => 0.5,
        (false, _) => 0.25,
    };
    let mut e = thread * block_efficiency(p.bm, p.bn);
    if p.double_buffer {
        e *= 0.75;
    }
    e
}

/// Share of the 128x128 block's rate a `bm` x `bn` block reaches, by its operand loads per
/// FMA (`(bm + bn) / (bm * bn)`, relative to 128x128's): the busiest multiprocessor's rate
/// on the H200 (kiln_bench's sweep of the bk-16 8x8, 8x4 and 4x8 tiles over 1024^3 to 4096^3
/// and MiniLM's products, twenty-third session) was about 0.82 of 128x128's for 128x64 and
/// 64x128 blocks, 0.78 for 64x64, 0.68 for 128x32 and 0.64 for 64x32; interpolated between.
fn block_efficiency(bm: u32, bn: u32) -> f64 {
    const MEASURED: [(f64, f64); 6] = [
        (1.0, 1.0),
        (1.5, 0.82),
        (2.0, 0.78),
        (2.5, 0.68),
        (3.0, 0.64),
        (4.0, 0.5),
    ];
    let (bm, bn) = (bm.max(1) as f64, bn.max(1) as f64);
    let traffic = 64.0 * (bm + bn) / (bm * bn);
    if traffic <= 1.0 {
        return 1.0;
    }
    for w in MEASURED.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if traffic <= x1 {
            return y0 + (y1 - y0) * (traffic - x0) / (x1 - x0);
        }
    }
    0.5 * 4.0 / traffic
}

/// Whether `p` is a vec4 tile of at least 32 accumulators per thread with a 32-deep K-step.
/// Such a workgroup behaves as if it had a multiprocessor to itself: on the H200, 128x64 blocks
/// of 4x8 ran MiniLM-L3's 4096x1152x384 and 4096x384x384 (several blocks per multiprocessor)
/// 1.26-1.30x slower with bk 32 than with bk 16, and 64x64 blocks of 8x8 1.8x slower (ninth
/// and twenty-third sessions), while grids of one block per multiprocessor (MiniLM at 1x128)
/// and 8x128x56^2's 3x3 convolution ran as fast with it. The register estimate of
/// [`gemm_seconds`] does not see why (presumably the unrolled 32-deep step's live values).
fn deep_wide_tile(p: &GemmParams) -> bool {
    p.is_vec4() && p.bk >= 32 && p.tm * p.tn >= 32
}

/// Estimated seconds of a GEMM (`batch` products of M x K by K x N) under schedule `p` on a
/// device with `compute_units` multiprocessors (Roller-style: from the tile shape and the
/// device's size, no search). The GEMM kernel takes the longer of its arithmetic and its
/// latency chain, plus a quarter of the shorter; split-K adds the combine dispatch and the
/// partial sums' traffic. Both are those of the busiest multiprocessor, which runs
/// `ceil(workgroups / compute_units)` whole blocks in rounds of as many as fit it at once: the
/// arithmetic of its blocks (ragged edges included) at the tile's rate, scaled down for a round
/// with too few threads to hide latency ([`model::SATURATING_THREADS`]), and their K-steps. A
/// grid that leaves most multiprocessors a block fewer than the busiest pays for the tail:
/// MiniLM-L3's 4096x1152x384 in 288 128x128 blocks (three on 24 of the H200's 132
/// multiprocessors) took 140 us in the model, in 576 64x128 blocks 125 us.
pub fn gemm_seconds(p: &GemmParams, batch: u64, m: u64, n: u64, k: u64, compute_units: u32) -> f64 {
    let cu = compute_units.max(1) as u64;
    let (m, n, k) = (m.max(1), n.max(1), k.max(1));
    let tiles = batch.max(1) * m.div_ceil(p.bm as u64) * n.div_ceil(p.bn as u64);
    let split = p.ksplit.max(1) as u64;
    let busiest = (tiles * split).div_ceil(cu) as f64;
    // The template's slice: whole K-steps, the last slice ragged.
    let steps = k.div_ceil(split).div_ceil(p.bk as u64) as f64;
    let threads = p.threads().max(1) as f64;
    let registers = (p.tm * p.tn + 2 * (p.tm + p.tn) + 24) as f64;
    let resident = if deep_wide_tile(p) {
        1.0
    } else {
        (model::REGISTERS_PER_CU / (registers * threads))
            .min(model::THREADS_PER_CU / threads)
            .floor()
            .max(1.0)
    };
    let block_flops = 2.0 * (p.bm * p.bn) as f64 * steps * p.bk as f64;
    // The busiest multiprocessor's blocks in rounds of `resident`, the last one partial; a
    // round of few threads runs below the full rate.
    let round = |blocks: f64| {
        let occupancy = (blocks * threads / model::SATURATING_THREADS)
            .powf(model::OCCUPANCY_EXPONENT)
            .min(1.0);
        blocks * block_flops / (model::FLOPS_PER_CU * tile_efficiency(p) * occupancy)
    };
    let full_rounds = (busiest / resident).floor();
    let rest = busiest - full_rounds * resident;
    let mut arithmetic = full_rounds * round(resident);
    if rest > 0.0 {
        arithmetic += round(rest);
    }
    let latency = (busiest / resident).ceil() * steps * model::STEP_SECONDS;
    // The two overlap, though not fully (a quarter of the shorter one shows), so between two
    // tiles bound by the same latency the one with less (padded) arithmetic wins.
    let mut t = arithmetic.max(latency) + 0.25 * arithmetic.min(latency);
    if split > 1 {
        // The slices written and read back, and C written by the combine.
        let bytes = 4.0 * (batch.max(1) * m * n) as f64 * (2 * split + 1) as f64;
        t += model::DISPATCH_SECONDS + bytes / (model::BYTES_PER_CU * cu as f64);
    }
    t
}

/// The default GEMM schedule: the candidate of [`gemm_tiles`] (with K split 2 to
/// [`MAX_KSPLIT`](crate::MAX_KSPLIT) ways when `split_k`) that is valid on `limits` and has
/// the least [`gemm_seconds`]; a later candidate must be 3% faster to replace an earlier one.
/// M <= 4 (a convolution with few output channels, a decode step's attention) gets a 4x256
/// block, with K split like the other tiles when `split_k`.
///
/// A split keeps at least [`MIN_SPLIT_K_LEN`] of K per slice and its partial sums within one
/// storage binding. What the model picks on the `h200` profile: 4096^3 and 2048^3 128x128x16
/// 8x8 (single stage); 1024^3 the same with K split 4 ways; MiniLM-L3's products at 32x128
/// the fastest tiles measured in the model on the H200 (twenty-third session): QKV
/// (4096x1152x384) 64x128 blocks of 8x4, FFN up (4096x1536x384) 128x128 blocks, FFN down
/// (4096x384x1536) 128x128 blocks with K split 4 ways, the output projection (4096x384x384)
/// 64x128 blocks of 8x4 with K split 2 ways.
pub fn gemm_with(batch: u64, m: u64, n: u64, k: u64, limits: &DeviceLimits, split_k: bool) -> Schedule {
    let p = |bm, bn, bk, tm, tn| Schedule::Gemm(GemmParams::new(bm, bn, bk, tm, tn));
    // Few rows: the one 4x256 block, split over K when that pays (a decode step's attention
    // products have 1-8 query rows per head and a long K).
    let tiles = if m <= 4 {
        vec![GemmParams::new(4, 256, 8, 1, 4)]
    } else {
        gemm_tiles()
    };
    let partial_limit = limits.max_storage_buffer_binding_size;
    let mut best: Option<(GemmParams, f64)> = None;
    for tile in tiles {
        for split in [1u32, 2, 4, 8, 16, 32] {
            if split > 1 {
                let slice = k.div_ceil(split as u64);
                let bytes = 4 * split as u64 * batch.max(1) * m * n;
                if !split_k || split > crate::MAX_KSPLIT || slice < MIN_SPLIT_K_LEN || bytes > partial_limit {
                    break;
                }
            }
            let c = tile.with_ksplit(split);
            if Schedule::Gemm(c).validate(limits).is_err() {
                continue;
            }
            let t = gemm_seconds(&c, batch, m, n, k, limits.compute_units);
            if best.is_none_or(|(_, bt)| t < 0.97 * bt) {
                best = Some((c, t));
            }
        }
    }
    best.map(|(c, _)| Schedule::Gemm(c))
        .unwrap_or_else(|| p(32, 32, 16, 2, 2))
}

/// The rule the GEMM defaults followed before [`gemm_seconds`], kept for the quantized matmul
/// templates (scalar register tiles, dequantization while filling the B tile, no split-K), for
/// which the model's vec4 tile efficiencies do not hold: the largest block from 128x128 (8x8)
/// down to 32x32 (2x2) that fits `limits` and launches [`TARGET_WORKGROUPS`], else the smallest.
pub fn gemm_largest_block(batch: u64, m: u64, n: u64, _k: u64, limits: &DeviceLimits) -> Schedule {
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

/// Rows a quantized matmul with a symbolic row count (a prefill's prompt length) is planned
/// for: a typical prompt, so the prefill's GEMMs get tiles that pay off at hundreds of tokens
/// rather than the generic 64-row estimate's small blocks.
pub const QUANT_PROMPT_ROWS: u64 = 512;

/// Packed values one multiprocessor decodes per second into a tile (a word of quants read and
/// unpacked per 4 values, with the block's scale), relative to [`model::FLOPS_PER_CU`]: about
/// 8 f32 operations per value at half the register tile's rate.
fn quant_decode_seconds(p: &GemmParams, m: u64, n: u64, k: u64, compute_units: u32) -> f64 {
    let decoded = (m.max(1).div_ceil(p.bm as u64) * n.div_ceil(p.bn as u64) * p.bn as u64) as f64 * k as f64;
    decoded * 8.0 / (0.5 * model::FLOPS_PER_CU * compute_units.max(1) as f64)
}

/// The vec4 register tiles a quantized GEMM's default chooses from: every single-stage tile of
/// [`gemm_tiles`] with a vec4 thread tile and bk a multiple of 4. Double buffering is left to
/// the tuner ([`crate::space::quant_gemm`] has it): on the H200 it was slower for the quantized
/// tiles (512x2048 by 8192x2048 Q4_1, 128x128x16 8x8: 0.61 ms single, 0.78 ms double-buffered),
/// whose decoding registers compete with the second stage's prefetch.
pub fn quant_gemm_tiles() -> Vec<GemmParams> {
    gemm_tiles()
        .into_iter()
        .filter(|p| p.is_vec4() && p.bk.is_multiple_of(4) && !p.double_buffer)
        .collect()
}

/// The default tiled schedule of a quantized matmul with more than 8 rows: the tile of
/// [`quant_gemm_tiles`] valid on `limits` with the least [`gemm_seconds`] plus the time to
/// decode each workgroup's W blocks (every workgroup row of blocks decodes its columns' W
/// again), no split-K; a later candidate must be 3% faster to replace an earlier one. Falls
/// back to [`gemm_largest_block`] (scalar tiles) when no vec4 tile fits `limits`.
pub fn quant_gemm(m: u64, n: u64, k: u64, limits: &DeviceLimits) -> Schedule {
    let mut best: Option<(GemmParams, f64)> = None;
    for c in quant_gemm_tiles() {
        if Schedule::Gemm(c).validate(limits).is_err() {
            continue;
        }
        let t = gemm_seconds(&c, 1, m, n, k, limits.compute_units)
            + quant_decode_seconds(&c, m, n, k, limits.compute_units);
        if best.is_none_or(|(_, bt)| t < 0.97 * bt) {
            best = Some((c, t));
        }
    }
    best.map(|(c, _)| Schedule::Gemm(c))
        .unwrap_or_else(|| gemm_largest_block(1, m, n, k, limits))
}

/// A matmul with packed (quantized) weights: the GEMV kind for up to 8 rows (as [`matmul`]),
/// else [`quant_gemm`]. `norm`: the GEMV applies a fused RMS norm to x as it reads it; `glu`:
/// each output is a gated pair (a row of W's gate half and the same row of its up half).
///
/// A decode step's GEMV (one row of x) with a fused norm gives each lane 2 rows of W as long
/// as that still launches a workgroup per compute unit: the lane reads each x value and its
/// scale once for both rows (16 times the weight bytes of a q4_1 row). Measured on the H200 at
/// q4_1 (docs/performance.md, sixth session) 2 rows per lane were the fastest at 2048→6144;
/// 4 rows were slower wherever they left fewer than two workgroups per compute unit. Without
/// the norm, one row per lane is faster (the tenth and twelfth sessions' `kiln tune` records
/// for SmolLM2-1.7B's O and down projections: 10.7 vs 12.4 µs and 16.9 vs 19.6 µs). A gated
/// pair already reads two rows per lane; its fastest schedule in the same records was 4 lanes
/// of 32 threads adding by subgroup shuffles (24.8 vs 32.1 µs at 2048→2x8192), taken where it
/// launches at least 8 workgroups per compute unit: at SmolLM2-360M's 960→2x2560 (640
/// workgroups on `desktop`'s 128 units) the whole decode step was 1.8% slower with it.
pub fn quant_matmul(m: u64, n: u64, k: u64, norm: bool, glu: bool, limits: &DeviceLimits) -> Schedule {
    let Some(s) = gemv(1, m, n, limits) else {
        return quant_gemm(m, n, k, limits);
    };
    let Schedule::Gemv(p) = s else { return s };
    if m > 1 {
        return s;
    }
    if glu {
        let shuffled = Schedule::Gemv(GemvParams {
            sg: true,
            ..GemvParams::new(4, 32, 1)
        });
        if n.div_ceil(4) >= 8 * limits.compute_units.max(1) as u64 && shuffled.validate(limits).is_ok() {
            return shuffled;
        }
        return s;
    }
    if !norm {
        return s;
    }
    let paired = Schedule::Gemv(GemvParams { lane_rows: 2, ..p });
    let workgroups = n.div_ceil(2 * p.lanes as u64);
    if workgroups >= limits.compute_units.max(1) as u64 && paired.validate(limits).is_ok() {
        paired
    } else {
        s
    }
}

/// GEMM without split-K (convolutions, integer products): [`gemm_with`].
pub fn gemm(batch: u64, m: u64, n: u64, k: u64, limits: &DeviceLimits) -> Schedule {
    gemm_with(batch, m, n, k, limits, false)
}

/// GEMM for an f32 matmul whose K may be split over workgroups: [`gemm_with`].
pub fn gemm_split_k(batch: u64, m: u64, n: u64, k: u64, limits: &DeviceLimits) -> Schedule {
    gemm_with(batch, m, n, k, limits, true)
}

/// The cooperative-matrix GEMM for an f16 variant of a matmul: 128x128 blocks of 8 subgroups,
/// each 64x32 (8 accumulator fragments), bk 16, operands staged as vec4s (about 18 KiB of
/// workgroup memory). On the H200 at 4096^3 (docs/performance.md, sixth session) it took
/// 1.01 ms (136 TFLOP/s) against 1.23 ms for the previous default (4 subgroups of 64x64, bk 32)
/// and 1.23-2.75 ms for the rest of `space::coop_gemm`'s vec4-staged members (presumably
/// because fewer accumulators per subgroup leave registers for more resident subgroups; not
/// profiled). 64x64 blocks of 4
/// subgroups of 32x32 (bk 32) when the 128x128 grid would launch fewer workgroups than the
/// device has compute units. Where the limits allow 48 KiB of workgroup memory (NVIDIA's
/// Vulkan adapters do; the built-in profiles allow 32 KiB), 128x256 blocks of 16 such
/// subgroups with bk 32 for grids that fill 7/8 of the device: 0.895 ms (154 TFLOP/s) at 4096^3 on
/// the H200 against 1.02 ms for the 128x128 tile (docs/performance.md, seventh session).
pub fn coop_gemm(batch: u64, m: u64, n: u64, limits: &DeviceLimits) -> Schedule {
    let big = CoopGemmParams {
        bm: 128,
        bn: 128,
        bk: 16,
        sm: 64,
        sn: 32,
        vec_stage: true,
        double_buffer: false,
    };
    let small = CoopGemmParams {
        bm: 64,
        bn: 64,
        bk: 32,
        sm: 32,
        sn: 32,
        vec_stage: true,
        double_buffer: false,
    };
    // 16 subgroups of 64x32 over 128x256 blocks, bk 32 (43,520 bytes of workgroup memory:
    // only where the limits allow 48 KiB).
    let wide = CoopGemmParams {
        bm: 128,
        bn: 256,
        bk: 32,
        ..big
    };
    let wgs = batch * m.div_ceil(128) * n.div_ceil(128);
    let wide_wgs = batch * m.div_ceil(128) * n.div_ceil(256);
    let fits = |p: &CoopGemmParams| Schedule::CoopGemm(*p).validate(limits).is_ok() && p.fits_with_scratch(limits);
    // The wide tile wherever its grid fills 7/8 of the compute units: at 2048³ (128 workgroups
    // for the H200's 132) it ran 0.125 ms against 0.142 for 128x128 (nineteenth session).
    if 8 * wide_wgs >= 7 * limits.compute_units as u64 && fits(&wide) {
        return Schedule::CoopGemm(wide);
    }
    let p = if wgs >= limits.compute_units as u64 { big } else { small };
    if fits(&p) {
        Schedule::CoopGemm(p)
    } else {
        Schedule::CoopGemm(small)
    }
}

/// [`coop_gemm`] for a product with an operand held as f16 pairs in memory (an f16 model's
/// input or weight, read 8 values per 16-byte load): the 128x256 block as 8 subgroups of
/// 64x64 rather than 16 of 64x32. On the H200 at 4096^3 (twenty-fourth session) it ran
/// 248.7 TFLOP/s against 222.2 for 16 subgroups with both operands as pairs, and 246.9
/// against 227.7-236.4 with only B as pairs; with f32 operands the two read within 1% of
/// each other, so those keep [`coop_gemm`]'s tile, and so does a product with an epilogue
/// (the caller's choice: a bias and ReLU through the 64x64 tiles took 323 against 251 us).
pub fn coop_gemm_pairs(batch: u64, m: u64, n: u64, limits: &DeviceLimits) -> Schedule {
    match coop_gemm(batch, m, n, limits) {
        Schedule::CoopGemm(p) if (p.bm, p.bn, p.sn) == (128, 256, 32) => {
            let wider = CoopGemmParams { sn: 64, ..p };
            let fits = Schedule::CoopGemm(wider).validate(limits).is_ok() && wider.fits_with_scratch(limits);
            Schedule::CoopGemm(if fits { wider } else { p })
        }
        s => s,
    }
}

/// The cooperative-matrix schedule of a quantized GEMM's f16 variant (a prefill's product of
/// `m` planned prompt rows): the largest of 128x256 blocks of eight 64x64 subgroup tiles
/// (bk 16), 128x128 blocks of four 64x64 tiles (bk 32), 64x64 blocks of four 32x32 tiles and
/// 32x64 blocks of two 32x32 tiles whose grid launches workgroups for at least 7/8 of the
/// compute units, else the smallest. On the H200 at 512x2048 . 8192x2048 (128 workgroups of
/// 128x256) 128x256 took 0.26 ms, 128x128 0.30 ms and the f32 kernel 0.57 ms; a 512-row
/// product over 576 columns (SmolLM2-135M) ran slower with 64x64 f16 tiles than the f32
/// kernel, its 72-workgroup grid leaving half the device idle.
pub fn quant_coop_gemm(m: u64, n: u64, limits: &DeviceLimits) -> Schedule {
    let tile = |bm, bn, bk, sm, sn| CoopGemmParams {
        bm,
        bn,
        bk,
        sm,
        sn,
        vec_stage: true,
        double_buffer: false,
    };
    let tiles = [
        tile(128, 256, 16, 64, 64),
        tile(128, 128, 32, 64, 64),
        tile(64, 64, 32, 32, 32),
        tile(32, 64, 32, 32, 32),
    ];
    let valid: Vec<CoopGemmParams> = tiles
        .into_iter()
        .filter(|p| Schedule::CoopGemm(*p).validate(limits).is_ok() && p.fits_with_scratch(limits))
        .collect();
    let fills =
        |p: &CoopGemmParams| 8 * m.div_ceil(p.bm as u64) * n.div_ceil(p.bn as u64) >= 7 * limits.compute_units as u64;
    let p = valid
        .iter()
        .find(|p| fills(p))
        .or(valid.last())
        .copied()
        .unwrap_or(tiles[3]);
    Schedule::CoopGemm(p)
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
    if let Some(s) = gemv_k_slices(batch, m, n, k, limits) {
        return s;
    }
    if let Some(s) = gemv(batch, m, n, limits) {
        return s;
    }
    if split_k {
        gemm_split_k(batch, m, n, k, limits)
    } else {
        gemm(batch, m, n, k, limits)
    }
}

/// Rows of B a slice of [`gemv_k_slices`] walks at least, so that its partial sums stay a
/// small part of what it reads.
const MIN_GEMV_SLICE_ROWS: u64 = 256;

/// The GEMV of one row of A with K split over workgroups (f32, vec4 columns): 32 lanes of
/// vec4s (512 contiguous bytes of each row of B) x 8 thread rows, and the fewest slices (a
/// power of two) that launch 2 x [`TARGET_WORKGROUPS`], each at least
/// [`MIN_GEMV_SLICE_ROWS`] rows of B. `None` where one slice would do, for fewer than 512
/// columns, or where the column groups need more than [`crate::ARRIVAL_COUNTERS`]. On the
/// H200 (`benches/gemv_split.rs`, docs/performance.md) this form read W at 4096x4096 in
/// 21.5 µs and at 4096x11008 in 45.6, against 22.7 and 62.0 for the unsplit 4x64 GEMV. The
/// compiler takes the unsplit default where the kernel cannot split (symbolic shapes, not f32,
/// no storage binding left).
fn gemv_k_slices(batch: u64, m: u64, n: u64, k: u64, limits: &DeviceLimits) -> Option<Schedule> {
    if m != 1 || !n.is_multiple_of(4) {
        return None;
    }
    let base = GemvParams::new(32, 8, 1);
    let col_groups = batch * (n / 4).div_ceil(base.lanes as u64);
    // Narrow products (fewer than 4 column groups of 32 lanes) keep the unsplit GEMV.
    if n / 4 < 4 * base.lanes as u64 || col_groups > crate::ARRIVAL_COUNTERS {
        return None;
    }
    let mut slices = 1u32;
    while col_groups * (slices as u64) < 2 * TARGET_WORKGROUPS
        && k / (2 * slices as u64) >= MIN_GEMV_SLICE_ROWS
        && slices < crate::MAX_GEMV_SLICES
    {
        slices *= 2;
    }
    let s = Schedule::Gemv(base.with_slices(slices));
    (slices > 1 && s.validate(limits).is_ok()).then_some(s)
}

/// The GEMV default of [`matmul`] for up to 8 rows of A (`None` for more rows, or when no GEMV
/// schedule fits `limits`).
fn gemv(batch: u64, m: u64, n: u64, limits: &DeviceLimits) -> Option<Schedule> {
    if m > 8 {
        return None;
    }
    let rows = m.clamp(1, 4) as u32;
    let g = |lanes, ksplit| Schedule::Gemv(GemvParams::new(lanes, ksplit, rows));
    let cols = if n.is_multiple_of(4) { n / 4 } else { n };
    let valid: Vec<Schedule> = [g(8, 32), g(4, 64), g(8, 16), g(4, 32), g(4, 16)]
        .into_iter()
        .filter(|s| s.validate(limits).is_ok())
        .collect();
    let blocks = |s: &Schedule| match s {
        Schedule::Gemv(v) => batch * cols.div_ceil(v.lanes as u64),
        _ => 0,
    };
    valid
        .iter()
        .find(|s| blocks(s) >= 2 * TARGET_WORKGROUPS)
        .or(valid.get(1))
        .or(valid.first())
        .copied()
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

/// The default prefill attention schedule for `batch` heads of `sq` query rows: the
/// register-tiled kernel with 64 rows per workgroup, 32-key blocks and 8 threads per group of
/// 4 rows (128 threads, each a 4x4 tile of the scores and 4 rows x head dim / 8 of the
/// output; 34.8 KiB of workgroup memory at head dim 64), where `limits` allow it. On the H200
/// it was the fastest unsplit member of the kind's space at both 1x12x512x64 (0.078 ms, against
/// 0.097 for the per-row kernel's best) and MiniLM's 32x12x128x32 (0.050 ms, against 0.078);
/// docs/performance.md, eighth session. Its keys are split over 4 (or 2) workgroups per tile
/// ([`AttentionParams::slices`]) where the tiles alone would leave the device short of about 3
/// workgroups per compute unit and every slice still walks at least 128 keys (`sq` stands for
/// the key count: prefill attends a prompt to itself; a symbolic prompt, estimated at 64, is
/// not split): 0.072 ms at 1x12x512x64 with 4 slices. Split so, it also keeps the
/// probabilities in their own block and runs as its subgroup variant where the adapter has one
/// ([`AttentionParams::pbuf`], [`AttentionParams::sg`]: two barriers per key block instead of
/// four): 0.0695 ms against 0.0743 for the same split without them at 1x12x512x64 on the H200,
/// and faster with every slice count (docs/performance.md, tenth session); unsplit (MiniLM's
/// 32x12x128x32: 768 tiles) the subgroup form was slower (0.0626 against 0.0504 ms), so
/// unsplit tiles keep the four-barrier kernel. Split tiles now take 256-thread workgroups of
/// 64-key blocks with the values staged in halves ([`AttentionParams::vhalf`]) where 48 KiB
/// allow them (see [`attention_sliced`]). Where the tiled kernel does not fit
/// (32 KiB of workgroup memory: its members that fit were slower than the per-row kernel on the
/// H200), [`attention_per_row`].
pub fn attention(batch: u64, sq: u64, limits: &DeviceLimits) -> Schedule {
    let p = AttentionParams::tiled(64, 32, 8);
    let tiles = batch.max(1) * sq.max(1).div_ceil(p.rows as u64);
    let room = 3 * limits.compute_units.max(1) as u64;
    let slices = [4u32, 2]
        .into_iter()
        .find(|&s| tiles * s as u64 <= room && sq / s as u64 >= 128)
        .unwrap_or(1);
    attention_sliced(batch, sq, slices, limits)
}

/// [`attention`]'s register-tiled kernel over `slices` key slices (split: the 256-thread tile
/// of 64-key blocks with the values in halves, else the probabilities in their own block, each
/// with the subgroup variant, where they fit), or [`attention_per_row`] where it does not fit.
pub fn attention_sliced(batch: u64, sq: u64, slices: u32, limits: &DeviceLimits) -> Schedule {
    let p = AttentionParams::tiled(64, 32, 8);
    if Schedule::Attention(p).validate(limits).is_err() {
        return attention_per_row(batch, sq, limits);
    }
    // Split keys (few tiles of a long sequence, few warps per compute unit) take 256-thread
    // workgroups of 64-key blocks, the values staged in two halves, with the subgroup variant
    // where that fits: 0.045 ms against 0.061 for the 128-thread tile below at 1x12x512x64 on
    // the H200 (docs/performance.md, twenty-second session).
    let wide = Schedule::Attention(AttentionParams {
        slices,
        vhalf: true,
        sg: true,
        ..AttentionParams::tiled(64, 64, 16)
    });
    if slices > 1 && wide.validate(limits).is_ok() {
        return wide;
    }
    // Otherwise the probabilities in their own block with the subgroup variant, where it fits.
    let own = Schedule::Attention(AttentionParams {
        slices,
        pbuf: true,
        sg: true,
        ..p
    });
    if slices > 1 && own.validate(limits).is_ok() {
        return own;
    }
    Schedule::Attention(AttentionParams { slices, ..p })
}

/// The key slices of a flash attention that ships the cooperative-matrix variant: the fewest
/// (1, 2 or 4) whose 64-row tiles give at least every other compute unit a workgroup, as long
/// as each slice walks at least 256 keys (`sq` stands for the key count). The variant keeps
/// the base kernel's slices, so under `--precision f16` the base takes these. At 1x12x512x64
/// on the H200 (96 tiles for 132 units) the variant took 0.0350 / 0.0436 / 0.0507 / 0.0775 ms
/// over 1 / 2 / 4 / 8 slices: the combine dispatch costs more than the idle units
/// (docs/performance.md, twentieth session).
pub fn coop_attention_slices(batch: u64, sq: u64, limits: &DeviceLimits) -> u32 {
    let tiles = batch.max(1) * sq.max(1).div_ceil(64);
    [1u32, 2, 4]
        .into_iter()
        .find(|&s| 2 * tiles * s as u64 >= limits.compute_units.max(1) as u64 || sq / (2 * s as u64) < 256)
        .unwrap_or(4)
}

/// The cooperative-matrix attention for the f16 variant of a flash-attention kernel split
/// over `slices` key slices (the base kernel's, whose combine adds the variant's partial
/// rows): 4 subgroups (64 query rows) with blocks of 64 keys, else of 32, where they fit
/// `limits`; elsewhere none (the f32 kernel alone). On the H200 at 1x12x512x64, unsplit, 4
/// subgroups took 0.035 ms with 64-key blocks and 0.037 with 32, 2 subgroups 0.042 with 32
/// and 0.074 with 64 (fewer threads stage a block with more registers each), 1 subgroup 0.28
/// with 64; in SmolLM2's prefill (a causal mask, GQA groups, keys from the f16 cache; `desktop`
/// target, 32 KiB) 2 subgroups of 32-key blocks took 178 and 343 µs per layer against 165 and
/// 333 for the f32 per-row kernel (135M, 1.7B), so the smaller forms stay in the space only
/// (docs/performance.md, twentieth session). Workgroup memory is counted at head dims `d`
/// and `dv`: at 48 KiB a head dim of 80 takes 32-key blocks, and one of 96 or more none. Head
/// dims that are not whole fragments (multiples of 16) get none.
pub fn coop_attention(slices: u32, d: u32, dv: u32, limits: &DeviceLimits) -> Option<Schedule> {
    if !d.is_multiple_of(crate::COOP_FRAGMENT) || !dv.is_multiple_of(crate::COOP_FRAGMENT) {
        return None;
    }
    [(4, 64), (4, 32)]
        .into_iter()
        .map(|(subgroups, bk)| CoopAttentionParams { subgroups, bk, slices })
        .find(|p| {
            Schedule::CoopAttention(*p).validate(limits).is_ok()
                && p.workgroup_bytes(d, dv) <= limits.max_compute_workgroup_storage_size
        })
        .map(Schedule::CoopAttention)
}

/// The per-row kernel's default (`tm` 1), for limits where the register-tiled kernel does not
/// fit: 64 rows per workgroup (each key block staged in workgroup memory serves 64 rows:
/// staging, whose index arithmetic runs per element, costs 1/64 of the products), 8 keys per
/// thread and block,
/// and enough threads per row (`splits`, 1, 2 or 4) that all rows' threads make about 16
/// warps per compute unit: MiniLM at batch 32 (49,152 rows) two, a few heads of a long
/// prompt four. On the H200, rows 64 with 2 threads per row was the fastest of the kind's
/// space at 32x12x128x32 and 16 rows with 8 threads per row among the slowest
/// (docs/performance.md). Where that does not fit `limits`, 32 rows, else the first valid
/// member of [`crate::space::attention`] (the smallest workgroup memory). The keys are not
/// split over workgroups (`slices` 1): at 1x12x512x64 on the H200 (96 tiles of 64 rows for 132
/// units) every split candidate was slower than the unsplit default (0.1016 ms at best
/// against 0.0970; docs/performance.md, seventh session); the split candidates stay in the
/// space for the tuner.
pub fn attention_per_row(batch: u64, sq: u64, limits: &DeviceLimits) -> Schedule {
    let rows_total = batch.max(1) * sq.max(1);
    let want = 512 * limits.compute_units.max(1) as u64;
    let mut splits = 1u32;
    while splits < 4 && rows_total * (splits as u64) < want {
        splits *= 2;
    }
    // Where 64 rows do not fit (WebGPU's 16 KiB of workgroup memory), 32 rows, with 4 keys
    // per thread if need be (0.119 ms at 1x12x512x64 on the H200, against 0.23 for the
    // smallest-memory member).
    let first = [(64, 8), (32, 8), (32, 4)].map(|(rows, keys)| {
        Schedule::Attention(AttentionParams {
            rows,
            bk: keys * splits,
            splits,
            slices: 1,
            tm: 1,
            pbuf: false,
            sg: false,
            vhalf: false,
        })
    });
    first
        .into_iter()
        .chain(crate::space::attention(limits))
        .find(|s| s.validate(limits).is_ok())
        .unwrap_or(Schedule::Attention(AttentionParams {
            rows: 16,
            bk: 8,
            splits: 2,
            slices: 1,
            tm: 1,
            pbuf: false,
            sg: false,
            vhalf: false,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short norm rows (MiniLM's 384) get 64 threads; longer ones (SmolLM2's 576, 2048) and
    /// other row reductions keep the row-covering rule.
    #[test]
    fn short_norm_rows_get_64_threads() {
        let wg = |s: Schedule| match s {
            Schedule::RowReduce(p) => p.workgroup_size,
            other => panic!("{other}"),
        };
        assert_eq!(wg(norm(384)), 64);
        assert_eq!(wg(norm(512)), 64);
        assert_eq!(wg(norm(48)), 64);
        assert_eq!(wg(norm(20)), 32);
        assert_eq!(wg(norm(576)), 256);
        assert_eq!(wg(norm(2048)), 256);
        assert_eq!(wg(row_reduce(384)), 256);
    }

    /// MiniLM-L3's four products at batch 32 x 128 get the tiles that ran fastest in the model
    /// on the H200 (docs/performance.md, twenty-third session: 125, 144, 150 and 49 us, against
    /// 140, 143, 185 and 60 us for the previous model's 128x128 blocks).
    #[test]
    fn minilm_products_get_the_tiles_measured_fastest_in_the_model() {
        let h = DeviceLimits::h200();
        let g = |m, n, k| match gemm_split_k(32, m, n, k, &h) {
            Schedule::Gemm(p) => (p.bm, p.bn, p.bk, p.tm, p.tn, p.ksplit),
            s => panic!("{s}"),
        };
        assert_eq!(g(128, 1152, 384), (64, 128, 16, 8, 4, 1));
        assert_eq!(g(128, 1536, 384), (128, 128, 16, 8, 8, 1));
        assert_eq!(g(128, 384, 1536), (128, 128, 16, 8, 8, 4));
        assert_eq!(g(128, 384, 384), (64, 128, 16, 8, 4, 2));
    }

    /// The busiest multiprocessor pays for a ragged last round: 288 128x128 blocks on 132
    /// multiprocessors (three on some) cost more than 576 64x128 blocks of 8x4 (five on some,
    /// three at once), as measured; and the rates follow the block's operand traffic.
    #[test]
    fn the_cost_model_sees_the_grid_tail_and_block_traffic() {
        let big = GemmParams::new(128, 128, 16, 8, 8);
        let narrow = GemmParams::new(64, 128, 16, 8, 4);
        assert!(gemm_seconds(&narrow, 32, 128, 1152, 384, 132) < gemm_seconds(&big, 32, 128, 1152, 384, 132));
        assert!(gemm_seconds(&big, 1, 4096, 4096, 4096, 132) < gemm_seconds(&narrow, 1, 4096, 4096, 4096, 132));
        assert_eq!(block_efficiency(128, 128), 1.0);
        assert!((block_efficiency(128, 64) - 0.82).abs() < 1e-9);
        assert!((block_efficiency(64, 64) - 0.78).abs() < 1e-9);
        assert!(block_efficiency(32, 32) < block_efficiency(64, 32));
    }

    /// The H200 measurements of docs/performance.md ("seventh session, gemm"): the single-stage
    /// 128x128x16 8x8 tile (41 TFLOP/s at 4096^3) beat its double-buffered form (30) and the
    /// 8x16 / 16x8 tiles (32-37), so large products get it on both desktop profiles.
    #[test]
    fn large_products_get_the_single_stage_8x8_tile() {
        for l in [DeviceLimits::h200(), DeviceLimits::desktop()] {
            for n in [2048, 4096] {
                let d = gemm_split_k(1, n, n, n, &l);
                assert_eq!(
                    d,
                    Schedule::Gemm(GemmParams::new(128, 128, 16, 8, 8)),
                    "{n}^3 on {}",
                    l.name
                );
            }
            let d = gemm_split_k(1, 1024, 1024, 1024, &l);
            assert!(matches!(d, Schedule::Gemm(p) if !p.double_buffer), "{d} on {}", l.name);
        }
    }
}
