//! Each rule fires on its pattern, and the interpreter gives the same outputs before and after.

use super::*;
use kiln_ir::interp::evaluate;
use kiln_ir::{BinaryOp, DType, NodeId, Op, ReduceOp, Tensor, TensorType, UnaryOp};
use std::collections::HashMap;

fn wave(shape: &[usize], seed: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(
        shape.to_vec(),
        (0..n).map(|i| (i as f32 * 0.731 + seed).sin() * 1.7).collect(),
    )
}

fn op(g: &mut Graph, name: &str, o: Op, ins: &[NodeId]) -> NodeId {
    g.add(name, o, ins).unwrap()
}

fn bin(g: &mut Graph, b: BinaryOp, x: NodeId, y: NodeId) -> NodeId {
    let n = format!("b{}", g.len());
    op(g, &n, Op::Binary(b), &[x, y])
}

fn un(g: &mut Graph, u: UnaryOp, x: NodeId) -> NodeId {
    let n = format!("u{}", g.len());
    op(g, &n, Op::Unary(u), &[x])
}

fn mean_last(g: &mut Graph, x: NodeId) -> NodeId {
    let axis = g.node(x).ty.rank() - 1;
    let n = format!("m{}", g.len());
    op(
        g,
        &n,
        Op::Reduce {
            op: ReduceOp::Mean,
            axes: vec![axis],
            keep_dims: true,
        },
        &[x],
    )
}

fn scalar(g: &mut Graph, v: f32) -> NodeId {
    let n = format!("c{}", g.len());
    g.add_const(&n, Tensor::f32(vec![], vec![v]))
}

/// Optimizes `g`; asserts `rule` fired, `want` holds for some node of the result, `gone` for
/// none, and the outputs agree with the original graph's (f32: relative 1e-5 plus 1e-6).
fn check(g: &Graph, rule: &str, want: impl Fn(&Op) -> bool, gone: impl Fn(&Op) -> bool) -> Graph {
    let (h, r) = optimize_with(
        g.clone(),
        &OptConfig::default(),
        &PerfProfile::for_target("webgpu-default"),
    )
    .unwrap();
    assert!(
        r.fired.iter().any(|f| f.0 == rule && f.1 > 0) || (rule == "fold-constant" && r.folded > 0),
        "{rule} did not fire: {r:?}"
    );
    let ops: Vec<Op> = h.topo_order().iter().map(|&n| h.node(n).op.clone()).collect();
    assert!(ops.iter().any(&want), "expected op missing after {rule}: {ops:?}");
    assert!(!ops.iter().any(&gone), "op should be gone after {rule}: {ops:?}");
    assert!(r.cost_after <= r.cost_before, "{r:?}");
    let inputs: HashMap<String, Tensor> = g
        .inputs()
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let t = &g.node(n).ty;
            (g.node(n).name.clone(), wave(&t.const_shape().unwrap(), i as f32))
        })
        .collect();
    let a = evaluate(g, &inputs).unwrap();
    let b = evaluate(&h, &inputs).unwrap();
    for (k, v) in &a {
        assert_eq!(v.shape, b[k].shape, "{k}");
        for (x, y) in v.to_f64().iter().zip(b[k].to_f64()) {
            assert!((x - y).abs() <= 1e-5 * x.abs() + 1e-6, "{k}: {x} vs {y} after {rule}");
        }
    }
    h
}

#[test]
fn transposes_cancel_and_merge() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[2, 3, 4]));
    let t1 = op(&mut g, "t1", Op::Transpose { perm: vec![1, 2, 0] }, &[x]);
    let t2 = op(&mut g, "t2", Op::Transpose { perm: vec![2, 0, 1] }, &[t1]);
    let y = un(&mut g, UnaryOp::Exp, t2);
    g.add_output("y", y);
    let t3 = op(&mut g, "t3", Op::Transpose { perm: vec![0, 2, 1] }, &[t1]);
    let z = un(&mut g, UnaryOp::Neg, t3);
    g.add_output("z", z);
    let h = check(
        &g,
        "transpose-transpose",
        |o| matches!(o, Op::Transpose { perm } if *perm == [1, 0, 2]),
        |_| false,
    );
    let transposes = h
        .topo_order()
        .iter()
        .filter(|&&n| matches!(h.node(n).op, Op::Transpose { .. }))
        .count();
    assert_eq!(transposes, 1, "t2∘t1 is the identity, t3∘t1 one transpose");
}

#[test]
fn identity_transpose_and_reshape_vanish() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[2, 3]));
    let t = op(&mut g, "t", Op::Transpose { perm: vec![0, 1] }, &[x]);
    let y = un(&mut g, UnaryOp::Exp, t);
    g.add_output("y", y);
    check(
        &g,
        "identity-transpose",
        |o| matches!(o, Op::Unary(_)),
        |o| matches!(o, Op::Transpose { .. }),
    );
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[2, 3]));
    let shape = g.node(x).ty.shape.clone();
    let r = op(&mut g, "r", Op::Reshape { shape }, &[x]);
    let y = un(&mut g, UnaryOp::Exp, r);
    g.add_output("y", y);
    check(
        &g,
        "identity-reshape",
        |o| matches!(o, Op::Unary(_)),
        |o| matches!(o, Op::Reshape { .. }),
    );
}

#[test]
fn transposes_of_unit_axes_become_reshapes() {
    // [3, 2, 1, 4] -> [1, 3, 2, 4]: only the unit axis moves (a decode step's attention output
    // back to token-major order), so the transpose is a reshape.
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[3, 2, 1, 4]));
    let t = op(&mut g, "t", Op::Transpose { perm: vec![2, 0, 1, 3] }, &[x]);
    let y = un(&mut g, UnaryOp::Exp, t);
    g.add_output("y", y);
    check(
        &g,
        "unit-axis-transpose",
        |o| matches!(o, Op::Reshape { shape } if shape.iter().map(|d| d.as_const().unwrap()).eq([1, 3, 2, 4])),
        |o| matches!(o, Op::Transpose { .. }),
    );
    // Swapping two axes longer than 1 stays a transpose.
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[3, 1, 2]));
    let t = op(&mut g, "t", Op::Transpose { perm: vec![2, 1, 0] }, &[x]);
    let y = un(&mut g, UnaryOp::Exp, t);
    g.add_output("y", y);
    let (h, r) = optimize_with(g, &OptConfig::default(), &PerfProfile::for_target("webgpu-default")).unwrap();
    assert!(
        !r.fired.iter().any(|f| f.0 == "unit-axis-transpose" && f.1 > 0),
        "{r:?}"
    );
    assert!(h
        .topo_order()
        .iter()
        .any(|&n| matches!(h.node(n).op, Op::Transpose { .. })));
}

#[test]
fn reshapes_merge() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[2, 3, 4]));
    let d = |v: &[i64]| v.iter().map(|&c| kiln_ir::Dim::c(c)).collect::<Vec<_>>();
    let r1 = op(&mut g, "r1", Op::Reshape { shape: d(&[6, 4]) }, &[x]);
    let r2 = op(&mut g, "r2", Op::Reshape { shape: d(&[4, 6]) }, &[r1]);
    let y = un(&mut g, UnaryOp::Exp, r2);
    g.add_output("y", y);
    let h = check(&g, "reshape-reshape", |o| matches!(o, Op::Reshape { .. }), |_| false);
    let reshapes = h
        .topo_order()
        .iter()
        .filter(|&&n| matches!(h.node(n).op, Op::Reshape { .. }))
        .count();
    assert_eq!(reshapes, 1);
}

#[test]
fn transposed_weights_are_folded() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[3, 4]));
    let w = g.add_const("w", wave(&[5, 4], 0.3));
    let wt = op(&mut g, "wt", Op::Transpose { perm: vec![1, 0] }, &[w]);
    let y = op(&mut g, "y", Op::MatMul, &[x, wt]);
    g.add_output("y", y);
    check(
        &g,
        "fold-constant",
        |o| matches!(o, Op::MatMul),
        |o| matches!(o, Op::Transpose { .. }),
    );
}

/// The ONNX exporter's LayerNorm: mean, sub, pow 2 (or mul self), mean, add eps, sqrt, div,
/// mul scale, add bias.
fn decomposed_layer_norm(pow: bool) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[2, 3, 8]));
    let m = mean_last(&mut g, x);
    let d = bin(&mut g, BinaryOp::Sub, x, m);
    let sq = if pow {
        let two = scalar(&mut g, 2.0);
        bin(&mut g, BinaryOp::Pow, d, two)
    } else {
        bin(&mut g, BinaryOp::Mul, d, d)
    };
    let var = mean_last(&mut g, sq);
    let eps = scalar(&mut g, 1e-5);
    let ve = bin(&mut g, BinaryOp::Add, var, eps);
    let sd = un(&mut g, UnaryOp::Sqrt, ve);
    let n = bin(&mut g, BinaryOp::Div, d, sd);
    let s = g.add_const("scale", wave(&[8], 1.0));
    let b = g.add_const("bias", wave(&[8], 2.0));
    let ns = bin(&mut g, BinaryOp::Mul, n, s);
    let y = bin(&mut g, BinaryOp::Add, b, ns);
    g.add_output("y", y);
    g
}

#[test]
fn decomposed_layer_norm_becomes_one_op() {
    for pow in [true, false] {
        check(
            &decomposed_layer_norm(pow),
            "layer-norm",
            |o| matches!(o, Op::LayerNorm { axis: 2, .. }),
            |o| matches!(o, Op::Reduce { .. } | Op::Unary(_)),
        );
    }
}

/// RMSNorm as the Llama builder writes it, and with `Pow`/`Sqrt`+`Div`/`Reciprocal(Sqrt)`.
fn decomposed_rms_norm(variant: u8) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[2, 3, 8]));
    let sq = if variant == 1 {
        let two = scalar(&mut g, 2.0);
        bin(&mut g, BinaryOp::Pow, x, two)
    } else {
        bin(&mut g, BinaryOp::Mul, x, x)
    };
    let ms = mean_last(&mut g, sq);
    let eps = scalar(&mut g, 1e-6);
    let ve = bin(&mut g, BinaryOp::Add, ms, eps);
    let n = match variant {
        2 => {
            let s = un(&mut g, UnaryOp::Sqrt, ve);
            bin(&mut g, BinaryOp::Div, x, s)
        }
        3 => {
            let s = un(&mut g, UnaryOp::Sqrt, ve);
            let r = un(&mut g, UnaryOp::Reciprocal, s);
            bin(&mut g, BinaryOp::Mul, r, x)
        }
        _ => {
            let r = un(&mut g, UnaryOp::Rsqrt, ve);
            bin(&mut g, BinaryOp::Mul, x, r)
        }
    };
    let w = g.add_const("weight", wave(&[8], 0.5));
    let y = bin(&mut g, BinaryOp::Mul, n, w);
    g.add_output("y", y);
    g
}

#[test]
fn decomposed_rms_norm_becomes_one_op() {
    for v in 0..4 {
        check(
            &decomposed_rms_norm(v),
            "rms-norm",
            |o| matches!(o, Op::RmsNorm { axis: 2, .. }),
            |o| matches!(o, Op::Reduce { .. }),
        );
    }
}

#[test]
fn max_subtracted_softmax_becomes_one_op_and_the_unsafe_form_does_not() {
    let build = |with_max: bool| {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[2, 3, 8]));
        let e = if with_max {
            let m = op(
                &mut g,
                "max",
                Op::Reduce {
                    op: ReduceOp::Max,
                    axes: vec![2],
                    keep_dims: true,
                },
                &[x],
            );
            let d = bin(&mut g, BinaryOp::Sub, x, m);
            un(&mut g, UnaryOp::Exp, d)
        } else {
            un(&mut g, UnaryOp::Exp, x)
        };
        let s = op(
            &mut g,
            "sum",
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: vec![2],
                keep_dims: true,
            },
            &[e],
        );
        let y = bin(&mut g, BinaryOp::Div, e, s);
        g.add_output("y", y);
        g
    };
    check(
        &build(true),
        "softmax",
        |o| matches!(o, Op::Softmax { axis: 2, log: false }),
        |o| matches!(o, Op::Reduce { .. }),
    );
    let (h, r) = optimize_with(build(false), &OptConfig::default(), &PerfProfile::for_target("desktop")).unwrap();
    assert!(!r.fired.iter().any(|f| f.0 == "softmax"), "{r:?}");
    assert!(!h
        .topo_order()
        .iter()
        .any(|&n| matches!(h.node(n).op, Op::Softmax { .. })));
}

#[test]
fn per_channel_scale_and_shift_fold_into_the_convolution() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[1, 3, 6, 6]));
    let w = g.add_const("w", wave(&[4, 3, 3, 3], 0.1));
    let b = g.add_const("b", wave(&[4], 0.2));
    let c = op(
        &mut g,
        "conv",
        Op::Conv {
            strides: vec![1, 1],
            pads: vec![(1, 1), (1, 1)],
            dilations: vec![1, 1],
            groups: 1,
        },
        &[x, w, b],
    );
    let s = g.add_const("bn.scale", wave(&[4, 1, 1], 0.7));
    let t = g.add_const("bn.shift", wave(&[1, 4, 1, 1], 0.9));
    let m = bin(&mut g, BinaryOp::Mul, c, s);
    let a = bin(&mut g, BinaryOp::Add, t, m);
    let y = un(&mut g, UnaryOp::Relu, a);
    g.add_output("y", y);
    check(
        &g,
        "conv-affine-fold",
        |o| matches!(o, Op::Conv { .. }),
        |o| matches!(o, Op::Binary(_)),
    );
}

#[test]
fn weight_only_subgraphs_are_computed_at_compile_time_within_the_cap() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[4]));
    let a = g.add_const("a", wave(&[4], 0.0));
    let b = g.add_const("b", wave(&[4], 1.0));
    let e = un(&mut g, UnaryOp::Exp, a);
    let s = bin(&mut g, BinaryOp::Mul, e, b);
    let y = bin(&mut g, BinaryOp::Add, x, s);
    g.add_output("y", y);
    check(
        &g,
        "fold-constant",
        |o| matches!(o, Op::Binary(BinaryOp::Add)),
        |o| matches!(o, Op::Unary(_)),
    );
    // An Expand past the cap stays an op.
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[512, 512]));
    let a = g.add_const("a", wave(&[512], 0.0));
    let shape = g.node(x).ty.shape.clone();
    let e = op(&mut g, "big", Op::Expand { shape }, &[a]);
    let y = bin(&mut g, BinaryOp::Add, x, e);
    g.add_output("y", y);
    let (h, _) = optimize_with(
        g.clone(),
        &OptConfig::default(),
        &PerfProfile::for_target("webgpu-default"),
    )
    .unwrap();
    assert!(h
        .topo_order()
        .iter()
        .any(|&n| matches!(h.node(n).op, Op::Expand { .. })));
}

#[test]
fn symbolic_shapes_and_unrelated_ops_pass_through_unchanged() {
    let mut g = Graph::new();
    let x = g.add_input(
        "x",
        TensorType {
            dtype: DType::F32,
            shape: vec![kiln_ir::Dim::sym("batch"), kiln_ir::Dim::c(8)],
        },
    );
    let w = g.add_const("w", wave(&[8, 4], 0.0));
    let m = op(&mut g, "mm", Op::MatMul, &[x, w]);
    let y = un(&mut g, UnaryOp::Tanh, m);
    g.add_output("y", y);
    let (h, _) = optimize_with(g.clone(), &OptConfig::default(), &PerfProfile::for_target("h200")).unwrap();
    assert_eq!(h.len(), g.len());
    assert_eq!(h.node(h.outputs()[0].1).ty, g.node(g.outputs()[0].1).ty);
    assert_eq!(h.inputs().len(), 1);
}

#[test]
fn every_rms_norm_of_a_deep_residual_stack_keeps_its_weight() {
    // A residual stream read by each layer's norm (three times) and its add makes tree costs
    // grow exponentially with depth; the scaled and the unscaled forms of the last layers'
    // norms then cost the same to f64 rounding, and the tie-break must still pick the norm
    // with its weight over a norm of ones followed by a separate multiply.
    let mut g = Graph::new();
    let mut x = g.add_input("x", TensorType::new(DType::F32, &[2, 8]));
    for l in 0..40 {
        let sq = bin(&mut g, BinaryOp::Mul, x, x);
        let ms = mean_last(&mut g, sq);
        let eps = scalar(&mut g, 1e-6);
        let ve = bin(&mut g, BinaryOp::Add, ms, eps);
        let r = un(&mut g, UnaryOp::Rsqrt, ve);
        let n = bin(&mut g, BinaryOp::Mul, x, r);
        let w = g.add_const(&format!("w{l}"), wave(&[8], l as f32));
        let h = bin(&mut g, BinaryOp::Mul, n, w);
        let m = g.add_const(&format!("m{l}"), wave(&[8, 8], 0.1 * l as f32));
        let y = op(&mut g, &format!("mm{l}"), Op::MatMul, &[h, m]);
        x = bin(&mut g, BinaryOp::Add, x, y);
    }
    g.add_output("y", x);
    let (h, _) = optimize_with(
        g.clone(),
        &OptConfig::default(),
        &PerfProfile::for_target("webgpu-default"),
    )
    .unwrap();
    let order = h.topo_order();
    let norms = order
        .iter()
        .filter(|&&n| matches!(h.node(n).op, Op::RmsNorm { .. }))
        .count();
    assert_eq!(norms, 40);
    for &n in &order {
        if matches!(h.node(n).op, Op::Binary(BinaryOp::Mul)) {
            for i in h.inputs_of(n) {
                assert!(
                    !matches!(h.node(i).op, Op::RmsNorm { .. }),
                    "{} multiplies a norm: the weight was not folded into it",
                    h.node(n).name
                );
            }
        }
    }
    let inputs: HashMap<String, Tensor> = [("x".to_string(), wave(&[2, 8], 0.0))].into_iter().collect();
    let (a, b) = (evaluate(&g, &inputs).unwrap(), evaluate(&h, &inputs).unwrap());
    for (x, y) in a["y"].to_f64().iter().zip(b["y"].to_f64()) {
        assert!((x - y).abs() <= 1e-4 * x.abs() + 1e-4, "{x} vs {y}");
    }
}

/// A graph thousands of ops deep (issue 10's 15,000-op chain took minutes in egg's sweeping
/// extractor, quadratic in the depth): the worklist extraction costs each e-node a bounded
/// number of times, and the extracted graph computes what the original does.
#[test]
fn a_deep_chain_is_extracted_with_linear_work_and_stays_correct() {
    let mut g = Graph::new();
    let x = g.add_input(
        "x",
        TensorType {
            dtype: DType::F32,
            shape: vec![kiln_ir::Dim::c(3), kiln_ir::Dim::c(5)],
        },
    );
    let step = scalar(&mut g, 0.25);
    let mut v = x;
    for i in 0..4000 {
        v = match i % 3 {
            0 => un(&mut g, UnaryOp::Neg, v),
            1 => bin(&mut g, BinaryOp::Add, v, step),
            _ => bin(&mut g, BinaryOp::Mul, v, step),
        };
    }
    g.add_output("y", v);
    let (h, r) = optimize_with(
        g.clone(),
        &OptConfig::default(),
        &PerfProfile::for_target("webgpu-default"),
    )
    .unwrap();
    eprintln!("{} e-nodes, {} cost-function calls", r.enodes, r.extract_cost_calls);
    assert!(r.enodes >= 4000, "{} e-nodes", r.enodes);
    // egg's extractor made about depth / 3 sweeps over every class here (millions of calls).
    assert!(
        r.extract_cost_calls <= 4 * r.enodes,
        "{} cost calls for {} e-nodes",
        r.extract_cost_calls,
        r.enodes
    );
    let ins = HashMap::from([("x".to_string(), wave(&[3, 5], 0.3))]);
    let (want, got) = (evaluate(&g, &ins).unwrap(), evaluate(&h, &ins).unwrap());
    let (w, o) = (want["y"].to_f64(), got["y"].to_f64());
    for (a, b) in w.iter().zip(&o) {
        assert!((a - b).abs() <= 1e-5 * a.abs() + 1e-6, "{a} vs {b}");
    }
}
