//! Split-K f32 GEMV with wide row chunks: an experiment for issue 7's GEMV target before any of
//! it goes into the compiler.
//!
//! Kiln's f32 GEMV (`gemv.wgsl`, default 4 lanes x 64 K-threads per workgroup) gives each lane
//! one vec4 column group, so a warp's load touches 8 rows of W with 64 contiguous bytes each,
//! 16 such loads in flight per thread. At `y[1, 4096] = x[1, 4096] · W[4096, 4096]` it takes
//! 25.3 µs on the H200 (2.65 TB/s of W), cuBLAS 19.2 µs. The suspect is the 64-byte rows. This
//! bench asks whether W streams faster when each workgroup reads wide contiguous row chunks
//! (`L` lanes of vec4: 16·L bytes per row) and K is split across workgroups instead, which
//! then have to add their partial sums. For W row-major `[K, N]` it times, on one W per shape:
//!
//! - `kiln baseline`: the shape Kiln compiles today (its template's kernel re-rendered here,
//!   without the unused parameter block): L = 4, T = 64, one workgroup along K, unroll 16 (at
//!   K = 4096; Kiln's rule picks 8 or 4 for shorter K);
//! - `partial L.. T.. S.. U..`: workgroups of `L x T` threads (`T` of them along K, summed by
//!   a tree in workgroup memory), grid `(N / 4 / L, S)`: workgroup `(c, s)` walks K rows
//!   `[s·K/S, (s+1)·K/S)` with `U` independent vec4 loads in flight per thread per step and
//!   writes its partial sums to `part[s·N + n]`. Timed alone: the bound of any combine form.
//!   Swept: L in {16, 32, 64, 128}, T in {1, 2, 4, 8}, S in {4, 8, 16, 32}, U in {4, 8}, with
//!   64 to 512 threads per workgroup, whole loop steps per slice and, on a GPU, at least
//!   `MIN_GROUPS` workgroups;
//! - `partial+combine`: the same and a second dispatch in the same pass that adds the `S`
//!   partials into y, both timed together;
//! - `fused`: one dispatch; every workgroup stores its partials with `atomicStore`, then
//!   `storageBarrier()` (naga emits a device-scope acquire-release barrier for it) and one
//!   `atomicAdd` on its column group's counter; the workgroup that sees `S - 1` adds the `S`
//!   partials (`atomicLoad`) into y and resets the counter, so repeated dispatches need no
//!   clearing;
//! - `read W`: every vec4 of W read once (the streaming ceiling under the same timing).
//!
//! Both combine forms add the partials in slice order, so their y must equal, bit for bit, the
//! f32 sum (in that order) of the partials they read back; the partials and y are checked
//! against an f64 reference within `64·sqrt(K)·max|x|·max|W|·f32::EPSILON`, and the fused
//! kernel is also checked after three back-to-back dispatches with its counters read back as
//! zero. A kernel that fails is reported as FAILED and not timed. Timing records `REPEATS`
//! dispatches (or dispatch pairs) in one pass between timestamps (the way `kiln_bench` times
//! kernels, caches warm from the previous dispatch), median of `RUNS`.
//!
//! `cargo bench --bench gemv_split` (`KILN_ADAPTER=name` picks an adapter; `KILN_GEMV_K=k`,
//! default 4096, and `KILN_GEMV_N=a,b`, default `4096,11008`, the shapes;
//! `KILN_GEMV_FILTER=text` keeps the kernels whose name contains `text`). On a CPU adapter
//! the defaults shrink to K = 1024, N = 1024,1376 and the timing to a few short runs. An
//! adapter without timestamp queries is still checked, not timed. Not part of the test suite.

use kiln::runtime::wgpu;
use wgpu::util::DeviceExt;

#[path = "support/kernels.rs"]
mod kernels;
#[path = "support/timestamps.rs"]
mod timestamps;

/// Timed runs per kernel on a GPU (the median is reported).
const RUNS: usize = 7;
/// Dispatches (or dispatch pairs) per timed run on a GPU.
const REPEATS: u32 = 20;
/// Fewest workgroups a split shape must launch on a GPU: about two per SM of the H200 (132).
const MIN_GROUPS: u32 = 256;
/// Threads per workgroup a split shape may have.
const THREADS: std::ops::RangeInclusive<u32> = 64..=512;
/// Threads per workgroup of the combine dispatch (one vec4 column group each).
const COMBINE_THREADS: u32 = 64;
/// The slice counts swept; every one divides `FINE`.
const SLICES: [u32; 4] = [4, 8, 16, 32];
/// K chunks of the f64 reference: each slice's reference is a sum of whole chunks.
const FINE: u32 = 32;

/// One split-K shape: `lanes` vec4 column groups per workgroup (a row chunk of 16·lanes
/// contiguous bytes), `rows` threads along K inside a workgroup, `slices` workgroups along K,
/// `unroll` loads in flight per thread per loop step.
#[derive(Clone, Copy)]
struct Split {
    lanes: u32,
    rows: u32,
    slices: u32,
    unroll: u32,
}

impl Split {
    fn tag(&self) -> String {
        format!("L{} T{} S{} U{}", self.lanes, self.rows, self.slices, self.unroll)
    }

    /// Workgroups along the columns (`nc` vec4 column groups) and along K.
    fn grid(&self, nc: u32) -> [u32; 2] {
        [nc.div_ceil(self.lanes), self.slices]
    }

    /// Whether every thread walks whole loop steps of its slice of `k` rows.
    fn tiles(&self, k: u32) -> bool {
        k.is_multiple_of(self.slices) && (k / self.slices).is_multiple_of(self.rows * self.unroll)
    }

    /// The partial kernel's WGSL (`fused`: the fused kernel's) for `k` rows of `nc` vec4
    /// column groups. Bindings: x, W, then `part` (`array<vec4<f32>>`, or `array<atomic<u32>>`
    /// when fused), and when fused y and the per-column-group counters.
    fn wgsl(&self, k: u32, nc: u32, fused: bool) -> String {
        let Split {
            lanes: l,
            rows: t,
            slices: s,
            unroll: u,
        } = *self;
        let per_slice = k / s;
        let steps = per_slice / (t * u);
        let mut loads = String::new();
        let mut fmas = String::new();
        for j in 0..u {
            loads += &format!("            let b{j} = w[(kk + {o}u) * {nc}u + col];\n", o = j * t);
            fmas += &format!(
                "            acc = fma(vec4<f32>(x[kk + {o}u]), b{j}, acc);\n",
                o = j * t
            );
        }
        let mut decls = String::from(
            "@group(0) @binding(0) var<storage, read> x: array<f32>;\n\
             @group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;\n",
        );
        let mut reduce = String::new();
        if t == 1 {
            reduce += "    let sum = acc;\n";
        } else {
            decls += &format!("var<workgroup> red: array<vec4<f32>, {}>;\n", l * t);
            reduce += &format!("    red[ly * {l}u + lx] = acc;\n    workgroupBarrier();\n");
            let mut h = t / 2;
            while h > 0 {
                reduce += &format!(
                    "    if (ly < {h}u) {{\n        red[ly * {l}u + lx] += red[(ly + {h}u) * {l}u + lx];\n    }}\n    workgroupBarrier();\n"
                );
                h /= 2;
            }
            reduce += "    let sum = red[lx];\n";
        }
        let tail = if fused {
            decls += "@group(0) @binding(2) var<storage, read_write> part: array<atomic<u32>>;\n\
                      @group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;\n\
                      @group(0) @binding(4) var<storage, read_write> count: array<atomic<u32>>;\n\
                      var<workgroup> last: u32;\n";
            decls += &format!(
                r#"
// Slice `j`'s partial sums of column group `col`.
fn partial(j: u32, col: u32) -> vec4<f32> {{
    let at = (j * {nc}u + col) * 4u;
    return vec4<f32>(bitcast<f32>(atomicLoad(&part[at])), bitcast<f32>(atomicLoad(&part[at + 1u])),
        bitcast<f32>(atomicLoad(&part[at + 2u])), bitcast<f32>(atomicLoad(&part[at + 3u])));
}}
"#
            );
            format!(
                r#"    if (ly == 0u && col < {nc}u) {{
        let at = (s * {nc}u + col) * 4u;
        atomicStore(&part[at], bitcast<u32>(sum.x));
        atomicStore(&part[at + 1u], bitcast<u32>(sum.y));
        atomicStore(&part[at + 2u], bitcast<u32>(sum.z));
        atomicStore(&part[at + 3u], bitcast<u32>(sum.w));
    }}
    // Device-scope release of the partials before the count, and the workgroup's threads
    // joined, so the count only ever follows all of this workgroup's partials.
    storageBarrier();
    if (lx == 0u && ly == 0u) {{
        last = u32(atomicAdd(&count[wid.x], 1u) == {last}u);
    }}
    if (workgroupUniformLoad(&last) == 1u) {{
        // Acquire: the other slices' partials, released before their adds, are visible now.
        storageBarrier();
        if (ly == 0u && col < {nc}u) {{
            var total = partial(0u, col);
            for (var j = 1u; j < {s}u; j++) {{
                total += partial(j, col);
            }}
            y[col] = total;
        }}
        if (lx == 0u && ly == 0u) {{
            atomicStore(&count[wid.x], 0u);
        }}
    }}
"#,
                last = s - 1
            )
        } else {
            decls += "@group(0) @binding(2) var<storage, read_write> part: array<vec4<f32>>;\n";
            format!("    if (ly == 0u && col < {nc}u) {{\n        part[s * {nc}u + col] = sum;\n    }}\n")
        };
        format!(
            r#"{decls}
@compute @workgroup_size({l}, {t}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {{
    let lx = lid.x;
    let ly = lid.y;
    let col = wid.x * {l}u + lx;
    let s = wid.y;
    var acc = vec4<f32>(0.0);
    if (col < {nc}u) {{
        let k0 = s * {per_slice}u + ly;
        for (var i = 0u; i < {steps}u; i++) {{
            let kk = k0 + i * {stride}u;
{loads}{fmas}        }}
    }}
{reduce}{tail}}}
"#,
            stride = t * u
        )
    }
}

/// The combine dispatch: one thread per vec4 column group adds the `s` partials in slice order.
fn combine_wgsl(nc: u32, s: u32) -> String {
    format!(
        r#"@group(0) @binding(0) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size({COMBINE_THREADS}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{
    let col = gid.x;
    if (col < {nc}u) {{
        var total = part[col];
        for (var j = 1u; j < {s}u; j++) {{
            total += part[j * {nc}u + col];
        }}
        y[col] = total;
    }}
}}
"#
    )
}

/// Kiln's unroll for its GEMV (`gemv_unroll` in the compiler): 16 once each thread walks at
/// least 64 rows, 8 from 32, else 4.
fn kiln_unroll(k: u32, ksplit: u32) -> u32 {
    if k >= 64 * ksplit {
        16
    } else if k >= 32 * ksplit {
        8
    } else {
        4
    }
}

/// The K-threads of Kiln's default GEMV shape (4 lanes x 64).
const KILN_KSPLIT: u32 = 64;
/// The lanes of Kiln's default GEMV shape.
const KILN_LANES: u32 = 4;

/// Kiln's GEMV as `gemv.wgsl` renders it for `y[1, n] = x[1, k] · W[k, n]` with vec4 columns
/// (one row of A, no batch, no epilogue), minus its unused parameter block. Bindings: x, W, y.
fn kiln_wgsl(k: u32, n: u32) -> String {
    let (l, t, u) = (KILN_LANES, KILN_KSPLIT, kiln_unroll(k, KILN_KSPLIT));
    let nc = n / 4;
    let mut loads = String::new();
    let mut fmas = String::new();
    for j in 0..u {
        loads += &format!("            let b{j} = in1[b_base + (kk + {o}i) * {nc}i];\n", o = j * t);
        fmas += &format!(
            "            acc0 = fma(vec4<f32>(in0[a_row0 + kk + {o}i]), b{j}, acc0);\n",
            o = j * t
        );
    }
    let mut tree = String::new();
    let mut h = t / 2;
    while h > 0 {
        tree += &format!(
            "    if (ly < {h}i) {{\n        part[(0i + ly) * {l}i + lx] += part[({h}i + ly) * {l}i + lx];\n    }}\n    workgroupBarrier();\n"
        );
        h /= 2;
    }
    let mut stores = String::new();
    for j in 0..4 {
        stores += &format!(
            "            {{\n                let gn = col * 4i + {j}i;\n                let v = sum[{j}];\n                out[c_off + gm * {n}i + gn] = v;\n            }}\n"
        );
    }
    format!(
        r#"@group(0) @binding(0) var<storage, read> in0: array<f32>;
@group(0) @binding(1) var<storage, read> in1: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> part: array<vec4<f32>, {slots}>;

@compute @workgroup_size({l}, {t}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {{
    let lx = i32(lid3.x);
    let ly = i32(lid3.y);
    let col = i32(wid.x) * {l}i + lx;
    let m0 = i32(wid.y) * 1i;
    let batch = i32(wid.z);
    let a_off = 0i;
    let b_off = 0i;
    let c_off = batch * {n}i;
    let b_base = b_off / 4i + col;
    let a_row0 = a_off + min(m0 + 0i, 1i - 1i) * {k}i;
    var acc0 = vec4<f32>(0.0f);
    if (col < {nc}i) {{
        var kk = ly;
        for (; kk + {last}i < {k}i; kk += {stride}i) {{
{loads}{fmas}        }}
        for (; kk < {k}i; kk += {t}i) {{
            let b0 = in1[b_base + kk * {nc}i];
            acc0 = fma(vec4<f32>(in0[a_row0 + kk]), b0, acc0);
        }}
    }}
    part[(0i + ly) * {l}i + lx] = acc0;
    workgroupBarrier();
{tree}    if (ly == 0i && col < {nc}i) {{
        if (m0 + 0i < 1i) {{
            let sum = part[0i * {l}i + lx];
            let gm = m0 + 0i;
{stores}        }}
    }}
}}
"#,
        slots = l * t,
        last = (u - 1) * t,
        stride = u * t
    )
}

/// Workgroups of the `read W` kernel.
const READ_GROUPS: u32 = 1024;

/// Reads every vec4 of W once, four loads in flight per thread, consecutive threads on
/// consecutive vec4s; writes only if the sum is a value random weights do not give.
const READ_WGSL: &str = r#"@group(0) @binding(0) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> sink: array<vec4<f32>>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let stride = nw.x * 256u;
    let len = arrayLength(&w);
    var acc = vec4<f32>(0.0);
    var i = gid.x;
    for (; i + 3u * stride < len; i += 4u * stride) {
        let a = w[i];
        let b = w[i + stride];
        let c = w[i + 2u * stride];
        let d = w[i + 3u * stride];
        acc += (a + b) + (c + d);
    }
    for (; i < len; i += stride) {
        acc += w[i];
    }
    if (acc.x == 1234567.0) {
        sink[0] = acc;
    }
}
"#;

/// Deterministic f32 values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A pipeline, its bind group and its workgroup counts.
type Dispatch<'a> = (&'a wgpu::ComputePipeline, &'a wgpu::BindGroup, [u32; 2]);

/// The device, and how it is timed.
struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    cpu: bool,
    /// Whether the adapter has timestamp queries (without them kernels are only checked).
    timestamps: bool,
    runs: usize,
    repeats: u32,
}

impl Gpu {
    /// The adapter `KILN_ADAPTER` names (a GPU with timestamps preferred), or why none.
    fn open() -> Result<Gpu, String> {
        let instance = wgpu::Instance::default();
        let filter = std::env::var("KILN_ADAPTER").ok();
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
        let adapter = adapters
            .into_iter()
            .filter(|a| filter.as_ref().is_none_or(|f| a.get_info().name.contains(f.as_str())))
            .max_by_key(|a| {
                (
                    a.get_info().device_type != wgpu::DeviceType::Cpu,
                    a.features().contains(wgpu::Features::TIMESTAMP_QUERY),
                )
            })
            .ok_or("no adapter (KILN_ADAPTER filters by name)")?;
        let info = adapter.get_info();
        let have = adapter.limits();
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: have.max_storage_buffer_binding_size,
            max_buffer_size: have.max_buffer_size,
            max_compute_invocations_per_workgroup: have.max_compute_invocations_per_workgroup.min(1024),
            max_compute_workgroup_size_x: have.max_compute_workgroup_size_x.min(1024),
            ..Default::default()
        };
        let features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("gemv_split"),
            required_features: features,
            required_limits: limits,
            ..Default::default()
        }))
        .map_err(|e| e.to_string())?;
        let cpu = info.device_type == wgpu::DeviceType::Cpu;
        println!(
            "adapter: {}{}",
            info.name,
            if cpu { " (CPU: small shapes)" } else { "" }
        );
        Ok(Gpu {
            device,
            queue,
            cpu,
            timestamps: !features.is_empty(),
            runs: if cpu { 3 } else { RUNS },
            repeats: if cpu { 2 } else { REPEATS },
        })
    }

    fn buffer(&self, bytes: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytes,
            usage: usage | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        })
    }

    fn pipeline(&self, src: &str) -> wgpu::ComputePipeline {
        kernels::pipeline(&self.device, src)
    }

    fn bind(&self, p: &wgpu::ComputePipeline, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        kernels::bind(&self.device, p, buffers)
    }

    /// Records `repeats` rounds of `seq` in one compute pass (between timestamps when `stamps`).
    fn record(&self, enc: &mut wgpu::CommandEncoder, seq: &[Dispatch], repeats: u32, stamps: Option<&wgpu::QuerySet>) {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: stamps.map(|query_set| wgpu::ComputePassTimestampWrites {
                query_set,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            }),
        });
        for _ in 0..repeats {
            for (p, bg, grid) in seq {
                pass.set_pipeline(p);
                pass.set_bind_group(0, *bg, &[]);
                pass.dispatch_workgroups(grid[0], grid[1], 1);
            }
        }
    }

    /// Clears `clear`, runs `repeats` rounds of `seq` and reads `read` back.
    fn run(&self, seq: &[Dispatch], repeats: u32, clear: &[&wgpu::Buffer], read: &[&wgpu::Buffer]) -> Vec<Vec<f32>> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        for b in clear {
            enc.clear_buffer(b, 0, None);
        }
        self.record(&mut enc, seq, repeats, None);
        kernels::read_back(&self.device, &self.queue, enc, read)
            .iter()
            .map(|b| bytemuck::cast_slice(b).to_vec())
            .collect()
    }

    /// The median time of one round of `seq` in seconds, over `runs` passes of `repeats`
    /// rounds each, or None without timestamp queries.
    fn time(&self, seq: &[Dispatch]) -> Option<f64> {
        if !self.timestamps {
            return None;
        }
        let (set, resolve) = timestamps::pass_timestamps(&self.device);
        let period = f64::from(self.queue.get_timestamp_period());
        let mut times: Vec<f64> = (0..self.runs)
            .map(|_| {
                let mut enc = self.device.create_command_encoder(&Default::default());
                self.record(&mut enc, seq, self.repeats, Some(&set));
                enc.resolve_query_set(&set, 0..2, &resolve, 0);
                let bytes = kernels::read_back(&self.device, &self.queue, enc, &[&resolve]);
                let ticks: &[u64] = bytemuck::cast_slice(&bytes[0]);
                ticks[1].saturating_sub(ticks[0]) as f64 * period / 1e9 / f64::from(self.repeats)
            })
            .collect();
        times.sort_by(f64::total_cmp);
        Some(times[times.len() / 2])
    }
}

/// One shape's data and its f64 reference.
struct Problem {
    k: u32,
    n: u32,
    /// `FINE` chunks of K rows, each `[n]`: `sum over the chunk's rows r of x[r] · W[r, n]`.
    fine: Vec<f64>,
    y: Vec<f64>,
    tol: f64,
}

impl Problem {
    fn new(k: u32, n: u32, x: &[f32], w: &[f32]) -> Problem {
        let (ku, nu) = (k as usize, n as usize);
        let chunk = ku / FINE as usize;
        let mut fine = vec![0.0f64; FINE as usize * nu];
        for r in 0..ku {
            let xr = f64::from(x[r]);
            let acc = &mut fine[(r / chunk) * nu..(r / chunk + 1) * nu];
            for (a, wv) in acc.iter_mut().zip(&w[r * nu..(r + 1) * nu]) {
                *a += xr * f64::from(*wv);
            }
        }
        let y = (0..nu)
            .map(|j| (0..FINE as usize).map(|c| fine[c * nu + j]).sum())
            .collect();
        let max = |v: &[f32]| v.iter().fold(0.0f64, |a, b| a.max(f64::from(b.abs())));
        let tol = 64.0 * f64::from(k).sqrt() * max(x) * max(w) * f64::from(f32::EPSILON);
        Problem { k, n, fine, y, tol }
    }

    /// Slice `s` of `slices`'s reference at column `j`.
    fn slice(&self, slices: u32, s: u32, j: usize) -> f64 {
        let per = FINE / slices;
        (s * per..(s + 1) * per)
            .map(|c| self.fine[c as usize * self.n as usize + j])
            .sum()
    }

    /// The largest error of y against the reference.
    fn y_error(&self, y: &[f32]) -> f64 {
        y.iter()
            .zip(&self.y)
            .map(|(g, w)| (f64::from(*g) - w).abs())
            .fold(0.0, f64::max)
    }

    /// The largest error of the first `slices` partial rows of `part` against each slice's
    /// reference.
    fn part_error(&self, part: &[f32], slices: u32) -> f64 {
        let n = self.n as usize;
        (0..slices)
            .flat_map(|s| (0..n).map(move |j| (s, j)))
            .map(|(s, j)| (f64::from(part[s as usize * n + j]) - self.slice(slices, s, j)).abs())
            .fold(0.0, f64::max)
    }

    /// Whether every y equals the f32 sum, in slice order, of the partials.
    fn combined_exactly(&self, part: &[f32], y: &[f32], slices: u32) -> bool {
        let n = self.n as usize;
        (0..n).all(|j| {
            let mut t = part[j];
            for s in 1..slices as usize {
                t += part[s * n + j];
            }
            t == y[j]
        })
    }
}

/// Prints one result line: the checked error (`Ok(None)`: a kernel with nothing to check) or
/// why the check failed, and the time when the kernel passed and there is one.
fn report(p: &Problem, name: &str, err: Result<Option<f64>, String>, time: impl FnOnce() -> Option<f64>) {
    let n = p.n;
    let e = match err {
        Err(why) => return println!("| {n} | {name} | FAILED | | {why} |"),
        Ok(Some(e)) => format!("{e:.1e}"),
        Ok(None) => "-".into(),
    };
    match time() {
        Some(t) => {
            let bytes = 4.0 * f64::from(p.k) * f64::from(p.n);
            println!("| {n} | {name} | {:.1} | {:.0} | {e} |", t * 1e6, bytes / t / 1e9);
        }
        None => println!("| {n} | {name} | not timed | | {e} |"),
    }
}

/// Checks and times every kernel for one shape.
fn bench_shape(gpu: &Gpu, k: u32, n: u32, filter: Option<&str>) {
    let keep = |name: &str| filter.is_none_or(|f| name.contains(f));
    let nc = n / 4;
    let x = values(k as usize, 1);
    let w = values(k as usize * n as usize, u64::from(n) * 31 + u64::from(k));
    let prob = Problem::new(k, n, &x, &w);
    let storage = wgpu::BufferUsages::STORAGE;
    let x_buf = gpu.buffer(bytemuck::cast_slice(&x), storage);
    let w_buf = gpu.buffer(bytemuck::cast_slice(&w), storage);
    drop(w);
    let zeros = |words: usize| gpu.buffer(&vec![0u8; words * 4], storage);
    let y_buf = zeros(n as usize);
    let part_buf = zeros((FINE * n) as usize);
    let count_buf = zeros(nc as usize);
    let sink = zeros(4);
    let tol = prob.tol;
    let within = |e: f64, what: &str| {
        if e <= tol {
            Ok(e)
        } else {
            Err(format!("{what} error {e:.1e} > {tol:.1e}"))
        }
    };

    let name = format!(
        "kiln baseline L{KILN_LANES} T{KILN_KSPLIT} S1 U{}",
        kiln_unroll(k, KILN_KSPLIT)
    );
    if keep(&name) {
        let p = gpu.pipeline(&kiln_wgsl(k, n));
        let bg = gpu.bind(&p, &[&x_buf, &w_buf, &y_buf]);
        let seq: [Dispatch; 1] = [(&p, &bg, [nc.div_ceil(KILN_LANES), 1])];
        let got = gpu.run(&seq, 1, &[&y_buf], &[&y_buf]);
        report(&prob, &name, within(prob.y_error(&got[0]), "y").map(Some), || {
            gpu.time(&seq)
        });
    }
    let name = "read W (ceiling)";
    if keep(name) {
        let p = gpu.pipeline(READ_WGSL);
        let bg = gpu.bind(&p, &[&w_buf, &sink]);
        report(&prob, name, Ok(None), || gpu.time(&[(&p, &bg, [READ_GROUPS, 1])]));
    }

    let max_threads = gpu.device.limits().max_compute_invocations_per_workgroup;
    let mut combines: Vec<(u32, wgpu::ComputePipeline, wgpu::BindGroup)> = Vec::new();
    for lanes in [16, 32, 64, 128] {
        for rows in [1, 2, 4, 8] {
            for slices in SLICES {
                for unroll in [4, 8] {
                    let sp = Split {
                        lanes,
                        rows,
                        slices,
                        unroll,
                    };
                    let [gx, gy] = sp.grid(nc);
                    let threads = lanes * rows;
                    if !THREADS.contains(&threads)
                        || threads > max_threads
                        || !sp.tiles(k)
                        || (!gpu.cpu && gx * gy < MIN_GROUPS)
                    {
                        continue;
                    }
                    let tag = sp.tag();
                    let (partial, pair, fused) = (
                        format!("partial {tag}"),
                        format!("partial+combine {tag}"),
                        format!("fused {tag}"),
                    );
                    if keep(&partial) || keep(&pair) {
                        let p = gpu.pipeline(&sp.wgsl(k, nc, false));
                        let bg = gpu.bind(&p, &[&x_buf, &w_buf, &part_buf]);
                        let one: Dispatch = (&p, &bg, [gx, gy]);
                        if keep(&partial) {
                            let got = gpu.run(&[one], 1, &[&part_buf], &[&part_buf]);
                            let err = within(prob.part_error(&got[0], slices), "partials");
                            report(&prob, &partial, err.map(Some), || gpu.time(&[one]));
                        }
                        if keep(&pair) {
                            if !combines.iter().any(|c| c.0 == slices) {
                                let cp = gpu.pipeline(&combine_wgsl(nc, slices));
                                let cbg = gpu.bind(&cp, &[&part_buf, &y_buf]);
                                combines.push((slices, cp, cbg));
                            }
                            let (_, cp, cbg) = combines.iter().find(|c| c.0 == slices).expect("combine");
                            let seq: [Dispatch; 2] = [one, (cp, cbg, [nc.div_ceil(COMBINE_THREADS), 1])];
                            let got = gpu.run(&seq, 1, &[&part_buf, &y_buf], &[&part_buf, &y_buf]);
                            let err = check_combined(&prob, &got[0], &got[1], slices, None);
                            report(&prob, &pair, err.map(Some), || gpu.time(&seq));
                        }
                    }
                    if keep(&fused) {
                        let p = gpu.pipeline(&sp.wgsl(k, nc, true));
                        let bg = gpu.bind(&p, &[&x_buf, &w_buf, &part_buf, &y_buf, &count_buf]);
                        let seq: [Dispatch; 1] = [(&p, &bg, [gx, gy])];
                        // Once from cleared counters, then three times back to back (each
                        // dispatch must leave its counters at zero for the next).
                        let mut err = Ok(0.0f64);
                        for (i, repeats) in [1, 3].into_iter().enumerate() {
                            let clear: &[&wgpu::Buffer] = if i == 0 {
                                &[&part_buf, &y_buf, &count_buf]
                            } else {
                                &[&y_buf]
                            };
                            let got = gpu.run(&seq, repeats, clear, &[&part_buf, &y_buf, &count_buf]);
                            match check_combined(&prob, &got[0], &got[1], slices, Some(&got[2])) {
                                Ok(e) => err = err.map(|worst| worst.max(e)),
                                Err(why) => {
                                    err = Err(format!("{why} (after {repeats} dispatch(es))"));
                                    break;
                                }
                            }
                        }
                        report(&prob, &fused, err.map(Some), || gpu.time(&seq));
                    }
                }
            }
        }
    }
}

/// Checks a combine form's read-back partials and y (and, for the fused kernel, its counters
/// all back at zero); returns the larger error of partials and y.
fn check_combined(p: &Problem, part: &[f32], y: &[f32], slices: u32, count: Option<&[f32]>) -> Result<f64, String> {
    if let Some(c) = count {
        let c: &[u32] = bytemuck::cast_slice(c);
        if let Some(bad) = c.iter().position(|&v| v != 0) {
            return Err(format!("counter {bad} left at {}", c[bad]));
        }
    }
    let (ep, ey) = (p.part_error(part, slices), p.y_error(y));
    let e = ep.max(ey);
    if e > p.tol {
        return Err(format!("partials error {ep:.1e}, y error {ey:.1e} > {:.1e}", p.tol));
    }
    if !p.combined_exactly(part, y, slices) {
        return Err("y is not the slice-order f32 sum of the partials".into());
    }
    Ok(e)
}

fn main() {
    let gpu = match Gpu::open() {
        Ok(g) => g,
        Err(why) => {
            println!("gemv_split: skipped: {why}");
            return;
        }
    };
    let env = |key: &str| std::env::var(key).ok();
    let k: u32 = env("KILN_GEMV_K")
        .and_then(|s| s.parse().ok())
        .unwrap_or(if gpu.cpu { 1024 } else { 4096 });
    let ns_text = env("KILN_GEMV_N").unwrap_or_else(|| if gpu.cpu { "1024,1376" } else { "4096,11008" }.into());
    let filter = env("KILN_GEMV_FILTER");
    if k == 0 || !k.is_multiple_of(FINE) {
        println!("gemv_split: K = {k} must be a positive multiple of {FINE}");
        return;
    }
    if !gpu.timestamps {
        println!("timing skipped: the adapter lacks TIMESTAMP_QUERY (kernels are only checked)");
    }
    println!(
        "K = {k}; {} run(s) of {} dispatch(es) per kernel, median; GB/s counts W's 4·K·N bytes",
        gpu.runs, gpu.repeats
    );
    println!("| N | kernel | us | GB/s | max abs error |");
    println!("| ---: | --- | ---: | ---: | ---: |");
    for part in ns_text.split(',') {
        match part.trim().parse::<u32>() {
            Ok(n) if n > 0 && n % 4 == 0 => {
                let bytes = 4 * u64::from(k) * u64::from(n);
                let limits = gpu.device.limits();
                if bytes > limits.max_storage_buffer_binding_size.min(limits.max_buffer_size) {
                    println!("gemv_split: N = {n} skipped (W's {bytes} bytes exceed the adapter's binding limit)");
                } else {
                    bench_shape(&gpu, k, n, filter.as_deref());
                }
            }
            _ => println!("gemv_split: N = {part:?} skipped (a positive multiple of 4 is needed)"),
        }
    }
}
