//! Snapshots of the WGSL each template renders for representative kernels. A diff here is a
//! change in generated code: review it (`cargo insta review`) before accepting.

use kiln_compiler::{compile, CompileOptions, Model};
use kiln_ir::{BinaryOp, DType, Dim, Graph, NodeId, Op, ReduceOp, SliceAxis, Tensor, TensorType, UnaryOp};
use std::collections::BTreeMap;

fn ramp(shape: Vec<usize>) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(shape, (0..n).map(|i| i as f32 * 0.5).collect())
}

/// Compiles `build`'s graph at `opt_level` and returns every kernel's WGSL, joined.
fn wgsl(opt_level: u8, build: impl FnOnce(&mut Graph) -> NodeId) -> String {
    let mut g = Graph::new();
    let out = build(&mut g);
    g.add_output("out", out);
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
    b.kernel_sources
        .iter()
        .map(|(f, s)| format!("// ===== {f}\n{s}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn input(g: &mut Graph, name: &str, shape: Vec<Dim>) -> NodeId {
    g.add_input(
        name,
        TensorType {
            dtype: DType::F32,
            shape,
        },
    )
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
    insta::assert_snapshot!(wgsl(0, |g| {
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
        let _ = r;
        a
    }));
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
fn gemm_vec4_tile_with_scalar_operand_reads() {
    // K = 75 is not a multiple of 4, so the vec4 register tile reads its operands as scalars.
    insta::assert_snapshot!(wgsl(0, |g| {
        let a = input(g, "a", vec![Dim::c(2048), Dim::c(75)]);
        let w = g.add_const("w", ramp(vec![75, 1024]));
        g.add("matmul", Op::MatMul, &[a, w]).unwrap()
    }));
}

#[test]
fn gemv_for_a_single_row() {
    // M = 1 takes the split-K GEMV kind; N = 96 is read as vec4 columns.
    insta::assert_snapshot!(wgsl(0, |g| {
        let a = input(g, "a", vec![Dim::c(1), Dim::c(64)]);
        let w = g.add_const("w", ramp(vec![64, 96]));
        g.add("matmul", Op::MatMul, &[a, w]).unwrap()
    }));
}

#[test]
fn gemv_with_scalar_columns() {
    // N = 30 is not a multiple of 4: one column per lane.
    insta::assert_snapshot!(wgsl(0, |g| {
        let a = input(g, "a", vec![Dim::c(3), Dim::c(20)]);
        let w = g.add_const("w", ramp(vec![20, 30]));
        g.add("matmul", Op::MatMul, &[a, w]).unwrap()
    }));
}

#[test]
fn softmax_and_layer_norm_over_symbolic_rows() {
    // A symbolic row length cannot be cached in registers: three passes over global memory.
    insta::assert_snapshot!(wgsl(0, |g| {
        let x = input(g, "x", vec![Dim::c(4), Dim::sym("seq")]);
        let s = g.add("softmax", Op::Softmax { axis: 1, log: false }, &[x]).unwrap();
        let scale = input(g, "scale", vec![Dim::sym("seq")]);
        let bias = input(g, "bias", vec![Dim::sym("seq")]);
        g.add("ln", Op::LayerNorm { axis: 1, epsilon: 1e-5 }, &[s, scale, bias])
            .unwrap()
    }));
}
