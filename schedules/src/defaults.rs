//! Analytic default schedules: chosen from the problem shape alone, no search, so they suit an
//! unknown browser GPU. Each rule is deliberately simple and documented.

use crate::{GemmParams, InjectiveParams, RowReduceParams, Schedule};

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

/// GEMM: 128x128 blocks with 8x8 register tiles once both M and N reach 512; 64x64 blocks with
/// 4x4 register tiles (256 threads, 8 KiB of workgroup memory at
/// bk = 16) for large problems; a 4x256 block (bk = 8) for GEMV-like shapes (M <= 4); 32x32 blocks with
/// 2x2 tiles otherwise, so that mid-sized problems still launch enough workgroups.
pub fn gemm(m: u64, n: u64, _k: u64) -> Schedule {
    let p = if m >= 512 && n >= 512 {
        // 8x8 register tiles: 64 accumulators per thread, 16 KiB of workgroup memory.
        GemmParams {
            bm: 128,
            bn: 128,
            bk: 16,
            tm: 8,
            tn: 8,
        }
    } else if m >= 64 && n >= 64 {
        GemmParams {
            bm: 64,
            bn: 64,
            bk: 16,
            tm: 4,
            tn: 4,
        }
    } else if m <= 4 {
        // GEMV-like: few rows, wide columns.
        GemmParams {
            bm: 4,
            bn: 256,
            bk: 8,
            tm: 1,
            tn: 4,
        }
    } else {
        GemmParams {
            bm: 32,
            bn: 32,
            bk: 16,
            tm: 2,
            tn: 2,
        }
    };
    Schedule::Gemm(p)
}
