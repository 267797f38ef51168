//! Kiln benchmarks: GEMM and convolution throughput, elementwise bandwidth and the latency of
//! the demo block (a dispatch-bound program), each compiled by Kiln and timed on the GPU with
//! `Session::bench` (record + submit + wait per iteration; no upload or readback inside).
//!
//! `cargo bench --bench kiln_bench` runs the full set; on a CPU adapter (lavapipe) the sizes
//! shrink automatically. `KILN_BENCH_QUICK=1` forces the small set, `KILN_BENCH_JSON=path`
//! also writes the results as JSON lines.

use kiln::compiler::{compile_to_dir, CompileOptions, Model};
use kiln::convert::to_host;
use kiln::ir::{BinaryOp, DType, Graph, Op, Tensor, TensorType};
use kiln::runtime::{Bundle, Session, SessionOptions};
use kiln::schedules::DeviceLimits;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

struct Case {
    name: String,
    model: Model,
    inputs: HashMap<String, Tensor>,
    /// Useful work per run: flops for compute-bound cases, bytes moved for bandwidth cases.
    work: f64,
    unit: &'static str,
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
    }
}

fn conv_case(n: usize, c: usize, hw: usize, oc: usize) -> Case {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[n, c, hw, hw]));
    let w = g.add_const("w", random(&[oc, c, 3, 3], 3));
    let b = g.add_const("b", random(&[oc], 4));
    let y = g
        .add(
            "conv",
            Op::Conv {
                strides: vec![1, 1],
                pads: vec![(1, 1); 2],
                dilations: vec![1, 1],
                groups: 1,
            },
            &[x, w, b],
        )
        .unwrap();
    g.add_output("y", y);
    Case {
        name: format!("conv3x3 f32 {n}x{c}x{hw}x{hw} -> {oc}"),
        model: Model {
            name: "conv".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        },
        inputs: HashMap::from([("x".into(), random(&[n, c, hw, hw], 5))]),
        work: 2.0 * (n * oc * hw * hw * c * 9) as f64,
        unit: "GFLOP/s",
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
    }
}

fn demo_case(batch: usize) -> Case {
    Case {
        name: format!("demo block batch {batch} (latency)"),
        model: kiln::demo::demo_model().unwrap(),
        inputs: HashMap::from([("x".into(), kiln::demo::demo_input(batch))]),
        work: 0.0,
        unit: "",
    }
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let adapter = kiln::runtime::Runtime::new().expect("a GPU adapter (see README)");
    let info = adapter.adapter_info().clone();
    drop(adapter);
    let cpu = info.device_type == kiln::runtime::wgpu::DeviceType::Cpu;
    let quick = cpu || std::env::var_os("KILN_BENCH_QUICK").is_some();
    println!(
        "device: {} ({:?}, {:?}, driver {})",
        info.name, info.backend, info.device_type, info.driver_info
    );
    let cases: Vec<Case> = if quick {
        vec![
            gemm_case(256, 256, 256),
            conv_case(1, 16, 32, 16),
            add_case(1 << 20),
            demo_case(1),
        ]
    } else {
        vec![
            gemm_case(1024, 1024, 1024),
            gemm_case(2048, 2048, 2048),
            gemm_case(4096, 4096, 4096),
            gemm_case(1, 4096, 4096),
            conv_case(1, 64, 112, 64),
            conv_case(8, 128, 56, 128),
            add_case(1 << 24),
            demo_case(1),
            demo_case(64),
        ]
    };
    let iters = if quick { 5 } else { 20 };
    let mut json = std::env::var("KILN_BENCH_JSON")
        .ok()
        .map(|p| std::fs::File::create(p).expect("KILN_BENCH_JSON file"));
    println!(
        "{:<40} {:>10} {:>10} {:>12}  kernels/dispatches",
        "case", "median ms", "min ms", "throughput"
    );
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        let opts = CompileOptions {
            target: DeviceLimits::desktop(),
            ..Default::default()
        };
        let m =
            compile_to_dir(&case.model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let bundle = Bundle::load(dir.path().join("b")).unwrap();
        let mut s = Session::new(&bundle, &SessionOptions::default()).unwrap();
        let host: HashMap<_, _> = case
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), to_host(v, kiln::abi::ElemType::F32)))
            .collect();
        let t = s
            .bench("run", &host, iters)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let med = t.median().as_secs_f64();
        let min = t.min().as_secs_f64();
        let rate = if case.work > 0.0 {
            format!("{:.1} {}", case.work / med / 1e9, case.unit)
        } else {
            "-".into()
        };
        let kd = format!("{}/{}", m.kernels.len(), m.programs[0].dispatches.len());
        println!(
            "{:<40} {:>10.3} {:>10.3} {:>12}  {kd}",
            case.name,
            med * 1e3,
            min * 1e3,
            rate
        );
        if let Some(f) = json.as_mut() {
            writeln!(
                f,
                "{{\"case\":\"{}\",\"median_ms\":{},\"min_ms\":{},\"work\":{},\"unit\":\"{}\",\"device\":\"{}\"}}",
                case.name,
                med * 1e3,
                min * 1e3,
                case.work,
                case.unit,
                info.name
            )
            .unwrap();
        }
    }
}
