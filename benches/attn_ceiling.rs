//! Where the f32 flash-attention kernel's time goes: an experiment for issue 7's attention
//! target (1x12x512x64 at least as fast as PyTorch's `scaled_dot_product_attention` fp32), not
//! part of the test suite.
//!
//! The bench compiles issue 7's attention case (`softmax(Q·Kᵀ / 8)·V` over `[1, 12, 512, 64]`)
//! with the `h200` target, as `kiln compile` does, and takes the register-tiled kernel it gets
//! apart by editing its WGSL:
//!
//! - `as compiled`: the kernel and its combine dispatch, each alone and both in one pass (the
//!   pair is checked against an f64 attention at 64 sampled rows before anything is timed);
//! - `no next-block loads`: the key walk never loads another block (it reuses the first one);
//! - `no barriers`: the key walk's barriers removed;
//! - `no exp`: the exponentials replaced by the identity;
//! - `1-channel scores`, `1-key P·V`, both: the score and output products cut to their first
//!   step, leaving the staging, the row maxima and the exponentials;
//! - wgpu's runtime checks off.
//!
//! The edited kernels compute wrong results by design and are timed only. Each edit must
//! change the source (the bench stops otherwise), so a template change that moves the edited
//! lines cannot leave a variant silently equal to the original.
//!
//! `cargo bench --bench attn_ceiling` (`KILN_ADAPTER=name` picks an adapter;
//! `KILN_ATTN_DUMP=dir` writes the variants there). An adapter without timestamps or without
//! subgroups as wide as the kernel's subgroup variant needs is reported and skipped.

use kiln::compiler::{compile, CompileOptions, Model};
use kiln::ir::{BinaryOp, DType, Graph, Op, Tensor, TensorType};
use kiln::runtime::wgpu;
use kiln::schedules::{DeviceLimits, Schedule};
use std::collections::BTreeMap;

#[path = "support/coop.rs"]
mod coop;
#[path = "support/kernels.rs"]
mod kernels;
#[path = "support/timestamps.rs"]
mod timestamps;

/// Heads, sequence length and head dim of issue 7's case (batch 1).
const HEADS: usize = 12;
const SEQ: usize = 512;
const D: usize = 64;
/// Timed runs per variant (the median is reported) and dispatches (or dispatch pairs) per run.
const RUNS: usize = 9;
const REPEATS: u32 = 20;

/// The attention graph of `kiln_bench`'s `attention f32` case.
fn attention_model() -> Model {
    let shape = [1, HEADS, SEQ, D];
    let mut g = Graph::new();
    let t = TensorType::new(DType::F32, &shape);
    let q = g.add_input("q", t.clone());
    let k = g.add_input("k", t.clone());
    let v = g.add_input("v", t);
    let kt = g.add("kt", Op::Transpose { perm: vec![0, 1, 3, 2] }, &[k]).unwrap();
    let s = g.add("s", Op::MatMul, &[q, kt]).unwrap();
    let scale = g.add_const("scale", Tensor::f32(vec![1], vec![1.0 / (D as f32).sqrt()]));
    let ss = g.add("ss", Op::Binary(BinaryOp::Mul), &[s, scale]).unwrap();
    let p = g.add("p", Op::Softmax { axis: 3, log: false }, &[ss]).unwrap();
    let o = g.add("o", Op::MatMul, &[p, v]).unwrap();
    g.add_output("o", o);
    Model {
        name: "attention".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    }
}

/// `src` with `edit` applied to the lines of `main` after the key walk starts; panics if the
/// edit changed nothing.
fn edit_walk(src: &str, what: &str, edit: impl Fn(&[&str]) -> Vec<String>) -> String {
    let lines: Vec<&str> = src.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_start().starts_with("for (var j0 = kbeg;"))
        .expect("the kernel walks its keys in a `for (var j0 = kbeg; ..)` loop");
    let mut out: Vec<String> = lines[..start].iter().map(|l| l.to_string()).collect();
    out.extend(edit(&lines[start..]));
    let new = out.join("\n");
    assert_ne!(
        new,
        src.lines().collect::<Vec<_>>().join("\n"),
        "edit `{what}` changed nothing"
    );
    new
}

/// Drops every `{ .. }` block of the walk whose first statement starts with `prefix`, except
/// the first.
fn keep_first_block(walk: &[&str], prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut seen = false;
    while i < walk.len() {
        let opens = walk[i].trim() == "{" && walk.get(i + 1).is_some_and(|l| l.trim_start().starts_with(prefix));
        if opens && seen {
            let indent = &walk[i][..walk[i].len() - walk[i].trim_start().len()];
            let close = format!("{indent}}}");
            while walk[i] != close {
                i += 1;
            }
            i += 1;
            continue;
        }
        seen |= opens;
        out.push(walk[i].to_string());
        i += 1;
    }
    out
}

/// The kernel variants: (name, WGSL, wgpu runtime checks).
fn variants(main: &str) -> Vec<(String, String, bool)> {
    let no_loads = edit_walk(main, "no next-block loads", |w| {
        w.iter()
            .map(|l| {
                if l.trim_start().starts_with("if (j0 + ") && l.trim_end().ends_with("< kend) {") {
                    let indent = &l[..l.len() - l.trim_start().len()];
                    format!("{indent}if (false) {{")
                } else {
                    l.to_string()
                }
            })
            .collect()
    });
    let no_barriers = edit_walk(main, "no barriers", |w| {
        w.iter()
            .filter(|l| l.trim() != "workgroupBarrier();")
            .map(|l| l.to_string())
            .collect()
    });
    let no_exp = edit_walk(main, "no exp", |w| {
        w.iter().map(|l| l.replace("exp(", "kiln_id(")).collect()
    }) + "\nfn kiln_id(x: vec4<f32>) -> vec4<f32> {\n    return x;\n}\n";
    let one_channel = edit_walk(main, "1-channel scores", |w| keep_first_block(w, "let q = qs["));
    let one_key = edit_walk(main, "1-key P·V", |w| keep_first_block(w, "let p = "));
    let neither = edit_walk(&one_channel, "1-channel scores and 1-key P·V", |w| {
        keep_first_block(w, "let p = ")
    });
    vec![
        ("as compiled".into(), main.to_string(), true),
        ("as compiled, runtime checks off".into(), main.to_string(), false),
        ("no next-block loads".into(), no_loads, true),
        ("no barriers".into(), no_barriers, true),
        ("no exp".into(), no_exp, true),
        ("1-channel scores".into(), one_channel, true),
        ("1-key P·V".into(), one_key, true),
        ("1-channel scores, 1-key P·V".into(), neither, true),
    ]
}

/// f64 attention output row `r` of head `h` (channels `0..D`).
fn reference_row(q: &[f32], k: &[f32], v: &[f32], h: usize, r: usize) -> Vec<f64> {
    let at = |x: &[f32], j: usize, c: usize| f64::from(x[(h * SEQ + j) * D + c]);
    let scale = 1.0 / (D as f64).sqrt();
    let s: Vec<f64> = (0..SEQ)
        .map(|j| (0..D).map(|c| at(q, r, c) * at(k, j, c)).sum::<f64>() * scale)
        .collect();
    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
    let sum: f64 = e.iter().sum();
    (0..D)
        .map(|c| (0..SEQ).map(|j| e[j] * at(v, j, c)).sum::<f64>() / sum)
        .collect()
}

fn main() {
    let target = DeviceLimits::h200();
    let bundle = compile(
        &attention_model(),
        &CompileOptions {
            opt_level: 2,
            target,
            ..Default::default()
        },
    )
    .expect("issue 7's attention case compiles");
    let kernel = &bundle.manifest.kernels[0];
    println!("kernel: {}", kernel.schedule);
    let source = |suffix: &str| {
        bundle
            .kernel_sources
            .iter()
            .find(|(f, _)| f.ends_with(suffix))
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("no kernel file ending in {suffix}"))
    };
    // The subgroup variant (what the H200 runs) and the combine kernel of the key slices.
    let main_src = source("_attention_sg.wgsl");
    let combine_src = source("_attention_combine.wgsl");
    let Ok(Schedule::Attention(params)) = Schedule::from_ron(&kernel.schedule_params) else {
        panic!(
            "issue 7's case compiles to a flash-attention kernel, not {}",
            kernel.schedule
        );
    };
    let (slices, rows) = (params.slices, params.rows);
    assert!(slices > 1, "the default splits issue 7's case over key slices");
    let kernel_list = variants(&main_src);
    // Every variant passes naga first (on any machine); `KILN_ATTN_DUMP=dir` writes them out.
    let dump = std::env::var("KILN_ATTN_DUMP").ok();
    for (i, (name, src, _)) in kernel_list.iter().enumerate() {
        let caps = kiln::compiler::codegen::validate::SUBGROUP_CAPS;
        if let Err(e) = kiln::compiler::codegen::validate::validate_wgsl_with(name, src, caps) {
            panic!("{name}: {e}\n{src}");
        }
        if let Some(dir) = &dump {
            std::fs::write(format!("{dir}/variant{i}.wgsl"), src).expect("dump dir is writable");
        }
    }
    let (device, queue) = match coop::device_with(
        "attn_ceiling",
        wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY,
        // The subgroup variant's row groups must fit in a subgroup.
        kernel.variants[0].requires.min_subgroup_size.unwrap_or(8)..=128,
    ) {
        Ok(p) => p,
        Err(why) => {
            println!("attn_ceiling: skipped: {why}");
            return;
        }
    };
    let n = HEADS * SEQ * D;
    let widen = |seed| -> Vec<f32> { coop::f16_values(n, seed).iter().map(|x| x.to_f32()).collect() };
    let (q, k, v) = (widen(21), widen(22), widen(23));
    let storage = wgpu::BufferUsages::STORAGE;
    let make = |bytes: &[u8], usage| coop::upload(&device, &queue, bytes, usage);
    let (qb, kb, vb) = (
        make(bytemuck::cast_slice(&q), storage),
        make(bytemuck::cast_slice(&k), storage),
        make(bytemuck::cast_slice(&v), storage),
    );
    let scratch = make(
        &vec![0u8; slices as usize * HEADS * SEQ * (D + 2) * 4],
        storage | wgpu::BufferUsages::COPY_SRC,
    );
    let out = make(&vec![0u8; n * 4], storage | wgpu::BufferUsages::COPY_SRC);
    let main_grid = [HEADS as u32, SEQ as u32 / rows, slices];
    let combine_grid = [(n as u32).div_ceil(256), 1, 1];
    let combine = kernels::pipeline(&device, &combine_src);
    let combine_group = kernels::bind_at(&device, &combine, &[(1, &scratch), (2, &out)]);
    let (set, resolve) = timestamps::pass_timestamps(&device);
    type Step<'a> = (&'a wgpu::ComputePipeline, &'a wgpu::BindGroup, [u32; 3]);
    let record = |steps: &[Step], repeats: u32, stamps: bool| {
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
            for _ in 0..repeats {
                for (pipe, group, grid) in steps {
                    pass.set_pipeline(pipe);
                    pass.set_bind_group(0, *group, &[]);
                    pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
                }
            }
        }
        enc
    };
    let period = f64::from(queue.get_timestamp_period());
    let median_us = |steps: &[Step]| {
        let mut us: Vec<f64> = (0..RUNS)
            .map(|_| {
                let mut enc = record(steps, REPEATS, true);
                enc.resolve_query_set(&set, 0..2, &resolve, 0);
                let bytes = kernels::read_back(&device, &queue, enc, &[&resolve]).remove(0);
                let ticks: &[u64] = bytemuck::cast_slice(&bytes);
                ticks[1].saturating_sub(ticks[0]) as f64 * period / 1e3 / f64::from(REPEATS)
            })
            .collect();
        us.sort_by(f64::total_cmp);
        us[RUNS / 2]
    };
    let flops = 4.0 * (HEADS * SEQ * SEQ * D) as f64;
    for (i, (name, src, checks)) in kernel_list.iter().enumerate() {
        let pipe = kernels::pipeline_with_checks(&device, src, *checks);
        let group = kernels::bind_at(&device, &pipe, &[(1, &qb), (2, &kb), (3, &vb), (4, &scratch)]);
        let pair: [Step; 2] = [(&pipe, &group, main_grid), (&combine, &combine_group, combine_grid)];
        if i == 0 {
            // The compiled pair against the f64 attention (values in [-1, 1]: outputs of
            // magnitude below 1, f32 sums of 512 terms).
            let bytes = kernels::read_back(&device, &queue, record(&pair, 1, false), &[&out]).remove(0);
            let o: &[f32] = bytemuck::cast_slice(&bytes);
            let mut worst = 0.0f64;
            for s in 0..64usize {
                let (h, r) = ((s * 7) % HEADS, (s * 131 + 5) % SEQ);
                for (c, want) in reference_row(&q, &k, &v, h, r).iter().enumerate() {
                    let err = (f64::from(o[(h * SEQ + r) * D + c]) - want).abs();
                    // A NaN output counts as infinitely wrong (`max` would drop it).
                    worst = worst.max(if err.is_nan() { f64::INFINITY } else { err });
                }
            }
            if worst > 1e-5 {
                println!("as compiled: WRONG (max abs error {worst:.2e}), nothing timed");
                return;
            }
            println!("as compiled: max abs error {worst:.1e} against f64 at 64 rows");
            let both = median_us(&pair);
            let combine_only = median_us(&pair[1..]);
            println!(
                "kernel + combine: {both:.1} µs ({:.2} TFLOP/s); combine alone: {combine_only:.1} µs",
                flops / both / 1e6
            );
        }
        let alone = median_us(&pair[..1]);
        println!(
            "{name}: {alone:.1} µs ({:.2} TFLOP/s as the whole attention)",
            flops / alone / 1e6
        );
    }
}
