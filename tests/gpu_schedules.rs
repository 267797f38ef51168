//! Every GEMM and GEMV schedule variant against an independent reference: a naive f64 triple
//! loop written here (it shares no code with the interpreter or the codegen). Shapes are chosen
//! to span several tiles and K-steps with ragged edges, to broadcast batch dims, and to take
//! both the vec4 and the scalar paths of each template. Schedules are forced through tuning
//! records, as `kiln compile --tuning` would apply them.
//!
//! Tolerance: relative L2 < 2e-5. Operands are uniform in [-1, 1] and K <= 300, so each output
//! is a sum of at most 300 f32 products whose rounding error is bounded by about K * 2^-24
//! relative to the sum of magnitudes; the relative L2 error over a whole output stays well
//! below that bound.

use kiln::compiler::lower::KernelBody;
use kiln::compiler::{compile_to_dir, tuning_key, CompileOptions, Model};
use kiln::convert::{rel_l2, to_host};
use kiln::ir::{BinaryOp, DType, Dim, Graph, NodeId, Op, Tensor, TensorType, UnaryOp};
use kiln::runtime::{Bundle, Session};
use kiln::schedules::tuning::TuningDb;
use kiln::schedules::{space, AttentionParams, DeviceLimits, GemmParams, GemvParams, Schedule};
use std::collections::{BTreeMap, HashMap};

fn values(n: usize, seed: u64) -> Vec<f32> {
    kiln::demo::pseudo_random(n, seed, 1.0)
}

/// `a[batch_a.., m, k] x b[batch_b.., k, n]` with numpy batch broadcasting, in f64.
fn naive_matmul(a: &Tensor, b: &Tensor) -> (Vec<usize>, Vec<f32>) {
    let (ra, rb) = (a.shape.len(), b.shape.len());
    let (m, k, n) = (a.shape[ra - 2], a.shape[ra - 1], b.shape[rb - 1]);
    let nb = (ra - 2).max(rb - 2);
    let pad = |s: &[usize]| {
        let mut v = vec![1; nb - (s.len() - 2)];
        v.extend_from_slice(&s[..s.len() - 2]);
        v
    };
    let (ba, bb) = (pad(&a.shape), pad(&b.shape));
    let batch: Vec<usize> = ba.iter().zip(&bb).map(|(x, y)| *x.max(y)).collect();
    let (av, bv) = (a.to_f64(), b.to_f64());
    let mut out = Vec::new();
    let total: usize = batch.iter().product();
    for t in 0..total {
        // Decompose t into batch coordinates and find each operand's batch offset.
        let (mut rem, mut oa, mut ob, mut sa, mut sb) = (t, 0, 0, 1, 1);
        for i in (0..nb).rev() {
            let c = rem % batch[i];
            rem /= batch[i];
            oa += if ba[i] == 1 { 0 } else { c * sa };
            ob += if bb[i] == 1 { 0 } else { c * sb };
            sa *= ba[i];
            sb *= bb[i];
        }
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f64;
                for p in 0..k {
                    acc += av[oa * m * k + i * k + p] * bv[ob * k * n + p * n + j];
                }
                out.push(acc as f32);
            }
        }
    }
    let mut shape = batch;
    shape.extend([m, n]);
    (shape, out)
}

/// A session on the one device these tests share: NVIDIA's driver reported "Parent device is
/// lost" after some thirty devices in one process, and these tests open more bundles than that.
fn session(bundle: &Bundle) -> Session {
    Session::with_runtime(shared_runtime().clone(), bundle).unwrap()
}

/// `--precision f16` for this adapter: the `h200` profile where it grants 48 KiB of workgroup
/// memory (the cooperative GEMM's wide tiles), else `desktop`.
fn f16_options() -> CompileOptions {
    let big = shared_runtime().adapter_limits().max_compute_workgroup_storage_size >= 48 * 1024;
    CompileOptions {
        target: if big {
            DeviceLimits::h200()
        } else {
            DeviceLimits::desktop()
        },
        precision: kiln::compiler::Precision::F16,
        ..Default::default()
    }
}

/// The runtime of the one device these tests share (see [`session`]).
fn shared_runtime() -> &'static kiln::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<kiln::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| kiln::runtime::Runtime::new().expect("a GPU adapter"))
}

/// Compiles `a x b` with `schedule` forced by a tuning record, runs it and compares it with
/// the naive reference. Returns the kernel's WGSL.
fn check(a_shape: &[usize], b_shape: &[usize], schedule: Schedule) -> String {
    let mut g = Graph::new();
    let a = g.add_input("a", TensorType::new(DType::F32, a_shape));
    let b = g.add_input("b", TensorType::new(DType::F32, b_shape));
    let c = g.add("c", Op::MatMul, &[a, b]).unwrap();
    g.add_output("c", c);
    let dims = |s: &[usize]| s.iter().map(|&d| Dim::c(d as i64)).collect::<Vec<_>>();
    let key = tuning_key(&KernelBody::Gemm {
        a: dims(a_shape),
        b: dims(b_shape),
        dtype: DType::F32,
    });
    let db = TuningDb::forcing(key, schedule);
    let opts = CompileOptions {
        target: DeviceLimits::desktop(),
        tuning: Some(db),
        ..Default::default()
    };
    let model = Model {
        name: "matmul".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let m = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{schedule}: {e}"));
    // A split-K GEMM adds its combine kernel.
    let split = matches!(schedule, Schedule::Gemm(p) if p.ksplit > 1);
    assert_eq!(m.kernels.len(), 1 + split as usize);
    assert_eq!(
        m.kernels[0].schedule,
        schedule.to_string(),
        "the record's schedule is used"
    );
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let mut s = session(&bundle);
    // Twice, on different A: a kernel that counts arrivals in the scratch buffer must leave
    // it ready (with the counters off, the second run would add partial sums of the first).
    for (run, seed) in [(0, 11), (1, 13)] {
        let at = Tensor::f32(a_shape.to_vec(), values(a_shape.iter().product(), seed));
        let bt = Tensor::f32(b_shape.to_vec(), values(b_shape.iter().product(), 12));
        let (shape, want) = naive_matmul(&at, &bt);
        let inputs = HashMap::from([
            ("a".to_string(), to_host(&at, kiln::abi::ElemType::F32)),
            ("b".to_string(), to_host(&bt, kiln::abi::ElemType::F32)),
        ]);
        let out: HashMap<_, _> = s.run("run", &inputs).unwrap().into_iter().collect();
        assert_eq!(out["c"].shape, shape, "{schedule}");
        let err = rel_l2(&out["c"].to_f32(), &want);
        assert!(
            err < 2e-5,
            "{schedule} on {a_shape:?} x {b_shape:?}, run {run}: relative L2 error {err:e}"
        );
    }
    std::fs::read_to_string(dir.path().join("b").join(&m.kernels[0].file)).unwrap()
}

fn gemm(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32) -> Schedule {
    Schedule::Gemm(GemmParams::new(bm, bn, bk, tm, tn))
}

fn split(s: Schedule, ksplit: u32) -> Schedule {
    match s {
        Schedule::Gemm(p) => Schedule::Gemm(p.with_ksplit(ksplit)),
        s => s,
    }
}

fn db(s: Schedule) -> Schedule {
    match s {
        Schedule::Gemm(p) => Schedule::Gemm(p.double_buffered()),
        s => s,
    }
}

fn gemv(lanes: u32, ksplit: u32, rows: u32) -> Schedule {
    Schedule::Gemv(GemvParams::new(lanes, ksplit, rows))
}

#[test]
fn vec4_gemm_tiles_match_the_reference() {
    for s in [
        gemm(128, 128, 16, 8, 8),
        gemm(64, 64, 16, 4, 4),
        gemm(64, 128, 8, 4, 8),
        gemm(32, 32, 8, 4, 4),
        // Double-buffered stages (one barrier per K-step) and bk 32.
        db(gemm(128, 128, 16, 8, 8)),
        db(gemm(128, 128, 8, 8, 8)),
        db(gemm(32, 64, 32, 4, 4)),
        gemm(64, 64, 32, 4, 4),
        // The wide register tiles (8x16 and 16x8, 128 accumulators), in 128x128 blocks of
        // 128 threads and a 128x256 block.
        gemm(128, 128, 16, 8, 16),
        gemm(128, 128, 8, 16, 8),
        gemm(128, 256, 8, 8, 16),
    ] {
        // Ragged in every dim: several blocks and K-steps, none of them full at the edge.
        assert!(!check(&[130, 75], &[75, 261], s).contains("fn kiln_load_a"), "{s}");
        // Batched, with B broadcast over the batch.
        let _ = check(&[3, 37, 19], &[19, 66], s);
        // K and N multiples of 4 take the vec4-load path: ragged M, a partial last K-step and
        // a partial last column block.
        assert!(check(&[130, 76], &[76, 264], s).contains("fn kiln_load_a"), "{s}");
        assert!(
            check(&[2, 3, 37, 20], &[3, 20, 68], s).contains("fn kiln_load_b"),
            "{s}"
        );
    }
}

#[test]
fn split_k_gemm_tiles_match_the_reference() {
    for s in [
        split(gemm(64, 64, 16, 4, 4), 4),
        split(gemm(32, 32, 16, 2, 2), 8),
        split(gemm(128, 64, 16, 4, 8), 2),
        split(gemm(64, 64, 8, 4, 4), 32),
        split(db(gemm(64, 64, 32, 4, 4)), 4),
        split(db(gemm(128, 128, 16, 8, 8)), 2),
        split(gemm(32, 64, 32, 4, 4), 8),
    ] {
        // Ragged K (the last slice is short, and with 32 slices some are empty), scalar reads.
        let _ = check(&[70, 301], &[301, 45], s);
        // vec4 reads (K, N multiples of 4) with a ragged last K-step inside a slice; batched
        // with B broadcast, so each batch's slices land in their own partial block.
        assert!(check(&[3, 37, 260], &[260, 68], s).contains("ksplit="), "{s}");
    }
}

/// Split-K with a fused prologue (A transposed on load) and epilogue (bias, residual add,
/// ReLU) against the interpreter, forced by a record and chosen by the default: the epilogue
/// must run once, after the slices are added (ReLU of a partial sum would be wrong). Tolerance
/// as for [`check`] (K <= 1536 products of values in [-1, 1]; relative L2 < 2e-5).
#[test]
fn split_k_applies_prologue_and_epilogue_once() {
    for (m, n, k, schedule) in [
        (37, 70, 301, Some(split(gemm(64, 64, 16, 4, 4), 8))),
        (40, 64, 520, Some(split(gemm(32, 32, 16, 2, 2), 4))),
        // MiniLM's FFN-down shape at batch 1: the default splits K.
        (128, 384, 1536, None),
    ] {
        let mut g = Graph::new();
        let at = g.add_input("at", TensorType::new(DType::F32, &[1, k, m]));
        let r = g.add_input("r", TensorType::new(DType::F32, &[1, m, n]));
        let a = g.add("a", Op::Transpose { perm: vec![0, 2, 1] }, &[at]).unwrap();
        let w = g.add_const("w", Tensor::f32(vec![k, n], values(k * n, 3)));
        let bias = g.add_const("bias", Tensor::f32(vec![n], values(n, 4)));
        let mm = g.add("mm", Op::MatMul, &[a, w]).unwrap();
        let b = g.add("b", Op::Binary(BinaryOp::Add), &[mm, bias]).unwrap();
        let res = g.add("res", Op::Binary(BinaryOp::Add), &[b, r]).unwrap();
        let y = g.add("y", Op::Unary(UnaryOp::Relu), &[res]).unwrap();
        g.add_output("y", y);
        let key = tuning_key(&KernelBody::Gemm {
            a: vec![Dim::c(1), Dim::c(m as i64), Dim::c(k as i64)],
            b: vec![Dim::c(k as i64), Dim::c(n as i64)],
            dtype: DType::F32,
        });
        let tuning = schedule.map(|s| TuningDb::forcing(key, s));
        let model = Model {
            name: "split".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        };
        let opts = CompileOptions {
            target: DeviceLimits::desktop(),
            tuning,
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let man = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
        let what = format!("{m}x{n}x{k} {schedule:?}");
        // One fused GEMM, split: the partial sums and the combine (which holds the epilogue).
        let program = &man.programs[0].dispatches;
        assert_eq!(program.len(), 2, "{what}: {program:?}");
        let combine = &man.kernels[program[1].kernel];
        assert!(combine.name.ends_with("gemm_combine"), "{what}: {}", combine.name);
        let src = std::fs::read_to_string(dir.path().join("b").join(&combine.file)).unwrap();
        assert!(
            src.contains("fn kiln_epilogue") && src.contains("max("),
            "{what}: {src}"
        );
        let first = &man.kernels[program[0].kernel];
        assert!(first.schedule.contains("ksplit="), "{what}: {}", first.schedule);
        let inputs = HashMap::from([
            ("at".to_string(), Tensor::f32(vec![1, k, m], values(k * m, 1))),
            ("r".to_string(), Tensor::f32(vec![1, m, n], values(m * n, 2))),
        ]);
        let want = kiln::ir::interp::evaluate(&model.graph, &inputs).unwrap();
        let bundle = Bundle::load(dir.path().join("b")).unwrap();
        let mut sess = session(&bundle);
        let host: HashMap<_, _> = inputs
            .iter()
            .map(|(n, t)| (n.clone(), to_host(t, kiln::abi::ElemType::F32)))
            .collect();
        let out: HashMap<_, _> = sess.run("run", &host).unwrap().into_iter().collect();
        let want = want["y"].to_f64().iter().map(|&v| v as f32).collect::<Vec<_>>();
        let err = rel_l2(&out["y"].to_f32(), &want);
        assert!(err < 2e-5, "{what}: relative L2 error {err:e}");
    }
}

/// BERT's attention data movement fused into GEMM operand loads at opt-level 2: V is sliced
/// out of a merged QKV tensor and split into heads (`[1, S, 3*H*D]` -> `[1, H, S, D]`), the
/// per-head product is merged back (`[1, H, S, D]` -> `[1, S, H*D]`) and projected. Both
/// prologues keep the head dim contiguous, so with D a multiple of 4 they are read as vec4s
/// (`kiln_x*_v4`); with an odd D they stay scalar. Against the interpreter, relative L2 < 2e-5
/// (sums of at most 24 products of values in [-1, 1]).
#[test]
fn head_split_prologues_read_vec4s_and_match_the_interpreter() {
    for (d, vec) in [(8usize, true), (3, false)] {
        let (s, h) = (20usize, 3usize);
        let hd = h * d;
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[1, s, 3 * hd]));
        let p = g.add_input("p", TensorType::new(DType::F32, &[1, h, s, s]));
        let v = g
            .add(
                "v",
                Op::Slice {
                    axes: vec![kiln::ir::SliceAxis {
                        axis: 2,
                        start: 2 * hd as i64,
                        end: 3 * hd as i64,
                        step: 1,
                    }],
                },
                &[x],
            )
            .unwrap();
        let heads = |n: usize| vec![Dim::c(1), Dim::c(s as i64), Dim::c(h as i64), Dim::c(n as i64)];
        let v4 = g.add("v4", Op::Reshape { shape: heads(d) }, &[v]).unwrap();
        let vt = g.add("vt", Op::Transpose { perm: vec![0, 2, 1, 3] }, &[v4]).unwrap();
        let ctx = g.add("ctx", Op::MatMul, &[p, vt]).unwrap();
        let ct = g.add("ct", Op::Transpose { perm: vec![0, 2, 1, 3] }, &[ctx]).unwrap();
        let merged = g
            .add(
                "merged",
                Op::Reshape {
                    shape: vec![Dim::c(1), Dim::c(s as i64), Dim::c(hd as i64)],
                },
                &[ct],
            )
            .unwrap();
        let w = g.add_const("w", Tensor::f32(vec![hd, 16], values(hd * 16, 9)));
        let y = g.add("y", Op::MatMul, &[merged, w]).unwrap();
        g.add_output("y", y);
        // Both GEMMs on a vec4 tile.
        let mut db = TuningDb::default();
        let key = |a: &[usize], b: &[usize]| {
            tuning_key(&KernelBody::Gemm {
                a: a.iter().map(|&v| Dim::c(v as i64)).collect(),
                b: b.iter().map(|&v| Dim::c(v as i64)).collect(),
                dtype: DType::F32,
            })
        };
        for k in [key(&[1, h, s, s], &[1, h, s, d]), key(&[1, s, hd], &[hd, 16])] {
            db.force(k, gemm(32, 32, 8, 4, 4));
        }
        let model = Model {
            name: "heads".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        };
        let opts = CompileOptions {
            target: DeviceLimits::desktop(),
            tuning: Some(db),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let man = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            man.programs[0].dispatches.len(),
            2,
            "two GEMMs, the data movement fused"
        );
        let src: String = man
            .kernels
            .iter()
            .map(|k| std::fs::read_to_string(dir.path().join("b").join(&k.file)).unwrap())
            .collect();
        assert_eq!(src.contains("fn kiln_x1_v4"), vec, "V's head split, d = {d}");
        assert_eq!(src.contains("fn kiln_x0_v4"), vec, "the head merge, d = {d}");
        let inputs = HashMap::from([
            ("x".to_string(), Tensor::f32(vec![1, s, 3 * hd], values(s * 3 * hd, 5))),
            ("p".to_string(), Tensor::f32(vec![1, h, s, s], values(h * s * s, 6))),
        ]);
        let want = kiln::ir::interp::evaluate(&model.graph, &inputs).unwrap();
        let bundle = Bundle::load(dir.path().join("b")).unwrap();
        let mut sess = session(&bundle);
        let host: HashMap<_, _> = inputs
            .iter()
            .map(|(n, t)| (n.clone(), to_host(t, kiln::abi::ElemType::F32)))
            .collect();
        let out: HashMap<_, _> = sess.run("run", &host).unwrap().into_iter().collect();
        let want = want["y"].to_f64().iter().map(|&v| v as f32).collect::<Vec<_>>();
        let err = rel_l2(&out["y"].to_f32(), &want);
        assert!(err < 2e-5, "d = {d}: relative L2 error {err:e}");
    }
}

#[test]
fn scalar_gemm_tiles_still_match_the_reference() {
    for s in [gemm(32, 32, 16, 2, 2), gemm(4, 256, 8, 1, 4)] {
        let _ = check(&[45, 70], &[70, 33], s);
    }
}

#[test]
fn gemv_variants_match_the_reference() {
    for s in [
        gemv(8, 32, 1),
        gemv(8, 32, 4),
        gemv(4, 64, 2),
        gemv(16, 8, 8),
        gemv(32, 1, 1),
        // The wide K splits (space::gemv_wide_k): 2 lanes, and 512 threads.
        gemv(2, 128, 1),
        gemv(2, 32, 4),
        gemv(4, 128, 2),
    ] {
        // vec4 path (N % 4 == 0): K not a multiple of the unrolled step, M not a multiple of rows.
        let _ = check(&[1, 300], &[300, 260], s);
        let _ = check(&[5, 129], &[129, 64], s);
        // Scalar path (N % 4 != 0), K smaller than one K-slice per thread.
        let _ = check(&[3, 7], &[7, 131], s);
        // Batched: both operands batched, A broadcast over B's leading batch.
        let _ = check(&[2, 1, 40], &[3, 2, 40, 12], s);
    }
    // K >= 32 rows per thread: B rows loaded 8 at a time, K ragged against the 8-row step.
    for s in [gemv(8, 32, 1), gemv(4, 16, 2)] {
        let src = check(&[1, 1100], &[1100, 64], s);
        assert!(src.contains("let b7 = "), "{s}: unrolled by 8");
    }
}

/// GEMVs whose K is split over workgroups (`GemvParams::slices`): the last workgroup of a
/// column group to arrive adds the slices' partial sums from the scratch buffer.
#[test]
fn gemv_k_slices_match_the_reference() {
    let sliced = |lanes, ksplit, rows, slices| Schedule::Gemv(GemvParams::new(lanes, ksplit, rows).with_slices(slices));
    for s in [sliced(32, 8, 1, 8), sliced(16, 4, 2, 4), sliced(64, 4, 1, 16)] {
        // vec4 path: the last slice shorter (300 rows of B), a partial last column group.
        let src = check(&[1, 300], &[300, 260], s);
        assert!(src.contains("atomicAdd(&scratch[counter], 1u)"), "{s}: {src}");
        // M not a multiple of rows.
        let _ = check(&[5, 129], &[129, 64], s);
        // Scalar path (N % 4 != 0).
        let _ = check(&[3, 301], &[301, 131], s);
        // Batched, A broadcast over B's leading batch.
        let _ = check(&[2, 1, 64], &[3, 2, 64, 12], s);
    }
}

/// The analytic defaults for MiniLM's GEMMs at batch 1 x 128 (QKV, FFN up, FFN down, output
/// projection) on the desktop and H200 profiles: split-K vec4 tiles with short K ranges, run
/// against the reference. K <= 1536 keeps the relative L2 error far below 2e-5 (as in
/// `split_k_applies_prologue_and_epilogue_once`).
#[test]
fn minilm_gemm_defaults_match_the_reference() {
    let mut seen = Vec::new();
    for l in [DeviceLimits::h200(), DeviceLimits::desktop()] {
        for (m, n, k) in [(128, 1152, 384), (128, 1536, 384), (128, 384, 1536), (128, 384, 384)] {
            let s = kiln::schedules::defaults::gemm_split_k(1, m, n, k, &l);
            if !seen.contains(&(m, n, k, s)) {
                seen.push((m, n, k, s));
                let _ = check(&[m as usize, k as usize], &[k as usize, n as usize], s);
            }
        }
    }
}

#[test]
fn matmul_defaults_pick_gemv_for_few_rows_and_vec4_tiles_for_large() {
    let l = DeviceLimits::desktop();
    assert!(matches!(
        kiln::schedules::defaults::matmul(1, 1, 4096, 4096, &l),
        Schedule::Gemv(_)
    ));
    match kiln::schedules::defaults::matmul(1, 4096, 4096, 4096, &l) {
        Schedule::Gemm(p) => assert!(p.is_vec4() && p.bm == 128, "{p:?}"),
        s => panic!("{s}"),
    }
    // webgpu-default's 16 KiB of workgroup memory does not fit the padded bk 16 stage.
    match kiln::schedules::defaults::matmul(1, 4096, 4096, 4096, &DeviceLimits::webgpu_default()) {
        Schedule::Gemm(p) => assert_eq!((p.bm, p.bk), (128, 8)),
        s => panic!("{s}"),
    }
}

/// Runs a one-op graph over input `x` and returns the GPU output.
fn run_one(op: Op, x: &Tensor, extra: Vec<Tensor>) -> Vec<f32> {
    let mut g = Graph::new();
    let xi = g.add_input("x", TensorType::new(DType::F32, &x.shape));
    let mut ins = vec![xi];
    for (i, t) in extra.into_iter().enumerate() {
        ins.push(g.add_const(&format!("w{i}"), t));
    }
    let y = g.add("y", op, &ins).unwrap();
    g.add_output("y", y);
    let model = Model {
        name: "row".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    compile_to_dir(&model, &CompileOptions::default(), &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let mut s = session(&bundle);
    let inputs = HashMap::from([("x".to_string(), to_host(x, kiln::abi::ElemType::F32))]);
    let out = s.run("run", &inputs).unwrap();
    out[0].1.to_f32()
}

/// Softmax rows both cached in registers (length <= 16 x 256) and streamed three times (longer),
/// along the last axis and along a middle axis; against a naive f64 softmax. Tolerance 1e-5:
/// each output is one exp and one division away from the reference.
#[test]
fn softmax_rows_cached_and_streamed_match_the_reference() {
    for (shape, axis) in [
        (vec![3, 300], 1),
        (vec![2, 256], 1),
        (vec![2, 5000], 1),
        (vec![2, 37, 3], 1),
    ] {
        for log in [false, true] {
            let n: usize = shape.iter().product();
            let x = Tensor::f32(shape.clone(), values(n, 5).iter().map(|v| v * 8.0).collect());
            let got = run_one(Op::Softmax { axis, log }, &x, vec![]);
            let xv = x.to_f64();
            let (len, inner) = (shape[axis], shape[axis + 1..].iter().product::<usize>());
            let mut want = vec![0f32; n];
            for outer in 0..n / (len * inner) {
                for i in 0..inner {
                    let at = |k: usize| outer * len * inner + k * inner + i;
                    let m = (0..len).map(|k| xv[at(k)]).fold(f64::MIN, f64::max);
                    let s: f64 = (0..len).map(|k| (xv[at(k)] - m).exp()).sum();
                    for k in 0..len {
                        let e = xv[at(k)] - m;
                        want[at(k)] = if log { e - s.ln() } else { e.exp() / s } as f32;
                    }
                }
            }
            let err = rel_l2(&got, &want);
            assert!(err < 1e-5, "softmax {shape:?} axis {axis} log {log}: {err:e}");
        }
    }
}

/// LayerNorm rows cached in registers (384: BERT's width) and streamed (4100 > 16 x 256),
/// against a naive f64 layer norm. Tolerance 1e-5 (a mean, a variance and one division).
#[test]
fn layernorm_rows_cached_and_streamed_match_the_reference() {
    // 384, 1000 and 4096 take the vec4 row cache (1000 leaves the last 4-vectors of a row to
    // some threads only), 4100 streams (more than 16 registers per thread), 7 is scalar.
    for (rows, len) in [(5, 384), (4, 1000), (2, 4096), (2, 4100), (3, 7)] {
        let x = Tensor::f32(
            vec![rows, len],
            values(rows * len, 6).iter().map(|v| v * 3.0 + 1.0).collect(),
        );
        let scale = Tensor::f32(vec![len], values(len, 7));
        let bias = Tensor::f32(vec![len], values(len, 8));
        let got = run_one(
            Op::LayerNorm { axis: 1, epsilon: 1e-5 },
            &x,
            vec![scale.clone(), bias.clone()],
        );
        let (xv, sv, bv) = (x.to_f64(), scale.to_f64(), bias.to_f64());
        let mut want = Vec::new();
        for r in 0..rows {
            let row = &xv[r * len..(r + 1) * len];
            let mean = row.iter().sum::<f64>() / len as f64;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / len as f64;
            for k in 0..len {
                want.push(((row[k] - mean) / (var + 1e-5).sqrt() * sv[k] + bv[k]) as f32);
            }
        }
        let err = rel_l2(&got, &want);
        assert!(err < 1e-5, "layernorm {rows}x{len}: {err:e}");
    }
}

/// `--precision f16` ships a cooperative-matrix variant of the GEMM (bias and ReLU fused) that
/// needs `shader-f16`, cooperative matrices and 32-wide subgroups, which lavapipe lacks: the
/// bundle loads, the runtime says why it skips the variant, runs the f32 kernel, and the result
/// equals the interpreter's (the f32 tolerance of this file; the f16 variant itself is checked
/// on the H200 by `kiln_bench`).
#[test]
fn f16_variant_falls_back_to_the_f32_kernel_where_unsupported() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[96, 64]));
    let w = g.add_const("w", Tensor::f32(vec![64, 128], values(64 * 128, 21)));
    let bias = g.add_const("bias", Tensor::f32(vec![128], values(128, 22)));
    let mm = g.add("mm", Op::MatMul, &[x, w]).unwrap();
    let add = g.add("add", Op::Binary(BinaryOp::Add), &[mm, bias]).unwrap();
    let y = g.add("relu", Op::Unary(UnaryOp::Relu), &[add]).unwrap();
    g.add_output("y", y);
    let model = Model {
        name: "f16".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let opts = CompileOptions {
        target: DeviceLimits::desktop(),
        precision: kiln::compiler::Precision::F16,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let m = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap();
    assert_eq!(m.format_version, kiln::abi::FORMAT_VERSION);
    let k = &m.kernels[0];
    assert_eq!(k.variants.len(), 1, "{k:?}");
    let v = &k.variants[0];
    assert!(v.schedule.starts_with("coop_gemm("), "{v:?}");
    assert!(v.requires.features.contains(&"wgpu-cooperative-matrix".to_string()));

    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let runtime = kiln::runtime::Runtime::new().unwrap();
    let why = runtime.variant_unsupported(&v.requires);
    assert!(why.is_some(), "lavapipe runs cooperative matrices?");
    assert_eq!(runtime.choose_variants(bundle.manifest()), vec![None]);
    let mut s = Session::with_runtime(runtime, &bundle).unwrap();
    let ran = &s.manifest().kernels[0];
    assert_eq!(ran.schedule, k.schedule, "the f32 kernel runs");
    assert!(ran.variants.is_empty() && s.manifest().requirements.features.is_empty());

    let xt = Tensor::f32(vec![96, 64], values(96 * 64, 23));
    let inputs = HashMap::from([("x".to_string(), xt.clone())]);
    let want = kiln::ir::interp::evaluate(&model.graph, &inputs).expect("interpreter");
    let host = HashMap::from([("x".to_string(), to_host(&xt, kiln::abi::ElemType::F32))]);
    let out: HashMap<_, _> = s.run("run", &host).unwrap().into_iter().collect();
    let err = rel_l2(&out["y"].to_f32(), &want["y"].to_f32());
    assert!(err < 2e-5, "relative L2 error {err:e}");
}

/// A decode step's attention, `softmax(q·k * 0.125 + mask) · v` with `R` query rows per batch
/// and a symbolic key count `t`, becomes one attention kernel at opt-level 2 whose decode
/// schedule splits the runtime keys over workgroups (flash-decoding). Where one more storage
/// buffer fits, the last slice of each batch combines the slices in the same dispatch
/// (arrival counters in the scratch buffer); with a storage-buffer limit of exactly the
/// kernel's inputs and output, a combine kernel follows instead. Both forms run every key
/// count in one session, so a counter not returned to zero fails the next run.
/// Against a naive f64 attention for one key, key counts that are not multiples of the key tile
/// or of the slices, and a long context; the mask hides a run of keys that covers whole tiles
/// and slices (their partial results must not turn into NaN), keeping key 0 visible.
///
/// Tolerance: relative L2 < 2e-5. Each output is a convex combination of values in [-1, 1]
/// with weights from f32 exps of scores of magnitude < 8; the f32 online softmax rescales each
/// partial sum a few times (each a relative error of a few 2^-24) and sums up to 3000 terms.
///
/// Three query rows per batch (GQA groups of 3, SmolLM2-135M) and one (no GQA, the 1.7B
/// shapes: most of the workgroup's threads idle in the weighted sum), at head dim 64; and
/// tiny head dims (4 for K, 6 for V), where the step's key count is capped and lanes past the
/// head dim add zeros (`codegen::DecodeTile`).
#[test]
fn decode_attention_split_over_keys_matches_the_reference() {
    decode_attention_case(3, 3, 64, 64);
    decode_attention_case(2, 1, 64, 64);
    decode_attention_case(2, 2, 4, 6);
}

fn decode_attention_case(b: usize, r: usize, d: usize, dv: usize) {
    let mut narrow = CompileOptions::default();
    // q, k, v, mask and the output: no room for the scratch buffer.
    narrow.target.max_storage_buffers_per_shader_stage = 5;
    for (opts, fused) in [(CompileOptions::default(), true), (narrow, false)] {
        decode_attention_form(b, r, d, dv, &opts, fused);
    }
}

fn decode_attention_form(b: usize, r: usize, d: usize, dv: usize, opts: &CompileOptions, fused: bool) {
    let model = decode_attention_model(b, r, d, dv);
    let dir = tempfile::tempdir().unwrap();
    let m = compile_to_dir(&model, opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = m.kernels.iter().map(|k| k.name.as_str()).collect();
    let scratch = m
        .buffers
        .iter()
        .filter(|x| x.kind == kiln::abi::BufferKind::Scratch)
        .count();
    if fused {
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(m.programs[0].dispatches.len(), 1);
        assert_eq!(scratch, 1, "one scratch buffer");
        let wgsl = std::fs::read_to_string(dir.path().join("b").join(&m.kernels[0].file)).unwrap();
        assert!(wgsl.contains("atomicAdd(&scratch"), "{wgsl}");
    } else {
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names[1].ends_with("attention_combine"), "{names:?}");
        assert_eq!(scratch, 0);
    }
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let mut s = session(&bundle);
    for keys in [1usize, 31, 33, 100, 3000, 100] {
        let qt = Tensor::f32(vec![b, r, d], values(b * r * d, 21));
        let kt = Tensor::f32(vec![b, d, keys], values(b * d * keys, 22));
        let vt = Tensor::f32(vec![b, keys, dv], values(b * keys * dv, 23));
        let hidden = |j: usize| j >= 1 && j < keys / 2;
        let mv: Vec<f32> = (0..r * keys)
            .map(|e| {
                if hidden(e % keys) {
                    f32::NEG_INFINITY
                } else {
                    (e % 5) as f32 * 0.1
                }
            })
            .collect();
        let mt = Tensor::f32(vec![r, keys], mv);
        let (qv, kv, vv, mv) = (qt.to_f64(), kt.to_f64(), vt.to_f64(), mt.to_f64());
        let mut want = Vec::new();
        for bi in 0..b {
            for ri in 0..r {
                let scores: Vec<f64> = (0..keys)
                    .map(|j| {
                        let dot: f64 = (0..d)
                            .map(|c| qv[(bi * r + ri) * d + c] * kv[(bi * d + c) * keys + j])
                            .sum();
                        dot * 0.125 + mv[ri * keys + j]
                    })
                    .collect();
                let mx = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
                let sum: f64 = w.iter().sum();
                for c in 0..dv {
                    let acc: f64 = (0..keys).map(|j| w[j] * vv[(bi * keys + j) * dv + c]).sum();
                    want.push((acc / sum) as f32);
                }
            }
        }
        let f = |t: &Tensor| to_host(t, kiln::abi::ElemType::F32);
        let inputs = HashMap::from([
            ("q".to_string(), f(&qt)),
            ("k".to_string(), f(&kt)),
            ("v".to_string(), f(&vt)),
            ("mask".to_string(), f(&mt)),
        ]);
        let out = s.run("run", &inputs).unwrap();
        let got = out[0].1.to_f32();
        assert!(
            got.iter().all(|x| x.is_finite()),
            "{r} rows, {keys} keys, fused {fused}: not finite"
        );
        let err = rel_l2(&got, &want);
        assert!(err < 2e-5, "{r} rows, {keys} keys, fused {fused}: rel L2 {err:e}");
    }
}

/// Adds `o = softmax(q · kt * scale + mask) · v` over the last axis of 3-D scores to `g`
/// as plain ops named `s`, `scaled`, `masked`, `p` and `o`, and `o` as the graph's output.
fn masked_attention_output(g: &mut Graph, inputs: [NodeId; 4], scale: f32) {
    named_masked_attention_output(g, inputs, scale, "");
}

/// [`masked_attention_output`] with `suffix` after every name (`s{suffix}`, .., output
/// `o{suffix}`), so one graph can hold several.
fn named_masked_attention_output(g: &mut Graph, [q, kt, v, mask]: [NodeId; 4], scale: f32, suffix: &str) {
    let name = |n: &str| format!("{n}{suffix}");
    let scale = g.add_const(&name("scale"), Tensor::f32(vec![], vec![scale]));
    let s = g.add(&name("s"), Op::MatMul, &[q, kt]).unwrap();
    let s = g.add(&name("scaled"), Op::Binary(BinaryOp::Mul), &[s, scale]).unwrap();
    let s = g.add(&name("masked"), Op::Binary(BinaryOp::Add), &[s, mask]).unwrap();
    let p = g.add(&name("p"), Op::Softmax { axis: 2, log: false }, &[s]).unwrap();
    let o = g.add(&name("o"), Op::MatMul, &[p, v]).unwrap();
    g.add_output(&name("o"), o);
}

/// Two decode attentions of different shapes in one program share the scratch buffer: the
/// second's arrival counters must not land on the first's partial results (every kernel keeps
/// its counters in the buffer's first `ARRIVAL_COUNTERS` words). Both split over keys and
/// combined in their last slices, run over several key counts in one session against the
/// interpreter (tolerance as in the test above).
#[test]
fn decode_attentions_of_two_shapes_share_the_scratch_buffer() {
    let t = Dim::sym("t");
    let mut g = Graph::new();
    let ty = |shape: Vec<Dim>| TensorType {
        dtype: DType::F32,
        shape,
    };
    let c = |v: usize| Dim::c(v as i64);
    let mut outs = Vec::new();
    // (batch, rows, d, dv): the second's batch blocks are smaller, so its counters would sit
    // inside the first's partial results if they shared a layout.
    for (i, (b, r, d, dv)) in [(2usize, 3usize, 64usize, 64usize), (5, 1, 16, 24)]
        .into_iter()
        .enumerate()
    {
        let q = g.add_input(&format!("q{i}"), ty(vec![c(b), c(r), c(d)]));
        let k = g.add_input(&format!("k{i}"), ty(vec![c(b), c(d), t.clone()]));
        let v = g.add_input(&format!("v{i}"), ty(vec![c(b), t.clone(), c(dv)]));
        let mask = g.add_input(&format!("mask{i}"), ty(vec![c(r), t.clone()]));
        named_masked_attention_output(&mut g, [q, k, v, mask], 0.125, &i.to_string());
        outs.push((b, r, d, dv));
    }
    let model = Model {
        name: "two_decode_attentions".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let m = compile_to_dir(&model, &CompileOptions::default(), &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        m.programs[0].dispatches.len(),
        2,
        "two attention kernels, no combine dispatch"
    );
    let scratch: Vec<usize> = m
        .buffers
        .iter()
        .enumerate()
        .filter(|(_, x)| x.kind == kiln::abi::BufferKind::Scratch)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(scratch.len(), 1);
    assert!(m.programs[0].dispatches.iter().all(|d| d.buffers.contains(&scratch[0])));
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let mut s = session(&bundle);
    for keys in [40usize, 300, 7, 300] {
        let mut inputs = HashMap::new();
        for (i, &(b, r, d, dv)) in outs.iter().enumerate() {
            let seed = 40 + 4 * i as u64;
            inputs.insert(format!("q{i}"), Tensor::f32(vec![b, r, d], values(b * r * d, seed)));
            inputs.insert(
                format!("k{i}"),
                Tensor::f32(vec![b, d, keys], values(b * d * keys, seed + 1)),
            );
            inputs.insert(
                format!("v{i}"),
                Tensor::f32(vec![b, keys, dv], values(b * keys * dv, seed + 2)),
            );
            let mv: Vec<f32> = (0..r * keys).map(|e| (e % 3) as f32 * 0.1).collect();
            inputs.insert(format!("mask{i}"), Tensor::f32(vec![r, keys], mv));
        }
        let want = kiln::ir::interp::evaluate(&model.graph, &inputs).expect("interpreter");
        let host: HashMap<_, _> = inputs
            .iter()
            .map(|(n, t)| (n.clone(), to_host(t, kiln::abi::ElemType::F32)))
            .collect();
        let out = s.run("run", &host).unwrap();
        for (name, got) in &out {
            let err = rel_l2(&got.to_f32(), &want[name].to_f32());
            assert!(err < 2e-5, "{name}, {keys} keys: rel L2 {err:e}");
        }
    }
}

/// `softmax(q · k * 0.125 + mask) · v` over a symbolic key count `t`: q `[b, r, d]`, k
/// `[b, d, t]`, v `[b, t, dv]`, mask `[r, t]` (the decode schedule's shape).
fn decode_attention_model(b: usize, r: usize, d: usize, dv: usize) -> Model {
    let t = Dim::sym("t");
    let mut g = Graph::new();
    let q = g.add_input("q", TensorType::new(DType::F32, &[b, r, d]));
    let k = g.add_input(
        "k",
        TensorType {
            dtype: DType::F32,
            shape: vec![Dim::c(b as i64), Dim::c(d as i64), t.clone()],
        },
    );
    let v = g.add_input(
        "v",
        TensorType {
            dtype: DType::F32,
            shape: vec![Dim::c(b as i64), t.clone(), Dim::c(dv as i64)],
        },
    );
    let mask = g.add_input(
        "mask",
        TensorType {
            dtype: DType::F32,
            shape: vec![Dim::c(r as i64), t.clone()],
        },
    );
    masked_attention_output(&mut g, [q, k, v, mask], 0.125);
    Model {
        name: "decode_attention".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    }
}

/// The decode attention's workgroup memory as the bundle requires it is what its WGSL declares
/// (each `var<workgroup>` rounded up to 16 bytes, counted here from the source text), and
/// a target with less workgroup memory than that is refused at compile time, naming the limit.
#[test]
fn decode_attention_workgroup_memory_is_what_its_wgsl_declares() {
    let model = decode_attention_model(3, 3, 64, 64);
    let dir = tempfile::tempdir().unwrap();
    let m = compile_to_dir(&model, &CompileOptions::default(), &dir.path().join("b")).unwrap();
    let wgsl = std::fs::read_to_string(dir.path().join("b").join(&m.kernels[0].file)).unwrap();
    let declared: u64 = wgsl
        .lines()
        .filter_map(|l| l.strip_prefix("var<workgroup> "))
        .map(|l| {
            // An f32 array, or the last slice's u32 flag.
            let n = match l.split("array<f32, ").nth(1) {
                Some(r) => r.split('>').next().unwrap().parse::<u64>().unwrap(),
                None if l.ends_with(": u32;") => 1,
                None => panic!("unexpected workgroup variable: {l}"),
            };
            (4 * n).next_multiple_of(16)
        })
        .sum();
    assert!(declared > 0, "{wgsl}");
    assert_eq!(m.requirements.limits["maxComputeWorkgroupStorageSize"], declared);
    let small = CompileOptions {
        target: DeviceLimits {
            max_compute_workgroup_storage_size: (declared - 16) as u32,
            ..DeviceLimits::webgpu_default()
        },
        ..CompileOptions::default()
    };
    let err = compile_to_dir(&model, &small, &dir.path().join("small"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("workgroup memory") && err.contains("maxComputeWorkgroupStorageSize"),
        "{err}"
    );
    assert!(!dir.path().join("small").exists(), "nothing written: {err}");
}

/// The decode attention as an LLM reads it: K and V are transposed views of caches
/// `[t, kv_heads, d]` over a symbolic key count (read at coordinates, no division per
/// element), the queries of `heads = kv_heads x 3` grouped by KV head (GQA) through a reshape
/// and transpose, a head dim of 40 that does not fill the lanes of a key evenly (16 lanes, 3
/// channels each, half the lanes idle on the third), key counts with a partial last step of keys and with
/// one to many key slices, and a mask that hides a run of keys. GPU against the interpreter.
///
/// Tolerance: relative L2 < 2e-5, as in the test above (the same online softmax in f32; the
/// interpreter rounds each op's result to f32).
#[test]
fn decode_attention_over_transposed_caches_with_gqa_matches_the_interpreter() {
    let (kvh, group, d) = (2usize, 3usize, 40usize);
    let heads = kvh * group;
    let t = Dim::sym("t");
    let dn = |v: usize| Dim::c(v as i64);
    let mut g = Graph::new();
    let q = g.add_input("q", TensorType::new(DType::F32, &[1, heads, d]));
    let cache = |g: &mut Graph, name: &str| {
        g.add_input(
            name,
            TensorType {
                dtype: DType::F32,
                shape: vec![t.clone(), dn(kvh), dn(d)],
            },
        )
    };
    let kc = cache(&mut g, "k_cache");
    let vc = cache(&mut g, "v_cache");
    let mask = g.add_input(
        "mask",
        TensorType {
            dtype: DType::F32,
            shape: vec![dn(group), t.clone()],
        },
    );
    let reshape = |g: &mut Graph, name: &str, x, shape: Vec<Dim>| g.add(name, Op::Reshape { shape }, &[x]).unwrap();
    let q = reshape(&mut g, "q_groups", q, vec![dn(1), dn(kvh), dn(group), dn(d)]);
    let q = g
        .add("q_by_kv_head", Op::Transpose { perm: vec![1, 2, 0, 3] }, &[q])
        .unwrap();
    let q = reshape(&mut g, "q_rows", q, vec![dn(kvh), dn(group), dn(d)]);
    let kt = g.add("keys_t", Op::Transpose { perm: vec![1, 2, 0] }, &[kc]).unwrap();
    let vt = g
        .add("values_by_head", Op::Transpose { perm: vec![1, 0, 2] }, &[vc])
        .unwrap();
    masked_attention_output(&mut g, [q, kt, vt, mask], 1.0 / (d as f32).sqrt());
    let model = Model {
        name: "decode_attention_gqa".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let m = compile_to_dir(&model, &CompileOptions::default(), &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = m.kernels.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        names.len(),
        1,
        "the transposes fuse into the attention kernel, which combines its slices: {names:?}"
    );
    // K and V (operands 1 and 2) read the caches with no division by the runtime key count.
    let wgsl = std::fs::read_to_string(dir.path().join("b").join(&m.kernels[0].file)).unwrap();
    for f in ["fn kiln_x1(", "fn kiln_x2("] {
        let at = wgsl.find(f).unwrap_or_else(|| panic!("no {f} in\n{wgsl}"));
        let body = &wgsl[at..at + wgsl[at..].find("\n}").unwrap()];
        assert!(!body.contains('/') && !body.contains('%'), "{body}");
    }
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    for keys in [1usize, 13, 45, 700] {
        let qt = Tensor::f32(vec![1, heads, d], values(heads * d, 31));
        let kt = Tensor::f32(vec![keys, kvh, d], values(keys * kvh * d, 32));
        let vt = Tensor::f32(vec![keys, kvh, d], values(keys * kvh * d, 33));
        let mv: Vec<f32> = (0..group * keys)
            .map(|e| {
                let j = e % keys;
                if j >= 2 && j < keys / 3 {
                    f32::NEG_INFINITY
                } else {
                    (e % 7) as f32 * 0.05
                }
            })
            .collect();
        let mt = Tensor::f32(vec![group, keys], mv);
        let inputs = HashMap::from([
            ("q".to_string(), qt),
            ("k_cache".to_string(), kt),
            ("v_cache".to_string(), vt),
            ("mask".to_string(), mt),
        ]);
        let want = kiln::ir::interp::evaluate(&model.graph, &inputs).expect("interpreter");
        let host: HashMap<_, _> = inputs
            .iter()
            .map(|(n, t)| (n.clone(), to_host(t, kiln::abi::ElemType::F32)))
            .collect();
        let mut s = session(&bundle);
        let out = s.run("run", &host).unwrap();
        let got = out[0].1.to_f32();
        assert!(got.iter().all(|x| x.is_finite()), "{keys} keys: not finite");
        let err = rel_l2(&got, &want["o"].to_f32());
        assert!(err < 2e-5, "{keys} keys: rel L2 {err:e}");
    }
}

/// How the flash-attention test masks the scores.
#[derive(Clone, Copy, Debug, PartialEq)]
enum AttnMask {
    /// Scale only.
    None,
    /// An additive `[sq, sk]` mask input: causal (`-inf` above the diagonal, shifted so the
    /// last query row sees every key, as in a prefill after earlier tokens), with small values
    /// elsewhere.
    Causal,
    /// Causal, and every `fully_masked`-th row entirely `-inf` (softmax gives NaN there).
    FullyMasked,
}

/// `softmax(q · kᵀ · 0.125 [+ mask]) · v` over `[b, sq, d]` queries, keys `[b, sk, d]`
/// (transposed in the graph, as ONNX exports and the Llama builder write it) or `[b, d, sk]`
/// (read directly), values `[b, sk, dv]`; returns the graph and its inputs.
fn attention_graph(
    (b, sq, sk, d, dv): (usize, usize, usize, usize, usize),
    mask: AttnMask,
    k_transposed: bool,
) -> (Graph, HashMap<String, Tensor>) {
    let mut g = Graph::new();
    let q = g.add_input("q", TensorType::new(DType::F32, &[b, sq, d]));
    let kt = if k_transposed {
        let k = g.add_input("k", TensorType::new(DType::F32, &[b, sk, d]));
        g.add("kt", Op::Transpose { perm: vec![0, 2, 1] }, &[k]).unwrap()
    } else {
        g.add_input("k", TensorType::new(DType::F32, &[b, d, sk]))
    };
    let v = g.add_input("v", TensorType::new(DType::F32, &[b, sk, dv]));
    let scale = g.add_const("scale", Tensor::f32(vec![], vec![0.125]));
    let s = g.add("s", Op::MatMul, &[q, kt]).unwrap();
    let mut s = g.add("scaled", Op::Binary(BinaryOp::Mul), &[s, scale]).unwrap();
    let mut inputs = HashMap::from([
        ("q".to_string(), Tensor::f32(vec![b, sq, d], values(b * sq * d, 31))),
        (
            "k".to_string(),
            Tensor::f32(
                if k_transposed { vec![b, sk, d] } else { vec![b, d, sk] },
                values(b * sk * d, 32),
            ),
        ),
        ("v".to_string(), Tensor::f32(vec![b, sk, dv], values(b * sk * dv, 33))),
    ]);
    if mask != AttnMask::None {
        let m = g.add_input("mask", TensorType::new(DType::F32, &[sq, sk]));
        s = g.add("masked", Op::Binary(BinaryOp::Add), &[s, m]).unwrap();
        let mv: Vec<f32> = (0..sq * sk)
            .map(|e| {
                let (i, j) = (e / sk, e % sk);
                let hidden = j + sq > i + sk || (mask == AttnMask::FullyMasked && i % 5 == 2);
                if hidden {
                    f32::NEG_INFINITY
                } else {
                    (e % 7) as f32 * 0.1
                }
            })
            .collect();
        inputs.insert("mask".into(), Tensor::f32(vec![sq, sk], mv));
    }
    let p = g.add("p", Op::Softmax { axis: 2, log: false }, &[s]).unwrap();
    let o = g.add("o", Op::MatMul, &[p, v]).unwrap();
    g.add_output("o", o);
    (g, inputs)
}

/// Every flash-attention schedule of the H200's space, with and without its probability
/// block (`pbuf`) and as a subgroup variant (`sg`), declares exactly the workgroup memory its
/// parameters count (`AttentionParams::workgroup_bytes`, which schedule validation checks
/// against a target, and `subgroup_workgroup_bytes` for the variant): the bundle's
/// requirements, measured on the WGSL, equal the formulas at three head-dim pairs. (Its shared
/// K/probability block once was a rectangle bigger than both views.)
#[test]
fn flash_attention_declares_the_workgroup_memory_its_schedule_counts() {
    let target = DeviceLimits::h200();
    let mut checked = 0;
    for (d, dv) in [(8usize, 8usize), (8, 48), (64, 64)] {
        let shape = (1, 40, 40, d, dv);
        let key = tuning_key(&KernelBody::Attention {
            batch: Dim::c(1),
            sq: Dim::c(40),
            sk: Dim::c(40),
            d,
            dv,
        });
        for s in space::attention(&target) {
            let Schedule::Attention(p) = s else { continue };
            let pb = AttentionParams { pbuf: true, ..p };
            let forms = [
                AttentionParams { sg: false, ..p },
                AttentionParams { sg: false, ..pb },
                AttentionParams { sg: true, ..pb },
            ];
            for p in forms {
                let s = Schedule::Attention(p);
                if s.validate(&target).is_err() || (p.pbuf && !p.is_tiled()) {
                    continue;
                }
                let want = p.workgroup_bytes(d as u32, dv as u32) as u64;
                if want > target.max_compute_workgroup_storage_size as u64 {
                    continue;
                }
                let (g, _) = attention_graph(shape, AttnMask::None, false);
                let mut db = TuningDb::default();
                db.force(key.clone(), s);
                let opts = CompileOptions {
                    target: target.clone(),
                    tuning: Some(db),
                    opt_level: 3,
                    ..Default::default()
                };
                let model = Model {
                    name: "attention".into(),
                    graph: g,
                    io_dtypes: BTreeMap::new(),
                };
                let b = kiln::compiler::compile(&model, &opts).unwrap_or_else(|e| panic!("{s}: {e}"));
                let k = &b.manifest.kernels[0];
                let base = AttentionParams { sg: false, ..p };
                assert_eq!(k.schedule, Schedule::Attention(base).to_string());
                let got = b.manifest.requirements.limits["maxComputeWorkgroupStorageSize"];
                assert_eq!(got, want, "{s} at d {d}, dv {dv}");
                // The subgroup variant needs no row maxima array.
                if p.sg {
                    let got = k.variants[0].requires.limits["maxComputeWorkgroupStorageSize"];
                    let want = p.subgroup_workgroup_bytes(d as u32, dv as u32) as u64;
                    assert_eq!(got, want, "{s} variant at d {d}, dv {dv}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 40, "{checked} schedules checked");
}

/// Compiles an attention graph at opt-level 3 (with `schedule` forced by a tuning record when
/// given), checks it is one flash-attention dispatch, runs it and compares it with the
/// interpreter. NaN (fully masked rows) must be NaN in both.
fn check_attention(
    shape: (usize, usize, usize, usize, usize),
    mask: AttnMask,
    k_transposed: bool,
    schedule: Option<Schedule>,
) {
    check_attention_on(shape, mask, k_transposed, schedule, DeviceLimits::desktop());
}

/// [`check_attention`] compiled for `target` (a schedule valid only with more workgroup memory
/// than `desktop` allows at head dim 64 still runs on lavapipe at a small head dim). Returns
/// the attention kernel's schedule as it ran (its variant's, where the adapter took one).
fn check_attention_on(
    shape: (usize, usize, usize, usize, usize),
    mask: AttnMask,
    k_transposed: bool,
    schedule: Option<Schedule>,
    target: DeviceLimits,
) -> String {
    let (b, sq, sk, d, dv) = shape;
    let (g, inputs) = attention_graph(shape, mask, k_transposed);
    let tuning = schedule.map(|s| {
        let mut db = TuningDb::default();
        let c = |v: usize| Dim::c(v as i64);
        let key = tuning_key(&KernelBody::Attention {
            batch: c(b),
            sq: c(sq),
            sk: c(sk),
            d,
            dv,
        });
        db.force(key, s);
        db
    });
    // Opt-level 3: level 2 fuses these short constant sequences only from 128 keys.
    let opts = CompileOptions {
        target,
        tuning,
        opt_level: 3,
        ..Default::default()
    };
    let model = Model {
        name: "attention".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let what = format!("{shape:?} {mask:?} k_transposed={k_transposed} {schedule:?}");
    let dir = tempfile::tempdir().unwrap();
    let m = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{what}: {e}"));
    // Keys split over workgroups add the combine kernel's dispatch.
    let dispatches = if m.kernels[0].schedule.contains("slices=") {
        2
    } else {
        1
    };
    assert_eq!(m.programs[0].dispatches.len(), dispatches, "{what}: dispatches");
    assert!(
        m.kernels[0].schedule.starts_with("attention("),
        "{what}: {}",
        m.kernels[0].schedule
    );
    if let Some(s) = schedule {
        // An `sg` schedule's kernel is its form without subgroups, with the subgroup form as
        // its one variant.
        let base = match s {
            Schedule::Attention(p) if p.sg => Schedule::Attention(AttentionParams { sg: false, ..p }),
            s => s,
        };
        assert_eq!(m.kernels[0].schedule, base.to_string(), "the record's schedule is used");
        let variants: Vec<String> = m.kernels[0].variants.iter().map(|v| v.schedule.clone()).collect();
        let want: Vec<String> = (base != s).then(|| s.to_string()).into_iter().collect();
        assert_eq!(variants, want, "{what}: variants");
    }
    let want = kiln::ir::interp::evaluate(&model.graph, &inputs).unwrap()["o"].to_f32();
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let mut sess = session(&bundle);
    let host: HashMap<_, _> = inputs
        .iter()
        .map(|(n, t)| (n.clone(), to_host(t, kiln::abi::ElemType::F32)))
        .collect();
    let got = sess.run("run", &host).unwrap()[0].1.to_f32();
    // Again in the same session with V negated, which negates every output exactly (the
    // softmax weights do not change): nothing a run leaves behind (partial results of key
    // slices) may leak into the next.
    let mut negated = host.clone();
    let v: Vec<f32> = inputs["v"].to_f32().iter().map(|x| -x).collect();
    negated.insert(
        "v".into(),
        to_host(&Tensor::f32(inputs["v"].shape.clone(), v), kiln::abi::ElemType::F32),
    );
    let again = sess.run("run", &negated).unwrap()[0].1.to_f32();
    let bits = |x: f32| if x.is_nan() { f32::NAN.to_bits() } else { x.to_bits() };
    assert_eq!(
        got.iter().map(|x| bits(-x)).collect::<Vec<_>>(),
        again.iter().map(|x| bits(*x)).collect::<Vec<_>>(),
        "{what}: a second run in the session, V negated"
    );
    assert_eq!(got.len(), b * sq * dv, "{what}");
    let nan: Vec<bool> = want.iter().map(|x| x.is_nan()).collect();
    assert_eq!(
        got.iter().map(|x| x.is_nan()).collect::<Vec<_>>(),
        nan,
        "{what}: NaN exactly where the interpreter has NaN"
    );
    assert_eq!(nan.iter().any(|&x| x), mask == AttnMask::FullyMasked, "{what}");
    let keep = |v: &[f32]| {
        v.iter()
            .zip(&nan)
            .filter(|(_, &n)| !n)
            .map(|(x, _)| *x)
            .collect::<Vec<_>>()
    };
    let err = rel_l2(&keep(&got), &keep(&want));
    assert!(err < 2e-5, "{what}: relative L2 error {err:e}");
    sess.manifest().kernels[0].schedule.clone()
}

/// Prefill attention (more query rows than the decode schedule takes) is one flash-attention
/// kernel (opt-level 3; level 2 from 256 or symbolic keys), tiled over query rows and key blocks with an online softmax, and
/// matches the interpreter: with and without a causal mask, a mask that hides whole rows
/// (NaN, as softmax gives), keys read through a transpose or directly, a grouped-query shape
/// (21 query rows, as 3 heads x 7 tokens fold into, over one KV head), sizes that are not
/// multiples of the tiles, one key, odd head dims, and every candidate of the kind's space on
/// one ragged shape (head dim 8 for the scores, 48 for the values: 1 to 3 vec4 channel groups
/// per thread; small enough that lavapipe compiles the unrolled kernels quickly).
///
/// Tolerance: relative L2 < 2e-5, as for the decode schedule: each output is a convex
/// combination of values in [-1, 1] with weights from f32 exps of scores of magnitude < 8,
/// rescaled a few times by the online softmax (each a relative error of a few 2^-24).
#[test]
fn flash_attention_matches_the_interpreter() {
    for (shape, mask, kt) in [
        ((2, 40, 40, 64, 64), AttnMask::None, true),
        ((2, 40, 40, 64, 64), AttnMask::Causal, true),
        ((3, 33, 70, 32, 32), AttnMask::Causal, false),
        ((1, 21, 29, 64, 64), AttnMask::Causal, true),
        ((2, 17, 50, 8, 8), AttnMask::FullyMasked, true),
        ((2, 12, 1, 5, 3), AttnMask::None, true),
        ((1, 9, 9, 7, 13), AttnMask::Causal, true),
    ] {
        check_attention(shape, mask, kt, None);
    }
    let candidates = space::attention(&DeviceLimits::desktop());
    assert!(candidates.len() >= 10);
    // Each unsliced candidate (the sliced ones differ only in the key range and the combine,
    // checked below).
    for s in candidates {
        if !matches!(s, Schedule::Attention(p) if p.slices > 1) {
            check_attention((1, 37, 45, 8, 48), AttnMask::Causal, true, Some(s));
        }
    }
    // Keys split over 2 or 4 workgroups and combined: slices of whole blocks with a partial
    // last block, an empty last slice (130 keys in slices of 64), rows hidden entirely (NaN
    // through the combine), keys read directly and through a transpose.
    let sliced = |rows, bk, splits, slices| {
        Some(Schedule::Attention(AttentionParams {
            slices,
            ..AttentionParams::per_row(rows, bk, splits)
        }))
    };
    check_attention((2, 37, 300, 8, 48), AttnMask::Causal, true, sliced(32, 16, 2, 4));
    check_attention((2, 40, 300, 64, 64), AttnMask::None, false, sliced(64, 32, 4, 2));
    check_attention((1, 17, 130, 8, 8), AttnMask::FullyMasked, true, sliced(32, 32, 4, 4));
    // The register-tiled kernel over key slices (the same three cases).
    let tiled = |rows, bk, splits, slices| {
        Some(Schedule::Attention(AttentionParams {
            slices,
            ..AttentionParams::tiled(rows, bk, splits)
        }))
    };
    check_attention((2, 37, 300, 8, 48), AttnMask::Causal, true, tiled(32, 32, 8, 4));
    check_attention((2, 40, 300, 64, 64), AttnMask::None, false, tiled(32, 32, 8, 2));
    check_attention((1, 17, 130, 8, 8), AttnMask::FullyMasked, true, tiled(16, 32, 8, 4));
    // Whole key blocks in every slice (a constant key count, a multiple of the block): the
    // K and V loads carry no key bounds checks (`codegen::whole_key_blocks`); per-row and
    // register-tiled kernels, unsplit and over 4 slices, masked and not.
    check_attention((2, 40, 256, 16, 16), AttnMask::Causal, true, sliced(32, 32, 4, 4));
    check_attention((2, 40, 256, 16, 16), AttnMask::FullyMasked, false, tiled(32, 32, 8, 4));
    check_attention((2, 33, 128, 8, 48), AttnMask::None, true, tiled(32, 32, 8, 1));
    // The H200's members of 16 threads per row group (48 KiB of workgroup memory at head dim
    // 64), at head dims that fit lavapipe: fewer value channel groups than threads (8), a
    // ragged 48, keys read directly, 8 keys per thread, a grouped-query shape.
    let h200 = DeviceLimits::h200;
    let cases = [
        ((2, 37, 300, 8, 48), AttnMask::Causal, true, tiled(32, 64, 16, 1)),
        ((1, 21, 29, 24, 24), AttnMask::Causal, true, tiled(32, 64, 16, 2)),
        ((2, 40, 70, 16, 16), AttnMask::None, false, tiled(16, 64, 16, 1)),
        ((1, 17, 130, 8, 8), AttnMask::FullyMasked, true, tiled(64, 32, 4, 1)),
    ];
    for (shape, mask, kt, s) in cases {
        check_attention_on(shape, mask, kt, s, h200());
    }
    // The probabilities in their own block (`pbuf`, three barriers per key block), and with
    // the subgroup variant (`sg`: the row maxima and sums by shuffles, two barriers): the
    // cases above (16 threads per row group included) and the 64-row tile of 8 threads.
    let own = |rows, bk, splits, slices, sg| {
        Some(Schedule::Attention(AttentionParams {
            slices,
            pbuf: true,
            sg,
            ..AttentionParams::tiled(rows, bk, splits)
        }))
    };
    // The value block in two halves (`vhalf`: 64-key blocks, probabilities over K, six
    // barriers per block), with and without the subgroup variant.
    let halves = |rows, bk, splits, slices, sg| {
        Some(Schedule::Attention(AttentionParams {
            slices,
            vhalf: true,
            sg,
            ..AttentionParams::tiled(rows, bk, splits)
        }))
    };
    let mut ran = Vec::new();
    for sg in [false, true] {
        let cases = [
            ((2, 37, 300, 8, 48), AttnMask::Causal, true, own(32, 32, 8, 4, sg)),
            ((2, 40, 300, 16, 16), AttnMask::None, false, own(64, 32, 8, 2, sg)),
            ((1, 17, 130, 8, 8), AttnMask::FullyMasked, true, own(16, 32, 8, 4, sg)),
            ((2, 37, 300, 8, 48), AttnMask::Causal, true, own(16, 64, 16, 1, sg)),
            ((1, 21, 29, 24, 24), AttnMask::Causal, true, own(64, 32, 8, 1, sg)),
            ((2, 40, 70, 16, 16), AttnMask::None, false, own(64, 32, 4, 1, sg)),
            ((2, 37, 300, 8, 48), AttnMask::Causal, true, halves(64, 64, 8, 4, sg)),
            ((2, 40, 300, 16, 16), AttnMask::None, false, halves(64, 64, 8, 1, sg)),
            (
                (1, 17, 130, 8, 8),
                AttnMask::FullyMasked,
                true,
                halves(64, 64, 8, 2, sg),
            ),
            ((1, 21, 29, 24, 24), AttnMask::Causal, true, halves(32, 64, 16, 1, sg)),
            ((2, 40, 300, 16, 16), AttnMask::None, true, halves(64, 64, 16, 4, sg)),
        ];
        for (shape, mask, kt, s) in cases {
            ran.push(check_attention_on(shape, mask, kt, s, h200()));
        }
    }
    // Where the adapter offers subgroups of at least 8 lanes (lavapipe does), the variants of
    // row groups of 4 and 8 threads ran.
    let need = kiln::abi::VariantRequirements {
        features: vec!["subgroups".into()],
        min_subgroup_size: Some(8),
        ..Default::default()
    };
    if kiln::runtime::Runtime::new()
        .unwrap()
        .variant_unsupported(&need)
        .is_none()
    {
        assert!(ran.iter().filter(|s| s.ends_with(", sg)")).count() >= 5, "{ran:?}");
    }
}

/// Flash attention split over key slices (`AttentionParams::slices`) over a symbolic prompt
/// length `t` (an LLM prefill: `t` query rows over `t` keys, a causal mask input), forced by
/// a tuning record for the symbolic shape (the per-row kernel and the register-tiled one): one
/// kernel plus the combine, against the interpreter for 1, 37 and 300 tokens (one key: all
/// slices but the first empty; a partial block; four slices of whole blocks). Tolerance as in
/// the test above.
#[test]
fn sliced_flash_attention_over_a_symbolic_prompt() {
    let (b, d, dv) = (2usize, 8usize, 12usize);
    let t = Dim::sym("t");
    let c = |v: usize| Dim::c(v as i64);
    let mut g = Graph::new();
    let ty = |shape: Vec<Dim>| TensorType {
        dtype: DType::F32,
        shape,
    };
    let q = g.add_input("q", ty(vec![c(b), t.clone(), c(d)]));
    let k = g.add_input("k", ty(vec![c(b), t.clone(), c(d)]));
    let v = g.add_input("v", ty(vec![c(b), t.clone(), c(dv)]));
    let mask = g.add_input("mask", ty(vec![t.clone(), t.clone()]));
    let kt = g.add("kt", Op::Transpose { perm: vec![0, 2, 1] }, &[k]).unwrap();
    masked_attention_output(&mut g, [q, kt, v, mask], 0.125);
    // The per-row kernel and the register-tiled one (4 slices of 32-key blocks; 2 slices of
    // 16-row tiles).
    let tiled = |rows, bk, splits, slices| AttentionParams {
        slices,
        ..AttentionParams::tiled(rows, bk, splits)
    };
    for p in [
        AttentionParams {
            slices: 4,
            ..AttentionParams::per_row(32, 16, 2)
        },
        tiled(32, 32, 8, 4),
        tiled(16, 32, 8, 2),
    ] {
        let schedule = Schedule::Attention(p);
        let db = TuningDb::forcing(
            tuning_key(&KernelBody::Attention {
                batch: c(b),
                sq: t.clone(),
                sk: t.clone(),
                d,
                dv,
            }),
            schedule,
        );
        let opts = CompileOptions {
            target: DeviceLimits::desktop(),
            tuning: Some(db),
            opt_level: 3,
            ..Default::default()
        };
        let model = Model {
            name: "prompt_attention".into(),
            graph: g.clone(),
            io_dtypes: BTreeMap::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let m = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
        let schedules: Vec<&str> = m.kernels.iter().map(|k| k.schedule.as_str()).collect();
        let want = schedule.to_string();
        assert_eq!(schedules, [want.as_str(), want.as_str()], "the kernel and its combine");
        let bundle = Bundle::load(dir.path().join("b")).unwrap();
        for n in [1usize, 37, 300] {
            let mv: Vec<f32> = (0..n * n)
                .map(|e| {
                    let (i, j) = (e / n, e % n);
                    if j > i {
                        f32::NEG_INFINITY
                    } else {
                        (e % 7) as f32 * 0.1
                    }
                })
                .collect();
            let inputs = HashMap::from([
                ("q".to_string(), Tensor::f32(vec![b, n, d], values(b * n * d, 41))),
                ("k".to_string(), Tensor::f32(vec![b, n, d], values(b * n * d, 42))),
                ("v".to_string(), Tensor::f32(vec![b, n, dv], values(b * n * dv, 43))),
                ("mask".to_string(), Tensor::f32(vec![n, n], mv)),
            ]);
            let want = kiln::ir::interp::evaluate(&model.graph, &inputs).unwrap()["o"].to_f32();
            let mut sess = session(&bundle);
            let host: HashMap<_, _> = inputs
                .iter()
                .map(|(n, t)| (n.clone(), to_host(t, kiln::abi::ElemType::F32)))
                .collect();
            let got = sess.run("run", &host).unwrap()[0].1.to_f32();
            assert_eq!(got.len(), b * n * dv);
            let err = rel_l2(&got, &want);
            assert!(err < 2e-5, "{n} tokens: relative L2 error {err:e}");
        }
    }
}

#[test]
fn sibling_kernels_of_one_size_are_one_dispatch_with_two_outputs() {
    // Two users of `x` with 24 elements each but different shapes (a transposed read plus a
    // second input, and a plain negation): one kernel writing both outputs.
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[4, 6]));
    let y = g.add_input("y", TensorType::new(DType::F32, &[6, 4]));
    let xt = g.add("xt", Op::Transpose { perm: vec![1, 0] }, &[x]).unwrap();
    let a = g.add("a", Op::Binary(BinaryOp::Add), &[xt, y]).unwrap();
    let b = g.add("b", Op::Unary(UnaryOp::Neg), &[x]).unwrap();
    g.add_output("a", a);
    g.add_output("b", b);
    let model = Model {
        name: "siblings".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let man =
        compile_to_dir(&model, &CompileOptions::default(), &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
    let dispatches = &man.programs[0].dispatches;
    assert_eq!(dispatches.len(), 1, "one dispatch for both siblings");
    let written = man.kernels[dispatches[0].kernel]
        .bindings
        .iter()
        .filter(|b| **b == kiln::abi::BindingKind::Storage)
        .count();
    assert_eq!(written, 2, "one storage binding per output");
    let inputs = HashMap::from([
        ("x".to_string(), Tensor::f32(vec![4, 6], values(24, 3))),
        ("y".to_string(), Tensor::f32(vec![6, 4], values(24, 4))),
    ]);
    let want = kiln::ir::interp::evaluate(&model.graph, &inputs).unwrap();
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let mut sess = session(&bundle);
    let host: HashMap<_, _> = inputs
        .iter()
        .map(|(n, t)| (n.clone(), to_host(t, kiln::abi::ElemType::F32)))
        .collect();
    let out: HashMap<_, _> = sess.run("run", &host).unwrap().into_iter().collect();
    for name in ["a", "b"] {
        let w: Vec<f32> = want[name].to_f64().iter().map(|&v| v as f32).collect();
        // One f32 add or negation per element: exact.
        assert_eq!(out[name].to_f32(), w, "output {name}");
    }
}

/// Elementwise kernels with 4-vector loads and stores (`injective(.., vec4)`): `x * relu(x) + b`
/// with `x` read at the output's own index (loaded as 4-vectors) and `b` broadcast along rows
/// (read element by element). The default takes 4-vectors for a large f32 output (4
/// 4-vectors per thread) and scalars for a small one; a tuning record asks for 4-vectors at a
/// small size (1 per thread); an output that is not a multiple of 4 stays scalar. GPU equals
/// the interpreter exactly: the same f32 operations per element.
#[test]
fn vec4_elementwise_kernels_match_the_interpreter() {
    let vec4_record = |wg: u32, ept: u32| {
        Schedule::Injective(kiln::schedules::InjectiveParams {
            workgroup_size: wg,
            elems_per_thread: ept,
            vector: 4,
        })
    };
    let cases = [
        (1024, 1100, None, true),
        (37, 64, None, false),
        (37, 64, Some(vec4_record(64, 1)), true),
        (5, 7, None, false),
    ];
    for (rows, cols, record, vec4) in cases {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[rows, cols]));
        let b = g.add_const("b", Tensor::f32(vec![cols], values(cols, 31)));
        let s = g.add("s", Op::Unary(UnaryOp::Relu), &[x]).unwrap();
        let xs = g.add("xs", Op::Binary(BinaryOp::Mul), &[x, s]).unwrap();
        let y = g.add("y", Op::Binary(BinaryOp::Add), &[xs, b]).unwrap();
        g.add_output("y", y);
        let model = Model {
            name: "vec4".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        };
        let mut opts = CompileOptions::default();
        if let Some(schedule) = record {
            let key = format!("injective:{rows}x{cols}");
            let db = TuningDb::forcing(key, schedule);
            opts.tuning = Some(db);
        }
        let dir = tempfile::tempdir().unwrap();
        let m = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap();
        assert_eq!(m.kernels.len(), 1, "{:?}", m.kernels);
        let k = &m.kernels[0];
        assert_eq!(k.schedule.ends_with("vec4)"), vec4, "{rows}x{cols}: {}", k.schedule);
        let wgsl = std::fs::read_to_string(dir.path().join("b").join(&k.file)).unwrap();
        assert_eq!(wgsl.contains("let xv0 = in0[i4];"), vec4, "x is loaded as 4-vectors");

        let bundle = Bundle::load(dir.path().join("b")).unwrap();
        let mut sess = session(&bundle);
        let xt = Tensor::f32(
            vec![rows, cols],
            values(rows * cols, 32).iter().map(|v| v * 6.0).collect(),
        );
        let want = kiln::ir::interp::evaluate(&model.graph, &HashMap::from([("x".to_string(), xt.clone())]))
            .expect("interpreter");
        let host = HashMap::from([("x".to_string(), to_host(&xt, kiln::abi::ElemType::F32))]);
        let out: HashMap<_, _> = sess.run("run", &host).unwrap().into_iter().collect();
        let (got, want) = (out["y"].to_f32(), want["y"].to_f32());
        let bad = got
            .iter()
            .zip(&want)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(bad, 0, "{rows}x{cols}: {bad} of {} elements differ", got.len());
    }
}

/// `--precision f16` gives a flash-attention kernel a cooperative-matrix variant (Q, K, V and
/// the probabilities as f16, f32 accumulation), listed ahead of its subgroup variant. Where
/// the adapter runs it (the H200: this test is run there with the test binary carried), it
/// must run, and match a naive f64 attention of the f16-rounded q, k and v; elsewhere
/// (lavapipe) the f32 kernel runs and must match the same reference.
///
/// Shapes: 100 rows and keys at head dim 32 (a partial row tile, a partial key block; not
/// split), 512 at head dim 64 (4 key slices whose partial rows the base kernel's combine
/// adds), and 300 with a causal mask (whole key blocks and slices masked for the first rows:
/// they must add nothing, not NaN).
///
/// Tolerance: max |error| < 2e-3. Each output is a convex combination of values in [-1, 1];
/// against the f16-rounded operands the variant's error is the f16 rounding of the
/// unnormalized probabilities (relative 2^-11, about 4.9e-4, per weight) plus f32 roundings;
/// a wrong key, slice or rescale is off by O(0.01) or more.
#[test]
fn coop_attention_variant_matches_the_reference() {
    for (heads, seq, d, causal) in [(2, 100, 32, false), (2, 512, 64, false), (3, 300, 64, true)] {
        coop_attention_case(heads, seq, d, causal);
    }
}

fn coop_attention_case(heads: usize, seq: usize, d: usize, causal: bool) {
    let shape = [1, heads, seq, d];
    let mut g = Graph::new();
    let q = g.add_input("q", TensorType::new(DType::F32, &shape));
    let k = g.add_input("k", TensorType::new(DType::F32, &shape));
    let v = g.add_input("v", TensorType::new(DType::F32, &shape));
    let kt = g.add("kt", Op::Transpose { perm: vec![0, 1, 3, 2] }, &[k]).unwrap();
    let s = g.add("s", Op::MatMul, &[q, kt]).unwrap();
    let scale = 1.0 / (d as f32).sqrt();
    let sc = g.add_const("scale", Tensor::f32(vec![1], vec![scale]));
    let mut ss = g.add("ss", Op::Binary(BinaryOp::Mul), &[s, sc]).unwrap();
    if causal {
        let mask: Vec<f32> = (0..seq * seq)
            .map(|e| if e % seq > e / seq { f32::NEG_INFINITY } else { 0.0 })
            .collect();
        let m = g.add_const("mask", Tensor::f32(vec![seq, seq], mask));
        ss = g.add("masked", Op::Binary(BinaryOp::Add), &[ss, m]).unwrap();
    }
    let p = g.add("p", Op::Softmax { axis: 3, log: false }, &[ss]).unwrap();
    let o = g.add("o", Op::MatMul, &[p, v]).unwrap();
    g.add_output("o", o);
    let model = Model {
        name: "attention".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    // The H200's profile where the adapter has its 48 KiB of workgroup memory (the default
    // variant there), else `desktop` (lavapipe's 32 KiB), where no default variant fits and a
    // record asks for 2 subgroups of 32-key blocks.
    let big = shared_runtime().adapter_limits().max_compute_workgroup_storage_size >= 48 * 1024;
    let tuning = (!big).then(|| {
        let key = tuning_key(&KernelBody::Attention {
            batch: Dim::product(&[Dim::c(1), Dim::c(heads as i64)]),
            sq: Dim::c(seq as i64),
            sk: Dim::c(seq as i64),
            d,
            dv: d,
        });
        let p = kiln::schedules::CoopAttentionParams {
            subgroups: 2,
            bk: 32,
            slices: 1,
        };
        TuningDb::forcing(format!("coop {key}"), Schedule::CoopAttention(p))
    });
    let opts = CompileOptions {
        opt_level: 3,
        target: if big {
            DeviceLimits::h200()
        } else {
            DeviceLimits::desktop()
        },
        precision: kiln::compiler::Precision::F16,
        tuning,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let m = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
    let k0 = &m.kernels[0];
    assert!(k0.variants[0].schedule.starts_with("coop_attention("), "{k0:?}");
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let runtime = shared_runtime();
    let coop = runtime.variant_unsupported(&k0.variants[0].requires).is_none();
    assert_eq!(runtime.choose_variants(bundle.manifest())[0] == Some(0), coop);
    let mut sess = session(&bundle);
    let host_of = |t: &Tensor| to_host(t, kiln::abi::ElemType::F32);
    let (qt, kt, vt) = (
        Tensor::f32(shape.to_vec(), values(heads * seq * d, 31)),
        Tensor::f32(shape.to_vec(), values(heads * seq * d, 32)),
        Tensor::f32(shape.to_vec(), values(heads * seq * d, 33)),
    );
    let host = HashMap::from([
        ("q".to_string(), host_of(&qt)),
        ("k".to_string(), host_of(&kt)),
        ("v".to_string(), host_of(&vt)),
    ]);
    let out: HashMap<_, _> = sess.run("run", &host).unwrap().into_iter().collect();
    let got = out["o"].to_f32();
    let h = |t: &Tensor| -> Vec<f64> { t.to_f64().iter().map(|x| half::f16::from_f64(*x).to_f64()).collect() };
    let (qv, kv, vv) = (h(&qt), h(&kt), h(&vt));
    let mut err = 0f64;
    for row in 0..heads * seq {
        let (head, r) = (row / seq, row % seq);
        let kb = head * seq * d;
        let scores: Vec<f64> = (0..seq)
            .map(|j| {
                if causal && j > r {
                    return f64::NEG_INFINITY;
                }
                (0..d).map(|c| qv[row * d + c] * kv[kb + j * d + c]).sum::<f64>() * scale as f64
            })
            .collect();
        let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let p: Vec<f64> = scores.iter().map(|x| (x - mx).exp()).collect();
        let sum: f64 = p.iter().sum();
        for c in 0..d {
            let want = (0..seq).map(|j| p[j] * vv[kb + j * d + c]).sum::<f64>() / sum;
            err = err.max((got[row * d + c] as f64 - want).abs());
        }
    }
    let ran = if coop {
        "cooperative-matrix variant"
    } else {
        "f32 kernel (no cooperative matrices here)"
    };
    eprintln!("coop attention {heads}x{seq}x{d} causal={causal}: {ran}, max |err| {err:.2e}");
    assert!(
        err < 2e-3,
        "{heads}x{seq}x{d} causal={causal} ({ran}): max |error| {err:e}"
    );
}

/// `--precision f16` gives a GEMM a cooperative-matrix variant. Where the adapter runs it (the
/// H200: this test is run there with the test binary carried) it must run and match an f64
/// product of the f16-rounded operands; elsewhere (lavapipe) the f32 kernel runs and must match
/// the f64 product of the f32 operands. Shapes: whole blocks and K-steps (fragments stored straight to C, operand
/// loads without bounds checks), the same with a bias epilogue (through the scratch fragment),
/// and partial blocks and a partial K-step (bounds-checked loads and stores).
///
/// Tolerance: max |error| < 1e-3. Each output sums at most 160 products of f16 values in
/// [-1, 1] in f32 (rounding well under 1e-5); a wrong fragment, row or K-step is off by O(0.1).
#[test]
fn coop_gemm_variant_matches_the_reference() {
    for (m, k, n, bias) in [
        (256, 128, 256, false),
        (256, 128, 256, true),
        (200, 100, 136, true),
        (72, 160, 40, false),
    ] {
        coop_gemm_case(m, k, n, bias);
    }
}

fn coop_gemm_case(m: usize, k: usize, n: usize, bias: bool) {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[m, k]));
    let wt = Tensor::f32(vec![k, n], values(k * n, 41));
    let w = g.add_const("w", wt.clone());
    let mut y = g.add("mm", Op::MatMul, &[x, w]).unwrap();
    let bt = Tensor::f32(vec![n], values(n, 42));
    if bias {
        let b = g.add_const("bias", bt.clone());
        y = g.add("add", Op::Binary(BinaryOp::Add), &[y, b]).unwrap();
    }
    g.add_output("y", y);
    let model = Model {
        name: "gemm".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let opts = f16_options();
    let dir = tempfile::tempdir().unwrap();
    let man = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
    let k0 = &man.kernels[0];
    assert!(k0.variants[0].schedule.starts_with("coop_gemm("), "{k0:?}");
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let runtime = shared_runtime();
    let coop = runtime.variant_unsupported(&k0.variants[0].requires).is_none();
    assert_eq!(runtime.choose_variants(bundle.manifest())[0] == Some(0), coop);
    let mut sess = session(&bundle);
    let xt = Tensor::f32(vec![m, k], values(m * k, 43));
    let host = HashMap::from([("x".to_string(), to_host(&xt, kiln::abi::ElemType::F32))]);
    let out: HashMap<_, _> = sess.run("run", &host).unwrap().into_iter().collect();
    let got = out["y"].to_f32();
    // The variant rounds both operands to f16; the f32 kernel does not.
    let h = |t: &Tensor| -> Vec<f64> {
        let v = t.to_f64();
        if coop {
            v.iter().map(|x| half::f16::from_f64(*x).to_f64()).collect()
        } else {
            v
        }
    };
    let (xv, wv, bv) = (h(&xt), h(&wt), bt.to_f64());
    let mut err = 0f64;
    for i in 0..m {
        for j in 0..n {
            let mut want: f64 = (0..k).map(|l| xv[i * k + l] * wv[l * n + j]).sum();
            if bias {
                want += bv[j];
            }
            err = err.max((f64::from(got[i * n + j]) - want).abs());
        }
    }
    let ran = if coop {
        format!("cooperative-matrix variant {}", k0.variants[0].schedule)
    } else {
        "f32 kernel (no cooperative matrices here)".to_string()
    };
    eprintln!("coop gemm {m}x{k}x{n} bias={bias}: {ran}, max |err| {err:.2e}");
    assert!(err < 1e-3, "{m}x{k}x{n} bias={bias} ({ran}): max |error| {err:e}");
}

/// f16 inputs and weights read only as plain operands of tiled GEMMs stay f16 pairs on the GPU
/// (`half_storage`): the manifest says so (input storage, weight dtype, buffers of half the
/// bytes), and the products match the reference, through the f32 kernels' unpacking loads
/// (vec4 and scalar paths) here and the cooperative-matrix variant's 8-value loads where the
/// adapter has one. An f16 input that another op also reads keeps f32 storage.
///
/// Tolerance: |error| < 1e-3 + 2^-10 |y|. The operands are f16 values, so every kernel
/// multiplies the same numbers and sums at most 100 products in f32 (well under 1e-4); the
/// output is an f16 tensor, rounded to f16 on the way back (2^-11 relative); a misread pair
/// or word is off by O(0.1).
#[test]
fn f16_operands_stay_f16_pairs_and_match_the_reference() {
    let case = |a, b, weight, shared, a_half, b_half| F16Case {
        a,
        b,
        weight,
        shared,
        a_half,
        b_half,
    };
    for c in [
        case(&[64, 96], &[96, 80], true, false, true, true),
        case(&[50, 100], &[100, 72], true, false, true, true),
        case(&[33, 40], &[40, 36], true, false, true, true),
        case(&[20, 30], &[30, 12], true, false, true, true),
        case(&[24, 64], &[64, 40], true, true, false, true),
        case(&[2, 48, 64], &[2, 64, 40], false, false, true, true),
        // One row: an f16 product takes the tiled kernel (GEMV schedules are for f32 products).
        case(&[1, 64], &[64, 48], true, false, true, true),
    ] {
        f16_operand_case(&c);
    }
}

/// One product of [`f16_operands_stay_f16_pairs_and_match_the_reference`]: `a x b`, `b` a
/// weight or an input, `a` also read by a `Neg` when `shared`, and which operands must be
/// stored as f16 pairs.
struct F16Case {
    a: &'static [usize],
    b: &'static [usize],
    weight: bool,
    shared: bool,
    a_half: bool,
    b_half: bool,
}

fn f16_operand_case(c: &F16Case) {
    let (sa, sb, weight, shared, a_half, b_half) = (c.a, c.b, c.weight, c.shared, c.a_half, c.b_half);
    let f16 = |shape: &[usize], seed| {
        let v: Vec<f64> = values(shape.iter().product(), seed)
            .iter()
            .map(|&x| f64::from(x))
            .collect();
        Tensor::from_f64(DType::F16, shape.to_vec(), &v)
    };
    let (at, bt) = (f16(sa, 51), f16(sb, 52));
    let mut g = Graph::new();
    let a = g.add_input("a", TensorType::new(DType::F16, sa));
    let b = if weight {
        g.add_const("w", bt.clone())
    } else {
        g.add_input("b", TensorType::new(DType::F16, sb))
    };
    let y = g.add("mm", Op::MatMul, &[a, b]).unwrap();
    g.add_output("y", y);
    if shared {
        let neg = g.add("neg", Op::Unary(UnaryOp::Neg), &[a]).unwrap();
        g.add_output("neg", neg);
    }
    let model = Model {
        name: "f16 gemm".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let opts = f16_options();
    let what = format!("{sa:?} x {sb:?} (weight {weight}, shared {shared})");
    let dir = tempfile::tempdir().unwrap();
    let man = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{what}: {e}"));
    // Storage and buffer sizes of the operands.
    let half_bytes = |n: usize| (n.div_ceil(2) * 4) as i64;
    let expect = |half: bool, n: usize| {
        if half {
            (kiln::abi::ElemType::F16, half_bytes(n))
        } else {
            (kiln::abi::ElemType::F32, 4 * n as i64)
        }
    };
    let a_spec = &man.inputs[0];
    let (a_storage, a_size) = expect(a_half, at.numel());
    assert_eq!(a_spec.storage, a_storage, "{what}: input a");
    assert_eq!(
        man.buffers[a_spec.buffer].size.as_const(),
        Some(a_size),
        "{what}: a's buffer"
    );
    let (b_dtype, b_size) = expect(b_half, bt.numel());
    let b_buffer = if weight {
        assert_eq!(man.weights[0].dtype, b_dtype, "{what}: weight w");
        man.weights[0].buffer
    } else {
        assert_eq!(man.inputs[1].storage, b_dtype, "{what}: input b");
        man.inputs[1].buffer
    };
    assert_eq!(
        man.buffers[b_buffer].size.as_const(),
        Some(b_size),
        "{what}: b's buffer"
    );
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let runtime = shared_runtime();
    let chosen = runtime.choose_variants(bundle.manifest());
    let kernel = man
        .kernels
        .iter()
        .position(|k| k.name.contains("mm") || k.schedule.contains("gemm"));
    let ran = match kernel.and_then(|i| chosen[i].map(|v| (i, v))) {
        Some((i, v)) => man.kernels[i].variants[v].schedule.clone(),
        None => kernel.map_or("?".into(), |i| man.kernels[i].schedule.clone()),
    };
    let mut sess = session(&bundle);
    let mut host = HashMap::from([("a".to_string(), to_host(&at, kiln::abi::ElemType::F16))]);
    if !weight {
        host.insert("b".to_string(), to_host(&bt, kiln::abi::ElemType::F16));
    }
    let out: HashMap<_, _> = sess.run("run", &host).unwrap().into_iter().collect();
    let got = out["y"].to_f32();
    let (shape, want) = naive_matmul(&at, &bt);
    assert_eq!(out["y"].shape, shape, "{what}");
    let mut worst = 0f64;
    for (g, w) in got.iter().zip(&want) {
        let (g, w) = (f64::from(*g), f64::from(*w));
        worst = worst.max((g - w).abs() / (1e-3 + w.abs() / 1024.0));
    }
    eprintln!("f16 operands {what}: {ran}, worst error {worst:.3} of the tolerance");
    assert!(worst < 1.0, "{what} ({ran}): error {worst} times the tolerance");
    if shared {
        let neg = out["neg"].to_f32();
        let av = at.to_f64();
        assert!(neg.iter().zip(&av).all(|(g, a)| f64::from(*g) == -a), "{what}: neg");
    }
}

/// An f16 MLP (f16 input and weights, `relu(x·W1 + b1)·W2`, as an fp16 ONNX model has it)
/// against the interpreter: the bias and ReLU are the first GEMM's epilogue (f16 products
/// take epilogues as f32 ones do), W1, W2 and x are f16 pairs, b1 (read by the epilogue) and the
/// hidden activation f32 words, and the cooperative-matrix variants run where the adapter has
/// them.
///
/// Tolerance: relative L2 < 2e-3. The interpreter rounds the hidden activation and the result
/// to f16 (2^-11 relative each) where the f32 kernels keep the hidden activation in f32; sums
/// of at most 256 products add far less; a wrong pair, bias or fragment is off by O(0.1).
#[test]
fn an_f16_mlp_matches_the_interpreter() {
    let f16 = |shape: Vec<usize>, seed, scale: f64| {
        let v: Vec<f64> = values(shape.iter().product(), seed)
            .iter()
            .map(|&x| f64::from(x) * scale)
            .collect();
        Tensor::from_f64(DType::F16, shape, &v)
    };
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F16, &[64, 128]));
    let w1 = g.add_const("w1", f16(vec![128, 256], 61, 0.1));
    let b1 = g.add_const("b1", f16(vec![256], 62, 0.1));
    let w2 = g.add_const("w2", f16(vec![256, 128], 63, 0.1));
    let h = g.add("mm1", Op::MatMul, &[x, w1]).unwrap();
    let h = g.add("add", Op::Binary(BinaryOp::Add), &[h, b1]).unwrap();
    let h = g.add("relu", Op::Unary(UnaryOp::Relu), &[h]).unwrap();
    let y = g.add("mm2", Op::MatMul, &[h, w2]).unwrap();
    g.add_output("y", y);
    let xt = f16(vec![64, 128], 64, 1.0);
    let reference =
        kiln::ir::interp::evaluate(&g, &HashMap::from([("x".to_string(), xt.clone())])).unwrap()["y"].clone();
    let model = Model {
        name: "f16 mlp".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let opts = f16_options();
    let dir = tempfile::tempdir().unwrap();
    let man = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        man.kernels.len(),
        2,
        "the bias and ReLU are the first GEMM's epilogue: {:?}",
        man.kernels
    );
    assert_eq!(man.inputs[0].storage, kiln::abi::ElemType::F16);
    let dtypes: BTreeMap<_, _> = man.weights.iter().map(|w| (w.name.as_str(), w.dtype)).collect();
    let (h, w) = (kiln::abi::ElemType::F16, kiln::abi::ElemType::F32);
    assert_eq!(dtypes, BTreeMap::from([("b1", w), ("w1", h), ("w2", h)]));
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let ran: Vec<String> = shared_runtime()
        .choose_variants(bundle.manifest())
        .iter()
        .zip(&man.kernels)
        .map(|(v, k)| v.map_or(k.schedule.clone(), |v| k.variants[v].schedule.clone()))
        .collect();
    let mut sess = session(&bundle);
    let host = HashMap::from([("x".to_string(), to_host(&xt, kiln::abi::ElemType::F16))]);
    let out: HashMap<_, _> = sess.run("run", &host).unwrap().into_iter().collect();
    let err = rel_l2(&out["y"].to_f32(), &reference.to_f32());
    eprintln!("f16 mlp ({ran:?}): relative L2 {err:.2e}");
    assert!(err < 2e-3, "{ran:?}: relative L2 {err:e}");
}
