//! Conversion between the interpreter's tensors ([`kiln_ir::Tensor`]) and the runtime's
//! [`HostTensor`]s, so GPU results can be compared with the reference interpreter, and
//! synthetic host inputs for runs given no input files.

use half::f16;
use kiln_abi::ElemType;
use kiln_ir::{DType, DimBindings, Tensor, TensorData};
use kiln_runtime::HostTensor;

/// The IR dtype that holds values of a host element type (i64 narrows to i32, as in the IR).
pub fn ir_dtype(e: ElemType) -> DType {
    match e {
        ElemType::F32 => DType::F32,
        ElemType::F16 => DType::F16,
        ElemType::I32 | ElemType::I64 => DType::I32,
        ElemType::U32 => DType::U32,
        ElemType::I8 => DType::I8,
        ElemType::U8 => DType::U8,
        ElemType::Bool => DType::Bool,
    }
}

/// Why a host tensor has no interpreter equivalent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToIrError {
    /// An i64 element outside the i32 range the IR computes in.
    #[error("i64 value {value} (element {index}) does not fit in i32")]
    I64OutOfRange {
        /// Index of the first such element.
        index: usize,
        /// Its value.
        value: i64,
    },
    /// The bytes do not match the shape.
    #[error(transparent)]
    Bytes(#[from] kiln_ir::ByteLengthError),
}

/// Host tensor -> interpreter tensor (i64 values outside i32 are an error).
pub fn to_ir(t: &HostTensor) -> Result<Tensor, ToIrError> {
    Ok(match t.dtype {
        ElemType::F32 => Tensor::f32(t.shape.clone(), t.to_f32()),
        ElemType::F16 => Tensor {
            shape: t.shape.clone(),
            data: TensorData::F16(
                t.data
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
        },
        ElemType::I64 => {
            let v = t.to_i64();
            let narrowed = v
                .iter()
                .enumerate()
                .map(|(index, &value)| i32::try_from(value).map_err(|_| ToIrError::I64OutOfRange { index, value }))
                .collect::<Result<Vec<i32>, _>>()?;
            Tensor::i32(t.shape.clone(), narrowed)
        }
        ElemType::Bool => Tensor {
            shape: t.shape.clone(),
            data: TensorData::Bool(t.to_bool()),
        },
        other => Tensor::from_le_bytes(ir_dtype(other), t.shape.clone(), &t.data)?,
    })
}

/// Interpreter tensor -> host tensor of the given caller-facing element type.
pub fn to_host(t: &Tensor, e: ElemType) -> HostTensor {
    match e {
        ElemType::I64 => HostTensor::from_i64(&t.shape, &t.to_f64().iter().map(|&v| v as i64).collect::<Vec<_>>()),
        ElemType::Bool => HostTensor::from_bool(&t.shape, &t.to_f64().iter().map(|&v| v != 0.0).collect::<Vec<_>>()),
        _ => {
            let ir = Tensor::from_f64(ir_dtype(e), t.shape.clone(), &t.to_f64());
            HostTensor::new(e, t.shape.clone(), ir.to_le_bytes()).expect("sizes match by construction")
        }
    }
}

/// Relative L2 error `|a - b| / max(|b|, tiny)` of two equally long f32 vectors.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "compared tensors differ in length");
    let (mut num, mut den) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += (x as f64 - y as f64).powi(2);
        den += (y as f64).powi(2);
    }
    num.sqrt() / den.sqrt().max(1e-30)
}

/// A deterministic input for `spec` at the sizes `dims` binds: floats in [0, 1), ones for
/// integer and boolean inputs (valid token ids and masks). `kiln bench` fills the inputs it is
/// not given this way, and `kiln tune` its check in the whole model ([`crate::tune_check`]).
pub fn synthetic_input(spec: &kiln_abi::IoSpec, dims: &DimBindings) -> Result<HostTensor, String> {
    let shape: Vec<usize> = spec
        .shape
        .iter()
        .map(|d| d.eval(dims).map(|v| v as usize))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("input '{}': {e}; give it with --dim NAME=VALUE or --input", spec.name))?;
    let n: usize = shape.iter().product();
    use kiln_abi::ElemType as E;
    Ok(match spec.dtype {
        E::F32 | E::F16 => {
            let v: Vec<f32> = crate::demo::pseudo_random(n, 7, 0.5)
                .into_iter()
                .map(|x| x + 0.5)
                .collect();
            if spec.dtype == E::F32 {
                HostTensor::from_f32(&shape, &v)
            } else {
                HostTensor::from_f16(&shape, &v.iter().map(|&x| half::f16::from_f32(x)).collect::<Vec<_>>())
            }
        }
        E::I64 => HostTensor::from_i64(&shape, &vec![1; n]),
        E::I32 => HostTensor::from_i32(&shape, &vec![1; n]),
        E::U32 => HostTensor::from_u32(&shape, &vec![1; n]),
        E::U8 => HostTensor::from_u8(&shape, &vec![1; n]),
        E::I8 => HostTensor::from_i8(&shape, &vec![1; n]),
        E::Bool => HostTensor::from_bool(&shape, &vec![true; n]),
    })
}
