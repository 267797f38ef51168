//! The cases on disk: discovery (`DIR/<case>/model.onnx`), scope (plain tensors or not), the
//! op a case tests, its test data sets (`test_data_set_N/{input,output}_K.pb`) and its
//! tolerance (`tolerance.txt`, written by `scripts/onnx_conformance_data.py`).

use crate::compare::Tolerance;
use anyhow::{bail, Context, Result};
use half::f16;
use kiln_abi::ElemType;
use kiln_compiler::frontend::onnx::proto::tensor_proto::{DataLocation, DataType};
use kiln_compiler::frontend::onnx::proto::{type_proto, ModelProto, TensorProto, ValueInfoProto};
use kiln_runtime::HostTensor;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

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
    /// The tolerance of its float outputs ([`TOLERANCE_FILE`]; ONNX's default when absent or
    /// unreadable, in which case the run reports the file's error).
    pub tolerance: Tolerance,
}

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
pub struct DataSet {
    /// The directory name (`test_data_set_N`).
    pub name: String,
    /// Input tensors by position.
    pub inputs: Vec<TestTensor>,
    /// The inputs as stored (exact int64 values), for freezing parameter inputs.
    pub input_protos: Vec<TensorProto>,
    /// Expected outputs by position.
    pub outputs: Vec<TestTensor>,
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

/// Reads every `test_data_set_N` of a case, in order of N.
pub fn read_data_sets(case_dir: &Path) -> std::result::Result<Vec<DataSet>, String> {
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

/// Reads and decodes a `model.onnx`.
pub fn read_model(path: &Path) -> std::result::Result<ModelProto, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    ModelProto::decode(bytes.as_slice()).map_err(|e| format!("{}: not an ONNX model: {e}", path.display()))
}

/// Graph inputs that are fed by the caller (not initializers), in order.
pub fn fed_inputs(m: &ModelProto) -> Vec<&ValueInfoProto> {
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
            tolerance: read_tolerance(&dir.join(n)).unwrap_or(Tolerance::ONNX),
        });
    }
    Ok(cases)
}

/// File in a case directory that states the case's own tolerance (`rtol X` and `atol Y` lines),
/// as the ONNX test case declares it; ONNX's defaults apply when it is absent.
pub const TOLERANCE_FILE: &str = "tolerance.txt";

/// Reads a case's [`TOLERANCE_FILE`]; [`Tolerance::ONNX`] when the file is absent.
pub fn read_tolerance(case_dir: &Path) -> std::result::Result<Tolerance, String> {
    let path = case_dir.join(TOLERANCE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tolerance::ONNX),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    parse_tolerance(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the text of a [`TOLERANCE_FILE`]; a missing key keeps ONNX's default.
pub fn parse_tolerance(text: &str) -> std::result::Result<Tolerance, String> {
    let mut tol = Tolerance::ONNX;
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("line '{line}': expected 'rtol VALUE' or 'atol VALUE'"))?;
        let v: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("line '{line}': '{}' is not a non-negative number", value.trim()))?;
        match key {
            "rtol" => tol.rtol = v,
            "atol" => tol.atol = v,
            other => return Err(format!("line '{line}': unknown key '{other}' (expected rtol or atol)")),
        }
    }
    Ok(tol)
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
    fn tolerance_file_overrides_onnx_defaults() {
        assert_eq!(parse_tolerance("").unwrap(), Tolerance::ONNX);
        assert_eq!(
            parse_tolerance("# from the ONNX test case\nrtol 0.01\natol 1e-5\n").unwrap(),
            Tolerance { rtol: 0.01, atol: 1e-5 }
        );
        assert_eq!(parse_tolerance("atol 0.5").unwrap().rtol, 1e-3);
        assert!(parse_tolerance("rtol -1")
            .unwrap_err()
            .contains("not a non-negative number"));
        assert!(parse_tolerance("eps 1").unwrap_err().contains("unknown key 'eps'"));
        assert!(parse_tolerance("rtol").unwrap_err().contains("expected 'rtol VALUE'"));
    }

    #[test]
    fn names_expanded_base_cases() {
        assert_eq!(expanded_base("test_elu_expanded_ver18"), Some("test_elu"));
        assert_eq!(expanded_base("test_elu"), None);
    }
}
