//! Writing GGUF files: for tests (tiny random models, malformed files), fuzz seeds and tools.
//!
//! ```
//! use kiln_compiler::frontend::gguf::{Gguf, GgufWriter};
//! use kiln_ir::BlockType;
//! let bytes = GgufWriter::new()
//!     .meta_str("general.architecture", "llama")
//!     .meta_u32("llama.block_count", 2)
//!     .tensor_f32("output_norm.weight", &[4], &[1.0, 2.0, 3.0, 4.0])
//!     .to_bytes();
//! let g = Gguf::from_bytes(bytes).unwrap();
//! assert_eq!(g.get_u32("llama.block_count").unwrap(), 2);
//! assert_eq!(g.tensor("output_norm.weight").unwrap().block, BlockType::F32);
//! ```

use super::value::{MetaValue, ValueType};
use super::{DEFAULT_ALIGNMENT, MAGIC};
use kiln_ir::BlockType;
use std::path::Path;

/// One tensor to write.
#[derive(Clone, Debug)]
struct PendingTensor {
    name: String,
    /// Kiln order (outermost first); written reversed.
    dims: Vec<usize>,
    type_id: u32,
    bytes: Vec<u8>,
}

/// Builds a GGUF file: metadata in insertion order, then tensors in insertion order.
///
/// The writer does not validate (tests use it to write malformed files); the reader does.
#[derive(Clone, Debug)]
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<PendingTensor>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

impl GgufWriter {
    /// An empty version-3 file with the default alignment (32).
    pub fn new() -> GgufWriter {
        GgufWriter {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Sets the version field (2 and 3 share the layout Kiln reads).
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Aligns tensor data to `alignment` bytes and records `general.alignment`.
    pub fn alignment(mut self, alignment: u32) -> Self {
        self.alignment = alignment.max(1) as u64;
        self.meta("general.alignment", MetaValue::U32(alignment))
    }

    /// Adds a metadata pair of any type.
    pub fn meta(mut self, key: &str, value: MetaValue) -> Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Adds a u32.
    pub fn meta_u32(self, key: &str, v: u32) -> Self {
        self.meta(key, MetaValue::U32(v))
    }

    /// Adds an i32.
    pub fn meta_i32(self, key: &str, v: i32) -> Self {
        self.meta(key, MetaValue::I32(v))
    }

    /// Adds a u64.
    pub fn meta_u64(self, key: &str, v: u64) -> Self {
        self.meta(key, MetaValue::U64(v))
    }

    /// Adds an f32.
    pub fn meta_f32(self, key: &str, v: f32) -> Self {
        self.meta(key, MetaValue::F32(v))
    }

    /// Adds a bool.
    pub fn meta_bool(self, key: &str, v: bool) -> Self {
        self.meta(key, MetaValue::Bool(v))
    }

    /// Adds a string.
    pub fn meta_str(self, key: &str, v: &str) -> Self {
        self.meta(key, MetaValue::String(v.to_string()))
    }

    /// Adds an array of strings.
    pub fn meta_array_str<S: AsRef<str>>(self, key: &str, v: &[S]) -> Self {
        let items = v.iter().map(|s| MetaValue::String(s.as_ref().to_string())).collect();
        self.meta(key, MetaValue::Array(ValueType::String, items))
    }

    /// Adds an array of i32.
    pub fn meta_array_i32(self, key: &str, v: &[i32]) -> Self {
        let items = v.iter().map(|&x| MetaValue::I32(x)).collect();
        self.meta(key, MetaValue::Array(ValueType::I32, items))
    }

    /// Adds an array of u32.
    pub fn meta_array_u32(self, key: &str, v: &[u32]) -> Self {
        let items = v.iter().map(|&x| MetaValue::U32(x)).collect();
        self.meta(key, MetaValue::Array(ValueType::U32, items))
    }

    /// Adds an array of f32.
    pub fn meta_array_f32(self, key: &str, v: &[f32]) -> Self {
        let items = v.iter().map(|&x| MetaValue::F32(x)).collect();
        self.meta(key, MetaValue::Array(ValueType::F32, items))
    }

    /// Adds a tensor with Kiln-order `dims` (outermost first; written innermost first, as GGUF
    /// wants) and its raw bytes in `block` format.
    pub fn tensor(self, name: &str, dims: &[usize], block: BlockType, bytes: Vec<u8>) -> Self {
        self.tensor_raw(name, dims, block.ggml_id(), bytes)
    }

    /// Adds an f32 tensor.
    pub fn tensor_f32(self, name: &str, dims: &[usize], values: &[f32]) -> Self {
        let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.tensor(name, dims, BlockType::F32, bytes)
    }

    /// Adds a tensor with any GGML type id (also ones Kiln does not support, for tests).
    pub fn tensor_raw(mut self, name: &str, dims: &[usize], type_id: u32, bytes: Vec<u8>) -> Self {
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            type_id,
            bytes,
        });
        self
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_str(&mut out, k);
            out.extend_from_slice(&v.value_type().id().to_le_bytes());
            put_value(&mut out, v);
        }
        let align = self.alignment;
        let pad = |n: u64| n.div_ceil(align) * align;
        let mut offset = 0u64;
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for &d in t.dims.iter().rev() {
                out.extend_from_slice(&(d as u64).to_le_bytes());
            }
            out.extend_from_slice(&t.type_id.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset = pad(offset + t.bytes.len() as u64);
        }
        let data_start = pad(out.len() as u64);
        out.resize(data_start as usize, 0);
        for t in &self.tensors {
            out.extend_from_slice(&t.bytes);
            let end = data_start + pad(out.len() as u64 - data_start);
            out.resize(end as usize, 0);
        }
        out
    }

    /// Writes the file to `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.to_bytes())
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.push(*x as u8),
        MetaValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(*x as u8),
        MetaValue::String(s) => put_str(out, s),
        MetaValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Array(t, items) => {
            out.extend_from_slice(&t.id().to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for x in items {
                put_value(out, x);
            }
        }
    }
}
