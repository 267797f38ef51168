//! Freezing graph inputs: named graph inputs become initializers that hold given values.
//!
//! ONNX models (the backend node tests above all) often pass op parameters such as axes, target
//! shapes, pads, scales or `k` as graph inputs. Kiln compiles ahead of time and needs those
//! values at compile time. Freezing an input turns it into a constant of the model (an
//! initializer): the frontend then treats it like any other constant (folding, compile-time
//! shapes), and the compiled bundle no longer has that input. `kiln compile --freeze
//! NAME=FILE.npy` and [`super::load_onnx_frozen`] are built on this.
//!
//! Rules, checked for every value before the model is changed (errors name the input):
//!
//! - the name must be a graph input (an input that also has an initializer is allowed: its
//!   default value is replaced);
//! - the value's element type must be the declared one; an `INT64` input also takes `i32` data
//!   (the IR holds int64 as i32, see ARCHITECTURE.md);
//! - the value's shape must fit the declaration: same rank, equal fixed dims, and a named
//!   `dim_param` has one size across all frozen values (and the `dims` bindings, if any). Such a
//!   size is then also fixed in the remaining inputs that use the same `dim_param`.

use super::data;
use super::proto::tensor_proto::{DataLocation, DataType};
use super::proto::tensor_shape_proto::dimension;
use super::proto::{type_proto, GraphProto, ModelProto, TensorProto};
use super::OnnxError;
use kiln_ir::{DimBindings, Tensor, TensorData};
use std::collections::{BTreeMap, HashMap};

/// Turns the named graph inputs of `model` into initializers holding `values` (IR tensors).
///
/// The declared element type decides the initializer's type; an `INT64` input takes the IR's
/// `i32` tensors (as [`crate::frontend::onnx::tensor_from_proto`] and `.npy` int64 files give
/// them). See the module documentation for the checks. On error `model` is unchanged.
///
/// ```
/// use kiln_compiler::frontend::onnx::builder::{d, DataType, ModelBuilder};
/// use kiln_compiler::frontend::onnx::{freeze_inputs, load_onnx_proto};
/// use std::collections::HashMap;
///
/// let mut b = ModelBuilder::new("reshape");
/// b.input("x", DataType::Float, &[d(2), d(3)]);
/// b.input("shape", DataType::Int64, &[d(1)]);
/// b.node("Reshape", &["x", "shape"], &["y"]);
/// b.output("y", DataType::Float);
/// let mut model = b.build();
/// let values = HashMap::from([("shape".to_string(), kiln_ir::Tensor::i32(vec![1], vec![6]))]);
/// freeze_inputs(&mut model, &values)?;
/// let m = load_onnx_proto(&model, "reshape", &Default::default(), None)?;
/// assert_eq!(m.graph.inputs().len(), 1); // only "x" is left
/// # Ok::<(), kiln_compiler::frontend::onnx::OnnxError>(())
/// ```
pub fn freeze_inputs(model: &mut ModelProto, values: &HashMap<String, Tensor>) -> Result<(), OnnxError> {
    freeze_with_dims(model, values, &DimBindings::new()).map(|_| ())
}

/// [`freeze_inputs`] for values given as ONNX `TensorProto`s (e.g. read from the `.pb` files of
/// an ONNX test data set). Integers keep their exact int64 values (e.g. `INT64_MAX` slice ends,
/// which an IR `i32` tensor cannot hold). The proto's data type must be the declared one, or
/// `INT32` for an `INT64` input; its name is replaced by the input's.
pub fn freeze_input_protos(model: &mut ModelProto, values: &HashMap<String, TensorProto>) -> Result<(), OnnxError> {
    freeze_protos(model, values, &DimBindings::new()).map(|_| ())
}

/// [`freeze_inputs`], with dims bound by the caller (`--dim`) checked against the values.
/// Returns the bindings to lower the frozen model with: `dims` without the dim_params that the
/// values fixed (no input has them any more).
pub(crate) fn freeze_with_dims(
    model: &mut ModelProto,
    values: &HashMap<String, Tensor>,
    dims: &DimBindings,
) -> Result<DimBindings, OnnxError> {
    let g = graph(model)?;
    let mut protos = HashMap::new();
    for (name, t) in values {
        let decl = declaration(g, name)?;
        let et = decl.elem_type.unwrap_or(0);
        let proto = tensor_to_proto(name, t, et).map_err(|msg| input_err(name, msg))?;
        protos.insert(name.clone(), proto);
    }
    freeze_protos(model, &protos, dims)
}

fn input_err(name: &str, msg: String) -> OnnxError {
    OnnxError::GraphIo {
        kind: "input",
        name: name.to_string(),
        msg,
    }
}

fn graph(model: &ModelProto) -> Result<&GraphProto, OnnxError> {
    model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::Model("the model has no graph".into()))
}

/// The declared tensor type of graph input `name`.
fn declaration<'a>(g: &'a GraphProto, name: &str) -> Result<&'a type_proto::Tensor, OnnxError> {
    let Some(v) = g.input.iter().find(|v| v.name.as_deref() == Some(name)) else {
        let names: Vec<String> = g
            .input
            .iter()
            .map(|v| format!("'{}'", v.name.as_deref().unwrap_or("")))
            .collect();
        let list = if names.is_empty() {
            "it has none".to_string()
        } else {
            format!("its inputs are {}", names.join(", "))
        };
        return Err(input_err(
            name,
            format!("cannot be frozen: the graph has no input of that name ({list})"),
        ));
    };
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) if t.elem_type.is_some_and(|e| e != 0) => Ok(t),
        Some(type_proto::Value::TensorType(_)) => {
            Err(input_err(name, "cannot be frozen: it declares no element type".into()))
        }
        _ => Err(input_err(name, "cannot be frozen: only tensor inputs can be".into())),
    }
}

/// An IR tensor as a `TensorProto` of the declared ONNX element type `et`.
fn tensor_to_proto(name: &str, t: &Tensor, et: i32) -> Result<TensorProto, String> {
    let declared = DataType::try_from(et).ok();
    let dims = t.shape.iter().map(|&d| d as i64).collect();
    let mut p = TensorProto {
        name: Some(name.to_string()),
        dims,
        data_type: Some(et),
        ..Default::default()
    };
    use DataType as D;
    match (declared, &t.data) {
        (Some(D::Int64), TensorData::I32(v)) => {
            p.int64_data = v.iter().map(|&x| x as i64).collect();
        }
        (Some(D::Float), TensorData::F32(_))
        | (Some(D::Float16), TensorData::F16(_))
        | (Some(D::Int32), TensorData::I32(_))
        | (Some(D::Uint32), TensorData::U32(_))
        | (Some(D::Int8), TensorData::I8(_))
        | (Some(D::Uint8), TensorData::U8(_))
        | (Some(D::Bool), TensorData::Bool(_)) => p.raw_data = Some(t.to_le_bytes()),
        _ => {
            let takes = match declared {
                Some(D::Int64) => " (an INT64 input takes i32 or i64 data)",
                _ => "",
            };
            return Err(format!(
                "cannot be frozen: it is declared {} but the value is {}{takes}",
                data::type_name(et),
                t.dtype()
            ));
        }
    }
    Ok(p)
}

/// The common part: checks every value against its declaration, then rewrites the model.
/// Returns `dims` without the dim_params that the values fixed.
fn freeze_protos(
    model: &mut ModelProto,
    values: &HashMap<String, TensorProto>,
    dims: &DimBindings,
) -> Result<DimBindings, OnnxError> {
    let g = graph(model)?;
    let mut names: Vec<&String> = values.keys().collect();
    names.sort();
    // dim_param -> (size, the input whose value fixed it).
    let mut sizes: BTreeMap<String, (i64, String)> = BTreeMap::new();
    let mut frozen: Vec<TensorProto> = Vec::new();
    for name in names {
        let decl = declaration(g, name)?;
        let err = |msg: String| input_err(name, msg);
        let et = decl.elem_type.unwrap_or(0);
        let mut t = values[name].clone();
        t.name = Some(name.clone());
        let dt = t.data_type.unwrap_or(0);
        if dt != et {
            if et == DataType::Int64 as i32 && dt == DataType::Int32 as i32 {
                let ints = match data::read_tensor(&t, None).map_err(&err)? {
                    data::Literal::Int { values, .. } => values,
                    data::Literal::Tensor(_) => unreachable!("INT32 data decodes as Int"),
                };
                t = TensorProto {
                    name: t.name,
                    dims: t.dims,
                    data_type: Some(et),
                    int64_data: ints,
                    ..Default::default()
                };
            } else {
                return Err(err(format!(
                    "cannot be frozen: it is declared {} but the value is {}",
                    data::type_name(et),
                    data::type_name(dt)
                )));
            }
        }
        if t.data_location != Some(DataLocation::External as i32) {
            data::read_tensor(&t, None).map_err(|m| err(format!("the frozen value: {m}")))?;
        }
        if let Some(shape) = &decl.shape {
            if shape.dim.len() != t.dims.len() {
                return Err(err(format!(
                    "cannot be frozen: the value has shape {:?} but the input is declared with rank {}",
                    t.dims,
                    shape.dim.len()
                )));
            }
            for (k, (d, &v)) in shape.dim.iter().zip(&t.dims).enumerate() {
                match &d.value {
                    Some(dimension::Value::DimValue(x)) if *x >= 0 && *x != v => {
                        return Err(err(format!(
                            "cannot be frozen: the value has shape {:?} but dim {k} is declared {x}",
                            t.dims
                        )));
                    }
                    // Named params only, as the frontend reads them ("?" names nothing).
                    Some(dimension::Value::DimParam(p)) if p.chars().any(char::is_alphabetic) => {
                        let bound = dims.get(p).or_else(|| dims.get(&super::ctx::symbol_name(p)));
                        if let Some(&b) = bound.filter(|&&b| b != v) {
                            return Err(err(format!(
                                "cannot be frozen: dim {k} ('{p}') of the value is {v}, but '{p}' is bound to {b}"
                            )));
                        }
                        match sizes.get(p) {
                            Some((w, other)) if *w != v => {
                                return Err(err(format!(
                                    "cannot be frozen: dim {k} ('{p}') of the value is {v}, but {w} in the value of input '{other}'"
                                )));
                            }
                            Some(_) => {}
                            None => {
                                sizes.insert(p.clone(), (v, name.clone()));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        frozen.push(t);
    }

    let g = model.graph.as_mut().expect("checked above");
    let is_frozen = |n: &Option<String>| frozen.iter().any(|t| t.name == *n);
    g.input.retain(|v| !is_frozen(&v.name));
    g.initializer.retain(|t| !is_frozen(&t.name));
    // A dim_param fixed by a frozen value is fixed in the other inputs too.
    for v in &mut g.input {
        if let Some(type_proto::Value::TensorType(tt)) = v.r#type.as_mut().and_then(|t| t.value.as_mut()) {
            for d in tt.shape.iter_mut().flat_map(|s| s.dim.iter_mut()) {
                if let Some(dimension::Value::DimParam(p)) = &d.value {
                    if let Some((size, _)) = sizes.get(p) {
                        d.value = Some(dimension::Value::DimValue(*size));
                    }
                }
            }
        }
    }
    g.initializer.extend(frozen);
    let mut left = dims.clone();
    for p in sizes.keys() {
        left.remove(p);
        left.remove(&super::ctx::symbol_name(p));
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::super::builder::{d, tensor_f32_raw, tensor_i64, DataType, ModelBuilder};
    use super::super::load_onnx_proto;
    use super::*;

    fn model() -> ModelProto {
        let mut b = ModelBuilder::new("m");
        b.input("x", DataType::Float, &[d("n"), d(3)]);
        b.input("shape", DataType::Int64, &[d(2)]);
        b.input("bias", DataType::Float, &[d("n"), d(1)]);
        b.node("Add", &["x", "bias"], &["s"]);
        b.node("Reshape", &["s", "shape"], &["y"]);
        b.output("y", DataType::Float);
        b.build()
    }

    fn freeze_one(m: &mut ModelProto, name: &str, t: Tensor) -> Result<(), String> {
        freeze_inputs(m, &HashMap::from([(name.to_string(), t)])).map_err(|e| e.to_string())
    }

    #[test]
    fn frozen_inputs_become_initializers() {
        let mut m = model();
        let err = load_onnx_proto(&m, "m", &DimBindings::new(), None).unwrap_err();
        assert!(
            err.to_string().contains("graph input 'shape'") && err.to_string().contains("--freeze shape="),
            "{err}"
        );
        freeze_one(&mut m, "shape", Tensor::i32(vec![2], vec![3, -1])).unwrap();
        let g = m.graph.as_ref().unwrap();
        assert_eq!(g.input.len(), 2);
        let init = g.initializer.iter().find(|t| t.name.as_deref() == Some("shape"));
        assert_eq!(init.unwrap().int64_data, vec![3, -1]);
        let model = load_onnx_proto(&m, "m", &DimBindings::new(), None).unwrap();
        let names: Vec<String> = model
            .graph
            .inputs()
            .iter()
            .map(|&id| model.graph.node(id).name.clone())
            .collect();
        assert_eq!(names, ["x", "bias"]);
    }

    #[test]
    fn dim_params_fixed_by_a_value_are_fixed_elsewhere() {
        let mut m = model();
        freeze_one(&mut m, "bias", Tensor::f32(vec![4, 1], vec![1.0; 4])).unwrap();
        let g = m.graph.as_ref().unwrap();
        let Some(type_proto::Value::TensorType(tt)) = g.input[0].r#type.as_ref().and_then(|t| t.value.as_ref()) else {
            panic!("tensor input")
        };
        let dims: Vec<_> = tt.shape.as_ref().unwrap().dim.iter().map(|d| d.value.clone()).collect();
        assert_eq!(
            dims,
            [Some(dimension::Value::DimValue(4)), Some(dimension::Value::DimValue(3))]
        );
    }

    #[test]
    fn bad_values_are_rejected_by_name() {
        let mut m = model();
        let e = freeze_one(&mut m, "nope", Tensor::f32(vec![1], vec![0.0])).unwrap_err();
        assert!(
            e.contains("graph input 'nope'") && e.contains("'x', 'shape', 'bias'"),
            "{e}"
        );
        let e = freeze_one(&mut m, "shape", Tensor::f32(vec![2], vec![3.0, 2.0])).unwrap_err();
        assert!(
            e.contains("'shape'") && e.contains("declared INT64 but the value is f32"),
            "{e}"
        );
        let e = freeze_one(&mut m, "shape", Tensor::i32(vec![3], vec![1, 2, 3])).unwrap_err();
        assert!(e.contains("dim 0 is declared 2"), "{e}");
        let e = freeze_one(&mut m, "shape", Tensor::i32(vec![2, 1], vec![1, 2])).unwrap_err();
        assert!(e.contains("rank 1"), "{e}");
        let both = HashMap::from([
            ("x".to_string(), Tensor::f32(vec![2, 3], vec![0.0; 6])),
            ("bias".to_string(), Tensor::f32(vec![5, 1], vec![0.0; 5])),
        ]);
        let e = freeze_inputs(&mut m, &both).unwrap_err().to_string();
        assert!(e.contains("('n')") && e.contains("input 'bias'"), "{e}");
        let bound = DimBindings::from([("n".to_string(), 7)]);
        let x = HashMap::from([("x".to_string(), Tensor::f32(vec![2, 3], vec![0.0; 6]))]);
        let e = freeze_with_dims(&mut m, &x, &bound).unwrap_err().to_string();
        assert!(e.contains("bound to 7"), "{e}");
        let mut ok = model();
        let bound = DimBindings::from([("n".to_string(), 2)]);
        let left = freeze_with_dims(&mut ok, &x, &bound).unwrap();
        assert!(
            left.is_empty(),
            "'n' is fixed by the value and no input has it any more"
        );
        let e = load_onnx_proto(&ok, "m", &left, None).unwrap_err();
        assert!(e.to_string().contains("graph input 'shape'"), "{e}");
        assert_eq!(m, model(), "a failed freeze leaves the model unchanged");
    }

    #[test]
    fn protos_keep_int64_range() {
        let mut m = model();
        let big = tensor_i64("", &[2], &[i64::MAX, 1]);
        freeze_input_protos(&mut m, &HashMap::from([("shape".to_string(), big)])).unwrap();
        let g = m.graph.as_ref().unwrap();
        assert_eq!(g.initializer[0].name.as_deref(), Some("shape"));
        assert_eq!(g.initializer[0].int64_data, vec![i64::MAX, 1]);
        let mut m = model();
        let wrong = tensor_f32_raw("", &[2], &[1.0, 2.0]);
        let e = freeze_input_protos(&mut m, &HashMap::from([("shape".to_string(), wrong)])).unwrap_err();
        assert!(e.to_string().contains("declared INT64 but the value is FLOAT"), "{e}");
    }
}
