//! ONNX backend conformance: runs the ONNX backend node tests through the whole pipeline
//! (frontend → compiler → bundle → runtime on the GPU) and compares with the expected outputs.
//!
//! The cases are materialized offline by `scripts/onnx_conformance_data.py` into
//! `DIR/<case>/model.onnx` + `DIR/<case>/test_data_set_<N>/{input,output}_<K>.pb`.
//!
//! A case is *plain* when every graph input and output is a tensor of f32, f16, i32, i64, bool,
//! u8 or i8; all other cases (strings, doubles, sequences, optionals, ...) are *out of scope* and
//! only counted. Each plain case ends as exactly one [`Outcome`]:
//!
//! - pass: every output has the expected dtype, shape and values (floats: `|a-b| <= 1e-4 +
//!   1e-3*|b|` elementwise, NaN matches NaN; integers and bools exact);
//! - pass with frozen parameter inputs: the same, after the retry described below;
//! - fail: a wrong dtype, shape or value;
//! - unsupported: the frontend or compiler declined an op or a feature, named with its op;
//! - error: anything else (load, compile or runtime error, panic, crash, time-out).
//!
//! Isolation: cases run in worker processes (`kiln conformance DIR --worker`, one per job) that
//! read case directories on stdin and answer one line per case on stdout. Each case is wrapped in
//! [`std::panic::catch_unwind`]; a worker that dies (abort, segfault, stack overflow) or exceeds
//! the per-case time limit is killed and replaced, and the case is counted as an error. So no case
//! can crash or hang the runner.
//!
//! Input shapes: dims the model leaves open (`dim_param`, unknown, or a missing shape) are fixed
//! to the shapes of the first test data set before loading, as `kiln compile --dim` would.
//!
//! Frozen parameter inputs: node tests often pass op parameters (axes, shapes, pads, scales, `k`)
//! as graph inputs, which an ahead-of-time compiler needs at compile time. A case that fails
//! before it has a bundle (a load or compile error or an unsupported feature; not an op without
//! lowering, not an unsupported opset or domain) is retried once with its parameter inputs frozen
//! to the test data's values ([`onnx::freeze_input_protos`], what `kiln compile --freeze` does):
//! every fed graph input except the first, which is taken as the op's main operand, and the
//! first too when the frontend's error names it as a graph input it needs at compile time
//! (ConstantOfShape's shape, Range's start). Data sets whose parameter values differ are
//! compiled separately. Such a pass is [`Outcome::PassFrozen`]: counted in [`Counts::pass`] (so
//! in `--min-pass`) and, separately, in [`Counts::pass_frozen`]. If the retry fails too, its
//! outcome is reported (marked "with 'a', 'b' frozen") when it got further than the plain
//! attempt or the plain failure was about a compile-time input; otherwise the plain outcome is.
//!
//! Sessions: each worker picks its adapter once and gives every case's session a clone of that
//! [`Runtime`] (each session still creates its own device).

use crate::compiler::frontend::onnx::proto::tensor_proto::{DataLocation, DataType};
use crate::compiler::frontend::onnx::proto::tensor_shape_proto::{dimension, Dimension};
use crate::compiler::frontend::onnx::proto::type_proto;
use crate::compiler::frontend::onnx::proto::{ModelProto, TensorProto, TensorShapeProto};
use crate::compiler::frontend::onnx::{self, OnnxError, MAX_OPSET, MIN_OPSET};
use crate::compiler::{CompileError, CompileOptions};
use crate::runtime::{Bundle, HostTensor, Runtime, Session, SessionOptions};
use anyhow::{anyhow, bail, Context, Result};
use half::f16;
use kiln_abi::ElemType;
use prost::Message;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Absolute tolerance for float outputs.
pub const ATOL: f64 = 1e-4;
/// Relative tolerance for float outputs (times `|expected|`).
pub const RTOL: f64 = 1e-3;

/// Prefix of every protocol line a worker writes on stdout.
const TAG: &str = "@@kiln-conformance";
/// Separates the frozen input names of a `pass-frozen` protocol line.
const NAME_SEP: &str = "\u{1f}";

/// What `kiln conformance` was asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// Directory of materialized cases (`DIR/<case>/model.onnx`).
    pub dir: PathBuf,
    /// Only cases whose name contains this substring.
    pub filter: Option<String>,
    /// Where to write the Markdown report.
    pub report: Option<PathBuf>,
    /// Fail (non-zero exit) if fewer plain cases pass.
    pub min_pass: Option<usize>,
    /// Worker processes running cases in parallel (0: one per available core).
    pub jobs: usize,
    /// Time limit per case (load + compile + run).
    pub timeout: Duration,
    /// The command line, recorded in the report.
    pub command_line: String,
}

/// How one case ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// All outputs match.
    Pass,
    /// All outputs match once the named parameter inputs were frozen to the test data's values
    /// (the case did not compile with them as runtime inputs); see the module documentation.
    PassFrozen(Vec<String>),
    /// Wrong dtype, shape or values; the reason names the output and the first mismatch.
    Fail(String),
    /// The frontend or compiler declined an op or feature.
    Unsupported {
        /// The op that is unsupported (or whose feature is).
        op: String,
        /// What exactly.
        reason: String,
    },
    /// Any other error: compile, runtime, panic, crash, time-out.
    Error(String),
    /// Not a plain-tensor case (the reason says which input/output and why).
    OutOfScope(String),
}

impl Outcome {
    /// Short name: `pass`, `pass-frozen`, `fail`, `unsupported`, `error`, `out-of-scope`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::PassFrozen(_) => "pass-frozen",
            Outcome::Fail(_) => "fail",
            Outcome::Unsupported { .. } => "unsupported",
            Outcome::Error(_) => "error",
            Outcome::OutOfScope(_) => "out-of-scope",
        }
    }

    /// Whether the case passed (with or without frozen inputs).
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Pass | Outcome::PassFrozen(_))
    }

    /// One-line reason ("" for a plain pass; the frozen inputs for a frozen pass).
    pub fn reason(&self) -> String {
        match self {
            Outcome::Pass => String::new(),
            Outcome::PassFrozen(inputs) => format!("frozen: {}", inputs.join(", ")),
            Outcome::Fail(r) | Outcome::Error(r) | Outcome::OutOfScope(r) => r.clone(),
            Outcome::Unsupported { op, reason } => format!("unsupported op {op}: {reason}"),
        }
    }
}

/// Wall-clock time a case spent in each stage (zero for stages it did not reach).
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    /// Reading test data and lowering the model.
    pub load: Duration,
    /// Compiling and writing the bundle.
    pub compile: Duration,
    /// Loading the bundle and creating the session (adapter, device, pipelines, weights).
    pub session: Duration,
    /// Running every data set and comparing.
    pub run: Duration,
}

impl Phases {
    fn total(&self) -> Duration {
        self.load + self.compile + self.session + self.run
    }
}

/// One discovered test case.
#[derive(Clone, Debug)]
pub struct Case {
    /// Directory name, e.g. `test_add_bcast`.
    pub name: String,
    /// The case directory.
    pub dir: PathBuf,
    /// The op the case tests: its model's only non-`Constant` op type; for a function-expanded
    /// case (`..._expanded`), the op of its base case followed by ` (expanded)`.
    pub op: String,
    /// `Err(reason)` if the case is not a plain-tensor case.
    pub scope: std::result::Result<(), String>,
}

/// The result of one case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// How it ended.
    pub outcome: Outcome,
    /// Time per stage.
    pub phases: Phases,
}

/// Counts over a set of results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Plain cases (everything but out of scope).
    pub plain: usize,
    /// Passed, with or without frozen parameter inputs (what `--min-pass` checks).
    pub pass: usize,
    /// Of `pass`, the cases that passed only with frozen parameter inputs.
    pub pass_frozen: usize,
    /// Failed (wrong answer).
    pub fail: usize,
    /// Unsupported op or feature.
    pub unsupported: usize,
    /// Other errors.
    pub error: usize,
    /// Not plain-tensor cases.
    pub out_of_scope: usize,
}

impl Counts {
    fn add(&mut self, o: &Outcome) {
        match o {
            Outcome::OutOfScope(_) => self.out_of_scope += 1,
            _ => {
                self.plain += 1;
                match o {
                    Outcome::Pass => self.pass += 1,
                    Outcome::PassFrozen(_) => {
                        self.pass += 1;
                        self.pass_frozen += 1;
                    }
                    Outcome::Fail(_) => self.fail += 1,
                    Outcome::Unsupported { .. } => self.unsupported += 1,
                    _ => self.error += 1,
                }
            }
        }
    }

    /// Passed plain cases in percent (0 when there are none).
    pub fn pass_rate(&self) -> f64 {
        if self.plain == 0 {
            0.0
        } else {
            100.0 * self.pass as f64 / self.plain as f64
        }
    }
}

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Per case, in name order.
    pub results: Vec<CaseResult>,
    /// The adapter the workers ran on.
    pub device: String,
    /// Wall-clock time of the whole run.
    pub wall: Duration,
    /// Worker processes used.
    pub jobs: usize,
    /// The `onnx` package version the data came from (if the data directory records it).
    pub onnx_version: Option<String>,
}

impl Summary {
    /// Totals over all results.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for r in &self.results {
            c.add(&r.outcome);
        }
        c
    }

    /// Stage times summed over all cases.
    pub fn phase_totals(&self) -> Phases {
        let mut p = Phases::default();
        for r in &self.results {
            p.load += r.phases.load;
            p.compile += r.phases.compile;
            p.session += r.phases.session;
            p.run += r.phases.run;
        }
        p
    }
}

// ---------------------------------------------------------------------------------------------
// Test data

/// Decoded values of a test tensor (f16 values are held as f32, exactly).
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// f32 or f16.
    Float(Vec<f32>),
    /// i32, i64, u8 or i8.
    Int(Vec<i64>),
    /// bool.
    Bool(Vec<bool>),
}

/// A tensor from a test data `.pb` file.
#[derive(Clone, Debug, PartialEq)]
pub struct TestTensor {
    /// Element type.
    pub elem: ElemType,
    /// Dims.
    pub shape: Vec<usize>,
    /// Elements, row-major.
    pub values: Values,
}

impl TestTensor {
    /// The tensor as the runtime takes it.
    pub fn to_host(&self) -> HostTensor {
        let s = &self.shape;
        match (&self.values, self.elem) {
            (Values::Float(v), ElemType::F16) => {
                HostTensor::from_f16(s, &v.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>())
            }
            (Values::Float(v), _) => HostTensor::from_f32(s, v),
            (Values::Int(v), ElemType::I32) => {
                HostTensor::from_i32(s, &v.iter().map(|&x| x as i32).collect::<Vec<_>>())
            }
            (Values::Int(v), ElemType::U8) => HostTensor::from_u8(s, &v.iter().map(|&x| x as u8).collect::<Vec<_>>()),
            (Values::Int(v), ElemType::I8) => HostTensor::from_i8(s, &v.iter().map(|&x| x as i8).collect::<Vec<_>>()),
            (Values::Int(v), _) => HostTensor::from_i64(s, v),
            (Values::Bool(v), _) => HostTensor::from_bool(s, v),
        }
    }
}

/// The ONNX name of an element type (`FLOAT`, `DOUBLE`, ...).
fn type_name(dt: i32) -> String {
    DataType::try_from(dt)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| format!("data type {dt}"))
}

/// The element type of an in-scope ONNX data type.
fn plain_elem(dt: i32) -> Option<ElemType> {
    Some(match DataType::try_from(dt).ok()? {
        DataType::Float => ElemType::F32,
        DataType::Float16 => ElemType::F16,
        DataType::Int32 => ElemType::I32,
        DataType::Int64 => ElemType::I64,
        DataType::Bool => ElemType::Bool,
        DataType::Uint8 => ElemType::U8,
        DataType::Int8 => ElemType::I8,
        _ => return None,
    })
}

/// Decodes a `TensorProto` of an in-scope element type (raw or typed data fields).
pub fn decode_tensor(t: &TensorProto) -> std::result::Result<TestTensor, String> {
    if t.data_location == Some(DataLocation::External as i32) {
        return Err("external tensor data is not supported in test data".into());
    }
    let dt = t.data_type.unwrap_or(0);
    let elem = plain_elem(dt).ok_or_else(|| format!("element type {} is out of scope", type_name(dt)))?;
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dim {d}")))
        .collect::<std::result::Result<Vec<usize>, String>>()?;
    let n: usize = shape.iter().product();
    let raw = t.raw_data.as_deref();
    fn chunks<const N: usize, T>(raw: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        raw.chunks_exact(N).map(|c| f(c.try_into().expect("N bytes"))).collect()
    }
    let values = match (elem, raw) {
        (ElemType::F32, Some(r)) => Values::Float(chunks(r, f32::from_le_bytes)),
        (ElemType::F32, None) => Values::Float(t.float_data.clone()),
        (ElemType::F16, Some(r)) => Values::Float(chunks(r, |b| f16::from_le_bytes(b).to_f32())),
        (ElemType::F16, None) => Values::Float(
            t.int32_data
                .iter()
                .map(|&b| f16::from_bits(b as u16).to_f32())
                .collect(),
        ),
        (ElemType::I32, Some(r)) => Values::Int(chunks(r, |b| i32::from_le_bytes(b) as i64)),
        (ElemType::I64, Some(r)) => Values::Int(chunks(r, i64::from_le_bytes)),
        (ElemType::I64, None) => Values::Int(t.int64_data.clone()),
        (ElemType::U8, Some(r)) => Values::Int(r.iter().map(|&b| b as i64).collect()),
        (ElemType::I8, Some(r)) => Values::Int(r.iter().map(|&b| b as i8 as i64).collect()),
        (ElemType::Bool, Some(r)) => Values::Bool(r.iter().map(|&b| b != 0).collect()),
        (ElemType::Bool, None) => Values::Bool(t.int32_data.iter().map(|&b| b != 0).collect()),
        (ElemType::I8, None) => Values::Int(t.int32_data.iter().map(|&b| b as i8 as i64).collect()),
        (ElemType::U8, None) => Values::Int(t.int32_data.iter().map(|&b| b as u8 as i64).collect()),
        (_, None) => Values::Int(t.int32_data.iter().map(|&b| b as i64).collect()),
        (other, Some(_)) => return Err(format!("element type {} cannot be decoded", other.name())),
    };
    let len = match &values {
        Values::Float(v) => v.len(),
        Values::Int(v) => v.len(),
        Values::Bool(v) => v.len(),
    };
    if len != n {
        return Err(format!("shape {shape:?} needs {n} elements, the data has {len}"));
    }
    Ok(TestTensor { elem, shape, values })
}

fn read_tensor(path: &Path) -> std::result::Result<(TensorProto, TestTensor), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let t = TensorProto::decode(bytes.as_slice()).map_err(|e| format!("{}: not a TensorProto: {e}", path.display()))?;
    let decoded = decode_tensor(&t).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((t, decoded))
}

/// One test data set: inputs and expected outputs by position.
struct DataSet {
    name: String,
    inputs: Vec<TestTensor>,
    /// The inputs as stored (exact int64 values), for freezing parameter inputs.
    input_protos: Vec<TensorProto>,
    outputs: Vec<TestTensor>,
}

fn numbered(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for k in 0.. {
        let p = dir.join(format!("{prefix}_{k}.pb"));
        if !p.exists() {
            break;
        }
        v.push(p);
    }
    v
}

fn read_data_sets(case_dir: &Path) -> std::result::Result<Vec<DataSet>, String> {
    let mut dirs: Vec<(usize, PathBuf)> = std::fs::read_dir(case_dir)
        .map_err(|e| format!("{}: {e}", case_dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("test_data_set_")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err("the case has no test_data_set_N directory".into());
    }
    dirs.into_iter()
        .map(|(_, d)| {
            let read = |prefix| {
                numbered(&d, prefix)
                    .iter()
                    .map(|p| read_tensor(p))
                    .collect::<std::result::Result<Vec<_>, String>>()
            };
            let (input_protos, inputs) = read("input")?.into_iter().unzip();
            Ok(DataSet {
                name: d.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                inputs,
                input_protos,
                outputs: read("output")?.into_iter().map(|(_, t)| t).collect(),
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Discovery and classification

fn read_model(path: &Path) -> std::result::Result<ModelProto, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    ModelProto::decode(bytes.as_slice()).map_err(|e| format!("{}: not an ONNX model: {e}", path.display()))
}

/// Graph inputs that are fed by the caller (not initializers), in order.
fn fed_inputs(m: &ModelProto) -> Vec<&crate::compiler::frontend::onnx::proto::ValueInfoProto> {
    let Some(g) = &m.graph else { return Vec::new() };
    let init: HashSet<&str> = g.initializer.iter().filter_map(|t| t.name.as_deref()).collect();
    g.input
        .iter()
        .filter(|v| !init.contains(v.name.as_deref().unwrap_or("")))
        .collect()
}

/// `Ok` for a plain-tensor case, else why it is out of scope.
pub fn classify(m: &ModelProto) -> std::result::Result<(), String> {
    let Some(g) = &m.graph else {
        return Err("the model has no graph".into());
    };
    let fed = fed_inputs(m);
    for (kind, list) in [("input", fed), ("output", g.output.iter().collect())] {
        for v in list {
            let name = v.name.as_deref().unwrap_or("");
            match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(type_proto::Value::TensorType(t)) => {
                    let et = t.elem_type.unwrap_or(0);
                    if plain_elem(et).is_none() {
                        return Err(format!("{kind} '{name}' is a {} tensor", type_name(et)));
                    }
                }
                Some(type_proto::Value::SequenceType(_)) => return Err(format!("{kind} '{name}' is a sequence")),
                Some(type_proto::Value::MapType(_)) => return Err(format!("{kind} '{name}' is a map")),
                Some(type_proto::Value::OptionalType(_)) => return Err(format!("{kind} '{name}' is an optional")),
                Some(type_proto::Value::SparseTensorType(_)) => {
                    return Err(format!("{kind} '{name}' is a sparse tensor"))
                }
                Some(type_proto::Value::OpaqueType(_)) => return Err(format!("{kind} '{name}' is opaque")),
                None => return Err(format!("{kind} '{name}' has no type")),
            }
        }
    }
    Ok(())
}

/// Op types of the model's top-level nodes other than `Constant`, in order, without repeats;
/// ops of other domains are written `domain.Op`.
pub fn op_types(m: &ModelProto) -> Vec<String> {
    let mut seen = Vec::new();
    for n in m.graph.iter().flat_map(|g| &g.node) {
        let op = n.op_type.clone().unwrap_or_default();
        let op = match n.domain.as_deref() {
            None | Some("") | Some("ai.onnx") => op,
            Some(d) => format!("{d}.{op}"),
        };
        if op != "Constant" && !seen.contains(&op) {
            seen.push(op);
        }
    }
    if seen.is_empty() && m.graph.as_ref().is_some_and(|g| !g.node.is_empty()) {
        seen.push("Constant".into());
    }
    seen
}

/// The name of the base case of a function-expanded case (`test_elu_expanded_ver18` → `test_elu`).
fn expanded_base(name: &str) -> Option<&str> {
    name.find("_expanded").map(|i| &name[..i])
}

/// Finds the cases under `dir` (directories holding a `model.onnx`), sorted by name, with their
/// op and scope.
pub fn discover(dir: &Path, filter: Option<&str>) -> Result<Vec<Case>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the case directory {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("model.onnx").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if names.is_empty() {
        bail!(
            "{} holds no test cases (DIR/<case>/model.onnx); create them with `python3 scripts/onnx_conformance_data.py {}`",
            dir.display(),
            dir.display()
        );
    }
    // Ops of every case (a filtered expanded case still needs its base case's op).
    let mut ops: HashMap<String, (Vec<String>, std::result::Result<(), String>)> = HashMap::new();
    let wanted = |n: &str| filter.is_none_or(|f| n.contains(f));
    let needed: HashSet<&str> = names
        .iter()
        .filter(|n| wanted(n))
        .flat_map(|n| [n.as_str()].into_iter().chain(expanded_base(n)))
        .collect();
    for n in &names {
        if !needed.contains(n.as_str()) {
            continue;
        }
        let entry = match read_model(&dir.join(n).join("model.onnx")) {
            Ok(m) => (op_types(&m), classify(&m)),
            // Unreadable: left in scope, so that its worker reports the error.
            Err(_) => (Vec::new(), Ok(())),
        };
        ops.insert(n.clone(), entry);
    }
    let single = |n: &str| -> Option<String> {
        let (o, _) = ops.get(n)?;
        match o.len() {
            0 => None,
            1 => Some(o[0].clone()),
            _ => None,
        }
    };
    let mut cases = Vec::new();
    for n in names.iter().filter(|n| wanted(n)) {
        let (o, scope) = ops.get(n).cloned().unwrap_or_else(|| (Vec::new(), Ok(())));
        let op = match expanded_base(n) {
            Some(base) if ops.contains_key(base) => format!(
                "{} (expanded)",
                single(base).unwrap_or_else(|| base.trim_start_matches("test_").to_string())
            ),
            _ => single(n)
                .or_else(|| o.first().cloned())
                .unwrap_or_else(|| "(empty graph)".into()),
        };
        cases.push(Case {
            name: n.clone(),
            dir: dir.join(n),
            op,
            scope,
        });
    }
    Ok(cases)
}

// ---------------------------------------------------------------------------------------------
// Running one case (inside a worker)

/// Fixes every open dim (`dim_param`, unknown, or a missing shape) of the fed graph inputs to the
/// shape of the given test inputs; `names` are the names of the test inputs (the fed inputs of
/// the unfrozen model, in order).
fn fix_input_shapes(m: &mut ModelProto, names: &[String], inputs: &[TestTensor]) {
    let Some(g) = m.graph.as_mut() else { return };
    let init: HashSet<String> = g.initializer.iter().filter_map(|t| t.name.clone()).collect();
    let fed = g
        .input
        .iter_mut()
        .filter(|v| !init.contains(v.name.as_deref().unwrap_or("")));
    for v in fed {
        let name = v.name.as_deref().unwrap_or("");
        let Some(data) = names.iter().position(|n| n == name).and_then(|k| inputs.get(k)) else {
            continue;
        };
        let Some(type_proto::Value::TensorType(tt)) = v.r#type.as_mut().and_then(|t| t.value.as_mut()) else {
            continue;
        };
        let concrete = tt.shape.as_ref().is_some_and(|s| {
            s.dim.len() == data.shape.len()
                && s.dim
                    .iter()
                    .all(|d| matches!(d.value, Some(dimension::Value::DimValue(x)) if x >= 0))
        });
        if !concrete {
            tt.shape = Some(TensorShapeProto {
                dim: data
                    .shape
                    .iter()
                    .map(|&d| Dimension {
                        value: Some(dimension::Value::DimValue(d as i64)),
                        denotation: None,
                    })
                    .collect(),
            });
        }
    }
}

/// Squashes a message onto one line of at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let s = s.split("\n--- shader source ---").next().unwrap_or(s);
    let mut out: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > max {
        out = out.chars().take(max.saturating_sub(1)).collect::<String>() + "…";
    }
    out
}

/// Whether a frontend message declares a limitation (an op feature Kiln does not handle), as
/// opposed to a malformed model or a bug. Inputs that Kiln needs at compile time (axes, shapes,
/// pads given as graph inputs instead of constants) count as such a limitation.
fn is_unsupported_msg(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "not supported",
        "unsupported",
        "not implemented",
        "compile-time constant",
        "computable at compile time",
    ]
    .iter()
    .any(|k| m.contains(k))
}

/// One line for a compiler error. A naga validation failure keeps the kernel, naga's notes and
/// the offending source line, and drops the shader source.
fn summarize_compile_error(msg: &str) -> String {
    let msg = msg.split("\n--- shader source ---").next().unwrap_or(msg);
    if !msg.contains("failed naga validation") {
        return one_line(msg, 300);
    }
    let mut lines = msg.lines();
    let head = lines
        .next()
        .unwrap_or("")
        .trim_end_matches(':')
        .replace("internal compiler bug: generated ", "");
    let mut notes = Vec::new();
    let mut code = None;
    for l in lines {
        let t = l.trim();
        if let Some(n) = t.strip_prefix("= ") {
            notes.push(n.to_string());
        } else if code.is_none() {
            // Source lines look like `18 │     let c3 = rem % 0i;`.
            if let Some((num, src)) = t.split_once('│') {
                if !num.trim().is_empty() && num.trim().chars().all(|c| c.is_ascii_digit()) && !src.trim().is_empty() {
                    code = Some(src.trim().trim_start_matches(['╭', '│', ' ']).to_string());
                }
            }
        }
    }
    let at = code.map(|c| format!(" at \"{c}\"")).unwrap_or_default();
    one_line(&format!("{head} ({}){at}", notes.join("; ")), 300)
}

/// Classifies a frontend error: unsupported (with its op) or error.
fn onnx_outcome(e: &OnnxError, primary_op: &str) -> Outcome {
    let msg = one_line(&e.to_string(), 300);
    match e {
        OnnxError::UnsupportedOp { op_type, domain, .. } => {
            let op = if domain.is_empty() || domain == "ai.onnx" {
                op_type.clone()
            } else {
                format!("{domain}.{op_type}")
            };
            Outcome::Unsupported {
                op,
                reason: "no lowering in the ONNX frontend".into(),
            }
        }
        OnnxError::Opset(_) => Outcome::Unsupported {
            op: primary_op.to_string(),
            reason: msg,
        },
        OnnxError::Node { op_type, msg: m, .. } if is_unsupported_msg(m) => Outcome::Unsupported {
            op: op_type.clone(),
            reason: one_line(m, 300),
        },
        OnnxError::Tensor { .. } | OnnxError::GraphIo { .. } | OnnxError::Model(_) if is_unsupported_msg(&msg) => {
            Outcome::Unsupported {
                op: primary_op.to_string(),
                reason: msg,
            }
        }
        _ => Outcome::Error(format!("load: {msg}")),
    }
}

fn compile_outcome(e: &CompileError) -> Outcome {
    match e {
        CompileError::Unsupported { op, msg, .. } => Outcome::Unsupported {
            op: op.clone(),
            reason: one_line(msg, 300),
        },
        _ => Outcome::Error(format!("compile: {}", summarize_compile_error(&e.to_string()))),
    }
}

fn fmt_val(v: f64) -> String {
    if v.is_finite() && v == v.trunc() && v.abs() < 1e15 {
        format!("{v}")
    } else {
        format!("{v:.6e}")
    }
}

/// Compares one output; `Err` names the first mismatch.
pub fn compare(name: &str, got: &HostTensor, want: &TestTensor) -> std::result::Result<(), String> {
    if got.dtype != want.elem {
        return Err(format!(
            "output '{name}': dtype {}, expected {}",
            got.dtype.name(),
            want.elem.name()
        ));
    }
    if got.shape != want.shape {
        return Err(format!(
            "output '{name}': shape {:?}, expected {:?}",
            got.shape, want.shape
        ));
    }
    let mut bad = 0usize;
    let mut first: Option<(usize, f64, f64)> = None;
    let mut note = |i: usize, a: f64, b: f64| {
        bad += 1;
        first.get_or_insert((i, a, b));
    };
    match &want.values {
        Values::Float(w) => {
            for (i, (&a, &b)) in got.to_f32().iter().zip(w).enumerate() {
                let (a, b) = (a as f64, b as f64);
                let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= ATOL + RTOL * b.abs();
                if !ok {
                    note(i, a, b);
                }
            }
        }
        Values::Int(w) => {
            for (i, (&a, &b)) in got.to_i64().iter().zip(w).enumerate() {
                if a != b {
                    note(i, a as f64, b as f64);
                }
            }
        }
        Values::Bool(w) => {
            for (i, (&a, &b)) in got.to_bool().iter().zip(w).enumerate() {
                if a != b {
                    note(i, a as u8 as f64, b as u8 as f64);
                }
            }
        }
    }
    match first {
        None => Ok(()),
        Some((i, a, b)) => Err(format!(
            "output '{name}': {bad} of {} elements differ; first at flat index {i}: got {}, expected {}",
            got.numel(),
            fmt_val(a),
            fmt_val(b)
        )),
    }
}

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Name prefix of the per-case bundle directories (`<prefix>-<worker pid>-<n>` in the temp dir).
const TMP_PREFIX: &str = "kiln-conformance";

/// Removes a directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one case's attempts share: names, where the model lives, and the adapter.
struct CaseCx<'a> {
    /// The case name (the model's fallback name).
    name: String,
    dir: &'a Path,
    primary_op: &'a str,
    /// The fed graph inputs of the unfrozen model, in order (test inputs are by position).
    input_names: Vec<String>,
    output_names: Vec<String>,
    /// The worker's adapter, shared by every session (`None`: pick one per session).
    runtime: Option<&'a Runtime>,
}

/// How far one attempt (load, compile, run) got.
struct Attempt {
    outcome: Outcome,
    /// A bundle was compiled, so the outcome comes from the session or the run.
    compiled: bool,
    /// The attempt failed before a bundle existed, and not because an op has no lowering or the
    /// opset or domain is unsupported: freezing parameter inputs may get it through.
    retry: bool,
    /// The graph input that the frontend's error names as needed at compile time, if any.
    asked: Option<String>,
}

/// Loads `model`, compiles it, runs it on the data sets `sets` and compares; stage times are
/// added to `phases`.
fn attempt(cx: &CaseCx, model: &ModelProto, sets: &[&DataSet], phases: &mut Phases) -> Attempt {
    let early = |outcome, retry| Attempt {
        outcome,
        compiled: false,
        retry,
        asked: None,
    };
    let t0 = Instant::now();
    let loaded = onnx::load_onnx_proto(model, &cx.name, &Default::default(), Some(cx.dir));
    phases.load += t0.elapsed();
    let loaded = match loaded {
        Ok(m) => m,
        Err(e) => {
            let retry = !matches!(e, OnnxError::UnsupportedOp { .. } | OnnxError::Opset(_));
            // The frontend's hint: "...; it is graph input 'NAME': freeze it ...".
            let msg = e.to_string();
            let asked = msg
                .split_once("it is graph input '")
                .and_then(|(_, rest)| rest.split_once("': freeze it"))
                .map(|(name, _)| name.to_string());
            return Attempt {
                asked,
                ..early(onnx_outcome(&e, cx.primary_op), retry)
            };
        }
    };

    let t1 = Instant::now();
    let compiled = crate::compiler::compile(&loaded, &CompileOptions::default());
    let compiled = match compiled {
        Ok(b) => b,
        Err(e) => {
            phases.compile += t1.elapsed();
            return early(compile_outcome(&e), true);
        }
    };
    let tmp = TempDir(std::env::temp_dir().join(format!(
        "{TMP_PREFIX}-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )));
    let written = crate::compiler::write_bundle(&compiled, &tmp.0);
    phases.compile += t1.elapsed();
    let ran = |outcome| Attempt {
        outcome,
        compiled: true,
        retry: false,
        asked: None,
    };
    if let Err(e) = written {
        return ran(Outcome::Error(format!(
            "writing the bundle: {}",
            one_line(&e.to_string(), 300)
        )));
    }

    let t2 = Instant::now();
    let bundle = match Bundle::load(&tmp.0) {
        Ok(b) => b,
        Err(e) => {
            phases.session += t2.elapsed();
            return ran(Outcome::Error(format!("bundle: {}", one_line(&e.to_string(), 300))));
        }
    };
    let session = match cx.runtime {
        Some(rt) => Session::with_runtime(rt.clone(), &bundle),
        None => Session::new(&bundle, &SessionOptions::default()),
    };
    phases.session += t2.elapsed();
    let mut session = match session {
        Ok(s) => s,
        Err(e) => return ran(Outcome::Error(format!("session: {}", one_line(&e.to_string(), 300)))),
    };

    let t3 = Instant::now();
    let outcome = (|| {
        let manifest_inputs: HashSet<String> = session.manifest().inputs.iter().map(|i| i.name.clone()).collect();
        for set in sets {
            if set.inputs.len() != cx.input_names.len() || set.outputs.len() != cx.output_names.len() {
                return Outcome::Error(format!(
                    "{}: {} inputs and {} outputs, the model has {} and {}",
                    set.name,
                    set.inputs.len(),
                    set.outputs.len(),
                    cx.input_names.len(),
                    cx.output_names.len()
                ));
            }
            // Frozen inputs are no longer inputs of the bundle.
            let inputs: HashMap<String, HostTensor> = cx
                .input_names
                .iter()
                .zip(&set.inputs)
                .filter(|(n, _)| manifest_inputs.contains(*n))
                .map(|(n, t)| (n.clone(), t.to_host()))
                .collect();
            let got: HashMap<String, HostTensor> = match session.run("run", &inputs) {
                Ok(o) => o.into_iter().collect(),
                Err(e) => return Outcome::Error(format!("run: {}", one_line(&e.to_string(), 300))),
            };
            for (n, want) in cx.output_names.iter().zip(&set.outputs) {
                let Some(g) = got.get(n) else {
                    return Outcome::Error(format!("the bundle has no output '{n}'"));
                };
                if let Err(e) = compare(n, g, want) {
                    let ds = if sets.len() > 1 {
                        format!("{}: ", set.name)
                    } else {
                        String::new()
                    };
                    return Outcome::Fail(format!("{ds}{e}"));
                }
            }
        }
        Outcome::Pass
    })();
    phases.run += t3.elapsed();
    ran(outcome)
}

/// Whether a failure says that something must be known at compile time.
fn asks_for_constant(o: &Outcome) -> bool {
    let r = o.reason();
    r.contains("compile-time") || r.contains("compile time")
}

/// The parameter inputs to freeze (indices into the fed inputs): every fed input but the
/// first, which is the op's main operand; the first too when the frontend's error names it
/// (`asked`) as a graph input needed at compile time (ConstantOfShape's shape, Range's start).
fn parameter_inputs(input_names: &[String], asked: Option<&str>) -> Vec<usize> {
    let first_asked = input_names.first().is_some_and(|n| Some(n.as_str()) == asked);
    let from = if first_asked { 0 } else { 1 };
    (from..input_names.len()).collect()
}

/// Marks an outcome of a frozen attempt.
fn with_frozen(o: Outcome, names: &[String]) -> Outcome {
    let tag = format!(
        "with {} frozen: ",
        names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
    );
    match o {
        Outcome::Fail(m) => Outcome::Fail(tag + &m),
        Outcome::Error(m) => Outcome::Error(tag + &m),
        Outcome::Unsupported { op, reason } => Outcome::Unsupported {
            op,
            reason: tag + &reason,
        },
        other => other,
    }
}

/// The retry of a case that failed before it could run: its parameter inputs
/// ([`parameter_inputs`]) frozen to the test data's values in `model` (as read, open dims not
/// fixed yet). Data sets whose parameter values differ are compiled separately, each with the
/// open dims of the other inputs fixed to its first set's shapes. `None` when there is nothing
/// to freeze, the data does not fit the declared inputs, or the retry fails at compile time for
/// a reason that is no more telling than the plain failure's; the plain outcome then stands.
fn run_frozen(
    cx: &CaseCx,
    model: &ModelProto,
    sets: &[DataSet],
    plain: &Attempt,
    phases: &mut Phases,
) -> Option<Outcome> {
    let frozen = parameter_inputs(&cx.input_names, plain.asked.as_deref());
    if frozen.is_empty() || sets.iter().any(|s| s.input_protos.len() != cx.input_names.len()) {
        return None;
    }
    let names: Vec<String> = frozen.iter().map(|&k| cx.input_names[k].clone()).collect();
    // Group the data sets by their parameter values (compared as encoded protos, names aside).
    let key = |s: &DataSet| -> Vec<Vec<u8>> {
        frozen
            .iter()
            .map(|&k| {
                let mut t = s.input_protos[k].clone();
                t.name = None;
                t.encode_to_vec()
            })
            .collect()
    };
    let mut groups: Vec<(Vec<Vec<u8>>, Vec<&DataSet>)> = Vec::new();
    for s in sets {
        let k = key(s);
        match groups.iter_mut().find(|g| g.0 == k) {
            Some(g) => g.1.push(s),
            None => groups.push((k, vec![s])),
        }
    }
    for (_, group) in &groups {
        let values: HashMap<String, TensorProto> = frozen
            .iter()
            .map(|&k| (cx.input_names[k].clone(), group[0].input_protos[k].clone()))
            .collect();
        let mut m = model.clone();
        onnx::freeze_input_protos(&mut m, &values).ok()?;
        fix_input_shapes(&mut m, &cx.input_names, &group[0].inputs);
        let a = attempt(cx, &m, group, phases);
        if !a.outcome.passed() {
            return (a.compiled || asks_for_constant(&plain.outcome)).then(|| with_frozen(a.outcome, &names));
        }
    }
    Some(Outcome::PassFrozen(names))
}

fn run_case_inner(case_dir: &Path, primary_op: &str, runtime: Option<&Runtime>, phases: &mut Phases) -> Outcome {
    let t0 = Instant::now();
    let original = match read_model(&case_dir.join("model.onnx")) {
        Ok(m) => m,
        Err(e) => return Outcome::Error(e),
    };
    let sets = match read_data_sets(case_dir) {
        Ok(s) => s,
        Err(e) => return Outcome::Error(format!("test data: {e}")),
    };
    let cx = CaseCx {
        name: case_dir.file_name().unwrap_or_default().to_string_lossy().into_owned(),
        dir: case_dir,
        primary_op,
        input_names: fed_inputs(&original)
            .iter()
            .map(|v| v.name.clone().unwrap_or_default())
            .collect(),
        output_names: original
            .graph
            .iter()
            .flat_map(|g| &g.output)
            .map(|v| v.name.clone().unwrap_or_default())
            .collect(),
        runtime,
    };
    let mut model = original.clone();
    fix_input_shapes(&mut model, &cx.input_names, &sets[0].inputs);
    phases.load += t0.elapsed();
    let all: Vec<&DataSet> = sets.iter().collect();
    let plain = attempt(&cx, &model, &all, phases);
    if plain.compiled || !plain.retry {
        return plain.outcome;
    }
    run_frozen(&cx, &original, &sets, &plain, phases).unwrap_or(plain.outcome)
}

thread_local! {
    static PANIC_LOCATION: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs one case in this process: never panics (a panic becomes `Outcome::Error`). Sessions use
/// a clone of `runtime` when given (no adapter enumeration per case), else pick an adapter.
pub fn run_case(case_dir: &Path, primary_op: &str, runtime: Option<&Runtime>) -> (Outcome, Phases) {
    let mut phases = Phases::default();
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
        run_case_inner(case_dir, primary_op, runtime, &mut phases)
    }));
    let outcome = r.unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "non-string panic payload".into());
        let at = PANIC_LOCATION
            .with(|l| l.borrow_mut().take())
            .map(|l| format!(" at {l}"))
            .unwrap_or_default();
        Outcome::Error(format!("panic{at}: {}", one_line(&msg, 300)))
    });
    (outcome, phases)
}

// ---------------------------------------------------------------------------------------------
// Worker process

fn sanitize(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

/// The worker loop behind `kiln conformance DIR --worker`: announces the device, then reads
/// `<case dir>\t<op>` lines on stdin and answers each with one result line on stdout.
pub fn worker_main() -> Result<()> {
    // Quiet panics: the message reaches the result line through catch_unwind; keep the location.
    std::panic::set_hook(Box::new(|info| {
        let loc = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
        PANIC_LOCATION.with(|l| *l.borrow_mut() = loc);
    }));
    let stdout = std::io::stdout();
    // One adapter for the worker's life; each case's session gets a clone (and its own device).
    let runtime = Runtime::new();
    let device = match &runtime {
        Ok(r) => {
            let i = r.adapter_info();
            format!(
                "{} ({}, driver {} {})",
                i.name,
                i.backend.to_str(),
                i.driver,
                i.driver_info
            )
        }
        Err(e) => format!("none: {}", one_line(&e.to_string(), 500)),
    };
    let runtime = runtime.ok();
    writeln!(stdout.lock(), "{TAG}-ready\t{}", sanitize(&device))?;
    stdout.lock().flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let Some((dir, op)) = line.split_once('\t') else {
            continue;
        };
        let (outcome, p) = run_case(Path::new(dir), op, runtime.as_ref());
        let (kind, op, msg) = match &outcome {
            Outcome::Pass => ("pass", String::new(), String::new()),
            Outcome::PassFrozen(names) => ("pass-frozen", String::new(), names.join(NAME_SEP)),
            Outcome::Fail(m) => ("fail", String::new(), m.clone()),
            Outcome::Unsupported { op, reason } => ("unsupported", op.clone(), reason.clone()),
            Outcome::Error(m) => ("error", String::new(), m.clone()),
            Outcome::OutOfScope(m) => ("out-of-scope", String::new(), m.clone()),
        };
        let us = |d: Duration| d.as_micros().to_string();
        let mut out = stdout.lock();
        writeln!(
            out,
            "{TAG}\t{kind}\t{}\t{}\t{}\t{}\t{}\t{}",
            sanitize(&op),
            us(p.load),
            us(p.compile),
            us(p.session),
            us(p.run),
            sanitize(&msg)
        )?;
        out.flush()?;
    }
    Ok(())
}

fn parse_reply(line: &str) -> Option<(Outcome, Phases)> {
    let mut f = line.splitn(8, '\t');
    if f.next()? != TAG {
        return None;
    }
    let kind = f.next()?;
    let op = f.next()?.to_string();
    let mut d = || f.next().and_then(|s| s.parse::<u64>().ok()).map(Duration::from_micros);
    let phases = Phases {
        load: d()?,
        compile: d()?,
        session: d()?,
        run: d()?,
    };
    let msg = f.next().unwrap_or("").to_string();
    let outcome = match kind {
        "pass" => Outcome::Pass,
        "pass-frozen" => Outcome::PassFrozen(msg.split(NAME_SEP).map(String::from).collect()),
        "fail" => Outcome::Fail(msg),
        "unsupported" => Outcome::Unsupported { op, reason: msg },
        "out-of-scope" => Outcome::OutOfScope(msg),
        _ => Outcome::Error(msg),
    };
    Some((outcome, phases))
}

enum Event {
    Line(String),
    Eof,
}

/// A worker process as the runner sees it.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Event>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

enum Trouble {
    Timeout,
    Died(String),
}

impl Worker {
    /// Starts `kiln conformance DIR --worker` and waits for its device line.
    fn spawn(dir: &Path) -> Result<(Worker, String)> {
        let exe = std::env::current_exe().context("locating the kiln executable")?;
        let mut child = Command::new(exe)
            .arg("conformance")
            .arg(dir)
            .arg("--worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting a conformance worker process")?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) if l.starts_with(TAG) => {
                        if tx.send(Event::Line(l)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(Event::Eof);
        });
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = stderr_tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if let Ok(mut t) = tail.lock() {
                    t.push_back(line);
                    if t.len() > 20 {
                        t.pop_front();
                    }
                }
            }
        });
        let mut w = Worker {
            child,
            stdin,
            rx,
            stderr_tail,
        };
        match w.rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Event::Line(l)) if l.starts_with(&format!("{TAG}-ready\t")) => {
                let device = l.split_once('\t').map(|x| x.1.to_string()).unwrap_or_default();
                Ok((w, device))
            }
            _ => {
                let why = w.death_note();
                w.kill();
                bail!("a conformance worker did not start: {why}")
            }
        }
    }

    /// Runs one case; `Err` if the worker timed out or died (it must then be replaced).
    fn run(&mut self, case: &Case, timeout: Duration) -> std::result::Result<(Outcome, Phases), Trouble> {
        let line = format!("{}\t{}\n", case.dir.display(), sanitize(&case.op));
        if self
            .stdin
            .write_all(line.as_bytes())
            .and_then(|_| self.stdin.flush())
            .is_err()
        {
            return Err(Trouble::Died(self.death_note()));
        }
        match self.rx.recv_timeout(timeout) {
            Ok(Event::Line(l)) => {
                parse_reply(&l).ok_or_else(|| Trouble::Died(format!("unreadable reply '{}'", one_line(&l, 200))))
            }
            Ok(Event::Eof) | Err(RecvTimeoutError::Disconnected) => Err(Trouble::Died(self.death_note())),
            Err(RecvTimeoutError::Timeout) => Err(Trouble::Timeout),
        }
    }

    /// Why the worker died: its exit status and the last line it wrote on stderr.
    fn death_note(&mut self) -> String {
        // Give the process a moment to finish dying so its status is known.
        let mut status = None;
        for _ in 0..50 {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = match status {
            Some(s) => {
                use std::os::unix::process::ExitStatusExt;
                match (s.code(), s.signal()) {
                    (Some(c), _) => format!("exited with status {c}"),
                    (None, Some(sig)) => format!("killed by signal {sig}{}", signal_name(sig)),
                    _ => s.to_string(),
                }
            }
            None => "stopped answering".into(),
        };
        std::thread::sleep(Duration::from_millis(50)); // let the stderr reader catch up
        let last = self
            .stderr_tail
            .lock()
            .ok()
            .and_then(|t| t.iter().rev().find(|l| !l.trim().is_empty()).cloned())
            .map(|l| format!("; last stderr line: {}", one_line(&l, 200)))
            .unwrap_or_default();
        format!("{status}{last}")
    }

    /// Ends the worker and removes the bundle directories it may have left behind.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let prefix = format!("{}-{}-", TMP_PREFIX, self.child.id());
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        4 => " (SIGILL)",
        6 => " (SIGABRT)",
        7 => " (SIGBUS)",
        8 => " (SIGFPE)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------------
// The runner

/// Runs every case of `opts.dir` (matching the filter) and returns the results.
pub fn run_suite(opts: &Options) -> Result<Summary> {
    let t0 = Instant::now();
    let cases = discover(&opts.dir, opts.filter.as_deref())?;
    let jobs = if opts.jobs == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    } else {
        opts.jobs
    };
    let plain: Vec<usize> = (0..cases.len()).filter(|&i| cases[i].scope.is_ok()).collect();
    let jobs = jobs.clamp(1, plain.len().max(1));

    let mut results: Vec<Option<CaseResult>> = cases
        .iter()
        .map(|c| match &c.scope {
            Ok(()) => None,
            Err(why) => Some(CaseResult {
                case: c.clone(),
                outcome: Outcome::OutOfScope(why.clone()),
                phases: Phases::default(),
            }),
        })
        .collect();

    let bar = progress_bar(plain.len() as u64);
    let queue = Mutex::new(plain.iter().copied().collect::<VecDeque<usize>>());
    let done: Mutex<Vec<(usize, Outcome, Phases)>> = Mutex::new(Vec::new());
    let counts = Mutex::new(Counts::default());
    let device: Mutex<Option<String>> = Mutex::new(None);
    let fatal: Mutex<Option<anyhow::Error>> = Mutex::new(None);

    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                let mut worker: Option<Worker> = None;
                loop {
                    if fatal.lock().map(|f| f.is_some()).unwrap_or(true) {
                        break;
                    }
                    let Some(i) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                        break;
                    };
                    let case = &cases[i];
                    if worker.is_none() {
                        match Worker::spawn(&opts.dir) {
                            Ok((w, dev)) => {
                                if let Some(why) = dev.strip_prefix("none: ") {
                                    w.kill();
                                    *fatal.lock().expect("lock") =
                                        Some(anyhow!("no GPU adapter for the conformance run: {why}"));
                                    break;
                                }
                                device.lock().expect("lock").get_or_insert(dev);
                                worker = Some(w);
                            }
                            Err(e) => {
                                *fatal.lock().expect("lock") = Some(e);
                                break;
                            }
                        }
                    }
                    let w = worker.as_mut().expect("started above");
                    let started = Instant::now();
                    let (outcome, phases) = match w.run(case, opts.timeout) {
                        Ok(r) => r,
                        Err(trouble) => {
                            let w = worker.take().expect("present");
                            let msg = match trouble {
                                Trouble::Timeout => {
                                    format!("timeout: no result after {:.0?}", opts.timeout)
                                }
                                Trouble::Died(why) => {
                                    format!("crash: the worker process died ({why})")
                                }
                            };
                            w.kill();
                            let run = started.elapsed();
                            (
                                Outcome::Error(msg),
                                Phases {
                                    run,
                                    ..Phases::default()
                                },
                            )
                        }
                    };
                    if let Ok(mut c) = counts.lock() {
                        c.add(&outcome);
                        bar.set_message(format!(
                            "pass {} ({} frozen) fail {} unsupported {} error {}",
                            c.pass, c.pass_frozen, c.fail, c.unsupported, c.error
                        ));
                    }
                    bar.inc(1);
                    if bar.is_hidden() {
                        let pos = bar.position();
                        let len = bar.length().unwrap_or(0);
                        if pos.is_multiple_of(100) || pos == len {
                            eprintln!(
                                "conformance: {pos}/{len} cases, {:.0?} ({})",
                                t0.elapsed(),
                                bar.message()
                            );
                        }
                    }
                    done.lock().expect("lock").push((i, outcome, phases));
                }
                if let Some(w) = worker {
                    w.kill();
                }
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = fatal.into_inner().expect("lock") {
        return Err(e);
    }
    for (i, outcome, phases) in done.into_inner().expect("lock") {
        results[i] = Some(CaseResult {
            case: cases[i].clone(),
            outcome,
            phases,
        });
    }
    let results: Vec<CaseResult> = results.into_iter().map(|r| r.expect("every case ran")).collect();
    let onnx_version = std::fs::read_to_string(opts.dir.join("ONNX_VERSION"))
        .ok()
        .map(|s| s.trim().to_string());
    Ok(Summary {
        results,
        device: device
            .into_inner()
            .expect("lock")
            .unwrap_or_else(|| "none (no plain case ran)".into()),
        wall: t0.elapsed(),
        jobs,
        onnx_version,
    })
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:32}] {pos}/{len} eta {eta} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// `kiln conformance`: runs the suite, prints totals, writes the report, applies `--min-pass`.
pub fn run_cli(opts: &Options) -> Result<()> {
    let summary = run_suite(opts)?;
    let c = summary.counts();
    let p = summary.phase_totals();
    println!(
        "{} cases: {} plain, {} out of scope; plain: {} passed ({} with frozen parameter inputs), {} failed, {} unsupported, {} errors ({:.1}% pass)",
        summary.results.len(),
        c.plain,
        c.out_of_scope,
        c.pass,
        c.pass_frozen,
        c.fail,
        c.unsupported,
        c.error,
        c.pass_rate()
    );
    println!(
        "wall time {:.1?} with {} worker(s) on {}; per-stage totals: load {:.1?}, compile {:.1?}, session {:.1?}, run {:.1?}",
        summary.wall, summary.jobs, summary.device, p.load, p.compile, p.session, p.run
    );
    for (cause, n) in top_causes(&summary).into_iter().take(15) {
        println!("  {n:5}  {cause}");
    }
    if let Some(path) = &opts.report {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, render_report(&summary, &opts.command_line))
            .with_context(|| format!("writing the report {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    if let Some(min) = opts.min_pass {
        if c.pass < min {
            bail!(
                "{} plain cases passed ({} with frozen parameter inputs), fewer than --min-pass {min}",
                c.pass,
                c.pass_frozen
            );
        }
        println!(
            "min-pass gate: {} >= {min} (passes with frozen parameter inputs count)",
            c.pass
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Report

/// Replaces quoted names and numbers so that similar messages group together.
fn normalize(msg: &str) -> String {
    let mut out = String::new();
    let mut chars = msg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // A quote that opens a name (not an apostrophe as in "Kiln's").
            '\'' if !out.chars().last().is_some_and(|p| p.is_alphanumeric()) => {
                out.push_str("'…'");
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                }
            }
            '0'..='9' => {
                out.push('N');
                while chars.peek().is_some_and(|d| d.is_ascii_digit() || *d == '.') {
                    chars.next();
                }
            }
            '[' => {
                out.push_str("[…]");
                let mut depth = 1;
                for d in chars.by_ref() {
                    match d {
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => out.push(c),
        }
    }
    one_line(&out, 160)
}

/// The cause of a non-passing plain case, for grouping.
fn cause(r: &CaseResult) -> Option<String> {
    Some(match &r.outcome {
        Outcome::Pass | Outcome::PassFrozen(_) | Outcome::OutOfScope(_) => return None,
        Outcome::Unsupported { op, reason } => {
            if reason.contains("opset") && reason.contains(&format!("{MIN_OPSET}..={MAX_OPSET}")) {
                format!("unsupported: default-domain opset above {MAX_OPSET}")
            } else if reason.contains("no lowering in the ONNX frontend") {
                format!("unsupported op {op}")
            } else {
                format!("unsupported: {op}: {}", normalize(reason))
            }
        }
        Outcome::Fail(m) => {
            let what = if m.contains(": shape ") {
                "wrong shape"
            } else if m.contains(": dtype ") {
                "wrong dtype"
            } else {
                "wrong values"
            };
            format!("{what} in {}", r.case.op)
        }
        Outcome::Error(m) => format!("error: {}", normalize(m.split(" at \"").next().unwrap_or(m))),
    })
}

/// Non-passing plain cases grouped by cause, largest group first.
pub fn top_causes(s: &Summary) -> Vec<(String, usize)> {
    let mut m: BTreeMap<String, usize> = BTreeMap::new();
    for r in &s.results {
        if let Some(c) = cause(r) {
            *m.entry(c).or_default() += 1;
        }
    }
    let mut v: Vec<(String, usize)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('<', "&lt;").replace('>', "&gt;")
}

/// Renders the Markdown report: totals, causes, a table per op, and every non-passing case.
pub fn render_report(s: &Summary, command_line: &str) -> String {
    use std::fmt::Write as _;
    let c = s.counts();
    let p = s.phase_totals();
    let mut o = String::new();
    let _ = writeln!(o, "# ONNX backend conformance\n");
    let _ = writeln!(
        o,
        "The ONNX backend node tests{}, materialized by `scripts/onnx_conformance_data.py`, compiled \
         with Kiln's default options (opt-level 2, target `webgpu-default`) and run on the GPU. \
         Float outputs must match within `|a-b| <= {ATOL:e} + {RTOL:e}*|b|` (NaN matches NaN), \
         integer and bool outputs exactly, shapes and dtypes exactly. Open input dims are fixed to \
         the test data's shapes. Generated by `kiln conformance` (see `src/conformance.rs`); do not \
         edit by hand.\n\n\
         Node tests often pass op parameters (axes, shapes, pads, scales, k, ...) as graph inputs, \
         which an ahead-of-time compiler needs at compile time. A case that fails before it runs \
         (a load or compile error or an unsupported feature, other than an op without lowering or an \
         unsupported opset) is retried once with its *parameter inputs* frozen to the test data's \
         values, as `kiln compile --freeze` does: every graph input except the first, which is the \
         op's main operand (the first too when the error names it as needed at compile time, as \
         for ConstantOfShape). Data sets with different parameter values are compiled separately. \
         Such a pass is counted as *passed with frozen parameter inputs*: it is part of the pass \
         count (and of the `--min-pass` gate) and shown separately below.\n",
        s.onnx_version
            .as_deref()
            .map(|v| format!(" of onnx {v}"))
            .unwrap_or_default()
    );
    let _ = writeln!(o, "- Command: `{command_line}`");
    let _ = writeln!(o, "- Device: {}", s.device);
    let _ = writeln!(
        o,
        "- Wall time: {:.0} s with {} worker process(es); summed stage times: load {:.0} s, compile {:.0} s, \
         session (device + pipelines) {:.0} s, run + compare {:.0} s\n",
        s.wall.as_secs_f64(),
        s.jobs,
        p.load.as_secs_f64(),
        p.compile.as_secs_f64(),
        p.session.as_secs_f64(),
        p.run.as_secs_f64()
    );
    let _ = writeln!(o, "## Totals\n");
    let _ = writeln!(o, "| | cases |\n|---|---:|");
    let _ = writeln!(o, "| all cases | {} |", s.results.len());
    let _ = writeln!(
        o,
        "| out of scope (not plain f32/f16/i32/i64/bool/u8/i8 tensors) | {} |",
        c.out_of_scope
    );
    let _ = writeln!(o, "| **plain cases** | **{}** |", c.plain);
    let _ = writeln!(o, "| passed (the count `--min-pass` checks) | {} |", c.pass);
    let _ = writeln!(o, "| · passed as is | {} |", c.pass - c.pass_frozen);
    let _ = writeln!(o, "| · passed with frozen parameter inputs | {} |", c.pass_frozen);
    let _ = writeln!(o, "| failed (wrong dtype, shape or values) | {} |", c.fail);
    let _ = writeln!(
        o,
        "| unsupported (op or feature declined, by name) | {} |",
        c.unsupported
    );
    let _ = writeln!(o, "| errors (compile, runtime, panic, crash, time-out) | {} |", c.error);
    let _ = writeln!(o, "| **pass rate (of plain cases)** | **{:.1}%** |\n", c.pass_rate());

    let _ = writeln!(o, "## Causes of the non-passing plain cases\n");
    let _ = writeln!(o, "| cases | cause |\n|---:|---|");
    for (cause, n) in top_causes(s) {
        let _ = writeln!(o, "| {n} | {} |", md_escape(&cause));
    }
    let _ = writeln!(o);

    let _ = writeln!(o, "## Per op\n");
    let _ = writeln!(
        o,
        "The op of a case is its model's only non-`Constant` op; `(expanded)` marks the \
         function-expanded variant of an op's cases (its graph is the op's function body).\n"
    );
    let _ = writeln!(o, "| op | plain | passed | of which frozen | failed | unsupported | errors | out of scope |\n|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut per_op: BTreeMap<&str, Counts> = BTreeMap::new();
    for r in &s.results {
        per_op.entry(r.case.op.as_str()).or_default().add(&r.outcome);
    }
    for (op, k) in &per_op {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            md_escape(op),
            k.plain,
            k.pass,
            k.pass_frozen,
            k.fail,
            k.unsupported,
            k.error,
            k.out_of_scope
        );
    }
    let _ = writeln!(o);

    let mut slow: Vec<&CaseResult> = s.results.iter().filter(|r| r.case.scope.is_ok()).collect();
    slow.sort_by_key(|r| std::cmp::Reverse(r.phases.total()));
    let _ = writeln!(o, "## Slowest cases\n");
    let _ = writeln!(
        o,
        "| case | total ms | load | compile | session | run |\n|---|---:|---:|---:|---:|---:|"
    );
    let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e3);
    for r in slow.iter().take(10) {
        let p = &r.phases;
        let _ = writeln!(
            o,
            "| `{}` | {} | {} | {} | {} | {} |",
            r.case.name,
            ms(p.total()),
            ms(p.load),
            ms(p.compile),
            ms(p.session),
            ms(p.run)
        );
    }
    let _ = writeln!(o);

    for (title, kind) in [
        ("Passed with frozen parameter inputs", "pass-frozen"),
        ("Failed cases", "fail"),
        ("Errors", "error"),
        ("Unsupported", "unsupported"),
    ] {
        let list: Vec<&CaseResult> = s.results.iter().filter(|r| r.outcome.kind() == kind).collect();
        let _ = writeln!(o, "## {title} ({})\n", list.len());
        for r in list {
            let _ = writeln!(
                o,
                "- `{}` ({}): {}",
                r.case.name,
                md_escape(&r.case.op),
                md_escape(&r.outcome.reason())
            );
        }
        let _ = writeln!(o);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(dt: DataType, dims: &[i64]) -> TensorProto {
        TensorProto {
            dims: dims.to_vec(),
            data_type: Some(dt as i32),
            ..Default::default()
        }
    }

    #[test]
    fn decodes_raw_and_typed_data() {
        let mut t = tensor(DataType::Float, &[2]);
        t.raw_data = Some([1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect());
        assert_eq!(decode_tensor(&t).unwrap().values, Values::Float(vec![1.5, -2.0]));
        let mut t = tensor(DataType::Int64, &[1, 2]);
        t.int64_data = vec![i64::MAX, -3];
        let d = decode_tensor(&t).unwrap();
        assert_eq!(
            (d.elem, d.shape.clone(), d.values.clone()),
            (ElemType::I64, vec![1, 2], Values::Int(vec![i64::MAX, -3]))
        );
        let mut t = tensor(DataType::Float16, &[1]);
        t.int32_data = vec![f16::from_f32(0.5).to_bits() as i32];
        assert_eq!(decode_tensor(&t).unwrap().values, Values::Float(vec![0.5]));
        let mut t = tensor(DataType::Bool, &[3]);
        t.raw_data = Some(vec![1, 0, 1]);
        assert_eq!(decode_tensor(&t).unwrap().values, Values::Bool(vec![true, false, true]));
        let mut t = tensor(DataType::Int8, &[1]);
        t.raw_data = Some(vec![0xff]);
        assert_eq!(decode_tensor(&t).unwrap().values, Values::Int(vec![-1]));
        assert!(decode_tensor(&tensor(DataType::Double, &[0]))
            .unwrap_err()
            .contains("DOUBLE"));
        let mut t = tensor(DataType::Float, &[3]);
        t.float_data = vec![1.0];
        assert!(decode_tensor(&t).unwrap_err().contains("3 elements"));
    }

    #[test]
    fn compares_with_tolerance_and_exactly() {
        let want = TestTensor {
            elem: ElemType::F32,
            shape: vec![3],
            values: Values::Float(vec![1000.0, f32::NAN, 0.0]),
        };
        assert!(compare("y", &HostTensor::from_f32(&[3], &[1000.9, f32::NAN, 5e-5]), &want).is_ok());
        let e = compare("y", &HostTensor::from_f32(&[3], &[1001.2, f32::NAN, 0.0]), &want).unwrap_err();
        assert!(e.contains("1 of 3") && e.contains("index 0"), "{e}");
        assert!(compare("y", &HostTensor::from_f32(&[3], &[1000.0, 0.0, 0.0]), &want).is_err());
        assert!(
            compare("y", &HostTensor::from_f32(&[1, 3], &[1000.0, f32::NAN, 0.0]), &want)
                .unwrap_err()
                .contains("shape")
        );
        let want = TestTensor {
            elem: ElemType::I64,
            shape: vec![2],
            values: Values::Int(vec![5, -7]),
        };
        assert!(compare("z", &HostTensor::from_i64(&[2], &[5, -7]), &want).is_ok());
        assert!(compare("z", &HostTensor::from_i64(&[2], &[5, -6]), &want).is_err());
        assert!(compare("z", &HostTensor::from_i32(&[2], &[5, -7]), &want)
            .unwrap_err()
            .contains("dtype"));
    }

    #[test]
    fn groups_messages() {
        assert_eq!(
            normalize("node 'n0' (Foo): axis 3 of [2, 3] is bad"),
            "node '…' (Foo): axis N of […] is bad"
        );
        assert_eq!(
            normalize("output 1 'y' is not supported by Kiln's lowering"),
            "output N '…' is not supported by Kiln's lowering"
        );
        let naga = "internal compiler bug: generated WGSL for kernel 'k' failed naga validation:\nerror: Entry point main at Compute is invalid\n   ┌─ wgsl:18:22\n   │\n18 │             let c3 = rem % 0i;\n   │                      ^^^^^^^^ naga::ir::Expression [20]\n   │\n   = Expression [20] is invalid\n   = Division by zero\n--- shader source ---\nfn main() {}";
        assert_eq!(
            summarize_compile_error(naga),
            "WGSL for kernel 'k' failed naga validation (Expression [20] is invalid; Division by zero) at \"let c3 = rem % 0i;\""
        );
        assert_eq!(expanded_base("test_elu_expanded_ver18"), Some("test_elu"));
        assert_eq!(expanded_base("test_elu"), None);
    }

    #[test]
    fn worker_reply_round_trips() {
        let line = format!("{TAG}\tunsupported\tConv\t1\t2\t3\t4\tno lowering");
        let (o, p) = parse_reply(&line).unwrap();
        assert_eq!(
            o,
            Outcome::Unsupported {
                op: "Conv".into(),
                reason: "no lowering".into()
            }
        );
        assert_eq!(p.total(), Duration::from_micros(10));
        assert!(parse_reply("noise").is_none());
        let line = format!("{TAG}\tpass-frozen\t\t1\t2\t3\t4\tshape{NAME_SEP}axes, b");
        assert_eq!(
            parse_reply(&line).unwrap().0,
            Outcome::PassFrozen(vec!["shape".into(), "axes, b".into()])
        );
    }

    #[test]
    fn parameter_inputs_skip_the_main_operand_unless_asked() {
        let names: Vec<String> = ["x", "shape", "axes"].map(String::from).to_vec();
        assert_eq!(parameter_inputs(&names, None), vec![1, 2]);
        assert_eq!(parameter_inputs(&names, Some("axes")), vec![1, 2]);
        assert_eq!(parameter_inputs(&names, Some("x")), vec![0, 1, 2]);
        assert_eq!(parameter_inputs(&names[..1], None), Vec::<usize>::new());
        let f = with_frozen(Outcome::Fail("output 'y': bad".into()), &names[1..]);
        assert_eq!(f.reason(), "with 'shape', 'axes' frozen: output 'y': bad");
    }
}
