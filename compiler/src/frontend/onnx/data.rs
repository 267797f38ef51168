//! ONNX element types and tensor payloads -> IR dtypes and host tensors.
//!
//! Integer tensors wider than 8 bits come back as exact `i64` values ([`Literal::Int`]) so that the
//! caller decides: shape/axes values keep their range (e.g. `INT64_MAX` slice ends), data is
//! range-checked when it becomes an IR `i32` tensor.

use super::proto::tensor_proto::{DataLocation, DataType};
use super::proto::TensorProto;
use half::{bf16, f16};
use kiln_abi::ElemType;
use kiln_ir::{DType, Tensor, TensorData};
use std::path::Path;

/// The ONNX name of an element type (`FLOAT`, `INT64`, ...), for messages.
pub(crate) fn type_name(dt: i32) -> String {
    DataType::try_from(dt)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| format!("data type {dt}"))
}

/// The IR dtype that holds values of an ONNX element type.
///
/// Wider or exotic types narrow: i64/i16/u16 -> i32, u64 -> u32, f64/bf16 -> f32.
pub(crate) fn ir_dtype(dt: i32) -> Result<DType, String> {
    Ok(match DataType::try_from(dt) {
        Ok(DataType::Float | DataType::Double | DataType::Bfloat16) => DType::F32,
        Ok(DataType::Float16) => DType::F16,
        Ok(DataType::Int8) => DType::I8,
        Ok(DataType::Uint8) => DType::U8,
        Ok(DataType::Int16 | DataType::Uint16 | DataType::Int32 | DataType::Int64) => DType::I32,
        Ok(DataType::Uint32 | DataType::Uint64) => DType::U32,
        Ok(DataType::Bool) => DType::Bool,
        _ => return Err(format!("element type {} is not supported", type_name(dt))),
    })
}

/// The caller-facing element type of a graph input or output of ONNX element type `dt`.
pub(crate) fn io_elem(dt: i32) -> Result<ElemType, String> {
    Ok(match DataType::try_from(dt) {
        Ok(DataType::Float) => ElemType::F32,
        Ok(DataType::Float16) => ElemType::F16,
        Ok(DataType::Int32) => ElemType::I32,
        Ok(DataType::Int64) => ElemType::I64,
        Ok(DataType::Uint32) => ElemType::U32,
        Ok(DataType::Int8) => ElemType::I8,
        Ok(DataType::Uint8) => ElemType::U8,
        Ok(DataType::Bool) => ElemType::Bool,
        _ => {
            return Err(format!(
                "element type {} is not supported for graph inputs and outputs \
                 (supported: FLOAT, FLOAT16, INT32, INT64, UINT32, INT8, UINT8, BOOL)",
                type_name(dt)
            ))
        }
    })
}

/// The element type an IR dtype has at the graph boundary when nothing else is recorded.
pub(crate) fn elem_of(d: DType) -> ElemType {
    crate::elem_type(d)
}

/// A decoded tensor payload.
#[derive(Clone, Debug)]
pub(crate) enum Literal {
    /// Anything that is not a wide integer: float types, i8/u8, u32, bool.
    Tensor(Tensor),
    /// i16/u16/i32/i64 values, exact.
    Int {
        /// Concrete shape.
        shape: Vec<usize>,
        /// Elements in row-major order.
        values: Vec<i64>,
    },
}

/// Decodes a tensor's payload (raw bytes, typed fields, or an external file relative to `base`).
pub(crate) fn read_tensor(t: &TensorProto, base: Option<&Path>) -> Result<Literal, String> {
    let dt = t.data_type.unwrap_or(0);
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dim {d} in dims {:?}", t.dims)))
        .collect::<Result<_, _>>()?;
    let n: usize = shape.iter().product();
    if t.segment.is_some() {
        return Err("segmented tensors are not supported".into());
    }
    let external;
    let raw: Option<&[u8]> = if t.data_location == Some(DataLocation::External as i32) {
        external = read_external(t, base)?;
        Some(&external)
    } else {
        t.raw_data.as_deref()
    };
    let kind = DataType::try_from(dt).map_err(|_| format!("unknown element type {dt}"))?;
    let count = |len: usize, what: &str| -> Result<(), String> {
        if len != n {
            Err(format!("{what} holds {len} elements but dims {:?} need {n}", t.dims))
        } else {
            Ok(())
        }
    };
    let raw_elems = |size: usize| -> Result<Option<Vec<&[u8]>>, String> {
        match raw {
            None => Ok(None),
            Some(b) => {
                if b.len() != n * size {
                    return Err(format!(
                        "raw data has {} bytes but dims {:?} of {} need {}",
                        b.len(),
                        t.dims,
                        type_name(dt),
                        n * size
                    ));
                }
                Ok(Some(b.chunks_exact(size).collect()))
            }
        }
    };
    // Small types packed in int32_data.
    let int32s = |what: &str| -> Result<Vec<i32>, String> {
        count(t.int32_data.len(), what)?;
        Ok(t.int32_data.clone())
    };
    let tensor = |data: TensorData| {
        Literal::Tensor(Tensor {
            shape: shape.clone(),
            data,
        })
    };
    Ok(match kind {
        DataType::Float => {
            let v: Vec<f32> = match raw_elems(4)? {
                Some(c) => c.iter().map(|b| f32::from_le_bytes((*b).try_into().unwrap())).collect(),
                None => {
                    count(t.float_data.len(), "float_data")?;
                    t.float_data.clone()
                }
            };
            tensor(TensorData::F32(v))
        }
        DataType::Double => {
            let v: Vec<f32> = match raw_elems(8)? {
                Some(c) => c
                    .iter()
                    .map(|b| f64::from_le_bytes((*b).try_into().unwrap()) as f32)
                    .collect(),
                None => {
                    count(t.double_data.len(), "double_data")?;
                    t.double_data.iter().map(|&x| x as f32).collect()
                }
            };
            tensor(TensorData::F32(v))
        }
        DataType::Float16 => {
            let v: Vec<f16> = match raw_elems(2)? {
                Some(c) => c.iter().map(|b| f16::from_le_bytes((*b).try_into().unwrap())).collect(),
                None => int32s("int32_data")?
                    .into_iter()
                    .map(|x| f16::from_bits(x as u16))
                    .collect(),
            };
            tensor(TensorData::F16(v))
        }
        DataType::Bfloat16 => {
            let v: Vec<f32> = match raw_elems(2)? {
                Some(c) => c
                    .iter()
                    .map(|b| bf16::from_le_bytes((*b).try_into().unwrap()).to_f32())
                    .collect(),
                None => int32s("int32_data")?
                    .into_iter()
                    .map(|x| bf16::from_bits(x as u16).to_f32())
                    .collect(),
            };
            tensor(TensorData::F32(v))
        }
        DataType::Int8 => tensor(TensorData::I8(match raw_elems(1)? {
            Some(c) => c.iter().map(|b| b[0] as i8).collect(),
            None => int32s("int32_data")?.into_iter().map(|x| x as i8).collect(),
        })),
        DataType::Uint8 => tensor(TensorData::U8(match raw_elems(1)? {
            Some(c) => c.iter().map(|b| b[0]).collect(),
            None => int32s("int32_data")?.into_iter().map(|x| x as u8).collect(),
        })),
        DataType::Bool => tensor(TensorData::Bool(match raw_elems(1)? {
            Some(c) => c.iter().map(|b| b[0] != 0).collect(),
            None => int32s("int32_data")?.into_iter().map(|x| x != 0).collect(),
        })),
        DataType::Int16 | DataType::Uint16 => {
            let signed = kind == DataType::Int16;
            let values = match raw_elems(2)? {
                Some(c) => c
                    .iter()
                    .map(|b| {
                        let u = u16::from_le_bytes((*b).try_into().unwrap());
                        if signed {
                            u as i16 as i64
                        } else {
                            u as i64
                        }
                    })
                    .collect(),
                None => int32s("int32_data")?.into_iter().map(|x| x as i64).collect(),
            };
            Literal::Int { shape, values }
        }
        DataType::Int32 => {
            let values = match raw_elems(4)? {
                Some(c) => c
                    .iter()
                    .map(|b| i32::from_le_bytes((*b).try_into().unwrap()) as i64)
                    .collect(),
                None => int32s("int32_data")?.into_iter().map(|x| x as i64).collect(),
            };
            Literal::Int { shape, values }
        }
        DataType::Int64 => {
            let values = match raw_elems(8)? {
                Some(c) => c.iter().map(|b| i64::from_le_bytes((*b).try_into().unwrap())).collect(),
                None => {
                    count(t.int64_data.len(), "int64_data")?;
                    t.int64_data.clone()
                }
            };
            Literal::Int { shape, values }
        }
        DataType::Uint32 | DataType::Uint64 => {
            let wide: Vec<u64> = match (kind, raw_elems(if kind == DataType::Uint32 { 4 } else { 8 })?) {
                (DataType::Uint32, Some(c)) => c
                    .iter()
                    .map(|b| u32::from_le_bytes((*b).try_into().unwrap()) as u64)
                    .collect(),
                (_, Some(c)) => c.iter().map(|b| u64::from_le_bytes((*b).try_into().unwrap())).collect(),
                (_, None) => {
                    count(t.uint64_data.len(), "uint64_data")?;
                    t.uint64_data.clone()
                }
            };
            let v = wide
                .iter()
                .map(|&x| u32::try_from(x).map_err(|_| format!("value {x} does not fit in u32")))
                .collect::<Result<Vec<u32>, String>>()?;
            tensor(TensorData::U32(v))
        }
        _ => return Err(format!("element type {} is not supported", type_name(dt))),
    })
}

/// Reads the bytes of a tensor stored outside the model (`location`, `offset`, `length` keys).
fn read_external(t: &TensorProto, base: Option<&Path>) -> Result<Vec<u8>, String> {
    let mut location = None;
    let mut offset = 0u64;
    let mut length = None;
    for kv in &t.external_data {
        let v = kv.value.as_deref().unwrap_or("");
        match kv.key.as_deref().unwrap_or("") {
            "location" => location = Some(v.to_string()),
            "offset" => {
                offset = v
                    .parse()
                    .map_err(|_| format!("external data offset '{v}' is not a number"))?
            }
            "length" => {
                length = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("external data length '{v}' is not a number"))?,
                )
            }
            _ => {}
        }
    }
    let location = location.ok_or("external data has no 'location'")?;
    let rel = Path::new(&location);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(format!(
            "external data location '{location}' must be a relative path inside the model's directory"
        ));
    }
    let path = match base {
        Some(b) => b.join(rel),
        None => rel.to_path_buf(),
    };
    let bytes =
        std::fs::read(&path).map_err(|e| format!("cannot read external data file '{}': {e}", path.display()))?;
    let start = usize::try_from(offset).map_err(|_| "external data offset too large".to_string())?;
    let end = match length {
        Some(l) => start.checked_add(l as usize).ok_or("external data length too large")?,
        None => bytes.len(),
    };
    if start > bytes.len() || end > bytes.len() {
        return Err(format!(
            "external data range {start}..{end} is outside '{}' ({} bytes)",
            path.display(),
            bytes.len()
        ));
    }
    Ok(bytes[start..end].to_vec())
}
