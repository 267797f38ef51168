//! Spot checks of the ONNX op lowerings (decompositions and opset differences), each against
//! values computed by hand or by a direct Rust reference.

use kiln_compiler::frontend::onnx::builder::{d, tensor_f32, tensor_i64, DataType, ModelBuilder};
use kiln_compiler::frontend::onnx::load_onnx_bytes;
use kiln_ir::{interp, DType, Dim, DimBindings, Tensor};
use std::collections::HashMap;

/// A model importing `opset` whose graph inputs are declared from the given tensors
/// (f32 -> FLOAT, i32 -> INT64, bool -> BOOL).
fn model(opset: i64, inputs: &[(&str, &Tensor)]) -> ModelBuilder {
    let mut b = ModelBuilder::new("ops");
    b.opset(opset);
    for (name, t) in inputs {
        let dt = match t.dtype() {
            DType::F32 => DataType::Float,
            DType::I32 => DataType::Int64,
            DType::Bool => DataType::Bool,
            other => panic!("no test dtype for {other}"),
        };
        let dims: Vec<_> = t.shape.iter().map(|&s| d(s)).collect();
        b.input(name, dt, &dims);
    }
    b
}

fn run(b: &ModelBuilder, inputs: &[(&str, &Tensor)]) -> HashMap<String, Tensor> {
    let m = load_onnx_bytes(&b.encode(), "ops", &DimBindings::new()).unwrap_or_else(|e| panic!("load: {e}"));
    let ins = inputs.iter().map(|(n, t)| (n.to_string(), (*t).clone())).collect();
    interp::evaluate(&m.graph, &ins).unwrap_or_else(|e| panic!("evaluate: {e}"))
}

fn load_err(b: &ModelBuilder) -> String {
    match load_onnx_bytes(&b.encode(), "ops", &DimBindings::new()) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// Runs `op` on input "x" with output "y" (f32) and returns y's values and shape.
fn unary(
    opset: i64,
    op: &str,
    x: &Tensor,
    attrs: impl FnOnce(kiln_compiler::frontend::onnx::builder::NodeRef<'_>),
) -> (Vec<f32>, Vec<usize>) {
    let mut b = model(opset, &[("x", x)]);
    attrs(b.node(op, &["x"], &["y"]).name("op"));
    b.output("y", DataType::Float);
    let out = run(&b, &[("x", x)]);
    (out["y"].to_f32(), out["y"].shape.clone())
}

#[track_caller]
fn close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, want {w} ({got:?} vs {want:?})"
        );
    }
}

fn t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::f32(shape.to_vec(), v.to_vec())
}

const XS: [f32; 6] = [-2.5, -1.0, -0.25, 0.5, 1.5, 3.0];

#[test]
fn activations() {
    let x = t(&[6], &XS);
    let (y, _) = unary(17, "HardSwish", &x, |_| {});
    close(&y, &XS.map(|v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0)), 1e-6);
    let (y, _) = unary(17, "HardSigmoid", &x, |n| {
        n.attr_float("alpha", 0.3).attr_float("beta", 0.4);
    });
    close(&y, &XS.map(|v| (0.3 * v + 0.4).clamp(0.0, 1.0)), 1e-6);
    let (y, _) = unary(17, "LeakyRelu", &x, |n| {
        n.attr_float("alpha", 0.1);
    });
    close(&y, &XS.map(|v| if v >= 0.0 { v } else { 0.1 * v }), 1e-6);
    let (y, _) = unary(17, "Elu", &x, |_| {});
    close(&y, &XS.map(|v| if v > 0.0 { v } else { v.exp() - 1.0 }), 1e-6);
    let (y, _) = unary(17, "Selu", &x, |_| {});
    close(
        &y,
        &XS.map(|v| 1.050_701 * if v > 0.0 { v } else { 1.673_263_2 * (v.exp() - 1.0) }),
        1e-5,
    );
    let (y, _) = unary(17, "Softplus", &x, |_| {});
    close(&y, &XS.map(|v| v.exp().ln_1p()), 1e-6);
    let (y, _) = unary(17, "Softsign", &x, |_| {});
    close(&y, &XS.map(|v| v / (1.0 + v.abs())), 1e-6);
    let (y, _) = unary(20, "Gelu", &x, |n| {
        n.attr_str("approximate", "tanh");
    });
    let gelu_tanh =
        |v: f32| 0.5 * v * (1.0 + ((2.0 / std::f32::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh());
    close(&y, &XS.map(gelu_tanh), 1e-5);
    // Exact Gelu: compare against the tanh form loosely (they agree to ~1e-3 here).
    let (y, _) = unary(20, "Gelu", &x, |_| {});
    close(&y, &XS.map(gelu_tanh), 2e-3);
    let (y, _) = unary(17, "Clip", &x, |_| {});
    assert_eq!(y, XS.to_vec(), "Clip without bounds is the identity");
}

#[test]
fn clip_bounds_from_attributes_then_inputs() {
    let x = t(&[6], &XS);
    let (y, _) = unary(10, "Clip", &x, |n| {
        n.attr_float("min", -1.0).attr_float("max", 1.0);
    });
    close(&y, &XS.map(|v| v.clamp(-1.0, 1.0)), 0.0);
    let mut b = model(13, &[("x", &x)]);
    b.initializer(tensor_f32("lo", &[], &[0.0]));
    b.node("Clip", &["x", "lo", ""], &["y"]);
    b.output("y", DataType::Float);
    assert_eq!(run(&b, &[("x", &x)])["y"].to_f32(), XS.map(|v| v.max(0.0)).to_vec());
}

#[test]
fn unary_math_and_variadic() {
    let x = t(&[6], &XS);
    for (op, f) in [
        ("Neg", (|v: f32| -v) as fn(f32) -> f32),
        ("Abs", |v| v.abs()),
        ("Floor", |v| v.floor()),
        ("Ceil", |v| v.ceil()),
        ("Sign", |v| v.signum()),
        ("Exp", |v| v.exp()),
        ("Tan", |v| v.tan()),
        ("Sinh", |v| v.sinh()),
        ("Cosh", |v| v.cosh()),
    ] {
        let (y, _) = unary(17, op, &x, |_| {});
        close(&y, &XS.map(f), 1e-5);
    }
    // Round is half to even.
    let r = t(&[4], &[0.5, 1.5, 2.5, -0.5]);
    assert_eq!(unary(17, "Round", &r, |_| {}).0, vec![0.0, 2.0, 2.0, -0.0]);
    let a = t(&[3], &[1.0, 5.0, -2.0]);
    let c = t(&[3], &[4.0, 2.0, -3.0]);
    for (op, want) in [
        ("Max", [4.0, 5.0, -2.0]),
        ("Min", [1.0, 2.0, -3.0]),
        ("Sum", [5.0, 7.0, -5.0]),
        ("Mean", [2.5, 3.5, -2.5]),
    ] {
        let mut b = model(13, &[("a", &a), ("c", &c)]);
        b.node(op, &["a", "c"], &["y"]);
        b.output("y", DataType::Float);
        assert_eq!(run(&b, &[("a", &a), ("c", &c)])["y"].to_f32(), want.to_vec(), "{op}");
    }
    let mut b = model(13, &[("a", &a), ("c", &c)]);
    b.node("Pow", &["a", "c"], &["y"]);
    b.output("y", DataType::Float);
    close(
        &run(&b, &[("a", &a), ("c", &c)])["y"].to_f32(),
        &[1.0, 25.0, -0.125],
        1e-6,
    );
}

#[test]
fn comparisons_logic_where_and_cast() {
    let a = t(&[4], &[1.0, 2.0, 3.0, 4.0]);
    let c = t(&[4], &[2.0, 2.0, 2.0, 2.0]);
    let mut b = model(13, &[("a", &a), ("c", &c)]);
    b.node("Less", &["a", "c"], &["lt"]);
    b.node("Equal", &["a", "c"], &["eq"]);
    b.node("GreaterOrEqual", &["a", "c"], &["ge"]);
    b.node("Or", &["lt", "eq"], &["le"]);
    b.node("Not", &["le"], &["gt"]);
    b.node("Xor", &["gt", "ge"], &["eq2"]);
    b.node("Where", &["gt", "a", "c"], &["y"]);
    b.node("Cast", &["gt"], &["gt_i64"]).attr_int("to", 7);
    b.output("y", DataType::Float);
    b.output("eq2", DataType::Bool);
    b.output("gt_i64", DataType::Int64);
    let out = run(&b, &[("a", &a), ("c", &c)]);
    assert_eq!(out["y"].to_f32(), vec![2.0, 2.0, 3.0, 4.0]);
    assert_eq!(out["eq2"].to_f64(), vec![0.0, 1.0, 0.0, 0.0]);
    assert_eq!(out["gt_i64"].dtype(), DType::I32);
    assert_eq!(out["gt_i64"].to_f64(), vec![0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn layer_batch_instance_rms_norms() {
    let x = t(&[2, 3], &[1.0, 2.0, 4.0, -1.0, 0.0, 7.0]);
    let row_norm = |r: &[f32], eps: f32| {
        let m = r.iter().sum::<f32>() / r.len() as f32;
        let v = r.iter().map(|a| (a - m) * (a - m)).sum::<f32>() / r.len() as f32;
        r.iter().map(|a| (a - m) / (v + eps).sqrt()).collect::<Vec<f32>>()
    };
    // LayerNormalization without bias.
    let mut b = model(17, &[("x", &x)]);
    b.init_f32("s", &[3], &[1.0, 2.0, 0.5]);
    b.node("LayerNormalization", &["x", "s"], &["y"])
        .attr_float("epsilon", 1e-3);
    b.output("y", DataType::Float);
    let y = run(&b, &[("x", &x)])["y"].to_f32();
    let mut want = row_norm(&x.to_f32()[..3], 1e-3);
    want.extend(row_norm(&x.to_f32()[3..], 1e-3));
    let want: Vec<f32> = want
        .iter()
        .enumerate()
        .map(|(i, v)| v * [1.0, 2.0, 0.5][i % 3])
        .collect();
    close(&y, &want, 1e-5);

    // RMSNormalization (opset 23).
    let mut b = model(23, &[("x", &x)]);
    b.init_f32("s", &[3], &[1.0, 2.0, 0.5]);
    b.node("RMSNormalization", &["x", "s"], &["y"])
        .attr_float("epsilon", 1e-5);
    b.output("y", DataType::Float);
    let y = run(&b, &[("x", &x)])["y"].to_f32();
    let xs = x.to_f32();
    let mut want = Vec::new();
    for r in 0..2 {
        let row = &xs[r * 3..r * 3 + 3];
        let rms = (row.iter().map(|a| a * a).sum::<f32>() / 3.0 + 1e-5).sqrt();
        want.extend(row.iter().enumerate().map(|(i, a)| a / rms * [1.0, 2.0, 0.5][i]));
    }
    close(&y, &want, 1e-5);

    // BatchNormalization (inference) on [N=1, C=2, 2].
    let xb = t(&[1, 2, 2], &[1.0, 3.0, -2.0, 4.0]);
    let mut b = model(15, &[("x", &xb)]);
    b.init_f32("scale", &[2], &[2.0, 0.5]);
    b.init_f32("bias", &[2], &[1.0, -1.0]);
    b.init_f32("mean", &[2], &[2.0, 1.0]);
    b.init_f32("var", &[2], &[4.0, 9.0]);
    b.node("BatchNormalization", &["x", "scale", "bias", "mean", "var"], &["y"])
        .attr_float("epsilon", 0.0);
    b.output("y", DataType::Float);
    let y = run(&b, &[("x", &xb)])["y"].to_f32();
    close(&y, &[0.0, 2.0, -1.5, -0.5], 1e-6);

    // InstanceNormalization on [1, 2, 3].
    let xi = t(&[1, 2, 3], &[1.0, 2.0, 4.0, -1.0, 0.0, 7.0]);
    let mut b = model(15, &[("x", &xi)]);
    b.init_f32("scale", &[2], &[2.0, 1.0]);
    b.init_f32("bias", &[2], &[0.5, 0.0]);
    b.node("InstanceNormalization", &["x", "scale", "bias"], &["y"]);
    b.output("y", DataType::Float);
    let y = run(&b, &[("x", &xi)])["y"].to_f32();
    let mut want: Vec<f32> = row_norm(&[1.0, 2.0, 4.0], 1e-5).iter().map(|v| v * 2.0 + 0.5).collect();
    want.extend(row_norm(&[-1.0, 0.0, 7.0], 1e-5));
    close(&y, &want, 1e-5);
}

#[test]
fn reductions_by_opset() {
    let x = t(&[2, 3], &[1.0, -2.0, 3.0, 4.0, 5.0, -6.0]);
    // ReduceSum: axes attribute before 13, input from 13.
    let mut b = model(11, &[("x", &x)]);
    b.node("ReduceSum", &["x"], &["y"])
        .attr_ints("axes", &[1])
        .attr_int("keepdims", 0);
    b.output("y", DataType::Float);
    assert_eq!(run(&b, &[("x", &x)])["y"].to_f32(), vec![2.0, 3.0]);
    let mut b = model(13, &[("x", &x)]);
    b.init_i64("axes", &[1], &[0]);
    b.node("ReduceSum", &["x", "axes"], &["y"]);
    b.output("y", DataType::Float);
    let out = run(&b, &[("x", &x)]);
    assert_eq!(
        (out["y"].to_f32(), out["y"].shape.clone()),
        (vec![5.0, 3.0, -3.0], vec![1, 3])
    );
    // ReduceMean/L2/SumSquare: attribute until 17, input from 18.
    let mut b = model(17, &[("x", &x)]);
    b.node("ReduceL2", &["x"], &["y"])
        .attr_ints("axes", &[-1])
        .attr_int("keepdims", 0);
    b.output("y", DataType::Float);
    close(
        &run(&b, &[("x", &x)])["y"].to_f32(),
        &[14f32.sqrt(), 77f32.sqrt()],
        1e-6,
    );
    let mut b = model(18, &[("x", &x)]);
    b.init_i64("axes", &[1], &[1]);
    b.node("ReduceSumSquare", &["x", "axes"], &["y"])
        .attr_int("keepdims", 0);
    b.node("ReduceMax", &["x", "axes"], &["mx"]).attr_int("keepdims", 0);
    b.node("ReduceMean", &["x"], &["all"]).attr_int("keepdims", 0);
    b.node("ReduceLogSumExp", &["x", "axes"], &["lse"])
        .attr_int("keepdims", 0);
    b.output("y", DataType::Float);
    b.output("mx", DataType::Float);
    b.output("all", DataType::Float);
    b.output("lse", DataType::Float);
    let out = run(&b, &[("x", &x)]);
    assert_eq!(out["y"].to_f32(), vec![14.0, 77.0]);
    assert_eq!(out["mx"].to_f32(), vec![3.0, 5.0]);
    assert_eq!(
        (out["all"].to_f32(), out["all"].shape.clone()),
        (vec![5.0 / 6.0], vec![])
    );
    let lse = |r: &[f32]| r.iter().map(|v| v.exp()).sum::<f32>().ln();
    close(
        &out["lse"].to_f32(),
        &[lse(&[1.0, -2.0, 3.0]), lse(&[4.0, 5.0, -6.0])],
        1e-6,
    );
    // ArgMin, global pools.
    let mut b = model(13, &[("x", &x)]);
    b.node("ArgMin", &["x"], &["y"]).attr_int("axis", 1);
    b.output("y", DataType::Int64);
    let out = run(&b, &[("x", &x)]);
    assert_eq!(
        (out["y"].to_f64(), out["y"].shape.clone()),
        (vec![1.0, 2.0], vec![2, 1])
    );
    let x4 = t(&[1, 2, 1, 2], &[1.0, 3.0, -1.0, -5.0]);
    let (y, s) = unary(13, "GlobalAveragePool", &x4, |_| {});
    assert_eq!((y, s), (vec![2.0, -3.0], vec![1, 2, 1, 1]));
    let (y, _) = unary(13, "GlobalMaxPool", &x4, |_| {});
    assert_eq!(y, vec![3.0, -1.0]);
}

#[test]
fn squeeze_unsqueeze_flatten_by_opset() {
    let x = t(&[1, 3, 1], &[1.0, 2.0, 3.0]);
    let (y, s) = unary(11, "Squeeze", &x, |n| {
        n.attr_ints("axes", &[0]);
    });
    assert_eq!((y, s), (vec![1.0, 2.0, 3.0], vec![3, 1]));
    let (_, s) = unary(13, "Squeeze", &x, |_| {});
    assert_eq!(s, vec![3]);
    let (_, s) = unary(11, "Unsqueeze", &x, |n| {
        n.attr_ints("axes", &[0, -1]);
    });
    assert_eq!(s, vec![1, 1, 3, 1, 1]);
    let mut b = model(13, &[("x", &x)]);
    b.init_i64("axes", &[1], &[2]);
    b.node("Unsqueeze", &["x", "axes"], &["y"]);
    b.output("y", DataType::Float);
    assert_eq!(run(&b, &[("x", &x)])["y"].shape, vec![1, 3, 1, 1]);
    let x4 = t(&[2, 3, 1, 2], &[0.0; 12]);
    let (_, s) = unary(13, "Flatten", &x4, |n| {
        n.attr_int("axis", 2);
    });
    assert_eq!(s, vec![6, 2]);
    let (_, s) = unary(13, "Flatten", &x4, |n| {
        n.attr_int("axis", 0);
    });
    assert_eq!(s, vec![1, 12]);
    let err = {
        let mut b = model(11, &[("x", &x)]);
        b.node("Squeeze", &["x"], &["y"]).name("sq").attr_ints("axes", &[1]);
        b.output("y", DataType::Float);
        load_err(&b)
    };
    assert!(err.contains("sq") && err.contains("squeeze axis 1"), "{err}");
}

#[test]
fn split_slice_concat_gather() {
    let x = t(&[6], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    // Split: sizes attribute (opset 11), input (13), equal parts with num_outputs (18).
    let mut b = model(11, &[("x", &x)]);
    b.node("Split", &["x"], &["a", "c"]).attr_ints("split", &[2, 4]);
    b.output("a", DataType::Float);
    b.output("c", DataType::Float);
    let out = run(&b, &[("x", &x)]);
    assert_eq!(
        (out["a"].to_f32(), out["c"].to_f32()),
        (vec![0.0, 1.0], vec![2.0, 3.0, 4.0, 5.0])
    );
    let mut b = model(13, &[("x", &x)]);
    b.init_i64("sizes", &[2], &[5, 1]);
    b.node("Split", &["x", "sizes"], &["a", "c"]);
    b.output("a", DataType::Float);
    b.output("c", DataType::Float);
    assert_eq!(run(&b, &[("x", &x)])["c"].to_f32(), vec![5.0]);
    let mut b = model(18, &[("x", &x)]);
    b.node("Split", &["x"], &["a", "c", "e", "f"])
        .attr_int("num_outputs", 4);
    for o in ["a", "c", "e", "f"] {
        b.output(o, DataType::Float);
    }
    let out = run(&b, &[("x", &x)]);
    assert_eq!((out["a"].to_f32(), out["f"].to_f32()), (vec![0.0, 1.0], vec![]));
    // Slice: attributes (opset 9), inputs with INT64_MAX and a negative step (13).
    let (y, _) = unary(9, "Slice", &x, |n| {
        n.attr_ints("starts", &[1]).attr_ints("ends", &[-1]);
    });
    assert_eq!(y, vec![1.0, 2.0, 3.0, 4.0]);
    let mut b = model(13, &[("x", &x)]);
    b.init_i64("starts", &[1], &[i64::MAX]);
    b.init_i64("ends", &[1], &[i64::MIN]);
    b.init_i64("axes", &[1], &[0]);
    b.init_i64("steps", &[1], &[-2]);
    b.node("Slice", &["x", "starts", "ends", "axes", "steps"], &["y"]);
    b.output("y", DataType::Float);
    assert_eq!(run(&b, &[("x", &x)])["y"].to_f32(), vec![5.0, 3.0, 1.0]);
    let mut b = model(13, &[("x", &x)]);
    b.init_i64("starts", &[1], &[2]);
    b.init_i64("ends", &[1], &[i64::MAX]);
    b.node("Slice", &["x", "starts", "ends"], &["y"]);
    b.output("y", DataType::Float);
    assert_eq!(run(&b, &[("x", &x)])["y"].to_f32(), vec![2.0, 3.0, 4.0, 5.0]);
    // Concat + Gather with negative indices.
    let m = t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let mut b = model(13, &[("m", &m)]);
    b.node("Concat", &["m", "m"], &["cat"]).attr_int("axis", 1);
    b.init_i64("idx", &[2], &[-1, 0]);
    b.node("Gather", &["cat", "idx"], &["y"]).attr_int("axis", 1);
    b.output("y", DataType::Float);
    let out = run(&b, &[("m", &m)]);
    assert_eq!(
        (out["y"].to_f32(), out["y"].shape.clone()),
        (vec![2.0, 1.0, 4.0, 3.0], vec![2, 2])
    );
}

#[test]
fn expand_tile_constant_of_shape_range_trilu() {
    let x = t(&[2, 1], &[1.0, 2.0]);
    let mut b = model(13, &[("x", &x)]);
    b.init_i64("shape", &[3], &[2, 1, 3]);
    b.node("Expand", &["x", "shape"], &["y"]);
    b.output("y", DataType::Float);
    let out = run(&b, &[("x", &x)]);
    assert_eq!(out["y"].shape, vec![2, 2, 3]);
    assert_eq!(out["y"].to_f32()[..6], [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    let mut b = model(13, &[("x", &x)]);
    b.init_i64("reps", &[2], &[2, 3]);
    b.node("Tile", &["x", "reps"], &["y"]);
    b.output("y", DataType::Float);
    let out = run(&b, &[("x", &x)]);
    assert_eq!(out["y"].shape, vec![4, 3]);
    assert_eq!(
        out["y"].to_f32(),
        vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    );
    // ConstantOfShape from a Shape, Range, Trilu.
    let mut b = model(13, &[("x", &x)]);
    b.node("Shape", &["x"], &["s"]);
    b.node("ConstantOfShape", &["s"], &["c"])
        .attr_tensor("value", tensor_f32("v", &[1], &[7.0]));
    b.node("Add", &["x", "c"], &["y"]);
    b.init_i64("r0", &[], &[1]);
    b.init_i64("r1", &[], &[10]);
    b.init_i64("r2", &[], &[3]);
    b.node("Range", &["r0", "r1", "r2"], &["r"]);
    b.output("y", DataType::Float);
    b.output("r", DataType::Int64);
    let out = run(&b, &[("x", &x)]);
    assert_eq!(out["y"].to_f32(), vec![8.0, 9.0]);
    assert_eq!(out["r"].to_f64(), vec![1.0, 4.0, 7.0]);
    let sq = t(&[3, 3], &[1.0; 9]);
    let (y, _) = unary(14, "Trilu", &sq, |n| {
        n.attr_int("upper", 0);
    });
    assert_eq!(y, vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]);
    let mut b = model(14, &[("x", &sq)]);
    b.init_i64("k", &[], &[1]);
    b.node("Trilu", &["x", "k"], &["y"]);
    b.output("y", DataType::Float);
    assert_eq!(
        run(&b, &[("x", &sq)])["y"].to_f32(),
        vec![0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn softmax_family_and_identity_ops() {
    let x = t(&[2, 2], &[0.0, 1.0, 2.0, 4.0]);
    let (y, _) = unary(13, "LogSoftmax", &x, |_| {});
    let ls = |a: f32, c: f32| a - (a.exp() + c.exp()).ln();
    close(&y, &[ls(0.0, 1.0), ls(1.0, 0.0), ls(2.0, 4.0), ls(4.0, 2.0)], 1e-6);
    let mut b = model(13, &[("x", &x)]);
    b.node("Identity", &["x"], &["i"]);
    b.node("Dropout", &["i"], &["y", "mask"]);
    b.node("Hardmax", &["x"], &["h"]);
    b.output("y", DataType::Float);
    b.output("mask", DataType::Bool);
    b.output("h", DataType::Float);
    let out = run(&b, &[("x", &x)]);
    assert_eq!(out["y"].to_f32(), x.to_f32());
    assert_eq!(out["mask"].to_f64(), vec![1.0; 4]);
    assert_eq!(out["h"].to_f32(), vec![0.0, 1.0, 0.0, 1.0]);
}

#[test]
fn quantization() {
    // DequantizeLinear per axis (axis 0) with uint8 data and zero points.
    let mut b = ModelBuilder::new("dq");
    b.opset(13);
    b.initializer(kiln_compiler::frontend::onnx::builder::tensor_raw(
        "q",
        DataType::Uint8,
        &[2, 2],
        vec![10, 20, 200, 255],
    ));
    b.init_f32("scale", &[2], &[0.5, 2.0]);
    b.initializer(kiln_compiler::frontend::onnx::builder::tensor_raw(
        "zp",
        DataType::Uint8,
        &[2],
        vec![10, 128],
    ));
    b.input("x", DataType::Float, &[d(2), d(2)]);
    b.node("DequantizeLinear", &["q", "scale", "zp"], &["w"])
        .attr_int("axis", 0);
    b.node("Add", &["x", "w"], &["y"]);
    b.output("y", DataType::Float);
    let x = t(&[2, 2], &[0.0; 4]);
    assert_eq!(run(&b, &[("x", &x)])["y"].to_f32(), vec![0.0, 5.0, 144.0, 254.0]);
    // QuantizeLinear to int8 (round half to even, saturate).
    let xq = t(&[5], &[-300.0, -1.0, 2.5, 3.0, 1000.0]);
    let mut b = model(13, &[("x", &xq)]);
    b.init_f32("scale", &[], &[2.0]);
    b.initializer(kiln_compiler::frontend::onnx::builder::tensor_raw(
        "zp",
        DataType::Int8,
        &[],
        vec![1],
    ));
    b.node("QuantizeLinear", &["x", "scale", "zp"], &["y"]);
    b.output("y", DataType::Int8);
    let out = run(&b, &[("x", &xq)]);
    assert_eq!(out["y"].dtype(), DType::I8);
    assert_eq!(out["y"].to_f64(), vec![-128.0, 1.0, 2.0, 3.0, 127.0]);
}

#[test]
fn pad_modes() {
    let x = t(&[1, 3], &[1.0, 2.0, 3.0]);
    for (mode, want) in [
        ("constant", vec![9.0, 9.0, 1.0, 2.0, 3.0, 9.0]),
        ("edge", vec![1.0, 1.0, 1.0, 2.0, 3.0, 3.0]),
        ("reflect", vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0]),
    ] {
        let mut b = model(13, &[("x", &x)]);
        b.init_i64("pads", &[4], &[0, 2, 0, 1]);
        b.init_f32("v", &[], &[9.0]);
        b.node("Pad", &["x", "pads", "v"], &["y"]).attr_str("mode", mode);
        b.output("y", DataType::Float);
        let out = run(&b, &[("x", &x)]);
        assert_eq!(
            (out["y"].to_f32(), out["y"].shape.clone()),
            (want, vec![1, 6]),
            "{mode}"
        );
    }
    // Opset 2..10 form: pads attribute; negative pads crop.
    let (y, s) = unary(10, "Pad", &x, |n| {
        n.attr_ints("pads", &[0, -1, 1, 0]).attr_float("value", 0.5);
    });
    assert_eq!((y, s), (vec![2.0, 3.0, 0.5, 0.5], vec![2, 2]));
}

#[test]
fn cumsum_gather_elements_matmul_integer() {
    let x = t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let mut b = model(14, &[("x", &x)]);
    b.init_i64("ax", &[], &[1]);
    b.node("CumSum", &["x", "ax"], &["y"]);
    b.node("CumSum", &["x", "ax"], &["z"])
        .attr_int("exclusive", 1)
        .attr_int("reverse", 1);
    b.init_i64("ax0", &[], &[0]);
    b.node("CumSum", &["x", "ax0"], &["w"]);
    b.output("y", DataType::Float);
    b.output("z", DataType::Float);
    b.output("w", DataType::Float);
    let out = run(&b, &[("x", &x)]);
    assert_eq!(out["y"].to_f32(), vec![1.0, 3.0, 6.0, 4.0, 9.0, 15.0]);
    assert_eq!(out["z"].to_f32(), vec![5.0, 3.0, 0.0, 11.0, 6.0, 0.0]);
    assert_eq!(out["w"].to_f32(), vec![1.0, 2.0, 3.0, 5.0, 7.0, 9.0]);
    let mut b = model(13, &[("x", &x)]);
    b.initializer(tensor_i64("idx", &[2, 2], &[2, 0, -1, 1]));
    b.node("GatherElements", &["x", "idx"], &["y"]).attr_int("axis", 1);
    b.output("y", DataType::Float);
    assert_eq!(run(&b, &[("x", &x)])["y"].to_f32(), vec![3.0, 1.0, 6.0, 5.0]);
    let mut b = ModelBuilder::new("mmi");
    b.opset(13);
    b.input("a", DataType::Uint8, &[d(1), d(2)]);
    b.initializer(kiln_compiler::frontend::onnx::builder::tensor_raw(
        "w",
        DataType::Uint8,
        &[2, 1],
        vec![3, 5],
    ));
    b.initializer(kiln_compiler::frontend::onnx::builder::tensor_raw(
        "azp",
        DataType::Uint8,
        &[],
        vec![1],
    ));
    b.node("MatMulInteger", &["a", "w", "azp"], &["y"]);
    b.output("y", DataType::Int32);
    let a = Tensor::from_f64(DType::U8, vec![1, 2], &[2.0, 4.0]);
    let m = load_onnx_bytes(&b.encode(), "mmi", &DimBindings::new()).unwrap();
    let out = interp::evaluate(&m.graph, &[("a".to_string(), a)].into_iter().collect()).unwrap();
    assert_eq!(out["y"].to_f64(), vec![(2.0 - 1.0) * 3.0 + (4.0 - 1.0) * 5.0]);
}

#[test]
fn shape_values_with_symbolic_dims() {
    // The HF-style Expand target: Where(Equal(shape, -1), ones, shape) with a symbolic batch.
    let mut b = ModelBuilder::new("sym");
    b.input("x", DataType::Float, &[d("batch"), d(1), d(4)]);
    b.node("Shape", &["x"], &["s"]);
    b.init_i64("minus1", &[3], &[-1, 3, -1]);
    b.init_i64("m1", &[], &[-1]);
    b.node("Equal", &["minus1", "m1"], &["is_m1"]);
    // A symbolic dim compared with -1 is decidably unequal (dims are sizes).
    b.node("Equal", &["s", "minus1"], &["eq"]);
    b.node("Cast", &["eq"], &["eq_i"]).attr_int("to", 7);
    b.node("Where", &["is_m1", "s", "minus1"], &["target"]);
    b.node("Expand", &["x", "target"], &["y"]);
    b.node("Size", &["x"], &["n"]);
    b.output("y", DataType::Float);
    b.output("eq_i", DataType::Int64);
    let m = load_onnx_bytes(&b.encode(), "sym", &DimBindings::new()).unwrap();
    let out_id = m.graph.outputs()[0].1;
    assert_eq!(
        m.graph.node(out_id).ty.shape,
        vec![Dim::sym("batch"), Dim::c(3), Dim::c(4)]
    );
    let x = t(&[2, 1, 4], &[0.0; 8]);
    let out = interp::evaluate(&m.graph, &[("x".to_string(), x)].into_iter().collect()).unwrap();
    assert_eq!(out["y"].shape, vec![2, 3, 4]);
    assert_eq!(out["eq_i"].to_f64(), vec![0.0, 0.0, 0.0]);

    // A symbolic dim used as tensor data needs --dim, and says so.
    let mut b = ModelBuilder::new("sym");
    b.input("x", DataType::Float, &[d("batch"), d(2)]);
    b.node("Shape", &["x"], &["s"]);
    b.node("Cast", &["s"], &["sf"]).attr_int("to", 1);
    b.node("Mul", &["x", "sf"], &["y"]).name("use_shape");
    b.output("y", DataType::Float);
    let e = load_err(&b);
    assert!(e.contains("batch") && e.contains("--dim"), "{e}");
    let mut dims = DimBindings::new();
    dims.insert("batch".into(), 4);
    let m = load_onnx_bytes(&b.encode(), "sym", &dims).unwrap();
    let x = t(&[4, 2], &[1.0; 8]);
    let out = interp::evaluate(&m.graph, &[("x".to_string(), x)].into_iter().collect()).unwrap();
    assert_eq!(out["y"].to_f32()[..4], [4.0, 2.0, 4.0, 2.0]);
}

#[test]
fn int64_initializer_out_of_i32_range_used_as_data_is_an_error() {
    let x = Tensor::i32(vec![2], vec![1, 2]);
    let mut b = model(13, &[("x", &x)]);
    b.init_i64("big", &[2], &[1, 1 << 40]);
    b.node("Add", &["x", "big"], &["y"]).name("add_big");
    b.output("y", DataType::Int64);
    let e = load_err(&b);
    assert!(e.contains("add_big") && e.contains("big") && e.contains("i32"), "{e}");
}

#[test]
fn conv_pool_and_conv_transpose() {
    let x = t(&[1, 1, 3, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    let mut b = model(13, &[("x", &x)]);
    b.init_f32("w", &[1, 1, 2, 2], &[1.0; 4]);
    b.init_f32("bias", &[1], &[1.0]);
    b.node("Conv", &["x", "w", "bias"], &["y"]);
    b.node("Conv", &["x", "w"], &["same"])
        .attr_str("auto_pad", "SAME_UPPER");
    b.node("MaxPool", &["x"], &["mp"]).attr_ints("kernel_shape", &[2, 2]);
    b.node("AveragePool", &["x"], &["ap"])
        .attr_ints("kernel_shape", &[3, 3])
        .attr_ints("pads", &[1, 1, 1, 1]);
    b.node("AveragePool", &["x"], &["api"])
        .attr_ints("kernel_shape", &[3, 3])
        .attr_ints("pads", &[1, 1, 1, 1])
        .attr_int("count_include_pad", 1);
    for o in ["y", "same", "mp", "ap", "api"] {
        b.output(o, DataType::Float);
    }
    let out = run(&b, &[("x", &x)]);
    assert_eq!(
        (out["y"].to_f32(), out["y"].shape.clone()),
        (vec![13.0, 17.0, 25.0, 29.0], vec![1, 1, 2, 2])
    );
    // SAME_UPPER pads at the end: the last row/column see one input row/column.
    assert_eq!(
        out["same"].to_f32(),
        vec![12.0, 16.0, 9.0, 24.0, 28.0, 15.0, 15.0, 17.0, 9.0]
    );
    assert_eq!(out["mp"].to_f32(), vec![5.0, 6.0, 8.0, 9.0]);
    assert_eq!(out["ap"].to_f32()[0], (1.0 + 2.0 + 4.0 + 5.0) / 4.0);
    assert_eq!(out["ap"].to_f32()[4], 5.0);
    assert_eq!(out["api"].to_f32()[0], (1.0 + 2.0 + 4.0 + 5.0) / 9.0);

    let xt = t(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let mut b = model(13, &[("x", &xt)]);
    b.init_f32("w", &[1, 1, 2, 2], &[1.0; 4]);
    b.node("ConvTranspose", &["x", "w"], &["y"])
        .attr_ints("strides", &[2, 2]);
    b.output("y", DataType::Float);
    let out = run(&b, &[("x", &xt)]);
    assert_eq!(out["y"].shape, vec![1, 1, 4, 4]);
    let want = [
        1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0,
    ];
    assert_eq!(out["y"].to_f32(), want.to_vec());
}

#[test]
fn symbolic_range_and_trilu() {
    // Position ids: Range(0, Shape(x)[1], 1) with a symbolic sequence length.
    let mut b = ModelBuilder::new("pos");
    b.opset(14);
    b.input("x", DataType::Float, &[d("batch"), d("seq")]);
    b.node("Shape", &["x"], &["s"]);
    b.init_i64("one", &[], &[1]);
    b.init_i64("zero", &[], &[0]);
    b.node("Gather", &["s", "one"], &["len"]);
    b.node("Range", &["zero", "len", "one"], &["pos"]);
    b.node("Trilu", &["x"], &["upper"]);
    b.output("pos", DataType::Int64);
    b.output("upper", DataType::Float);
    let m = load_onnx_bytes(&b.encode(), "pos", &DimBindings::new()).unwrap();
    let pos_id = m.graph.outputs()[0].1;
    assert_eq!(m.graph.node(pos_id).ty.shape, vec![Dim::sym("seq")]);
    let x = t(&[2, 3], &[1.0; 6]);
    let out = interp::evaluate(&m.graph, &[("x".to_string(), x)].into_iter().collect()).unwrap();
    assert_eq!(out["pos"].to_f64(), vec![0.0, 1.0, 2.0]);
    assert_eq!(out["upper"].to_f32(), vec![1.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
}

#[test]
fn resize_nearest_and_linear() {
    let x = t(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let mut b = model(13, &[("x", &x)]);
    b.init_f32("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    b.node("Resize", &["x", "", "scales"], &["near"])
        .attr_str("mode", "nearest");
    b.node("Resize", &["x", "", "scales"], &["lin"])
        .attr_str("mode", "linear")
        .attr_str("coordinate_transformation_mode", "align_corners");
    b.output("near", DataType::Float);
    b.output("lin", DataType::Float);
    let out = run(&b, &[("x", &x)]);
    assert_eq!(out["near"].shape, vec![1, 1, 4, 4]);
    // half_pixel + round_prefer_floor: source rows 0,0,1,1 (pixel replication).
    assert_eq!(out["near"].to_f32()[..8], [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
    // align_corners: first row goes 1 -> 2 in thirds.
    close(&out["lin"].to_f32()[..4], &[1.0, 4.0 / 3.0, 5.0 / 3.0, 2.0], 1e-6);
    close(&out["lin"].to_f32()[12..], &[3.0, 10.0 / 3.0, 11.0 / 3.0, 4.0], 1e-6);
}

#[test]
fn slice_with_symbolic_end() {
    // position_ids[:, 0:seq] from a constant buffer, seq = Shape(x)[1] (symbolic).
    let mut b = ModelBuilder::new("pos");
    b.opset(13);
    b.input("x", DataType::Float, &[d("batch"), d("seq")]);
    b.init_i64("buffer", &[1, 8], &[10, 11, 12, 13, 14, 15, 16, 17]);
    b.node("Shape", &["x"], &["s"]);
    b.init_i64("i1", &[1], &[1]);
    b.init_i64("zero", &[1], &[0]);
    b.node("Gather", &["s", "i1"], &["len"]);
    b.node("Slice", &["buffer", "zero", "len", "i1"], &["pos"]);
    b.output("pos", DataType::Int64);
    let m = load_onnx_bytes(&b.encode(), "pos", &DimBindings::new()).unwrap();
    let id = m.graph.outputs()[0].1;
    assert_eq!(m.graph.node(id).ty.shape, vec![Dim::c(1), Dim::sym("seq")]);
    let x = t(&[1, 3], &[0.0; 3]);
    let out = interp::evaluate(&m.graph, &[("x".to_string(), x)].into_iter().collect()).unwrap();
    assert_eq!(out["pos"].to_f64(), vec![10.0, 11.0, 12.0]);
}

#[test]
fn depth_space_and_one_hot() {
    let x = t(&[1, 8, 1, 1], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    let mut b = model(13, &[("x", &x)]);
    b.node("DepthToSpace", &["x"], &["dcr"]).attr_int("blocksize", 2);
    b.node("DepthToSpace", &["x"], &["crd"])
        .attr_int("blocksize", 2)
        .attr_str("mode", "CRD");
    b.node("SpaceToDepth", &["dcr"], &["back"]).attr_int("blocksize", 2);
    for o in ["dcr", "crd", "back"] {
        b.output(o, DataType::Float);
    }
    let out = run(&b, &[("x", &x)]);
    assert_eq!(out["dcr"].shape, vec![1, 2, 2, 2]);
    assert_eq!(out["dcr"].to_f32(), vec![0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]);
    assert_eq!(out["crd"].to_f32(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    assert_eq!(
        (out["back"].to_f32(), out["back"].shape.clone()),
        (x.to_f32(), vec![1, 8, 1, 1])
    );

    let idx = Tensor::i32(vec![3], vec![0, 2, -1]);
    let mut b = model(11, &[("i", &idx)]);
    b.init_i64("depth", &[], &[3]);
    b.init_f32("values", &[2], &[0.0, 5.0]);
    b.node("OneHot", &["i", "depth", "values"], &["y"]);
    b.node("OneHot", &["i", "depth", "values"], &["y0"]).attr_int("axis", 0);
    b.output("y", DataType::Float);
    b.output("y0", DataType::Float);
    let out = run(&b, &[("i", &idx)]);
    assert_eq!(out["y"].to_f32(), vec![5.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 5.0]);
    assert_eq!(out["y0"].to_f32(), vec![5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 5.0]);
}

#[test]
fn float_floor_mod_and_fmod() {
    let a = t(&[4], &[-3.0, 3.0, -1.0, 5.5]);
    let c = t(&[4], &[2.0, -2.0, f32::INFINITY, 2.0]);
    let mut b = model(13, &[("a", &a), ("c", &c)]);
    b.node("Mod", &["a", "c"], &["floor"]);
    b.node("Mod", &["a", "c"], &["fmod"]).attr_int("fmod", 1);
    b.output("floor", DataType::Float);
    b.output("fmod", DataType::Float);
    let out = run(&b, &[("a", &a), ("c", &c)]);
    assert_eq!(out["floor"].to_f32(), vec![1.0, -1.0, f32::INFINITY, 1.5]);
    assert_eq!(out["fmod"].to_f32(), vec![-1.0, 1.0, -1.0, 1.5]);
}

#[test]
fn lrn_matches_reference() {
    let x = t(&[1, 3, 1, 1], &[1.0, 2.0, 3.0]);
    let (y, _) = unary(13, "LRN", &x, |n| {
        n.attr_int("size", 3)
            .attr_float("alpha", 0.3)
            .attr_float("bias", 2.0)
            .attr_float("beta", 0.5);
    });
    // Channel windows: {0,1}, {0,1,2}, {1,2}.
    let sums = [1.0 + 4.0, 1.0 + 4.0 + 9.0, 4.0 + 9.0];
    let want: Vec<f32> = (0..3)
        .map(|c| x.to_f32()[c] / (2.0 + 0.1 * sums[c] as f32).sqrt())
        .collect();
    close(&y, &want, 1e-6);
}
