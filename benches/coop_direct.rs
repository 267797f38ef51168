//! Cooperative-matrix GEMM without workgroup memory: an experiment for issue 7's f16 GEMM
//! target before any of it goes into the compiler.
//!
//! Kiln's f16 GEMM (`gemm_coop.wgsl`) reads f32 operands, converts them to f16 into
//! workgroup-memory stages and loads fragments from there, with two barriers per K-step. On the
//! H200 its time fits `steps x (3.3 µs + 1.65 µs per 16-deep slice)` (docs/performance.md,
//! eighth session): the fixed part of each K-step (staging, barriers) costs as much as the
//! multiplies, and the 48 KiB limit on workgroup memory stops deeper stages. This bench asks
//! what the same tensor cores give when the operands are already f16 in memory and every
//! subgroup loads its fragments straight from the storage buffers (`coopLoadT` on a storage
//! pointer): no workgroup memory, no barrier, the reuse between the subgroups of a workgroup
//! left to the L1 cache. If that is much faster, f16 storage of a product's operands (issue 8
//! left f16 activations out) is worth building.
//!
//! Each kernel computes `C = A x B` for row-major f16 `A [m, k]`, `B [k, n]` and f32 `C`, a
//! `bm x bn` block per workgroup of `(bm / sm) x (bn / sn)` subgroups, each a `sm x sn`
//! sub-block of 16x16 f32 accumulators; per loop step it loads `unroll` 16-deep slices of its
//! A and B fragments first and multiplies them after. Sampled outputs are checked against an
//! f64 product of the same f16 values before a kernel is timed; timing records `REPEATS`
//! dispatches in one pass between timestamps (the way `kiln_bench` times kernels), median of
//! `RUNS`.
//!
//! `cargo bench --bench coop_direct` (`KILN_ADAPTER=name` picks an adapter;
//! `KILN_COOP_SIZE=n` the square size, default 4096). An adapter without f16 cooperative
//! matrices and subgroups of 32 is reported and skipped. Not part of the test suite.

use kiln::runtime::wgpu;

#[path = "support/coop.rs"]
mod coop;
#[path = "support/kernels.rs"]
mod kernels;
#[path = "support/timestamps.rs"]
mod timestamps;

/// Timed runs per kernel (the median is reported).
const RUNS: usize = 5;
/// Dispatches per timed run.
const REPEATS: u32 = 10;
/// Output elements compared with the f64 reference per kernel.
const SAMPLES: usize = 64;

/// A direct-load kernel's shape: block, subgroup sub-block and slices per loop step.
#[derive(Clone, Copy)]
struct Tile {
    bm: u32,
    bn: u32,
    sm: u32,
    sn: u32,
    unroll: u32,
}

impl Tile {
    fn subgroups(&self) -> u32 {
        (self.bm / self.sm) * (self.bn / self.sn)
    }

    fn name(&self) -> String {
        format!(
            "direct {}x{} block, {}x{} per subgroup ({} threads), {} slices per step",
            self.bm,
            self.bn,
            self.sm,
            self.sn,
            self.subgroups() * 32,
            self.unroll
        )
    }

    /// The kernel's WGSL for a product of `n` columns over `k` (the rows, the columns and `k`
    /// multiples of the block and of 16 * unroll).
    fn wgsl(&self, n: u32, k: u32) -> String {
        let (fm, fn_) = (self.sm / 16, self.sn / 16);
        let mut s = String::new();
        let mut line = |t: String| {
            s.push_str(&t);
            s.push('\n');
        };
        line("enable f16;\nenable wgpu_cooperative_matrix;".into());
        line("@group(0) @binding(0) var<storage, read> a: array<f16>;".into());
        line("@group(0) @binding(1) var<storage, read> b: array<f16>;".into());
        line("@group(0) @binding(2) var<storage, read_write> c: array<f32>;".into());
        line(format!("@compute @workgroup_size({}, 1, 1)", self.subgroups() * 32));
        line("fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {".into());
        line("    let sg = lid / 32u;".into());
        let cols = self.bn / self.sn;
        line(format!(
            "    let row0 = wid.y * {}u + (sg / {cols}u) * {}u;",
            self.bm, self.sm
        ));
        line(format!(
            "    let col0 = wid.x * {}u + (sg % {cols}u) * {}u;",
            self.bn, self.sn
        ));
        for i in 0..fm {
            for j in 0..fn_ {
                line(format!("    var acc{i}_{j} = coop_mat16x16<f32, C>();"));
            }
        }
        line(format!(
            "    for (var k0 = 0u; k0 < {k}u; k0 += {}u) {{",
            16 * self.unroll
        ));
        for u in 0..self.unroll {
            for i in 0..fm {
                line(format!(
                    "        let a{u}_{i} = coopLoadT<coop_mat16x16<f16, A>>(&a[(row0 + {}u) * {k}u + k0 + {}u], {k}u);",
                    16 * i,
                    16 * u
                ));
            }
            for j in 0..fn_ {
                line(format!(
                    "        let b{u}_{j} = coopLoadT<coop_mat16x16<f16, B>>(&b[(k0 + {}u) * {n}u + col0 + {}u], {n}u);",
                    16 * u,
                    16 * j
                ));
            }
        }
        for u in 0..self.unroll {
            for i in 0..fm {
                for j in 0..fn_ {
                    line(format!(
                        "        acc{i}_{j} = coopMultiplyAdd(a{u}_{i}, b{u}_{j}, acc{i}_{j});"
                    ));
                }
            }
        }
        line("    }".into());
        for i in 0..fm {
            for j in 0..fn_ {
                line(format!(
                    "    coopStoreT(acc{i}_{j}, &c[(row0 + {}u) * {n}u + col0 + {}u], {n}u);",
                    16 * i,
                    16 * j
                ));
            }
        }
        line("}".into());
        s
    }
}

struct Probe {
    device: wgpu::Device,
    queue: wgpu::Queue,
}

impl Probe {
    /// A device with f16 cooperative matrices, or why not.
    fn open() -> Result<Probe, String> {
        let (device, queue) = coop::coop_device("coop_direct")?;
        Ok(Probe { device, queue })
    }

    fn buffer(&self, bytes: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
        coop::upload(&self.device, &self.queue, bytes, usage)
    }

    /// Records `repeats` dispatches of `pipe` in one pass (between timestamps when `stamps`).
    fn record(
        &self,
        pipe: &wgpu::ComputePipeline,
        group: &wgpu::BindGroup,
        grid: [u32; 2],
        repeats: u32,
        stamps: Option<&wgpu::QuerySet>,
    ) -> wgpu::CommandEncoder {
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: stamps.map(|query_set| wgpu::ComputePassTimestampWrites {
                    query_set,
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
    }

    /// Submits `enc` and returns the bytes of `src` after it.
    fn read(&self, enc: wgpu::CommandEncoder, src: &wgpu::Buffer) -> Vec<u8> {
        kernels::read_back(&self.device, &self.queue, enc, &[src]).remove(0)
    }
}

fn main() {
    let size: u32 = std::env::var("KILN_COOP_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096);
    let tiles = [
        Tile {
            bm: 128,
            bn: 128,
            sm: 64,
            sn: 32,
            unroll: 1,
        },
        Tile {
            bm: 128,
            bn: 128,
            sm: 64,
            sn: 32,
            unroll: 2,
        },
        Tile {
            bm: 128,
            bn: 128,
            sm: 64,
            sn: 32,
            unroll: 4,
        },
        Tile {
            bm: 128,
            bn: 128,
            sm: 64,
            sn: 64,
            unroll: 2,
        },
        Tile {
            bm: 128,
            bn: 256,
            sm: 64,
            sn: 32,
            unroll: 2,
        },
        Tile {
            bm: 256,
            bn: 128,
            sm: 64,
            sn: 64,
            unroll: 2,
        },
        Tile {
            bm: 64,
            bn: 64,
            sm: 32,
            sn: 32,
            unroll: 2,
        },
    ];
    // Every module passes naga first (on any machine), as the compiler's kernels do.
    for t in &tiles {
        let caps = kiln::compiler::codegen::validate::COOP_GEMM_CAPS;
        if let Err(e) = kiln::compiler::codegen::validate::validate_wgsl_with(&t.name(), &t.wgsl(size, size), caps) {
            panic!("{}: {e}", t.name());
        }
    }
    let probe = match Probe::open() {
        Ok(p) => p,
        Err(why) => {
            println!("coop_direct: skipped: {why}");
            return;
        }
    };
    let (m, n, k) = (size, size, size);
    let a = coop::f16_values((m * k) as usize, 1);
    let b = coop::f16_values((k * n) as usize, 2);
    let storage = wgpu::BufferUsages::STORAGE;
    let a_buf = probe.buffer(bytemuck::cast_slice(&a), storage);
    let b_buf = probe.buffer(bytemuck::cast_slice(&b), storage);
    let c_buf = probe.buffer(&vec![0u8; (m * n * 4) as usize], storage | wgpu::BufferUsages::COPY_SRC);
    let flops = 2.0 * f64::from(m) * f64::from(n) * f64::from(k);
    let (set, resolve) = timestamps::pass_timestamps(&probe.device);
    for t in tiles {
        if m % t.bm != 0 || n % t.bn != 0 || k % (16 * t.unroll) != 0 {
            continue;
        }
        let pipe = kernels::pipeline(&probe.device, &t.wgsl(n, k));
        let group = kernels::bind(&probe.device, &pipe, &[&a_buf, &b_buf, &c_buf]);
        let grid = [n / t.bn, m / t.bm];
        // Checked first: sampled outputs against an f64 product of the same f16 values.
        let bytes = probe.read(probe.record(&pipe, &group, grid, 1, None), &c_buf);
        let c: &[f32] = bytemuck::cast_slice(&bytes);
        let mut worst = 0.0f64;
        for s in 0..SAMPLES {
            let (i, j) = ((s * 977 + 13) % m as usize, (s * 613 + 7) % n as usize);
            let want: f64 = (0..k as usize)
                .map(|l| f64::from(a[i * k as usize + l].to_f32()) * f64::from(b[l * n as usize + j].to_f32()))
                .sum();
            worst = worst.max((f64::from(c[i * n as usize + j]) - want).abs() / (k as f64).sqrt());
        }
        // f32 accumulation of k products of magnitude < 1: far below 1e-3 of sqrt(k).
        if worst > 1e-3 {
            println!("{}: WRONG (error {worst:.2e} of sqrt(k)), not timed", t.name());
            continue;
        }
        let period = f64::from(probe.queue.get_timestamp_period());
        let mut ms: Vec<f64> = (0..RUNS)
            .map(|_| {
                let mut enc = probe.record(&pipe, &group, grid, REPEATS, Some(&set));
                enc.resolve_query_set(&set, 0..2, &resolve, 0);
                let ticks: Vec<u64> = bytemuck::cast_slice(&probe.read(enc, &resolve)).to_vec();
                ticks[1].saturating_sub(ticks[0]) as f64 * period / 1e6 / f64::from(REPEATS)
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        let med = ms[RUNS / 2];
        println!(
            "{}: {med:.4} ms, {:.1} TFLOP/s (max error {worst:.1e} of sqrt(k))",
            t.name(),
            flops / med / 1e9
        );
    }
}
