//! Element types.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Element type of a tensor.
///
/// Floating point tensors are computed in f32 on targets without `shader-f16`; integer types
/// narrower than 32 bits are widened to 32 bits in GPU storage (see docs/bundle-format.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16.
    F16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 8-bit integer (quantized models).
    I8,
    /// Unsigned 8-bit integer (quantized models).
    U8,
    /// Boolean.
    Bool,
}

impl DType {
    /// True for f32 and f16.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16)
    }

    /// True for the signed and unsigned integer types.
    pub fn is_int(self) -> bool {
        matches!(self, DType::I32 | DType::U32 | DType::I8 | DType::U8)
    }

    /// Bytes per element in host memory (and in safetensors weight files).
    pub fn host_size(self) -> usize {
        match self {
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// The lowercase name used in manifests and messages.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::Bool => "bool",
        }
    }

    /// Parses a name as written by [`DType::name`].
    pub fn from_name(name: &str) -> Option<DType> {
        Some(match name {
            "f32" => DType::F32,
            "f16" => DType::F16,
            "i32" => DType::I32,
            "u32" => DType::U32,
            "i8" => DType::I8,
            "u8" => DType::U8,
            "bool" => DType::Bool,
            _ => return None,
        })
    }

    /// Rounds an exact value to what this dtype can hold (the interpreter's storage rule).
    pub fn round(self, v: f64) -> f64 {
        match self {
            DType::F32 => v as f32 as f64,
            DType::F16 => half::f16::from_f64(v).to_f64(),
            DType::I32 => wrap_int(v, 32, true),
            DType::U32 => wrap_int(v, 32, false),
            DType::I8 => wrap_int(v, 8, true),
            DType::U8 => wrap_int(v, 8, false),
            DType::Bool => (v != 0.0) as u8 as f64,
        }
    }
}

/// Truncates toward zero and wraps into a `bits`-wide two's complement (or unsigned) range.
fn wrap_int(v: f64, bits: u32, signed: bool) -> f64 {
    if !v.is_finite() {
        return 0.0;
    }
    let t = v.trunc() as i128;
    let m = 1i128 << bits;
    let mut r = t.rem_euclid(m);
    if signed && r >= m / 2 {
        r -= m;
    }
    r as f64
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
