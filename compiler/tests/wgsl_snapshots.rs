//! Snapshots of the WGSL each template renders, for every template (injective, reduce, softmax,
//! layernorm, gemm, topk, scatter) and each of their epilogue and dtype branches. A diff here is
//! a change in generated code: review it (`cargo insta review`, or `INSTA_UPDATE=always` and
//! `git diff`) before accepting. Every snapshot is checked to hold the kernels it is about, so a
//! graph the compiler optimizes away cannot leave a snapshot that shows nothing.

use kiln_compiler::{compile, CompileOptions, Model};
use kiln_ir::{BinaryOp, DType, Dim, Graph, NodeId, Op, ReduceOp, SliceAxis, Tensor, TensorType, UnaryOp};
use std::collections::BTreeMap;

fn ramp(shape: Vec<usize>) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(shape, (0..n).map(|i| i as f32 * 0.5).collect())
}

/// Compiles `build`'s graph (one output) at `opt_level` and returns every kernel's WGSL, joined.
fn wgsl(opt_level: u8, build: impl FnOnce(&mut Graph) -> NodeId) -> String {
    wgsl_outputs(opt_level, |g| vec![build(g)])
}

/// [`wgsl`] for a graph with several outputs (`out0`, `out1`, ...), each computed by its own
/// kernels.
fn wgsl_outputs(opt_level: u8, build: impl FnOnce(&mut Graph) -> Vec<NodeId>) -> String {
    let mut g = Graph::new();
    for (i, out) in build(&mut g).into_iter().enumerate() {
        g.add_output(&format!("out{i}"), out);
    }
    let model = Model {
        name: "snap".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let b = compile(
        &model,
        &CompileOptions {
            opt_level,
            ..Default::default()
        },
    )
    .expect("compiles");
    sources(&b)
}

/// Every kernel file of a bundle, each after a `// ===== file` line (one snapshot per bundle).
fn sources(b: &kiln_compiler::CompiledBundle) -> String {
    b.kernel_sources
        .iter()
        .map(|(f, s)| format!("// ===== {f}\n{s}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn input(g: &mut Graph, name: &str, shape: Vec<Dim>) -> NodeId {
    typed_input(g, name, DType::F32, shape)
}

fn typed_input(g: &mut Graph, name: &str, dtype: DType, shape: Vec<Dim>) -> NodeId {
    g.add_input(name, TensorType { dtype, shape })
}

/// Asserts that `src` holds exactly `n` kernels rendered from `template` (by the template's
/// first line), so that a snapshot cannot silently lose the kernel it is about.
#[track_caller]
fn assert_kernels(src: &str, template_head: &str, n: usize) {
    let found = src.matches(template_head).count();
    assert_eq!(found, n, "expected {n} kernel(s) starting '{template_head}' in:\n{src}");
}

#[test]
fn injective_fused_broadcast_chain() {
    insta::assert_snapshot!(wgsl(2, |g| {
        let x = input(g, "x", vec![Dim::sym("batch"), Dim::c(4)]);
        let b = g.add_const("b", ramp(vec![4]));
        let half = g.add_const("half", Tensor::scalar(DType::F32, 0.5));
        let a = g.add("add", Op::Binary(BinaryOp::Add), &[x, b]).unwrap();
        let m = g.add("mul", Op::Binary(BinaryOp::Mul), &[a, half]).unwrap();
        let e = g.add("erf", Op::Unary(UnaryOp::Erf), &[m]).unwrap();
        let c = g.add("lt", Op::Binary(BinaryOp::Less), &[e, x]).unwrap();
        g.add("where", Op::Where, &[c, e, x]).unwrap()
    }));
}

/// A large elementwise chain takes the vec4 injective kernel: `x` (read at the output's own
/// index) loaded as 4-vectors, the broadcast `b` element by element, 4-vectors stored.
#[test]
fn injective_vec4_large_elementwise() {
    insta::assert_snapshot!(wgsl(2, |g| {
        let x = input(g, "x", vec![Dim::sym("batch"), Dim::c(1024), Dim::c(1024)]);
        let b = g.add_const("b", ramp(vec![1024]));
        let s = g.add("sig", Op::Unary(UnaryOp::Sigmoid), &[x]).unwrap();
        let m = g.add("mul", Op::Binary(BinaryOp::Mul), &[x, s]).unwrap();
        g.add("add", Op::Binary(BinaryOp::Add), &[m, b]).unwrap()
    }));
}

#[test]
fn injective_data_movement() {
    insta::assert_snapshot!(wgsl(0, |g| {
        let x = input(g, "x", vec![Dim::c(2), Dim::c(3), Dim::c(4)]);
        let t = g.add("t", Op::Transpose { perm: vec![2, 0, 1] }, &[x]).unwrap();
        let s = g
            .add(
                "s",
                Op::Slice {
                    axes: vec![SliceAxis {
                        axis: 0,
                        start: -1,
                        end: -5,
                        step: -2,
                    }],
                },
                &[t],
            )
            .unwrap();
        let idx = g.add_const("idx", Tensor::i32(vec![2], vec![1, -1]));
        let ga = g.add("gather", Op::Gather { axis: 2 }, &[s, idx]).unwrap();
        g.add("cat", Op::Concat { axis: 2 }, &[ga, ga]).unwrap()
    }));
}

#[test]
fn row_reductions() {
    let src = wgsl_outputs(0, |g| {
        let x = input(g, "x", vec![Dim::c(6), Dim::sym("seq"), Dim::c(5)]);
        let r = g
            .add(
                "sum_last",
                Op::Reduce {
                    op: ReduceOp::Sum,
                    axes: vec![2],
                    keep_dims: true,
                },
                &[x],
            )
            .unwrap();
        let m = g
            .add(
                "max_mid",
                Op::Reduce {
                    op: ReduceOp::Max,
                    axes: vec![1],
                    keep_dims: false,
                },
                &[x],
            )
            .unwrap();
        let a = g
            .add(
                "argmin",
                Op::ArgReduce {
                    max: false,
                    axis: 0,
                    keep_dims: false,
                    select_last: true,
                },
                &[m],
            )
            .unwrap();
        // All three are outputs, so each is rendered (the sum used to be dead code).
        vec![r, m, a]
    });
    assert_kernels(&src, "// Kiln reduction kernel", 3);
    insta::assert_snapshot!(src);
}

#[test]
fn softmax_and_layer_norm() {
    insta::assert_snapshot!(wgsl(0, |g| {
        let x = input(g, "x", vec![Dim::sym("batch"), Dim::c(8), Dim::c(16)]);
        let s = g.add("softmax", Op::Softmax { axis: 1, log: true }, &[x]).unwrap();
        let scale = g.add_const("scale", ramp(vec![16]));
        let bias = g.add_const("bias", ramp(vec![16]));
        g.add("ln", Op::LayerNorm { axis: 2, epsilon: 1e-5 }, &[s, scale, bias])
            .unwrap()
    }));
}

#[test]
fn batched_gemm_with_broadcast() {
    insta::assert_snapshot!(wgsl(0, |g| {
        let a = input(g, "a", vec![Dim::sym("batch"), Dim::c(3), Dim::c(100), Dim::c(64)]);
        let w = g.add_const("w", ramp(vec![3, 64, 96]));
        g.add("matmul", Op::MatMul, &[a, w]).unwrap()
    }));
}

#[test]
fn reductions_of_every_op_and_dtype() {
    let src = wgsl_outputs(0, |g| {
        let x = input(g, "x", vec![Dim::c(4), Dim::c(6)]);
        let h = typed_input(g, "h", DType::F16, vec![Dim::c(4), Dim::c(6)]);
        let i = typed_input(g, "i", DType::I32, vec![Dim::c(4), Dim::c(6)]);
        let red = |g: &mut Graph, name: &str, op: ReduceOp, src: NodeId| {
            let r = Op::Reduce {
                op,
                axes: vec![1],
                keep_dims: false,
            };
            g.add(name, r, &[src]).unwrap()
        };
        let arg = Op::ArgReduce {
            max: true,
            axis: 1,
            keep_dims: false,
            select_last: false,
        };
        vec![
            red(g, "mean_f32", ReduceOp::Mean, x),
            red(g, "prod_f32", ReduceOp::Prod, x),
            red(g, "min_f32", ReduceOp::Min, x),
            red(g, "sum_f16", ReduceOp::Sum, h),
            red(g, "max_i32", ReduceOp::Max, i),
            red(g, "sum_i32", ReduceOp::Sum, i),
            g.add("argmax_i32", arg, &[i]).unwrap(),
        ]
    });
    assert_kernels(&src, "// Kiln reduction kernel", 7);
    insta::assert_snapshot!(src);
}

#[test]
fn softmax_plain_and_f16() {
    let src = wgsl_outputs(0, |g| {
        let x = input(g, "x", vec![Dim::c(3), Dim::c(10)]);
        let h = typed_input(g, "h", DType::F16, vec![Dim::c(3), Dim::c(10)]);
        vec![
            g.add("softmax", Op::Softmax { axis: 1, log: false }, &[x]).unwrap(),
            g.add("softmax_f16", Op::Softmax { axis: 0, log: false }, &[h]).unwrap(),
        ]
    });
    assert_kernels(&src, "// Kiln softmax kernel", 2);
    insta::assert_snapshot!(src);
}

#[test]
fn injective_f16_and_small_integers() {
    let src = wgsl_outputs(0, |g| {
        let h = typed_input(g, "h", DType::F16, vec![Dim::c(8)]);
        let b = typed_input(g, "b", DType::I8, vec![Dim::c(8)]);
        let u = typed_input(g, "u", DType::U8, vec![Dim::c(8)]);
        let e = g.add("exp_f16", Op::Unary(UnaryOp::Exp), &[h]).unwrap();
        let s = g.add("add_i8", Op::Binary(BinaryOp::Add), &[b, b]).unwrap();
        let m = g.add("mul_u8", Op::Binary(BinaryOp::Mul), &[u, u]).unwrap();
        let c = g.add("cast_f32", Op::Cast(DType::F32), &[h]).unwrap();
        let t = g.add("tanh_softplus", Op::Unary(UnaryOp::Softplus), &[c]).unwrap();
        let t = g.add("tanh", Op::Unary(UnaryOp::Tanh), &[t]).unwrap();
        vec![e, s, m, t]
    });
    assert!(src.contains("kiln_f16") && src.contains("kiln_softplus") && src.contains("kiln_tanh"));
    insta::assert_snapshot!(src);
}

#[test]
fn integer_gemm() {
    // M = 3 takes the scalar template's 4x256 block, M = 5 a small vec4 tile.
    let src = wgsl_outputs(0, |g| {
        let mut outs = Vec::new();
        for (i, m) in [3, 5].into_iter().enumerate() {
            let a = typed_input(g, &format!("a{i}"), DType::I32, vec![Dim::c(m), Dim::c(7)]);
            let b = typed_input(g, &format!("b{i}"), DType::I32, vec![Dim::c(7), Dim::c(3)]);
            outs.push(g.add(&format!("imatmul{i}"), Op::MatMul, &[a, b]).unwrap());
        }
        outs
    });
    assert_kernels(&src, "// Kiln GEMM kernel", 2);
    assert_kernels(&src, "// Kiln GEMM kernel (vec4 register tile)", 1);
    // The integer branches accumulate with `+ a * b`, not fma.
    assert!(src.contains("+ a_0 * b_0") && !src.contains("fma("), "{src}");
    assert!(src.contains("+ vec4<i32>(a0[0]) * b0"), "{src}");
    insta::assert_snapshot!(src);
}

fn conv(g: &mut Graph, name: &str, x: NodeId, w: NodeId, bias: Option<NodeId>, groups: usize, sp: usize) -> NodeId {
    let op = Op::Conv {
        strides: vec![2; sp],
        pads: vec![(1, 1); sp],
        dilations: vec![1; sp],
        groups,
    };
    let mut ins = vec![x, w];
    ins.extend(bias);
    g.add(name, op, &ins).unwrap()
}

#[test]
fn conv_gemm_with_bias_epilogue() {
    let src = wgsl(0, |g| {
        let x = input(g, "x", vec![Dim::c(1), Dim::c(4), Dim::c(9), Dim::c(9)]);
        let w = g.add_const("w", ramp(vec![6, 2, 3, 3]));
        let b = g.add_const("bias", ramp(vec![6]));
        conv(g, "conv_bias", x, w, Some(b), 2, 2)
    });
    assert_kernels(&src, "// Kiln GEMM kernel", 1);
    assert!(src.contains("fn kiln_epilogue"), "{src}");
    insta::assert_snapshot!(src);
}

#[test]
fn conv_gemm_without_bias_1d() {
    let src = wgsl(0, |g| {
        let x = input(g, "x", vec![Dim::c(2), Dim::c(3), Dim::c(11)]);
        let w = g.add_const("w", ramp(vec![4, 3, 3]));
        conv(g, "conv1d", x, w, None, 1, 1)
    });
    assert_kernels(&src, "// Kiln GEMM kernel", 1);
    assert!(!src.contains("fn kiln_epilogue"), "{src}");
    insta::assert_snapshot!(src);
}

/// A convolution whose channels per group are a multiple of the K-step takes the
/// channel-blocked loads (a tuning record forces a vec4 tile): each load's pixel and base
/// addresses computed before the K loop, one uniform offset and one window check per step.
#[test]
fn conv_gemm_channel_blocked_loads() {
    use kiln_schedules::tuning::TuningDb;
    use kiln_schedules::{GemmParams, Schedule};
    let db = TuningDb::forcing(
        "conv:x=1x16x9x9,w=20x16x3x3,s=[2, 2],g=1",
        Schedule::Gemm(GemmParams::new(64, 64, 16, 4, 4)),
    );
    let mut g = Graph::new();
    let x = input(&mut g, "x", vec![Dim::c(1), Dim::c(16), Dim::c(9), Dim::c(9)]);
    let w = g.add_const("w", ramp(vec![20, 16, 3, 3]));
    let b = g.add_const("bias", ramp(vec![20]));
    let y = conv(&mut g, "conv_blocked", x, w, Some(b), 1, 2);
    g.add_output("out0", y);
    let model = Model {
        name: "snap".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let opts = CompileOptions {
        opt_level: 0,
        tuning: Some(db),
        ..Default::default()
    };
    let b = compile(&model, &opts).expect("compiles");
    let src = sources(&b);
    assert_kernels(&src, "// Kiln GEMM kernel (vec4 register tile)", 1);
    assert!(src.contains("let cv_bx0 = "), "{src}");
    insta::assert_snapshot!(src);
}

/// A depthwise convolution (one input channel per group) is the direct kernel: a thread per
/// output element over the window's taps, the bias, then the fused activation.
#[test]
fn conv_depthwise_direct_with_epilogue() {
    let src = wgsl(2, |g| {
        let x = input(g, "x", vec![Dim::c(2), Dim::c(4), Dim::c(7), Dim::c(6)]);
        let w = g.add_const("w", ramp(vec![4, 1, 3, 3]));
        let b = g.add_const("bias", ramp(vec![4]));
        let c = conv(g, "dwconv", x, w, Some(b), 4, 2);
        g.add("relu", Op::Unary(UnaryOp::Relu), &[c]).unwrap()
    });
    assert_kernels(&src, "// Kiln injective kernel", 1);
    assert!(src.contains("fn kiln_epilogue"), "{src}");
    insta::assert_snapshot!(src);
}

#[test]
fn topk_largest_and_smallest() {
    let src = wgsl_outputs(0, |g| {
        let x = input(g, "x", vec![Dim::c(3), Dim::c(10), Dim::c(2)]);
        let i = typed_input(g, "i", DType::I32, vec![Dim::c(4), Dim::c(9)]);
        vec![
            g.add(
                "top3",
                Op::TopK {
                    k: 3,
                    axis: 1,
                    largest: true,
                },
                &[x],
            )
            .unwrap(),
            g.add(
                "bottom2",
                Op::TopK {
                    k: 2,
                    axis: 1,
                    largest: false,
                },
                &[i],
            )
            .unwrap(),
        ]
    });
    assert_kernels(&src, "// Kiln top-k kernel", 2);
    insta::assert_snapshot!(src);
}

#[test]
fn scatter_nd_every_reduction() {
    use kiln_ir::ScatterReduction as R;
    let src = wgsl_outputs(0, |g| {
        let data = input(g, "data", vec![Dim::c(4), Dim::c(3)]);
        let idata = typed_input(g, "idata", DType::I32, vec![Dim::c(4), Dim::c(3)]);
        let idx = g.add_const("idx", Tensor::i32(vec![2, 1], vec![0, 2]));
        let upd = g.add_const("upd", ramp(vec![2, 3]));
        let iupd = g.add_const("iupd", Tensor::i32(vec![2, 3], vec![1, 2, 3, 4, 5, 6]));
        let mut outs = Vec::new();
        for (name, r) in [
            ("none", R::None),
            ("add", R::Add),
            ("mul", R::Mul),
            ("max", R::Max),
            ("min", R::Min),
        ] {
            outs.push(g.add(name, Op::ScatterNd { reduction: r }, &[data, idx, upd]).unwrap());
        }
        outs.push(
            g.add("add_i32", Op::ScatterNd { reduction: R::Add }, &[idata, idx, iupd])
                .unwrap(),
        );
        outs
    });
    assert_kernels(&src, "// Kiln scatter-nd kernel", 6);
    insta::assert_snapshot!(src);
}

#[test]
fn gemm_vec4_tile_with_scalar_operand_reads() {
    // K = 75 is not a multiple of 4, so the vec4 register tile reads its operands as scalars.
    let src = wgsl(0, |g| {
        let a = input(g, "a", vec![Dim::c(2048), Dim::c(75)]);
        let w = g.add_const("w", ramp(vec![75, 1024]));
        g.add("matmul", Op::MatMul, &[a, w]).unwrap()
    });
    assert_kernels(&src, "// Kiln GEMM kernel (vec4 register tile)", 1);
    assert!(!src.contains("fn kiln_load_a"));
    insta::assert_snapshot!(src);
}

#[test]
fn gemv_for_a_single_row() {
    // M = 1 takes the split-K GEMV kind; N = 96 is read as vec4 columns.
    let src = wgsl(0, |g| {
        let a = input(g, "a", vec![Dim::c(1), Dim::c(64)]);
        let w = g.add_const("w", ramp(vec![64, 96]));
        g.add("matmul", Op::MatMul, &[a, w]).unwrap()
    });
    assert_kernels(&src, "// Kiln GEMV kernel", 1);
    assert!(src.contains("array<vec4<f32>>"));
    insta::assert_snapshot!(src);
}

#[test]
fn gemv_with_scalar_columns() {
    // N = 30 is not a multiple of 4: one column per lane.
    let src = wgsl(0, |g| {
        let a = input(g, "a", vec![Dim::c(3), Dim::c(20)]);
        let w = g.add_const("w", ramp(vec![20, 30]));
        g.add("matmul", Op::MatMul, &[a, w]).unwrap()
    });
    assert_kernels(&src, "// Kiln GEMV kernel", 1);
    assert!(!src.contains("array<vec4<f32>>"));
    insta::assert_snapshot!(src);
}

#[test]
fn layer_norm_rows_as_vec4() {
    // A 1024-wide row read directly: cached as 4-vectors (x, scale, bias and out as vec4
    // arrays, a quarter of the scalar path's loads and stores).
    let src = wgsl(0, |g| {
        let x = input(g, "x", vec![Dim::sym("rows"), Dim::c(1024)]);
        let scale = g.add_const("scale", ramp(vec![1024]));
        let bias = g.add_const("bias", ramp(vec![1024]));
        g.add("ln", Op::LayerNorm { axis: 1, epsilon: 1e-5 }, &[x, scale, bias])
            .unwrap()
    });
    assert!(
        src.contains("var<storage, read> in0: array<vec4<f32>>"),
        "x read as vec4s"
    );
    assert!(
        src.contains("read_write> out: array<vec4<f32>>"),
        "out written as vec4s"
    );
    insta::assert_snapshot!(src);
}

#[test]
fn softmax_and_layer_norm_over_symbolic_rows() {
    // A symbolic row length cannot be cached in registers: three passes over global memory.
    let src = wgsl(0, |g| {
        let x = input(g, "x", vec![Dim::c(4), Dim::sym("seq")]);
        let s = g.add("softmax", Op::Softmax { axis: 1, log: false }, &[x]).unwrap();
        let scale = input(g, "scale", vec![Dim::sym("seq")]);
        let bias = input(g, "bias", vec![Dim::sym("seq")]);
        g.add("ln", Op::LayerNorm { axis: 1, epsilon: 1e-5 }, &[s, scale, bias])
            .unwrap()
    });
    assert_kernels(&src, "// Kiln softmax kernel", 1);
    assert_kernels(&src, "// Kiln layer-norm kernel", 1);
    assert!(
        src.contains("(0 per thread)") && !src.contains("let x0"),
        "symbolic rows stream"
    );
    insta::assert_snapshot!(src);
}

#[test]
fn gemm_split_k_with_epilogue() {
    // 128x64 output tiles with K = 1536: the default splits K; the bias and ReLU move to the
    // combine kernel, which adds the slices first.
    let src = wgsl(2, |g| {
        let a = input(g, "a", vec![Dim::c(128), Dim::c(1536)]);
        let w = g.add_const("w", ramp(vec![1536, 64]));
        let bias = g.add_const("bias", ramp(vec![64]));
        let mm = g.add("matmul", Op::MatMul, &[a, w]).unwrap();
        let b = g.add("bias_add", Op::Binary(BinaryOp::Add), &[mm, bias]).unwrap();
        g.add("relu", Op::Unary(UnaryOp::Relu), &[b]).unwrap()
    });
    assert_kernels(&src, "// Kiln GEMM kernel (vec4 register tile)", 1);
    assert_kernels(&src, "// Kiln split-K combine kernel", 1);
    assert!(src.contains("ksplit=") && src.contains("var<private> k_end"), "{src}");
    let combine = src.split("// Kiln split-K combine kernel").nth(1).unwrap();
    assert!(combine.contains("fn kiln_epilogue"), "{combine}");
    insta::assert_snapshot!(src);
}

#[test]
fn gemm_vec4_loads_through_a_head_merge_prologue() {
    // [1, H, S, D] -> [1, S, H*D] folded into the A loads: after simplification the index keeps
    // D = 8 contiguous, so A is read as vec4s through kiln_x0_v4.
    let src = wgsl(2, |g| {
        let x = input(g, "x", vec![Dim::c(1), Dim::c(4), Dim::c(1024), Dim::c(8)]);
        let t = g.add("t", Op::Transpose { perm: vec![0, 2, 1, 3] }, &[x]).unwrap();
        let r = g
            .add(
                "r",
                Op::Reshape {
                    shape: vec![Dim::c(1), Dim::c(1024), Dim::c(32)],
                },
                &[t],
            )
            .unwrap();
        let w = g.add_const("w", ramp(vec![32, 512]));
        g.add("matmul", Op::MatMul, &[r, w]).unwrap()
    });
    assert_kernels(&src, "// Kiln GEMM kernel (vec4 register tile)", 1);
    assert!(
        src.contains("fn kiln_x0_v4") && src.contains("array<vec4<f32>>"),
        "{src}"
    );
    insta::assert_snapshot!(src);
}

#[test]
fn attention_tiled_over_keys() {
    // Opt-level 3 (level 2 fuses this short sequence only from 128 keys): one flash-attention
    // kernel; K and V blocks staged in workgroup memory, the query row and the output row in
    // registers, the scale as the score expression. (12 query rows: up to 8 take the decode
    // schedule, split over keys.)
    let src = wgsl(3, |g| {
        let shape = vec![Dim::c(1), Dim::c(2), Dim::c(12), Dim::c(4)];
        let q = input(g, "q", shape.clone());
        let k = input(g, "k", shape.clone());
        let v = input(g, "v", shape);
        let kt = g.add("kt", Op::Transpose { perm: vec![0, 1, 3, 2] }, &[k]).unwrap();
        let s = g.add("s", Op::MatMul, &[q, kt]).unwrap();
        let scale = g.add_const("scale", Tensor::f32(vec![1], vec![0.5]));
        let ss = g.add("ss", Op::Binary(BinaryOp::Mul), &[s, scale]).unwrap();
        let p = g.add("p", Op::Softmax { axis: 3, log: false }, &[ss]).unwrap();
        g.add("o", Op::MatMul, &[p, v]).unwrap()
    });
    assert_kernels(&src, "// Kiln attention kernel", 1);
    assert!(
        src.contains("var<workgroup> kv: array<vec4<f32>")
            && src.contains("var<workgroup> ml")
            && src.contains("fn kiln_score")
            && src.contains("schedule: attention(rows="),
        "{src}"
    );
    insta::assert_snapshot!(src);
}

#[test]
fn attention_register_tiled_on_h200() {
    // The `h200` target's default (48 KiB of workgroup memory): the register-tiled kernel, 64
    // query rows of 2 heads in groups of 4 per thread, 8 threads per group, K and V of the next
    // 32-key block loaded into registers at coordinates (K through the transpose) while the
    // current one is used; the scale as the score expression.
    use kiln_schedules::DeviceLimits;
    let c = |v: i64| Dim::c(v);
    let mut g = Graph::new();
    let shape = vec![c(1), c(2), c(40), c(8)];
    let q = input(&mut g, "q", shape.clone());
    let k = input(&mut g, "k", shape.clone());
    let v = input(&mut g, "v", shape);
    let kt = g.add("kt", Op::Transpose { perm: vec![0, 1, 3, 2] }, &[k]).unwrap();
    let s = g.add("s", Op::MatMul, &[q, kt]).unwrap();
    let scale = g.add_const("scale", Tensor::f32(vec![1], vec![0.5]));
    let ss = g.add("ss", Op::Binary(BinaryOp::Mul), &[s, scale]).unwrap();
    let p = g.add("p", Op::Softmax { axis: 3, log: false }, &[ss]).unwrap();
    let o = g.add("o", Op::MatMul, &[p, v]).unwrap();
    g.add_output("out0", o);
    let model = Model {
        name: "snap".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let b = compile(
        &model,
        &CompileOptions {
            opt_level: 3,
            target: DeviceLimits::h200(),
            ..Default::default()
        },
    )
    .expect("compiles");
    let src = sources(&b);
    assert_kernels(&src, "// Kiln attention kernel", 1);
    assert!(
        src.contains("schedule: attention(rows=64, bk=32, splits=8, tm=4)")
            && src.contains("var<workgroup> qs: array<array<vec4<f32>, 16>, 8>")
            && src.contains("fn kiln_score")
            && src.contains("let jn = j0 + 32i;"),
        "{src}"
    );
    insta::assert_snapshot!(src);
}

/// `softmax(q · kᵀ) · v` over 2 heads of `seq` rows of 4 channels, compiled at opt-level 3 for
/// `target` with the attention forced to `schedule` by a tuning record.
fn forced_attention(
    seq: i64,
    schedule: kiln_schedules::AttentionParams,
    target: kiln_schedules::DeviceLimits,
) -> kiln_compiler::CompiledBundle {
    let c = |v: i64| Dim::c(v);
    let key = kiln_compiler::tuning_key(&kiln_compiler::lower::KernelBody::Attention {
        batch: c(2),
        sq: c(seq),
        sk: c(seq),
        d: 4,
        dv: 4,
    });
    let db = kiln_schedules::tuning::TuningDb::forcing(key, kiln_schedules::Schedule::Attention(schedule));
    let mut g = Graph::new();
    let shape = vec![c(1), c(2), c(seq), c(4)];
    let q = input(&mut g, "q", shape.clone());
    let k = input(&mut g, "k", shape.clone());
    let v = input(&mut g, "v", shape);
    let kt = g.add("kt", Op::Transpose { perm: vec![0, 1, 3, 2] }, &[k]).unwrap();
    let s = g.add("s", Op::MatMul, &[q, kt]).unwrap();
    let p = g.add("p", Op::Softmax { axis: 3, log: false }, &[s]).unwrap();
    let o = g.add("o", Op::MatMul, &[p, v]).unwrap();
    g.add_output("out0", o);
    let model = Model {
        name: "snap".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    compile(
        &model,
        &CompileOptions {
            opt_level: 3,
            tuning: Some(db),
            target,
            ..Default::default()
        },
    )
    .expect("compiles")
}

#[test]
fn attention_values_in_halves() {
    // The 256-thread tile of the `h200` default for split keys: 64 rows, 64-key blocks over 16
    // threads per row group, the value block staged in two halves (its second half and the
    // next block's V loads after the first half's P x V), the probabilities over the K block
    // (both two-dimensional), 2 key slices; and its subgroup variant, whose probabilities wait
    // for a barrier after the scores instead of the row-maxima exchange.
    use kiln_schedules::{AttentionParams, DeviceLimits};
    let b = forced_attention(
        256,
        AttentionParams {
            slices: 2,
            vhalf: true,
            sg: true,
            ..AttentionParams::tiled(64, 64, 16)
        },
        DeviceLimits::h200(),
    );
    let k = &b.manifest.kernels[0];
    assert_eq!(
        k.schedule,
        "attention(rows=64, bk=64, splits=16, slices=2, tm=4, vhalf)"
    );
    assert_eq!(k.variants.len(), 1);
    assert_eq!(
        k.variants[0].schedule,
        "attention(rows=64, bk=64, splits=16, slices=2, tm=4, vhalf, sg)"
    );
    assert_eq!(k.variants[0].requires.min_subgroup_size, Some(16));
    let src = sources(&b);
    assert_eq!(
        src.matches("var<workgroup> vs: array<array<vec4<f32>, 16>, 32>;")
            .count(),
        2
    );
    insta::assert_snapshot!(src);
}

#[test]
fn attention_split_over_key_slices() {
    // The keys split over 4 workgroups per tile of 32 rows (a tuning record; the defaults do
    // not split): each walks 128 of the 512 keys and writes unnormalized rows with their
    // maximum and sum, and a combine kernel adds the slices.
    let b = forced_attention(
        512,
        kiln_schedules::AttentionParams {
            slices: 4,
            ..kiln_schedules::AttentionParams::per_row(32, 16, 4)
        },
        CompileOptions::default().target,
    );
    let src = sources(&b);
    assert_kernels(&src, "// Kiln attention kernel", 1);
    assert_kernels(&src, "// Kiln attention combine kernel", 1);
    assert!(
        src.contains("slices=4)") && src.contains("let kend = min(") && src.contains("combine of 4 key slices"),
        "{src}"
    );
    insta::assert_snapshot!(src);
}

#[test]
fn attention_subgroup_variant_over_key_slices() {
    // The register-tiled kernel with the probabilities in their own block (`pbuf`: three
    // barriers per key block), its subgroup variant (`sg`: the row maxima and sums by
    // shuffles over a row group's 8 lanes, two barriers) and the combine of 2 key slices (a
    // tuning record, the `h200` target).
    use kiln_schedules::{AttentionParams, DeviceLimits};
    let b = forced_attention(
        256,
        AttentionParams {
            slices: 2,
            pbuf: true,
            sg: true,
            ..AttentionParams::tiled(32, 32, 8)
        },
        DeviceLimits::h200(),
    );
    let k = &b.manifest.kernels[0];
    assert_eq!(k.schedule, "attention(rows=32, bk=32, splits=8, slices=2, tm=4, pbuf)");
    assert_eq!(k.variants.len(), 1);
    let v = &k.variants[0];
    assert_eq!(
        v.schedule,
        "attention(rows=32, bk=32, splits=8, slices=2, tm=4, pbuf, sg)"
    );
    assert_eq!(v.requires.features, vec!["subgroups".to_string()]);
    assert_eq!(v.requires.min_subgroup_size, Some(8));
    assert_eq!(v.grid, b.manifest.programs[0].dispatches[0].grid);
    let src = sources(&b);
    assert_kernels(&src, "// Kiln attention kernel", 2);
    assert_kernels(&src, "// Kiln attention combine kernel", 1);
    assert_eq!(src.matches("subgroupShuffleXor").count(), 6, "{src}");
    assert!(
        src.contains("var<workgroup> pp:") && src.contains("Barriers per key block: 2."),
        "{src}"
    );
    insta::assert_snapshot!(src);
}

#[test]
fn rms_norm_uses_the_layer_norm_template_without_mean_or_bias() {
    let src = wgsl(0, |g| {
        let x = input(g, "x", vec![Dim::sym("batch"), Dim::c(4), Dim::c(16)]);
        let scale = g.add_const("scale", ramp(vec![16]));
        g.add("rms", Op::RmsNorm { axis: 2, epsilon: 1e-6 }, &[x, scale])
            .unwrap()
    });
    assert_kernels(&src, "// Kiln RMS-norm kernel", 1);
    assert!(
        src.contains("let mean = 0.0f;") && !src.contains("in2"),
        "no mean pass, no bias"
    );
    insta::assert_snapshot!(src);
}

/// Compiles `build`'s graph at opt-level 0 with `schedule` forced on its (only) matmul of
/// operand shapes `a` x `b` through a tuning record, and returns every kernel's WGSL.
fn wgsl_scheduled(
    a: &[i64],
    b: &[i64],
    schedule: kiln_schedules::Schedule,
    build: impl FnOnce(&mut Graph) -> NodeId,
) -> String {
    use kiln_schedules::tuning::TuningDb;
    let dims = |s: &[i64]| s.iter().map(|&d| Dim::c(d)).collect::<Vec<_>>();
    let key = kiln_compiler::tuning_key(&kiln_compiler::lower::KernelBody::Gemm {
        a: dims(a),
        b: dims(b),
        dtype: DType::F32,
    });
    let db = TuningDb::forcing(key, schedule);
    let mut g = Graph::new();
    let out = build(&mut g);
    g.add_output("out0", out);
    let model = Model {
        name: "snap".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let b = compile(
        &model,
        &CompileOptions {
            opt_level: 0,
            tuning: Some(db),
            ..Default::default()
        },
    )
    .expect("compiles");
    sources(&b)
}

#[test]
fn gemm_vec4_double_buffered() {
    // Two workgroup-memory stages: one barrier per K-step, stage offsets flipped after the
    // arithmetic; 64x64x16 stages take 2 x 8 KiB. K = 64, N = 256 read as vec4s.
    let s = kiln_schedules::Schedule::Gemm(kiln_schedules::GemmParams::new(64, 64, 16, 4, 4).double_buffered());
    let src = wgsl_scheduled(&[256, 64], &[64, 256], s, |g| {
        let a = input(g, "a", vec![Dim::c(256), Dim::c(64)]);
        let w = input(g, "w", vec![Dim::c(64), Dim::c(256)]);
        g.add("matmul", Op::MatMul, &[a, w]).unwrap()
    });
    assert_kernels(&src, "// Kiln GEMM kernel (vec4 register tile)", 1);
    assert!(src.contains(", db)") && src.contains("st = 16i - st"), "{src}");
    assert_eq!(src.matches("workgroupBarrier()").count(), 1, "{src}");
    insta::assert_snapshot!(src);
}

#[test]
fn minilm_qkv_gemm_default_with_bias_and_gelu() {
    // MiniLM's QKV/FFN-up shape at batch 1 x 128 (128x1152x384) with a bias and tanh-GELU
    // epilogue: the analytic default splits K over vec4 tiles (the 32x32 scalar tile used to
    // walk all of K), and the epilogue runs once in the combine kernel.
    let src = wgsl(2, |g| {
        let a = input(g, "a", vec![Dim::c(128), Dim::c(384)]);
        let w = input(g, "w", vec![Dim::c(384), Dim::c(1152)]);
        let bias = input(g, "bias", vec![Dim::c(1152)]);
        let mm = g.add("matmul", Op::MatMul, &[a, w]).unwrap();
        let b = g.add("bias_add", Op::Binary(BinaryOp::Add), &[mm, bias]).unwrap();
        g.add("act", Op::Unary(UnaryOp::Tanh), &[b]).unwrap()
    });
    assert_kernels(&src, "// Kiln GEMM kernel (vec4 register tile)", 1);
    assert_kernels(&src, "// Kiln split-K combine kernel", 1);
    insta::assert_snapshot!(src);
}

#[test]
fn gemv_unrolled_by_eight_for_long_k() {
    // 1 x 2048 x 64: each thread walks at least 32 rows of B, so it loads 8 rows before using them.
    let src = wgsl(0, |g| {
        let a = input(g, "a", vec![Dim::c(1), Dim::c(2048)]);
        let w = input(g, "w", vec![Dim::c(2048), Dim::c(64)]);
        g.add("matmul", Op::MatMul, &[a, w]).unwrap()
    });
    assert_kernels(&src, "// Kiln GEMV kernel", 1);
    assert!(src.contains("let b7 = ") && src.contains("unrolled by 8"), "{src}");
    insta::assert_snapshot!(src);
}

#[test]
fn gemv_default_splits_k_over_workgroups() {
    // 1 x 2048 x 1024: 8 column groups of 32 lanes, K split over 8 workgroups of 256 rows;
    // the last to arrive adds the slices.
    let src = wgsl(0, |g| {
        let a = input(g, "a", vec![Dim::c(1), Dim::c(2048)]);
        let w = input(g, "w", vec![Dim::c(2048), Dim::c(1024)]);
        g.add("matmul", Op::MatMul, &[a, w]).unwrap()
    });
    assert_kernels(&src, "// Kiln GEMV kernel", 1);
    assert!(
        src.contains("slices=8)") && src.contains("atomicLoad(&scratch[at + 7i * 1i * 1024i"),
        "{src}"
    );
    insta::assert_snapshot!(src);
}

/// Compiles `build`'s graph at opt-level 2 with `--precision f16` for the `desktop` profile
/// and returns the bundle.
fn compile_f16(build: impl FnOnce(&mut Graph) -> NodeId) -> kiln_compiler::CompiledBundle {
    compile_f16_for(kiln_schedules::DeviceLimits::desktop(), build)
}

/// [`compile_f16`] for the `target` profile.
fn compile_f16_for(
    target: kiln_schedules::DeviceLimits,
    build: impl FnOnce(&mut Graph) -> NodeId,
) -> kiln_compiler::CompiledBundle {
    let mut g = Graph::new();
    let out = build(&mut g);
    g.add_output("out0", out);
    let model = Model {
        name: "snap".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let opts = CompileOptions {
        precision: kiln_compiler::Precision::F16,
        target,
        ..Default::default()
    };
    compile(&model, &opts).expect("compiles")
}

/// The WGSL of the bundle's cooperative-matrix variants, each checked to pass naga with f16,
/// subgroups and cooperative matrices, to fail without cooperative matrices, and to write as
/// SPIR-V (what wgpu's Vulkan backend does with it).
fn coop_variants(b: &kiln_compiler::CompiledBundle) -> String {
    use naga::valid::{Capabilities, ValidationFlags, Validator};
    let mut out = Vec::new();
    for k in &b.manifest.kernels {
        let coop = k
            .variants
            .iter()
            .filter(|v| v.requires.features.iter().any(|f| f == "wgpu-cooperative-matrix"));
        for v in coop {
            let src = &b
                .kernel_sources
                .iter()
                .find(|(f, _)| *f == v.file)
                .expect("variant source")
                .1;
            let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
            let caps = Capabilities::SHADER_FLOAT16 | Capabilities::SHADER_FLOAT16_IN_FLOAT32 | Capabilities::SUBGROUP;
            assert!(
                Validator::new(ValidationFlags::all(), caps).validate(&module).is_err(),
                "validates without cooperative matrices"
            );
            let info = Validator::new(ValidationFlags::all(), caps | Capabilities::COOPERATIVE_MATRIX)
                .validate(&module)
                .unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
            let opts = naga::back::spv::Options {
                lang_version: (1, 3),
                ..Default::default()
            };
            let spv = naga::back::spv::write_vec(&module, &info, &opts, None).expect("writes SPIR-V");
            assert!(spv.len() > 100);
            out.push(format!("// ===== {}\n{src}", v.file));
        }
    }
    out.join("\n")
}

/// `softmax(q · kᵀ · 0.125) · v` over 2 heads of `seq` rows of `d` channels, compiled at
/// opt-level 3 with `--precision f16` for the `h200` target (one flash-attention kernel).
fn f16_attention(seq: i64, d: i64) -> kiln_compiler::CompiledBundle {
    f16_attention_with(seq, d, None)
}

/// [`f16_attention`] with the variant's schedule forced by a tuning record.
fn f16_attention_with(seq: i64, d: i64, variant: Option<kiln_schedules::Schedule>) -> kiln_compiler::CompiledBundle {
    let mut g = Graph::new();
    let shape = vec![Dim::c(1), Dim::c(2), Dim::c(seq), Dim::c(d)];
    let q = input(&mut g, "q", shape.clone());
    let k = input(&mut g, "k", shape.clone());
    let v = input(&mut g, "v", shape);
    let kt = g.add("kt", Op::Transpose { perm: vec![0, 1, 3, 2] }, &[k]).unwrap();
    let s = g.add("s", Op::MatMul, &[q, kt]).unwrap();
    let scale = g.add_const("scale", Tensor::f32(vec![1], vec![0.125]));
    let ss = g.add("ss", Op::Binary(BinaryOp::Mul), &[s, scale]).unwrap();
    let p = g.add("p", Op::Softmax { axis: 3, log: false }, &[ss]).unwrap();
    let o = g.add("o", Op::MatMul, &[p, v]).unwrap();
    g.add_output("out0", o);
    let model = Model {
        name: "snap".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let tuning = variant.map(|v| {
        let key = kiln_compiler::tuning_key(&kiln_compiler::lower::KernelBody::Attention {
            batch: Dim::c(2),
            sq: Dim::c(seq),
            sk: Dim::c(seq),
            d: d as usize,
            dv: d as usize,
        });
        kiln_schedules::tuning::TuningDb::forcing(format!("coop {key}"), v)
    });
    let opts = CompileOptions {
        opt_level: 3,
        precision: kiln_compiler::Precision::F16,
        target: kiln_schedules::DeviceLimits::h200(),
        tuning,
        ..Default::default()
    };
    compile(&model, &opts).expect("compiles")
}

#[test]
fn attention_coop_variant_unsplit() {
    // 100 query rows and keys (a partial tile of 64 rows, a partial block of 64 keys) at head
    // dim 32: the flash-attention kernel is not split (2 tiles), and `--precision f16` gives
    // it a cooperative-matrix variant ahead of nothing else, which normalizes its own rows.
    let b = f16_attention(100, 32);
    assert_eq!(b.manifest.kernels.len(), 1);
    let k = &b.manifest.kernels[0];
    assert_eq!(k.variants.len(), 1, "{k:?}");
    let v = &k.variants[0];
    assert_eq!(v.schedule, "coop_attention(sg=4, bk=64)");
    let back: kiln_schedules::Schedule = ron::from_str(&v.schedule_params).unwrap();
    assert_eq!(back.to_string(), v.schedule);
    assert_eq!(
        v.requires.features,
        vec![
            "shader-f16".to_string(),
            "wgpu-cooperative-matrix".into(),
            "subgroups".into()
        ]
    );
    assert_eq!(v.requires.subgroup_size, Some(32));
    let src = coop_variants(&b);
    assert_kernels(&src, "// Kiln attention kernel (cooperative matrices)", 1);
    assert!(
        src.contains("fn kiln_score") && src.contains("let inv = 1.0f / total;") && src.contains("let q1 = coopLoadT"),
        "{src}"
    );
    insta::assert_snapshot!(src);
}

#[test]
fn attention_coop_variant_keeps_the_key_slices() {
    // 512 keys over 2 heads at head dim 64 (16 tiles for the H200's 132 units): under
    // `--precision f16` the base kernel splits them over the 2 slices the variant prefers and
    // runs as its subgroup variant where it can; the cooperative-matrix variant comes first,
    // walks the same 2 slices and writes the same partial rows for the base's combine kernel.
    let b = f16_attention(512, 64);
    assert_eq!(b.manifest.kernels.len(), 2, "the kernel and its combine");
    let k = &b.manifest.kernels[0];
    assert!(k.schedule.contains("slices=2"), "{}", k.schedule);
    let kinds: Vec<&str> = k.variants.iter().map(|v| v.schedule.as_str()).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert_eq!(kinds[0], "coop_attention(sg=4, bk=64, slices=2)");
    assert!(
        kinds[1].starts_with("attention(") && kinds[1].ends_with(", sg)"),
        "{kinds:?}"
    );
    let z = &k.variants[0].grid[2];
    assert_eq!(z.as_const(), Some(2), "{z:?}");
    let src = coop_variants(&b);
    assert!(
        src.contains("let kend = min(") && src.contains("out[ob + 64i] = m;") && !src.contains("let inv"),
        "{src}"
    );
    // Every member of the space, forced by a record on the variant's key, renders for this
    // kernel (naga with cooperative matrices, SPIR-V), keeping the base kernel's 2 slices.
    for s in kiln_schedules::space::coop_attention(&kiln_schedules::DeviceLimits::h200()) {
        let kiln_schedules::Schedule::CoopAttention(p) = s else {
            unreachable!()
        };
        let b = f16_attention_with(512, 64, Some(s));
        let v = &b.manifest.kernels[0].variants[0];
        assert_eq!(
            v.schedule,
            format!("coop_attention(sg={}, bk={}, slices=2)", p.subgroups, p.bk)
        );
        assert!(!coop_variants(&b).is_empty());
    }
}

#[test]
fn gemm_coop_variant_with_bias_epilogue() {
    // 200 x 256 x 96: M is not a multiple of the 64-row block, and a bias and ReLU follow, so
    // fragments go through the subgroup's scratch fragment with bounds checks and the epilogue.
    let b = compile_f16(|g| {
        let a = input(g, "a", vec![Dim::c(200), Dim::c(96)]);
        let w = input(g, "w", vec![Dim::c(96), Dim::c(256)]);
        let bias = input(g, "bias", vec![Dim::c(256)]);
        let mm = g.add("matmul", Op::MatMul, &[a, w]).unwrap();
        let b = g.add("bias_add", Op::Binary(BinaryOp::Add), &[mm, bias]).unwrap();
        g.add("relu", Op::Unary(UnaryOp::Relu), &[b]).unwrap()
    });
    let k = &b.manifest.kernels[0];
    assert_eq!(k.variants.len(), 1, "{k:?}");
    let v = &k.variants[0];
    assert!(
        v.schedule.starts_with("coop_gemm(") && k.schedule.starts_with("gemm("),
        "{k:?}"
    );
    let back: kiln_schedules::Schedule = ron::from_str(&v.schedule_params).unwrap();
    assert_eq!(back.to_string(), v.schedule);
    assert_eq!(
        v.requires.features,
        vec!["shader-f16".to_string(), "wgpu-cooperative-matrix".into()]
    );
    assert_eq!(v.requires.subgroup_size, Some(32));
    // The base f32 kernel needs nothing beyond the target.
    assert!(b.manifest.requirements.features.is_empty());
    let src = coop_variants(&b);
    assert_kernels(&src, "// Kiln GEMM kernel (cooperative matrices)", 1);
    assert!(
        src.contains("fn kiln_epilogue") && src.contains("c_sh[scratch + e]"),
        "{src}"
    );
    insta::assert_snapshot!(src);
}

#[test]
fn gemm_coop_variant_direct_store_and_f32_default() {
    // 256 x 256 x 64 in whole blocks with nothing after the product: fragments are stored
    // straight to C.
    let build = |g: &mut Graph| {
        let a = input(g, "a", vec![Dim::c(256), Dim::c(64)]);
        let w = input(g, "w", vec![Dim::c(64), Dim::c(256)]);
        g.add("matmul", Op::MatMul, &[a, w]).unwrap()
    };
    let src = coop_variants(&compile_f16(build));
    assert_kernels(&src, "// Kiln GEMM kernel (cooperative matrices)", 1);
    assert!(
        src.contains("coopStoreT(acc_0_0, &out[") && !src.contains("c_sh"),
        "{src}"
    );
    insta::assert_snapshot!(src);
    // Without --precision f16 there is no variant.
    let plain = wgsl(2, build);
    assert!(!plain.contains("coop"), "{plain}");
}

/// f16 inputs of a product stay f16 pairs (`half_storage`): the cooperative-matrix variant reads
/// them 8 values per 16-byte load (`array<vec4<u32>>`) and unpacks them into its f16 stages,
/// on the 8 subgroups of 64x64 that the f16-pair default gives a 128x256 block; the f32 kernel
/// unpacks them 4 at a time.
#[test]
fn gemm_coop_variant_reads_f16_pairs() {
    let b = compile_f16_for(kiln_schedules::DeviceLimits::h200(), |g| {
        let a = typed_input(g, "a", DType::F16, vec![Dim::c(2048), Dim::c(64)]);
        let w = typed_input(g, "w", DType::F16, vec![Dim::c(64), Dim::c(2048)]);
        g.add("matmul", Op::MatMul, &[a, w]).unwrap()
    });
    let storage: Vec<_> = b.manifest.inputs.iter().map(|i| i.storage).collect();
    assert_eq!(storage, [kiln_abi::ElemType::F16; 2]);
    let variant = &b.manifest.kernels[0].variants[0];
    assert_eq!(variant.schedule, "coop_gemm(bm=128, bn=256, bk=32, sm=64, sn=64, v4)");
    let src = coop_variants(&b);
    assert_kernels(&src, "// Kiln GEMM kernel (cooperative matrices)", 1);
    assert!(
        src.contains("var<storage, read> in0: array<vec4<u32>>;") && src.contains("unpack2x16float(v.z)"),
        "{src}"
    );
    insta::assert_snapshot!(src);
    let base = &b
        .kernel_sources
        .iter()
        .find(|(f, _)| *f == b.manifest.kernels[0].file)
        .unwrap()
        .1;
    assert!(base.contains("fn kiln_h4_0(i: u32) -> vec4<f32>"), "{base}");
}

/// Every member of the cooperative-matrix space (double-buffered stages included), forced through
/// a tuning record on the variant's key, renders WGSL that naga validates with cooperative
/// matrices and writes as SPIR-V, both with the epilogue's bounds-checked store (200 rows, a
/// bias) and with the direct store, with f32 operands and with f16 inputs (f16 pairs, read 8
/// or 4 values per load; vec4 stages only); the double-buffered 128x128 tile is snapshot.
#[test]
fn gemm_coop_space_members_validate_and_double_buffering_renders() {
    use kiln_schedules::tuning::TuningDb;
    use kiln_schedules::{space, CoopGemmParams, DeviceLimits, Schedule};
    let with_record = |m: i64, bias: bool, s: Schedule, dtype: DType| {
        let mut g = Graph::new();
        let a = typed_input(&mut g, "a", dtype, vec![Dim::c(m), Dim::c(96)]);
        let w = typed_input(&mut g, "w", dtype, vec![Dim::c(96), Dim::c(256)]);
        let mut out = g.add("matmul", Op::MatMul, &[a, w]).unwrap();
        if bias {
            let b = typed_input(&mut g, "bias", dtype, vec![Dim::c(256)]);
            out = g.add("bias_add", Op::Binary(BinaryOp::Add), &[out, b]).unwrap();
        }
        g.add_output("out0", out);
        let db = TuningDb::forcing(format!("coop gemm:b=1,m={m},n=256,k=96"), s);
        let opts = CompileOptions {
            precision: kiln_compiler::Precision::F16,
            target: DeviceLimits::h200(),
            tuning: Some(db),
            ..Default::default()
        };
        let model = Model {
            name: "snap".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        };
        let b = compile(&model, &opts).expect("compiles");
        let variants = &b.manifest.kernels[0].variants;
        let Schedule::CoopGemm(p) = s else { unreachable!() };
        if dtype == DType::F16 {
            assert_eq!(b.manifest.inputs[0].storage, kiln_abi::ElemType::F16);
        }
        if dtype == DType::F16 && !p.vec_stage {
            // f16 pairs are staged through vec4 stages only: the f32 kernel stays.
            assert!(variants.is_empty(), "{variants:?}");
        } else if !bias || p.fits_with_scratch(&opts.target) {
            assert_eq!(variants[0].schedule, s.to_string());
        } else {
            // Stages that leave no room for the epilogue scratch: no variant, the f32 kernel
            // stays (the compile does not fail).
            assert!(variants.is_empty(), "{variants:?}");
        }
        coop_variants(&b)
    };
    let members = space::coop_gemm(&DeviceLimits::h200());
    let double = members
        .iter()
        .filter(|s| matches!(s, Schedule::CoopGemm(p) if p.double_buffer))
        .count();
    assert!(double >= 4, "{members:?}");
    let mut direct_only = 0;
    for s in &members {
        if with_record(200, true, *s, DType::F32).is_empty() {
            direct_only += 1;
        }
        with_record(256, false, *s, DType::F32);
        with_record(200, true, *s, DType::F16);
        with_record(256, false, *s, DType::F16);
    }
    // The bk-48 and bk-64 tiles whose stages fill 48 KiB (scalar and vec4 staging).
    assert!(direct_only >= 4, "{direct_only}");
    let db = Schedule::CoopGemm(CoopGemmParams {
        bm: 128,
        bn: 128,
        bk: 16,
        sm: 64,
        sn: 64,
        vec_stage: true,
        double_buffer: true,
    });
    assert!(members.contains(&db));
    let src = with_record(256, false, db, DType::F32);
    assert!(
        // Two steps per iteration, the second stage's fragments at a constant offset.
        src.contains("k0 += 32i") && src.contains("&a_sh[768u + ") && src.contains("array<vec4<f16>, 1536>"),
        "{src}"
    );
    insta::assert_snapshot!(src);
}

/// Tint (Chrome's WGSL compiler) evaluates `bitcast<f32>(0xff800000u)` as a constant and rejects
/// it because the value is not finite (naga accepts it, so validation alone does not catch it).
/// Templates make infinities at run time through `kiln_f32_bits` instead; this scans every
/// template for a bitcast of a literal.
#[test]
fn no_template_bitcasts_a_literal_to_f32() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("templates folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let src = std::fs::read_to_string(&path).expect("template");
            let compact: String = src.chars().filter(|c| !c.is_whitespace()).collect();
            assert!(
                !compact.contains("bitcast<f32>(0x"),
                "{} bitcasts a literal to f32: Tint rejects a non-finite constant; use kiln_f32_bits",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} templates found in {}", dir.display());
}

/// An f16 state (the f16 KV cache): the append writes one word of two rounded values per
/// thread, and a reader of the appended prefix unpacks its element's half of a word.
#[test]
fn f16_state_append_and_read() {
    let src = wgsl(2, |g| {
        let k = input(g, "k", vec![Dim::c(1), Dim::c(2), Dim::c(8)]);
        let h = g.add("k_store", Op::Cast(DType::F16), &[k]).unwrap();
        let append = Op::StateAppend {
            state: "cache".into(),
            state_shape: vec![16, 2, 8],
            offset: Dim::sym("past"),
        };
        let s = g.add("cache", append, &[h]).unwrap();
        let f = g.add("cache_f32", Op::Cast(DType::F32), &[s]).unwrap();
        g.add("squared", Op::Binary(BinaryOp::Mul), &[f, f]).unwrap()
    });
    assert_kernels(&src, "// Kiln injective kernel", 2);
    assert!(src.contains("pack2x16float(vec2<f32>(kiln_lo, kiln_hi))"), "{src}");
    assert!(src.contains("unpack2x16float(in0["), "{src}");
    insta::assert_snapshot!(src);
}

#[test]
fn gemm_vec4_tile_stores_vec4s_only_for_short_k_slices() {
    // C is stored as 4-vectors where a workgroup walks at most VEC4_STORE_MAX_K of K (MiniLM's
    // 384), and element by element on long-K products (the store phase is ~1/K-steps of the
    // work there, and 4096^3 measured slower with 4-vector stores).
    for (k, vec4) in [(384usize, true), (8192, false)] {
        let src = wgsl(2, |g| {
            let a = input(g, "a", vec![Dim::c(2048), Dim::c(k as i64)]);
            let w = input(g, "w", vec![Dim::c(k as i64), Dim::c(2048)]);
            g.add("matmul", Op::MatMul, &[a, w]).unwrap()
        });
        assert_kernels(&src, "// Kiln GEMM kernel (vec4 register tile)", 1);
        let split = src.split("ksplit=").nth(1).map_or(1, |s| {
            s.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        });
        assert_eq!(
            k.div_ceil(split) as u64 <= kiln_compiler::codegen::VEC4_STORE_MAX_K,
            vec4,
            "K {k}, ksplit {split}"
        );
        assert_eq!(
            src.contains("var<storage, read_write> out: array<vec4<f32>>;"),
            vec4,
            "K {k}: {src}"
        );
    }
}

/// A decode step's cache appends deferred (`lower::defer`) in a two-layer Llama with f32
/// weights and the f16 cache: each layer's decode attention reads its new K/V row through (the
/// row's values computed once per thread from the QKV product with RoPE and the f16 rounding,
/// `kiln_x1_new` and `kiln_x2_new`; the cache read below the last key), and its appends are
/// parts of the layer's SwiGLU kernel: a kernel of parts of different thread counts (96 f32
/// elements, 16 f16 words per state), each appended state behind its own bounds check.
#[test]
fn decode_attention_reads_the_new_row_through_and_appends_are_deferred() {
    use kiln_compiler::llm::{self, LlamaConfig, RandomWeights, RopeStyle};
    let c = LlamaConfig {
        name: "tiny-llama".into(),
        dim: 64,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        head_dim: 16,
        ffn: 96,
        vocab: 97,
        rope_base: 10000.0,
        rope_dims: 16,
        rope_style: RopeStyle::Normal,
        rms_eps: 1e-5,
        tied_output: true,
        qkv_bias: false,
        context: 64,
        kv_cache: DType::F16,
        activations: kiln_compiler::llm::DEFAULT_ACTIVATIONS,
    };
    let model = llm::build(&c, &mut RandomWeights::new(&c, 1)).unwrap();
    let b = llm::compile_llm(&model, &CompileOptions::default()).unwrap();
    let pick = |f: &dyn Fn(&str) -> bool| -> Vec<String> {
        b.kernel_sources
            .iter()
            .filter(|(_, s)| f(s))
            .map(|(n, s)| format!("// ===== {n}\n{s}"))
            .collect()
    };
    let through = pick(&|s| s.contains("let j_new"));
    let host = pick(&|s| s.contains("cache_append") && s.contains("out2[") && s.contains("if (idx < 16i)"));
    assert_eq!(
        (through.len(), host.len()),
        (1, 1),
        "{:?}",
        b.kernel_sources.iter().map(|k| &k.0).collect::<Vec<_>>()
    );
    assert!(through[0].contains("fn kiln_x1_new") && through[0].contains("fn kiln_x2_new"));
    insta::assert_snapshot!(format!("{}\n{}", through[0], host[0]));
}

/// Activations rounded to 8 bits in front of quantized GEMVs: the RMS norm fused into the
/// quantizer, which stores integer blocks, and the integer-dot GEMVs (q4_0, q4_1, q8_0) that
/// read them.
#[test]
fn eight_bit_activations_and_integer_dot_gemvs() {
    use kiln_ir::quant::{packed_tensor, quantize};
    use kiln_ir::BlockType;
    let (k, n) = (64, 8);
    let src = wgsl_outputs(2, |g| {
        let x = input(g, "x", vec![Dim::from(1usize), Dim::from(k)]);
        let scale = g.add_const("g", ramp(vec![k]));
        let normed = g
            .add("norm", Op::RmsNorm { axis: 1, epsilon: 1e-5 }, &[x, scale])
            .unwrap();
        let q = g.add("norm_q8", Op::QuantizeQ8, &[normed]).unwrap();
        [BlockType::Q4_0, BlockType::Q4_1, BlockType::Q8_0]
            .into_iter()
            .map(|block| {
                let values: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 - 3.0).collect();
                let w = packed_tensor(block, n, k, &quantize(block, &values).unwrap()).unwrap();
                let w = g.add_const(&format!("w_{block}"), w);
                g.add(&format!("qmm_{block}"), Op::QMatMul { block, n, k }, &[q, w])
                    .unwrap()
            })
            .collect()
    });
    assert_kernels(&src, "// Kiln activation quantizer", 1);
    assert_eq!(
        src.matches("dot4I8Packed(").count(),
        3 * 2,
        "two integer dots per part, three GEMVs"
    );
    insta::assert_snapshot!(src);
}

/// A decode step's FFN input at one row as `--activations q8` builds it: `norm(x)` (rounded to
/// 8 bits when `round_x`) into gate and up projections of `block` weights, the SwiGLU rounded
/// to 8 bits, and the down projection of it; returns down's output.
fn ffn_q8_graph(g: &mut Graph, block: kiln_ir::BlockType, round_x: bool) -> NodeId {
    use kiln_ir::quant::{packed_tensor, quantize};
    let (k, h, n) = (64, 32, 8);
    let x = input(g, "x", vec![Dim::from(1usize), Dim::from(k)]);
    let scale = g.add_const("g", ramp(vec![k]));
    let normed = g
        .add("norm", Op::RmsNorm { axis: 1, epsilon: 1e-5 }, &[x, scale])
        .unwrap();
    let xin = if round_x {
        g.add("norm_q8", Op::QuantizeQ8, &[normed]).unwrap()
    } else {
        normed
    };
    let qmm = |g: &mut Graph, name: &str, n: usize, k: usize, xin| {
        let values: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let w = packed_tensor(block, n, k, &quantize(block, &values).unwrap()).unwrap();
        let w = g.add_const(&format!("{name}.w"), w);
        g.add(name, Op::QMatMul { block, n, k }, &[xin, w]).unwrap()
    };
    let gate = qmm(g, "gate", h, k, xin);
    let up = qmm(g, "up", h, k, xin);
    let sig = g.add("sig", Op::Unary(UnaryOp::Sigmoid), &[gate]).unwrap();
    let silu = g.add("silu", Op::Binary(BinaryOp::Mul), &[gate, sig]).unwrap();
    let act = g.add("swiglu", Op::Binary(BinaryOp::Mul), &[silu, up]).unwrap();
    let act_q = g.add("swiglu_q8", Op::QuantizeQ8, &[act]).unwrap();
    qmm(g, "down", n, h, act_q)
}

/// A decode step's SwiGLU rounded to 8 bits for a down projection: the gate/up GEMV (norm
/// prologue, gated pair) quantizes its outputs per block of 32 as its epilogue and stores the
/// integer blocks the down GEMV dots (`pack4xI8` in one kernel, `dot4I8Packed` in the next; no
/// quantizer kernel).
#[test]
fn swiglu_gemv_rounding_its_outputs_for_an_integer_dot_gemv() {
    let src = wgsl(2, |g| ffn_q8_graph(g, kiln_ir::BlockType::Q4_1, false));
    assert_kernels(&src, "// Kiln quantized GEMV kernel", 2);
    assert_kernels(&src, "// Kiln activation quantizer", 0);
    assert_eq!(src.matches("pack4xI8(").count(), 1, "the gate/up GEMV packs the bytes");
    assert_eq!(src.matches("dot4I8Packed(").count(), 2, "the down GEMV dots them");
    insta::assert_snapshot!(src);
}

/// The FFN's input as `--activations q8` builds it at one row: the norm rounded to 8 bits, the
/// gate/up GEMV, the SwiGLU rounded for down. The gate/up GEMV normalizes and rounds x into
/// workgroup memory itself (its `kiln_xs`), dots it as integers and rounds its outputs: two
/// kernels, no quantizer.
#[test]
fn gated_gemv_rounding_its_input_and_outputs() {
    let src = wgsl(2, |g| ffn_q8_graph(g, kiln_ir::BlockType::Q8_0, true));
    assert_kernels(&src, "// Kiln quantized GEMV kernel", 2);
    assert_kernels(&src, "// Kiln activation quantizer", 0);
    assert_eq!(src.matches("kiln_xs[blk + 2u").count(), 1, "the gate/up GEMV rounds x");
    assert_eq!(
        src.matches("pack4xI8(").count(),
        3,
        "x's two words per part and the outputs"
    );
    insta::assert_snapshot!(src);
}
