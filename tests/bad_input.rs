//! Bad-input tests of the `kiln` CLI: every case must exit with a non-zero status and a message
//! on stderr that names what is wrong and where, without a panic; failed compiles must never
//! damage an existing bundle or leave temporary directories behind.

use crate::common;

use common::*;
use kiln::compiler::frontend::onnx::builder::{d, DataType, ModelBuilder};
use kiln::ir::Tensor;
use kiln::runtime::HostTensor;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A compiled MLP bundle in a fresh temporary directory.
struct Fixture {
    /// Keeps the directory alive.
    _tmp: tempfile::TempDir,
    /// The working directory.
    work: PathBuf,
    /// The bundle directory.
    bundle: PathBuf,
}

/// Compiles [`mlp_onnx`] (or `onnx`, if given) into `<tmp>/bundle`.
fn fixture(onnx: Option<Vec<u8>>) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().to_path_buf();
    let model = write_file(&work, "model.onnx", &onnx.unwrap_or_else(mlp_onnx));
    let bundle = work.join("bundle");
    compile(&model, &bundle, &[]);
    Fixture {
        _tmp: tmp,
        work,
        bundle,
    }
}

/// `kiln run <bundle>` with the given inputs (written as .npy files into `work`).
fn run_with(f: &Fixture, inputs: &BTreeMap<String, HostTensor>) -> Outcome {
    let mut args = vec!["run".to_string(), f.bundle.display().to_string()];
    args.extend(write_inputs(&f.work, inputs));
    args.extend(["--out".to_string(), f.work.join("out").display().to_string()]);
    kiln(&args)
}

/// `kiln compile <model> -o <bundle> <extra...>` without asserting the result.
fn try_compile(model: &Path, bundle: &Path, extra: &[&str]) -> Outcome {
    let mut args: Vec<String> = vec![
        "compile".into(),
        model.display().to_string(),
        "-o".into(),
        bundle.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    kiln(&args)
}

/// A model with an op the frontend does not support (`ImageDecoder`: decoding image bytes is host
/// work; node `decoder_node`).
fn unsupported_onnx() -> Vec<u8> {
    let mut b = ModelBuilder::new("unsupported");
    b.input("m", DataType::Float, &[d(4), d(4)]);
    b.node("Relu", &["m"], &["r"]).name("relu_ok");
    b.node("ImageDecoder", &["r"], &["u"]).name("decoder_node");
    b.output("u", DataType::Float);
    b.encode()
}

/// Asserts that `dir` holds no leftover temporary or backup directories from the bundle writer.
#[track_caller]
fn assert_no_temp_dirs(dir: &Path) {
    let leftovers: Vec<String> = entries(dir)
        .into_iter()
        .filter(|e| e.contains(".tmp") || e.contains(".old"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary directories left behind in {}: {leftovers:?}",
        dir.display()
    );
}

#[test]
fn truncated_onnx_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = mlp_onnx();
    let model = write_file(tmp.path(), "truncated.onnx", &bytes[..bytes.len() / 2]);
    let bundle = tmp.path().join("bundle");
    try_compile(&model, &bundle, &[]).fails_with(&["truncated.onnx", "not a valid ONNX model", "failed to decode"]);
    assert!(!bundle.exists(), "no bundle for a failed compile");
    assert_eq!(entries(tmp.path()), vec!["truncated.onnx".to_string()]);

    let empty = write_file(tmp.path(), "empty.onnx", &[]);
    try_compile(&empty, &bundle, &[]).fails_with(&["empty.onnx", "not a valid ONNX model: the file is empty"]);
}

#[test]
fn missing_model_file_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("nowhere.onnx");
    try_compile(&model, &tmp.path().join("bundle"), &[]).fails_with(&[
        "nowhere.onnx",
        "cannot read ONNX model",
        "No such file",
    ]);
}

#[test]
fn unsupported_op_names_op_and_node() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_file(tmp.path(), "model.onnx", &unsupported_onnx());
    try_compile(&model, &tmp.path().join("bundle"), &[])
        .fails_with(&["node 'decoder_node' (ImageDecoder)", "host work"]);
}

#[test]
fn mismatched_matmul_shapes_name_the_node() {
    let mut b = ModelBuilder::new("bad_shapes");
    b.input("a", DataType::Float, &[d(2), d(3)]);
    b.input("b", DataType::Float, &[d(4), d(5)]);
    b.node("MatMul", &["a", "b"], &["c"]).name("mm_bad");
    b.output("c", DataType::Float);
    let tmp = tempfile::tempdir().unwrap();
    let model = write_file(tmp.path(), "model.onnx", &b.encode());
    try_compile(&model, &tmp.path().join("bundle"), &[]).fails_with(&[
        "node 'mm_bad' (MatMul)",
        "inner dims differ",
        "[.., 3]",
        "[4, ..]",
    ]);
}

#[test]
fn modified_wgsl_is_detected_by_run_and_inspect() {
    let f = fixture(None);
    let file = manifest(&f.bundle).kernels[0].file.clone();
    let path = f.bundle.join(&file);
    let mut src = std::fs::read_to_string(&path).unwrap();
    src.push_str("\n// edited after compile\n");
    std::fs::write(&path, src).unwrap();
    run_with(&f, &mlp_inputs(2)).fails_with(&[&file, "was modified", "sha256"]);
    kiln([std::ffi::OsStr::new("inspect"), f.bundle.as_os_str()]).fails_with(&[&file, "was modified"]);
    assert!(!f.work.join("out").exists(), "a rejected run must not write outputs");
}

#[test]
fn modified_weight_shard_is_detected() {
    let f = fixture(None);
    let m = manifest(&f.bundle);
    assert!(!m.weights.is_empty(), "the MLP has weights");
    let file = m.weights[0].file.clone();
    let path = f.bundle.join(&file);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    run_with(&f, &mlp_inputs(2)).fails_with(&[&file, "was modified", "sha256"]);
    kiln([std::ffi::OsStr::new("inspect"), f.bundle.as_os_str()]).fails_with(&[&file, "was modified"]);
}

#[test]
fn missing_input_is_named() {
    let f = fixture(Some(attention_onnx()));
    let mut inputs = attention_inputs(2);
    inputs.remove("v");
    run_with(&f, &inputs).fails_with(&["input 'v' is missing", "v: f32[batch, 8, 16]"]);
}

#[test]
fn unknown_input_is_named() {
    let f = fixture(None);
    let mut inputs = mlp_inputs(2);
    inputs.insert("not_an_input".into(), HostTensor::from_f32(&[1], &[0.0]));
    run_with(&f, &inputs).fails_with(&["'not_an_input' is not an input of this bundle", "x: f32[batch, 16]"]);
}

#[test]
fn wrong_input_shape_is_rejected() {
    let f = fixture(None);
    let inputs = BTreeMap::from([("x".to_string(), HostTensor::from_f32(&[2, 15], &values(30, 1, 1.0)))]);
    run_with(&f, &inputs).fails_with(&["input 'x' has shape [2, 15]", "expects [batch, 16]", "dim 1 is 15"]);
    let rank3 = BTreeMap::from([("x".to_string(), HostTensor::from_f32(&[1, 2, 16], &values(32, 1, 1.0)))]);
    run_with(&f, &rank3).fails_with(&["input 'x' has shape [1, 2, 16]", "rank is 3, expected 2"]);
}

#[test]
fn wrong_input_dtype_is_rejected() {
    let f = fixture(None);
    let inputs = BTreeMap::from([("x".to_string(), HostTensor::from_i32(&[2, 16], &[1; 32]))]);
    run_with(&f, &inputs).fails_with(&["input 'x' has dtype i32", "expects f32"]);
}

#[test]
fn malformed_npy_is_rejected() {
    let f = fixture(None);
    let garbage = write_file(&f.work, "garbage.npy", b"this is not an npy file at all\n");
    let arg = format!("x={}", garbage.display());
    kiln(["run", &f.bundle.display().to_string(), "--input", &arg])
        .fails_with(&["input 'x'", "garbage.npy is not a valid .npy file"]);

    // A valid header whose data is cut short.
    let good = f.work.join("short.npy");
    kiln::npy::write_npy(&good, &HostTensor::from_f32(&[2, 16], &values(32, 3, 1.0))).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&good, &bytes[..bytes.len() - 10]).unwrap();
    let arg = format!("x={}", good.display());
    kiln(["run", &f.bundle.display().to_string(), "--input", &arg]).fails_with(&[
        "input 'x'",
        "reading the data of",
        "short.npy",
    ]);

    // A file that does not exist, and an argument without '='.
    let arg = format!("x={}", f.work.join("absent.npy").display());
    kiln(["run", &f.bundle.display().to_string(), "--input", &arg]).fails_with(&[
        "input 'x'",
        "absent.npy",
        "No such file",
    ]);
    kiln(["run", &f.bundle.display().to_string(), "--input", "x.npy"])
        .fails_with(&["--input 'x.npy'", "expected NAME=FILE.npy"]);
}

#[test]
fn nonexistent_bundle_dir_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no_such_bundle");
    let m = missing.display().to_string();
    kiln(["run", &m]).fails_with(&["no_such_bundle", "has no manifest.json"]);
    kiln(["inspect", &m]).fails_with(&["no_such_bundle", "has no manifest.json"]);
    // A directory that exists but is not a bundle.
    let m = tmp.path().display().to_string();
    kiln(["inspect", &m]).fails_with(&["has no manifest.json", "is it a Kiln bundle directory"]);
}

#[test]
fn dim_for_unknown_symbol_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_file(tmp.path(), "model.onnx", &attention_onnx());
    let bundle = tmp.path().join("bundle");
    try_compile(&model, &bundle, &["--dim", "seqlen=3"]).fails_with(&[
        "--dim seqlen",
        "no symbolic dim of that name",
        "batch",
    ]);
    assert!(!bundle.exists(), "no bundle for a rejected --dim");
    assert_no_temp_dirs(tmp.path());
}

#[test]
fn malformed_dim_argument_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_file(tmp.path(), "model.onnx", &attention_onnx());
    let bundle = tmp.path().join("bundle");
    try_compile(&model, &bundle, &["--dim", "batch=three"])
        .fails_with(&["--dim 'batch=three'", "'three' is not an integer"]);
    try_compile(&model, &bundle, &["--dim", "batch"]).fails_with(&["--dim 'batch'", "expected NAME=VALUE"]);
    try_compile(&model, &bundle, &["--dim", "batch=-2"]).fails_with(&["--dim 'batch=-2'", "cannot be negative"]);
    assert!(!bundle.exists(), "no bundle for a rejected --dim");
}

#[test]
fn inputs_disagreeing_on_a_symbol_are_rejected() {
    let f = fixture(Some(attention_onnx()));
    let mut inputs = attention_inputs(2);
    inputs.insert("k".into(), attention_inputs(3).remove("k").unwrap());
    run_with(&f, &inputs).fails_with(&["input 'k' has shape [3, 8, 16]", "'batch' = 2 from dim 0 of input 'q'"]);
}

#[test]
fn input_given_twice_is_rejected() {
    let f = fixture(None);
    let args = write_inputs(&f.work, &mlp_inputs(2));
    let mut cmd = vec!["run".to_string(), f.bundle.display().to_string()];
    cmd.extend(args.iter().cloned());
    cmd.extend(args);
    kiln(&cmd).fails_with(&["input 'x' is given more than once"]);
}

/// Outputs `a/b` and `a:b` both map to the file name `a_b.npy`; `kiln run --out` must not
/// silently lose one of them (it may refuse, naming both, or write two distinct files).
#[test]
fn colliding_output_file_names_do_not_lose_outputs() {
    let mut b = ModelBuilder::new("collide");
    b.input("x", DataType::Float, &[d("batch"), d(4)]);
    b.node("Relu", &["x"], &["a/b"]).name("relu");
    b.node("Neg", &["x"], &["a:b"]).name("neg");
    b.output("a/b", DataType::Float);
    b.output("a:b", DataType::Float);
    let onnx = b.encode();
    let f = fixture(Some(onnx.clone()));
    let inputs = BTreeMap::from([("x".to_string(), HostTensor::from_f32(&[2, 4], &values(8, 5, 1.0)))]);
    let out = run_with(&f, &inputs);
    if out.status.success() {
        // Relu and Neg of x, computed here.
        let x = inputs["x"].to_f32();
        let expected = HashMap::from([
            ("a/b", Tensor::f32(vec![2, 4], x.iter().map(|v| v.max(0.0)).collect())),
            ("a:b", Tensor::f32(vec![2, 4], x.iter().map(|v| -v).collect())),
        ]);
        let files: Vec<HostTensor> = entries(&f.work.join("out"))
            .iter()
            .map(|e| read_output(&f.work.join("out").join(e)))
            .collect();
        for (name, r) in &expected {
            let found = files
                .iter()
                .any(|t| t.shape == r.shape && kiln::convert::rel_l2(&t.to_f32(), &r.to_f32()) < TOLERANCE);
            assert!(
                found,
                "output '{name}' was overwritten by another output\n{}",
                out.describe()
            );
        }
    } else {
        out.fails_with(&["outputs 'a/b' and 'a:b' would both be written to 'a_b.npy'"]);
        assert!(!f.work.join("out").exists(), "a refused run must not write outputs");
    }
}

#[test]
fn failed_compile_keeps_previous_bundle_intact() {
    let f = fixture(None);
    let before = snapshot(&f.bundle);
    let dir_before = entries(&f.work);
    let bad = write_file(&f.work, "bad.onnx", &unsupported_onnx());
    try_compile(&bad, &f.bundle, &[]).fails_with(&["node 'decoder_node' (ImageDecoder)", "host work"]);
    assert_eq!(
        snapshot(&f.bundle),
        before,
        "a failed compile changed the existing bundle"
    );
    let mut expected_entries = dir_before.clone();
    expected_entries.push("bad.onnx".into());
    expected_entries.sort();
    assert_eq!(entries(&f.work), expected_entries, "a failed compile left files behind");
    assert_no_temp_dirs(&f.work);
    // The old bundle still loads and runs.
    let inputs = mlp_inputs(2);
    let expected = mlp_expected(&inputs);
    run_and_check(&f.bundle, &f.work, "after", &inputs, &expected);
}

#[test]
fn compile_refuses_to_replace_a_non_bundle_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_file(tmp.path(), "model.onnx", &mlp_onnx());
    let target = tmp.path().join("precious");
    std::fs::create_dir(&target).unwrap();
    write_file(&target, "notes.txt", b"not a bundle");
    let before = snapshot(&target);
    try_compile(&model, &target, &[]).fails_with(&["precious", "not a Kiln bundle"]);
    assert_eq!(snapshot(&target), before);
    assert_no_temp_dirs(tmp.path());
}

#[test]
fn recompiling_over_a_bundle_replaces_it_cleanly() {
    let f = fixture(None);
    let model = write_file(&f.work, "attention.onnx", &attention_onnx());
    compile(&model, &f.bundle, &[]);
    assert_no_temp_dirs(&f.work);
    let m = manifest(&f.bundle);
    assert_eq!(
        m.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["q", "k", "v"]
    );
    // Every file in the new bundle is listed in the manifest (nothing stale from the MLP).
    for file in snapshot(&f.bundle).keys() {
        let rel = file.to_string_lossy().replace('\\', "/");
        assert!(
            rel == kiln::abi::MANIFEST_FILE || m.files.contains_key(&rel),
            "stale file {rel} in the bundle"
        );
    }
}
