//! Schedule kinds, their parameters and validity rules against device limits.
//!
//! A [`Schedule`] says *how* a kernel is mapped onto the GPU (workgroup shape, tiles, work per
//! thread); it never changes *what* is computed. Every schedule can be checked against a
//! [`DeviceLimits`] profile before code is generated, and [`defaults`] picks one from an
//! analytic model when no tuning record exists ([`tuning::TuningDb`]).

pub mod defaults;
pub mod limits;
pub mod profile;
pub mod select;
pub mod space;
pub mod tuning;

pub use limits::{DeviceLimits, ProfileError};
pub use profile::PerfProfile;
pub use select::{select, Workload};

use serde::{Deserialize, Serialize};
use std::fmt;

/// Elementwise / data-movement kernels: one thread per `elems_per_thread` output elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InjectiveParams {
    /// Threads per workgroup (1-D).
    pub workgroup_size: u32,
    /// Consecutive output elements each thread computes (unrolled at render time); with
    /// `vector = 4`, consecutive 4-vectors of elements.
    pub elems_per_thread: u32,
    /// Elements per load and store: 1, or 4 where the kernel's output is f32 with a multiple of
    /// 4 elements (inputs read at the output's own index are then loaded as 4-vectors too).
    /// Absent in records written before it existed, which read as 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub vector: u32,
}

/// Reductions and row-wise normalizations: one workgroup per output row, threads stride over
/// the reduced elements, then a tree reduction in workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RowReduceParams {
    /// Threads per workgroup; a power of two.
    pub workgroup_size: u32,
}

/// Tiled matrix multiply: a workgroup computes a `bm x bn` block of C, stepping over K in
/// `bk` chunks staged in workgroup memory; each thread computes a `tm x tn` register tile.
/// With `ksplit > 1` the K range is cut into `ksplit` slices computed by separate workgroups
/// into a partial-sum buffer, and a second dispatch adds the slices and applies the epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GemmParams {
    /// Block rows.
    pub bm: u32,
    /// Block columns.
    pub bn: u32,
    /// K chunk per stage.
    pub bk: u32,
    /// Rows per thread.
    pub tm: u32,
    /// Columns per thread.
    pub tn: u32,
    /// K slices (split-K); 1 computes the whole K range in one workgroup. Records written
    /// before split-K existed read as 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub ksplit: u32,
    /// Two workgroup-memory stages (vec4 tiles only): a K-step fills one stage while the
    /// previous step's stage is still being read, so each step needs one barrier instead of
    /// two. The stages drop the single stage's padding, so 128x128x16 takes exactly 32 KiB and
    /// 128x128x8 16 KiB. Records written before it existed read as `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub double_buffer: bool,
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn one() -> u32 {
    1
}

fn is_one(v: &u32) -> bool {
    *v == 1
}

impl GemmParams {
    /// A schedule without split-K.
    pub fn new(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32) -> GemmParams {
        GemmParams {
            bm,
            bn,
            bk,
            tm,
            tn,
            ksplit: 1,
            double_buffer: false,
        }
    }

    /// The same tiles with two workgroup-memory stages.
    pub fn double_buffered(self) -> GemmParams {
        GemmParams {
            double_buffer: true,
            ..self
        }
    }

    /// The same tiles with K split `ksplit` ways.
    pub fn with_ksplit(self, ksplit: u32) -> GemmParams {
        GemmParams { ksplit, ..self }
    }

    /// Threads per workgroup.
    pub fn threads(&self) -> u32 {
        (self.bm / self.tm) * (self.bn / self.tn)
    }

    /// Whether the thread tile is made of whole vec4s (`tm` and `tn` multiples of 4): such
    /// schedules render the vec4 register-tile template.
    pub fn is_vec4(&self) -> bool {
        self.tm.is_multiple_of(4) && self.tn.is_multiple_of(4)
    }

    /// Workgroup memory used by the A and B stages, in bytes (32-bit elements). The vec4
    /// variant pads each k-row of the transposed A stage by one vec4 against bank conflicts.
    pub fn workgroup_bytes(&self) -> u32 {
        if self.double_buffer {
            return 2 * 4 * self.bk * (self.bm + self.bn);
        }
        let a_row = if self.is_vec4() { self.bm + 4 } else { self.bm };
        4 * self.bk * (a_row + self.bn)
    }
}

/// Matrix products with few rows of A (decode steps, GEMV): a workgroup owns `lanes` column
/// groups of B (4 columns each when B's width allows vec4 reads) and `rows` rows of A; its
/// `ksplit` thread rows split K between them and a tree reduction adds their partial sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GemvParams {
    /// Column groups per workgroup (workgroup x size).
    pub lanes: u32,
    /// Thread rows splitting K (workgroup y size); a power of two.
    pub ksplit: u32,
    /// Rows of A per workgroup (accumulators per thread).
    pub rows: u32,
    /// Rows of the packed weight (outputs) each lane of the quantized GEMV computes from the
    /// same x loads (adjacent rows; 1 for the f32 GEMV). Absent in records written before it
    /// existed, which read as 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub lane_rows: u32,
    /// The quantized GEMV adds a lane's partial sums by subgroup shuffles instead of in
    /// workgroup memory (no barrier). Its `ksplit` threads must then be consecutive lanes of one
    /// subgroup, so the kernel runs as a variant on adapters with subgroups of at least
    /// `ksplit` lanes, and as its workgroup-memory form elsewhere. Absent in records written
    /// before it existed, which read as `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sg: bool,
    /// Workgroups along K (the f32 GEMV): each adds the products of one contiguous slice of K
    /// and stores its partial sums in the scratch buffer, and the last of a column group to
    /// arrive adds the slices and writes the outputs. Splitting K across workgroups lets a
    /// workgroup read wide contiguous row chunks of B and still launch enough of them for a
    /// narrow product. A power of two; absent in records written before it existed, which
    /// read as 1 (no split).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub slices: u32,
}

impl GemvParams {
    /// A GEMV schedule whose lanes compute one output row each.
    pub fn new(lanes: u32, ksplit: u32, rows: u32) -> GemvParams {
        GemvParams {
            lanes,
            ksplit,
            rows,
            lane_rows: 1,
            sg: false,
            slices: 1,
        }
    }

    /// The same schedule with K split over `slices` workgroups.
    pub fn with_slices(self, slices: u32) -> GemvParams {
        GemvParams { slices, ..self }
    }

    /// Threads per workgroup.
    pub fn threads(&self) -> u32 {
        self.lanes * self.ksplit
    }

    /// Workgroup memory for the partial sums, in bytes (vec4 of 32-bit elements per slot;
    /// none when they are added by subgroup shuffles).
    pub fn workgroup_bytes(&self) -> u32 {
        if self.sg {
            return 0;
        }
        16 * self.lanes * self.ksplit * self.rows * self.lane_rows
    }

    /// The same schedule with the partial sums added in workgroup memory: the form a subgroup
    /// schedule ([`Self::sg`]) runs as where the adapter's subgroups are too narrow.
    pub fn without_subgroups(self) -> GemvParams {
        GemvParams { sg: false, ..self }
    }
}

/// Arrival counters a compiled bundle's scratch buffer holds: kernels that combine their own
/// partial results (the decode attention, a GEMV split over K) count arrivals there, one
/// counter per batch or column group, so such a schedule applies only where it needs at most
/// this many.
pub const ARRIVAL_COUNTERS: u64 = 256;

/// Most workgroups a GEMV splits K over ([`GemvParams::slices`]): the last to arrive adds this
/// many partial sums per output.
pub const MAX_GEMV_SLICES: u32 = 64;

/// The widest subgroups WebGPU allows (`maxSubgroupSize` is at most 128).
pub const MAX_SUBGROUP_SIZE: u32 = 128;

/// Lanes per subgroup the cooperative-matrix GEMM assumes: its subgroup index is the
/// invocation index divided by this, so a variant using it requires an adapter whose subgroups
/// are exactly this wide (NVIDIA's are).
pub const COOP_SUBGROUP: u32 = 32;

/// Side of the cooperative-matrix fragments (16x16x16, f16 x f16 -> f32).
pub const COOP_FRAGMENT: u32 = 16;

/// f16 GEMM on cooperative matrices (tensor cores): a workgroup of [`CoopGemmParams::subgroups`]
/// subgroups of [`COOP_SUBGROUP`] lanes computes a `bm x bn` block of C. Each K-step stages a
/// `bm x bk` block of A and a `bk x bn` block of B in workgroup memory, converted from the f32
/// operands to f16 (the next step's operands are read into registers while this step
/// computes); each subgroup multiplies its `sm x sn` sub-block as 16x16 fragments with f32
/// accumulators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CoopGemmParams {
    /// Block rows.
    pub bm: u32,
    /// Block columns.
    pub bn: u32,
    /// K chunk per stage (a multiple of 16).
    pub bk: u32,
    /// Rows of a subgroup's sub-block (a multiple of 16).
    pub sm: u32,
    /// Columns of a subgroup's sub-block (a multiple of 16).
    pub sn: u32,
    /// Stage the operands as `vec4<f16>` (one 8-byte workgroup store per 4 values, fragments
    /// loaded with the stride in vec4s) instead of single f16 values.
    #[serde(default, skip_serializing_if = "is_false")]
    pub vec_stage: bool,
    /// Two workgroup-memory stages of both operands (vec4 staging only): a K-step stores the
    /// next step's operands into the other stage while it multiplies this one, so each step
    /// needs one barrier instead of two. Records written before it existed read as `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub double_buffer: bool,
}

/// f16 elements of padding after each staged row, so that the rows of a fragment fall in
/// different memory banks (keeps every row 16-byte aligned, as cooperative loads require).
pub const COOP_PAD: u32 = 8;

impl CoopGemmParams {
    /// Subgroups per workgroup.
    pub fn subgroups(&self) -> u32 {
        (self.bm / self.sm.max(1)) * (self.bn / self.sn.max(1))
    }

    /// Threads per workgroup.
    pub fn threads(&self) -> u32 {
        self.subgroups() * COOP_SUBGROUP
    }

    /// Workgroup memory of the f16 A and B stages (rows padded by [`COOP_PAD`]; two of each
    /// when double-buffered): what every kernel of the kind declares, and what the schedule's
    /// validity rule checks.
    pub fn stage_bytes(&self) -> u32 {
        let stages = if self.double_buffer { 2 } else { 1 };
        2 * stages * (self.bm * (self.bk + COOP_PAD) + self.bk * (self.bn + COOP_PAD))
    }

    /// Workgroup memory of the epilogue scratch: one 16x16 f32 fragment per subgroup, declared
    /// by the kernels that store C through it (partial blocks, an epilogue, the quantized
    /// GEMM) and not by a whole-block product that stores its fragments straight to C.
    pub fn scratch_bytes(&self) -> u32 {
        4 * COOP_FRAGMENT * COOP_FRAGMENT * self.subgroups()
    }

    /// Workgroup memory of a kernel that stores C through the scratch: the stages and the
    /// scratch.
    pub fn workgroup_bytes(&self) -> u32 {
        self.stage_bytes() + self.scratch_bytes()
    }

    /// Whether the kernel fits `limits` with the epilogue scratch too (see
    /// [`Self::scratch_bytes`]); the schedule's validity rule checks only the stages.
    pub fn fits_with_scratch(&self, limits: &DeviceLimits) -> bool {
        self.workgroup_bytes() <= limits.max_compute_workgroup_storage_size
    }

    /// The same tiles with two workgroup-memory stages.
    pub fn double_buffered(self) -> CoopGemmParams {
        CoopGemmParams {
            double_buffer: true,
            ..self
        }
    }
}

/// Largest head dim (of queries/keys and of values) the attention kind serves; its validity
/// rules check workgroup memory at this size, so a valid schedule fits every head dim.
pub const MAX_ATTENTION_HEAD_DIM: u32 = 64;

/// Most keys one attention thread scores per block: each is a register accumulator beside the
/// query row and the output row the thread holds.
pub const MAX_ATTENTION_KEYS_PER_THREAD: u32 = 16;

/// Query rows each thread of the register-tiled attention kernel holds
/// ([`AttentionParams::tm`]).
pub const ATTENTION_ROW_TILE: u32 = 4;

/// Prefill attention tiled over keys with an online softmax (flash attention): a workgroup
/// owns `rows` query rows of one batch (head) and walks the keys `bk` at a time, staged in
/// workgroup memory.
///
/// With `tm` 1 (the per-row kernel) each row is served by `splits` threads, each holding the
/// row's query and its own output accumulator in registers and taking `bk / splits` keys of
/// every block, with its own running maximum and sum (no reduction inside the key walk). The
/// threads of a row combine their partial results once at the end.
///
/// With `tm` [`ATTENTION_ROW_TILE`] (the register-tiled kernel) the query block is staged too,
/// and each of `rows / tm x splits` threads computes a `tm x (bk / splits)` register tile of
/// the block's scores (vec4 loads of Q and K, 16 FMAs per pair) and a `tm x (head dim /
/// splits)` tile of the output from the probabilities staged in workgroup memory; the row
/// maxima are exchanged once per block through workgroup memory. The scores are never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttentionParams {
    /// Query rows per workgroup.
    pub rows: u32,
    /// Keys per block staged in workgroup memory (a multiple of 4 and of `splits`).
    pub bk: u32,
    /// Threads per query row, each taking `bk / splits` keys of a block (1, 2, 4 or 8).
    pub splits: u32,
    /// Workgroups per row tile, each walking one contiguous slice of the keys (1, 2, 4 or 8):
    /// more than one writes each slice's unnormalized output with its running maximum and sum,
    /// and a combine kernel rescales and adds the slices (as the decode schedule does), so few
    /// heads of a long sequence still fill the device. Records written before it existed
    /// read as 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub slices: u32,
    /// Query rows per thread: 1 for the per-row kernel, [`ATTENTION_ROW_TILE`] for the
    /// register-tiled one (where `splits` threads share each group of `tm` rows, up to 16).
    /// Records written before it existed read as 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub tm: u32,
    /// Register-tiled kernel only: the probabilities get their own block of workgroup memory
    /// instead of overwriting the key block, so a block's value tile is stored right after its
    /// first barrier and the walk needs three barriers per key block instead of four (one more
    /// `bk x rows` block of memory). Records written before it existed read as `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pbuf: bool,
    /// With `pbuf`: where the adapter has subgroups of at least `splits` lanes, the kernel
    /// runs as a variant whose row groups exchange their maxima and sums by subgroup shuffles
    /// instead of through workgroup memory (two barriers per key block, no exchange array);
    /// elsewhere it runs as the same schedule without `sg`. Records written before it existed
    /// read as `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sg: bool,
    /// Register-tiled kernel without `pbuf` only: the value block is staged in two halves of
    /// `bk / 2` keys (the second stored after the first half's P x V, two barriers more per
    /// block), so 64-key blocks of 64 rows fit 48 KiB: a 4 x 8 score tile per thread reads a
    /// quarter fewer bytes of workgroup memory per FMA than the 4 x 4 tile of 32-key blocks.
    /// With it `sg` needs no `pbuf` (a barrier separates the scores' K reads from the
    /// probabilities written over them). Records written before it existed read as `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub vhalf: bool,
}

impl AttentionParams {
    /// Keys each thread scores per block.
    pub fn keys_per_thread(&self) -> u32 {
        self.bk / self.splits.max(1)
    }

    /// Whether this is the register-tiled kernel (`tm` > 1).
    pub fn is_tiled(&self) -> bool {
        self.tm > 1
    }

    /// Threads per workgroup.
    pub fn threads(&self) -> u32 {
        self.rows / self.tm.max(1) * self.splits
    }

    /// The per-row kernel's parameters (`tm` 1).
    pub fn per_row(rows: u32, bk: u32, splits: u32) -> Self {
        AttentionParams {
            rows,
            bk,
            splits,
            slices: 1,
            tm: 1,
            pbuf: false,
            sg: false,
            vhalf: false,
        }
    }

    /// The register-tiled kernel's parameters (`tm` [`ATTENTION_ROW_TILE`]).
    pub fn tiled(rows: u32, bk: u32, splits: u32) -> Self {
        AttentionParams {
            rows,
            bk,
            splits,
            slices: 1,
            tm: ATTENTION_ROW_TILE,
            pbuf: false,
            sg: false,
            vhalf: false,
        }
    }

    /// The register-tiled kernel's vec4 channel groups of the output per thread for value head
    /// dim `dv`: the `dv / 4` groups dealt round-robin to the `splits` threads of a row group.
    pub fn tiled_out_groups(&self, dv: u32) -> u32 {
        dv.div_ceil(4).div_ceil(self.splits.max(1))
    }

    /// The register-tiled kernel's workgroup memory for head dims `d` and `dv`, in vec4s: the
    /// query block (`[channel][row / 4]`), the key block (`[channel][key / 4]`, which after the
    /// scores holds the probabilities, `[key][row / 4]`), the value block (`[key][channel
    /// group]`, padded to whole groups per thread) and the row maxima (or sums) of every
    /// thread.
    ///
    /// With [`Self::pbuf`] the key block holds keys only and the probabilities (`[key][row /
    /// 4]`) follow as a fifth array; otherwise the fifth is empty. The row maxima array is
    /// counted even with [`Self::sg`]: the schedule's memory is that of the kernel without
    /// subgroups, which runs where the adapter has none (the subgroup variant needs less).
    pub fn tiled_vec4s(&self, d: u32, dv: u32) -> [u32; 5] {
        let (br4, bk4) = (self.rows / 4, self.bk / 4);
        let probs = self.bk * br4;
        [
            d * br4,
            if self.pbuf { d * bk4 } else { (d * bk4).max(probs) },
            self.value_keys() * self.tiled_out_groups(dv) * self.splits,
            br4 * self.splits,
            if self.pbuf { probs } else { 0 },
        ]
    }

    /// Keys of the value block staged at once: `bk`, or half of it with [`Self::vhalf`].
    pub fn value_keys(&self) -> u32 {
        if self.vhalf {
            self.bk / 2
        } else {
            self.bk
        }
    }

    /// The register-tiled kernel's subgroup variant ([`Self::sg`]): workgroup memory for head
    /// dims `d` and `dv` in bytes, without the row maxima array.
    pub fn subgroup_workgroup_bytes(&self, d: u32, dv: u32) -> u32 {
        let v = self.tiled_vec4s(d, dv);
        16 * (v.iter().sum::<u32>() - v[3])
    }

    /// The vec4 array of workgroup memory for head dims `d` (queries, keys) and `dv`
    /// (values), in vec4s: the key block of K and of V (`[key][channel / 4]`, one vec4 of
    /// padding per key), which after the key walk holds the combined output rows.
    pub fn tile_vec4s(&self, d: u32, dv: u32) -> u32 {
        let kv = self.bk * (d.div_ceil(4) + 1) + self.bk * (dv.div_ceil(4) + 1);
        kv.max(self.rows * dv.div_ceil(4))
    }

    /// Workgroup memory for head dims `d` and `dv`, in bytes: [`Self::tile_vec4s`] and each
    /// thread's running maximum and sum.
    pub fn workgroup_bytes(&self, d: u32, dv: u32) -> u32 {
        if self.is_tiled() {
            return 16 * self.tiled_vec4s(d, dv).iter().sum::<u32>();
        }
        16 * self.tile_vec4s(d, dv) + 8 * self.threads()
    }
}

/// f32 elements of padding after each row of the cooperative-matrix attention's score
/// scratch (16 bytes: rows stay aligned for cooperative stores and fall in different banks).
pub const COOP_PAD_F32: u32 = 4;

/// Largest head dim (queries/keys and values) the cooperative-matrix attention serves.
pub const MAX_COOP_ATTENTION_HEAD_DIM: u32 = 128;

/// Prefill attention on cooperative matrices (tensor cores; an opt-in `--precision f16`
/// variant of a flash-attention kernel, see docs/schedules.md): a workgroup of `subgroups`
/// subgroups of [`COOP_SUBGROUP`] lanes owns 16 query rows per subgroup of one batch (head)
/// and walks its keys `bk` at a time. Q, K and V are staged as f16; each subgroup multiplies
/// its 16 rows' scores `Q K^T` and the block's `P V` as 16x16 fragments with f32
/// accumulators, and its lanes run the online softmax on the scores in workgroup memory (two
/// lanes per row) and keep the output rows in registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CoopAttentionParams {
    /// Subgroups per workgroup, 16 query rows each (1, 2 or 4).
    pub subgroups: u32,
    /// Keys per block staged in workgroup memory (16, 32 or 64).
    pub bk: u32,
    /// Workgroups per row tile, each walking one contiguous slice of the keys (1, 2, 4 or
    /// 8), as [`AttentionParams::slices`]: the variant of a split kernel keeps the base
    /// kernel's slices and writes the same partial rows, which the base's combine kernel adds.
    pub slices: u32,
}

impl CoopAttentionParams {
    /// Query rows per workgroup.
    pub fn rows(&self) -> u32 {
        self.subgroups * COOP_FRAGMENT
    }

    /// Threads per workgroup.
    pub fn threads(&self) -> u32 {
        self.subgroups * COOP_SUBGROUP
    }

    /// Workgroup memory for head dims `d` and `dv` (multiples of 16), in bytes: the f16 key
    /// block `[channel][key]` and value block `[key][channel]`, each subgroup's f16 rows of
    /// probabilities (first its query rows), and its f32 scratch rows (the scores, then the
    /// block's `P V`); f16 rows padded by [`COOP_PAD`], f32 rows by [`COOP_PAD_F32`].
    pub fn workgroup_bytes(&self, d: u32, dv: u32) -> u32 {
        let rows = self.rows();
        let k = d * (self.bk + COOP_PAD);
        let v = self.bk * (dv + COOP_PAD);
        let p = rows * (self.bk.max(d) + COOP_PAD);
        let s = rows * (self.bk.max(dv) + COOP_PAD_F32);
        2 * (k + v + p) + 4 * s
    }
}

/// The most K slices a split-K GEMM may use (each is unrolled into the combine kernel).
pub const MAX_KSPLIT: u32 = 32;

/// A schedule: the kind plus its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Schedule {
    /// Elementwise and data movement.
    Injective(InjectiveParams),
    /// Reductions, softmax and norms over rows.
    RowReduce(RowReduceParams),
    /// Tiled (batched) GEMM.
    Gemm(GemmParams),
    /// Split-K matrix-vector product for few rows of A.
    Gemv(GemvParams),
    /// f16 GEMM on cooperative matrices (an opt-in kernel variant, see docs/schedules.md).
    CoopGemm(CoopGemmParams),
    /// Prefill attention on cooperative matrices (an opt-in kernel variant).
    CoopAttention(CoopAttentionParams),
    /// Prefill attention tiled over keys with an online softmax.
    Attention(AttentionParams),
}

/// Why a schedule cannot run on a device.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("schedule {schedule} is invalid: {reason}")]
pub struct ScheduleError {
    /// The schedule, printed.
    pub schedule: String,
    /// Which rule or limit it breaks.
    pub reason: String,
}

impl Schedule {
    /// Reads a schedule back from its RON text, as a manifest records it (`schedule_params`).
    pub fn from_ron(text: &str) -> Result<Schedule, ron::error::SpannedError> {
        ron::from_str(text)
    }

    /// The kind's name as used in manifests and tuning records.
    pub fn kind(&self) -> &'static str {
        match self {
            Schedule::Injective(_) => "injective",
            Schedule::RowReduce(_) => "row_reduce",
            Schedule::Gemm(_) => "gemm",
            Schedule::Gemv(_) => "gemv",
            Schedule::CoopGemm(_) => "coop_gemm",
            Schedule::CoopAttention(_) => "coop_attention",
            Schedule::Attention(_) => "attention",
        }
    }

    /// Threads per workgroup.
    pub fn threads(&self) -> u32 {
        match self {
            Schedule::Injective(p) => p.workgroup_size,
            Schedule::RowReduce(p) => p.workgroup_size,
            Schedule::Gemm(p) => p.threads(),
            Schedule::Gemv(p) => p.threads(),
            Schedule::CoopGemm(p) => p.threads(),
            Schedule::CoopAttention(p) => p.threads(),
            Schedule::Attention(p) => p.threads(),
        }
    }

    /// Checks the parameters' own rules and the device limits they touch.
    pub fn validate(&self, limits: &DeviceLimits) -> Result<(), ScheduleError> {
        let fail = |reason: String| {
            Err(ScheduleError {
                schedule: self.to_string(),
                reason,
            })
        };
        let threads = self.threads();
        if threads == 0 {
            return fail("zero threads per workgroup".into());
        }
        if threads > limits.max_compute_invocations_per_workgroup {
            return fail(format!(
                "{threads} threads per workgroup exceed maxComputeInvocationsPerWorkgroup = {}",
                limits.max_compute_invocations_per_workgroup
            ));
        }
        match self {
            Schedule::Injective(p) => {
                if p.workgroup_size > limits.max_compute_workgroup_size_x {
                    return fail(format!(
                        "workgroup size {} exceeds maxComputeWorkgroupSizeX = {}",
                        p.workgroup_size, limits.max_compute_workgroup_size_x
                    ));
                }
                if !(1..=16).contains(&p.elems_per_thread) {
                    return fail(format!("elems_per_thread {} not in 1..=16", p.elems_per_thread));
                }
                if p.vector != 1 && p.vector != 4 {
                    return fail(format!("vector width {} is not 1 or 4", p.vector));
                }
            }
            Schedule::RowReduce(p) => {
                if !p.workgroup_size.is_power_of_two() {
                    return fail(format!("workgroup size {} is not a power of two", p.workgroup_size));
                }
                if p.workgroup_size > limits.max_compute_workgroup_size_x {
                    return fail(format!(
                        "workgroup size {} exceeds maxComputeWorkgroupSizeX = {}",
                        p.workgroup_size, limits.max_compute_workgroup_size_x
                    ));
                }
                if 8 * p.workgroup_size > limits.max_compute_workgroup_storage_size {
                    return fail(format!(
                        "{} bytes of workgroup memory exceed maxComputeWorkgroupStorageSize = {}",
                        8 * p.workgroup_size,
                        limits.max_compute_workgroup_storage_size
                    ));
                }
            }
            Schedule::Gemm(p) => {
                if [p.bm, p.bn, p.bk, p.tm, p.tn].contains(&0) {
                    return fail("zero tile size".into());
                }
                if p.bm % p.tm != 0 || p.bn % p.tn != 0 {
                    return fail(format!(
                        "block {}x{} is not a multiple of thread tile {}x{}",
                        p.bm, p.bn, p.tm, p.tn
                    ));
                }
                if !(1..=MAX_KSPLIT).contains(&p.ksplit) {
                    return fail(format!("ksplit {} not in 1..={MAX_KSPLIT}", p.ksplit));
                }
                if p.double_buffer && !p.is_vec4() {
                    return fail("double buffering needs a vec4 thread tile (tm and tn multiples of 4)".into());
                }
                // The vec4 tile names its accumulators (registers); the scalar one keeps them in
                // a private array, which spills sooner.
                let most = if p.is_vec4() { 128 } else { 64 };
                if p.tm * p.tn > most {
                    return fail(format!(
                        "thread tile {}x{} needs more than {most} accumulators",
                        p.tm, p.tn
                    ));
                }
                if p.bn / p.tn > limits.max_compute_workgroup_size_x
                    || p.bm / p.tm > limits.max_compute_workgroup_size_y
                {
                    return fail("workgroup shape exceeds maxComputeWorkgroupSizeX/Y".into());
                }
                if p.workgroup_bytes() > limits.max_compute_workgroup_storage_size {
                    return fail(format!(
                        "{} bytes of workgroup memory exceed maxComputeWorkgroupStorageSize = {}",
                        p.workgroup_bytes(),
                        limits.max_compute_workgroup_storage_size
                    ));
                }
            }
            Schedule::CoopGemm(p) => {
                let f = COOP_FRAGMENT;
                if [p.bm, p.bn, p.bk, p.sm, p.sn].iter().any(|v| *v == 0 || v % f != 0) {
                    return fail(format!("tiles must be non-zero multiples of the {f}x{f} fragment"));
                }
                if p.bm % p.sm != 0 || p.bn % p.sn != 0 {
                    return fail(format!(
                        "block {}x{} is not a multiple of the subgroup tile {}x{}",
                        p.bm, p.bn, p.sm, p.sn
                    ));
                }
                let frags = (p.sm / f) * (p.sn / f);
                if frags > 16 {
                    return fail(format!("{frags} accumulator fragments per subgroup exceed 16"));
                }
                if p.double_buffer && !p.vec_stage {
                    return fail("double buffering needs vec4 staging (v4)".into());
                }
                // The f32 template gives every thread the same whole number of vec4s of each
                // operand.
                for loads in [p.bm * p.bk / 4, p.bk * p.bn / 4] {
                    if loads % p.threads() != 0 {
                        return fail(format!(
                            "{loads} vec4 operand loads per K-step do not divide among {} threads",
                            p.threads()
                        ));
                    }
                }
                if threads > limits.max_compute_workgroup_size_x {
                    return fail(format!(
                        "workgroup size {threads} exceeds maxComputeWorkgroupSizeX = {}",
                        limits.max_compute_workgroup_size_x
                    ));
                }
                // Only the stages: the epilogue scratch is checked where a kernel declares it.
                if p.stage_bytes() > limits.max_compute_workgroup_storage_size {
                    return fail(format!(
                        "{} bytes of workgroup-memory stages exceed maxComputeWorkgroupStorageSize = {}",
                        p.stage_bytes(),
                        limits.max_compute_workgroup_storage_size
                    ));
                }
            }
            Schedule::CoopAttention(p) => {
                if ![1, 2, 4].contains(&p.subgroups) {
                    return fail(format!("{} subgroups not 1, 2 or 4", p.subgroups));
                }
                if ![16, 32, 64].contains(&p.bk) {
                    return fail(format!("key block {} not 16, 32 or 64", p.bk));
                }
                if ![1, 2, 4, 8].contains(&p.slices) {
                    return fail(format!("key slices {} not 1, 2, 4 or 8", p.slices));
                }
                let bytes = p.workgroup_bytes(MAX_ATTENTION_HEAD_DIM, MAX_ATTENTION_HEAD_DIM);
                if bytes > limits.max_compute_workgroup_storage_size {
                    return fail(format!(
                        "{bytes} bytes of workgroup memory (head dim {MAX_ATTENTION_HEAD_DIM}) exceed maxComputeWorkgroupStorageSize = {}",
                        limits.max_compute_workgroup_storage_size
                    ));
                }
                if threads > limits.max_compute_workgroup_size_x {
                    return fail(format!(
                        "workgroup size {threads} exceeds maxComputeWorkgroupSizeX = {}",
                        limits.max_compute_workgroup_size_x
                    ));
                }
            }
            Schedule::Attention(p) if p.is_tiled() => {
                if p.tm != ATTENTION_ROW_TILE {
                    return fail(format!("row tile {} not 1 or {ATTENTION_ROW_TILE}", p.tm));
                }
                if ![1, 2, 4, 8, 16].contains(&p.splits) {
                    return fail(format!("splits {} not 1, 2, 4, 8 or 16", p.splits));
                }
                if ![1, 2, 4, 8].contains(&p.slices) {
                    return fail(format!("key slices {} not 1, 2, 4 or 8", p.slices));
                }
                if p.sg && !p.pbuf && !p.vhalf {
                    return fail("subgroup exchange (sg) without a probability block (pbuf)".into());
                }
                if p.vhalf && p.pbuf {
                    return fail("value halves (vhalf) with a probability block (pbuf)".into());
                }
                // Power-of-two vec4 groups of rows and keys: the staged blocks' XOR swizzle
                // stays inside a row of the block.
                if ![8, 16, 32, 64].contains(&p.rows) {
                    return fail(format!("rows {} not 8, 16, 32 or 64", p.rows));
                }
                if ![16, 32, 64, 128].contains(&p.bk) {
                    return fail(format!("key block {} not 16, 32, 64 or 128", p.bk));
                }
                let tn = p.keys_per_thread();
                if p.bk % p.splits != 0 || ![4, 8].contains(&tn) {
                    return fail(format!(
                        "{tn} keys per thread and block (key block {} over splits = {}) not 4 or 8",
                        p.bk, p.splits
                    ));
                }
            }
            Schedule::Attention(p) => {
                if p.tm != 1 {
                    return fail(format!("row tile {} not 1 or {ATTENTION_ROW_TILE}", p.tm));
                }
                if p.pbuf || p.sg || p.vhalf {
                    return fail("pbuf, sg and vhalf need the register-tiled kernel (tm 4)".into());
                }
                if ![1, 2, 4, 8].contains(&p.splits) {
                    return fail(format!("splits {} not 1, 2, 4 or 8", p.splits));
                }
                if ![1, 2, 4, 8].contains(&p.slices) {
                    return fail(format!("key slices {} not 1, 2, 4 or 8", p.slices));
                }
                if p.bk == 0 || !p.bk.is_multiple_of(4) || !p.bk.is_multiple_of(p.splits) {
                    return fail(format!(
                        "key block {} is not a positive multiple of 4 and of splits = {}",
                        p.bk, p.splits
                    ));
                }
                if p.keys_per_thread() > MAX_ATTENTION_KEYS_PER_THREAD {
                    return fail(format!(
                        "{} keys per thread and block exceed {MAX_ATTENTION_KEYS_PER_THREAD} (registers)",
                        p.keys_per_thread()
                    ));
                }
                if p.rows == 0 {
                    return fail("zero rows".into());
                }
            }
            Schedule::Gemv(p) => {
                if [p.lanes, p.ksplit, p.rows, p.lane_rows].contains(&0) {
                    return fail("zero lanes, ksplit, rows or lane rows".into());
                }
                if p.rows * p.lane_rows > 8 {
                    return fail(format!(
                        "{} rows x {} lane rows need more than 8 accumulators",
                        p.rows, p.lane_rows
                    ));
                }
                if !p.ksplit.is_power_of_two() {
                    return fail(format!("ksplit {} is not a power of two", p.ksplit));
                }
                if !p.slices.is_power_of_two() || p.slices > MAX_GEMV_SLICES {
                    return fail(format!("{} K slices: a power of two up to {MAX_GEMV_SLICES}", p.slices));
                }
                if p.sg && p.ksplit > MAX_SUBGROUP_SIZE {
                    return fail(format!(
                        "subgroup sums (sg) over ksplit {} threads: subgroups are at most {MAX_SUBGROUP_SIZE} wide",
                        p.ksplit
                    ));
                }
                if p.rows > 8 {
                    return fail(format!("{} rows per workgroup need more than 8 accumulators", p.rows));
                }
                if p.lanes > limits.max_compute_workgroup_size_x || p.ksplit > limits.max_compute_workgroup_size_y {
                    return fail("workgroup shape exceeds maxComputeWorkgroupSizeX/Y".into());
                }
                if p.workgroup_bytes() > limits.max_compute_workgroup_storage_size {
                    return fail(format!(
                        "{} bytes of workgroup memory exceed maxComputeWorkgroupStorageSize = {}",
                        p.workgroup_bytes(),
                        limits.max_compute_workgroup_storage_size
                    ));
                }
            }
        }
        // Both attention kernels (per-row and register-tiled): one workgroup row of threads,
        // and their workgroup memory at the largest head dim.
        if let Schedule::Attention(p) = self {
            if threads > limits.max_compute_workgroup_size_x {
                return fail(format!(
                    "workgroup size {threads} exceeds maxComputeWorkgroupSizeX = {}",
                    limits.max_compute_workgroup_size_x
                ));
            }
            let bytes = p.workgroup_bytes(MAX_ATTENTION_HEAD_DIM, MAX_ATTENTION_HEAD_DIM);
            if bytes > limits.max_compute_workgroup_storage_size {
                return fail(format!(
                    "{bytes} bytes of workgroup memory (head dim {MAX_ATTENTION_HEAD_DIM}) exceed maxComputeWorkgroupStorageSize = {}",
                    limits.max_compute_workgroup_storage_size
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Injective(p) => {
                write!(f, "injective(wg={}, elems={}", p.workgroup_size, p.elems_per_thread)?;
                if p.vector > 1 {
                    write!(f, ", vec{}", p.vector)?;
                }
                write!(f, ")")
            }
            Schedule::RowReduce(p) => write!(f, "row_reduce(wg={})", p.workgroup_size),
            Schedule::Gemm(p) => {
                write!(
                    f,
                    "gemm(bm={}, bn={}, bk={}, tm={}, tn={}",
                    p.bm, p.bn, p.bk, p.tm, p.tn
                )?;
                if p.ksplit > 1 {
                    write!(f, ", ksplit={}", p.ksplit)?;
                }
                if p.double_buffer {
                    write!(f, ", db")?;
                }
                write!(f, ")")
            }
            Schedule::Gemv(p) => {
                write!(f, "gemv(lanes={}, ksplit={}, rows={}", p.lanes, p.ksplit, p.rows)?;
                if p.lane_rows > 1 {
                    write!(f, ", lane_rows={}", p.lane_rows)?;
                }
                if p.sg {
                    write!(f, ", sg")?;
                }
                if p.slices > 1 {
                    write!(f, ", slices={}", p.slices)?;
                }
                write!(f, ")")
            }
            Schedule::CoopGemm(p) => write!(
                f,
                "coop_gemm(bm={}, bn={}, bk={}, sm={}, sn={}{}{})",
                p.bm,
                p.bn,
                p.bk,
                p.sm,
                p.sn,
                if p.vec_stage { ", v4" } else { "" },
                if p.double_buffer { ", db" } else { "" }
            ),
            Schedule::CoopAttention(p) => {
                write!(f, "coop_attention(sg={}, bk={}", p.subgroups, p.bk)?;
                if p.slices > 1 {
                    write!(f, ", slices={}", p.slices)?;
                }
                write!(f, ")")
            }
            Schedule::Attention(p) => {
                write!(f, "attention(rows={}, bk={}, splits={}", p.rows, p.bk, p.splits)?;
                if p.slices > 1 {
                    write!(f, ", slices={}", p.slices)?;
                }
                if p.tm > 1 {
                    write!(f, ", tm={}", p.tm)?;
                }
                if p.pbuf {
                    write!(f, ", pbuf")?;
                }
                if p.vhalf {
                    write!(f, ", vhalf")?;
                }
                if p.sg {
                    write!(f, ", sg")?;
                }
                write!(f, ")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coop_attention_rules_and_defaults() {
        let h = DeviceLimits::h200();
        let p = |subgroups, bk, slices| Schedule::CoopAttention(CoopAttentionParams { subgroups, bk, slices });
        // 4 subgroups, 64-key blocks: 44 KiB at head dim 64 (H200's 48 KiB; not desktop's 32).
        assert_eq!(p(4, 64, 1).validate(&h), Ok(()));
        assert!(p(4, 64, 1).validate(&DeviceLimits::desktop()).is_err());
        assert!(p(8, 32, 1).validate(&h).is_err());
        assert!(p(4, 128, 1).validate(&h).is_err());
        assert!(p(4, 64, 3).validate(&h).is_err());
        assert_eq!(p(2, 32, 4).to_string(), "coop_attention(sg=2, bk=32, slices=4)");
        let back: Schedule = ron::from_str(&ron::to_string(&p(2, 32, 4)).unwrap()).unwrap();
        assert_eq!(back, p(2, 32, 4));
        assert_eq!(defaults::coop_attention(1, 64, 64, &h), Some(p(4, 64, 1)));
        assert_eq!(defaults::coop_attention(1, 80, 80, &h), Some(p(4, 32, 1)));
        assert_eq!(defaults::coop_attention(1, 128, 128, &h), None);
        assert_eq!(defaults::coop_attention(1, 40, 40, &h), None);
        // Fewer subgroups ran slower than the f32 kernel: none where 4 do not fit.
        assert_eq!(defaults::coop_attention(2, 64, 64, &DeviceLimits::desktop()), None);
        for l in [h.clone(), DeviceLimits::desktop()] {
            assert!(!space::coop_attention(&l).is_empty());
            assert!(space::coop_attention(&l).iter().all(|s| s.validate(&l).is_ok()));
        }
        // Slices: issue 7's 12 heads x 512 (96 tiles) stay whole on 132 units; 2 heads of 512
        // and one head of 4096 split; MiniLM's 128 keys never.
        assert_eq!(defaults::coop_attention_slices(12, 512, &h), 1);
        assert_eq!(defaults::coop_attention_slices(2, 512, &h), 2);
        assert_eq!(defaults::coop_attention_slices(1, 4096, &h), 2);
        assert_eq!(defaults::coop_attention_slices(1, 128, &h), 1);
    }

    #[test]
    fn defaults_are_valid_on_webgpu_default_limits() {
        let l = DeviceLimits::webgpu_default();
        for limits in [DeviceLimits::webgpu_default(), DeviceLimits::desktop()] {
            for m in [1u64, 3, 7, 8, 9, 64, 1000, 4096] {
                defaults::gemm(1, m, m, m, &limits).validate(&limits).unwrap();
                defaults::matmul(1, m, m, m, &limits).validate(&limits).unwrap();
            }
        }
        let d = DeviceLimits::desktop();
        // MiniLM's narrow GEMMs launch enough workgroups to fill the device (the 32x32 scalar
        // tile took 58 us on the H200 for 128x1152x384, walking all of K in 144 workgroups),
        // each with a short K range; large square ones take 8x8 vec4 tiles.
        for l in [DeviceLimits::webgpu_default(), d.clone(), DeviceLimits::h200()] {
            for (m, n, k) in [(128, 1152, 384), (128, 1536, 384), (128, 384, 1536), (128, 384, 384)] {
                let Schedule::Gemm(p) = defaults::gemm_split_k(1, m, n, k, &l) else {
                    panic!("not a GEMM")
                };
                let wgs = m.div_ceil(p.bm as u64) * n.div_ceil(p.bn as u64) * p.ksplit as u64;
                let steps = k.div_ceil(p.ksplit as u64).div_ceil(p.bk as u64);
                assert!(
                    p.is_vec4() && wgs >= 64 && steps <= 6,
                    "{m}x{n}x{k} on {}: {p:?}",
                    l.name
                );
            }
            for m in [2048, 4096] {
                let Schedule::Gemm(p) = defaults::gemm_split_k(1, m, m, m, &l) else {
                    panic!("not a GEMM")
                };
                assert_eq!((p.bm, p.bn, p.tm, p.tn, p.ksplit), (128, 128, 8, 8, 1), "{}", l.name);
            }
        }
        // 1024^2 with 128x128 blocks would launch 64 workgroups; the default steps down.
        match defaults::gemm(1, 1024, 1024, 1024, &d) {
            Schedule::Gemm(p) => assert_eq!((p.bm, p.bn), (128, 64)),
            s => panic!("{s}"),
        }
        match defaults::gemm(1, 4096, 4096, 4096, &d) {
            Schedule::Gemm(p) => assert_eq!((p.bm, p.bn), (128, 128)),
            s => panic!("{s}"),
        }
        // GEMV of 2 rows: 8 lanes when that launches 256 workgroups (N = 11008), else 4
        // (N = 4096).
        let gemv = |m, n, k| match defaults::matmul(1, m, n, k, &d) {
            Schedule::Gemv(p) => (p.lanes, p.ksplit, p.slices),
            s => panic!("{s}"),
        };
        assert_eq!((gemv(2, 11008, 4096).0, gemv(2, 4096, 4096).0), (8, 4));
        // One row: K split over workgroups of 32 lanes x 8, as few slices as launch 256
        // workgroups while each walks at least 256 rows of B; none for an odd N.
        assert_eq!(gemv(1, 4096, 4096), (32, 8, 8));
        assert_eq!(gemv(1, 11008, 4096), (32, 8, 4));
        assert_eq!(gemv(1, 4096, 512), (32, 8, 2));
        assert_eq!(gemv(1, 4096, 256).2, 1);
        assert_eq!(gemv(1, 4095, 4096).2, 1);
        // The decode step's quantized GEMV: with a fused norm, 2 rows of W per lane while that
        // launches a workgroup per compute unit (SmolLM2-1.7B's QKV), else 1; one row without
        // the norm (its O and down); a large gated pair (1.7B's gate and up) on 4 lanes of 32
        // threads that add by subgroup shuffles.
        let h = DeviceLimits::h200();
        let gemv = |n, k, norm, glu| match defaults::quant_matmul(1, n, k, norm, glu, &h) {
            Schedule::Gemv(p) => p,
            s => panic!("{s}"),
        };
        assert_eq!(
            (
                gemv(6144, 2048, true, false).lane_rows,
                gemv(2048, 2048, true, false).lane_rows
            ),
            (2, 2)
        );
        assert_eq!(
            gemv(576, 1536, true, false).lane_rows,
            1,
            "72 workgroups of 2 rows per lane would leave CUs idle"
        );
        assert_eq!(
            (
                gemv(2048, 2048, false, false).lane_rows,
                gemv(2048, 8192, false, false).lane_rows
            ),
            (1, 1)
        );
        let glu = gemv(8192, 2048, true, true);
        assert_eq!((glu.lanes, glu.ksplit, glu.lane_rows, glu.sg), (4, 32, 1, true));
        assert!(
            !gemv(2560, 960, true, true).sg,
            "360M's gate/up: 640 workgroups of 4 lanes"
        );
        match defaults::quant_matmul(4, 4096, 4096, false, false, &h) {
            Schedule::Gemv(p) => assert_eq!((p.rows, p.lane_rows), (4, 1)),
            s => panic!("{s}"),
        }
        defaults::injective(10, false).validate(&l).unwrap();
        defaults::injective(1 << 24, true).validate(&l).unwrap();
        defaults::row_reduce(5).validate(&l).unwrap();
        defaults::row_reduce(100_000).validate(&l).unwrap();
    }

    #[test]
    fn limits_profiles_carry_compute_units() {
        assert_eq!(DeviceLimits::h200().compute_units, 132);
        assert_eq!(DeviceLimits::from_name_or_file("h200").unwrap(), DeviceLimits::h200());
        // A RON profile written before the field existed reads as the default.
        let mut text = ron::to_string(&DeviceLimits::desktop()).unwrap();
        text = text.replace(",compute_units:128", "");
        assert!(!text.contains("compute_units"), "{text}");
        let back: DeviceLimits = ron::from_str(&text).unwrap();
        assert_eq!(back.compute_units, limits::DEFAULT_COMPUTE_UNITS);
        // Split-K GEMM schedules in RON read back with their double-buffer flag.
        let s = Schedule::Gemm(GemmParams::new(64, 64, 32, 4, 4).with_ksplit(4).double_buffered());
        let back: Schedule = ron::from_str(&ron::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let old: Schedule = ron::from_str("Gemm((bm:64,bn:64,bk:16,tm:4,tn:4))").unwrap();
        assert_eq!(old, Schedule::Gemm(GemmParams::new(64, 64, 16, 4, 4)));
        // Injective records from before the vector width read as scalar; vec4 ones round-trip.
        let old: Schedule = ron::from_str("Injective((workgroup_size:256,elems_per_thread:4))").unwrap();
        assert!(matches!(old, Schedule::Injective(p) if p.vector == 1));
        let v4 = defaults::injective(1 << 24, true);
        assert_eq!(v4.to_string(), "injective(wg=256, elems=4, vec4)");
        let back: Schedule = ron::from_str(&ron::to_string(&v4).unwrap()).unwrap();
        assert_eq!(back, v4);
    }

    #[test]
    fn wide_quantized_gemvs_own_whole_blocks_of_outputs_where_the_limits_allow() {
        let wide = space::quant_gemv_wide(&DeviceLimits::desktop(), 8);
        assert!(!wide.is_empty());
        for s in &wide {
            let Schedule::Gemv(p) = s else {
                panic!("{s} is not a GEMV")
            };
            assert!((p.lanes * p.lane_rows).is_multiple_of(32), "{s}");
            assert!(p.threads() > 256, "{s}: the 256-thread forms are quant_gemv's");
            assert!(s.validate(&DeviceLimits::desktop()).is_ok(), "{s}");
        }
        assert!(wide.contains(&Schedule::Gemv(GemvParams {
            sg: true,
            ..GemvParams::new(32, 32, 1)
        })));
        // 256 threads per workgroup at most: none.
        assert!(space::quant_gemv_wide(&DeviceLimits::webgpu_default(), 8).is_empty());
    }

    #[test]
    fn coop_gemm_defaults_space_and_rules() {
        for l in [
            DeviceLimits::webgpu_default(),
            DeviceLimits::desktop(),
            DeviceLimits::h200(),
        ] {
            for m in [16u64, 1000, 4096] {
                defaults::coop_gemm(1, m, m, &l).validate(&l).unwrap();
            }
        }
        // The H200 at 32 KiB of workgroup memory (the `desktop` amount).
        let d = DeviceLimits {
            max_compute_workgroup_storage_size: 32768,
            ..DeviceLimits::h200()
        };
        let Schedule::CoopGemm(big) = defaults::coop_gemm(1, 4096, 4096, &d) else {
            panic!("not a coop GEMM")
        };
        assert_eq!(
            (big.bm, big.bn, big.bk, big.subgroups(), big.threads()),
            (128, 128, 16, 8, 256)
        );
        let Schedule::CoopGemm(small) = defaults::coop_gemm(1, 1024, 1024, &d) else {
            panic!("not a coop GEMM")
        };
        assert_eq!((small.bm, small.bn), (64, 64));
        // With 48 KiB of workgroup memory: 128x256 blocks of 16 subgroups, bk 32, for grids
        // that fill the device (4096^3), the 128x128 tile below that.
        let wide_limits = DeviceLimits::h200();
        assert_eq!(wide_limits.max_compute_workgroup_storage_size, 49152);
        let Schedule::CoopGemm(wide) = defaults::coop_gemm(1, 4096, 4096, &wide_limits) else {
            panic!("not a coop GEMM")
        };
        assert_eq!(
            (wide.bm, wide.bn, wide.bk, wide.subgroups(), wide.workgroup_bytes()),
            (128, 256, 32, 16, 43520)
        );
        assert!(space::coop_gemm(&wide_limits).contains(&Schedule::CoopGemm(wide)));
        // At 32 KiB its stages fit (27,136 bytes) but not with the epilogue scratch, so only a
        // whole-block product without an epilogue could take it there; the default does not.
        assert_eq!(wide.stage_bytes(), 27136);
        assert!(Schedule::CoopGemm(wide).validate(&d).is_ok());
        assert!(!wide.fits_with_scratch(&d) && wide.fits_with_scratch(&wide_limits));
        // bk 48 at 128x256: 39,680 bytes of stages, 56,064 with the scratch.
        let deep = CoopGemmParams { bk: 48, ..wide };
        assert_eq!((deep.stage_bytes(), deep.workgroup_bytes()), (39680, 56064));
        assert!(space::coop_gemm(&wide_limits).contains(&Schedule::CoopGemm(deep)));
        assert!(!space::quant_coop_gemm(&wide_limits).contains(&Schedule::CoopGemm(deep)));
        assert!(space::quant_coop_gemm(&wide_limits)
            .iter()
            .all(|s| matches!(s, Schedule::CoopGemm(p) if p.fits_with_scratch(&wide_limits))));
        // 2048^3 launches 128 wide blocks, 7/8 of the H200's 132 compute units: wide too.
        assert_eq!(
            defaults::coop_gemm(1, 2048, 2048, &wide_limits),
            Schedule::CoopGemm(wide)
        );
        assert_eq!(
            defaults::coop_gemm(1, 1536, 2048, &wide_limits),
            Schedule::CoopGemm(big)
        );
        // f16-pair operands: the wide block as 8 subgroups of 64x64; other tiles unchanged.
        let pairs = CoopGemmParams { sn: 64, ..wide };
        assert_eq!(
            defaults::coop_gemm_pairs(1, 4096, 4096, &wide_limits),
            Schedule::CoopGemm(pairs)
        );
        assert_eq!(pairs.subgroups(), 8);
        assert!(space::coop_gemm(&wide_limits).contains(&Schedule::CoopGemm(pairs)));
        assert_eq!(
            defaults::coop_gemm_pairs(1, 1536, 2048, &wide_limits),
            Schedule::CoopGemm(big)
        );
        // The quantized variant's blocks shrink until the grid fills the device.
        let q = |m, n| match defaults::quant_coop_gemm(m, n, &d) {
            Schedule::CoopGemm(p) => (p.bm, p.bn),
            s => panic!("{s}"),
        };
        assert_eq!(q(512, 8192), (128, 256));
        assert_eq!(q(512, 6144), (128, 128));
        assert_eq!(q(512, 2560), (64, 64));
        assert_eq!(q(512, 960), (64, 64));
        assert_eq!(q(512, 576), (32, 64));
        assert_eq!(q(16, 64), (32, 64));
        let space = space::coop_gemm(&d);
        assert!(
            space.len() >= 12 && space.contains(&Schedule::CoopGemm(big)),
            "{space:?}"
        );
        // RON written without vec_stage reads as single-f16 staging.
        let old: Schedule = ron::from_str("CoopGemm((bm:64,bn:64,bk:32,sm:32,sn:32))").unwrap();
        assert_eq!(old.to_string(), "coop_gemm(bm=64, bn=64, bk=32, sm=32, sn=32)");
        let back: Schedule = ron::from_str(&ron::to_string(&Schedule::CoopGemm(big)).unwrap()).unwrap();
        assert_eq!(back, Schedule::CoopGemm(big));
        let bad = |p: CoopGemmParams| Schedule::CoopGemm(p).validate(&d).unwrap_err().reason;
        assert!(bad(CoopGemmParams { bk: 24, ..big }).contains("multiples of the 16x16"));
        assert!(bad(CoopGemmParams { sm: 48, ..big }).contains("not a multiple of the subgroup tile"));
        assert!(bad(CoopGemmParams {
            bn: 256,
            bm: 256,
            bk: 32,
            ..big
        })
        .contains("maxComputeWorkgroupStorageSize"));
        // Double buffering: two stages (vec4-staged only), in the space where they fit 32 KiB.
        let wide = CoopGemmParams { bk: 32, sn: 64, ..big };
        let db16 = CoopGemmParams { bk: 16, ..wide }.double_buffered();
        assert_eq!(db16.workgroup_bytes(), 2 * 10496 + 4096);
        assert!(space.contains(&Schedule::CoopGemm(db16)), "{space:?}");
        assert_eq!(
            Schedule::CoopGemm(db16).to_string(),
            "coop_gemm(bm=128, bn=128, bk=16, sm=64, sn=64, v4, db)"
        );
        let back: Schedule = ron::from_str(&ron::to_string(&Schedule::CoopGemm(db16)).unwrap()).unwrap();
        assert_eq!(back, Schedule::CoopGemm(db16));
        assert!(!ron::to_string(&Schedule::CoopGemm(big))
            .unwrap()
            .contains("double_buffer"));
        assert!(bad(wide.double_buffered()).contains("maxComputeWorkgroupStorageSize"));
        assert!(!space.contains(&Schedule::CoopGemm(wide.double_buffered())));
        assert!(bad(CoopGemmParams {
            vec_stage: false,
            ..db16
        })
        .contains("vec4 staging"));
    }

    #[test]
    fn invalid_schedules_name_the_broken_rule() {
        let l = DeviceLimits::webgpu_default();
        let big = Schedule::Gemm(GemmParams::new(128, 128, 64, 8, 8));
        let e = big.validate(&l).unwrap_err();
        assert!(e.reason.contains("maxComputeWorkgroupStorageSize"), "{e}");
        // Double buffering: vec4 tiles only; two unpadded stages.
        let scalar_db = Schedule::Gemm(GemmParams::new(32, 32, 16, 2, 2).double_buffered());
        assert!(
            scalar_db.validate(&l).unwrap_err().reason.contains("vec4"),
            "{scalar_db}"
        );
        let db = |bk| GemmParams::new(128, 128, bk, 8, 8).double_buffered();
        assert_eq!((db(16).workgroup_bytes(), db(8).workgroup_bytes()), (32768, 16384));
        assert!(Schedule::Gemm(db(8)).validate(&l).is_ok());
        assert!(Schedule::Gemm(db(16)).validate(&l).is_err());
        assert!(Schedule::Gemm(db(16)).validate(&DeviceLimits::desktop()).is_ok());
        // Attention: 1/2/4/8 threads per row, key blocks of whole vec4s split evenly among
        // them, at most 16 keys per thread, memory checked at head dim 64.
        let att = |rows, bk, splits| {
            Schedule::Attention(AttentionParams {
                rows,
                bk,
                splits,
                slices: 1,
                tm: 1,
                pbuf: false,
                sg: false,
                vhalf: false,
            })
        };
        assert!(att(32, 32, 3).validate(&l).unwrap_err().reason.contains("splits 3"));
        assert!(att(32, 30, 2)
            .validate(&l)
            .unwrap_err()
            .reason
            .contains("multiple of 4"));
        assert!(att(32, 4, 8).validate(&l).unwrap_err().reason.contains("of splits"));
        assert!(att(16, 32, 1).validate(&l).unwrap_err().reason.contains("registers"));
        let d = DeviceLimits::desktop();
        let p = AttentionParams {
            rows: 32,
            bk: 32,
            splits: 4,
            slices: 1,
            tm: 1,
            pbuf: false,
            sg: false,
            vhalf: false,
        };
        // K and V blocks of 32 keys x 17 vec4s each, and 128 threads' (max, sum).
        assert_eq!(p.workgroup_bytes(64, 64), 16 * 2 * 32 * 17 + 8 * 128);
        // 64 rows of 16 vec4s outgrow two blocks of 8 keys: the combined rows set the size.
        assert_eq!(
            AttentionParams {
                rows: 64,
                bk: 8,
                splits: 1,
                slices: 1,
                tm: 1,
                pbuf: false,
                sg: false,
                vhalf: false,
            }
            .tile_vec4s(64, 64),
            1024
        );
        assert!(att(32, 32, 4).validate(&d).is_ok());
        assert!(att(32, 32, 4).validate(&l).unwrap_err().reason.contains("head dim 64"));
        assert!(att(16, 16, 2).validate(&l).is_ok());
        assert!(att(64, 64, 4).validate(&d).is_err());
        let back: Schedule = ron::from_str(&ron::to_string(&att(16, 32, 4)).unwrap()).unwrap();
        assert_eq!(back.to_string(), "attention(rows=16, bk=32, splits=4)");
        // Key slices: 1, 2, 4 or 8 workgroups per row tile; a record without them reads as 1.
        let sliced = Schedule::Attention(AttentionParams {
            rows: 64,
            bk: 32,
            splits: 4,
            slices: 4,
            tm: 1,
            pbuf: false,
            sg: false,
            vhalf: false,
        });
        assert!(sliced.validate(&d).is_ok());
        assert_eq!(sliced.to_string(), "attention(rows=64, bk=32, splits=4, slices=4)");
        let back: Schedule = ron::from_str(&ron::to_string(&sliced).unwrap()).unwrap();
        assert_eq!(back, sliced);
        let old: Schedule = ron::from_str("Attention((rows: 16, bk: 32, splits: 4))").unwrap();
        assert_eq!(old, att(16, 32, 4));
        let three = Schedule::Attention(AttentionParams {
            slices: 3,
            ..AttentionParams {
                rows: 64,
                bk: 32,
                splits: 4,
                slices: 1,
                tm: 1,
                pbuf: false,
                sg: false,
                vhalf: false,
            }
        });
        assert!(three.validate(&d).unwrap_err().reason.contains("key slices 3"));
        // The register-tiled kernel: 4 rows per thread, 1/2/4/8/16 threads per row group with 4
        // or 8 keys each, power-of-two row and key groups; memory at head dim 64 is the query
        // block, the key block (which the probabilities reuse), the value block and the row
        // maxima exchange.
        let tiled = |rows, bk, splits| Schedule::Attention(AttentionParams::tiled(rows, bk, splits));
        let t = AttentionParams::tiled(32, 64, 16);
        assert_eq!(t.threads(), 128);
        assert_eq!(t.tiled_vec4s(64, 64), [64 * 8, 64 * 16, 64 * 16, 8 * 16, 0]);
        assert_eq!(t.workgroup_bytes(64, 64), 16 * (512 + 1024 + 1024 + 128));
        // Head dim 48 over 16 threads: 12 channel groups padded to 16, one per thread.
        assert_eq!(t.tiled_out_groups(48), 1);
        assert_eq!(AttentionParams::tiled(32, 32, 8).tiled_out_groups(48), 2);
        let h = DeviceLimits::h200();
        assert!(tiled(32, 64, 16).validate(&h).is_ok());
        assert!(tiled(32, 64, 16)
            .validate(&d)
            .unwrap_err()
            .reason
            .contains("head dim 64"));
        assert!(tiled(32, 32, 8).validate(&d).is_ok());
        assert!(tiled(32, 32, 16)
            .validate(&h)
            .unwrap_err()
            .reason
            .contains("2 keys per thread"));
        assert!(tiled(32, 48, 4)
            .validate(&h)
            .unwrap_err()
            .reason
            .contains("key block 48"));
        assert!(tiled(24, 32, 8).validate(&h).unwrap_err().reason.contains("rows 24"));
        assert!(tiled(32, 96, 32).validate(&h).unwrap_err().reason.contains("splits 32"));
        let odd_tile = Schedule::Attention(AttentionParams {
            tm: 2,
            ..AttentionParams::tiled(32, 32, 8)
        });
        assert!(odd_tile.validate(&h).unwrap_err().reason.contains("row tile 2"));
        // The probabilities in their own block (pbuf) and the subgroup variant (sg): 64 rows,
        // 32-key blocks, 8 threads per row group at head dim 64 take 42 KiB (40 KiB as the
        // variant, without the row maxima array).
        let pb = AttentionParams {
            pbuf: true,
            ..AttentionParams::tiled(64, 32, 8)
        };
        assert_eq!(pb.tiled_vec4s(64, 64), [1024, 512, 512, 128, 512]);
        assert_eq!(pb.workgroup_bytes(64, 64), 16 * 2688);
        let sgp = AttentionParams { sg: true, ..pb };
        assert_eq!(sgp.subgroup_workgroup_bytes(64, 64), 16 * 2560);
        assert!(Schedule::Attention(sgp).validate(&h).is_ok());
        assert_eq!(
            Schedule::Attention(sgp).to_string(),
            "attention(rows=64, bk=32, splits=8, tm=4, pbuf, sg)"
        );
        let back: Schedule = ron::from_str(&ron::to_string(&Schedule::Attention(sgp)).unwrap()).unwrap();
        assert_eq!(back, Schedule::Attention(sgp));
        let no_pbuf = Schedule::Attention(AttentionParams { pbuf: false, ..sgp });
        assert!(no_pbuf.validate(&h).unwrap_err().reason.contains("probability block"));
        // The value block in halves (vhalf): 64 rows of 64-key blocks over 16 threads per row
        // group keep 1024 + 1024 + 512 + 256 vec4s (45 KiB at head dim 64) with the
        // probabilities over K; the subgroup variant needs no probability block then, and
        // vhalf takes none.
        let wide = AttentionParams {
            vhalf: true,
            ..AttentionParams::tiled(64, 64, 16)
        };
        assert_eq!(wide.threads(), 256);
        assert_eq!(wide.tiled_vec4s(64, 64), [1024, 1024, 512, 256, 0]);
        assert_eq!(wide.workgroup_bytes(64, 64), 16 * 2816);
        let wide_sg = Schedule::Attention(AttentionParams { sg: true, ..wide });
        assert!(wide_sg.validate(&h).is_ok());
        assert_eq!(
            wide_sg.to_string(),
            "attention(rows=64, bk=64, splits=16, tm=4, vhalf, sg)"
        );
        let back: Schedule = ron::from_str(&ron::to_string(&wide_sg).unwrap()).unwrap();
        assert_eq!(back, wide_sg);
        let both = Schedule::Attention(AttentionParams { pbuf: true, ..wide });
        assert!(both.validate(&h).unwrap_err().reason.contains("vhalf"));
        // Without halves the same tile outgrows 48 KiB.
        let whole = Schedule::Attention(AttentionParams::tiled(64, 64, 16));
        assert!(whole.validate(&h).unwrap_err().reason.contains("head dim 64"));
        let per_row = Schedule::Attention(AttentionParams {
            pbuf: true,
            ..AttentionParams::per_row(64, 32, 4)
        });
        assert!(per_row.validate(&h).unwrap_err().reason.contains("tm 4"));
        // 32 rows of 64-key blocks over 16 threads outgrow 48 KiB with their own probabilities.
        let big = Schedule::Attention(AttentionParams {
            pbuf: true,
            ..AttentionParams::tiled(32, 64, 16)
        });
        assert!(big.validate(&h).unwrap_err().reason.contains("head dim 64"));
        assert_eq!(
            tiled(32, 64, 16).to_string(),
            "attention(rows=32, bk=64, splits=16, tm=4)"
        );
        let back: Schedule = ron::from_str(&ron::to_string(&tiled(32, 64, 16)).unwrap()).unwrap();
        assert_eq!(back, tiled(32, 64, 16));
        // The defaults: the tiled kernel where 48 KiB allow it, its keys split over 4
        // workgroups only where the row tiles leave the H200 short and every slice walks at
        // least 128 keys (faster at 1x12x512x64, slower at MiniLM's 32x12x128); the per-row
        // kernel, unsplit, on 32 KiB.
        // Split, 256-thread workgroups of 64-key blocks, the values in halves, with the
        // subgroup variant; unsplit, the 128-thread tile of 32-key blocks.
        for (batch, sq, slices) in [(12, 512, 4), (2, 512, 4), (12, 128, 1), (384, 128, 1), (1, 64, 1)] {
            let want = Schedule::Attention(if slices > 1 {
                AttentionParams {
                    slices,
                    vhalf: true,
                    sg: true,
                    ..AttentionParams::tiled(64, 64, 16)
                }
            } else {
                AttentionParams::tiled(64, 32, 8)
            });
            assert_eq!(defaults::attention(batch, sq, &h), want, "{batch}x{sq}");
            assert!(matches!(defaults::attention(batch, sq, &d), Schedule::Attention(p) if p.slices == 1 && p.tm == 1));
        }
        let odd = Schedule::RowReduce(RowReduceParams { workgroup_size: 100 });
        assert!(odd.validate(&l).unwrap_err().reason.contains("power of two"));
        let wide = Schedule::Injective(InjectiveParams {
            workgroup_size: 1024,
            elems_per_thread: 1,
            vector: 1,
        });
        let vec3 = Schedule::Injective(InjectiveParams {
            workgroup_size: 256,
            elems_per_thread: 1,
            vector: 3,
        });
        assert!(vec3.validate(&l).unwrap_err().reason.contains("vector width 3"));
        assert!(wide
            .validate(&l)
            .unwrap_err()
            .reason
            .contains("maxComputeInvocationsPerWorkgroup"));
    }
}
