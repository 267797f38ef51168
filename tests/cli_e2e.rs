//! End-to-end tests of the `kiln` CLI: ONNX models built in the test are compiled with
//! `kiln compile`, run on the GPU (lavapipe in CI) with `kiln run`, and every output file is
//! compared with values computed in f64 from the test model's definition (tests/common).

use crate::common;

use common::*;
use std::collections::BTreeMap;

/// MLP with a Gemm(transB) and a Tanh/Mul branch: compile, run, compare; stdout lists each
/// output with dtype and shape; `out/prob:0` is written as `out_prob_0.npy`.
#[test]
fn mlp_compile_run_matches_interpreter() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let onnx = mlp_onnx();
    let model = write_file(work, "model.onnx", &onnx);
    let bundle = work.join("bundle");
    let c = compile(&model, &bundle, &[]);
    assert!(
        c.stdout.contains("kernels"),
        "compile prints a summary\n{}",
        c.describe()
    );

    let inputs = mlp_inputs(2);
    let expected = mlp_expected(&inputs);
    assert_eq!(expected.len(), 2, "the reference has both outputs");
    assert_eq!(expected[MLP_PROB].shape, vec![2, 8]);
    run_and_check(&bundle, work, "b2", &inputs, &expected);

    // Output file naming: every char other than letter/digit/./-/_ becomes '_'.
    let out_dir = work.join("b2-out");
    assert_eq!(
        entries(&out_dir),
        vec!["gated.npy".to_string(), "out_prob_0.npy".to_string()]
    );
    assert_eq!(kiln::npy::output_file_name("out/prob:0"), "out_prob_0.npy");
    assert_eq!(kiln::npy::output_file_name("a.b-c_d e\\f"), "a.b-c_d_e_f.npy");
}

/// Without `--out` nothing is written, but stdout still lists every output.
#[test]
fn run_without_out_prints_outputs_only() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let model = write_file(work, "model.onnx", &mlp_onnx());
    let bundle = work.join("bundle");
    compile(&model, &bundle, &[]);
    let in_dir = work.join("in");
    std::fs::create_dir(&in_dir).unwrap();
    let mut args = vec!["run".to_string(), bundle.display().to_string()];
    args.extend(write_inputs(&in_dir, &mlp_inputs(3)));
    let before = entries(work);
    let out = kiln(&args);
    out.ok();
    assert_stdout_lists(&out, MLP_PROB, "f32", &[3, 8]);
    assert_stdout_lists(&out, MLP_GATED, "f32", &[3, 8]);
    assert_eq!(entries(work), before, "kiln run without --out must not write files");
}

/// One bundle compiled with a symbolic `batch` runs at batch 1 and batch 5.
#[test]
fn attention_symbolic_batch_one_bundle_two_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let onnx = attention_onnx();
    let model = write_file(work, "attention.onnx", &onnx);
    let bundle = work.join("bundle");
    compile(&model, &bundle, &[]);
    let m = manifest(&bundle);
    assert_eq!(
        m.symbols,
        vec!["batch".to_string()],
        "the bundle keeps 'batch' symbolic"
    );

    for batch in [1, 5] {
        let inputs = attention_inputs(batch);
        let expected = attention_expected(&inputs);
        assert_eq!(expected["attn"].shape, vec![batch, 8, 16]);
        run_and_check(&bundle, work, &format!("batch{batch}"), &inputs, &expected);
    }
    // The same bundle served both sizes: nothing was recompiled or rewritten.
    assert_eq!(manifest(&bundle), m);
}

/// `--dim batch=3` fixes the batch: batch 3 runs, batch 4 is rejected with a clear error.
#[test]
fn attention_fixed_dim_runs_and_rejects_other_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let onnx = attention_onnx();
    let model = write_file(work, "attention.onnx", &onnx);
    let bundle = work.join("bundle3");
    compile(&model, &bundle, &["--dim", "batch=3"]);
    assert!(
        manifest(&bundle).symbols.is_empty(),
        "no symbolic dims remain after --dim batch=3"
    );

    let inputs = attention_inputs(3);
    let expected = attention_expected(&inputs);
    run_and_check(&bundle, work, "fixed3", &inputs, &expected);

    let in_dir = work.join("b4");
    std::fs::create_dir(&in_dir).unwrap();
    let mut args = vec!["run".to_string(), bundle.display().to_string()];
    args.extend(write_inputs(&in_dir, &attention_inputs(4)));
    args.extend(["--out".to_string(), work.join("b4-out").display().to_string()]);
    kiln(&args).fails_with(&["input '", "shape", "4", "3"]);
    assert!(!work.join("b4-out").exists(), "a rejected run must not write outputs");
}

/// `kiln inspect` prints `kernels: N` and `dispatches: N` matching manifest.json.
#[test]
fn inspect_counts_match_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    for (name, onnx) in [("mlp", mlp_onnx()), ("attention", attention_onnx())] {
        let model = write_file(work, &format!("{name}.onnx"), &onnx);
        let bundle = work.join(format!("{name}.kiln"));
        compile(&model, &bundle, &[]);
        let m = manifest(&bundle);
        let out = kiln([std::ffi::OsStr::new("inspect"), bundle.as_os_str()]);
        out.ok();
        let value = |key: &str| -> usize {
            let line = out
                .stdout
                .lines()
                .find(|l| l.starts_with(key))
                .unwrap_or_else(|| panic!("inspect prints no '{key}' line\n{}", out.describe()));
            line[key.len()..]
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("'{line}' is not '{key} N'"))
        };
        assert!(!m.kernels.is_empty());
        assert_eq!(value("kernels:"), m.kernels.len(), "{name}: kernels line vs manifest");
        assert_eq!(m.programs.len(), 1, "{name}: a single 'run' program");
        assert_eq!(
            value("dispatches:"),
            m.programs[0].dispatches.len(),
            "{name}: dispatches line vs manifest"
        );
        assert!(
            out.stdout.contains("input: x") || out.stdout.contains("input: q"),
            "{}",
            out.describe()
        );
    }
}

/// `--opt-level 0` and `--opt-level 2` are both correct; level 2 fuses into fewer dispatches.
#[test]
fn opt_levels_agree_and_fusion_reduces_dispatches() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let onnx = mlp_onnx();
    let model = write_file(work, "model.onnx", &onnx);
    let inputs = mlp_inputs(4);
    let expected = mlp_expected(&inputs);
    let mut dispatches = BTreeMap::new();
    for level in ["0", "2"] {
        let bundle = work.join(format!("opt{level}"));
        compile(&model, &bundle, &["--opt-level", level]);
        dispatches.insert(level, dispatch_count(&manifest(&bundle)));
        run_and_check(&bundle, work, &format!("opt{level}"), &inputs, &expected);
    }
    assert!(
        dispatches["2"] < dispatches["0"],
        "opt-level 2 should fuse into fewer dispatches than opt-level 0: {dispatches:?}"
    );
}
