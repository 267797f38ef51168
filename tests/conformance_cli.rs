//! `kiln conformance` on a small directory of hand-made cases in the ONNX test-data layout:
//! outcomes (pass, pass with frozen inputs only where the frontend names them, fail, unsupported
//! with the op's name, error, out of scope), ONNX's tolerance and a case's own, the report, the
//! expected-outcome gate (regressions fail, improvements are reported, `--update-expected`), and
//! a per-case time-out that the runner survives.

use kiln::compiler::frontend::onnx::builder::{d, tensor_f32_raw, tensor_i64_raw, DataType, ModelBuilder};
use kiln::compiler::frontend::onnx::proto::TensorProto;
use prost::Message;
use std::path::Path;
use std::process::Command;

/// One test data set: input and output tensors by position.
type Set = (Vec<TensorProto>, Vec<TensorProto>);

/// Writes `DIR/<name>/model.onnx` and `test_data_set_N/{input,output}_K.pb` for every set.
fn write_case_sets(dir: &Path, name: &str, model: &ModelBuilder, sets: &[Set]) {
    let case = dir.join(name);
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(case.join("model.onnx"), model.encode()).unwrap();
    for (n, (inputs, outputs)) in sets.iter().enumerate() {
        let ds = case.join(format!("test_data_set_{n}"));
        std::fs::create_dir_all(&ds).unwrap();
        for (kind, list) in [("input", inputs), ("output", outputs)] {
            for (k, t) in list.iter().enumerate() {
                std::fs::write(ds.join(format!("{kind}_{k}.pb")), t.encode_to_vec()).unwrap();
            }
        }
    }
}

/// Writes a case with one data set of f32 tensors.
fn write_case(dir: &Path, name: &str, model: &ModelBuilder, inputs: &[(&[i64], &[f32])], outputs: &[(&[i64], &[f32])]) {
    let f32s = |list: &[(&[i64], &[f32])]| -> Vec<TensorProto> {
        list.iter().map(|(dims, data)| tensor_f32_raw("", dims, data)).collect()
    };
    write_case_sets(dir, name, model, &[(f32s(inputs), f32s(outputs))]);
}

fn add_model(dims: &[kiln::compiler::frontend::onnx::builder::DimSpec]) -> ModelBuilder {
    let mut b = ModelBuilder::new("add");
    b.input("x", DataType::Float, dims);
    b.input("y", DataType::Float, dims);
    b.node("Add", &["x", "y"], &["z"]);
    b.output("z", DataType::Float);
    b
}

fn make_cases(dir: &Path) {
    let x: &[f32] = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let y: &[f32] = &[0.5, 0.5, 0.5, -1.0, -1.0, -1.0];
    let z: &[f32] = &[1.5, 2.5, 3.5, 3.0, 4.0, 5.0];
    let s: &[i64] = &[2, 3];
    let add = add_model(&[d(2), d(3)]);
    write_case(dir, "test_add", &add, &[(s, x), (s, y)], &[(s, z)]);
    // Within ONNX's tolerance: 1e-7 + 1e-3 * 5.004 allows 5.0041e-3.
    let z_close: &[f32] = &[1.5, 2.5, 3.5, 3.0, 4.0, 5.004];
    write_case(dir, "test_add_close", &add, &[(s, x), (s, y)], &[(s, z_close)]);
    // Near an expected 0 only atol counts: 2e-7 off passed the old atol 1e-4 but fails ONNX's 1e-7.
    let near_zero: &[f32] = &[0.0, 0.0, 0.0, 0.0, 0.0, 2e-7];
    let mut b = ModelBuilder::new("relu");
    b.input("x", DataType::Float, &[d(2), d(3)]);
    b.node("Relu", &["x"], &["z"]);
    b.output("z", DataType::Float);
    write_case(
        dir,
        "test_relu_atol",
        &b,
        &[(s, &[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0])],
        &[(s, near_zero)],
    );
    // The same case with its own, looser tolerance (as an ONNX test case may declare) passes.
    write_case(
        dir,
        "test_relu_own_tolerance",
        &b,
        &[(s, &[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0])],
        &[(s, near_zero)],
    );
    std::fs::write(
        dir.join("test_relu_own_tolerance").join("tolerance.txt"),
        "rtol 1e-3\natol 1e-6\n",
    )
    .unwrap();
    let z_wrong: &[f32] = &[1.5, 2.5, 3.5, 3.0, 4.0, 5.5];
    write_case(dir, "test_add_wrong", &add, &[(s, x), (s, y)], &[(s, z_wrong)]);
    // Symbolic dims are fixed from the test data.
    let sym = add_model(&[d("n"), d("m")]);
    write_case(dir, "test_add_symbolic", &sym, &[(s, x), (s, y)], &[(s, z)]);

    let mut b = ModelBuilder::new("nosuch");
    b.input("x", DataType::Float, &[d(2), d(3)]);
    b.node("NoSuchOp", &["x"], &["z"]);
    b.output("z", DataType::Float);
    write_case(dir, "test_nosuch", &b, &[(s, x)], &[(s, z)]);

    // Parameters as graph inputs: frozen on retry, per data set when they differ (two compiles).
    let mut b = ModelBuilder::new("reshape");
    b.input("x", DataType::Float, &[d(2), d(3)]);
    b.input("shape", DataType::Int64, &[d("r")]);
    b.node("Reshape", &["x", "shape"], &["y"]);
    b.output("y", DataType::Float);
    let set = |shape: &[i64]| -> Set {
        (
            vec![
                tensor_f32_raw("x", &[2, 3], x),
                tensor_i64_raw("shape", &[shape.len() as i64], shape),
            ],
            vec![tensor_f32_raw("y", shape, x)],
        )
    };
    write_case_sets(dir, "test_reshape_param", &b, &[set(&[3, 2]), set(&[6]), set(&[3, 2])]);
    // The only input is a parameter: frozen too, since the error names it.
    let mut b = ModelBuilder::new("constantofshape");
    b.input("shape", DataType::Int64, &[d(2)]);
    b.node("ConstantOfShape", &["shape"], &["y"]);
    b.output("y", DataType::Float);
    write_case_sets(
        dir,
        "test_constantofshape_param",
        &b,
        &[(
            vec![tensor_i64_raw("shape", &[2], &[2, 3])],
            vec![tensor_f32_raw("y", &[2, 3], &[0.0; 6])],
        )],
    );

    // The shape parameter computed from a graph input: the frontend traces it back and names
    // that graph input ('shape'), so the retry freezes it and passes.
    let mut b = ModelBuilder::new("reshape_computed");
    b.input("x", DataType::Float, &[d(2), d(3)]);
    b.input("shape", DataType::Int64, &[d(2)]);
    b.node("Identity", &["shape"], &["shape2"]);
    b.node("Reshape", &["x", "shape2"], &["y"]);
    b.output("y", DataType::Float);
    write_case_sets(
        dir,
        "test_reshape_computed_param",
        &b,
        &[(
            vec![tensor_f32_raw("x", &[2, 3], x), tensor_i64_raw("shape", &[2], &[3, 2])],
            vec![tensor_f32_raw("y", &[3, 2], x)],
        )],
    );
    // A malformed model (MatMul of [2,3] by [2,3]) is an error, and is not retried with 'w'
    // frozen (the old runner froze every input but the first after any load error).
    let mut b = ModelBuilder::new("matmul_bad");
    b.input("x", DataType::Float, &[d(2), d(3)]);
    b.input("w", DataType::Float, &[d(2), d(3)]);
    b.node("MatMul", &["x", "w"], &["z"]);
    b.output("z", DataType::Float);
    write_case(dir, "test_matmul_bad", &b, &[(s, x), (s, y)], &[(&[2, 2], &[0.0; 4])]);

    let mut b = ModelBuilder::new("double");
    b.input("x", DataType::Double, &[d(2)]);
    b.node("Identity", &["x"], &["z"]);
    b.output("z", DataType::Double);
    write_case(dir, "test_identity_double", &b, &[], &[]);
}

fn kiln(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("running kiln");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn conformance_outcomes_report_and_gate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cases");
    make_cases(&dir);
    let report = tmp.path().join("report.md");
    let expected = tmp.path().join("expected.txt");
    let (d, r, e) = (
        dir.to_str().unwrap(),
        report.to_str().unwrap(),
        expected.to_str().unwrap(),
    );

    // First run: write the list.
    let (ok, text) = kiln(&[
        "conformance",
        d,
        "--report",
        r,
        "--expected",
        e,
        "--update-expected",
        "--jobs",
        "2",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains(
            "12 cases: 11 plain, 1 out of scope; plain: 4 passed, 3 passed with frozen inputs, 2 failed, 1 unsupported, 1 errors"
        ),
        "{text}"
    );
    let list = std::fs::read_to_string(&expected).unwrap();
    for line in [
        "test_add pass",
        "test_add_close pass",
        "test_add_symbolic pass",
        "test_relu_own_tolerance pass",
        "test_add_wrong known-failure: output 'z': 1 of 6 elements differ; first at flat index 5",
        "test_relu_atol known-failure: output 'z': 1 of 6 elements differ; first at flat index 5: got 0, expected 2.000000e-7",
        "test_reshape_param pass-frozen: shape",
        "test_constantofshape_param pass-frozen: shape",
        "test_reshape_computed_param pass-frozen: shape",
        "test_matmul_bad known-failure: load: node 'MatMul_0' (MatMul)",
        "test_nosuch unsupported: unsupported op NoSuchOp: no lowering in the ONNX frontend",
        "test_identity_double out-of-scope",
    ] {
        assert!(list.contains(line), "missing line {line:?} in\n{list}");
    }
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("| **plain cases** | **11** |"), "{md}");
    assert!(md.contains("| **passed** | **4** |"), "{md}");
    assert!(
        md.contains("| passed with frozen inputs (named by the frontend) | 3 |"),
        "{md}"
    );
    assert!(md.contains("| Add | 4 | 3 | 0 | 1 | 0 | 0 | 0 |"), "{md}");
    assert!(md.contains("- `test_reshape_param` (Reshape): frozen: shape"), "{md}");
    assert!(
        md.contains("- `test_add_wrong` (Add): output 'z': 1 of 6 elements differ; first at flat index 5"),
        "{md}"
    );
    assert!(
        md.contains("- `test_nosuch` (NoSuchOp): unsupported op NoSuchOp"),
        "{md}"
    );
    // The computed-shape case's first op is its Identity; the double case is out of scope.
    assert!(md.contains("| Identity | 1 | 0 | 1 | 0 | 0 | 0 | 1 |"), "{md}");

    // The same run against the list: the gate passes.
    let (ok, text) = kiln(&["conformance", d, "--expected", e, "--jobs", "2"]);
    assert!(ok && text.contains("conformance gate: every case as listed"), "{text}");

    // A list that expects more: each worse case is named and the command fails; a case that
    // does better than listed is reported as an improvement and does not fail.
    let stricter: String = list
        .lines()
        .map(|l| match l.split_once(' ').map(|x| x.0) {
            Some("test_add_wrong") => "test_add_wrong pass".to_string(),
            Some("test_reshape_param") => "test_reshape_param pass".to_string(),
            Some("test_add") => "test_add known-failure: pretend it was broken".to_string(),
            _ => l.to_string(),
        })
        .map(|l| l + "\n")
        .collect();
    assert_ne!(stricter, list);
    std::fs::write(&expected, &stricter).unwrap();
    let (ok, text) = kiln(&["conformance", d, "--expected", e, "--jobs", "2"]);
    assert!(!ok, "regressions must fail the gate\n{text}");
    assert!(
        text.contains("REGRESSIONS (worse than listed, not listed, or not found): 2"),
        "{text}"
    );
    assert!(
        text.contains("test_add_wrong: expected pass, got known-failure: output 'z'"),
        "{text}"
    );
    assert!(
        text.contains("test_reshape_param: expected pass, got pass-frozen: shape"),
        "{text}"
    );
    assert!(text.contains("improvements (better than listed): 1"), "{text}");
    assert!(
        text.contains("test_add: expected known-failure: pretend it was broken, got pass"),
        "{text}"
    );
    assert!(text.contains("2 case(s) did worse than"), "{text}");

    // A case missing from the list fails the gate too.
    let fewer: String = list
        .lines()
        .filter(|l| !l.starts_with("test_add_close "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&expected, fewer).unwrap();
    let (ok, text) = kiln(&["conformance", d, "--expected", e, "--jobs", "2"]);
    assert!(
        !ok && text.contains("test_add_close: expected (not listed), got pass"),
        "{text}"
    );

    // A filter selects cases by name, and only those are checked.
    std::fs::write(&expected, &list).unwrap();
    let (ok, text) = kiln(&["conformance", d, "--filter", "symbolic", "--expected", e]);
    assert!(ok && text.contains("1 cases: 1 plain"), "{text}");

    // A malformed list fails before anything runs, naming the line.
    std::fs::write(&expected, "test_add passes\n").unwrap();
    let (ok, text) = kiln(&["conformance", d, "--expected", e]);
    assert!(
        !ok && text.contains("line 1") && text.contains("unknown outcome 'passes'"),
        "{text}"
    );
}

#[test]
fn conformance_survives_time_outs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cases");
    make_cases(&dir);
    // With a zero time limit every case times out; each worker is killed and replaced.
    let (ok, text) = kiln(&["conformance", dir.to_str().unwrap(), "--timeout", "0", "--jobs", "1"]);
    assert!(ok, "{text}");
    assert!(
        // A worker that answers within the zero time limit (a case that fails fast) is fine too.
        text.contains("plain: 0 passed, 0 passed with frozen inputs, 0 failed,"),
        "{text}"
    );
    assert!(text.contains("error: timeout"), "{text}");
}

#[test]
fn conformance_explains_an_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, text) = kiln(&["conformance", tmp.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(
        text.contains("holds no test cases") && text.contains("onnx_conformance_data.py"),
        "{text}"
    );
}
