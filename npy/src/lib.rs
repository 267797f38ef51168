//! Decoding `.npy` bytes (NumPy's array format) into a dtype, a shape and little-endian element
//! bytes, with typed errors and no allocation that the file's own size does not bound.
//!
//! A crate of its own so that what parses untrusted files links without the GPU runtime: the
//! `kiln` CLI wraps the result into a `HostTensor`, and the `npy` fuzz target calls [`decode`]
//! directly.

use half::f16;
use kiln_abi::ElemType;

/// A decoded array: C-order elements as little-endian bytes of `dtype`.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Element type.
    pub dtype: ElemType,
    /// Dims, outermost first (empty for a scalar).
    pub shape: Vec<usize>,
    /// `numel * dtype.host_size()` little-endian bytes.
    pub data: Vec<u8>,
}

/// Why bytes are not a `.npy` array Kiln reads.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The header does not parse.
    #[error("not a valid .npy file: {0}")]
    Header(std::io::Error),
    /// Fortran (column-major) order.
    #[error("Fortran-order arrays are not supported; save with np.ascontiguousarray")]
    FortranOrder,
    /// A dim does not fit in `usize`.
    #[error("shape {0:?} does not fit this machine")]
    ShapeTooLarge(Vec<u64>),
    /// The header's shape needs more data than the file holds.
    #[error("the header's shape {shape:?} needs {needed} bytes of data, but the file has {have} bytes in all")]
    TooShort {
        /// The header's shape.
        shape: Vec<usize>,
        /// Bytes the shape needs (or "more than 2^64").
        needed: String,
        /// The file's whole size.
        have: usize,
    },
    /// A dtype Kiln has no host type for.
    #[error("dtype '{0}' is not supported (use float32, float16, int32, int64, uint32, uint8, int8 or bool)")]
    Dtype(String),
    /// The element data does not decode.
    #[error("reading the data: {0}")]
    Data(std::io::Error),
    /// The header nests brackets deeper than any array header does.
    #[error("not a valid .npy file: the header nests brackets {depth} deep (at most {MAX_HEADER_NESTING})")]
    HeaderNesting {
        /// The deepest nesting found.
        depth: usize,
    },
}

/// Deepest bracket nesting a header may have. A C-order header is a dict holding a shape tuple
/// (depth 2); structured dtypes, which Kiln does not read anyway, nest a few levels more. The
/// header parser (`py_literal`) backtracks exponentially in the depth: a forged header of 17
/// `{` took minutes (found by the `npy` fuzz target).
pub const MAX_HEADER_NESTING: usize = 8;

/// The header text of a `.npy` file (after the magic, version and length fields), when the
/// file is long enough to hold it; `None` leaves the error to the full parser.
fn header_text(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return None;
    }
    let (start, len): (usize, usize) = match bytes[6] {
        1 => (10, u16::from_le_bytes([bytes[8], bytes[9]]) as usize),
        _ if bytes.len() >= 12 => (
            12,
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
        ),
        _ => return None,
    };
    bytes.get(start..start.checked_add(len)?)
}

/// The deepest nesting of `{`, `[` and `(` in `text`.
fn nesting(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for &c in text {
        match c {
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Decodes a C-order `.npy` array of f32, f16, i32, i64, u32, u8, i8 or bool.
pub fn decode(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    if let Some(depth) = header_text(bytes).map(nesting).filter(|&d| d > MAX_HEADER_NESTING) {
        return Err(NpyError::HeaderNesting { depth });
    }
    let npy = npyz::NpyFile::new(bytes).map_err(NpyError::Header)?;
    if npy.order() != npyz::Order::C {
        return Err(NpyError::FortranOrder);
    }
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| NpyError::ShapeTooLarge(npy.shape().to_vec()))?;
    // The header's shape must match the data that is there: checked before anything is
    // allocated for it (a forged header cannot make the reader allocate or wrap around).
    let elems = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let item = npy.dtype().num_bytes().unwrap_or(1).max(1);
    let needed = elems.and_then(|n| n.checked_mul(item));
    if needed.is_none_or(|n| n > bytes.len()) {
        return Err(NpyError::TooShort {
            shape,
            needed: needed.map_or("more than 2^64".to_string(), |n| n.to_string()),
            have: bytes.len(),
        });
    }
    // `descr()` is the Python literal of the header's dtype, quotes included (`'<f4'`).
    let descr = npy.dtype().descr();
    fn le<T, const N: usize>(v: Vec<T>, f: impl Fn(&T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(f).collect()
    }
    let (dtype, data) = match descr.trim_matches('\'').trim_start_matches(['<', '|', '=']) {
        "f4" => (
            ElemType::F32,
            le(npy.into_vec::<f32>().map_err(NpyError::Data)?, |v| v.to_le_bytes()),
        ),
        "f2" => (
            ElemType::F16,
            le(npy.into_vec::<f16>().map_err(NpyError::Data)?, |v| v.to_le_bytes()),
        ),
        "i4" => (
            ElemType::I32,
            le(npy.into_vec::<i32>().map_err(NpyError::Data)?, |v| v.to_le_bytes()),
        ),
        "i8" => (
            ElemType::I64,
            le(npy.into_vec::<i64>().map_err(NpyError::Data)?, |v| v.to_le_bytes()),
        ),
        "u4" => (
            ElemType::U32,
            le(npy.into_vec::<u32>().map_err(NpyError::Data)?, |v| v.to_le_bytes()),
        ),
        "u1" => (ElemType::U8, npy.into_vec::<u8>().map_err(NpyError::Data)?),
        "i1" => (
            ElemType::I8,
            le(npy.into_vec::<i8>().map_err(NpyError::Data)?, |v| v.to_le_bytes()),
        ),
        "b1" => (
            ElemType::Bool,
            le(npy.into_vec::<bool>().map_err(NpyError::Data)?, |v| [u8::from(*v)]),
        ),
        other => return Err(NpyError::Dtype(other.to_string())),
    };
    let want = elems.unwrap_or(0) * dtype.host_size();
    if data.len() != want {
        return Err(NpyError::Data(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} data bytes for shape {shape:?} of {}", data.len(), dtype.name()),
        )));
    }
    Ok(NpyArray { dtype, shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 `.npy` file with this header text (padded as NumPy does) and data.
    fn npy_v1(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn a_plain_header_decodes() {
        let data: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = decode(&npy_v1(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
            &data,
        ))
        .unwrap();
        assert_eq!((a.dtype, a.shape, a.data), (ElemType::F32, vec![2], data));
    }

    /// The `npy` fuzz target's hang: 17 nested `{` in the header kept the header parser busy
    /// for minutes; it is refused before parsing.
    #[test]
    fn a_deeply_nested_header_is_refused_before_parsing() {
        let header = format!(
            "{}2', 'fortran_o\0{{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }}",
            "{".repeat(17)
        );
        match decode(&npy_v1(&header, &[1, 0, 1])) {
            Err(NpyError::HeaderNesting { depth }) => assert_eq!(depth, 19),
            other => panic!("{other:?}"),
        }
    }
}
