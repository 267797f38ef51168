//! Snapshots of the quantized matmul kernels (`qgemv.wgsl`, `qgemm_vec4.wgsl`, `qgemm.wgsl` with the block
//! decoders of `quant.wgsl`) for every block type, and with a fused epilogue. A diff here is a
//! change in generated code: review it (`cargo insta review`, or `INSTA_UPDATE=always` and
//! `git diff`) before accepting. Each snapshot is checked to hold the kernels it is about.

use kiln_compiler::{compile, CompileOptions, Model, QuantLayout};
use kiln_ir::quant::packed_words;
use kiln_ir::{BinaryOp, BlockType, DType, Dim, Graph, Op, Tensor, TensorData, TensorType};
use kiln_schedules::tuning::TuningDb;
use kiln_schedules::{GemmParams, GemvParams, Schedule};
use std::collections::BTreeMap;

/// One QMatMul per block type on an f32 `[m, k]` input (K = 256, N = 8), each its own output,
/// optionally followed by `+ bias`.
fn wgsl(m: usize, bias: bool, blocks: &[BlockType]) -> String {
    wgsl_with(m, bias, blocks, None)
}

/// [`wgsl`] with every quantized matmul given `schedule` (a tuning record under its key).
fn wgsl_with(m: usize, bias: bool, blocks: &[BlockType], schedule: Option<Schedule>) -> String {
    let (n, k) = (8, 256);
    let mut opts = CompileOptions::default();
    if let Some(s) = schedule {
        let mut db = TuningDb::default();
        for block in blocks {
            db.force(format!("qgemm:{block}:m={m},n={n},k={k}"), s);
        }
        opts.tuning = Some(db);
    }
    let mut g = Graph::new();
    for (i, &block) in blocks.iter().enumerate() {
        let x = g.add_input(
            &format!("x{i}"),
            TensorType {
                dtype: DType::F32,
                shape: vec![Dim::from(m), Dim::from(k)],
            },
        );
        let words = packed_words(block, n, k).unwrap();
        let w = g.add_const(
            &format!("w{i}"),
            Tensor {
                shape: vec![words],
                data: TensorData::U32((0..words as u32).collect()),
            },
        );
        let mut y = g.add(&format!("qmm{i}"), Op::QMatMul { block, n, k }, &[x, w]).unwrap();
        if bias {
            let b = g.add_const(&format!("b{i}"), Tensor::f32(vec![n], vec![0.5; n]));
            y = g.add(&format!("bias{i}"), Op::Binary(BinaryOp::Add), &[y, b]).unwrap();
        }
        g.add_output(&format!("out{i}"), y);
    }
    let model = Model {
        name: "snap".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let b = compile(&model, &opts).expect("compiles");
    b.kernel_sources
        .iter()
        .map(|(f, s)| format!("// ===== {f}\n{s}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn qgemv_for_every_block_type() {
    let src = wgsl(1, false, &BlockType::ALL);
    assert_eq!(src.matches("// Kiln quantized GEMV kernel").count(), 8);
    insta::assert_snapshot!(src);
}

#[test]
fn qgemm_for_every_block_type() {
    let src = wgsl(13, false, &BlockType::ALL);
    assert_eq!(src.matches("// Kiln quantized tiled GEMM kernel").count(), 8);
    insta::assert_snapshot!(src);
}

#[test]
fn qgemm_double_buffered_8x8_and_scalar_tiles() {
    // The vec4 template with two stages and 8x8 thread tiles (several x loads per thread), and
    // the scalar 2x2 tile of `qgemm.wgsl` (the fallback where no vec4 tile fits the limits).
    let db = Schedule::Gemm(GemmParams::new(64, 64, 16, 8, 8).double_buffered());
    let scalar = Schedule::Gemm(GemmParams::new(32, 32, 16, 2, 2));
    let blocks = [BlockType::Q4_1, BlockType::Q6K];
    let src = wgsl_with(13, false, &blocks, Some(db)) + &wgsl_with(13, false, &blocks, Some(scalar));
    assert_eq!(
        src.matches("// Kiln quantized tiled GEMM kernel (vec4 register tile)")
            .count(),
        2
    );
    assert_eq!(src.matches("gemm(bm=64, bn=64, bk=16, tm=8, tn=8, db)").count(), 2);
    assert_eq!(src.matches("gemm(bm=32, bn=32, bk=16, tm=2, tn=2)").count(), 2);
    insta::assert_snapshot!(src);
}

#[test]
fn quantized_kernels_with_a_bias_epilogue() {
    let src = wgsl(1, true, &[BlockType::Q4_1]) + &wgsl(13, true, &[BlockType::Q4K]);
    assert_eq!(src.matches("fn kiln_epilogue").count(), 2);
    insta::assert_snapshot!(src);
}

#[test]
fn qgemm_coop_variant_for_a_symbolic_prompt_with_a_bias() {
    // A prefill's product: `n` prompt rows (symbolic) of K = 256 times a Q4_1 W of 64 rows, plus
    // a bias, compiled with --precision f16. The tiled f32 kernel gets a cooperative-matrix
    // variant whose grid follows the rows; a 1-row product (the GEMV kind) gets none.
    let (n, k) = (64, 256);
    let compile_f16 = |rows: Dim| {
        let mut g = Graph::new();
        let x = g.add_input(
            "x",
            TensorType {
                dtype: DType::F32,
                shape: vec![rows, Dim::from(k)],
            },
        );
        let block = BlockType::Q4_1;
        let words = packed_words(block, n, k).unwrap();
        let w = g.add_const(
            "w",
            Tensor {
                shape: vec![words],
                data: TensorData::U32((0..words as u32).collect()),
            },
        );
        let y = g.add("qmm", Op::QMatMul { block, n, k }, &[x, w]).unwrap();
        let b = g.add_const("b", Tensor::f32(vec![n], vec![0.5; n]));
        let y = g.add("bias", Op::Binary(BinaryOp::Add), &[y, b]).unwrap();
        g.add_output("y", y);
        let model = Model {
            name: "snap".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        };
        let opts = CompileOptions {
            precision: kiln_compiler::Precision::F16,
            target: kiln_schedules::DeviceLimits::h200(),
            ..Default::default()
        };
        compile(&model, &opts).expect("compiles")
    };
    let b = compile_f16(Dim::sym("n"));
    assert_eq!(b.manifest.kernels.len(), 1);
    let kernel = &b.manifest.kernels[0];
    assert!(kernel.schedule.starts_with("gemm("), "{kernel:?}");
    assert_eq!(kernel.variants.len(), 1, "{kernel:?}");
    let v = &kernel.variants[0];
    assert!(v.schedule.starts_with("coop_gemm("), "{v:?}");
    assert_eq!(
        v.requires.features,
        vec!["shader-f16".to_string(), "wgpu-cooperative-matrix".into()]
    );
    assert_eq!(v.requires.subgroup_size, Some(32));
    // The grid's rows follow the symbol, as the base kernel's do.
    assert!(v.grid[1].as_const().is_none(), "{:?}", v.grid);
    assert_eq!(b.manifest.programs[0].dispatches[0].grid[1].as_const(), None);
    let src = &b
        .kernel_sources
        .iter()
        .find(|(f, _)| *f == v.file)
        .expect("variant source")
        .1;
    assert!(
        src.contains("// Kiln quantized GEMM kernel (cooperative matrices)"),
        "{src}"
    );
    assert!(
        src.contains("fn kiln_epilogue") && src.contains("coopMultiplyAdd"),
        "{src}"
    );
    // naga: valid only with cooperative matrices, and it writes as SPIR-V (wgpu's Vulkan path).
    {
        use naga::valid::{Capabilities, ValidationFlags, Validator};
        let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
        let caps = Capabilities::SHADER_FLOAT16 | Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        assert!(Validator::new(ValidationFlags::all(), caps).validate(&module).is_err());
        let info = Validator::new(ValidationFlags::all(), caps | Capabilities::COOPERATIVE_MATRIX)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
        let opts = naga::back::spv::Options {
            lang_version: (1, 3),
            ..Default::default()
        };
        assert!(
            naga::back::spv::write_vec(&module, &info, &opts, None)
                .expect("writes SPIR-V")
                .len()
                > 100
        );
    }
    insta::assert_snapshot!(src);
    // One row: the quantized GEMV, no variant.
    let b = compile_f16(Dim::c(1));
    assert!(b.manifest.kernels.iter().all(|k| k.variants.is_empty()));
}

/// Every member of the quantized variant's cooperative-matrix space (double-buffered stages
/// included), forced through a tuning record on the variant's key for a 200-row product with a
/// bias (ragged blocks), renders WGSL that naga validates with cooperative matrices and writes
/// as SPIR-V.
#[test]
fn qgemm_coop_space_members_validate() {
    use kiln_schedules::{space, DeviceLimits};
    let (n, k) = (192, 256);
    let members = space::quant_coop_gemm(&DeviceLimits::h200());
    assert!(members
        .iter()
        .any(|s| matches!(s, Schedule::CoopGemm(p) if p.double_buffer)));
    for s in members {
        let mut g = Graph::new();
        let x = g.add_input(
            "x",
            TensorType {
                dtype: DType::F32,
                shape: vec![Dim::c(200), Dim::from(k)],
            },
        );
        let block = BlockType::Q4_1;
        let words = packed_words(block, n, k).unwrap();
        let w = g.add_const(
            "w",
            Tensor {
                shape: vec![words],
                data: TensorData::U32((0..words as u32).collect()),
            },
        );
        let y = g.add("qmm", Op::QMatMul { block, n, k }, &[x, w]).unwrap();
        let b = g.add_const("b", Tensor::f32(vec![n], vec![0.5; n]));
        let y = g.add("bias", Op::Binary(BinaryOp::Add), &[y, b]).unwrap();
        g.add_output("y", y);
        let db = TuningDb::forcing(format!("coop qgemm:{block}:m=200,n={n},k={k}"), s);
        let model = Model {
            name: "snap".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        };
        let opts = CompileOptions {
            precision: kiln_compiler::Precision::F16,
            target: DeviceLimits::h200(),
            tuning: Some(db),
            ..Default::default()
        };
        let b = compile(&model, &opts).expect("compiles");
        let v = &b.manifest.kernels[0].variants[0];
        assert_eq!(v.schedule, s.to_string());
        let src = &b.kernel_sources.iter().find(|(f, _)| *f == v.file).expect("variant").1;
        use naga::valid::{Capabilities, ValidationFlags, Validator};
        let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
        let caps =
            Capabilities::SHADER_FLOAT16 | Capabilities::SHADER_FLOAT16_IN_FLOAT32 | Capabilities::COOPERATIVE_MATRIX;
        let info = Validator::new(ValidationFlags::all(), caps)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{s}: {}", e.emit_to_string(src)));
        let opts = naga::back::spv::Options {
            lang_version: (1, 3),
            ..Default::default()
        };
        assert!(
            naga::back::spv::write_vec(&module, &info, &opts, None)
                .expect("SPIR-V")
                .len()
                > 100
        );
    }
}

#[test]
fn a_shared_qgemm_kernel_with_different_grids_keeps_no_coop_variant() {
    // Two products with the same W shape and block type but different symbolic row counts
    // share one kernel (same WGSL, rows as a parameter) with different grids. A variant's grid
    // replaces every dispatch's, so no single one could hold: the kernel keeps no variant, and
    // the bundle still compiles and validates. Either product alone gets one.
    let (n, k) = (64, 256);
    let build = |rows: &[&str]| {
        let mut g = Graph::new();
        for (i, rows) in rows.iter().enumerate() {
            let x = g.add_input(
                &format!("x{i}"),
                TensorType {
                    dtype: DType::F32,
                    shape: vec![Dim::sym(rows), Dim::from(k)],
                },
            );
            let block = BlockType::Q8_0;
            let words = packed_words(block, n, k).unwrap();
            let w = g.add_const(
                &format!("w{i}"),
                Tensor {
                    shape: vec![words],
                    data: TensorData::U32((0..words as u32).collect()),
                },
            );
            let y = g.add(&format!("qmm{i}"), Op::QMatMul { block, n, k }, &[x, w]).unwrap();
            g.add_output(&format!("y{i}"), y);
        }
        let model = Model {
            name: "shared".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        };
        let opts = CompileOptions {
            precision: kiln_compiler::Precision::F16,
            target: kiln_schedules::DeviceLimits::h200(),
            ..Default::default()
        };
        compile(&model, &opts).expect("compiles")
    };
    let one = build(&["a"]);
    assert_eq!(one.manifest.kernels[0].variants.len(), 1);
    let b = build(&["a", "b"]);
    let dispatches = &b.manifest.programs[0].dispatches;
    assert_eq!(dispatches.len(), 2);
    assert_eq!(dispatches[0].kernel, dispatches[1].kernel, "one shared kernel");
    assert_ne!(dispatches[0].grid, dispatches[1].grid);
    assert!(b.manifest.kernels.iter().all(|k| k.variants.is_empty()));
    assert!(!b.kernel_sources.iter().any(|(_, s)| s.contains("coopMultiplyAdd")));
}

#[test]
fn decode_gemv_with_the_rms_norm_prologue_and_unrolled_parts() {
    // A decode step's norm and its projection (K = 4096, one row): the norm fused as the
    // GEMV's prologue (x and the scale read as vec4s, the sum of squares gathered on the way),
    // and 8 parts per loop step.
    let (n, k) = (64, 4096);
    let mut g = Graph::new();
    let x = g.add_input(
        "x",
        TensorType {
            dtype: DType::F32,
            shape: vec![Dim::from(1usize), Dim::from(k)],
        },
    );
    let scale = g.add_const("g", Tensor::f32(vec![k], vec![1.5; k]));
    let h = g
        .add("norm", Op::RmsNorm { axis: 1, epsilon: 1e-5 }, &[x, scale])
        .unwrap();
    let block = BlockType::Q4_1;
    let words = packed_words(block, n, k).unwrap();
    let w = g.add_const(
        "w",
        Tensor {
            shape: vec![words],
            data: TensorData::U32((0..words as u32).collect()),
        },
    );
    let y = g.add("proj", Op::QMatMul { block, n, k }, &[h, w]).unwrap();
    g.add_output("y", y);
    let model = Model {
        name: "snap".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let b = compile(&model, &CompileOptions::default()).expect("compiles");
    assert_eq!(b.kernel_sources.len(), 1, "the norm has no kernel of its own");
    let src = &b.kernel_sources[0].1;
    assert!(src.contains("kiln_ss += dot(v, v);") && src.contains("inverseSqrt(ss / 4096.0"));
    assert!(src.contains("var<storage, read> in2: array<vec4<f32>>;"));
    assert!(src.contains("8 parts per loop step"));
    insta::assert_snapshot!(src);
}

/// The kernel sources of a decode step's FFN norm, gate and up projections (q4_1, K = 512,
/// 64 outputs) and SwiGLU compiled with `schedule` for the merged pair.
fn swiglu_pair_sources(schedule: Schedule) -> Vec<String> {
    swiglu_pair_sources_in(Some(schedule), QuantLayout::Rows)
}

/// [`swiglu_pair_sources`] with the weights stored in `layout`, the pair given `schedule` (or
/// its default).
fn swiglu_pair_sources_in(schedule: Option<Schedule>, layout: QuantLayout) -> Vec<String> {
    let (n, k) = (64, 512);
    let mut g = Graph::new();
    let x = g.add_input(
        "x",
        TensorType {
            dtype: DType::F32,
            shape: vec![Dim::from(1usize), Dim::from(k)],
        },
    );
    let scale = g.add_const("g", Tensor::f32(vec![k], vec![1.5; k]));
    let h = g
        .add("norm", Op::RmsNorm { axis: 1, epsilon: 1e-5 }, &[x, scale])
        .unwrap();
    let block = BlockType::Q4_1;
    let words = packed_words(block, n, k).unwrap();
    let mut proj = |name: &str, seed: u32| {
        let w = g.add_const(
            &format!("{name}.w"),
            Tensor {
                shape: vec![words],
                data: TensorData::U32((seed..seed + words as u32).collect()),
            },
        );
        g.add(name, Op::QMatMul { block, n, k }, &[h, w]).unwrap()
    };
    let gate = proj("gate", 0);
    let up = proj("up", 7);
    let sig = g.add("sig", Op::Unary(kiln_ir::UnaryOp::Sigmoid), &[gate]).unwrap();
    let silu = g.add("silu", Op::Binary(BinaryOp::Mul), &[gate, sig]).unwrap();
    let y = g.add("swiglu", Op::Binary(BinaryOp::Mul), &[silu, up]).unwrap();
    g.add_output("y", y);
    let model = Model {
        name: "snap".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let tuning = schedule.map(|s| {
        let mut db = TuningDb::default();
        db.force(format!("qgemm_rmsnorm_glu:{block}:m=1,n={},k={k}", 2 * n), s);
        db
    });
    let opts = CompileOptions {
        tuning,
        quant_layout: layout,
        ..Default::default()
    };
    let b = compile(&model, &opts).expect("compiles");
    assert_eq!(b.manifest.kernels.len(), 1, "norm, gate, up and SwiGLU in one kernel");
    b.kernel_sources.into_iter().map(|(_, src)| src).collect()
}

#[test]
fn decode_swiglu_pair_as_one_gemv_with_shared_x_reads() {
    // The gate and up weights merged gate rows first, one GEMV whose lanes each compute 2
    // outputs (2 gate rows and the same 2 rows of the up half, x read once per part for all
    // 4) and write silu(gate) * up.
    let sources = swiglu_pair_sources(Schedule::Gemv(GemvParams {
        lane_rows: 2,
        ..GemvParams::new(4, 32, 1)
    }));
    assert_eq!(sources.len(), 1, "no variant");
    let src = &sources[0];
    assert!(src.contains("fn kiln_qdotx") && src.contains("lane_rows=2"));
    assert!(src.contains("let rb2 = (64u + gn) * 320u;"), "the up half's first row");
    assert!(src.contains("(1.0 + exp(-v))) * w;"));
    insta::assert_snapshot!(src);
}

#[test]
fn decode_swiglu_pair_gemv_adding_by_subgroup_shuffles() {
    // Subgroup sums: the kernel is the workgroup-memory form, and its variant adds each
    // lane's 32 partial sums (gate, up and the norm's squares) by a butterfly of 5 shuffles,
    // with no workgroup memory and no barrier.
    let sources = swiglu_pair_sources(Schedule::Gemv(GemvParams {
        sg: true,
        ..GemvParams::new(4, 32, 1)
    }));
    assert_eq!(sources.len(), 2, "the kernel and its subgroup variant");
    assert!(!sources[0].contains("subgroupShuffleXor") && sources[0].contains("workgroupBarrier"));
    let src = &sources[1];
    assert!(src.contains(", sg)") && !src.contains("workgroupBarrier") && !src.contains("var<workgroup>"));
    assert_eq!(
        src.matches("subgroupShuffleXor(").count(),
        3 * 5,
        "gate, up, squares x 5 steps"
    );
    insta::assert_snapshot!(src);
}

#[test]
fn decode_swiglu_pair_row_parallel_over_block_column_weights() {
    // `--weight-layout block-columns`: the pair's default GEMV is row-parallel, a thread per
    // output (gate and up row) and K slice, whole blocks per step at byte (kb * 128 + row) * 20.
    let sources = swiglu_pair_sources_in(None, QuantLayout::BlockColumns);
    assert_eq!(sources.len(), 1);
    let src = &sources[0];
    assert!(src.contains("GEMV kernel, row-parallel") && src.contains("gemv(lanes=64, ksplit=4, rows=1)"));
    assert!(src.contains("let ob = kb * 2560u;") && src.contains("let rb0 = gn * 20u;"));
    insta::assert_snapshot!(src);
}
