//! Running one case inside a worker process: load, compile, run on the GPU, compare; the
//! frozen retry; and how errors become outcomes, by their types only.
//!
//! Frozen inputs: node tests often pass op parameters (axes, shapes, pads, scales, `k`) as graph
//! inputs, which an ahead-of-time compiler needs at compile time. When the frontend says so with
//! [`OnnxError::NeedsConstant`] naming the graph input that feeds the slot (directly or through
//! a computation on its value), the case is loaded
//! again with that one input frozen to the test data's value (what `kiln compile --freeze` does,
//! and what a user following the message would do); this repeats while each new error names
//! another graph input. Data sets whose frozen values differ are compiled separately. Any other
//! error is final: no retry.

use crate::case::{fed_inputs, read_data_sets, read_model, read_tolerance, DataSet, TestTensor};
use crate::compare::{compare, Tolerance};
use crate::outcome::{Outcome, Phases};
use kiln_compiler::frontend::onnx::proto::tensor_shape_proto::{dimension, Dimension};
use kiln_compiler::frontend::onnx::proto::{type_proto, ModelProto, TensorProto, TensorShapeProto};
use kiln_compiler::frontend::onnx::{self, OnnxError};
use kiln_compiler::{CompileError, CompileOptions};
use kiln_runtime::{Bundle, HostTensor, Runtime, Session, SessionOptions};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

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
pub(crate) fn one_line(s: &str, max: usize) -> String {
    let s = s.split("\n--- shader source ---").next().unwrap_or(s);
    let mut out: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > max {
        out = out.chars().take(max.saturating_sub(1)).collect::<String>() + "…";
    }
    out
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

/// How a frontend error ends a case: `Ok(name)` asks to freeze graph input `name` and try again;
/// `Err` is the outcome. Decided by the error's variant, never by its text.
fn onnx_outcome(e: &OnnxError, primary_op: &str, fed: &[String]) -> Result<String, Outcome> {
    let msg = || one_line(&e.to_string(), 300);
    Err(match e {
        OnnxError::NeedsConstant {
            graph_input: Some(name),
            ..
        } if fed.contains(name) => return Ok(name.clone()),
        // The value is computed inside the graph: nothing a user could freeze.
        OnnxError::NeedsConstant { op_type, .. } => Outcome::Unsupported {
            op: op_type.clone(),
            reason: msg(),
        },
        OnnxError::UnsupportedOp { op_type, domain, .. } => Outcome::Unsupported {
            op: if domain.is_empty() || domain == "ai.onnx" {
                op_type.clone()
            } else {
                format!("{domain}.{op_type}")
            },
            reason: "no lowering in the ONNX frontend".into(),
        },
        OnnxError::Unsupported { op_type, .. } => Outcome::Unsupported {
            op: op_type.clone(),
            reason: msg(),
        },
        OnnxError::Opset(_) => Outcome::Unsupported {
            op: primary_op.to_string(),
            reason: msg(),
        },
        _ => Outcome::Error(format!("load: {}", msg())),
    })
}

/// How a compiler error ends a case: a declined op is unsupported, anything else an error.
fn compile_outcome(e: &CompileError) -> Outcome {
    match e {
        CompileError::Unsupported { op, msg, .. } => Outcome::Unsupported {
            op: op.clone(),
            reason: one_line(msg, 300),
        },
        _ => Outcome::Error(format!("compile: {}", summarize_compile_error(&e.to_string()))),
    }
}

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Name prefix of the per-case bundle directories (`<prefix>-<worker pid>-<n>` in the temp dir).
pub(crate) const TMP_PREFIX: &str = "kiln-conformance";

/// Removes a directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one case's attempts share: names, where the model lives, the tolerance and the adapter.
struct CaseCx<'a> {
    /// The case name (the model's fallback name).
    name: String,
    dir: &'a Path,
    primary_op: &'a str,
    /// The fed graph inputs of the unfrozen model, in order (test inputs are by position).
    input_names: Vec<String>,
    output_names: Vec<String>,
    tolerance: Tolerance,
    /// The worker's adapter, shared by every session (`None`: pick one per session).
    runtime: Option<&'a Runtime>,
}

/// How one attempt (load, compile, run) ended.
enum Attempt {
    /// The frontend asks for this graph input as a compile-time constant.
    Freeze(String),
    /// Final.
    Done(Outcome),
}

/// Loads `model`, compiles it, runs it on the data sets `sets` and compares; stage times are
/// added to `phases`.
fn attempt(cx: &CaseCx, model: &ModelProto, sets: &[&DataSet], phases: &mut Phases) -> Attempt {
    let t0 = Instant::now();
    let loaded = onnx::load_onnx_proto(model, &cx.name, &Default::default(), Some(cx.dir));
    phases.load += t0.elapsed();
    let loaded = match loaded {
        Ok(m) => m,
        Err(e) => {
            return match onnx_outcome(&e, cx.primary_op, &cx.input_names) {
                Ok(name) => Attempt::Freeze(name),
                Err(o) => Attempt::Done(o),
            }
        }
    };
    Attempt::Done(compile_and_run(cx, &loaded, sets, phases))
}

fn compile_and_run(cx: &CaseCx, loaded: &kiln_compiler::Model, sets: &[&DataSet], phases: &mut Phases) -> Outcome {
    let t1 = Instant::now();
    let compiled = match kiln_compiler::compile(loaded, &CompileOptions::default()) {
        Ok(b) => b,
        Err(e) => {
            phases.compile += t1.elapsed();
            return compile_outcome(&e);
        }
    };
    let tmp = TempDir(std::env::temp_dir().join(format!(
        "{TMP_PREFIX}-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )));
    let written = kiln_compiler::write_bundle(&compiled, &tmp.0);
    phases.compile += t1.elapsed();
    if let Err(e) = written {
        return Outcome::Error(format!("writing the bundle: {}", one_line(&e.to_string(), 300)));
    }

    let t2 = Instant::now();
    let bundle = match Bundle::load(&tmp.0) {
        Ok(b) => b,
        Err(e) => {
            phases.session += t2.elapsed();
            return Outcome::Error(format!("bundle: {}", one_line(&e.to_string(), 300)));
        }
    };
    let session = match cx.runtime {
        Some(rt) => Session::with_runtime(rt.clone(), &bundle),
        None => Session::new(&bundle, &SessionOptions::default()),
    };
    phases.session += t2.elapsed();
    let mut session = match session {
        Ok(s) => s,
        Err(e) => return Outcome::Error(format!("session: {}", one_line(&e.to_string(), 300))),
    };

    let t3 = Instant::now();
    let outcome = run_sets(cx, &mut session, sets);
    phases.run += t3.elapsed();
    outcome
}

/// Runs every data set on the session and compares its outputs.
fn run_sets(cx: &CaseCx, session: &mut Session, sets: &[&DataSet]) -> Outcome {
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
            if let Err(e) = compare(n, g, want, cx.tolerance) {
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
}

/// Runs a case, freezing graph inputs one at a time as the frontend asks for them (see the
/// module documentation).
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
    let tolerance = match read_tolerance(case_dir) {
        Ok(t) => t,
        Err(e) => return Outcome::Error(format!("tolerance: {e}")),
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
        tolerance,
        runtime,
    };
    phases.load += t0.elapsed();
    if sets.iter().any(|s| s.input_protos.len() != cx.input_names.len()) {
        let s = sets
            .iter()
            .find(|s| s.input_protos.len() != cx.input_names.len())
            .expect("found");
        return Outcome::Error(format!(
            "{}: {} inputs, the model has {} fed graph inputs",
            s.name,
            s.input_protos.len(),
            cx.input_names.len()
        ));
    }
    // Indices (into the fed inputs) of the inputs frozen so far, in the order they were asked for.
    let mut frozen: Vec<usize> = Vec::new();
    'retry: loop {
        let names: Vec<String> = frozen.iter().map(|&k| cx.input_names[k].clone()).collect();
        for group in group_by_frozen_values(&sets, &frozen) {
            let mut m = original.clone();
            if !frozen.is_empty() {
                let values: HashMap<String, TensorProto> = frozen
                    .iter()
                    .map(|&k| (cx.input_names[k].clone(), group[0].input_protos[k].clone()))
                    .collect();
                if let Err(e) = onnx::freeze_input_protos(&mut m, &values) {
                    return Outcome::Error(format!("freezing: {}", one_line(&e.to_string(), 300))).with_frozen(&names);
                }
            }
            fix_input_shapes(&mut m, &cx.input_names, &group[0].inputs);
            match attempt(&cx, &m, &group, phases) {
                Attempt::Freeze(name) => {
                    let k = cx.input_names.iter().position(|n| *n == name).expect("a fed input");
                    if frozen.contains(&k) {
                        return Outcome::Error(format!("the frontend asks again for frozen input '{name}'"))
                            .with_frozen(&names);
                    }
                    frozen.push(k);
                    continue 'retry;
                }
                Attempt::Done(o) if o.passed() => {}
                Attempt::Done(o) => return o.with_frozen(&names),
            }
        }
        return if names.is_empty() {
            Outcome::Pass
        } else {
            Outcome::PassFrozen(names)
        };
    }
}

/// The data sets grouped by the values of the inputs in `frozen` (compared as encoded protos,
/// names aside), in order of first appearance; one group of all sets when nothing is frozen.
fn group_by_frozen_values<'s>(sets: &'s [DataSet], frozen: &[usize]) -> Vec<Vec<&'s DataSet>> {
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
    groups.into_iter().map(|(_, g)| g).collect()
}

thread_local! {
    pub(crate) static PANIC_LOCATION: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_needs_constant_error_naming_a_fed_input_asks_to_freeze() {
        let fed = vec!["x".to_string(), "shape".to_string()];
        let needs = |graph_input: Option<&str>| OnnxError::NeedsConstant {
            node: "r".into(),
            op_type: "Reshape".into(),
            input: 1,
            msg: "input 1 ('shape') must be known at compile time".into(),
            graph_input: graph_input.map(String::from),
        };
        assert_eq!(
            onnx_outcome(&needs(Some("shape")), "Reshape", &fed),
            Ok("shape".to_string())
        );
        // Computed inside the graph: nothing to freeze, Kiln declines.
        assert!(matches!(
            onnx_outcome(&needs(None), "Reshape", &fed),
            Err(Outcome::Unsupported { ref op, .. }) if op == "Reshape"
        ));
        // A node error whose text merely mentions compile time is an error, not a retry.
        let e = OnnxError::Node {
            node: "r".into(),
            op_type: "Reshape".into(),
            msg: "input 1 ('shape') must be a compile-time constant; it is graph input 'shape'".into(),
        };
        assert!(matches!(onnx_outcome(&e, "Reshape", &fed), Err(Outcome::Error(_))));
        let e = OnnxError::Unsupported {
            node: "p".into(),
            op_type: "MaxPool".into(),
            msg: "output 1 ('Indices') is not supported".into(),
        };
        assert!(matches!(
            onnx_outcome(&e, "MaxPool", &fed),
            Err(Outcome::Unsupported { .. })
        ));
        let e = OnnxError::UnsupportedOp {
            op_type: "Foo".into(),
            node: "f".into(),
            domain: "com.example".into(),
        };
        assert!(matches!(
            onnx_outcome(&e, "Foo", &fed),
            Err(Outcome::Unsupported { ref op, .. }) if op == "com.example.Foo"
        ));
    }

    #[test]
    fn summarizes_naga_failures() {
        let naga = "internal compiler bug: generated WGSL for kernel 'k' failed naga validation:\nerror: Entry point main at Compute is invalid\n   ┌─ wgsl:18:22\n   │\n18 │             let c3 = rem % 0i;\n   │                      ^^^^^^^^ naga::ir::Expression [20]\n   │\n   = Expression [20] is invalid\n   = Division by zero\n--- shader source ---\nfn main() {}";
        assert_eq!(
            summarize_compile_error(naga),
            "WGSL for kernel 'k' failed naga validation (Expression [20] is invalid; Division by zero) at \"let c3 = rem % 0i;\""
        );
    }

    #[test]
    fn frozen_outcomes_name_the_inputs() {
        let f = Outcome::Fail("output 'y': bad".into()).with_frozen(&["shape".into(), "axes".into()]);
        assert_eq!(f.reason(), "with 'shape', 'axes' frozen: output 'y': bad");
        assert_eq!(Outcome::Pass.with_frozen(&["a".into()]), Outcome::Pass);
    }
}
