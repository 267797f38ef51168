//! ONNX control flow (If, Loop, Scan) and recurrent layers (RNN, GRU, LSTM): models built with
//! the builder, loaded, evaluated with the reference interpreter and compared with values
//! computed by hand; and the typed errors for what Kiln cannot unroll.

use kiln_compiler::frontend::onnx::builder::{d, DataType, ModelBuilder};
use kiln_compiler::frontend::onnx::{load_onnx_bytes, OnnxError};
use kiln_ir::{interp, DimBindings, Tensor};
use std::collections::HashMap;

fn eval(b: &ModelBuilder, inputs: &[(&str, Tensor)]) -> HashMap<String, Tensor> {
    let m = load_onnx_bytes(&b.encode(), "test", &DimBindings::new()).unwrap_or_else(|e| panic!("load failed: {e}"));
    let ins: HashMap<String, Tensor> = inputs.iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
    interp::evaluate(&m.graph, &ins).unwrap_or_else(|e| panic!("evaluate failed: {e}"))
}

fn load_err(b: &ModelBuilder) -> OnnxError {
    match load_onnx_bytes(&b.encode(), "test", &DimBindings::new()) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

/// A body graph: no inputs, one output `out` = `x` (outer scope) op `c`.
fn branch(name: &str, op: &str, c: f32) -> ModelBuilder {
    let mut g = ModelBuilder::new(name);
    g.init_f32(&format!("{name}_c"), &[1], &[c]);
    g.node(op, &["x", &format!("{name}_c")], &[&format!("{name}_out")]);
    g.output(&format!("{name}_out"), DataType::Float);
    g
}

/// If with a run-time condition computes both branches and selects; with a constant
/// condition only the taken branch is lowered (the other may hold an op Kiln lacks).
#[test]
fn if_selects_at_run_time_and_folds_a_constant_condition() {
    let mut b = ModelBuilder::new("if");
    b.input("x", DataType::Float, &[d(3)]);
    b.input("c", DataType::Bool, &[]);
    b.node("If", &["c"], &["y"])
        .attr_graph("then_branch", &branch("t", "Add", 10.0))
        .attr_graph("else_branch", &branch("e", "Mul", -1.0));
    b.output("y", DataType::Float);
    let x = Tensor::f32(vec![3], vec![1.0, 2.0, 3.0]);
    for (c, want) in [(true, vec![11.0, 12.0, 13.0]), (false, vec![-1.0, -2.0, -3.0])] {
        let out = eval(
            &b,
            &[
                ("x", x.clone()),
                (
                    "c",
                    Tensor::from_f64(kiln_ir::DType::Bool, vec![], &[f64::from(u8::from(c))]),
                ),
            ],
        );
        assert_eq!(out["y"].to_f32(), want, "cond {c}");
    }

    let mut b = ModelBuilder::new("if_const");
    b.input("x", DataType::Float, &[d(3)]);
    b.node("Constant", &[], &["c"]).attr_tensor(
        "value",
        kiln_compiler::frontend::onnx::builder::tensor_raw("c", DataType::Bool, &[], vec![0]),
    );
    let mut never = ModelBuilder::new("never");
    never.node("NoSuchOp", &["x"], &["never_out"]);
    never.output("never_out", DataType::Float);
    b.node("If", &["c"], &["y"])
        .attr_graph("then_branch", &never)
        .attr_graph("else_branch", &branch("e", "Mul", 2.0));
    b.output("y", DataType::Float);
    let out = eval(&b, &[("x", Tensor::f32(vec![3], vec![1.0, 2.0, 3.0]))]);
    assert_eq!(out["y"].to_f32(), vec![2.0, 4.0, 6.0]);
}

/// Scan (opset 9+) unrolled: a running sum with its per-step outputs, one scan input reversed.
#[test]
fn scan_unrolls_a_running_sum() {
    let mut body = ModelBuilder::new("body");
    body.input("acc_in", DataType::Float, &[d(2)]);
    body.input("row", DataType::Float, &[d(2)]);
    body.node("Add", &["acc_in", "row"], &["acc_out"]);
    body.node("Identity", &["acc_out"], &["step_out"]);
    body.output("acc_out", DataType::Float);
    body.output("step_out", DataType::Float);
    let mut b = ModelBuilder::new("scan");
    b.input("init", DataType::Float, &[d(2)]);
    b.input("xs", DataType::Float, &[d(3), d(2)]);
    b.node("Scan", &["init", "xs"], &["final", "steps"])
        .attr_int("num_scan_inputs", 1)
        .attr_ints("scan_input_directions", &[1])
        .attr_graph("body", &body);
    b.output("final", DataType::Float);
    b.output("steps", DataType::Float);
    let out = eval(
        &b,
        &[
            ("init", Tensor::f32(vec![2], vec![0.5, 0.0])),
            ("xs", Tensor::f32(vec![3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
        ],
    );
    assert_eq!(out["final"].to_f32(), vec![9.5, 12.0]);
    // Reversed input: rows 2, 1, 0.
    assert_eq!(out["steps"].to_f32(), vec![5.5, 6.0, 8.5, 10.0, 9.5, 12.0]);
    assert_eq!(out["steps"].shape, vec![3, 2]);
}

/// A Loop whose body computes its condition from data cannot be unrolled: a typed
/// `Unsupported` error naming the node.
#[test]
fn loop_with_a_data_dependent_condition_is_a_typed_error() {
    let mut body = ModelBuilder::new("body");
    body.input("i", DataType::Int64, &[]);
    body.input("cond_in", DataType::Bool, &[]);
    body.input("v_in", DataType::Float, &[d(1)]);
    body.init_f32("one", &[1], &[1.0]);
    body.node("Add", &["v_in", "one"], &["v_out"]);
    body.node("ReduceSum", &["v_out"], &["s"]);
    body.init_f32("limit", &[], &[3.0]);
    body.node("Less", &["s", "limit"], &["cond_out"]);
    body.output("cond_out", DataType::Bool);
    body.output("v_out", DataType::Float);
    let mut b = ModelBuilder::new("loop");
    b.input("v", DataType::Float, &[d(1)]);
    b.init_i64("m", &[], &[10]);
    b.node("Loop", &["m", "", "v"], &["v_final"])
        .name("the_loop")
        .attr_graph("body", &body);
    b.output("v_final", DataType::Float);
    match load_err(&b) {
        OnnxError::Unsupported { node, op_type, msg } => {
            assert_eq!((node.as_str(), op_type.as_str()), ("the_loop", "Loop"));
            assert!(msg.contains("condition at run time"), "{msg}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

/// A one-step RNN with hidden size 1 against the hand-computed tanh recurrence, and an LSTM
/// whose sequence length is symbolic is a typed error that names the dim.
#[test]
fn rnn_matches_the_recurrence_and_lstm_needs_a_static_length() {
    let mut b = ModelBuilder::new("rnn");
    b.input("x", DataType::Float, &[d(2), d(1), d(1)]);
    b.init_f32("w", &[1, 1, 1], &[0.5]);
    b.init_f32("r", &[1, 1, 1], &[-1.0]);
    b.init_f32("b", &[1, 2], &[0.1, 0.2]);
    b.node("RNN", &["x", "w", "r", "b"], &["y", "y_h"])
        .attr_int("hidden_size", 1);
    b.output("y", DataType::Float);
    b.output("y_h", DataType::Float);
    let out = eval(&b, &[("x", Tensor::f32(vec![2, 1, 1], vec![1.0, 2.0]))]);
    let h1 = (0.5f32 * 1.0 + 0.3).tanh();
    let h2 = (0.5f32 * 2.0 - h1 + 0.3).tanh();
    let y = out["y"].to_f32();
    assert_eq!(out["y"].shape, vec![2, 1, 1, 1]);
    assert!(
        (y[0] - h1).abs() < 1e-6 && (y[1] - h2).abs() < 1e-6,
        "{y:?} vs {h1}, {h2}"
    );
    assert!((out["y_h"].to_f32()[0] - h2).abs() < 1e-6);

    let mut b = ModelBuilder::new("lstm");
    b.input("x", DataType::Float, &[d("seq"), d(1), d(1)]);
    b.init_f32("w", &[1, 4, 1], &[0.1; 4]);
    b.init_f32("r", &[1, 4, 1], &[0.1; 4]);
    b.node("LSTM", &["x", "w", "r"], &["y"]).attr_int("hidden_size", 1);
    b.output("y", DataType::Float);
    let msg = load_err(&b).to_string();
    assert!(msg.contains("sequence length") && msg.contains("seq"), "{msg}");
}
