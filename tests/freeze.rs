//! `kiln compile --freeze NAME=FILE.npy`: graph inputs that carry op parameters (here a Reshape
//! shape and Slice bounds) become compile-time constants. Without `--freeze` the compile fails
//! with the frontend's message naming the input; with it the bundle compiles, no longer has the
//! input, and its GPU outputs equal values computed in the test from the model's definition.

use crate::common;

use common::*;
use kiln::compiler::frontend::onnx::builder::{d, DataType, ModelBuilder};
use kiln::ir::Tensor;
use kiln::runtime::HostTensor;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// `y = Relu(Reshape(x, shape))` and `z = Slice(x * 2, starts, ends, axes)` with `shape`,
/// `starts`, `ends` and `axes` as graph inputs; `x` is `[batch, 3, 4]`.
fn params_as_inputs_onnx() -> Vec<u8> {
    let mut b = ModelBuilder::new("params_as_inputs");
    b.input("x", DataType::Float, &[d("batch"), d(3), d(4)]);
    b.input("shape", DataType::Int64, &[d(2)]);
    b.input("starts", DataType::Int64, &[d(1)]);
    b.input("ends", DataType::Int64, &[d(1)]);
    b.input("axes", DataType::Int64, &[d(1)]);
    b.init_f32("two", &[], &[2.0]);
    b.node("Reshape", &["x", "shape"], &["r"]).name("reshape");
    b.node("Relu", &["r"], &["y"]).name("relu");
    b.node("Mul", &["x", "two"], &["x2"]).name("double");
    b.node("Slice", &["x2", "starts", "ends", "axes"], &["z"]).name("slice");
    b.output("y", DataType::Float);
    b.output("z", DataType::Float);
    b.encode()
}

fn write_i64(dir: &Path, name: &str, v: &[i64]) -> String {
    let p = dir.join(format!("{name}.npy"));
    kiln::npy::write_npy(&p, &HostTensor::from_i64(&[v.len()], v)).unwrap();
    format!("{name}={}", p.display())
}

#[test]
fn frozen_parameter_inputs_compile_and_run() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let onnx = params_as_inputs_onnx();
    let model = write_file(work, "model.onnx", &onnx);
    let bundle = work.join("bundle");
    let model_s = model.display().to_string();
    let bundle_s = bundle.display().to_string();

    // Without --freeze: the frontend's compile-time-constant error, naming the graph input.
    kiln(["compile", &model_s, "-o", &bundle_s]).fails_with(&[
        "reshape",
        "compile-time constant",
        "graph input 'shape'",
        "--freeze shape=FILE.npy",
    ]);
    assert!(!bundle.exists(), "a failed compile writes no bundle");

    // Only some parameters frozen: the next one is named.
    let shape = write_i64(work, "shape", &[-1, 6]);
    kiln(["compile", &model_s, "-o", &bundle_s, "--freeze", &shape]).fails_with(&["slice", "graph input 'starts'"]);

    let freezes = [
        shape.clone(),
        write_i64(work, "starts", &[1]),
        write_i64(work, "ends", &[i32::MAX as i64]),
        write_i64(work, "axes", &[-1]),
    ];
    let mut args = vec!["compile", &model_s, "-o", &bundle_s];
    for f in &freezes {
        args.extend(["--freeze", f.as_str()]);
    }
    kiln(&args).ok();
    let m = manifest(&bundle);
    let inputs: Vec<&str> = m.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(inputs, ["x"], "frozen inputs leave the bundle");

    // GPU vs values computed here from the model's definition, at two batch sizes of one
    // bundle: y = Relu(Reshape(x, [-1, 6])) (the same elements, [2·batch, 6]) and
    // z = (x * 2)[:, :, 1:] (the last axis from 1 to its end).
    for batch in [1usize, 3] {
        let x = HostTensor::from_f32(&[batch, 3, 4], &values(batch * 12, 40 + batch as u64, 1.0));
        let xv = x.to_f32();
        let y: Vec<f32> = xv.iter().map(|v| v.max(0.0)).collect();
        let z: Vec<f32> = (0..batch * 3)
            .flat_map(|row| (1..4).map(move |c| (row, c)))
            .map(|(row, c)| 2.0 * xv[row * 4 + c])
            .collect();
        let expected = HashMap::from([
            ("y".to_string(), Tensor::f32(vec![batch * 2, 6], y)),
            ("z".to_string(), Tensor::f32(vec![batch, 3, 3], z)),
        ]);
        let inputs = BTreeMap::from([("x".to_string(), x)]);
        run_and_check(&bundle, work, &format!("b{batch}"), &inputs, &expected);
    }
}

#[test]
fn bad_freeze_values_are_reported_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let model = write_file(work, "model.onnx", &params_as_inputs_onnx());
    let (model_s, bundle_s) = (model.display().to_string(), work.join("bundle").display().to_string());
    let compile = |spec: &str| kiln(["compile", &model_s, "-o", &bundle_s, "--freeze", spec]);

    let p = work.join("f.npy");
    kiln::npy::write_npy(&p, &HostTensor::from_f32(&[2], &[1.0, 2.0])).unwrap();
    compile(&format!("shape={}", p.display()))
        .fails_with(&["graph input 'shape'", "declared INT64 but the value is f32"]);
    compile(&format!("nope={}", p.display())).fails_with(&[
        "graph input 'nope'",
        "no input of that name",
        "'x', 'shape', 'starts', 'ends', 'axes'",
    ]);
    let long = write_i64(work, "shape3", &[1, 2, 3]);
    compile(&long.replacen("shape3", "shape", 1)).fails_with(&["graph input 'shape'", "dim 0 is declared 2"]);
    compile("shape").fails_with(&["--freeze 'shape': expected NAME=FILE.npy"]);
    compile("shape=/no/such/file.npy").fails_with(&["--freeze 'shape'", "/no/such/file.npy"]);
}
