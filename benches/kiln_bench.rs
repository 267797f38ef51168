//! Kiln benchmarks: GEMM, GEMV and convolution throughput, elementwise and row-reduction
//! bandwidth, and the latency of the demo block (a dispatch-bound program), each compiled by
//! Kiln and timed on the GPU with `Session::bench_repeated`: one iteration records the program
//! `repeats` times into one pass, submits and waits; short kernels get enough repeats that the
//! submit+wait round trip (tens of microseconds) does not swamp them, and their timer starts at
//! the submit (the CPU's encoding of the repeats is not timed; before the nineteenth session it
//! was, which added a few microseconds to every short kernel). The latency cases (demo block)
//! use one repeat, so they include the encoding and that round trip.
//!
//! `cargo bench --bench kiln_bench` runs the full set with the analytic default schedules; on a
//! CPU adapter (lavapipe) the sizes shrink automatically. `KILN_BENCH_QUICK=1` forces the small
//! set, `KILN_BENCH_JSON=path` also writes the results as JSON lines, `KILN_BENCH_SWEEP=1` also
//! times every candidate of the GEMM and GEMV parameter spaces (`kiln_schedules::space`) on the
//! matmul and convolution cases (split-K included for matmuls; `KILN_BENCH_SWEEP_FILTER=text` keeps the candidates whose
//! name contains `text`), `KILN_BENCH_FILTER=text` keeps only cases whose name
//! contains `text` (both filters: `a|b` keeps what contains `a` or `b`), and `KILN_BENCH_TARGET=h200` plans the defaults for that limits profile
//! (default `desktop`). `benches/device/run_kernels.sh` runs the kernel set on the GPU machine.

use kiln::compiler::lower::anchor::MIN_FLASH_KEYS;
use kiln::compiler::lower::KernelBody;
use kiln::compiler::{compile_to_dir, tuning_key, CompileOptions, Model, Precision};
use kiln::convert::to_host;
use kiln::ir::quant::{dequantize, packed_tensor, quantize};
use kiln::ir::{BinaryOp, BlockType, DType, Dim, Graph, Op, Tensor, TensorType, UnaryOp};
use kiln::runtime::{Bundle, Session};
use kiln::schedules::tuning::{TuningDb, TuningRecord};
use kiln::schedules::{space, AttentionParams, DeviceLimits, Schedule};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

struct Case {
    name: String,
    model: Model,
    inputs: HashMap<String, Tensor>,
    /// Useful work per run: flops for compute-bound cases, bytes moved for bandwidth cases.
    work: f64,
    unit: &'static str,
    /// Tuning key of the case's matmul, for schedule sweeps.
    matmul_key: Option<String>,
    /// Latency cases keep one repeat per iteration (the submit+wait is part of what they show).
    latency: bool,
    /// Optimization level the case is compiled at.
    opt_level: u8,
    /// `F16`: compiled with `--precision f16` (the cooperative-matrix GEMM variant where the
    /// adapter supports it), and its result checked against an f64 reference.
    precision: Precision,
    /// A quantized matmul's weight values as the kernels decode them (`[n, k]`), for the f16
    /// case's reference check.
    w_values: Option<Vec<f32>>,
}

fn random(shape: &[usize], seed: u64) -> Tensor {
    Tensor::f32(
        shape.to_vec(),
        kiln::demo::pseudo_random(shape.iter().product(), seed, 1.0),
    )
}

fn gemm_case(m: usize, n: usize, k: usize) -> Case {
    let mut g = Graph::new();
    let a = g.add_input("a", TensorType::new(DType::F32, &[m, k]));
    let b = g.add_input("b", TensorType::new(DType::F32, &[k, n]));
    let c = g.add("c", Op::MatMul, &[a, b]).unwrap();
    g.add_output("c", c);
    Case {
        name: format!("gemm f32 {m}x{n}x{k}"),
        model: Model {
            name: "gemm".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        },
        inputs: HashMap::from([("a".into(), random(&[m, k], 1)), ("b".into(), random(&[k, n], 2))]),
        work: 2.0 * (m * n * k) as f64,
        unit: "GFLOP/s",
        matmul_key: Some(tuning_key(&KernelBody::Gemm {
            a: vec![Dim::c(m as i64), Dim::c(k as i64)],
            b: vec![Dim::c(k as i64), Dim::c(n as i64)],
            dtype: DType::F32,
        })),
        latency: false,
        opt_level: 2,
        precision: Precision::F32,
        w_values: None,
    }
}

/// [`gemm_case`] compiled with `--precision f16`: on an adapter with cooperative matrices the
/// f16 variant runs (f16 operands, f32 accumulation), elsewhere the f32 kernel.
fn gemm_f16_case(m: usize, n: usize, k: usize) -> Case {
    let mut c = gemm_case(m, n, k);
    c.name = format!("gemm f16 {m}x{n}x{k}");
    c.precision = Precision::F16;
    c
}

/// An f16 product as PyTorch's fp16 matmul takes it: f16 inputs and an f16 result, compiled
/// with `--precision f16`. The inputs stay f16 pairs on the GPU (`half_storage`), which the
/// cooperative-matrix variant reads 8 values per load.
fn hgemm_case(m: usize, n: usize, k: usize) -> Case {
    let mut c = gemm_f16_case(m, n, k);
    let mut g = Graph::new();
    let a = g.add_input("a", TensorType::new(DType::F16, &[m, k]));
    let b = g.add_input("b", TensorType::new(DType::F16, &[k, n]));
    let y = g.add("c", Op::MatMul, &[a, b]).unwrap();
    g.add_output("c", y);
    c.model.graph = g;
    c.name = format!("hgemm f16 {m}x{n}x{k}");
    c.matmul_key = Some(tuning_key(&KernelBody::Gemm {
        a: vec![Dim::c(m as i64), Dim::c(k as i64)],
        b: vec![Dim::c(k as i64), Dim::c(n as i64)],
        dtype: DType::F16,
    }));
    c
}

/// [`hgemm_case`] with B an f16 weight (f16 pairs in the bundle and on the GPU) and A an f16
/// input that is also a graph output, so it keeps f32 words: an f16 model's activation times
/// its weight.
fn hgemm_weight_case(m: usize, n: usize, k: usize) -> Case {
    let mut c = hgemm_case(m, n, k);
    let mut g = Graph::new();
    let a = g.add_input("a", TensorType::new(DType::F16, &[m, k]));
    let w = Tensor::from_f64(DType::F16, vec![k, n], &c.inputs["b"].to_f64());
    let b = g.add_const("b", w);
    let y = g.add("c", Op::MatMul, &[a, b]).unwrap();
    g.add_output("c", y);
    g.add_output("a", a);
    c.model.graph = g;
    c.name = format!("hgemm f16 weight {m}x{n}x{k}");
    c
}

/// A matrix-vector product whose matrix is a weight, as in a decode step; its work is the bytes
/// read (the matrix dominates), so it compares with copy bandwidth.
fn gemv_case(k: usize, n: usize) -> Case {
    let mut c = gemm_case(1, n, k);
    c.name = format!("gemv f32 1x{k} . {k}x{n}");
    c.work = 4.0 * (k * n + k + n) as f64;
    c.unit = "GB/s";
    c
}

/// A quantized matmul `x[m, k] · Wᵀ` with `W: [n, k]` packed as `block` (random values
/// quantized), as in a language model's decode (`m = 1`: the quantized GEMV) or prefill; its
/// work is the bytes read (packed W, x, y), so the decode case compares with copy bandwidth.
fn qmatmul_case(block: BlockType, m: usize, k: usize, n: usize) -> Case {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[m, k]));
    let values = kiln::demo::pseudo_random(n * k, 3, 1.0);
    let bytes = quantize(block, &values).expect("a block type with a quantizer");
    let w = g.add_const("w", packed_tensor(block, n, k, &bytes).expect("valid packed weight"));
    let y = g.add("y", Op::QMatMul { block, n, k }, &[x, w]).unwrap();
    g.add_output("y", y);
    let kind = if m <= 8 { "qgemv" } else { "qgemm" };
    Case {
        name: format!("{kind} {block} {m}x{k} . {n}x{k}"),
        model: Model {
            name: "qmatmul".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        },
        inputs: HashMap::from([("x".into(), random(&[m, k], 1))]),
        work: (bytes.len() + 4 * (m * k + m * n)) as f64,
        unit: "GB/s",
        // Swept over the GEMV space (decode) or the quantized GEMM's (prefill).
        matmul_key: Some(tuning_key(&KernelBody::QGemm {
            x: vec![Dim::c(m as i64), Dim::c(k as i64)],
            block,
            n,
            k,
            norm: None,
            glu: false,
            xq8: false,
            q8_out: None,
            quantize_x: false,
            tail: Vec::new(),
        })),
        latency: false,
        opt_level: 2,
        precision: Precision::F32,
        w_values: None,
    }
}

/// [`qmatmul_case`] compiled with `--precision f16`: on an adapter with cooperative matrices
/// the tiled product runs the f16 variant (x and the decoded W rounded to f16, f32
/// accumulation), elsewhere the f32 kernel; its result is checked against f64 references.
fn qmatmul_f16_case(block: BlockType, m: usize, k: usize, n: usize) -> Case {
    let mut c = qmatmul_case(block, m, k, n);
    c.name = format!("qgemm f16 {block} {m}x{k} . {n}x{k}");
    c.precision = Precision::F16;
    // The weight values as qmatmul_case made them, decoded.
    let bytes = quantize(block, &kiln::demo::pseudo_random(n * k, 3, 1.0)).expect("a block type with a quantizer");
    c.w_values = Some(dequantize(block, &bytes, n * k).expect("decodes what it encoded"));
    c
}

/// A plain copy-like kernel (negation: one read, one write per element), the bandwidth
/// ceiling that memory-bound kernels are compared with.
fn copy_case(len: usize) -> Case {
    row_case(
        &format!("copy (neg) f32 {len}"),
        Op::Unary(UnaryOp::Neg),
        &[len],
        8.0 * len as f64,
    )
}

/// One op over one input of `shape`, measured as bytes moved.
fn row_case(name: &str, op: Op, shape: &[usize], bytes: f64) -> Case {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, shape));
    let y = g.add("y", op, &[x]).unwrap();
    g.add_output("y", y);
    Case {
        name: name.to_string(),
        model: Model {
            name: "op".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        },
        inputs: HashMap::from([("x".into(), random(shape, 8))]),
        work: bytes,
        unit: "GB/s",
        matmul_key: None,
        latency: false,
        opt_level: 2,
        precision: Precision::F32,
        w_values: None,
    }
}

/// LayerNorm over rows of `len` with scale and bias weights.
fn layernorm_case(rows: usize, len: usize) -> Case {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[rows, len]));
    let s = g.add_const("scale", random(&[len], 9));
    let b = g.add_const("bias", random(&[len], 10));
    let y = g
        .add("y", Op::LayerNorm { axis: 1, epsilon: 1e-5 }, &[x, s, b])
        .unwrap();
    g.add_output("y", y);
    Case {
        name: format!("layernorm f32 {rows}x{len}"),
        model: Model {
            name: "layernorm".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        },
        inputs: HashMap::from([("x".into(), random(&[rows, len], 8))]),
        work: 8.0 * (rows * len) as f64,
        unit: "GB/s",
        matmul_key: None,
        latency: false,
        opt_level: 2,
        precision: Precision::F32,
        w_values: None,
    }
}

/// A 3x3 convolution (pad 1, stride 1, with bias) of `[n, c, hw, hw]` into `oc` channels in
/// `groups` groups; swept (`KILN_BENCH_SWEEP=1`) over the GEMM space without split-K.
fn conv_case(n: usize, c: usize, hw: usize, oc: usize) -> Case {
    grouped_conv_case(n, c, hw, oc, 1)
}

/// [`conv_case`] in `groups` groups (`groups == c == oc`: a depthwise convolution, measured as
/// bytes moved: input, output, weights and bias).
fn grouped_conv_case(n: usize, c: usize, hw: usize, oc: usize, groups: usize) -> Case {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[n, c, hw, hw]));
    let w = g.add_const("w", random(&[oc, c / groups, 3, 3], 3));
    let b = g.add_const("b", random(&[oc], 4));
    let op = Op::Conv {
        strides: vec![1, 1],
        pads: vec![(1, 1); 2],
        dilations: vec![1, 1],
        groups,
    };
    let y = g.add("conv", op, &[x, w, b]).unwrap();
    g.add_output("y", y);
    let depthwise = groups > 1 && groups == c && groups == oc;
    let d = |v: usize| Dim::c(v as i64);
    let key = tuning_key(&KernelBody::Conv {
        x: vec![d(n), d(c), d(hw), d(hw)],
        w: vec![d(oc), d(c / groups), d(3), d(3)],
        out: vec![d(n), d(oc), d(hw), d(hw)],
        strides: vec![1, 1],
        pads: vec![(1, 1); 2],
        dilations: vec![1, 1],
        groups,
        bias: true,
    });
    Case {
        name: if depthwise {
            format!("dwconv3x3 f32 {n}x{c}x{hw}x{hw}")
        } else {
            format!("conv3x3 f32 {n}x{c}x{hw}x{hw} -> {oc}")
        },
        model: Model {
            name: "conv".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        },
        inputs: HashMap::from([("x".into(), random(&[n, c, hw, hw], 5))]),
        work: if depthwise {
            4.0 * (2 * n * c * hw * hw + c * 10) as f64
        } else {
            2.0 * (n * oc * hw * hw * c / groups * 9) as f64
        },
        unit: if depthwise { "GB/s" } else { "GFLOP/s" },
        matmul_key: Some(key),
        latency: false,
        opt_level: 2,
        precision: Precision::F32,
        w_values: None,
    }
}

fn add_case(len: usize) -> Case {
    let mut g = Graph::new();
    let a = g.add_input("a", TensorType::new(DType::F32, &[len]));
    let b = g.add_input("b", TensorType::new(DType::F32, &[len]));
    let c = g.add("c", Op::Binary(BinaryOp::Add), &[a, b]).unwrap();
    g.add_output("c", c);
    Case {
        name: format!("add f32 {len}"),
        model: Model {
            name: "add".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        },
        inputs: HashMap::from([("a".into(), random(&[len], 6)), ("b".into(), random(&[len], 7))]),
        work: 12.0 * len as f64,
        unit: "GB/s",
        matmul_key: None,
        latency: false,
        opt_level: 2,
        precision: Precision::F32,
        w_values: None,
    }
}

/// Attention as BERT computes it, `softmax(Q·Kᵀ / sqrt(d))·V` over `[batch, heads, seq, d]`
/// inputs: the one flash-attention kernel at opt-level 3, and at level 2 from
/// [`MIN_FLASH_KEYS`] keys (its schedule space is swept with `KILN_BENCH_SWEEP=1`); at level 1
/// five kernels (the QKᵀ GEMM, the scale, the softmax, the PV GEMM). Work counts the two products' flops.
fn attention_case(batch: usize, heads: usize, seq: usize, d: usize, opt_level: u8) -> Case {
    let shape = [batch, heads, seq, d];
    let mut g = Graph::new();
    let q = g.add_input("q", TensorType::new(DType::F32, &shape));
    let k = g.add_input("k", TensorType::new(DType::F32, &shape));
    let v = g.add_input("v", TensorType::new(DType::F32, &shape));
    let kt = g.add("kt", Op::Transpose { perm: vec![0, 1, 3, 2] }, &[k]).unwrap();
    let s = g.add("s", Op::MatMul, &[q, kt]).unwrap();
    let scale = g.add_const("scale", Tensor::f32(vec![1], vec![1.0 / (d as f32).sqrt()]));
    let ss = g.add("ss", Op::Binary(BinaryOp::Mul), &[s, scale]).unwrap();
    let p = g.add("p", Op::Softmax { axis: 3, log: false }, &[ss]).unwrap();
    let o = g.add("o", Op::MatMul, &[p, v]).unwrap();
    g.add_output("o", o);
    Case {
        name: format!("attention f32 {batch}x{heads}x{seq}x{d} opt-level {opt_level}"),
        model: Model {
            name: "attention".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        },
        inputs: HashMap::from([
            ("q".into(), random(&shape, 11)),
            ("k".into(), random(&shape, 12)),
            ("v".into(), random(&shape, 13)),
        ]),
        work: 4.0 * (batch * heads * seq * seq * d) as f64,
        unit: "GFLOP/s",
        // Swept where the kernel is fused (the flash-attention schedule space).
        matmul_key: (opt_level >= 3 || (opt_level == 2 && seq >= MIN_FLASH_KEYS)).then(|| {
            tuning_key(&KernelBody::Attention {
                batch: Dim::product(&[Dim::c(batch as i64), Dim::c(heads as i64)]),
                sq: Dim::c(seq as i64),
                sk: Dim::c(seq as i64),
                d,
                dv: d,
            })
        }),
        latency: false,
        opt_level,
        precision: Precision::F32,
        w_values: None,
    }
}

/// [`attention_case`] (opt-level 3) compiled with `--precision f16`: on an adapter with
/// cooperative matrices the flash-attention kernel runs as its cooperative-matrix variant (Q,
/// K, V and the probabilities as f16, f32 accumulation), elsewhere as the f32 kernel.
fn attention_f16_case(batch: usize, heads: usize, seq: usize, d: usize) -> Case {
    let mut c = attention_case(batch, heads, seq, d, 3);
    c.name = format!("attention f16 {batch}x{heads}x{seq}x{d}");
    c.precision = Precision::F16;
    c
}

fn demo_case(batch: usize) -> Case {
    Case {
        name: format!("demo block batch {batch} (latency)"),
        model: kiln::demo::demo_model().unwrap(),
        inputs: HashMap::from([("x".into(), kiln::demo::demo_input(batch))]),
        work: 0.0,
        unit: "",
        matmul_key: None,
        latency: true,
        opt_level: 2,
        precision: Precision::F32,
        w_values: None,
    }
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    // One device for every case: creating a device per compiled variant exhausted the NVIDIA
    // driver after ~30 devices in a schedule sweep ("Parent device is lost").
    let runtime = kiln::runtime::Runtime::new().expect("a GPU adapter (see README)");
    let info = runtime.adapter_info().clone();
    let cpu = info.device_type == kiln::runtime::wgpu::DeviceType::Cpu;
    let quick = cpu || std::env::var_os("KILN_BENCH_QUICK").is_some();
    println!(
        "device: {} ({:?}, {:?}, driver {})",
        info.name, info.backend, info.device_type, info.driver_info
    );
    let cases: Vec<Case> = if quick {
        vec![
            gemm_case(256, 256, 256),
            gemm_f16_case(256, 256, 256),
            hgemm_case(256, 256, 256),
            hgemm_weight_case(256, 256, 256),
            gemv_case(256, 256),
            conv_case(1, 16, 32, 16),
            grouped_conv_case(1, 16, 32, 16, 16),
            add_case(1 << 20),
            copy_case(1 << 20),
            row_case(
                "softmax f32 64x256",
                Op::Softmax { axis: 1, log: false },
                &[64, 256],
                8.0 * 64.0 * 256.0,
            ),
            layernorm_case(64, 256),
            demo_case(1),
            // SmolLM2-135M's FFN up (Q4_1) at decode and a 16-token prefill, and a Q8_0 head.
            qmatmul_case(BlockType::Q4_1, 1, 576, 1536),
            qmatmul_case(BlockType::Q4_1, 1, 1536, 576),
            qmatmul_case(BlockType::Q4_1, 16, 576, 1536),
            qmatmul_f16_case(BlockType::Q4_1, 16, 576, 1536),
            qmatmul_case(BlockType::Q8_0, 1, 576, 8192),
        ]
    } else {
        vec![
            gemm_case(1024, 1024, 1024),
            gemm_case(2048, 2048, 2048),
            gemm_case(4096, 4096, 4096),
            gemm_f16_case(1024, 1024, 1024),
            gemm_f16_case(2048, 2048, 2048),
            gemm_f16_case(4096, 4096, 4096),
            hgemm_case(2048, 2048, 2048),
            hgemm_case(4096, 4096, 4096),
            hgemm_weight_case(4096, 4096, 4096),
            // paraphrase-MiniLM-L3-v2's GEMMs at batch 1 x 128 (FFN down, QKV, FFN up, output
            // projection) and the FFN down at batch 32 x 128.
            gemm_case(128, 384, 1536),
            gemm_case(128, 1152, 384),
            gemm_case(128, 1536, 384),
            gemm_case(128, 384, 384),
            // The same GEMMs at batch 32 x 128.
            gemm_case(4096, 384, 1536),
            gemm_case(4096, 1152, 384),
            gemm_case(4096, 1536, 384),
            gemm_case(4096, 384, 384),
            // MiniLM-L3's attention (head dim 32) at batch 1 and 32; issue 7's prefill target
            // (1 x 12 heads x 512 x 64), fused and unfused.
            attention_case(1, 12, 128, 32, 1),
            attention_case(1, 12, 128, 32, 3),
            attention_case(32, 12, 128, 32, 1),
            attention_case(32, 12, 128, 32, 3),
            attention_case(1, 12, 128, 64, 3),
            attention_case(32, 12, 128, 64, 3),
            attention_case(1, 12, 512, 64, 2),
            attention_f16_case(1, 12, 512, 64),
            attention_f16_case(1, 12, 128, 32),
            attention_f16_case(32, 12, 128, 32),
            attention_case(1, 12, 512, 64, 1),
            gemv_case(4096, 4096),
            gemv_case(4096, 11008),
            conv_case(1, 64, 112, 64),
            conv_case(8, 128, 56, 128),
            grouped_conv_case(8, 128, 56, 128, 128),
            grouped_conv_case(1, 64, 112, 64, 64),
            add_case(1 << 24),
            copy_case(1 << 24),
            row_case(
                "softmax f32 4096x4096",
                Op::Softmax { axis: 1, log: false },
                &[4096, 4096],
                8.0 * 4096.0 * 4096.0,
            ),
            layernorm_case(4096, 4096),
            demo_case(1),
            demo_case(64),
            // SmolLM2-1.7B's decode GEMVs (FFN up, FFN down: Q4_1; the Q8_0 output head over
            // 49152 tokens) and the FFN up of a 512-token prefill; 4096² in every block type.
            qmatmul_case(BlockType::Q4_1, 1, 2048, 8192),
            qmatmul_case(BlockType::Q4_1, 1, 8192, 2048),
            qmatmul_case(BlockType::Q4_1, 1, 2048, 2048),
            qmatmul_case(BlockType::Q4_1, 1, 576, 1536),
            qmatmul_case(BlockType::Q8_0, 1, 2048, 49152),
            qmatmul_case(BlockType::Q4_0, 1, 4096, 4096),
            qmatmul_case(BlockType::Q4_1, 1, 4096, 4096),
            qmatmul_case(BlockType::Q8_0, 1, 4096, 4096),
            qmatmul_case(BlockType::F16, 1, 4096, 4096),
            qmatmul_case(BlockType::Q4_1, 512, 2048, 8192),
            qmatmul_case(BlockType::Q4_1, 512, 8192, 2048),
            // The same prefill products with --precision f16 (the cooperative-matrix variant).
            qmatmul_f16_case(BlockType::Q4_1, 512, 2048, 8192),
            qmatmul_f16_case(BlockType::Q4_1, 512, 8192, 2048),
            qmatmul_f16_case(BlockType::Q8_0, 512, 2048, 8192),
            // SmolLM2-135M's FFN up and down at a 512-token prefill, f32 and f16.
            qmatmul_case(BlockType::Q4_1, 512, 576, 1536),
            qmatmul_case(BlockType::Q4_1, 512, 1536, 576),
            qmatmul_f16_case(BlockType::Q4_1, 512, 576, 1536),
            qmatmul_f16_case(BlockType::Q4_1, 512, 1536, 576),
        ]
    };
    let filter = std::env::var("KILN_BENCH_FILTER").unwrap_or_default();
    let sweep = std::env::var_os("KILN_BENCH_SWEEP").is_some();
    let iters = if quick { 5 } else { 20 };
    let mut json = std::env::var("KILN_BENCH_JSON")
        .ok()
        .map(|p| std::fs::File::create(p).expect("KILN_BENCH_JSON file"));
    println!(
        "{:<40} {:<44} {:>10} {:>10} {:>14}  kernels/dispatches",
        "case", "schedule", "median ms", "min ms", "throughput"
    );
    // The limits (and multiprocessor count) the analytic defaults plan for: `desktop`, or the
    // built-in profile named by KILN_BENCH_TARGET (e.g. `h200`).
    let target = match std::env::var("KILN_BENCH_TARGET") {
        Ok(t) => DeviceLimits::from_name_or_file(&t).expect("KILN_BENCH_TARGET names a limits profile"),
        Err(_) => DeviceLimits::desktop(),
    };
    println!("target profile: {}", target.name);
    // A filter of several texts separated by `|` keeps what contains any of them.
    let any_of = |filter: &str, name: &str| filter.split('|').any(|f| name.contains(f));
    for case in cases.iter().filter(|c| any_of(&filter, &c.name)) {
        let mut schedules: Vec<Option<Schedule>> = vec![None];
        if sweep && case.matmul_key.is_some() {
            let rows = if case.name.starts_with("gemv") || case.name.starts_with("qgemv") {
                1
            } else {
                0
            };
            let space = if case.name.starts_with("attention") && case.precision == Precision::F16 {
                space::coop_attention(&target)
            } else if case.name.starts_with("attention") {
                space::attention(&target)
            } else if case.precision == Precision::F16 && case.name.starts_with("qgemm") {
                space::quant_coop_gemm(&target)
            } else if case.precision == Precision::F16 {
                space::coop_gemm(&target)
            } else if case.name.starts_with("qgemm") {
                space::quant_gemm(&target)
            } else if case.name.starts_with("qgemv") {
                space::quant_gemv(&target, rows)
            } else if rows > 0 {
                space::gemv(&target, rows)
            } else if case.name.contains("conv") {
                // Convolutions take no split-K.
                space::gemm(&target)
            } else {
                let mut s = space::gemm(&target);
                s.extend(space::gemm_split_k(&target));
                s
            };
            // KILN_BENCH_SWEEP_FILTER keeps the candidates whose name contains it (e.g. `v4`),
            // or any of several alternatives separated by `|`.
            let keep = std::env::var("KILN_BENCH_SWEEP_FILTER").unwrap_or_default();
            schedules.extend(space.into_iter().filter(|s| any_of(&keep, &s.to_string())).map(Some));
        }
        for schedule in schedules {
            let tuning = schedule.map(|s| {
                let mut db = TuningDb::default();
                let mut key = case.matmul_key.clone().expect("matmul case");
                if case.precision == Precision::F16 {
                    // The cooperative-matrix variant's record (compiler::coop_variant).
                    key = format!("coop {key}");
                }
                if let Schedule::CoopAttention(p) = s {
                    // The variant keeps the base kernel's key slices: the base's record
                    // (its default with the candidate's slices).
                    let base = case.matmul_key.clone().expect("attention case");
                    let sq = case.inputs["q"].shape[2] as u64;
                    let heads = (case.inputs["q"].shape[0] * case.inputs["q"].shape[1]) as u64;
                    if let Schedule::Attention(a) = kiln::schedules::defaults::attention(heads, sq, &target) {
                        let a = AttentionParams { slices: p.slices, ..a };
                        db.records.insert(
                            base,
                            TuningRecord {
                                schedule: Schedule::Attention(a),
                                micros: 0.0,
                                device: "sweep".into(),
                            },
                        );
                    }
                }
                db.records.insert(
                    key,
                    TuningRecord {
                        schedule: s,
                        micros: 0.0,
                        device: "sweep".into(),
                    },
                );
                db
            });
            match bench_case(case, &runtime, &target, tuning, iters) {
                Ok(r) => {
                    let rate = if case.work > 0.0 {
                        format!("{:.1} {}", case.work / r.median / 1e9, case.unit)
                    } else {
                        "-".into()
                    };
                    println!(
                        "{:<40} {:<44} {:>10.4} {:>10.4} {:>14}  {}",
                        case.name,
                        r.schedule,
                        r.median * 1e3,
                        r.min * 1e3,
                        rate,
                        r.shape
                    );
                    if let Some(f) = json.as_mut() {
                        writeln!(
                            f,
                            "{{\"case\":\"{}\",\"schedule\":\"{}\",\"default\":{},\"median_ms\":{},\"min_ms\":{},\"repeats\":{},\"work\":{},\"unit\":\"{}\",\"device\":\"{}\"}}",
                            case.name,
                            r.schedule,
                            schedule.is_none(),
                            r.median * 1e3,
                            r.min * 1e3,
                            r.repeats,
                            case.work,
                            case.unit,
                            info.name
                        )
                        .unwrap();
                    }
                }
                Err(e) => println!(
                    "{:<40} {:<44} failed: {e}",
                    case.name,
                    schedule.map(|s| s.to_string()).unwrap_or_default()
                ),
            }
        }
    }
}

/// What one benchmarked compile of a case measured.
struct BenchResult {
    schedule: String,
    median: f64,
    min: f64,
    repeats: usize,
    shape: String,
}

/// Compiles a case (with an optional forced schedule), then times it: a short probe picks the
/// number of repeats per iteration so that each iteration runs at least ~5 ms.
fn bench_case(
    case: &Case,
    runtime: &kiln::runtime::Runtime,
    target: &DeviceLimits,
    tuning: Option<TuningDb>,
    iters: usize,
) -> Result<BenchResult, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let opts = CompileOptions {
        target: target.clone(),
        tuning,
        opt_level: case.opt_level,
        precision: case.precision,
        ..Default::default()
    };
    compile_to_dir(&case.model, &opts, &dir.path().join("b")).map_err(|e| e.to_string())?;
    let bundle = Bundle::load(dir.path().join("b")).map_err(|e| e.to_string())?;
    let mut s = Session::with_runtime(runtime.clone(), &bundle).map_err(|e| e.to_string())?;
    // Each input of the bundle in the dtype it expects (f32, or f16 for an f16 product's); a
    // case's other tensors (a weight's values, for the check) stay on the host.
    let host: HashMap<_, _> = bundle
        .manifest()
        .inputs
        .iter()
        .filter_map(|io| Some((io.name.clone(), to_host(case.inputs.get(&io.name)?, io.dtype))))
        .collect();
    let mut repeats = 1;
    if !case.latency {
        let probe = s.bench("run", &host, 3).map_err(|e| e.to_string())?;
        let t = probe.median().as_secs_f64();
        repeats = ((5e-3 / t.max(1e-6)).ceil() as usize).clamp(1, 500);
    }
    let t = s
        .bench_repeated("run", &host, iters, repeats)
        .map_err(|e| e.to_string())?;
    let mut check = String::new();
    if case.name.starts_with("attention") {
        check = check_attention(case, &mut s, &host)?;
    } else if case.precision == Precision::F16 {
        check = match &case.w_values {
            Some(w) => check_qgemm(case, w, &mut s, &host)?,
            None => check_gemm(case, &mut s, &host)?,
        };
    }
    // The kernels as they ran (with the variants the adapter supports).
    let m = s.manifest().clone();
    let mut schedules: Vec<&str> = m.kernels.iter().map(|k| k.schedule.as_str()).collect();
    // A split-K GEMM's combine kernel carries the GEMM's schedule (a split attention's combine
    // that of the kernel without its subgroup variant's `sg`).
    schedules.dedup_by(|next, prev| next.replace(", sg)", ")") == prev.replace(", sg)", ")"));
    Ok(BenchResult {
        schedule: if schedules.len() == 1 {
            schedules[0].to_string()
        } else {
            format!("{} kernels", schedules.len())
        },
        median: t.median().as_secs_f64(),
        min: t.min().as_secs_f64(),
        repeats,
        shape: format!("{}/{}{check}", m.kernels.len(), m.programs[0].dispatches.len()),
    })
}

/// Runs an attention case once and compares 64 sampled query rows (all channels) with an f64
/// reference of `softmax(q kᵀ / sqrt(d)) v`. The kernels compute in f32 over at most a few
/// thousand keys with probabilities in [0, 1] and |v| <= 1, so an output off by more than
/// 1e-4 (about 1000 f32 roundings of values up to 1) is an error: a wrong key slice, mask or
/// rescale is off by O(0.01) or more. An f16 case is compared with the reference of its
/// operands rounded to f16, within 2e-3: the cooperative-matrix variant also rounds the
/// unnormalized probabilities to f16 (relative 2^-11 per weight of a convex combination).
fn check_attention(
    case: &Case,
    s: &mut Session,
    host: &HashMap<String, kiln::runtime::HostTensor>,
) -> Result<String, String> {
    let out = s.run("run", host).map_err(|e| e.to_string())?;
    let o = out[0].1.to_f32();
    let (q, k, v) = (&case.inputs["q"], &case.inputs["k"], &case.inputs["v"]);
    let (seq, d) = (q.shape[2], q.shape[3]);
    let heads = q.shape[0] * q.shape[1];
    let f16 = case.precision == Precision::F16;
    let round = |t: &Tensor| -> Vec<f64> {
        let x = t.to_f64();
        if !f16 {
            return x;
        }
        x.iter().map(|v| half::f16::from_f64(*v).to_f64()).collect()
    };
    let (q, k, v) = (round(q), round(k), round(v));
    let scale = 1.0 / (d as f64).sqrt();
    let mut err = 0f64;
    for t in 0..64u64 {
        let row = (t * 7919 % (heads * seq) as u64) as usize;
        let h = row / seq;
        let kb = h * seq * d;
        let scores: Vec<f64> = (0..seq)
            .map(|j| (0..d).map(|c| q[row * d + c] * k[kb + j * d + c]).sum::<f64>() * scale)
            .collect();
        let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let p: Vec<f64> = scores.iter().map(|x| (x - mx).exp()).collect();
        let sum: f64 = p.iter().sum();
        for c in 0..d {
            let r: f64 = (0..seq).map(|j| p[j] * v[kb + j * d + c]).sum::<f64>() / sum;
            err = err.max((o[row * d + c] as f64 - r).abs());
        }
    }
    let (text, tol) = if f16 {
        (format!(" max|err| {err:.2e} vs f64 of f16 operands"), 2e-3)
    } else {
        (format!(" max|err| {err:.2e} vs f64"), 1e-4)
    };
    if err.is_nan() || err > tol {
        return Err(format!("wrong result:{text}"));
    }
    Ok(text)
}

/// Runs a GEMM case once and compares 512 sampled elements of C with f64 references
/// ([`check_product`]).
fn check_gemm(
    case: &Case,
    s: &mut Session,
    host: &HashMap<String, kiln::runtime::HostTensor>,
) -> Result<String, String> {
    let out = s.run("run", host).map_err(|e| e.to_string())?;
    let c = out[0].1.to_f32();
    let f16_out = out[0].1.dtype == kiln::abi::ElemType::F16;
    let (a, b) = (&case.inputs["a"], &case.inputs["b"]);
    let (m, k, n) = (a.shape[0], a.shape[1], b.shape[1]);
    let (a, b) = (a.to_f64(), b.to_f64());
    check_product(s, &c, [m, n, k], f16_out, |i, p| a[i * k + p], |p, j| b[p * n + j])
}

/// [`check_gemm`] for a quantized matmul `y = x · Wᵀ`, W given as the values its blocks decode
/// to (`[n, k]`).
fn check_qgemm(
    case: &Case,
    w: &[f32],
    s: &mut Session,
    host: &HashMap<String, kiln::runtime::HostTensor>,
) -> Result<String, String> {
    let out = s.run("run", host).map_err(|e| e.to_string())?;
    let c = out[0].1.to_f32();
    let x = &case.inputs["x"];
    let (m, k) = (x.shape[0], x.shape[1]);
    let n = w.len() / k;
    let x = x.to_f64();
    check_product(s, &c, [m, n, k], false, |i, p| x[i * k + p], |p, j| w[j * k + p] as f64)
}

/// Compares 512 sampled elements of `c` (`m x n`) with f64 references of `sum_p a(i, p) b(p, j)`:
/// one from the operands as given (the error f16 operands cause) and one from the operands
/// rounded to f16. A kernel with f16 operands and f32 accumulation must match the latter
/// within Higham's bound for a K-term f32 dot product, `K * 2^-24 * sum |a_i b_i|` per element;
/// a wrong layout or fragment is off by O(1); an f16 result (`f16_out`) may also be off by its
/// rounding, 2^-11 of its magnitude. Returns the figures for the table; when a
/// cooperative-matrix kernel ran, an element beyond the bound is an error.
fn check_product(
    s: &Session,
    c: &[f32],
    [m, n, k]: [usize; 3],
    f16_out: bool,
    a: impl Fn(usize, usize) -> f64,
    b: impl Fn(usize, usize) -> f64,
) -> Result<String, String> {
    let h = |v: f64| half::f16::from_f64(v).to_f64();
    let (mut err32, mut err16, mut worst) = (0f64, 0f64, 0f64);
    for t in 0..512u64 {
        let (i, j) = ((t * 7919 % m as u64) as usize, (t * 104_729 % n as u64) as usize);
        let (mut r32, mut r16, mut abs) = (0f64, 0f64, 0f64);
        for p in 0..k {
            let (x, y) = (a(i, p), b(p, j));
            r32 += x * y;
            r16 += h(x) * h(y);
            abs += (h(x) * h(y)).abs();
        }
        let got = c[i * n + j] as f64;
        let mut bound = k as f64 * f64::powi(2.0, -24) * abs;
        if f16_out {
            bound += r16.abs() * f64::powi(2.0, -11);
        }
        err32 = err32.max((got - r32).abs());
        err16 = err16.max((got - r16).abs());
        worst = worst.max((got - r16).abs() / bound);
    }
    let ran_coop = s.manifest().kernels.iter().any(|k| k.schedule.starts_with("coop_gemm"));
    let text = format!(" max|err| {err32:.2e} vs f32 inputs, {err16:.2e} vs f16 inputs");
    if ran_coop && worst > 1.0 {
        return Err(format!("wrong result:{text} (beyond the f32 accumulation bound)"));
    }
    Ok(text)
}
