//! ONNX frontend tests: models built with the builder, loaded, evaluated with the reference
//! interpreter, and compared with values computed by hand or by direct Rust references.

use kiln_compiler::frontend::onnx::builder::{d, tensor_f32_raw, tensor_i64_raw, DataType, ModelBuilder};
use kiln_compiler::frontend::onnx::{load_onnx, load_onnx_bytes, OnnxError};
use kiln_compiler::Model;
use kiln_ir::{interp, DType, Dim, DimBindings, Op, Tensor};
use std::collections::HashMap;

fn load(b: &ModelBuilder) -> Model {
    load_onnx_bytes(&b.encode(), "test", &DimBindings::new()).unwrap_or_else(|e| panic!("load failed: {e}"))
}

fn load_err(b: &ModelBuilder) -> String {
    match load_onnx_bytes(&b.encode(), "test", &DimBindings::new()) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn eval(m: &Model, inputs: &[(&str, Tensor)]) -> HashMap<String, Tensor> {
    let ins: HashMap<String, Tensor> = inputs.iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
    interp::evaluate(&m.graph, &ins).unwrap_or_else(|e| panic!("evaluate failed: {e}"))
}

fn run(b: &ModelBuilder, inputs: &[(&str, Tensor)]) -> HashMap<String, Tensor> {
    eval(&load(b), inputs)
}

/// Runs a model with one output "y" and returns its values and shape.
fn run_y(b: &ModelBuilder, inputs: &[(&str, Tensor)]) -> (Vec<f32>, Vec<usize>) {
    let out = run(b, inputs);
    let y = &out["y"];
    (y.to_f32(), y.shape.clone())
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "length: got {got:?}, want {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, want {w} (got {got:?}, want {want:?})"
        );
    }
}

fn seq(n: usize, scale: f32, offset: f32) -> Vec<f32> {
    (0..n).map(|i| i as f32 * scale + offset).collect()
}

/// Row-major matmul reference.
fn mm(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    out
}

fn transpose2(a: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = a[i * c + j];
        }
    }
    out
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn mlp_matches_reference() {
    let (batch, din, hid, dout) = (3usize, 4usize, 5usize, 2usize);
    let w1 = seq(din * hid, 0.05, -0.4);
    let b1 = seq(hid, 0.1, -0.2);
    let w2 = seq(dout * hid, -0.07, 0.3); // [dout, hid], used with transB
    let b2 = vec![0.25, -0.5];
    let mut b = ModelBuilder::new("mlp");
    b.input("x", DataType::Float, &[d("batch"), d(din)]);
    b.init_f32("w1", &[din as i64, hid as i64], &w1);
    b.initializer(tensor_f32_raw("b1", &[hid as i64], &b1));
    b.init_f32("w2", &[dout as i64, hid as i64], &w2);
    b.init_f32("b2", &[dout as i64], &b2);
    b.node("MatMul", &["x", "w1"], &["h0"]).name("fc1");
    b.node("Add", &["h0", "b1"], &["h1"]).name("bias1");
    b.node("Relu", &["h1"], &["h2"]).name("relu");
    b.node("Gemm", &["h2", "w2", "b2"], &["h3"])
        .name("fc2")
        .attr_int("transB", 1);
    b.node("Sigmoid", &["h3"], &["y"]).name("sig");
    b.output("y", DataType::Float);
    let m = load(&b);
    assert_eq!(m.name, "mlp");
    let input_id = m.graph.inputs()[0];
    assert_eq!(
        m.graph.node(input_id).ty.shape,
        vec![Dim::sym("batch"), Dim::c(din as i64)]
    );
    assert_eq!(m.graph.symbols(), vec!["batch".to_string()]);
    // The transposed weight was folded into a constant: no Transpose node is left.
    assert!(m
        .graph
        .topo_order()
        .iter()
        .all(|&id| !matches!(m.graph.node(id).op, Op::Transpose { .. })));

    let x = seq(batch * din, 0.3, -1.5);
    let (y, shape) = {
        let out = eval(&m, &[("x", Tensor::f32(vec![batch, din], x.clone()))]);
        (out["y"].to_f32(), out["y"].shape.clone())
    };
    assert_eq!(shape, vec![batch, dout]);
    let mut h = mm(&x, &w1, batch, din, hid);
    for r in 0..batch {
        for c in 0..hid {
            h[r * hid + c] = (h[r * hid + c] + b1[c]).max(0.0);
        }
    }
    let mut o = mm(&h, &transpose2(&w2, dout, hid), batch, hid, dout);
    for r in 0..batch {
        for c in 0..dout {
            o[r * dout + c] = sigmoid(o[r * dout + c] + b2[c]);
        }
    }
    assert_close(&y, &o, 1e-5);
}

#[test]
fn gemm_trans_alpha_beta() {
    // A is [K, M] with transA, B is [N, K] with transB; Y = 0.5 * A'B' + 2 * C, C broadcast [N].
    let (m_, k, n) = (2usize, 3usize, 4usize);
    let a = seq(k * m_, 0.5, -1.0);
    let bw = seq(n * k, 0.25, -0.75);
    let c = seq(n, 1.0, -1.0);
    let mut b = ModelBuilder::new("gemm");
    b.input("a", DataType::Float, &[d(k), d(m_)]);
    b.input("b", DataType::Float, &[d(n), d(k)]);
    b.init_f32("c", &[n as i64], &c);
    b.node("Gemm", &["a", "b", "c"], &["y"])
        .name("g")
        .attr_int("transA", 1)
        .attr_int("transB", 1)
        .attr_float("alpha", 0.5)
        .attr_float("beta", 2.0);
    b.output("y", DataType::Float);
    let (y, shape) = run_y(
        &b,
        &[
            ("a", Tensor::f32(vec![k, m_], a.clone())),
            ("b", Tensor::f32(vec![n, k], bw.clone())),
        ],
    );
    assert_eq!(shape, vec![m_, n]);
    let p = mm(&transpose2(&a, k, m_), &transpose2(&bw, n, k), m_, k, n);
    let want: Vec<f32> = p.iter().enumerate().map(|(i, v)| 0.5 * v + 2.0 * c[i % n]).collect();
    assert_close(&y, &want, 1e-6);
}

#[test]
fn gemm_without_c_and_constant_b_with_alpha() {
    let a = seq(6, 1.0, 0.0);
    let w = seq(6, 0.5, 0.0);
    let mut b = ModelBuilder::new("gemm2");
    b.input("a", DataType::Float, &[d(2), d(3)]);
    b.init_f32("w", &[3, 2], &w);
    b.node("Gemm", &["a", "w"], &["y"]).name("g").attr_float("alpha", 3.0);
    b.output("y", DataType::Float);
    let (y, _) = run_y(&b, &[("a", Tensor::f32(vec![2, 3], a.clone()))]);
    let want: Vec<f32> = mm(&a, &w, 2, 3, 2).iter().map(|v| 3.0 * v).collect();
    assert_close(&y, &want, 1e-6);
}

fn softmax_model(opset: i64, axis: i64) -> ModelBuilder {
    let mut b = ModelBuilder::new("softmax");
    b.opset(opset);
    b.input("x", DataType::Float, &[d(2), d(3), d(4)]);
    b.node("Softmax", &["x"], &["y"]).name("sm").attr_int("axis", axis);
    b.output("y", DataType::Float);
    b
}

#[test]
fn softmax_opset11_flattens_and_opset13_uses_one_axis() {
    let x = seq(24, 0.37, -4.0);
    let input = [("x", Tensor::f32(vec![2, 3, 4], x.clone()))];
    // opset 11, axis 1: softmax over each block of 3*4 = 12 elements.
    let (y11, s11) = run_y(&softmax_model(11, 1), &input);
    assert_eq!(s11, vec![2, 3, 4]);
    let mut want11 = vec![0.0; 24];
    for blk in 0..2 {
        let row = &x[blk * 12..(blk + 1) * 12];
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = row.iter().map(|v| (v - m).exp()).sum();
        for i in 0..12 {
            want11[blk * 12 + i] = (row[i] - m).exp() / s;
        }
    }
    assert_close(&y11, &want11, 1e-5);
    // opset 13, axis 1: softmax over the 3 elements of axis 1 only.
    let (y13, _) = run_y(&softmax_model(13, 1), &input);
    let mut want13 = vec![0.0; 24];
    for b0 in 0..2 {
        for k in 0..4 {
            let at = |j: usize| b0 * 12 + j * 4 + k;
            let m = (0..3).map(|j| x[at(j)]).fold(f32::NEG_INFINITY, f32::max);
            let s: f32 = (0..3).map(|j| (x[at(j)] - m).exp()).sum();
            for j in 0..3 {
                want13[at(j)] = (x[at(j)] - m).exp() / s;
            }
        }
    }
    assert_close(&y13, &want13, 1e-5);
    assert!(
        y11.iter().zip(&y13).any(|(a, b)| (a - b).abs() > 1e-3),
        "the two semantics differ here"
    );
}

#[test]
fn softmax_default_axis_depends_on_opset() {
    // Default axis: 1 before opset 13 (flatten), -1 from 13.
    let x = seq(6, 0.5, 0.0);
    for opset in [11, 13] {
        let mut b = ModelBuilder::new("sm");
        b.opset(opset);
        b.input("x", DataType::Float, &[d(1), d(2), d(3)]);
        b.node("Softmax", &["x"], &["y"]);
        b.output("y", DataType::Float);
        let (y, _) = run_y(&b, &[("x", Tensor::f32(vec![1, 2, 3], x.clone()))]);
        let sum: f32 = y.iter().sum();
        if opset == 11 {
            assert!((sum - 1.0).abs() < 1e-5, "opset 11 normalizes all 6: {y:?}");
        } else {
            assert!((sum - 2.0).abs() < 1e-5, "opset 13 normalizes each row of 3: {y:?}");
        }
    }
}

#[test]
fn reshape_with_zero_and_minus_one() {
    let mut b = ModelBuilder::new("reshape");
    b.input("x", DataType::Float, &[d(2), d(3), d(4)]);
    b.init_i64("shape", &[3], &[0, -1, 2]);
    b.node("Reshape", &["x", "shape"], &["y"]).name("r");
    b.output("y", DataType::Float);
    let x = seq(24, 1.0, 0.0);
    let (y, shape) = run_y(&b, &[("x", Tensor::f32(vec![2, 3, 4], x.clone()))]);
    assert_eq!(shape, vec![2, 6, 2]);
    assert_eq!(y, x);
}

#[test]
fn reshape_symbolic_batch_with_minus_one() {
    let mut b = ModelBuilder::new("reshape");
    b.input("x", DataType::Float, &[d("batch"), d(3), d(4)]);
    b.initializer(tensor_i64_raw("shape", &[2], &[-1, 12]));
    b.node("Reshape", &["x", "shape"], &["y"]).name("r");
    b.output("y", DataType::Float);
    let m = load(&b);
    let out = m.graph.outputs()[0].1;
    assert_eq!(m.graph.node(out).ty.shape, vec![Dim::sym("batch"), Dim::c(12)]);
    let out = eval(&m, &[("x", Tensor::f32(vec![5, 3, 4], seq(60, 1.0, 0.0)))]);
    assert_eq!(out["y"].shape, vec![5, 12]);
}

#[test]
fn reshape_minus_one_not_computable_is_an_error() {
    let mut b = ModelBuilder::new("reshape");
    b.input("x", DataType::Float, &[d(2), d(3)]);
    b.init_i64("shape", &[2], &[-1, 4]);
    b.node("Reshape", &["x", "shape"], &["y"]).name("bad_reshape");
    b.output("y", DataType::Float);
    let e = load_err(&b);
    assert!(e.contains("bad_reshape") && e.contains("-1"), "{e}");
}

#[test]
fn transpose_default_and_perm() {
    let x = seq(6, 1.0, 0.0);
    let mut b = ModelBuilder::new("t");
    b.input("x", DataType::Float, &[d(2), d(3)]);
    b.node("Transpose", &["x"], &["y"]);
    b.output("y", DataType::Float);
    let (y, s) = run_y(&b, &[("x", Tensor::f32(vec![2, 3], x.clone()))]);
    assert_eq!(s, vec![3, 2]);
    assert_eq!(y, transpose2(&x, 2, 3));

    let mut b = ModelBuilder::new("t");
    b.input("x", DataType::Float, &[d(1), d(2), d(3)]);
    b.node("Transpose", &["x"], &["y"]).attr_ints("perm", &[2, 0, 1]);
    b.output("y", DataType::Float);
    let (y, s) = run_y(&b, &[("x", Tensor::f32(vec![1, 2, 3], x.clone()))]);
    assert_eq!(s, vec![3, 1, 2]);
    assert_eq!(y, transpose2(&x, 2, 3));
}

#[test]
fn elementwise_binary_and_unary() {
    let a = vec![1.0, -2.0, 3.0, 0.5];
    let c = vec![2.0, 4.0, -1.0, 0.25];
    for (op, f) in [
        ("Add", (|x: f32, y: f32| x + y) as fn(f32, f32) -> f32),
        ("Sub", |x, y| x - y),
        ("Mul", |x, y| x * y),
        ("Div", |x, y| x / y),
    ] {
        let mut b = ModelBuilder::new("bin");
        b.input("a", DataType::Float, &[d(2), d(2)]);
        b.input("c", DataType::Float, &[d(2), d(2)]);
        b.node(op, &["a", "c"], &["y"]);
        b.output("y", DataType::Float);
        let (y, _) = run_y(
            &b,
            &[
                ("a", Tensor::f32(vec![2, 2], a.clone())),
                ("c", Tensor::f32(vec![2, 2], c.clone())),
            ],
        );
        let want: Vec<f32> = a.iter().zip(&c).map(|(&x, &z)| f(x, z)).collect();
        assert_close(&y, &want, 1e-6);
    }
    for (op, f) in [
        ("Relu", (|x: f32| x.max(0.0)) as fn(f32) -> f32),
        ("Sigmoid", sigmoid),
        ("Tanh", |x| x.tanh()),
    ] {
        let mut b = ModelBuilder::new("un");
        b.input("a", DataType::Float, &[d(4)]);
        b.node(op, &["a"], &["y"]);
        b.output("y", DataType::Float);
        let (y, _) = run_y(&b, &[("a", Tensor::f32(vec![4], a.clone()))]);
        let want: Vec<f32> = a.iter().map(|&x| f(x)).collect();
        assert_close(&y, &want, 1e-6);
    }
}

#[test]
fn constant_nodes_and_folding() {
    // y = x + (Constant c * 2): the constant chain folds to one constant.
    let mut b = ModelBuilder::new("fold");
    b.input("x", DataType::Float, &[d(3)]);
    b.node("Constant", &[], &["c"])
        .attr_tensor("value", tensor_f32_raw("", &[3], &[1.0, 2.0, 3.0]));
    b.node("Constant", &[], &["two"]).attr_float("value_float", 2.0);
    b.node("Mul", &["c", "two"], &["c2"]);
    b.node("Add", &["x", "c2"], &["y"]);
    b.output("y", DataType::Float);
    let m = load(&b);
    let muls = m
        .graph
        .topo_order()
        .iter()
        .filter(|&&id| matches!(m.graph.node(id).op, Op::Binary(kiln_ir::BinaryOp::Mul)))
        .count();
    assert_eq!(muls, 0, "the constant Mul was folded");
    let out = eval(&m, &[("x", Tensor::f32(vec![3], vec![10.0, 20.0, 30.0]))]);
    assert_eq!(out["y"].to_f32(), vec![12.0, 24.0, 36.0]);
}

#[test]
fn shape_chain_with_symbolic_batch() {
    // Reshape x [batch, 3, 4] to [Shape(x)[0], 12] via Shape -> Gather -> Unsqueeze -> Concat.
    let mut b = ModelBuilder::new("chain");
    b.input("x", DataType::Float, &[d("batch"), d(3), d(4)]);
    b.init_i64("zero", &[], &[0]);
    b.init_i64("twelve", &[1], &[12]);
    b.node("Shape", &["x"], &["s"]);
    b.node("Gather", &["s", "zero"], &["n"]).attr_int("axis", 0);
    b.init_i64("ax0", &[1], &[0]);
    b.node("Unsqueeze", &["n", "ax0"], &["n1"]);
    b.node("Concat", &["n1", "twelve"], &["target"]).attr_int("axis", 0);
    b.node("Reshape", &["x", "target"], &["y"]);
    b.output("y", DataType::Float);
    let m = load(&b);
    let out = m.graph.outputs()[0].1;
    assert_eq!(m.graph.node(out).ty.shape, vec![Dim::sym("batch"), Dim::c(12)]);
    let out = eval(&m, &[("x", Tensor::f32(vec![2, 3, 4], seq(24, 1.0, 0.0)))]);
    assert_eq!(out["y"].shape, vec![2, 12]);
}

#[test]
fn dim_bindings_make_dims_constant() {
    let mut b = ModelBuilder::new("dims");
    b.input("x", DataType::Float, &[d("batch"), d("seq"), d(2)]);
    b.node("Relu", &["x"], &["y"]);
    b.output("y", DataType::Float);
    let mut dims = DimBindings::new();
    dims.insert("batch".into(), 4);
    let m = load_onnx_bytes(&b.encode(), "dims", &dims).unwrap();
    let id = m.graph.inputs()[0];
    assert_eq!(m.graph.node(id).ty.shape, vec![Dim::c(4), Dim::sym("seq"), Dim::c(2)]);
}

#[test]
fn unknown_dims_get_fresh_symbols() {
    let mut b = ModelBuilder::new("unk");
    b.input(
        "x",
        DataType::Float,
        &[kiln_compiler::frontend::onnx::builder::DimSpec::Unknown, d(2)],
    );
    b.node("Relu", &["x"], &["y"]);
    b.output("y", DataType::Float);
    let m = load(&b);
    let id = m.graph.inputs()[0];
    assert_eq!(m.graph.node(id).ty.shape, vec![Dim::sym("unk_0"), Dim::c(2)]);
}

#[test]
fn placeholder_dim_params_are_distinct_unknowns() {
    // Exporters write "?" for unknown dims; two of them are not the same dim.
    let mut b = ModelBuilder::new("q");
    b.input("x", DataType::Float, &[d("?"), d(3), d("?")]);
    b.node("Relu", &["x"], &["y"]);
    b.output("y", DataType::Float);
    let m = load(&b);
    let id = m.graph.inputs()[0];
    assert_eq!(
        m.graph.node(id).ty.shape,
        vec![Dim::sym("unk_0"), Dim::c(3), Dim::sym("unk_1")]
    );
}

#[test]
fn int64_io_is_recorded_and_gather_works() {
    let table = seq(12, 1.0, 0.0);
    let mut b = ModelBuilder::new("emb");
    b.input("ids", DataType::Int64, &[d("n")]);
    b.init_f32("table", &[4, 3], &table);
    b.node("Gather", &["table", "ids"], &["y"]).name("lookup");
    b.node("ArgMax", &["y"], &["am"])
        .attr_int("axis", 1)
        .attr_int("keepdims", 0);
    b.output("y", DataType::Float);
    b.output("am", DataType::Int64);
    let m = load(&b);
    assert_eq!(m.io_dtypes.get("ids"), Some(&kiln_abi::ElemType::I64));
    assert_eq!(m.io_dtypes.get("am"), Some(&kiln_abi::ElemType::I64));
    assert_eq!(m.io_dtypes.get("y"), None);
    let ids_node = m.graph.inputs()[0];
    assert_eq!(m.graph.node(ids_node).ty.dtype, DType::I32);
    let out = eval(&m, &[("ids", Tensor::i32(vec![2], vec![3, 1]))]);
    assert_eq!(out["y"].to_f32(), vec![9.0, 10.0, 11.0, 3.0, 4.0, 5.0]);
    assert_eq!(out["am"].to_f64(), vec![2.0, 2.0]);
}

#[test]
fn model_name_falls_back_to_file_stem_and_external_data_loads() {
    let dir = std::env::temp_dir().join(format!("kiln_onnx_ext_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let w = [1.0f32, 2.0, 3.0, 4.0];
    let mut bytes = vec![0u8; 8]; // an offset of 8 bytes
    bytes.extend(w.iter().flat_map(|x| x.to_le_bytes()));
    std::fs::write(dir.join("weights.bin"), &bytes).unwrap();
    let mut b = ModelBuilder::new("");
    b.input("x", DataType::Float, &[d(4)]);
    b.initializer(kiln_compiler::frontend::onnx::builder::tensor_external(
        "w",
        DataType::Float,
        &[4],
        "weights.bin",
        8,
        16,
    ));
    b.node("Mul", &["x", "w"], &["y"]);
    b.output("y", DataType::Float);
    let path = dir.join("tiny_model.onnx");
    std::fs::write(&path, b.encode()).unwrap();
    let m = load_onnx(&path, &DimBindings::new()).unwrap();
    assert_eq!(m.name, "tiny_model");
    let out = eval(&m, &[("x", Tensor::f32(vec![4], vec![1.0; 4]))]);
    assert_eq!(out["y"].to_f32(), w.to_vec());
    std::fs::remove_dir_all(&dir).ok();
}

// ---- errors ----

#[test]
fn truncated_bytes_are_not_a_valid_model() {
    let mut b = ModelBuilder::new("t");
    b.input("x", DataType::Float, &[d(2)]);
    b.node("Relu", &["x"], &["y"]);
    b.output("y", DataType::Float);
    let bytes = b.encode();
    let e = load_onnx_bytes(&bytes[..bytes.len() - 5], "broken.onnx", &DimBindings::new()).unwrap_err();
    assert!(matches!(e, OnnxError::Decode { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("broken.onnx") && msg.contains("not a valid ONNX model"),
        "{msg}"
    );
    let e = load_onnx_bytes(b"\xff\xff\xff garbage", "junk", &DimBindings::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a valid ONNX model"), "{e}");
    let e = load_onnx_bytes(b"", "empty", &DimBindings::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a valid ONNX model"), "{e}");
}

#[test]
fn missing_file_names_the_path() {
    let e = load_onnx(std::path::Path::new("/nonexistent/model.onnx"), &DimBindings::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/model.onnx"), "{e}");
}

#[test]
fn unsupported_op_names_op_and_node() {
    let mut b = ModelBuilder::new("u");
    b.input("x", DataType::Float, &[d(2)]);
    b.node("FancyOp", &["x"], &["y"]).name("n3");
    b.output("y", DataType::Float);
    let e = load_err(&b);
    assert_eq!(e, "unsupported op 'FancyOp' (node 'n3', domain '')");
}

#[test]
fn matmul_shape_mismatch_names_the_node() {
    let mut b = ModelBuilder::new("mm");
    b.input("a", DataType::Float, &[d(2), d(3)]);
    b.input("b", DataType::Float, &[d(4), d(5)]);
    b.node("MatMul", &["a", "b"], &["y"]).name("proj_q");
    b.output("y", DataType::Float);
    let e = load_err(&b);
    assert!(
        e.contains("proj_q") && e.contains("MatMul") && e.contains("inner dims"),
        "{e}"
    );
}

#[test]
fn gemm_shape_mismatch_names_the_onnx_node() {
    let mut b = ModelBuilder::new("g");
    b.input("a", DataType::Float, &[d(2), d(3)]);
    b.input("b", DataType::Float, &[d(4), d(5)]);
    b.node("Gemm", &["a", "b"], &["y"]).name("dense7").attr_int("transB", 1);
    b.output("y", DataType::Float);
    let e = load_err(&b);
    assert!(e.contains("dense7") && e.contains("Gemm"), "{e}");
}

#[test]
fn unknown_domain_is_rejected() {
    let mut b = ModelBuilder::new("dom");
    b.import("com.example", 1);
    b.input("x", DataType::Float, &[d(2)]);
    b.node("Magic", &["x"], &["y"]).name("m1").domain("com.example");
    b.output("y", DataType::Float);
    let e = load_err(&b);
    assert!(
        e.contains("com.example") && e.contains("m1") && e.contains("Magic"),
        "{e}"
    );
}

#[test]
fn unused_extra_domain_import_is_fine_but_opset_range_is_checked() {
    let mut b = ModelBuilder::new("dom");
    b.import("ai.onnx.ml", 3);
    b.input("x", DataType::Float, &[d(2)]);
    b.node("Relu", &["x"], &["y"]);
    b.output("y", DataType::Float);
    load(&b);
    b.opset(99);
    let e = load_err(&b);
    assert!(e.contains("99") && e.contains("7..=28"), "{e}");
    b.opset(5);
    assert!(load_err(&b).contains("opset 5"));
    b.clear_imports();
    assert!(load_err(&b).contains("no opset of the default"));
}

#[test]
fn missing_input_value_names_node_and_input() {
    let mut b = ModelBuilder::new("miss");
    b.input("x", DataType::Float, &[d(2)]);
    b.node("Add", &["x", "nowhere"], &["y"]).name("adder");
    b.output("y", DataType::Float);
    let e = load_err(&b);
    assert!(e.contains("adder") && e.contains("nowhere"), "{e}");
}

#[test]
fn bad_attribute_type_names_attribute() {
    let mut b = ModelBuilder::new("attr");
    b.input("x", DataType::Float, &[d(2), d(3)]);
    b.node("Transpose", &["x"], &["y"]).name("tr").attr_float("perm", 1.0);
    b.output("y", DataType::Float);
    let e = load_err(&b);
    assert!(e.contains("tr") && e.contains("perm"), "{e}");
}

/// A compile-time parameter fed by a graph input is a typed `NeedsConstant` error that names the
/// node, the slot and the graph input to freeze (the conformance runner freezes exactly that one).
#[test]
fn parameter_from_a_graph_input_is_a_typed_needs_constant_error() {
    let mut b = ModelBuilder::new("reshape");
    b.input("x", DataType::Float, &[d(2), d(3)]);
    b.input("target", DataType::Int64, &[d(2)]);
    b.node("Reshape", &["x", "target"], &["y"]);
    b.output("y", DataType::Float);
    let e = load_onnx_bytes(&b.encode(), "test", &DimBindings::new()).expect_err("an error");
    match &e {
        OnnxError::NeedsConstant {
            op_type,
            input,
            graph_input,
            ..
        } => {
            assert_eq!(
                (op_type.as_str(), *input, graph_input.as_deref()),
                ("Reshape", 1, Some("target"))
            );
        }
        other => panic!("expected NeedsConstant, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("input 1 ('shape') must be known at compile time")
            && msg.contains("kiln compile --freeze target=FILE.npy"),
        "{msg}"
    );

    // The same slot fed by a computation on a graph input: the input it is computed from is
    // named, as freezing it makes the computation fold.
    let mut b = ModelBuilder::new("reshape2");
    b.input("x", DataType::Float, &[d(2), d(3)]);
    b.input("target", DataType::Int64, &[d(2)]);
    b.node("Neg", &["target"], &["t2"]);
    b.node("Reshape", &["x", "t2"], &["y"]);
    b.output("y", DataType::Float);
    let e = load_onnx_bytes(&b.encode(), "test", &DimBindings::new()).expect_err("an error");
    assert!(
        matches!(
            &e,
            OnnxError::NeedsConstant {
                input: 1,
                graph_input: Some(g),
                ..
            } if g == "target"
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("computed from graph input 'target'"), "{e}");
}

/// An op feature Kiln does not implement is a typed `Unsupported` error naming node and feature.
#[test]
fn unsupported_feature_is_a_typed_error() {
    let mut b = ModelBuilder::new("conv_int");
    b.input("x", DataType::Uint8, &[d(1), d(2), d(4), d(4)]);
    b.input("w", DataType::Uint8, &[d(2), d(1), d(2), d(2)]);
    b.node("ConvInteger", &["x", "w"], &["y"]).attr_int("group", 2);
    b.output("y", DataType::Int32);
    let e = load_onnx_bytes(&b.encode(), "test", &DimBindings::new()).expect_err("an error");
    match &e {
        OnnxError::Unsupported { op_type, msg, .. } => {
            assert_eq!(op_type, "ConvInteger");
            assert!(msg.contains("attribute 'group'"), "{msg}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

/// MaxPool's second output: the flat index of each window's (first) maximum.
#[test]
fn maxpool_indices_point_at_the_window_maximum() {
    let mut b = ModelBuilder::new("pool");
    b.input("x", DataType::Float, &[d(1), d(1), d(4), d(4)]);
    b.node("MaxPool", &["x"], &["y", "idx"])
        .attr_ints("kernel_shape", &[2, 2]);
    b.output("y", DataType::Float);
    b.output("idx", DataType::Int64);
    let out = run(&b, &[("x", Tensor::f32(vec![1, 1, 4, 4], seq(16, 1.0, 0.0)))]);
    // Increasing values: every window's maximum is its bottom-right element.
    let want: Vec<f32> = (0..3)
        .flat_map(|h| (0..3).map(move |w| ((h + 1) * 4 + w + 1) as f32))
        .collect();
    assert_eq!(out["y"].to_f32(), want);
    assert_eq!(out["idx"].to_f32(), want);
}
