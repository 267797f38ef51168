//! Quantized matmul (`Op::QMatMul`) on the GPU vs the interpreter, for every block type: the
//! decode kernel (few rows: quantized GEMV, blocks decoded in registers) and the prefill kernel
//! (tiled GEMM dequantizing W tiles into workgroup memory: the vec4 register tiles of
//! `qgemm_vec4.wgsl`, single and double-buffered, and the scalar tiles of `qgemm.wgsl`), with N
//! and M not multiples of the tiles, fused epilogues, and one bundle serving two sequence
//! lengths.
//!
//! Tolerance: the interpreter dequantizes W exactly (f32 values) and accumulates in f64; the GPU
//! accumulates in f32 in another order (and Q4_1/Q4_K fold the block minimum into a separate
//! sum of x). For K <= 768 products of O(1) values the f32 rounding error of a dot product is
//! about sqrt(K) * 2^-24 relative to the sum of |products|, well below the 1e-5 relative L2
//! bound used here.

use kiln::compiler::lower::anchor::ROUNDED_X_MAX_ROWS_PER_INPUT;
use kiln::compiler::{compile_to_dir, CompileOptions, Model, QuantLayout};
use kiln::convert::{rel_l2, to_host};
use kiln::ir::quant::{packed_tensor, quantize};
use kiln::ir::{BinaryOp, BlockType, DType, Dim, Graph, Op, Tensor, TensorType};
use kiln::runtime::{Bundle, Session, SessionOptions};
use kiln::schedules::tuning::TuningDb;
use kiln::schedules::{GemmParams, GemvParams, Schedule};
use std::collections::{BTreeMap, HashMap};

fn values(n: usize, seed: u64) -> Vec<f32> {
    kiln::demo::pseudo_random(n, seed, 1.0)
}

/// Valid random bytes of an `[n, k]` weight in `block` format: quantized random values for the
/// formats with a quantizer; for Q4_K/Q6_K random bytes with small positive f16 super-block
/// scales (random sub-block scales and quants exercise every bit of the layout).
fn weight_bytes(block: BlockType, n: usize, k: usize, seed: u64) -> Vec<u8> {
    if let Ok(b) = quantize(block, &values(n * k, seed)) {
        return b;
    }
    let len = block.bytes_for((n * k) as u64).unwrap() as usize;
    let mut bytes: Vec<u8> = values(len, seed).iter().map(|v| ((v + 1.0) * 127.9) as u8).collect();
    let scales = values(2 * n * k / 256, seed + 1);
    let f16 = |v: f32| half::f16::from_f32(0.002 + 0.01 * v.abs()).to_le_bytes();
    for (i, b) in bytes.chunks_exact_mut(block.block_bytes()).enumerate() {
        match block {
            BlockType::Q4K => {
                b[0..2].copy_from_slice(&f16(scales[2 * i]));
                b[2..4].copy_from_slice(&f16(scales[2 * i + 1]));
            }
            BlockType::Q6K => b[208..210].copy_from_slice(&f16(scales[2 * i])),
            _ => unreachable!("{block} has a quantizer"),
        }
    }
    bytes
}

/// One `y_i = x_i · W_iᵀ` (+ bias, + residual `r_i` when `epilogue`) per case, each with its
/// own input `x_i: f32[m, k_i]` and output `y_i`, so one bundle covers every block type.
fn graph(cases: &[(BlockType, usize, usize)], m: Dim, epilogue: bool) -> Graph {
    let mut g = Graph::new();
    for (i, &(block, k, n)) in cases.iter().enumerate() {
        let x = g.add_input(
            &format!("x{i}"),
            TensorType {
                dtype: DType::F32,
                shape: vec![m.clone(), Dim::from(k)],
            },
        );
        let w = packed_tensor(block, n, k, &weight_bytes(block, n, k, 11 + i as u64)).unwrap();
        let w = g.add_const(&format!("w{i}"), w);
        let mut y = g.add(&format!("qmm{i}"), Op::QMatMul { block, n, k }, &[x, w]).unwrap();
        if epilogue {
            let b = g.add_const(&format!("b{i}"), Tensor::f32(vec![n], values(n, 5)));
            y = g.add(&format!("bias{i}"), Op::Binary(BinaryOp::Add), &[y, b]).unwrap();
            let r = g.add_input(
                &format!("r{i}"),
                TensorType {
                    dtype: DType::F32,
                    shape: vec![m.clone(), Dim::from(n)],
                },
            );
            y = g
                .add(&format!("residual{i}"), Op::Binary(BinaryOp::Add), &[y, r])
                .unwrap();
        }
        g.add_output(&format!("y{i}"), y);
    }
    g
}

/// Compiles the graph of `cases`, runs it for each row count in `ms` and compares every output
/// with the interpreter. Asserts one dispatch per case (the epilogue fused) of schedule kind
/// `kind` (`gemv` or `gemm`).
fn check(cases: &[(BlockType, usize, usize)], m: Dim, epilogue: bool, ms: &[usize], kind: &str) {
    check_with(cases, m, epilogue, ms, kind, None)
}

/// [`check`], with every quantized matmul given `schedule` (through a tuning record under its
/// key) instead of the default, and asserting that each kernel got it.
fn check_with(
    cases: &[(BlockType, usize, usize)],
    m: Dim,
    epilogue: bool,
    ms: &[usize],
    kind: &str,
    schedule: Option<Schedule>,
) {
    check_laid_out(cases, m, epilogue, ms, kind, schedule, QuantLayout::Rows);
}

/// [`check_with`], the weights stored in `layout`.
fn check_laid_out(
    cases: &[(BlockType, usize, usize)],
    m: Dim,
    epilogue: bool,
    ms: &[usize],
    kind: &str,
    schedule: Option<Schedule>,
    layout: QuantLayout,
) {
    let mut opts = CompileOptions {
        quant_layout: layout,
        ..Default::default()
    };
    if let Some(s) = schedule {
        let mut db = TuningDb::default();
        for &(block, k, n) in cases {
            db.force(format!("qgemm:{block}:m={m},n={n},k={k}"), s);
        }
        opts.tuning = Some(db);
    }
    let model = Model {
        name: "q".into(),
        graph: graph(cases, m, epilogue),
        io_dtypes: BTreeMap::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let manifest = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
    let dispatches = &manifest.programs[0].dispatches;
    assert_eq!(dispatches.len(), cases.len(), "one fused kernel per quantized matmul");
    for d in dispatches {
        let got = &manifest.kernels[d.kernel].schedule;
        assert!(got.starts_with(kind), "{}: schedule {got}, expected {kind}", d.label);
        if let Some(s) = schedule {
            assert_requested(&manifest.kernels[d.kernel], s, &d.label);
        }
    }
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    assert_subgroup_variants_run(&bundle);
    // Where the bundle has kernel variants (the subgroup GEMV), its plain kernels too: the
    // runtime with variants turned off.
    let has_variants = bundle.manifest().kernels.iter().any(|k| !k.variants.is_empty());
    let off = kiln::runtime::Runtime::new().unwrap().without_variants();
    assert!(off.choose_variants(bundle.manifest()).iter().all(Option::is_none));
    for kernel_variants in [true, false].into_iter().take(1 + has_variants as usize) {
        let opts = SessionOptions {
            kernel_variants,
            ..SessionOptions::default()
        };
        let mut s = Session::new(&bundle, &opts).unwrap();
        for &m in ms {
            let mut inputs = HashMap::new();
            for (i, &(_, k, n)) in cases.iter().enumerate() {
                inputs.insert(format!("x{i}"), Tensor::f32(vec![m, k], values(m * k, (m + i) as u64)));
                if epilogue {
                    inputs.insert(format!("r{i}"), Tensor::f32(vec![m, n], values(m * n, 99)));
                }
            }
            let (reference, out) = run_with_reference(&mut s, &model.graph, &inputs);
            for (i, &(block, k, n)) in cases.iter().enumerate() {
                let (name, r) = (format!("y{i}"), &reference[&format!("y{i}")]);
                assert_eq!(out[&name].shape, r.shape);
                assert!(r.to_f32().iter().any(|&v| v != 0.0), "a zero reference checks nothing");
                let err = rel_l2(&out[&name].to_f32(), &r.to_f32());
                assert!(
                    err < 1e-5,
                    "{block} m={m} k={k} n={n} (variants {kernel_variants}): relative L2 error {err:e}"
                );
            }
        }
    }
}

/// Runs program `run` of `s` on f32 `inputs` and evaluates `graph` on them with the
/// interpreter: (reference, GPU outputs), each by output name.
fn run_with_reference(
    s: &mut Session,
    graph: &kiln::ir::Graph,
    inputs: &HashMap<String, Tensor>,
) -> (HashMap<String, Tensor>, HashMap<String, kiln::runtime::HostTensor>) {
    let reference = kiln::ir::interp::evaluate(graph, inputs).expect("interpreter");
    let host = inputs
        .iter()
        .map(|(k, v)| (k.clone(), to_host(v, kiln::abi::ElemType::F32)))
        .collect();
    let out = s.run("run", &host).unwrap().into_iter().collect();
    (reference, out)
}

/// Runs `bundle` with kernel variants on and off on `inputs` and asserts that every output of
/// `graph` matches the interpreter within a relative L2 error of 1e-5 (none all zeros);
/// `what` names the case in failures.
fn assert_matches_interpreter_both_ways(
    bundle: &Bundle,
    graph: &kiln::ir::Graph,
    inputs: &HashMap<String, Tensor>,
    what: &str,
) {
    for kernel_variants in [true, false] {
        let opts = SessionOptions {
            kernel_variants,
            ..SessionOptions::default()
        };
        let mut s = Session::new(bundle, &opts).unwrap();
        let (reference, out) = run_with_reference(&mut s, graph, inputs);
        for (name, r) in &reference {
            assert!(r.to_f32().iter().any(|&v| v != 0.0), "a zero reference checks nothing");
            let err = rel_l2(&out[name].to_f32(), &r.to_f32());
            assert!(
                err < 1e-5,
                "{what} {name} (variants {kernel_variants}): relative L2 error {err:e}"
            );
        }
    }
}

/// Asserts that `kernel` was compiled with the requested schedule `s`: a GEMV with subgroup
/// sums as its workgroup-memory form with the subgroup form as its one variant, any other
/// schedule as itself with no variant.
fn assert_requested(kernel: &kiln::abi::KernelSpec, s: Schedule, label: &str) {
    let base = match s {
        Schedule::Gemv(p) => Schedule::Gemv(p.without_subgroups()),
        s => s,
    };
    assert_eq!(kernel.schedule, base.to_string(), "{label}: the requested schedule");
    let variants: Vec<String> = kernel.variants.iter().map(|v| v.schedule.clone()).collect();
    let want: Vec<String> = (base != s).then(|| s.to_string()).into_iter().collect();
    assert_eq!(variants, want, "{label}: variants");
}

/// Asserts that the runtime picks every subgroup GEMV variant of `bundle` on this adapter
/// when it offers subgroups at least as wide as the variant's lanes (lavapipe's are 8 wide or
/// more), so the tests of such schedules check the shuffles, not the fallback.
fn assert_subgroup_variants_run(bundle: &Bundle) {
    let runtime = kiln::runtime::Runtime::new().unwrap();
    let chosen = runtime.choose_variants(bundle.manifest());
    for (k, c) in bundle.manifest().kernels.iter().zip(chosen) {
        for v in &k.variants {
            if v.schedule.contains(", sg)") && runtime.variant_unsupported(&v.requires).is_none() {
                assert!(
                    c.is_some(),
                    "{}: the subgroup variant {} was not picked",
                    k.name,
                    v.schedule
                );
            }
        }
    }
}

/// (block, K, N): K a whole number of blocks; N not a multiple of any tile; the plain formats
/// with a ragged K as well.
fn cases() -> Vec<(BlockType, usize, usize)> {
    vec![
        (BlockType::F32, 13, 37),
        (BlockType::F16, 45, 37),
        (BlockType::BF16, 40, 37),
        (BlockType::Q4_0, 224, 37),
        (BlockType::Q4_1, 96, 37),
        (BlockType::Q8_0, 160, 37),
        (BlockType::Q4K, 512, 37),
        (BlockType::Q6K, 768, 21),
    ]
}

#[test]
fn decode_rows_use_the_quantized_gemv_for_every_block_type() {
    for m in [1usize, 5] {
        check(&cases(), Dim::from(m), false, &[m], "gemv");
    }
}

#[test]
fn prefill_rows_use_the_tiled_quantized_gemm_for_every_block_type() {
    check(&cases(), Dim::from(13usize), false, &[13], "gemm");
}

#[test]
fn every_quantized_gemm_tile_shape_matches_the_interpreter() {
    // Vec4 register tiles of 4x4 and 8x8 per thread, bk 8/16/32 (one or several x and W loads
    // per thread per step), single and double-buffered, and the scalar 2x2 tile; M = 13 and 70
    // are not multiples of any block, N = 37/21 neither, and F32/F16 have K not a multiple of 4.
    let tiles = [
        GemmParams::new(64, 64, 16, 4, 4),
        GemmParams::new(64, 64, 16, 4, 4).double_buffered(),
        GemmParams::new(32, 64, 32, 4, 4),
        GemmParams::new(128, 64, 16, 8, 8),
        GemmParams::new(64, 128, 8, 4, 8).double_buffered(),
        GemmParams::new(32, 32, 16, 2, 2),
    ];
    for p in tiles {
        check_with(
            &cases(),
            Dim::sym("seq"),
            false,
            &[13, 70],
            "gemm",
            Some(Schedule::Gemm(p)),
        );
    }
}

#[test]
fn every_quantized_gemv_lane_shape_matches_the_interpreter() {
    // Lanes computing 4 or 2 rows of W (x shared for q4_0/q4_1/q8_0, re-read for the other
    // types): N = 37/21 leaves the last workgroup's lanes partly past the end of W; K split 4
    // ways unrolls the loop (3 parts per step at q4_1's 12), 8 ways leaves q4_1 only the
    // remainder loop; 3 rows of x with 2 per workgroup leave a partial row tile. (Two bundles:
    // lavapipe compiles these unrolled kernels slowly.)
    let with = |lanes, ksplit, rows, lane_rows| {
        Schedule::Gemv(GemvParams {
            lane_rows,
            ..GemvParams::new(lanes, ksplit, rows)
        })
    };
    for (m, s) in [(1usize, with(8, 4, 1, 4)), (3, with(4, 8, 2, 2))] {
        check_with(&cases(), Dim::from(m), m == 1, &[m], "gemv", Some(s));
    }
}

#[test]
fn quantized_gemv_lanes_adding_by_subgroup_shuffles_match_the_interpreter() {
    // The subgroup form (`sg`): a lane's 4 or 8 threads add their partial sums by shuffles,
    // run as the kernel's variant where the adapter's subgroups are that wide (lavapipe's are;
    // `assert_subgroup_variants_run`), with several lane rows and rows of x as above.
    let with = |lanes, ksplit, rows, lane_rows| {
        Schedule::Gemv(GemvParams {
            lane_rows,
            sg: true,
            ..GemvParams::new(lanes, ksplit, rows)
        })
    };
    for (m, s) in [(1usize, with(16, 4, 1, 2)), (3, with(8, 8, 2, 1))] {
        check_with(&cases(), Dim::from(m), m == 1, &[m], "gemv", Some(s));
    }
}

#[test]
fn block_column_weights_match_the_interpreter_in_both_kernels() {
    // `--weight-layout block-columns`: every block type's weight stored block 0 of every row,
    // then block 1, ..; the decode GEMV (with its epilogue) and the prefill's tiled GEMM read
    // the permuted blocks, and the stored words differ from GGUF's order.
    // The GEMV of such a weight is row-parallel (qgemv_rows.wgsl): its default, one thread per
    // output and K slice, and 3 rows of x with 2 per workgroup (a partial row tile).
    let bc = QuantLayout::BlockColumns;
    check_laid_out(&cases(), Dim::from(1usize), true, &[1], "gemv", None, bc);
    for (m, s) in [(1usize, GemvParams::new(64, 1, 1)), (3, GemvParams::new(32, 8, 2))] {
        check_laid_out(
            &cases(),
            Dim::from(m),
            m == 1,
            &[m],
            "gemv",
            Some(Schedule::Gemv(s)),
            bc,
        );
    }
    check_laid_out(&cases(), Dim::sym("seq"), false, &[13, 70], "gemm", None, bc);
    let model = Model {
        name: "q".into(),
        graph: graph(&cases(), Dim::from(1usize), false),
        io_dtypes: BTreeMap::new(),
    };
    let words = |layout| {
        let opts = CompileOptions {
            quant_layout: layout,
            ..Default::default()
        };
        let b = kiln::compiler::compile(&model, &opts).unwrap();
        b.weights.iter().map(|t| t.to_f64()).collect::<Vec<_>>()
    };
    let (rows, cols) = (words(QuantLayout::Rows), words(QuantLayout::BlockColumns));
    assert_eq!(rows.len(), cols.len());
    for (r, c) in rows.iter().zip(&cols) {
        assert_eq!(r.len(), c.len());
        assert_ne!(r, c, "a weight of several rows and blocks is reordered");
    }
}

#[test]
fn bias_and_residual_fuse_into_both_kernels() {
    let cases = [(BlockType::Q4_1, 96, 37), (BlockType::Q6K, 256, 11)];
    check(&cases, Dim::from(1usize), true, &[1], "gemv");
    check(&cases, Dim::from(13usize), true, &[13], "gemm");
}

#[test]
fn one_bundle_serves_decode_and_prefill_lengths() {
    // A symbolic row count is scheduled for a prompt (the tiled GEMM) and must also be right
    // for a single row and for counts that are not multiples of the tile.
    let cases = [(BlockType::Q8_0, 256, 19), (BlockType::Q4K, 256, 19)];
    check(&cases, Dim::sym("seq"), true, &[1, 13, 70], "gemm");
}

#[test]
fn packed_table_rows_are_gathered_for_every_block_type() {
    for layout in [QuantLayout::Rows, QuantLayout::BlockColumns] {
        check_gather(layout);
    }
}

/// `QGather` of rows of packed tables stored in `layout`, against the interpreter.
fn check_gather(layout: QuantLayout) {
    // `QGather` (a tied embedding read from its packed table): one bundle gathering rows of an
    // `[n, k]` table per block type, indices symbolic in number, a negative one among them.
    // The decode is exact in f32 (scale x quant + min), so the tolerance is the same 1e-5.
    let mut g = Graph::new();
    let ids = g.add_input(
        "ids",
        TensorType {
            dtype: DType::I32,
            shape: vec![Dim::sym("seq")],
        },
    );
    let cases = cases();
    for (i, &(block, k, n)) in cases.iter().enumerate() {
        let w = packed_tensor(block, n, k, &weight_bytes(block, n, k, 31 + i as u64)).unwrap();
        let w = g.add_const(&format!("t{i}"), w);
        let y = g
            .add(&format!("embed{i}"), Op::QGather { block, n, k }, &[ids, w])
            .unwrap();
        g.add_output(&format!("y{i}"), y);
    }
    let model = Model {
        name: "qg".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let manifest = compile_to_dir(
        &model,
        &CompileOptions {
            quant_layout: layout,
            ..Default::default()
        },
        &dir.path().join("b"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        manifest.programs[0].dispatches.len(),
        cases.len(),
        "one gather kernel per table"
    );
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let mut s = Session::new(&bundle, &SessionOptions::default()).unwrap();
    let idx = vec![0, 20, 3, -1, 7, 20, 11];
    let inputs = HashMap::from([("ids".to_string(), Tensor::i32(vec![idx.len()], idx))]);
    let reference = kiln::ir::interp::evaluate(&model.graph, &inputs).expect("interpreter");
    let host = HashMap::from([("ids".to_string(), to_host(&inputs["ids"], kiln::abi::ElemType::I32))]);
    let out: HashMap<_, _> = s.run("run", &host).unwrap().into_iter().collect();
    for (i, &(block, k, _)) in cases.iter().enumerate() {
        let (name, r) = (format!("y{i}"), &reference[&format!("y{i}")]);
        assert_eq!(r.shape, vec![7, k]);
        assert_eq!(out[&name].shape, r.shape);
        assert!(r.to_f32().iter().any(|&v| v != 0.0), "a zero reference checks nothing");
        let err = rel_l2(&out[&name].to_f32(), &r.to_f32());
        assert!(err < 1e-5, "{block} k={k}: relative L2 error {err:e}");
    }
}

#[test]
fn rms_norm_fuses_into_the_decode_gemvs_that_read_it() {
    check_norm(None);
}

#[test]
fn rms_norm_fuses_into_gemv_lanes_of_several_rows() {
    // Each lane's x reads (and their squares) must count once however many rows share them
    // (shared x for q4_0/q4_1/q8_0; the K-quants re-read x, their squares counted once).
    check_norm(Some(Schedule::Gemv(GemvParams {
        lane_rows: 4,
        ..GemvParams::new(4, 16, 1)
    })));
    // Subgroup sums: the squares added by the same shuffles as the dot products.
    check_norm(Some(Schedule::Gemv(GemvParams {
        lane_rows: 2,
        sg: true,
        ..GemvParams::new(8, 8, 1)
    })));
}

/// A decode step's norm read by quantized GEMVs (every block type of 32 or more values), each
/// given `schedule` instead of the default, checked against the interpreter.
fn check_norm(schedule: Option<Schedule>) {
    // One row x normed (RMS, scale g) and read by two quantized matmuls per block type, as a
    // decode step's norm before its projections: no norm kernel, each GEMV computes the norm
    // itself (x read as vec4s), and the second one's epilogue also reads x raw (x read value by
    // value). Tolerance as above: the GEMV scales the dot product by 1/rms once at the end
    // instead of every x, a reassociation of f32 products.
    let blocks = [
        BlockType::Q4_0,
        BlockType::Q4_1,
        BlockType::Q8_0,
        BlockType::Q4K,
        BlockType::Q6K,
    ];
    let k = 512;
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[1, k]));
    let scale = g.add_const("g", Tensor::f32(vec![k], values(k, 7)));
    let eps = 1e-5;
    let normed = g
        .add("norm", Op::RmsNorm { axis: 1, epsilon: eps }, &[x, scale])
        .unwrap();
    for (i, &block) in blocks.iter().enumerate() {
        for j in 0..2 {
            let n = if j == 0 { 37 } else { k };
            let w = packed_tensor(block, n, k, &weight_bytes(block, n, k, 40 + 2 * i as u64 + j)).unwrap();
            let w = g.add_const(&format!("w{i}_{j}"), w);
            let mut y = g
                .add(&format!("qmm{i}_{j}"), Op::QMatMul { block, n, k }, &[normed, w])
                .unwrap();
            if j == 1 {
                y = g.add(&format!("res{i}"), Op::Binary(BinaryOp::Add), &[y, x]).unwrap();
            }
            g.add_output(&format!("y{i}_{j}"), y);
        }
    }
    let model = Model {
        name: "qn".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let mut opts = CompileOptions::default();
    if let Some(s) = schedule {
        let mut db = TuningDb::default();
        for &block in &blocks {
            for n in [37, k] {
                db.force(format!("qgemm_rmsnorm:{block}:m=1,n={n},k={k}"), s);
            }
        }
        opts.tuning = Some(db);
    }
    let dir = tempfile::tempdir().unwrap();
    let manifest = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
    let dispatches = &manifest.programs[0].dispatches;
    assert_eq!(dispatches.len(), 2 * blocks.len(), "the norm has no kernel of its own");
    for d in dispatches {
        let kernel = &manifest.kernels[d.kernel];
        assert!(kernel.schedule.starts_with("gemv"), "{}: {}", d.label, kernel.schedule);
        if let Some(s) = schedule {
            assert_requested(kernel, s, &d.label);
        }
        assert!(d.label.contains("norm"), "{}: the norm fused", d.label);
    }
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    assert_subgroup_variants_run(&bundle);
    let mut s = Session::new(&bundle, &SessionOptions::default()).unwrap();
    let inputs = HashMap::from([("x".to_string(), Tensor::f32(vec![1, k], values(k, 3)))]);
    let (reference, out) = run_with_reference(&mut s, &model.graph, &inputs);
    for (name, r) in &reference {
        assert!(r.to_f32().iter().any(|&v| v != 0.0), "a zero reference checks nothing");
        let err = rel_l2(&out[name].to_f32(), &r.to_f32());
        assert!(err < 1e-5, "{name}: relative L2 error {err:e}");
    }
}

/// Decode-step SwiGLUs `silu(norm(x) · Gᵀ) * (norm(x) · Uᵀ)` (the norm of one row, G and U of
/// one block type each, h = 37 outputs: not a multiple of any lanes x lane rows), as a Llama
/// FFN writes them; compiled with `schedule` for every pair kernel (`None`: the default).
/// Asserts one GEMV per block type (the norm, both projections and the SwiGLU in one kernel)
/// and the interpreter's values (tolerance as above: the sigmoid is f32 on the GPU, f64 in the
/// interpreter, a relative error near 2^-24).
fn check_gated_pairs(schedule: Option<Schedule>) {
    let blocks = [
        BlockType::Q4_0,
        BlockType::Q4_1,
        BlockType::Q8_0,
        BlockType::Q4K,
        BlockType::Q6K,
    ];
    let (k, h) = (256, 37);
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[1, k]));
    let scale = g.add_const("g", Tensor::f32(vec![k], values(k, 8)));
    let mut opts = CompileOptions::default();
    let mut db = TuningDb::default();
    for (i, &block) in blocks.iter().enumerate() {
        let normed = g
            .add(&format!("norm{i}"), Op::RmsNorm { axis: 1, epsilon: 1e-5 }, &[x, scale])
            .unwrap();
        let q = |g: &mut Graph, name: &str, seed: u64| {
            let w = packed_tensor(block, h, k, &weight_bytes(block, h, k, seed)).unwrap();
            let w = g.add_const(&format!("{name}.w"), w);
            g.add(name, Op::QMatMul { block, n: h, k }, &[normed, w]).unwrap()
        };
        let gate = q(&mut g, &format!("gate{i}"), 50 + i as u64);
        let up = q(&mut g, &format!("up{i}"), 60 + i as u64);
        let sig = g
            .add(&format!("sig{i}"), Op::Unary(kiln::ir::UnaryOp::Sigmoid), &[gate])
            .unwrap();
        let silu = g
            .add(&format!("silu{i}"), Op::Binary(BinaryOp::Mul), &[gate, sig])
            .unwrap();
        let act = g
            .add(&format!("swiglu{i}"), Op::Binary(BinaryOp::Mul), &[silu, up])
            .unwrap();
        g.add_output(&format!("y{i}"), act);
        if let Some(s) = schedule {
            db.force(format!("qgemm_rmsnorm_glu:{block}:m=1,n={},k={k}", 2 * h), s);
        }
    }
    if schedule.is_some() {
        opts.tuning = Some(db);
    }
    let model = Model {
        name: "glu".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let manifest = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
    let dispatches = &manifest.programs[0].dispatches;
    assert_eq!(dispatches.len(), blocks.len(), "one kernel per SwiGLU");
    for d in dispatches {
        let kernel = &manifest.kernels[d.kernel];
        assert!(kernel.schedule.starts_with("gemv"), "{}: {}", d.label, kernel.schedule);
        assert!(d.label.contains("norm") && d.label.contains("swiglu"), "{}", d.label);
        if let Some(s) = schedule {
            assert_requested(kernel, s, &d.label);
        }
    }
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    assert_subgroup_variants_run(&bundle);
    let mut s = Session::new(&bundle, &SessionOptions::default()).unwrap();
    let inputs = HashMap::from([("x".to_string(), Tensor::f32(vec![1, k], values(k, 4)))]);
    let (reference, out) = run_with_reference(&mut s, &model.graph, &inputs);
    for (name, r) in &reference {
        assert_eq!(r.shape, vec![1, h]);
        assert!(r.to_f32().iter().any(|&v| v != 0.0), "a zero reference checks nothing");
        let err = rel_l2(&out[name].to_f32(), &r.to_f32());
        assert!(err < 1e-5, "{name}: relative L2 error {err:e}");
    }
}

#[test]
fn gate_and_up_projections_become_one_gemv_for_every_block_type() {
    // The default (one output per lane at these sizes) and 4 outputs per lane (8 accumulators:
    // 4 gate rows, 4 up rows).
    check_gated_pairs(None);
    check_gated_pairs(Some(Schedule::Gemv(GemvParams {
        lane_rows: 4,
        ..GemvParams::new(4, 8, 1)
    })));
    check_gated_pairs(Some(Schedule::Gemv(GemvParams {
        sg: true,
        ..GemvParams::new(8, 8, 1)
    })));
}

/// Activations rounded to 8 bits ([`Op::QuantizeQ8`]) read by quantized matmuls, against the
/// interpreter (which rounds them the same way). For q4_0, q4_1 and q8_0 weights at a few
/// rows (1 and 3: the GEMV kind) the quantizer stores integer blocks and the GEMVs take
/// integer dot products (`dot4I8Packed` in their WGSL); with an RMS norm in front the norm is
/// the quantizer's prologue (no kernel of its own). A quantizer also read by a q6_K matmul,
/// and any at 12 rows (the tiled GEMM), stores f32 values instead. Tolerance: the GPU adds
/// integer products exactly and scales once per block; the rest is f32 reassociation as
/// above. Every case is also run with the kernel variants off (the plain GEMVs).
#[test]
fn eight_bit_activations_take_integer_dot_products_and_match_the_interpreter() {
    let blocks = [BlockType::Q4_0, BlockType::Q4_1, BlockType::Q8_0];
    let k = 256;
    for m in [1usize, 3, 12] {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[m, k]));
        let scale = g.add_const("g", Tensor::f32(vec![k], values(k, 7)));
        let normed = g
            .add("norm", Op::RmsNorm { axis: 1, epsilon: 1e-5 }, &[x, scale])
            .unwrap();
        let qn = g.add("norm_q8", Op::QuantizeQ8, &[normed]).unwrap();
        let qx = g.add("x_q8", Op::QuantizeQ8, &[x]).unwrap();
        let mut seed = 60;
        let mut qmm = |g: &mut Graph, name: &str, block, n, xin| {
            seed += 1;
            let w = packed_tensor(block, n, k, &weight_bytes(block, n, k, seed)).unwrap();
            let w = g.add_const(&format!("{name}.w"), w);
            let y = g.add(name, Op::QMatMul { block, n, k }, &[xin, w]).unwrap();
            g.add_output(name, y);
        };
        for &block in &blocks {
            // n = 37: not a multiple of any lanes x lane rows.
            qmm(&mut g, &format!("normed_{block}"), block, 37, qn);
            qmm(&mut g, &format!("raw_{block}"), block, 64, qx);
        }
        // A third quantizer (of another input) shared with a q6_K weight: stored as f32 for
        // both readers.
        let x2 = g.add_input("x2", TensorType::new(DType::F32, &[m, k]));
        let xm = g.add("mixed_q8", Op::QuantizeQ8, &[x2]).unwrap();
        qmm(&mut g, "mixed_q4_0", BlockType::Q4_0, 40, xm);
        qmm(&mut g, "mixed_q6_K", BlockType::Q6K, 40, xm);
        let model = Model {
            name: "q8x".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let manifest =
            compile_to_dir(&model, &CompileOptions::default(), &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
        let source = |label: &str| -> String {
            let d = manifest.programs[0]
                .dispatches
                .iter()
                .find(|d| d.label.split('+').any(|part| part == label))
                .unwrap_or_else(|| panic!("m={m}: no dispatch computes {label}"));
            std::fs::read_to_string(dir.path().join("b").join(&manifest.kernels[d.kernel].file)).unwrap()
        };
        let packed = m <= 8;
        for &block in &blocks {
            for name in [format!("normed_{block}"), format!("raw_{block}")] {
                let wgsl = source(&name);
                assert_eq!(
                    wgsl.contains("dot4I8Packed"),
                    packed,
                    "m={m} {name}: integer dot products"
                );
            }
        }
        assert!(
            !source("mixed_q4_0").contains("dot4I8Packed"),
            "m={m}: a q6_K reader keeps x f32"
        );
        // The norm is the quantizers' prologue: one kernel computes both.
        let quantizers: Vec<&str> = manifest.programs[0]
            .dispatches
            .iter()
            .map(|d| d.label.as_str())
            .filter(|l| l.contains("_q8"))
            .collect();
        assert!(quantizers.contains(&"x_q8"), "m={m}: {quantizers:?}");
        assert!(
            !quantizers.contains(&"norm_q8"),
            "m={m}: the norm fused into its quantizer: {quantizers:?}"
        );
        assert!(quantizers.contains(&"norm+norm_q8"), "m={m}: {quantizers:?}");
        let bundle = Bundle::load(dir.path().join("b")).unwrap();
        let inputs = HashMap::from([
            ("x".to_string(), Tensor::f32(vec![m, k], values(m * k, 3))),
            ("x2".to_string(), Tensor::f32(vec![m, k], values(m * k, 4))),
        ]);
        assert_matches_interpreter_both_ways(&bundle, &model.graph, &inputs, &format!("m={m}"));
    }
}

/// A SwiGLU whose output is rounded to 8 bits ([`Op::QuantizeQ8`]) for a down projection, as
/// `--activations q8` builds a Llama FFN: at 1 and 3 rows the gate/up GEMV rounds its outputs
/// per block of 32 as it stores them (no quantizer kernel), as integer blocks where every
/// reader is an integer-dot GEMV (the down projection then takes `dot4I8Packed`), as f32
/// values where the rounded value is also a graph output. Gate/up of q4_1, q8_0 and q4_K (the
/// rounding is the GEMV's epilogue whatever it reads), h = 64 (two blocks), compiled for the
/// desktop profile with the default schedule (1024 threads at one row) and at one row also with
/// forced ones (32 lanes of one row and 8 lanes of 4 rows with subgroup sums, 16 lanes of 2
/// rows in workgroup memory), and with gate/up reading the norm rounded to 8 bits too (at one
/// row the GEMV then normalizes and rounds x itself for q4_1 and q8_0: no quantizer kernel at
/// all), each run with kernel variants on and off. Against the
/// interpreter, tolerance as above: a GPU sum that rounded to the other integer would show as
/// an error near 1e-2.
#[test]
fn swiglu_gemv_rounds_its_outputs_to_8_bits_for_the_down_projection() {
    let blocks = [BlockType::Q4_1, BlockType::Q8_0, BlockType::Q4K];
    let (k, h, n_down) = (256, 64, 40);
    let forced = [
        None,
        Some(GemvParams {
            sg: true,
            ..GemvParams::new(32, 8, 1)
        }),
        Some(GemvParams {
            lane_rows: 2,
            ..GemvParams::new(16, 8, 1)
        }),
        Some(GemvParams {
            lane_rows: 4,
            sg: true,
            ..GemvParams::new(8, 32, 1)
        }),
    ];
    // `rounded_x`: gate/up read the norm rounded to 8 bits too (default schedule only); at one
    // row the GEMV normalizes and rounds x itself where gate/up take integer dots.
    let cases = forced
        .into_iter()
        .map(|s| (s, false))
        .chain([(None, true)])
        .collect::<Vec<_>>();
    for m in [1usize, 3] {
        // Three rows: the default schedule only.
        for (schedule, rounded_x) in cases.iter().copied().filter(|c| m == 1 || c.0.is_none()) {
            let mut g = Graph::new();
            let x = g.add_input("x", TensorType::new(DType::F32, &[m, k]));
            let mut db = TuningDb::default();
            for (i, &block) in blocks.iter().enumerate() {
                // A scale per block type, so the optimizer keeps the norms (and their
                // quantizers) apart: each feeds one GEMV, as in a Llama layer.
                let scale = g.add_const(&format!("g{i}"), Tensor::f32(vec![k], values(k, 8 + i as u64)));
                let normed = g
                    .add(&format!("norm{i}"), Op::RmsNorm { axis: 1, epsilon: 1e-5 }, &[x, scale])
                    .unwrap();
                let q = |g: &mut Graph, name: &str, block, n, k, xin, seed: u64| {
                    let w = packed_tensor(block, n, k, &weight_bytes(block, n, k, seed)).unwrap();
                    let w = g.add_const(&format!("{name}.w"), w);
                    g.add(name, Op::QMatMul { block, n, k }, &[xin, w]).unwrap()
                };
                let xin = if rounded_x {
                    g.add(&format!("norm{i}_xq8"), Op::QuantizeQ8, &[normed]).unwrap()
                } else {
                    normed
                };
                let gate = q(&mut g, &format!("gate{i}"), block, h, k, xin, 70 + i as u64);
                let up = q(&mut g, &format!("up{i}"), block, h, k, xin, 80 + i as u64);
                let sig = g
                    .add(&format!("sig{i}"), Op::Unary(kiln::ir::UnaryOp::Sigmoid), &[gate])
                    .unwrap();
                let silu = g
                    .add(&format!("silu{i}"), Op::Binary(BinaryOp::Mul), &[gate, sig])
                    .unwrap();
                let act = g
                    .add(&format!("swiglu{i}"), Op::Binary(BinaryOp::Mul), &[silu, up])
                    .unwrap();
                let act_q = g.add(&format!("swiglu{i}_q8"), Op::QuantizeQ8, &[act]).unwrap();
                let down = q(
                    &mut g,
                    &format!("down{i}"),
                    BlockType::Q4_1,
                    n_down,
                    h,
                    act_q,
                    90 + i as u64,
                );
                g.add_output(&format!("y{i}"), down);
                if block == BlockType::Q4K {
                    // Also an output: stored as f32 values, which the down GEMV reads as f32.
                    g.add_output(&format!("r{i}"), act_q);
                }
                if let Some(p) = schedule {
                    let kind = if m == 1 { "qgemm_rmsnorm_glu" } else { "qgemm_glu" };
                    db.force(
                        format!("{kind}_y8:{block}:m={m},n={},k={k}", 2 * h),
                        Schedule::Gemv(GemvParams { rows: m as u32, ..p }),
                    );
                }
            }
            // The desktop profile (1024 threads per workgroup): its default is the 1024-thread
            // form the H200 runs.
            let opts = CompileOptions {
                tuning: schedule.is_some().then_some(db),
                target: kiln::schedules::DeviceLimits::desktop(),
                ..CompileOptions::default()
            };
            let model = Model {
                name: "glu_q8".into(),
                graph: g,
                io_dtypes: BTreeMap::new(),
            };
            let dir = tempfile::tempdir().unwrap();
            let manifest = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
            let what = format!("m={m}, schedule {schedule:?}, rounded x {rounded_x}");
            let dispatches = &manifest.programs[0].dispatches;
            let source = |d: &kiln::abi::Dispatch| {
                std::fs::read_to_string(dir.path().join("b").join(&manifest.kernels[d.kernel].file)).unwrap()
            };
            for (i, &block) in blocks.iter().enumerate() {
                let pair = dispatches
                    .iter()
                    .find(|d| d.label.split('+').any(|p| p == format!("swiglu{i}_q8")))
                    .unwrap_or_else(|| panic!("{what}: no kernel rounds swiglu{i}"));
                let kernel = &manifest.kernels[pair.kernel];
                assert!(kernel.schedule.starts_with("gemv"), "{what}: {}", kernel.schedule);
                if let Some(p) = schedule {
                    assert_requested(kernel, Schedule::Gemv(GemvParams { rows: m as u32, ..p }), &pair.label);
                } else if m == 1 {
                    assert!(
                        kernel.schedule.starts_with("gemv(lanes=32, ksplit=32, rows=1"),
                        "{what}: the default {}",
                        kernel.schedule
                    );
                }
                // The x quantizer is the GEMV's prologue at one row where gate/up dot integers.
                let fused_x = rounded_x && m == 1 && block != BlockType::Q4K;
                assert_eq!(
                    pair.label.contains(&format!("norm{i}_xq8")),
                    fused_x,
                    "{what}: {}",
                    pair.label
                );
                let stored_f32 = block == BlockType::Q4K;
                assert_eq!(
                    source(pair).contains("pack4xI8("),
                    !stored_f32,
                    "{what}: {}",
                    pair.label
                );
                let down = dispatches
                    .iter()
                    .find(|d| d.label.split('+').any(|p| p == format!("down{i}")))
                    .unwrap();
                assert_eq!(
                    source(down).contains("dot4I8Packed("),
                    !stored_f32,
                    "{what}: down{i} integer dot products"
                );
            }
            // No quantizer of its own: every kernel that rounds is a gate/up GEMV.
            for d in dispatches
                .iter()
                .filter(|d| d.label.contains("swiglu") && d.label.contains("_q8"))
            {
                let schedule = &manifest.kernels[d.kernel].schedule;
                assert!(
                    schedule.starts_with("gemv"),
                    "{what}: {} ({schedule}) rounds on its own",
                    d.label
                );
            }
            let bundle = Bundle::load(dir.path().join("b")).unwrap();
            assert_subgroup_variants_run(&bundle);
            let inputs = HashMap::from([("x".to_string(), Tensor::f32(vec![m, k], values(m * k, 5)))]);
            assert_matches_interpreter_both_ways(&bundle, &model.graph, &inputs, &what);
        }
    }
}

/// A decode GEMV that normalizes and rounds its own x: `QMatMul(QuantizeQ8(RmsNorm(x)))` at
/// one row, for each block type with integer dot products (a Llama layer's merged q/k/v
/// projection and the head), so no quantizer kernel remains; with a residual epilogue, with
/// an epilogue that reads the GEMV's own un-normalized x (`x + W·q8(norm(x))`), and with n
/// not a multiple of any workgroup's outputs. The default schedules of two targets and four
/// forced ones, kernel variants on and off, against the interpreter (which rounds the same
/// values): a rounding step that differed would show as an error near 1e-2.
#[test]
fn a_gemv_normalizes_and_rounds_its_own_x() {
    let blocks = [BlockType::Q4_0, BlockType::Q4_1, BlockType::Q8_0];
    let k = 256;
    let forced = [
        None,
        Some(GemvParams {
            sg: true,
            ..GemvParams::new(32, 32, 1)
        }),
        Some(GemvParams {
            lane_rows: 4,
            sg: true,
            ..GemvParams::new(8, 32, 1)
        }),
        Some(GemvParams {
            lane_rows: 2,
            ..GemvParams::new(16, 8, 1)
        }),
        // Lanes of 8 threads: a subgroup form lavapipe runs (its subgroups are 8 wide), so the
        // prologue's subgroup sum and shuffles are checked here, not only their fallback.
        Some(GemvParams {
            sg: true,
            ..GemvParams::new(32, 8, 1)
        }),
    ];
    let targets = [
        kiln::schedules::DeviceLimits::webgpu_default(),
        kiln::schedules::DeviceLimits::desktop(),
    ];
    let cases = forced.iter().map(|&s| (s, 1)).chain([(None, 0)]).collect::<Vec<_>>();
    for (schedule, target) in cases {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[1, k]));
        let r = g.add_input("r", TensorType::new(DType::F32, &[1, 40]));
        let mut db = TuningDb::default();
        for (i, &block) in blocks.iter().enumerate() {
            // (n, epilogue): 0 none, 1 a residual input, 2 x itself. The last has more W rows
            // per value of x than the prologue takes (a head): its quantizer stays a dispatch.
            let wide = (ROUNDED_X_MAX_ROWS_PER_INPUT + 1) * k;
            for (j, (n, epilogue)) in [(37, 0), (40, 1), (k, 2), (wide, 0)].into_iter().enumerate() {
                let name = format!("p{i}_{j}");
                let scale = g.add_const(
                    &format!("{name}.g"),
                    Tensor::f32(vec![k], values(k, 30 + 3 * i as u64 + j as u64)),
                );
                let normed = g
                    .add(
                        &format!("{name}.norm"),
                        Op::RmsNorm { axis: 1, epsilon: 1e-5 },
                        &[x, scale],
                    )
                    .unwrap();
                let q = g.add(&format!("{name}.xq8"), Op::QuantizeQ8, &[normed]).unwrap();
                let w = packed_tensor(block, n, k, &weight_bytes(block, n, k, 100 + 7 * i as u64 + j as u64)).unwrap();
                let w = g.add_const(&format!("{name}.w"), w);
                let mut y = g.add(&name, Op::QMatMul { block, n, k }, &[q, w]).unwrap();
                match epilogue {
                    1 => {
                        y = g
                            .add(&format!("{name}.res"), Op::Binary(BinaryOp::Add), &[y, r])
                            .unwrap()
                    }
                    2 => {
                        y = g
                            .add(&format!("{name}.res"), Op::Binary(BinaryOp::Add), &[y, x])
                            .unwrap()
                    }
                    _ => {}
                }
                g.add_output(&format!("y{i}_{j}"), y);
                if let Some(p) = schedule {
                    db.force(format!("qgemm_rmsnorm_xq8:{block}:m=1,n={n},k={k}"), Schedule::Gemv(p));
                }
            }
        }
        let opts = CompileOptions {
            tuning: schedule.is_some().then_some(db),
            target: targets[target].clone(),
            ..CompileOptions::default()
        };
        let model = Model {
            name: "gemv_qx".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let manifest = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
        let what = format!("schedule {schedule:?}, target {target}");
        let dispatches = &manifest.programs[0].dispatches;
        let mut quantizers = 0;
        for d in dispatches {
            let kernel = &manifest.kernels[d.kernel];
            let wgsl = std::fs::read_to_string(dir.path().join("b").join(&kernel.file)).unwrap();
            if d.label.ends_with("_3.xq8") {
                // The wide projection's norm and quantizer, one kernel; its GEMV reads the blocks.
                assert!(!kernel.schedule.starts_with("gemv"), "{what}: {}", d.label);
                quantizers += 1;
                continue;
            }
            assert!(
                kernel.schedule.starts_with("gemv"),
                "{what}: {} ({})",
                d.label,
                kernel.schedule
            );
            assert!(wgsl.contains("dot4I8Packed("), "{what}: {}", d.label);
            // The other GEMVs with the norm and quantizer inside.
            let inside = !d.label.contains("_3");
            assert_eq!(d.label.contains(".xq8+"), inside, "{what}: {}", d.label);
            assert_eq!(wgsl.contains("kiln_xs"), inside, "{what}: {}", d.label);
            if let (Some(p), true) = (schedule, inside) {
                assert_requested(kernel, Schedule::Gemv(p), &d.label);
            }
        }
        assert_eq!(quantizers, 3, "{what}: the wide projections' quantizers");
        assert_eq!(
            dispatches.len(),
            15,
            "{what}: one kernel per projection and 3 quantizers"
        );
        let bundle = Bundle::load(dir.path().join("b")).unwrap();
        let inputs = HashMap::from([
            ("x".to_string(), Tensor::f32(vec![1, k], values(k, 5))),
            ("r".to_string(), Tensor::f32(vec![1, 40], values(40, 6))),
        ]);
        assert_matches_interpreter_both_ways(&bundle, &model.graph, &inputs, &what);
    }
}
