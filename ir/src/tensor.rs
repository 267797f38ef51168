//! Tensor types and host tensors.

use crate::{DType, Dim};
use half::f16;
use serde::{Deserialize, Serialize};

/// Raw bytes whose length does not match the tensor's element count and type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{bytes} bytes do not hold {elements} elements of {dtype}")]
pub struct ByteLengthError {
    /// Length of the bytes given.
    pub bytes: usize,
    /// Elements the shape asks for.
    pub elements: usize,
    /// Element type.
    pub dtype: DType,
}

/// A shape of symbolic dims, outermost first.
pub type Shape = Vec<Dim>;

/// The type of a value in the graph: dtype plus symbolic shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorType {
    /// Element type.
    pub dtype: DType,
    /// Symbolic shape.
    pub shape: Shape,
}

impl TensorType {
    /// A type with a constant shape.
    pub fn new(dtype: DType, dims: &[usize]) -> Self {
        TensorType {
            dtype,
            shape: dims.iter().map(|&d| Dim::from(d)).collect(),
        }
    }

    /// Rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The constant dims, if every dim is constant.
    pub fn const_shape(&self) -> Option<Vec<usize>> {
        self.shape.iter().map(|d| d.as_const().map(|v| v as usize)).collect()
    }

    /// Number of elements as a dim expression.
    pub fn numel(&self) -> Dim {
        Dim::product(&self.shape)
    }

    /// `f32[batch, 4]` style description for messages.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        format!("{}[{}]", self.dtype, dims.join(", "))
    }
}

/// Element storage of a host tensor, compact per dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// f32 values.
    F32(Vec<f32>),
    /// f16 values.
    F16(Vec<f16>),
    /// i32 values.
    I32(Vec<i32>),
    /// u32 values.
    U32(Vec<u32>),
    /// i8 values.
    I8(Vec<i8>),
    /// u8 values.
    U8(Vec<u8>),
    /// bool values.
    Bool(Vec<bool>),
}

/// A host tensor with a concrete shape: weights, inputs, interpreter values.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Concrete shape.
    pub shape: Vec<usize>,
    /// Elements in row-major order.
    pub data: TensorData,
}

impl Tensor {
    /// Builds a tensor from exact values, rounding each to `dtype`.
    pub fn from_f64(dtype: DType, shape: Vec<usize>, v: &[f64]) -> Tensor {
        assert_eq!(
            shape.iter().product::<usize>(),
            v.len(),
            "tensor shape does not match data"
        );
        let data = match dtype {
            DType::F32 => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
            DType::F16 => TensorData::F16(v.iter().map(|&x| f16::from_f64(x)).collect()),
            DType::I32 => TensorData::I32(v.iter().map(|&x| dtype.round(x) as i32).collect()),
            DType::U32 => TensorData::U32(v.iter().map(|&x| dtype.round(x) as u32).collect()),
            DType::I8 => TensorData::I8(v.iter().map(|&x| dtype.round(x) as i8).collect()),
            DType::U8 => TensorData::U8(v.iter().map(|&x| dtype.round(x) as u8).collect()),
            DType::Bool => TensorData::Bool(v.iter().map(|&x| x != 0.0).collect()),
        };
        Tensor { shape, data }
    }

    /// An f32 tensor.
    pub fn f32(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        assert_eq!(
            shape.iter().product::<usize>(),
            v.len(),
            "tensor shape does not match data"
        );
        Tensor {
            shape,
            data: TensorData::F32(v),
        }
    }

    /// An i32 tensor.
    pub fn i32(shape: Vec<usize>, v: Vec<i32>) -> Tensor {
        assert_eq!(
            shape.iter().product::<usize>(),
            v.len(),
            "tensor shape does not match data"
        );
        Tensor {
            shape,
            data: TensorData::I32(v),
        }
    }

    /// A scalar (rank 0) tensor.
    pub fn scalar(dtype: DType, v: f64) -> Tensor {
        Tensor::from_f64(dtype, vec![], &[v])
    }

    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match &self.data {
            TensorData::F32(_) => DType::F32,
            TensorData::F16(_) => DType::F16,
            TensorData::I32(_) => DType::I32,
            TensorData::U32(_) => DType::U32,
            TensorData::I8(_) => DType::I8,
            TensorData::U8(_) => DType::U8,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    /// The tensor's type (constant shape).
    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype(), &self.shape)
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// All elements as exact f64 values.
    pub fn to_f64(&self) -> Vec<f64> {
        let len = match &self.data {
            TensorData::F32(v) => v.len(),
            TensorData::F16(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::U32(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        };
        self.range_to_f64(0..len)
    }

    /// The elements at flat (row-major) positions `range` as exact f64 values; panics if the
    /// range is out of bounds.
    pub fn range_to_f64(&self, range: std::ops::Range<usize>) -> Vec<f64> {
        match &self.data {
            TensorData::F32(v) => v[range].iter().map(|&x| x as f64).collect(),
            TensorData::F16(v) => v[range].iter().map(|x| x.to_f64()).collect(),
            TensorData::I32(v) => v[range].iter().map(|&x| x as f64).collect(),
            TensorData::U32(v) => v[range].iter().map(|&x| x as f64).collect(),
            TensorData::I8(v) => v[range].iter().map(|&x| x as f64).collect(),
            TensorData::U8(v) => v[range].iter().map(|&x| x as f64).collect(),
            TensorData::Bool(v) => v[range].iter().map(|&x| x as u8 as f64).collect(),
        }
    }

    /// All elements converted to f32.
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            TensorData::F32(v) => v.clone(),
            _ => self.to_f64().into_iter().map(|x| x as f32).collect(),
        }
    }

    /// Little-endian bytes in host layout (as in safetensors files).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match &self.data {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
            TensorData::U8(v) => v.clone(),
            TensorData::Bool(v) => v.iter().map(|&x| x as u8).collect(),
        }
    }

    /// Parses little-endian bytes written by [`Tensor::to_le_bytes`].
    pub fn from_le_bytes(dtype: DType, shape: Vec<usize>, b: &[u8]) -> Result<Tensor, ByteLengthError> {
        let n: usize = shape.iter().product();
        if b.len() != n * dtype.host_size() {
            return Err(ByteLengthError {
                bytes: b.len(),
                elements: n,
                dtype,
            });
        }
        let data = match dtype {
            DType::F32 => TensorData::F32(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            DType::F16 => TensorData::F16(
                b.chunks_exact(2)
                    .map(|c| f16::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            DType::I32 => TensorData::I32(
                b.chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            DType::U32 => TensorData::U32(
                b.chunks_exact(4)
                    .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            DType::I8 => TensorData::I8(b.iter().map(|&x| x as i8).collect()),
            DType::U8 => TensorData::U8(b.to_vec()),
            DType::Bool => TensorData::Bool(b.iter().map(|&x| x != 0).collect()),
        };
        Ok(Tensor { shape, data })
    }
}

/// Row-major strides (in elements) of a concrete shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}
