//! Host tensors and the conversion between a tensor's host dtype and its GPU storage dtype.
//!
//! The GPU stores only `f32`, `f16`, `i32` and `u32`. Inputs are converted host → storage before
//! upload (`i64 → i32` with a range check, `bool → u32` 0/1, `u8`/`i8` widened, `f16 ↔ f32`);
//! outputs are converted storage → host after readback (`i32 → i64`, `u32 → bool`, ...). Any
//! value that does not fit is an error naming the tensor, the index and the value.

use crate::error::{Result, RuntimeError};
use half::f16;
use kiln_abi::ElemType;

/// A tensor in host memory: dtype, shape and little-endian element bytes in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Element type.
    pub dtype: ElemType,
    /// Dims, outermost first.
    pub shape: Vec<usize>,
    /// `numel * dtype.host_size()` little-endian bytes.
    pub data: Vec<u8>,
}

impl HostTensor {
    /// Builds a tensor from raw little-endian bytes; errors if the byte count does not match
    /// the shape.
    pub fn new(dtype: ElemType, shape: Vec<usize>, data: Vec<u8>) -> Result<HostTensor> {
        let numel = numel_checked(&shape)?;
        let want = numel.checked_mul(dtype.host_size());
        if want != Some(data.len()) {
            return Err(RuntimeError::HostTensor(format!(
                "shape {shape:?} of {} needs {} bytes, got {}",
                dtype.name(),
                numel * dtype.host_size(),
                data.len()
            )));
        }
        Ok(HostTensor { dtype, shape, data })
    }

    /// Number of elements (product of the dims; 1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// An `f32` tensor. Panics if `values.len()` is not the product of `shape`.
    pub fn from_f32(shape: &[usize], values: &[f32]) -> HostTensor {
        Self::from_le(ElemType::F32, shape, values, |v| v.to_le_bytes())
    }

    /// An `f16` tensor. Panics if `values.len()` is not the product of `shape`.
    pub fn from_f16(shape: &[usize], values: &[f16]) -> HostTensor {
        Self::from_le(ElemType::F16, shape, values, |v| v.to_le_bytes())
    }

    /// An `i32` tensor. Panics if `values.len()` is not the product of `shape`.
    pub fn from_i32(shape: &[usize], values: &[i32]) -> HostTensor {
        Self::from_le(ElemType::I32, shape, values, |v| v.to_le_bytes())
    }

    /// An `i64` tensor. Panics if `values.len()` is not the product of `shape`.
    pub fn from_i64(shape: &[usize], values: &[i64]) -> HostTensor {
        Self::from_le(ElemType::I64, shape, values, |v| v.to_le_bytes())
    }

    /// A `u32` tensor. Panics if `values.len()` is not the product of `shape`.
    pub fn from_u32(shape: &[usize], values: &[u32]) -> HostTensor {
        Self::from_le(ElemType::U32, shape, values, |v| v.to_le_bytes())
    }

    /// A `u8` tensor. Panics if `values.len()` is not the product of `shape`.
    pub fn from_u8(shape: &[usize], values: &[u8]) -> HostTensor {
        Self::from_le(ElemType::U8, shape, values, |v| v.to_le_bytes())
    }

    /// An `i8` tensor. Panics if `values.len()` is not the product of `shape`.
    pub fn from_i8(shape: &[usize], values: &[i8]) -> HostTensor {
        Self::from_le(ElemType::I8, shape, values, |v| v.to_le_bytes())
    }

    /// A `bool` tensor (one byte per element, 0 or 1). Panics if `values.len()` is not the
    /// product of `shape`.
    pub fn from_bool(shape: &[usize], values: &[bool]) -> HostTensor {
        Self::from_le(ElemType::Bool, shape, values, |v| [u8::from(*v)])
    }

    fn from_le<T, const N: usize>(
        dtype: ElemType,
        shape: &[usize],
        values: &[T],
        f: impl Fn(&T) -> [u8; N],
    ) -> HostTensor {
        let numel: usize = shape.iter().product();
        assert_eq!(
            numel,
            values.len(),
            "HostTensor: shape {shape:?} has {numel} elements but {} values were given",
            values.len()
        );
        HostTensor {
            dtype,
            shape: shape.to_vec(),
            data: values.iter().flat_map(f).collect(),
        }
    }

    /// Elements as `f32`, whatever the dtype (integers are converted with `as`, bools are 0/1).
    pub fn to_f32(&self) -> Vec<f32> {
        match self.dtype {
            ElemType::F32 => le_chunks(&self.data, f32::from_le_bytes).collect(),
            ElemType::F16 => le_chunks(&self.data, |b| f16::from_le_bytes(b).to_f32()).collect(),
            _ => self.to_i64().into_iter().map(|v| v as f32).collect(),
        }
    }

    /// Elements as `i64`, whatever the dtype (floats are truncated toward zero).
    pub fn to_i64(&self) -> Vec<i64> {
        let d = &self.data;
        match self.dtype {
            ElemType::F32 | ElemType::F16 => self.to_f32().into_iter().map(|v| v as i64).collect(),
            ElemType::I32 => le_chunks(d, |b| i32::from_le_bytes(b) as i64).collect(),
            ElemType::U32 => le_chunks(d, |b| u32::from_le_bytes(b) as i64).collect(),
            ElemType::I64 => le_chunks(d, i64::from_le_bytes).collect(),
            ElemType::I8 => d.iter().map(|&b| b as i8 as i64).collect(),
            ElemType::U8 => d.iter().map(|&b| b as i64).collect(),
            ElemType::Bool => d.iter().map(|&b| i64::from(b != 0)).collect(),
        }
    }

    /// Elements as `bool` (nonzero is true), whatever the dtype.
    pub fn to_bool(&self) -> Vec<bool> {
        match self.dtype {
            ElemType::F32 | ElemType::F16 => self.to_f32().into_iter().map(|v| v != 0.0).collect(),
            _ => self.to_i64().into_iter().map(|v| v != 0).collect(),
        }
    }
}

fn numel_checked(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| RuntimeError::HostTensor(format!("shape {shape:?} overflows usize")))
}

fn le_chunks<'a, const N: usize, T>(data: &'a [u8], f: impl Fn([u8; N]) -> T + 'a) -> impl Iterator<Item = T> + 'a {
    data.chunks_exact(N)
        .map(move |c| f(c.try_into().expect("chunks_exact yields N bytes")))
}

/// Bytes per element of a GPU storage dtype (`f32`, `f16`, `i32`, `u32`).
pub(crate) fn storage_size(storage: ElemType) -> Option<u64> {
    match storage {
        ElemType::F32 | ElemType::I32 | ElemType::U32 => Some(4),
        ElemType::F16 => Some(2),
        _ => None,
    }
}

fn is_float(t: ElemType) -> bool {
    matches!(t, ElemType::F32 | ElemType::F16)
}

/// Converts a host tensor to the bytes of its GPU storage dtype. `what` names the tensor in
/// errors (`input 'ids'`).
pub(crate) fn to_storage(t: &HostTensor, storage: ElemType, what: &str) -> Result<Vec<u8>> {
    let err = |message: String| RuntimeError::Conversion {
        what: what.to_string(),
        message,
    };
    if t.dtype == storage && storage_size(storage).is_some() {
        return Ok(t.data.clone());
    }
    match (is_float(t.dtype), storage) {
        (true, ElemType::F32) => Ok(t.to_f32().iter().flat_map(|v| v.to_le_bytes()).collect()),
        (true, ElemType::F16) => Ok(t
            .to_f32()
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect()),
        (false, ElemType::I32 | ElemType::U32) => {
            let (lo, hi) = if storage == ElemType::I32 {
                (i32::MIN as i64, i32::MAX as i64)
            } else {
                (0, u32::MAX as i64)
            };
            let vals = t.to_i64();
            let mut out = Vec::with_capacity(vals.len() * 4);
            for (i, &v) in vals.iter().enumerate() {
                if v < lo || v > hi {
                    return Err(err(format!(
                        "value {v} at flat index {i} does not fit in {} GPU storage (range {lo}..={hi})",
                        storage.name()
                    )));
                }
                if storage == ElemType::I32 {
                    out.extend_from_slice(&(v as i32).to_le_bytes());
                } else {
                    out.extend_from_slice(&(v as u32).to_le_bytes());
                }
            }
            Ok(out)
        }
        _ => Err(err(format!(
            "no conversion from host dtype {} to GPU storage dtype {}",
            t.dtype.name(),
            storage.name()
        ))),
    }
}

/// Converts GPU storage bytes (exactly `numel` elements) to a host tensor of `dtype`.
pub(crate) fn from_storage(
    bytes: &[u8],
    storage: ElemType,
    dtype: ElemType,
    shape: Vec<usize>,
    what: &str,
) -> Result<HostTensor> {
    let err = |message: String| RuntimeError::Conversion {
        what: what.to_string(),
        message,
    };
    if storage_size(storage).is_none() {
        return Err(err(format!("{} is not a GPU storage dtype", storage.name())));
    }
    let raw = HostTensor::new(storage, shape.clone(), bytes.to_vec())?;
    if dtype == storage {
        return Ok(raw);
    }
    let data: Vec<u8> = match (is_float(storage), dtype) {
        (true, ElemType::F32) => raw.to_f32().iter().flat_map(|v| v.to_le_bytes()).collect(),
        (true, ElemType::F16) => raw
            .to_f32()
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect(),
        (false, ElemType::I64) => raw.to_i64().iter().flat_map(|v| v.to_le_bytes()).collect(),
        (false, ElemType::Bool) => raw.to_i64().iter().map(|&v| u8::from(v != 0)).collect(),
        (false, ElemType::I32 | ElemType::U32 | ElemType::I8 | ElemType::U8) => {
            let (lo, hi, size) = match dtype {
                ElemType::I32 => (i32::MIN as i64, i32::MAX as i64, 4),
                ElemType::U32 => (0, u32::MAX as i64, 4),
                ElemType::I8 => (i8::MIN as i64, i8::MAX as i64, 1),
                _ => (0, u8::MAX as i64, 1),
            };
            let vals = raw.to_i64();
            let mut out = Vec::with_capacity(vals.len() * size);
            for (i, &v) in vals.iter().enumerate() {
                if v < lo || v > hi {
                    return Err(err(format!(
                        "value {v} at flat index {i} does not fit in {}",
                        dtype.name()
                    )));
                }
                out.extend_from_slice(&v.to_le_bytes()[..size]);
            }
            out
        }
        _ => {
            return Err(err(format!(
                "no conversion from GPU storage dtype {} to host dtype {}",
                storage.name(),
                dtype.name()
            )))
        }
    };
    HostTensor::new(dtype, shape, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i64_to_i32_range_checked() {
        let t = HostTensor::from_i64(&[3], &[1, -2, 3]);
        let b = to_storage(&t, ElemType::I32, "input 'x'").unwrap();
        assert_eq!(
            b,
            [1i32, -2, 3].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()
        );
        let big = HostTensor::from_i64(&[2], &[0, 1 << 40]);
        let e = to_storage(&big, ElemType::I32, "input 'x'").unwrap_err().to_string();
        assert!(e.contains("input 'x'") && e.contains("1099511627776"), "{e}");
    }

    #[test]
    fn bool_and_bytes_widen() {
        let t = HostTensor::from_bool(&[2], &[true, false]);
        assert_eq!(to_storage(&t, ElemType::U32, "b").unwrap(), [1, 0, 0, 0, 0, 0, 0, 0]);
        let t = HostTensor::from_i8(&[1], &[-3]);
        assert_eq!(to_storage(&t, ElemType::I32, "c").unwrap(), (-3i32).to_le_bytes());
        assert!(to_storage(&t, ElemType::U32, "c").is_err());
        let t = HostTensor::from_f32(&[1], &[1.5]);
        assert!(to_storage(&t, ElemType::I32, "f").is_err());
    }

    #[test]
    fn f16_round_trip() {
        let t = HostTensor::from_f16(&[2], &[f16::from_f32(0.5), f16::from_f32(-2.0)]);
        let s = to_storage(&t, ElemType::F32, "h").unwrap();
        let back = from_storage(&s, ElemType::F32, ElemType::F16, vec![2], "h").unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn outputs_narrow() {
        let s: Vec<u8> = [0u32, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        let b = from_storage(&s, ElemType::U32, ElemType::Bool, vec![2], "o").unwrap();
        assert_eq!(b.to_bool(), [false, true]);
        let s: Vec<u8> = [-5i32, 9].iter().flat_map(|v| v.to_le_bytes()).collect();
        let l = from_storage(&s, ElemType::I32, ElemType::I64, vec![2], "o").unwrap();
        assert_eq!(l.to_i64(), [-5, 9]);
        assert!(from_storage(&s, ElemType::I32, ElemType::U8, vec![2], "o").is_err());
    }

    #[test]
    fn new_checks_length() {
        assert!(HostTensor::new(ElemType::F32, vec![2], vec![0; 7]).is_err());
        assert!(HostTensor::new(ElemType::F32, vec![2], vec![0; 8]).is_ok());
    }
}
