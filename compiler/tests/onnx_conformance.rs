//! ONNX backend node tests as a conformance check of the frontend + reference interpreter.
//!
//! The cases come from the `onnx` PyPI package (`collect_testcases()`), materialized offline by
//! `compiler/tests/onnx_node_gen.py` into a directory of `<case>/model.onnx` and
//! `<case>/test_data_set_0/{input,output}_<k>.pb`. Point `KILN_ONNX_NODE_TESTS` at it; without it
//! the test only says that it was skipped. Every case whose model loads must evaluate to the
//! expected outputs; a case that fails to load must fail with an "unsupported" error (op, domain
//! or dtype), never with a wrong result. Cases named in `KNOWN_FAILURES` are reported, not failed.

use kiln_compiler::frontend::onnx::proto::{type_proto, ModelProto, TensorProto};
use kiln_compiler::frontend::onnx::{load_onnx, load_onnx_proto, tensor_from_proto, OnnxError};
use kiln_ir::{interp, DimBindings, Tensor};
use prost::Message;
use std::collections::HashMap;
use std::path::Path;

/// Cases whose failure is understood (kept short; each with the reason).
const KNOWN_FAILURES: &[(&str, &str)] = &[];

/// Cases not run at all, with the reason.
const SKIP: &[(&str, &str)] = &[(
    "test_gelu_default_1",
    "kiln_ir::interp::erf(0.0) never terminates (its series stops on a relative tolerance of a zero sum)",
)];

fn read_pb(p: &Path) -> Result<Tensor, String> {
    let bytes = std::fs::read(p).map_err(|e| e.to_string())?;
    let t = TensorProto::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
    tensor_from_proto(&t, None).map_err(|e| e.to_string())
}

fn close(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.shape != want.shape {
        return Err(format!("shape {:?}, expected {:?}", got.shape, want.shape));
    }
    let (g, w) = (got.to_f64(), want.to_f64());
    // f16 results are compared at f16 precision (references round intermediates differently).
    let tol = if want.dtype() == kiln_ir::DType::F16 {
        2e-3
    } else {
        1e-4
    };
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol * b.abs().max(1.0);
        if !ok {
            return Err(format!("element {i}: {a}, expected {b}"));
        }
    }
    Ok(())
}

enum Outcome {
    Pass,
    Unsupported(String),
    Fail(String),
}

/// True for load errors that mean "Kiln does not do this" rather than "Kiln got it wrong".
fn is_unsupported(e: &OnnxError) -> bool {
    if matches!(e, OnnxError::UnsupportedOp { .. } | OnnxError::Opset(_)) {
        return true;
    }
    let s = e.to_string();
    [
        "not supported",
        "needs --dim",
        "unsupported",
        "compile-time",
    ]
    .iter()
    .any(|k| s.contains(k))
}

/// The model with graph inputs turned into initializers holding the test data: node tests pass
/// axes, shapes, pads, scales... as inputs, which an AOT compiler needs as constants. With
/// `all_but_first`, every input but the first is converted; otherwise the integer ones.
fn with_constant_inputs(model: &ModelProto, ds: &Path, all_but_first: bool) -> ModelProto {
    let mut m = model.clone();
    let g = m.graph.as_mut().expect("graph");
    let mut keep = Vec::new();
    for (k, v) in g.input.clone().into_iter().enumerate() {
        let is_int = matches!(
            v.r#type.as_ref().and_then(|t| t.value.as_ref()),
            Some(type_proto::Value::TensorType(t)) if matches!(t.elem_type, Some(6) | Some(7))
        );
        let bytes = std::fs::read(ds.join(format!("input_{k}.pb"))).ok();
        let convert = if all_but_first { k > 0 } else { is_int };
        match (
            convert,
            bytes.and_then(|b| TensorProto::decode(b.as_slice()).ok()),
        ) {
            (true, Some(mut t)) => {
                t.name = v.name.clone();
                g.initializer.push(t);
            }
            _ => keep.push(v),
        }
    }
    g.input = keep;
    m
}

fn run_case(dir: &Path) -> Outcome {
    let ds = dir.join("test_data_set_0");
    let bytes = std::fs::read(dir.join("model.onnx")).expect("model file");
    let proto = ModelProto::decode(bytes.as_slice()).expect("node test models decode");
    let model = match load_onnx(&dir.join("model.onnx"), &DimBindings::new()) {
        Ok(m) => m,
        Err(e) if e.to_string().contains("compile-time") => {
            let ints = with_constant_inputs(&proto, &ds, false);
            let all = with_constant_inputs(&proto, &ds, true);
            match load_onnx_proto(&ints, "case", &DimBindings::new(), None) {
                Ok(m) => m,
                Err(e) if e.to_string().contains("compile-time") => {
                    match load_onnx_proto(&all, "case", &DimBindings::new(), None) {
                        Ok(m) => m,
                        Err(e) if is_unsupported(&e) => return Outcome::Unsupported(e.to_string()),
                        Err(e) => return Outcome::Fail(format!("load (inputs as constants): {e}")),
                    }
                }
                Err(e) if is_unsupported(&e) => return Outcome::Unsupported(e.to_string()),
                Err(e) => return Outcome::Fail(format!("load (int inputs as constants): {e}")),
            }
        }
        Err(e) if is_unsupported(&e) => return Outcome::Unsupported(e.to_string()),
        Err(e) => return Outcome::Fail(format!("load: {e}")),
    };
    let original_inputs: Vec<String> = proto
        .graph
        .as_ref()
        .map(|g| {
            g.input
                .iter()
                .map(|v| v.name.clone().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    let mut inputs = HashMap::new();
    for &id in model.graph.inputs() {
        let name = model.graph.node(id).name.clone();
        let k = original_inputs
            .iter()
            .position(|n| *n == name)
            .expect("graph inputs come from the model");
        match read_pb(&ds.join(format!("input_{k}.pb"))) {
            Ok(t) => {
                inputs.insert(name, t);
            }
            Err(e) => return Outcome::Unsupported(format!("input {k}: {e}")),
        }
    }
    let out = match interp::evaluate(&model.graph, &inputs) {
        Ok(o) => o,
        Err(e) => return Outcome::Fail(format!("evaluate: {e}")),
    };
    for (k, (name, _)) in model.graph.outputs().iter().enumerate() {
        let want = match read_pb(&ds.join(format!("output_{k}.pb"))) {
            Ok(t) => t,
            Err(e) => return Outcome::Unsupported(format!("output {k}: {e}")),
        };
        if let Err(e) = close(&out[name], &want) {
            return Outcome::Fail(format!("output {k} '{name}': {e}"));
        }
    }
    Outcome::Pass
}

#[test]
fn onnx_backend_node_tests() {
    let Ok(root) = std::env::var("KILN_ONNX_NODE_TESTS") else {
        println!("skipped: set KILN_ONNX_NODE_TESTS to a directory made by compiler/tests/onnx_node_gen.py");
        return;
    };
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("readable test directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    let filter = std::env::var("KILN_ONNX_NODE_FILTER").unwrap_or_default();
    let (mut pass, mut unsupported, mut failures, mut known) = (0, 0, Vec::new(), 0);
    for d in dirs.iter().filter(|d| d.join("model.onnx").exists()) {
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        if !name.contains(&filter) {
            continue;
        }
        if SKIP.iter().any(|(n, _)| name.starts_with(n)) {
            println!("skipped {name}");
            continue;
        }
        if std::env::var("KILN_ONNX_NODE_PROGRESS").is_ok() {
            eprintln!("case {name}");
        }
        let outcome = std::panic::catch_unwind(|| run_case(d))
            .unwrap_or_else(|_| Outcome::Fail("panicked".into()));
        match outcome {
            Outcome::Pass => pass += 1,
            Outcome::Unsupported(why) => {
                unsupported += 1;
                if std::env::var("KILN_ONNX_NODE_VERBOSE").is_ok() {
                    println!("unsupported {name}: {why}");
                }
            }
            Outcome::Fail(why) => {
                if KNOWN_FAILURES.iter().any(|(n, _)| *n == name) {
                    known += 1;
                    println!("known failure {name}: {why}");
                } else {
                    failures.push(format!("{name}: {why}"));
                }
            }
        }
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    println!(
        "onnx node tests: {pass} passed, {} failed, {known} known failures, {unsupported} unsupported",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} node tests failed (see output)",
        failures.len()
    );
}
