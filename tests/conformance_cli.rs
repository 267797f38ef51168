//! `kiln conformance` on a small directory of hand-made cases in the ONNX test-data layout:
//! outcomes (pass, pass with frozen parameter inputs, fail, unsupported with the op's name, out
//! of scope), the report, the `--min-pass` gate, and a per-case time-out that the runner survives.

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
    // Within tolerance: 1e-4 + 1e-3 * 5.0 allows 5.1e-3.
    let z_close: &[f32] = &[1.5, 2.5, 3.5, 3.0, 4.0, 5.005];
    write_case(dir, "test_add_close", &add, &[(s, x), (s, y)], &[(s, z_close)]);
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
    let (d, r) = (dir.to_str().unwrap(), report.to_str().unwrap());

    let (ok, text) = kiln(&["conformance", d, "--report", r, "--min-pass", "5", "--jobs", "2"]);
    assert!(ok, "{text}");
    assert!(
        text.contains(
            "8 cases: 7 plain, 1 out of scope; plain: 5 passed (2 with frozen parameter inputs), 1 failed, 1 unsupported, 0 errors"
        ),
        "{text}"
    );
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("| **plain cases** | **7** |"), "{md}");
    assert!(md.contains("| · passed with frozen parameter inputs | 2 |"), "{md}");
    assert!(md.contains("| Add | 4 | 3 | 0 | 1 | 0 | 0 | 0 |"), "{md}");
    assert!(md.contains("| Reshape | 1 | 1 | 1 | 0 | 0 | 0 | 0 |"), "{md}");
    assert!(md.contains("- `test_reshape_param` (Reshape): frozen: shape"), "{md}");
    assert!(
        md.contains("- `test_constantofshape_param` (ConstantOfShape): frozen: shape"),
        "{md}"
    );
    assert!(
        md.contains("- `test_add_wrong` (Add): output 'z': 1 of 6 elements differ; first at flat index 5"),
        "{md}"
    );
    assert!(
        md.contains("- `test_nosuch` (NoSuchOp): unsupported op NoSuchOp"),
        "{md}"
    );
    assert!(md.contains("| 1 | unsupported op NoSuchOp |"), "{md}");
    assert!(md.contains("| Identity | 0 | 0 | 0 | 0 | 0 | 0 | 1 |"), "{md}");

    // The gate: fewer passes than required fails the command.
    let (ok, text) = kiln(&["conformance", d, "--min-pass", "6", "--jobs", "1"]);
    assert!(!ok, "--min-pass 6 with 5 passes must fail\n{text}");
    assert!(
        text.contains("5 plain cases passed (2 with frozen parameter inputs), fewer than --min-pass 6"),
        "{text}"
    );

    // A filter selects cases by name.
    let (ok, text) = kiln(&["conformance", d, "--filter", "symbolic", "--min-pass", "1"]);
    assert!(ok && text.contains("1 cases: 1 plain"), "{text}");
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
        text.contains("plain: 0 passed (0 with frozen parameter inputs), 0 failed, 0 unsupported, 7 errors"),
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
