//! `kiln conformance` on a small directory of hand-made cases in the ONNX test-data layout:
//! outcomes (pass, fail, unsupported with the op's name, out of scope), the report, the
//! `--min-pass` gate, and a per-case time-out that the runner survives.

use kiln::compiler::frontend::onnx::builder::{d, tensor_f32_raw, DataType, ModelBuilder};
use prost::Message;
use std::path::Path;
use std::process::Command;

/// Writes `DIR/<name>/model.onnx` and `test_data_set_0/{input,output}_K.pb`.
fn write_case(
    dir: &Path,
    name: &str,
    model: &ModelBuilder,
    inputs: &[(&[i64], &[f32])],
    outputs: &[(&[i64], &[f32])],
) {
    let case = dir.join(name);
    let ds = case.join("test_data_set_0");
    std::fs::create_dir_all(&ds).unwrap();
    std::fs::write(case.join("model.onnx"), model.encode()).unwrap();
    for (kind, list) in [("input", inputs), ("output", outputs)] {
        for (k, (dims, data)) in list.iter().enumerate() {
            let t = tensor_f32_raw("", dims, data);
            std::fs::write(ds.join(format!("{kind}_{k}.pb")), t.encode_to_vec()).unwrap();
        }
    }
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
    write_case(
        dir,
        "test_add_close",
        &add,
        &[(s, x), (s, y)],
        &[(s, z_close)],
    );
    let z_wrong: &[f32] = &[1.5, 2.5, 3.5, 3.0, 4.0, 5.5];
    write_case(
        dir,
        "test_add_wrong",
        &add,
        &[(s, x), (s, y)],
        &[(s, z_wrong)],
    );
    // Symbolic dims are fixed from the test data.
    let sym = add_model(&[d("n"), d("m")]);
    write_case(dir, "test_add_symbolic", &sym, &[(s, x), (s, y)], &[(s, z)]);

    let mut b = ModelBuilder::new("nosuch");
    b.input("x", DataType::Float, &[d(2), d(3)]);
    b.node("NoSuchOp", &["x"], &["z"]);
    b.output("z", DataType::Float);
    write_case(dir, "test_nosuch", &b, &[(s, x)], &[(s, z)]);

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

    let (ok, text) = kiln(&[
        "conformance",
        d,
        "--report",
        r,
        "--min-pass",
        "3",
        "--jobs",
        "2",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains(
            "6 cases: 5 plain, 1 out of scope; plain: 3 passed, 1 failed, 1 unsupported, 0 errors"
        ),
        "{text}"
    );
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("| **plain cases** | **5** |"), "{md}");
    assert!(md.contains("| Add | 4 | 3 | 1 | 0 | 0 | 0 |"), "{md}");
    assert!(
        md.contains(
            "- `test_add_wrong` (Add): output 'z': 1 of 6 elements differ; first at flat index 5"
        ),
        "{md}"
    );
    assert!(
        md.contains("- `test_nosuch` (NoSuchOp): unsupported op NoSuchOp"),
        "{md}"
    );
    assert!(md.contains("| 1 | unsupported op NoSuchOp |"), "{md}");
    assert!(md.contains("| Identity | 0 | 0 | 0 | 0 | 0 | 1 |"), "{md}");

    // The gate: fewer passes than required fails the command.
    let (ok, text) = kiln(&["conformance", d, "--min-pass", "4", "--jobs", "1"]);
    assert!(!ok, "--min-pass 4 with 3 passes must fail\n{text}");
    assert!(
        text.contains("3 plain cases passed, fewer than --min-pass 4"),
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
    let (ok, text) = kiln(&[
        "conformance",
        dir.to_str().unwrap(),
        "--timeout",
        "0",
        "--jobs",
        "1",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("plain: 0 passed, 0 failed, 0 unsupported, 5 errors"),
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
