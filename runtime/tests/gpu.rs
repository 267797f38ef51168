//! End-to-end runs on a real adapter (lavapipe in CI). Without an adapter these fail loudly
//! unless `KILN_SKIP_GPU_TESTS=1`.

mod common;

use common::*;
use kiln_abi::*;
use kiln_runtime::{Bundle, HostTensor, RuntimeError, Session, SessionOptions};
use std::collections::HashMap;

fn session(dir: &std::path::Path) -> Session {
    let bundle = Bundle::load(dir).unwrap();
    Session::new(&bundle, &SessionOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn inputs(v: Vec<(&str, HostTensor)>) -> HashMap<String, HostTensor> {
    v.into_iter().map(|(k, t)| (k.to_string(), t)).collect()
}

/// x: f32[n, 4] -> k0: y = x * w[col] + 1 -> k1: s[r] = sum_j y[r, j] * y[r, j].
/// Outputs y and s; weight w = [1, 2, 3, 4].
fn two_kernel_bundle(dir: &std::path::Path) {
    let mut m = empty_manifest(&["n"]);
    let x = buffer(&mut m, BufferKind::Input, "n*16", "x");
    let w = buffer(&mut m, BufferKind::Weight, "16", "w");
    let y = buffer(&mut m, BufferKind::Intermediate, "n*16", "y");
    let s = buffer(&mut m, BufferKind::Intermediate, "n*4", "s");
    m.inputs.push(io("x", ElemType::F32, ElemType::F32, &["n", "4"], x));
    m.outputs.push(io("y", ElemType::F32, ElemType::F32, &["n", "4"], y));
    m.outputs.push(io("s", ElemType::F32, ElemType::F32, &["n"], s));
    m.weights.push(WeightSpec {
        name: "w".into(),
        file: "weights.safetensors".into(),
        dtype: ElemType::F32,
        shape: vec![4],
        buffer: w,
    });
    let k0 = kernel(&mut m, "k0_scale", &[false, false, true], &["total", "cols"], 64, true);
    let k1 = kernel(&mut m, "k1_sumsq", &[false, true], &["rows", "cols"], 32, true);
    m.programs.push(Program::new(
        "run",
        vec![
            dispatch(k0, &[x, w, y], &["n*4", "4"], "cdiv(n*4, 64)", "scale"),
            dispatch(k1, &[y, s], &["n", "4"], "cdiv(n, 32)", "sumsq"),
        ],
    ));
    let src0 = wgsl(
        &["total", "cols"],
        &[("x", "f32", false), ("w", "f32", false), ("y", "f32", true)],
        64,
        "  if (i >= params.total) { return; }\n  y[i] = x[i] * w[i % params.cols] + 1.0;",
    );
    let src1 = wgsl(
        &["rows", "cols"],
        &[("y", "f32", false), ("s", "f32", true)],
        32,
        "  if (i >= params.rows) { return; }\n  var acc = 0.0;\n  \
         for (var j = 0; j < params.cols; j++) { let v = y[i * params.cols + j]; acc += v * v; }\n  \
         s[i] = acc;",
    );
    let weights = [TestWeight {
        name: "w".into(),
        file: "weights.safetensors".into(),
        dtype: ElemType::F32,
        shape: vec![4],
        data: f32_bytes(&[1.0, 2.0, 3.0, 4.0]),
    }];
    write_bundle(dir, &mut m, &[src0, src1], &weights);
}

fn check_two_kernel(session: &mut Session, n: usize) {
    let xs: Vec<f32> = (0..n * 4).map(|i| ((i % 13) as f32) - 6.0).collect();
    let out = session
        .run("run", &inputs(vec![("x", HostTensor::from_f32(&[n, 4], &xs))]))
        .unwrap();
    assert_eq!(out[0].0, "y");
    assert_eq!(out[1].0, "s");
    assert_eq!(out[0].1.shape, vec![n, 4]);
    assert_eq!(out[1].1.shape, vec![n]);
    let w = [1.0f32, 2.0, 3.0, 4.0];
    let y: Vec<f32> = xs.iter().enumerate().map(|(i, v)| v * w[i % 4] + 1.0).collect();
    let s: Vec<f32> = y.chunks(4).map(|r| r.iter().map(|v| v * v).sum()).collect();
    assert_eq!(out[0].1.to_f32(), y, "y at n={n}");
    assert_eq!(out[1].1.to_f32(), s, "s at n={n}");
}

#[test]
fn two_kernel_program_runs_at_several_sizes() {
    if skip_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    two_kernel_bundle(dir.path());
    let mut s = session(dir.path());
    eprintln!("adapter: {:?}", s.adapter_info());
    // Grow, grow again (buffers reallocated), then shrink (cached buffers reused).
    for n in [3, 1000, 5, 1000] {
        check_two_kernel(&mut s, n);
    }
    // n = 0: every grid is empty, outputs are empty.
    let out = s
        .run("run", &inputs(vec![("x", HostTensor::from_f32(&[0, 4], &[]))]))
        .unwrap();
    assert_eq!(out[1].1.shape, vec![0]);
    assert!(out[1].1.data.is_empty());
}

#[test]
fn bench_times_iterations() {
    if skip_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    two_kernel_bundle(dir.path());
    let mut s = session(dir.path());
    let x = HostTensor::from_f32(&[8, 4], &[1.0; 32]);
    let t = s.bench("run", &inputs(vec![("x", x)]), 5).unwrap();
    assert_eq!(t.times.len(), 5);
    assert!(t.min() <= t.median() && t.min() > std::time::Duration::ZERO);
}

/// A profiled run returns the outputs' effects unchanged and one entry per dispatch that ran,
/// with GPU times that fit inside the wall time; on an adapter without timestamp queries it is
/// the typed error naming the adapter.
#[test]
fn profile_times_every_dispatch() {
    if skip_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    two_kernel_bundle(dir.path());
    let mut s = session(dir.path());
    let x = inputs(vec![("x", HostTensor::from_f32(&[1000, 4], &[1.0; 4000]))]);
    if !s.can_profile() {
        let e = s.profile("run", &x, &[], None).unwrap_err();
        assert!(matches!(e, RuntimeError::TimestampsUnsupported { .. }), "{e}");
        eprintln!("adapter has no timestamp queries: {e}");
        return;
    }
    let p = s.profile("run", &x, &[], None).unwrap();
    assert_eq!(p.program, "run");
    assert_eq!(p.inside_pass, s.times_inside_passes());
    eprintln!("timed inside one pass: {}", p.inside_pass);
    let idx: Vec<usize> = p.dispatches.iter().map(|d| d.index).collect();
    assert_eq!(idx, vec![0, 1], "one entry per dispatch, in order");
    assert_eq!(p.dispatches[0].kernel, "k0_scale");
    assert_eq!(p.dispatches[0].kind(), "scale");
    assert_eq!(p.dispatches[1].workgroups[0], 1000u32.div_ceil(32));
    assert!(p.gpu_total() <= p.wall, "GPU {:?} > wall {:?}", p.gpu_total(), p.wall);
    assert!(p.host.total() <= p.wall + std::time::Duration::from_micros(1));
    assert!(p.host.wait > std::time::Duration::ZERO);
    let kinds = p.by_kind();
    assert_eq!(kinds.iter().map(|g| g.count).sum::<usize>(), 2);
    let share: f64 = kinds.iter().map(|g| g.share).sum();
    assert!(
        p.gpu_total().is_zero() || (share - 1.0).abs() < 1e-9,
        "shares sum to {share}"
    );
    // The run had its ordinary effect: a plain run afterwards still computes the right values.
    check_two_kernel(&mut s, 7);
}

/// The device probe measures a positive read rate and per-dispatch cost, and its floor is the
/// larger of reading the bytes and running the dispatches.
#[test]
fn the_device_probe_measures_reads_and_dispatches() {
    if skip_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    two_kernel_bundle(dir.path());
    let mut s = session(dir.path());
    if !s.can_profile() {
        assert!(matches!(
            s.probe_device(),
            Err(RuntimeError::TimestampsUnsupported { .. })
        ));
        return;
    }
    let p = s.probe_device().unwrap();
    assert!(p.read_bytes_per_s.is_finite() && p.read_bytes_per_s > 1e6, "{p:?}");
    assert!(p.dispatch > std::time::Duration::ZERO, "{p:?}");
    let one_ms_of_reads = (p.read_bytes_per_s * 1e-3) as u64;
    let f = p.floor(one_ms_of_reads, 1);
    assert!((f.as_secs_f64() - 1e-3).abs() < 1e-5 || f == p.dispatch, "{f:?} {p:?}");
    assert_eq!(p.floor(0, 10), p.dispatch * 10);
    // The session still runs its program afterwards.
    check_two_kernel(&mut s, 4);
}

/// Evicting the caches (a scratch buffer read in binding-sized chunks by the runtime's own
/// kernel) leaves the session's buffers alone: runs before and after compute the same values,
/// and a larger scrub replaces the smaller one.
#[test]
fn evicting_caches_leaves_runs_unchanged() {
    if skip_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    two_kernel_bundle(dir.path());
    let mut s = session(dir.path());
    check_two_kernel(&mut s, 3);
    s.evict_caches(1 << 20);
    check_two_kernel(&mut s, 5);
    s.evict_caches(3 << 20);
    s.evict_caches(0);
    check_two_kernel(&mut s, 9);
}

#[test]
fn input_errors_name_the_input() {
    if skip_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    two_kernel_bundle(dir.path());
    let mut s = session(dir.path());

    let err = s.run("run", &HashMap::new()).unwrap_err();
    assert!(matches!(err, RuntimeError::MissingInput { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("input 'x' is missing") && msg.contains("x: f32[n, 4]"),
        "{msg}"
    );

    let bad = HostTensor::from_f32(&[2, 3], &[0.0; 6]);
    let msg = s.run("run", &inputs(vec![("x", bad)])).unwrap_err().to_string();
    assert!(
        msg.contains("input 'x' has shape [2, 3]") && msg.contains("[n, 4]"),
        "{msg}"
    );

    let bad = HostTensor::from_f32(&[8], &[0.0; 8]);
    let msg = s.run("run", &inputs(vec![("x", bad)])).unwrap_err().to_string();
    assert!(msg.contains("rank is 1, expected 2"), "{msg}");

    let bad = HostTensor::from_i32(&[2, 4], &[0; 8]);
    let msg = s.run("run", &inputs(vec![("x", bad)])).unwrap_err().to_string();
    assert!(
        msg.contains("input 'x' has dtype i32") && msg.contains("expects f32"),
        "{msg}"
    );

    let ok = HostTensor::from_f32(&[1, 4], &[0.0; 4]);
    let msg = s
        .run("run", &inputs(vec![("x", ok.clone()), ("z", ok.clone())]))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("'z' is not an input"), "{msg}");

    let msg = s
        .run("decode", &inputs(vec![("x", ok.clone())]))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no program 'decode'") && msg.contains("run"), "{msg}");

    // The session still works after errors.
    check_two_kernel(&mut s, 7);
}

#[test]
fn grid_larger_than_the_dimension_limit_is_split() {
    if skip_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut m = empty_manifest(&["n"]);
    let x = buffer(&mut m, BufferKind::Input, "n*4", "x");
    let y = buffer(&mut m, BufferKind::Intermediate, "n*4", "y");
    m.inputs.push(io("x", ElemType::F32, ElemType::F32, &["n"], x));
    m.outputs.push(io("y", ElemType::F32, ElemType::F32, &["n"], y));
    let body = "  if (i >= params.n) { return; }\n  y[i] = x[i] * 2.0 + 1.0;";
    let k = kernel(&mut m, "k0_split", &[false, true], &["n"], 64, true);
    let k_fixed = kernel(&mut m, "k1_nosplit", &[false, true], &["n"], 64, false);
    m.programs.push(Program::new(
        "run",
        vec![dispatch(k, &[x, y], &["n"], "cdiv(n, 64)", "affine")],
    ));
    m.programs.push(Program::new(
        "nosplit",
        vec![dispatch(k_fixed, &[x, y], &["n"], "cdiv(n, 64)", "affine")],
    ));
    let src = wgsl(&["n"], &[("x", "f32", false), ("y", "f32", true)], 64, body);
    write_bundle(dir.path(), &mut m, &[src.clone(), src], &[]);
    let mut s = session(dir.path());
    assert_eq!(s.limits().max_compute_workgroups_per_dimension, 65535);

    let n = 70_000 * 64; // 4.48M elements, 70000 workgroups
    let xs: Vec<f32> = (0..n).map(|i| (i % 1_000_003) as f32).collect();
    let ins = inputs(vec![("x", HostTensor::from_f32(&[n], &xs))]);
    let out = s.run("run", &ins).unwrap();
    let y = out[0].1.to_f32();
    assert_eq!(y.len(), n);
    for (i, (&got, &xv)) in y.iter().zip(&xs).enumerate() {
        assert_eq!(got, xv * 2.0 + 1.0, "element {i}");
    }

    let msg = s.run("nosplit", &ins).unwrap_err().to_string();
    assert!(
        msg.contains("maxComputeWorkgroupsPerDimension") && msg.contains("not grid_splittable"),
        "{msg}"
    );
}

#[test]
fn unmet_limit_names_the_limit() {
    if skip_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    two_kernel_bundle(dir.path());
    let path = dir.path().join(MANIFEST_FILE);
    let mut m = Manifest::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m.requirements
        .limits
        .insert("maxComputeWorkgroupStorageSize".into(), 1 << 30);
    std::fs::write(&path, m.to_json()).unwrap();
    let bundle = Bundle::load(dir.path()).unwrap();
    let err = Session::new(&bundle, &SessionOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RuntimeError::LimitTooLow { .. }), "{msg}");
    assert!(
        msg.contains("maxComputeWorkgroupStorageSize") && msg.contains("1073741824") && msg.contains("offers only"),
        "{msg}"
    );

    m.requirements.limits.clear();
    m.requirements.features.push("no-such-feature".into());
    std::fs::write(&path, m.to_json()).unwrap();
    let bundle = Bundle::load(dir.path()).unwrap();
    let msg = Session::new(&bundle, &SessionOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("feature 'no-such-feature'"), "{msg}");
}

#[test]
fn i64_inputs_and_bool_outputs_convert() {
    if skip_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut m = empty_manifest(&["n"]);
    let ids = buffer(&mut m, BufferKind::Input, "n*4", "ids");
    let h = buffer(&mut m, BufferKind::Input, "n*4", "h");
    let mask = buffer(&mut m, BufferKind::Intermediate, "n*4", "mask");
    let twice = buffer(&mut m, BufferKind::Intermediate, "n*4", "twice");
    let half_out = buffer(&mut m, BufferKind::Intermediate, "n*4", "half");
    m.inputs.push(io("ids", ElemType::I64, ElemType::I32, &["n"], ids));
    m.inputs.push(io("h", ElemType::F16, ElemType::F32, &["n"], h));
    m.outputs.push(io("mask", ElemType::Bool, ElemType::U32, &["n"], mask));
    m.outputs.push(io("twice", ElemType::I64, ElemType::I32, &["n"], twice));
    m.outputs
        .push(io("half", ElemType::F16, ElemType::F32, &["n"], half_out));
    let k = kernel(&mut m, "k0_conv", &[false, false, true, true, true], &["n"], 64, true);
    m.programs.push(Program::new(
        "run",
        vec![dispatch(
            k,
            &[ids, h, mask, twice, half_out],
            &["n"],
            "cdiv(n, 64)",
            "conv",
        )],
    ));
    let src = wgsl(
        &["n"],
        &[
            ("ids", "i32", false),
            ("h", "f32", false),
            ("mask", "u32", true),
            ("twice", "i32", true),
            ("halved", "f32", true),
        ],
        64,
        "  if (i >= params.n) { return; }\n  mask[i] = select(0u, 1u, ids[i] > 2);\n  \
         twice[i] = ids[i] * 2;\n  halved[i] = h[i] * 0.5;",
    );
    write_bundle(dir.path(), &mut m, &[src], &[]);
    let mut s = session(dir.path());

    let id_vals = [-5i64, 0, 2, 3, 1_000_000_000, -1_000_000_000, 7];
    let hv: Vec<half::f16> = [1.0f32, -2.0, 0.25, 8.0, 3.0, 0.0, -0.5]
        .iter()
        .map(|v| half::f16::from_f32(*v))
        .collect();
    let n = id_vals.len();
    let out = s
        .run(
            "run",
            &inputs(vec![
                ("ids", HostTensor::from_i64(&[n], &id_vals)),
                ("h", HostTensor::from_f16(&[n], &hv)),
            ]),
        )
        .unwrap();
    assert_eq!(out[0].1.dtype, ElemType::Bool);
    assert_eq!(out[0].1.data, vec![0u8, 0, 0, 1, 1, 0, 1]);
    assert_eq!(out[1].1.dtype, ElemType::I64);
    // 2e9 does not fit in i32 on the GPU: the kernel wraps; the other values are exact.
    let twice = out[1].1.to_i64();
    assert_eq!(&twice[..4], &[-10, 0, 4, 6]);
    assert_eq!(twice[6], 14);
    assert_eq!(out[2].1.dtype, ElemType::F16);
    assert_eq!(out[2].1.to_f32(), vec![0.5, -1.0, 0.125, 4.0, 1.5, 0.0, -0.25]);

    let too_big = HostTensor::from_i64(&[2], &[1, 1 << 40]);
    let msg = s
        .run(
            "run",
            &inputs(vec![("ids", too_big), ("h", HostTensor::from_f16(&[2], &hv[..2]))]),
        )
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("input 'ids'") && msg.contains("1099511627776") && msg.contains("i32"),
        "{msg}"
    );
}

#[test]
fn outputs_may_live_in_input_and_weight_buffers_and_zero_param_kernels_work() {
    if skip_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut m = empty_manifest(&["n"]);
    let x = buffer(&mut m, BufferKind::Input, "n*4", "x");
    let w = buffer(&mut m, BufferKind::Weight, "12", "w");
    let c = buffer(&mut m, BufferKind::Intermediate, "16", "c");
    m.inputs.push(io("x", ElemType::F32, ElemType::F32, &["n"], x));
    m.outputs.push(io("x_echo", ElemType::F32, ElemType::F32, &["n"], x));
    m.outputs.push(io("w_out", ElemType::I32, ElemType::I32, &["3"], w));
    m.outputs.push(io("c", ElemType::U32, ElemType::U32, &["4"], c));
    m.weights.push(WeightSpec {
        name: "w".into(),
        file: "w.safetensors".into(),
        dtype: ElemType::I32,
        shape: vec![3],
        buffer: w,
    });
    let k = kernel(&mut m, "k0_fill", &[true], &[], 4, false);
    m.programs
        .push(Program::new("run", vec![dispatch(k, &[c], &[], "1", "fill")]));
    let src = wgsl(&[], &[("c", "u32", true)], 4, "  c[i] = u32(i) * 10u + 1u;");
    let weights = [TestWeight {
        name: "w".into(),
        file: "w.safetensors".into(),
        dtype: ElemType::I32,
        shape: vec![3],
        data: [7i32, -8, 9].iter().flat_map(|v| v.to_le_bytes()).collect(),
    }];
    write_bundle(dir.path(), &mut m, &[src], &weights);
    let mut s = session(dir.path());
    let out = s
        .run(
            "run",
            &inputs(vec![("x", HostTensor::from_f32(&[3], &[1.5, 2.5, -1.0]))]),
        )
        .unwrap();
    assert_eq!(out[0].1.to_f32(), vec![1.5, 2.5, -1.0]);
    assert_eq!(out[1].1.to_i64(), vec![7, -8, 9]);
    assert_eq!(out[2].1.to_i64(), vec![1, 11, 21, 31]);
}

#[test]
fn bad_wgsl_is_an_error_naming_the_kernel() {
    if skip_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut m = empty_manifest(&["n"]);
    let x = buffer(&mut m, BufferKind::Input, "n*4", "x");
    m.inputs.push(io("x", ElemType::F32, ElemType::F32, &["n"], x));
    // Kernels may only write intermediate buffers (manifest validation), so it writes y.
    let y = buffer(&mut m, BufferKind::Intermediate, "n*4", "y");
    let k = kernel(&mut m, "k7_broken", &[false, true], &["n"], 64, true);
    m.programs.push(Program::new(
        "run",
        vec![dispatch(k, &[x, y], &["n"], "cdiv(n, 64)", "broken")],
    ));
    let src = wgsl(
        &["n"],
        &[("x", "f32", false), ("y", "f32", true)],
        64,
        "  y[i] = undefined_thing;",
    );
    write_bundle(dir.path(), &mut m, &[src], &[]);
    let bundle = Bundle::load(dir.path()).unwrap();
    let err = Session::new(&bundle, &SessionOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RuntimeError::Pipeline { .. }), "{msg}");
    assert!(
        msg.contains("kernel 'k7_broken'") && msg.contains("k7_broken.wgsl"),
        "{msg}"
    );
    eprintln!("{msg}");
}

#[test]
fn the_example_in_the_format_doc_runs() {
    if skip_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = doc_block("wgsl");
    std::fs::write(dir.path().join("k0_add.wgsl"), &src).unwrap();
    let mut m = Manifest::from_json(&doc_block("json")).unwrap();
    m.files.insert("k0_add.wgsl".into(), sha256_hex(src.as_bytes()));
    std::fs::write(dir.path().join(MANIFEST_FILE), m.to_json()).unwrap();
    let mut s = session(dir.path());
    let out = s
        .run("run", &inputs(vec![("x", HostTensor::from_f32(&[300], &[2.0; 300]))]))
        .unwrap();
    assert_eq!(out[0].1.to_f32(), vec![3.0; 300]);
}

#[test]
fn intermediate_state_survives_growth_and_failed_runs() {
    if skip_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut m = empty_manifest(&["n"]);
    let x = buffer(&mut m, BufferKind::Input, "n*4", "x");
    let acc = buffer(&mut m, BufferKind::Intermediate, "n*4", "acc");
    m.inputs.push(io("x", ElemType::I64, ElemType::I32, &["n"], x));
    m.outputs.push(io("acc", ElemType::I64, ElemType::I32, &["n"], acc));
    let k = kernel(&mut m, "k0_acc", &[false, true], &["n"], 64, true);
    m.programs.push(Program::new(
        "run",
        vec![dispatch(k, &[x, acc], &["n"], "cdiv(n, 64)", "acc")],
    ));
    let src = wgsl(
        &["n"],
        &[("x", "i32", false), ("acc", "i32", true)],
        64,
        "  if (i >= params.n) { return; }\n  acc[i] = acc[i] + x[i];",
    );
    write_bundle(dir.path(), &mut m, &[src], &[]);
    let mut s = session(dir.path());
    let mut step = |vals: &[i64]| {
        s.run("run", &inputs(vec![("x", HostTensor::from_i64(&[vals.len()], vals))]))
            .map(|out| out[0].1.to_i64())
    };
    assert_eq!(step(&[1; 4]).unwrap(), vec![1; 4]);
    assert_eq!(step(&[1; 4]).unwrap(), vec![2; 4]);
    // Fails validation after sizes are known: nothing may be reallocated or uploaded.
    let mut bad = vec![1i64; 8];
    bad[5] = 1 << 40;
    assert!(step(&bad).is_err());
    // Growth keeps the old contents; the new tail starts at zero.
    assert_eq!(step(&[1; 8]).unwrap(), vec![3, 3, 3, 3, 1, 1, 1, 1]);
}

#[test]
fn adapter_filter_without_match_lists_adapters() {
    if skip_gpu() {
        return;
    }
    let all = kiln_runtime::list_adapters();
    assert!(!all.is_empty());
    let msg = kiln_runtime::Runtime::with_adapter(Some("no-such-gpu-xyz"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no-such-gpu-xyz") && msg.contains(&all[0].name), "{msg}");
    let first = all[0].name.to_uppercase();
    let rt = kiln_runtime::Runtime::with_adapter(Some(&first[..4])).unwrap();
    assert!(rt.adapter_info().name.to_uppercase().contains(&first[..4]));
}
