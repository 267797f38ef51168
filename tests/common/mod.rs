//! Shared helpers for the end-to-end CLI tests: running the real `kiln` binary, building small
//! ONNX models with the frontend's builder, writing `.npy` inputs, and checking GPU outputs
//! against expected values computed in f64 directly from each test model's definition (not
//! through the frontend, so a frontend bug cannot cancel out).

#![allow(dead_code)]

use kiln::compiler::frontend::onnx::builder::{d, DataType, ModelBuilder};
use kiln::convert::rel_l2;
use kiln::ir::Tensor;
use kiln::runtime::HostTensor;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Largest relative L2 error accepted between GPU and expected f32 outputs: f32 GEMMs of at
/// most 32 terms, sigmoid, tanh and softmax each carry a few ULP (2^-23 ~ 1.2e-7).
pub const TOLERANCE: f64 = 1e-5;

/// Name of the MLP's first output; its file must be `out_prob_0.npy`.
pub const MLP_PROB: &str = "out/prob:0";
/// Name of the MLP's second output.
pub const MLP_GATED: &str = "gated";

/// What one run of the `kiln` binary produced.
pub struct Outcome {
    /// The command line, for failure messages.
    pub cmdline: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl Outcome {
    /// Everything about the run, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline, self.status, self.stdout, self.stderr
        )
    }

    /// Asserts that the command succeeded; returns `self` for chaining.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.status.success(), "kiln failed unexpectedly\n{}", self.describe());
        self
    }

    /// Asserts a clean failure: non-zero exit status, no panic, and a stderr that contains
    /// every one of `needles` (the message must say what is wrong and where).
    ///
    /// Set `KILN_TEST_SHOW_ERRORS=1` to print every expected error message for review.
    #[track_caller]
    pub fn fails_with(&self, needles: &[&str]) -> &Self {
        assert!(
            !self.status.success(),
            "kiln succeeded but should have failed\n{}",
            self.describe()
        );
        assert!(
            self.status.code().is_some(),
            "kiln was killed by a signal\n{}",
            self.describe()
        );
        for bad in ["panicked", "RUST_BACKTRACE"] {
            assert!(
                !self.stderr.contains(bad),
                "kiln panicked instead of reporting an error\n{}",
                self.describe()
            );
        }
        if std::env::var_os("KILN_TEST_SHOW_ERRORS").is_some() {
            eprintln!("$ {}\n{}", self.cmdline, self.stderr);
        }
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "the error message does not mention {needle:?}\n{}",
                self.describe()
            );
        }
        self
    }
}

/// Runs the `kiln` binary built for this test run with `args`, capturing its output.
///
/// `RUST_BACKTRACE` and `RUST_LOG` are removed from the environment so a panic always shows
/// its `RUST_BACKTRACE` hint and log output does not depend on the caller's shell.
pub fn kiln<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
    let exe = env!("CARGO_BIN_EXE_kiln");
    let out = Command::new(exe)
        .args(&args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
    Outcome {
        cmdline: std::iter::once("kiln".to_string())
            .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" "),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Deterministic pseudo-random values in `[-scale, scale)`.
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    kiln::demo::pseudo_random(n, seed, scale)
}

/// The test MLP as ONNX bytes:
///
/// ```text
/// x[batch,16] -> MatMul W1[16,32] -> Add b1 -> Relu -> Gemm(W2[8,32], b2, transB=1) -> Sigmoid -> "out/prob:0"
/// x -> MatMul W3[16,8] -> Tanh;  Mul(prob, tanh) -> "gated"
/// ```
pub fn mlp_onnx() -> Vec<u8> {
    let mut b = ModelBuilder::new("test_mlp");
    b.input("x", DataType::Float, &[d("batch"), d(16)]);
    b.init_f32("W1", &[16, 32], &values(16 * 32, 11, 0.4));
    b.init_f32("b1", &[32], &values(32, 12, 0.2));
    b.init_f32("W2", &[8, 32], &values(8 * 32, 13, 0.4));
    b.init_f32("b2", &[8], &values(8, 14, 0.2));
    b.init_f32("W3", &[16, 8], &values(16 * 8, 15, 0.4));
    b.node("MatMul", &["x", "W1"], &["h0"]).name("fc1");
    b.node("Add", &["h0", "b1"], &["h1"]).name("fc1_bias");
    b.node("Relu", &["h1"], &["h2"]).name("relu");
    b.node("Gemm", &["h2", "W2", "b2"], &["logits"])
        .name("fc2")
        .attr_int("transB", 1);
    b.node("Sigmoid", &["logits"], &[MLP_PROB]).name("sigmoid");
    b.node("MatMul", &["x", "W3"], &["t0"]).name("branch");
    b.node("Tanh", &["t0"], &["t1"]).name("tanh");
    b.node("Mul", &[MLP_PROB, "t1"], &[MLP_GATED]).name("gate");
    b.output(MLP_PROB, DataType::Float);
    b.output(MLP_GATED, DataType::Float);
    b.encode()
}

/// An attention-like ONNX graph over a symbolic `batch`:
/// `Softmax(q[batch,8,16] x Transpose(k)[batch,16,8] * 0.25, axis=-1) x v[batch,8,16]` -> "attn".
pub fn attention_onnx() -> Vec<u8> {
    let mut b = ModelBuilder::new("test_attention");
    for name in ["q", "k", "v"] {
        b.input(name, DataType::Float, &[d("batch"), d(8), d(16)]);
    }
    b.init_f32("scale", &[], &[0.25]);
    b.node("Transpose", &["k"], &["kt"])
        .name("k_transpose")
        .attr_ints("perm", &[0, 2, 1]);
    b.node("MatMul", &["q", "kt"], &["scores"]).name("qk");
    b.node("Mul", &["scores", "scale"], &["scaled"]).name("scale_scores");
    b.node("Softmax", &["scaled"], &["probs"])
        .name("softmax")
        .attr_int("axis", -1);
    b.node("MatMul", &["probs", "v"], &["attn"]).name("pv");
    b.output("attn", DataType::Float);
    b.encode()
}

/// Inputs `q`, `k`, `v` of [`attention_onnx`] for a batch size (values differ per batch).
pub fn attention_inputs(batch: usize) -> BTreeMap<String, HostTensor> {
    let n = batch * 8 * 16;
    ["q", "k", "v"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            (
                name.to_string(),
                HostTensor::from_f32(&[batch, 8, 16], &values(n, 100 + 7 * i as u64 + batch as u64, 2.0)),
            )
        })
        .collect()
}

/// Input `x` of [`mlp_onnx`] for a batch size.
pub fn mlp_inputs(batch: usize) -> BTreeMap<String, HostTensor> {
    BTreeMap::from([(
        "x".to_string(),
        HostTensor::from_f32(&[batch, 16], &values(batch * 16, 7 + batch as u64, 1.5)),
    )])
}

/// Writes `bytes` as `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
    p
}

/// Writes each input as `dir/<name>.npy` and returns the matching `--input NAME=FILE`
/// arguments, ready to pass to `kiln run`.
pub fn write_inputs(dir: &Path, inputs: &BTreeMap<String, HostTensor>) -> Vec<String> {
    inputs
        .iter()
        .flat_map(|(name, t)| {
            let p = dir.join(format!("{name}.npy"));
            kiln::npy::write_npy(&p, t).unwrap_or_else(|e| panic!("writing {}: {e:#}", p.display()));
            ["--input".to_string(), format!("{name}={}", p.display())]
        })
        .collect()
}

/// Reads an output `.npy` written by `kiln run`.
pub fn read_output(path: &Path) -> HostTensor {
    kiln::npy::read_npy(path).unwrap_or_else(|e| panic!("reading output {}: {e:#}", path.display()))
}

/// Row-major `a [m, k] x b [k, n]` in f64.
fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for kk in 0..k {
            for j in 0..n {
                c[i * n + j] += a[i * k + kk] * b[kk * n + j];
            }
        }
    }
    c
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn f32_tensor(shape: Vec<usize>, v: &[f64]) -> Tensor {
    Tensor::f32(shape, v.iter().map(|&x| x as f32).collect())
}

/// The outputs of [`mlp_onnx`] computed directly in f64 from its weights (same seeds), written
/// from the model's definition rather than from what the frontend makes of it.
pub fn mlp_expected(inputs: &BTreeMap<String, HostTensor>) -> HashMap<String, Tensor> {
    let x = &inputs["x"];
    let batch = x.shape[0];
    let x = f64s(&x.to_f32());
    let (w1, b1) = (f64s(&values(16 * 32, 11, 0.4)), f64s(&values(32, 12, 0.2)));
    let (w2, b2) = (f64s(&values(8 * 32, 13, 0.4)), f64s(&values(8, 14, 0.2)));
    let w3 = f64s(&values(16 * 8, 15, 0.4));
    let h: Vec<f64> = matmul(&x, &w1, batch, 16, 32)
        .iter()
        .enumerate()
        .map(|(i, v)| (v + b1[i % 32]).max(0.0))
        .collect();
    // Gemm with transB = 1: logits[b, o] = sum_j h[b, j] * W2[o, j] + b2[o].
    let mut prob = vec![0.0; batch * 8];
    for b in 0..batch {
        for o in 0..8 {
            let logit: f64 = (0..32).map(|j| h[b * 32 + j] * w2[o * 32 + j]).sum::<f64>() + b2[o];
            prob[b * 8 + o] = 1.0 / (1.0 + (-logit).exp());
        }
    }
    let gated: Vec<f64> = matmul(&x, &w3, batch, 16, 8)
        .iter()
        .zip(&prob)
        .map(|(t, p)| p * t.tanh())
        .collect();
    HashMap::from([
        (MLP_PROB.to_string(), f32_tensor(vec![batch, 8], &prob)),
        (MLP_GATED.to_string(), f32_tensor(vec![batch, 8], &gated)),
    ])
}

/// The output of [`attention_onnx`] computed directly in f64:
/// `softmax(q k^T * 0.25, last axis) v` per batch.
pub fn attention_expected(inputs: &BTreeMap<String, HostTensor>) -> HashMap<String, Tensor> {
    let batch = inputs["q"].shape[0];
    let (q, k, v) = (
        f64s(&inputs["q"].to_f32()),
        f64s(&inputs["k"].to_f32()),
        f64s(&inputs["v"].to_f32()),
    );
    let mut out = vec![0.0; batch * 8 * 16];
    for b in 0..batch {
        let at = |t: &[f64], i: usize, j: usize| t[(b * 8 + i) * 16 + j];
        for i in 0..8 {
            let scores: Vec<f64> = (0..8)
                .map(|j| (0..16).map(|d| at(&q, i, d) * at(&k, j, d)).sum::<f64>() * 0.25)
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..16 {
                out[(b * 8 + i) * 16 + d] = (0..8).map(|j| e[j] / z * at(&v, j, d)).sum();
            }
        }
    }
    HashMap::from([("attn".to_string(), f32_tensor(vec![batch, 8, 16], &out))])
}

/// Asserts that a GPU output equals the expected one within [`TOLERANCE`] (relative L2).
#[track_caller]
pub fn assert_close(what: &str, gpu: &HostTensor, reference: &Tensor) {
    assert_eq!(
        gpu.shape, reference.shape,
        "{what}: GPU output shape differs from the expected one"
    );
    let (g, r) = (gpu.to_f32(), reference.to_f32());
    assert!(
        g.iter().all(|v| v.is_finite()),
        "{what}: GPU output has non-finite values"
    );
    let err = rel_l2(&g, &r);
    assert!(
        err < TOLERANCE,
        "{what}: relative L2 error {err:.3e} vs the expected values exceeds {TOLERANCE:e}"
    );
}

/// Runs a compiled bundle on `inputs` with `kiln run ... --out <dir>/<tag>`, checks that stdout
/// lists every reference output with its dtype `f32` and shape, and that each output file
/// (named by [`kiln::npy::output_file_name`]) matches the reference. Returns the run's outcome.
pub fn run_and_check(
    bundle: &Path,
    work: &Path,
    tag: &str,
    inputs: &BTreeMap<String, HostTensor>,
    expected: &HashMap<String, Tensor>,
) -> Outcome {
    let in_dir = work.join(format!("{tag}-in"));
    let out_dir = work.join(format!("{tag}-out"));
    std::fs::create_dir_all(&in_dir).unwrap();
    let mut args: Vec<String> = vec!["run".into(), bundle.display().to_string()];
    args.extend(write_inputs(&in_dir, inputs));
    args.extend(["--out".to_string(), out_dir.display().to_string()]);
    let out = kiln(&args);
    out.ok();
    for (name, r) in expected {
        assert_stdout_lists(&out, name, "f32", &r.shape);
        let file = out_dir.join(kiln::npy::output_file_name(name));
        assert!(
            file.is_file(),
            "output '{name}' was not written as {}\n{}",
            file.display(),
            out.describe()
        );
        assert_close(&format!("{tag}: output '{name}'"), &read_output(&file), r);
    }
    out
}

/// Asserts that `kiln run` printed a line `NAME: DTYPE ...` whose numbers after the dtype are
/// exactly `shape` (so `[2, 8]`, `2x8` or `(2, 8)` all pass).
#[track_caller]
pub fn assert_stdout_lists(out: &Outcome, name: &str, dtype: &str, shape: &[usize]) {
    let prefix = format!("{name}:");
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("stdout has no line for output '{name}'\n{}", out.describe()));
    let rest = &line[prefix.len()..];
    let after = rest
        .split_once(dtype)
        .unwrap_or_else(|| panic!("line {line:?} does not name dtype {dtype}\n{}", out.describe()))
        .1;
    let numbers: Vec<usize> = after
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(numbers, shape, "line {line:?} does not show shape {shape:?}");
}

/// Compiles `model` into `bundle` with extra arguments, asserting success.
pub fn compile(model: &Path, bundle: &Path, extra: &[&str]) -> Outcome {
    let mut args: Vec<String> = vec![
        "compile".into(),
        model.display().to_string(),
        "-o".into(),
        bundle.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = kiln(&args);
    out.ok();
    out
}

/// The bundle's `manifest.json`, parsed (serde_json, through the ABI crate's typed parser).
pub fn manifest(bundle: &Path) -> kiln::abi::Manifest {
    let text = std::fs::read_to_string(bundle.join(kiln::abi::MANIFEST_FILE)).expect("bundle has a manifest.json");
    kiln::abi::Manifest::from_json(&text).expect("manifest.json parses")
}

/// Total dispatches over every program of a manifest.
pub fn dispatch_count(m: &kiln::abi::Manifest) -> usize {
    m.programs.iter().map(|p| p.dispatches.len()).sum()
}

/// Every file under `dir` (relative path -> bytes), for checking that a directory is unchanged.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, acc: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, acc);
            } else {
                acc.insert(p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut acc = BTreeMap::new();
    walk(dir, dir, &mut acc);
    acc
}

/// Names of the entries directly inside `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
