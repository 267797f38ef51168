//! Where the f16 cooperative-matrix GEMM's time goes: an experiment for issue 7's f16 target
//! (30% of cuBLAS HGEMM), not part of the test suite.
//!
//! Kiln's staged kernel (`gemm_coop.wgsl`, 128x256 blocks of sixteen 64x32 subgroup tiles,
//! bk 32) reaches about 155 TFLOP/s on the H200 against PyTorch's 690. Deeper K-steps, wider
//! subgroup tiles, f16 operand copies, double buffering and fragments loaded straight from
//! storage all measured no faster (docs/performance.md). This bench takes the kernel apart on
//! the same grid (a 4096³ product's 512 workgroups of 512 threads, 256 K-slices of 16):
//!
//! - `mma`: each subgroup loads its A and B fragments once from workgroup memory and then only
//!   multiplies (the tensor cores' ceiling through this path);
//! - `lds+mma`: every K-slice loads its fragments from a workgroup-memory stage (as the real
//!   kernel does), no barriers, no global loads;
//! - `lds+mma+bar`: the same with one or two barriers per K-step of 16, 32 or 64;
//! - `full GEMM`: the whole 4096³ product shaped as the real kernel (global loads one step
//!   ahead into registers, conversion, staging stores, two barriers per step) but with
//!   unsigned indices and no bounds checks, its operands f32, f16 read 4 per load or f16 read
//!   8 per load (checked against an f64 product of the same values);
//!
//! on 128x256 blocks (16 subgroups, one workgroup per SM as the real kernel's registers allow)
//! and 128x128 blocks (8 subgroups), with the stage as `array<f16>` or `array<vec4<f16>>` (the
//! real kernel's), with wgpu's runtime checks (index clamps, loop bounds) and without them.
//! Every kernel's sampled outputs are checked against an f64 sum of the same f16 values before
//! it is timed.
//!
//! `cargo bench --bench coop_ceiling` (`KILN_ADAPTER=name` picks an adapter). An adapter
//! without f16 cooperative matrices and subgroups of 32 is reported and skipped.

use half::f16;
use kiln::runtime::wgpu;

#[path = "support/coop.rs"]
mod coop;
#[path = "support/kernels.rs"]
mod kernels;
#[path = "support/timestamps.rs"]
mod timestamps;

/// Timed runs per kernel (the median is reported).
const RUNS: usize = 7;
/// Dispatches per timed run.
const REPEATS: u32 = 10;
/// Subgroup tile (the real kernel's default at 4096³).
const SM: u32 = 64;
const SN: u32 = 32;
/// Rows of A (and of B) staged (the real kernel's bk; a 64-deep step reads the stage twice, as
/// the 48 KiB limit allows no deeper stage at 128x256).
const BK: u32 = 32;
/// f16 of padding per stage row (the real kernel's `COOP_PAD`).
const PAD: u32 = 8;
/// The product the grid stands for (4096³) and its K-slices of 16.
const SIZE: u32 = 4096;
const SLICES: u32 = SIZE / 16;

/// What a kernel does per K-slice.
#[derive(Clone, Copy, PartialEq)]
enum Body {
    /// Multiply fragments loaded once.
    Mma,
    /// Load fragments from the stage, then multiply.
    LoadMma,
    /// As `LoadMma`, with `barriers` barriers per `step`-deep K-step.
    LoadMmaBarriers { step: u32, barriers: u32 },
}

#[derive(Clone, Copy)]
struct Kernel {
    /// Block rows and columns (subgroups of `SM x SN`).
    bm: u32,
    bn: u32,
    body: Body,
    vec_stage: bool,
    checks: bool,
}

impl Kernel {
    fn name(&self) -> String {
        format!(
            "{}x{} {:<22} stage {:<10} checks {}",
            self.bm,
            self.bn,
            match self.body {
                Body::Mma => "mma".to_string(),
                Body::LoadMma => "lds+mma".to_string(),
                Body::LoadMmaBarriers { step, barriers } => format!("lds+mma+{barriers} bar/{step}"),
            },
            if self.vec_stage { "vec4<f16>" } else { "f16" },
            if self.checks { "on" } else { "off" }
        )
    }

    /// Workgroup memory of the two f16 stages.
    fn stage_bytes(&self) -> u32 {
        2 * (self.bm * (BK + PAD) + BK * (self.bn + PAD))
    }

    /// The WGSL: stage A's `bm x BK` and B's `BK x bn` first block from storage (f16), run the
    /// body for `SLICES` slices, store the subgroup's accumulators to its place in C.
    fn wgsl(&self) -> String {
        let (bm, bn) = (self.bm, self.bn);
        let (fm, fn_) = (SM / 16, SN / 16);
        let threads = (bm / SM) * (bn / SN) * 32;
        let unit = if self.vec_stage { 4 } else { 1 };
        let (a_row, b_row) = (BK + PAD, bn + PAD);
        let elem = if self.vec_stage { "vec4<f16>" } else { "f16" };
        let mut s = String::new();
        let mut line = |t: String| {
            s.push_str(&t);
            s.push('\n');
        };
        line("enable f16;\nenable wgpu_cooperative_matrix;".into());
        line("@group(0) @binding(0) var<storage, read> a: array<f16>;".into());
        line("@group(0) @binding(1) var<storage, read> b: array<f16>;".into());
        line("@group(0) @binding(2) var<storage, read_write> c: array<f32>;".into());
        line(format!("var<workgroup> a_sh: array<{elem}, {}>;", bm * a_row / unit));
        line(format!("var<workgroup> b_sh: array<{elem}, {}>;", BK * b_row / unit));
        line(format!("@compute @workgroup_size({threads}, 1, 1)"));
        line("fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {".into());
        // Fill the stages (every workgroup the same first block).
        let store = |arr: &str, src: &str, rows: u32, cols: u32, row: u32| {
            let mut t = String::new();
            if self.vec_stage {
                t += &format!(
                    "    for (var e = lid; e < {}u; e += {threads}u) {{\n        let r = e / {}u; let q = e % {}u;\n        let g = r * {cols}u + q * 4u;\n        {arr}[r * {}u + q] = vec4<f16>({src}[g], {src}[g + 1u], {src}[g + 2u], {src}[g + 3u]);\n    }}\n",
                    rows * cols / 4,
                    cols / 4,
                    cols / 4,
                    row / 4
                );
            } else {
                t += &format!(
                    "    for (var e = lid; e < {}u; e += {threads}u) {{\n        {arr}[(e / {cols}u) * {row}u + e % {cols}u] = {src}[e];\n    }}\n",
                    rows * cols
                );
            }
            t
        };
        s.push_str(&store("a_sh", "a", bm, BK, a_row));
        s.push_str(&store("b_sh", "b", BK, bn, b_row));
        let mut line = |t: String| {
            s.push_str(&t);
            s.push('\n');
        };
        line("    workgroupBarrier();".into());
        let cols = bn / SN;
        line(format!(
            "    let sg = lid / 32u;\n    let sg_m = (sg / {cols}u) * {SM}u;\n    let sg_n = (sg % {cols}u) * {SN}u;"
        ));
        for i in 0..fm {
            for j in 0..fn_ {
                line(format!("    var acc{i}_{j} = coop_mat16x16<f32, C>();"));
            }
        }
        let load = |i_or_j: u32, is_a: bool, kk: &str| -> String {
            if is_a {
                format!(
                    "coopLoadT<coop_mat16x16<f16, A>>(&a_sh[((sg_m + {}u) * {a_row}u + {kk}) / {unit}u], {}u)",
                    16 * i_or_j,
                    a_row / unit
                )
            } else {
                format!(
                    "coopLoadT<coop_mat16x16<f16, B>>(&b_sh[(({kk}) * {b_row}u + sg_n + {}u) / {unit}u], {}u)",
                    16 * i_or_j,
                    b_row / unit
                )
            }
        };
        match self.body {
            Body::Mma => {
                for i in 0..fm {
                    line(format!("    let a{i} = {};", load(i, true, "0u")));
                }
                for j in 0..fn_ {
                    line(format!("    let b{j} = {};", load(j, false, "0u")));
                }
                line(format!("    for (var s = 0u; s < {SLICES}u; s += 1u) {{"));
                for i in 0..fm {
                    for j in 0..fn_ {
                        line(format!("        acc{i}_{j} = coopMultiplyAdd(a{i}, b{j}, acc{i}_{j});"));
                    }
                }
                line("    }".into());
            }
            Body::LoadMma | Body::LoadMmaBarriers { .. } => {
                // Loop iterations of 2 or 4 slices (slice u reads the stage's slice u % 2, at a
                // constant offset) with `barriers` barriers after every `step / 16` slices.
                let (step, barriers) = match self.body {
                    Body::LoadMmaBarriers { step, barriers } => (step / 16, barriers),
                    _ => (BK / 16, 0),
                };
                let per_iter = step.max(BK / 16);
                line(format!("    for (var s = 0u; s < {SLICES}u; s += {per_iter}u) {{"));
                for u in 0..per_iter {
                    line("        {".into());
                    for i in 0..fm {
                        line(format!(
                            "            let a{i} = {};",
                            load(i, true, &format!("{}u", 16 * (u % 2)))
                        ));
                    }
                    for j in 0..fn_ {
                        line(format!(
                            "            let b{j} = {};",
                            load(j, false, &format!("{}u", 16 * (u % 2)))
                        ));
                    }
                    for i in 0..fm {
                        for j in 0..fn_ {
                            line(format!(
                                "            acc{i}_{j} = coopMultiplyAdd(a{i}, b{j}, acc{i}_{j});"
                            ));
                        }
                    }
                    line("        }".into());
                    if (u + 1) % step == 0 {
                        for _ in 0..barriers {
                            line("        workgroupBarrier();".into());
                        }
                    }
                }
                line("    }".into());
            }
        }
        line(format!(
            "    let row0 = wid.y * {bm}u + sg_m;\n    let col0 = wid.x * {bn}u + sg_n;"
        ));
        for i in 0..fm {
            for j in 0..fn_ {
                line(format!(
                    "    coopStoreT(acc{i}_{j}, &c[(row0 + {}u) * {SIZE}u + col0 + {}u], {SIZE}u);",
                    16 * i,
                    16 * j
                ));
            }
        }
        line("}".into());
        s
    }

    /// The f64 value of C at (`i`, `j`): the block's row `i % bm` times column `j % bn` over
    /// the slices the body adds, as many times as it adds them (A staged `BK` wide, B `bn`).
    fn expected(&self, a: &[f16], b: &[f16], i: usize, j: usize) -> f64 {
        let (r, col) = (i % self.bm as usize, j % self.bn as usize);
        let depth = match self.body {
            Body::Mma => 16,
            Body::LoadMma | Body::LoadMmaBarriers { .. } => BK as usize,
        };
        let times = f64::from(SLICES) * 16.0 / depth as f64;
        let dot: f64 = (0..depth)
            .map(|l| f64::from(a[r * BK as usize + l].to_f32()) * f64::from(b[l * self.bn as usize + col].to_f32()))
            .sum();
        dot * times
    }
}

/// How a full GEMM kernel holds its operands in memory (`full_wgsl`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Operands {
    /// f32, read as `vec4<f32>` (16 bytes, 4 values) and converted (Kiln's kernel today).
    F32,
    /// f16, read as `vec4<f16>` (8 bytes, 4 values).
    F16x4,
    /// f16, read as `mat2x4<f16>` (16 bytes, 8 values: two `vec4<f16>` columns).
    F16x8,
    /// f16 packed two per `u32`, read as `vec4<u32>` (16 bytes, 8 values) and unpacked with
    /// `unpack2x16float` (naga has no `u32` to `vec2<f16>` bitcast): the same bytes as `F16x8`
    /// through 32-bit loads, in case the 16-bit loads made the f16 forms slower than f32.
    U32x8,
}

impl Operands {
    /// Values per load.
    fn width(self) -> u32 {
        match self {
            Operands::F32 | Operands::F16x4 => 4,
            Operands::F16x8 | Operands::U32x8 => 8,
        }
    }

    fn wgsl_type(self) -> &'static str {
        match self {
            Operands::F32 => "vec4<f32>",
            Operands::F16x4 => "vec4<f16>",
            Operands::F16x8 => "mat2x4<f16>",
            Operands::U32x8 => "vec4<u32>",
        }
    }
}

/// A whole `SIZE`³ GEMM shaped as Kiln's default f16 kernel (128x256 blocks of sixteen 64x32
/// subgroup tiles, bk 32, the next step's operands prefetched into registers, stages of
/// `vec4<f16>` rows padded by `PAD`, two barriers per step, fragments stored straight to C)
/// but without bounds checks, with its operands held as `op`.
fn full_wgsl(op: Operands) -> String {
    let (bm, bn, bk, threads) = (128u32, 256u32, 32u32, 512u32);
    let w = op.width();
    let (a_units, b_units) = (bm * bk / w / threads, bk * bn / w / threads);
    let (a_row, b_row) = ((bk + PAD) / 4, (bn + PAD) / 4);
    let ty = op.wgsl_type();
    let mut s = String::new();
    let mut line = |t: String| {
        s.push_str(&t);
        s.push('\n');
    };
    line("enable f16;\nenable wgpu_cooperative_matrix;".into());
    line(format!("@group(0) @binding(0) var<storage, read> a: array<{ty}>;"));
    line(format!("@group(0) @binding(1) var<storage, read> b: array<{ty}>;"));
    line("@group(0) @binding(2) var<storage, read_write> c: array<f32>;".into());
    line(format!("var<workgroup> a_sh: array<vec4<f16>, {}>;", bm * a_row));
    line(format!("var<workgroup> b_sh: array<vec4<f16>, {}>;", bk * b_row));
    // The stage index (in vec4<f16>) of load unit e and the unit's index in the operand.
    let (a_cols, b_cols) = (bk / w, bn / w);
    line(format!(
        "fn a_unit(e: u32, m0: u32, k0: u32) -> u32 {{ return ((m0 + e / {a_cols}u) * {SIZE}u + k0 + (e % {a_cols}u) * {w}u) / {w}u; }}"
    ));
    line(format!(
        "fn b_unit(e: u32, n0: u32, k0: u32) -> u32 {{ return ((k0 + e / {b_cols}u) * {SIZE}u + n0 + (e % {b_cols}u) * {w}u) / {w}u; }}"
    ));
    line(format!(
        "fn a_slot(e: u32) -> u32 {{ return (e / {a_cols}u) * {a_row}u + (e % {a_cols}u) * {}u; }}",
        w / 4
    ));
    line(format!(
        "fn b_slot(e: u32) -> u32 {{ return (e / {b_cols}u) * {b_row}u + (e % {b_cols}u) * {}u; }}",
        w / 4
    ));
    // Storing one unit as vec4<f16> (one or two of them).
    let store = |arr: &str, slot: String, v: &str| -> String {
        match op {
            Operands::F32 => format!("        {arr}[{slot}] = vec4<f16>({v});"),
            Operands::F16x4 => format!("        {arr}[{slot}] = {v};"),
            Operands::F16x8 => format!("        {arr}[{slot}] = {v}[0];\n        {arr}[{slot} + 1u] = {v}[1];"),
            Operands::U32x8 => format!(
                "        {arr}[{slot}] = vec4<f16>(vec4<f32>(unpack2x16float({v}.x), unpack2x16float({v}.y)));\n        {arr}[{slot} + 1u] = vec4<f16>(vec4<f32>(unpack2x16float({v}.z), unpack2x16float({v}.w)));"
            ),
        }
    };
    line(format!("@compute @workgroup_size({threads}, 1, 1)"));
    line("fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {".into());
    line(format!("    let m0 = wid.y * {bm}u;\n    let n0 = wid.x * {bn}u;"));
    line(format!(
        "    let sg = lid / 32u;\n    let sg_m = (sg / {}u) * {SM}u;\n    let sg_n = (sg % {}u) * {SN}u;",
        bn / SN,
        bn / SN
    ));
    let (fm, fn_) = (SM / 16, SN / 16);
    for i in 0..fm {
        for j in 0..fn_ {
            line(format!("    var acc{i}_{j} = coop_mat16x16<f32, C>();"));
        }
    }
    for t in 0..a_units {
        line(format!("    var pa{t} = a[a_unit(lid + {}u, m0, 0u)];", t * threads));
    }
    for t in 0..b_units {
        line(format!("    var pb{t} = b[b_unit(lid + {}u, n0, 0u)];", t * threads));
    }
    line(format!("    for (var k0 = 0u; k0 < {SIZE}u; k0 += {bk}u) {{"));
    for t in 0..a_units {
        line(store(
            "a_sh",
            format!("a_slot(lid + {}u)", t * threads),
            &format!("pa{t}"),
        ));
    }
    for t in 0..b_units {
        line(store(
            "b_sh",
            format!("b_slot(lid + {}u)", t * threads),
            &format!("pb{t}"),
        ));
    }
    line("        workgroupBarrier();".into());
    line(format!("        if (k0 + {bk}u < {SIZE}u) {{"));
    for t in 0..a_units {
        line(format!(
            "            pa{t} = a[a_unit(lid + {}u, m0, k0 + {bk}u)];",
            t * threads
        ));
    }
    for t in 0..b_units {
        line(format!(
            "            pb{t} = b[b_unit(lid + {}u, n0, k0 + {bk}u)];",
            t * threads
        ));
    }
    line("        }".into());
    for kk in (0..bk).step_by(16) {
        line("        {".into());
        for i in 0..fm {
            line(format!(
                "            let a{i} = coopLoadT<coop_mat16x16<f16, A>>(&a_sh[((sg_m + {}u) * {}u + {kk}u) / 4u], {a_row}u);",
                16 * i,
                a_row * 4
            ));
        }
        for j in 0..fn_ {
            line(format!(
                "            let b{j} = coopLoadT<coop_mat16x16<f16, B>>(&b_sh[({}u + sg_n + {}u) / 4u], {b_row}u);",
                kk * b_row * 4,
                16 * j
            ));
        }
        for i in 0..fm {
            for j in 0..fn_ {
                line(format!(
                    "            acc{i}_{j} = coopMultiplyAdd(a{i}, b{j}, acc{i}_{j});"
                ));
            }
        }
        line("        }".into());
    }
    line("        workgroupBarrier();\n    }".into());
    for i in 0..fm {
        for j in 0..fn_ {
            line(format!(
                "    coopStoreT(acc{i}_{j}, &c[(m0 + sg_m + {}u) * {SIZE}u + n0 + sg_n + {}u], {SIZE}u);",
                16 * i,
                16 * j
            ));
        }
    }
    line("}".into());
    s
}

fn main() {
    let bar = |step, barriers| Body::LoadMmaBarriers { step, barriers };
    let mut kernels_list = Vec::new();
    // The stage types and the runtime checks (first command: vec4 stages and the checks cost
    // nothing beyond the multiplies' spread).
    for body in [Body::Mma, Body::LoadMma, bar(32, 2)] {
        for vec_stage in [false, true] {
            for checks in [true, false] {
                kernels_list.push(Kernel {
                    bm: 128,
                    bn: 256,
                    body,
                    vec_stage,
                    checks,
                });
            }
        }
    }
    // Barrier cost against step depth, barriers per step and subgroups per workgroup (vec4
    // stages, checks on, as the real kernel).
    for (bm, bn) in [(128, 256), (128, 128)] {
        for body in [
            Body::Mma,
            Body::LoadMma,
            bar(16, 1),
            bar(32, 1),
            bar(32, 2),
            bar(64, 1),
            bar(64, 2),
        ] {
            if (bm, bn) == (128, 256) && matches!(body, Body::Mma | Body::LoadMma) || body == bar(32, 2) && bn == 256 {
                continue;
            }
            kernels_list.push(Kernel {
                bm,
                bn,
                body,
                vec_stage: true,
                checks: true,
            });
        }
    }
    // Every module passes naga first (on any machine), as the compiler's kernels do.
    for k in &kernels_list {
        let caps = kiln::compiler::codegen::validate::COOP_GEMM_CAPS;
        if let Err(e) = kiln::compiler::codegen::validate::validate_wgsl_with(&k.name(), &k.wgsl(), caps) {
            panic!("{}: {e}\n{}", k.name(), k.wgsl());
        }
    }
    let full = [Operands::F32, Operands::F16x4, Operands::F16x8, Operands::U32x8];
    for op in full {
        let caps = kiln::compiler::codegen::validate::COOP_GEMM_CAPS;
        if let Err(e) = kiln::compiler::codegen::validate::validate_wgsl_with("full", &full_wgsl(op), caps) {
            panic!("full {op:?}: {e}\n{}", full_wgsl(op));
        }
    }
    let (device, queue) = match coop::coop_device("coop_ceiling") {
        Ok(p) => p,
        Err(why) => {
            println!("coop_ceiling: skipped: {why}");
            return;
        }
    };
    // The largest block's first stage of A and B (the 128x128 kernels read B's rows 128 wide).
    let a = coop::f16_values((128 * BK) as usize, 1);
    let make = |bytes: &[u8], usage: wgpu::BufferUsages| coop::upload(&device, &queue, bytes, usage);
    let storage = wgpu::BufferUsages::STORAGE;
    let a_buf = make(bytemuck::cast_slice(&a), storage);
    let c_buf = make(
        &vec![0u8; (SIZE * SIZE * 4) as usize],
        storage | wgpu::BufferUsages::COPY_SRC,
    );
    let flops = 2.0 * f64::from(SIZE).powi(3);
    let (set, resolve) = timestamps::pass_timestamps(&device);
    let record = |pipe: &wgpu::ComputePipeline, group: &wgpu::BindGroup, grid: [u32; 2], repeats: u32, stamps: bool| {
        let mut enc = device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: stamps.then_some(wgpu::ComputePassTimestampWrites {
                    query_set: &set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            pass.set_pipeline(pipe);
            pass.set_bind_group(0, group, &[]);
            for _ in 0..repeats {
                pass.dispatch_workgroups(grid[0], grid[1], 1);
            }
        }
        enc
    };
    let period = f64::from(queue.get_timestamp_period());
    // Median ms of `RUNS` passes of `REPEATS` dispatches, from the passes' timestamps.
    let median_ms = |pipe: &wgpu::ComputePipeline, group: &wgpu::BindGroup, grid: [u32; 2]| {
        let mut ms: Vec<f64> = (0..RUNS)
            .map(|_| {
                let mut enc = record(pipe, group, grid, REPEATS, true);
                enc.resolve_query_set(&set, 0..2, &resolve, 0);
                let bytes = kernels::read_back(&device, &queue, enc, &[&resolve]).remove(0);
                let ticks: &[u64] = bytemuck::cast_slice(&bytes);
                ticks[1].saturating_sub(ticks[0]) as f64 * period / 1e6 / f64::from(REPEATS)
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        ms[RUNS / 2]
    };
    full_gemms(&device, &queue, &record, &median_ms);
    // `COOP_CEILING_FULL_ONLY=1`: the full GEMMs alone (a short device command).
    if std::env::var_os("COOP_CEILING_FULL_ONLY").is_some() {
        return;
    }
    for k in kernels_list {
        let b = coop::f16_values((BK * k.bn) as usize, 2);
        let b_buf = make(bytemuck::cast_slice(&b), storage);
        let grid = [SIZE / k.bn, SIZE / k.bm];
        if k.stage_bytes() > device.limits().max_compute_workgroup_storage_size {
            println!(
                "{}: stages of {} bytes exceed the device's workgroup memory, skipped",
                k.name(),
                k.stage_bytes()
            );
            continue;
        }
        let pipe = kernels::pipeline_with_checks(&device, &k.wgsl(), k.checks);
        let group = kernels::bind(&device, &pipe, &[&a_buf, &b_buf, &c_buf]);
        let bytes = kernels::read_back(&device, &queue, record(&pipe, &group, grid, 1, false), &[&c_buf]).remove(0);
        let c: &[f32] = bytemuck::cast_slice(&bytes);
        let mut worst = 0.0f64;
        for s in 0..64usize {
            let (i, j) = ((s * 977 + 13) % SIZE as usize, (s * 613 + 7) % SIZE as usize);
            let want = k.expected(&a, &b, i, j);
            worst = worst.max((f64::from(c[i * SIZE as usize + j]) - want).abs() / (1.0 + want.abs()));
        }
        // f32 accumulation of 4096 products of magnitude < 1: far below 1e-3 relative.
        if worst > 1e-3 {
            println!("{}: WRONG (relative error {worst:.2e}), not timed", k.name());
            continue;
        }
        let med = median_ms(&pipe, &group, grid);
        println!(
            "{}: {med:.4} ms, {:.1} TFLOP/s as 4096³ (error {worst:.1e})",
            k.name(),
            flops / med / 1e9
        );
    }
}

/// Records `repeats` dispatches of a pipeline over a grid in one pass (between the pass
/// timestamps when the flag is set).
type Recorder<'a> = dyn Fn(&wgpu::ComputePipeline, &wgpu::BindGroup, [u32; 2], u32, bool) -> wgpu::CommandEncoder + 'a;

/// Times `full_wgsl` for every operand form on `SIZE`³ operands of f16 values (so the f32 and
/// f16 forms multiply the same numbers), each checked first on sampled outputs against an f64
/// product.
fn full_gemms(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    record: &Recorder<'_>,
    median_ms: &dyn Fn(&wgpu::ComputePipeline, &wgpu::BindGroup, [u32; 2]) -> f64,
) {
    let n = SIZE as usize;
    let a = coop::f16_values(n * n, 3);
    let b = coop::f16_values(n * n, 4);
    let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
    let make = |bytes: &[u8], usage: wgpu::BufferUsages| coop::upload(device, queue, bytes, usage);
    let widen = |v: &[f16]| -> Vec<f32> { v.iter().map(|x| x.to_f32()).collect() };
    let (a32, b32) = (widen(&a), widen(&b));
    let c_buf = make(&vec![0u8; n * n * 4], storage | wgpu::BufferUsages::COPY_SRC);
    let bufs32 = (
        make(bytemuck::cast_slice(&a32), storage),
        make(bytemuck::cast_slice(&b32), storage),
    );
    let bufs16 = (
        make(bytemuck::cast_slice(&a), storage),
        make(bytemuck::cast_slice(&b), storage),
    );
    let grid = [SIZE / 256, SIZE / 128];
    for op in [Operands::F32, Operands::F16x4, Operands::F16x8, Operands::U32x8] {
        let (ab, bb) = if op == Operands::F32 { &bufs32 } else { &bufs16 };
        let pipe = kernels::pipeline(device, &full_wgsl(op));
        let group = kernels::bind(device, &pipe, &[ab, bb, &c_buf]);
        let bytes = kernels::read_back(device, queue, record(&pipe, &group, grid, 1, false), &[&c_buf]).remove(0);
        let c: &[f32] = bytemuck::cast_slice(&bytes);
        let mut worst = 0.0f64;
        for s in 0..64usize {
            let (i, j) = ((s * 977 + 13) % n, (s * 613 + 7) % n);
            let want: f64 = (0..n)
                .map(|l| f64::from(a32[i * n + l]) * f64::from(b32[l * n + j]))
                .sum();
            worst = worst.max((f64::from(c[i * n + j]) - want).abs() / (n as f64).sqrt());
        }
        // f32 accumulation of 4096 products of magnitude < 1: far below 1e-3 of sqrt(k).
        if worst > 1e-3 {
            println!("full GEMM, {op:?} operands: WRONG (error {worst:.2e} of sqrt(k)), not timed");
            continue;
        }
        let med = median_ms(&pipe, &group, grid);
        println!(
            "full GEMM 128x256 bk 32, {op:?} operands: {med:.4} ms, {:.1} TFLOP/s (error {worst:.1e} of sqrt(k))",
            2.0 * f64::from(SIZE).powi(3) / med / 1e9
        );
    }
}
