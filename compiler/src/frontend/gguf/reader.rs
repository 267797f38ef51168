//! Parsing a GGUF file: header, metadata, tensor infos, data section; typed accessors.

use super::error::GgufError;
use super::value::{MetaValue, ValueType};
use super::{DEFAULT_ALIGNMENT, MAGIC};
use kiln_ir::BlockType;
use std::collections::HashMap;
use std::path::Path;

/// Arrays may nest at most this deep (the specification allows nesting; real files use one level).
pub const MAX_ARRAY_NESTING: usize = 4;

/// GGML's maximum number of dims.
pub const MAX_DIMS: u32 = 4;

/// GGML types Kiln knows the layout of but does not compute with: (id, name, block elements,
/// block bytes). Knowing their sizes lets the reader bounds-check every tensor of a file, so a
/// file with a few such tensors still opens (for `kiln inspect`) and the error names the tensor
/// only when it is used.
const OTHER_GGML_TYPES: [(u32, &str, u64, u64); 12] = [
    (6, "q5_0", 32, 22),
    (7, "q5_1", 32, 24),
    (9, "q8_1", 32, 36),
    (10, "q2_K", 256, 84),
    (11, "q3_K", 256, 110),
    (13, "q5_K", 256, 176),
    (15, "q8_K", 256, 292),
    (24, "i8", 1, 1),
    (25, "i16", 1, 2),
    (26, "i32", 1, 4),
    (27, "i64", 1, 8),
    (28, "f64", 1, 8),
];

/// Name, elements per block and bytes per block of a GGML type id, if known.
fn ggml_layout(type_id: u32) -> Option<(&'static str, u64, u64)> {
    if let Some(b) = BlockType::from_ggml_id(type_id) {
        return Some((b.name(), b.block_elems() as u64, b.block_bytes() as u64));
    }
    OTHER_GGML_TYPES
        .iter()
        .find(|t| t.0 == type_id)
        .map(|&(_, name, e, b)| (name, e, b))
}

/// One tensor's entry in the file's tensor table.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Tensor name (e.g. `blk.0.attn_q.weight`).
    pub name: String,
    /// Logical dims in Kiln's order, **outermost first**. GGUF lists dims innermost first
    /// (`ne[0]` is the contiguous axis); the reader reverses them, so a GGUF weight with
    /// `ne = [K, N]` (N rows of K elements) has `dims = [N, K]`.
    pub dims: Vec<usize>,
    /// The GGML type id.
    pub type_id: u32,
    /// GGML's name for the type (`q4_1`, `f32`, `q5_0`, ...).
    pub type_name: &'static str,
    /// Byte offset of the data, relative to the data section.
    pub offset: u64,
    /// Byte size of the data.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// The tensor's block type, or an error naming the tensor for a type Kiln does not support.
    pub fn block_type(&self) -> Result<BlockType, GgufError> {
        BlockType::from_ggml_id(self.type_id)
            .ok_or_else(|| GgufError::unsupported(&self.name, self.type_id, self.type_name))
    }
}

/// A tensor's info, block type and raw bytes, borrowed from the file.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    /// The tensor table entry.
    pub info: &'a TensorInfo,
    /// Its block type.
    pub block: BlockType,
    /// Its bytes, exactly as stored (`info.n_bytes` long).
    pub bytes: &'a [u8],
}

/// A parsed GGUF file held in memory.
#[derive(Clone, Debug)]
pub struct Gguf {
    file: Vec<u8>,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, MetaValue)>,
    meta_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

/// A bounds-checked little-endian reader over the file.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.pos as u64,
                need: n,
                len: self.buf.len() as u64,
            });
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        Ok(self.take(N as u64, what)?.try_into().expect("take returned N bytes"))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A GGUF string: u64 byte length, then UTF-8 bytes.
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let offset = self.pos as u64;
        let len = self.u64(&|| format!("length of {}", what()))?;
        if len > self.remaining() {
            return Err(GgufError::BadString {
                what: what(),
                offset,
                msg: format!("length {len} exceeds the {} bytes left in the file", self.remaining()),
            });
        }
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| GgufError::BadString {
            what: what(),
            offset,
            msg: format!("not UTF-8 ({e})"),
        })
    }

    /// A count of items of at least `min_size` bytes each, checked against the bytes left, so a
    /// corrupt count cannot make the reader allocate more than the file could hold.
    fn count(&mut self, min_size: u64, what: &dyn Fn() -> String) -> Result<usize, GgufError> {
        let offset = self.pos as u64;
        let n = self.u64(what)?;
        let need = n.checked_mul(min_size).ok_or_else(|| GgufError::Overflow {
            what: format!("the size of {} ({n} items)", what()),
        })?;
        if need > self.remaining() {
            return Err(GgufError::Truncated {
                what: format!("{} ({n} items of at least {min_size} bytes)", what()),
                offset,
                need,
                len: self.buf.len() as u64,
            });
        }
        usize::try_from(n).map_err(|_| GgufError::Overflow { what: what() })
    }

    fn value(&mut self, ty: ValueType, key: &str, depth: usize) -> Result<MetaValue, GgufError> {
        let what = || format!("value of '{key}'");
        Ok(match ty {
            ValueType::U8 => MetaValue::U8(self.array::<1>(&what)?[0]),
            ValueType::I8 => MetaValue::I8(self.array::<1>(&what)?[0] as i8),
            ValueType::U16 => MetaValue::U16(u16::from_le_bytes(self.array(&what)?)),
            ValueType::I16 => MetaValue::I16(i16::from_le_bytes(self.array(&what)?)),
            ValueType::U32 => MetaValue::U32(u32::from_le_bytes(self.array(&what)?)),
            ValueType::I32 => MetaValue::I32(i32::from_le_bytes(self.array(&what)?)),
            ValueType::F32 => MetaValue::F32(f32::from_le_bytes(self.array(&what)?)),
            ValueType::U64 => MetaValue::U64(u64::from_le_bytes(self.array(&what)?)),
            ValueType::I64 => MetaValue::I64(i64::from_le_bytes(self.array(&what)?)),
            ValueType::F64 => MetaValue::F64(f64::from_le_bytes(self.array(&what)?)),
            ValueType::Bool => {
                let offset = self.pos as u64;
                match self.array::<1>(&what)?[0] {
                    0 => MetaValue::Bool(false),
                    1 => MetaValue::Bool(true),
                    b => {
                        return Err(GgufError::WrongType {
                            key: key.to_string(),
                            expected: "bool 0 or 1".into(),
                            found: format!("byte {b} at offset {offset}"),
                        })
                    }
                }
            }
            ValueType::String => MetaValue::String(self.string(&what)?),
            ValueType::Array => {
                let offset = self.pos as u64;
                if depth >= MAX_ARRAY_NESTING {
                    return Err(GgufError::NestingTooDeep {
                        key: key.to_string(),
                        offset,
                        max: MAX_ARRAY_NESTING,
                    });
                }
                let elem = self.value_type(key)?;
                let n = self.count(elem.min_size(), &|| format!("array '{key}'"))?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(elem, key, depth + 1)?);
                }
                MetaValue::Array(elem, v)
            }
        })
    }

    fn value_type(&mut self, key: &str) -> Result<ValueType, GgufError> {
        let offset = self.pos as u64;
        let id = self.u32(&|| format!("value type of '{key}'"))?;
        ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType {
            key: key.to_string(),
            type_id: id,
            offset,
        })
    }
}

impl Gguf {
    /// Reads and parses the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf, GgufError> {
        let path = path.as_ref();
        let file = std::fs::read(path).map_err(|e| GgufError::Io {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        Gguf::from_bytes(file)
    }

    /// Parses a whole file held in memory.
    pub fn from_bytes(file: Vec<u8>) -> Result<Gguf, GgufError> {
        let mut c = Cursor { buf: &file, pos: 0 };
        if file.len() < 4 || file[..4] != MAGIC {
            return Err(GgufError::BadMagic {
                found: file[..file.len().min(4)].to_vec(),
            });
        }
        c.pos = 4;
        let version = c.u32(&|| "version".into())?;
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion { version });
        }
        // Each tensor info takes at least 24 bytes, each key/value pair at least 13.
        let n_tensors = c.count(24, &|| "tensor count".into())?;
        let n_kv = c.count(13, &|| "metadata count".into())?;

        let mut metadata = Vec::with_capacity(n_kv);
        let mut meta_index = HashMap::with_capacity(n_kv);
        for i in 0..n_kv {
            let key = c.string(&|| format!("metadata key #{i}"))?;
            let ty = c.value_type(&key)?;
            let value = c.value(ty, &key, 0)?;
            if meta_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(GgufError::Duplicate {
                    what: "metadata key",
                    name: key,
                });
            }
            metadata.push((key, value));
        }

        let alignment = match meta_index.get("general.alignment").map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(MetaValue::U32(a)) if a.is_power_of_two() => *a as u64,
            Some(MetaValue::U32(a)) => {
                return Err(GgufError::BadAlignment {
                    msg: format!("{a} is not a power of two"),
                })
            }
            Some(v) => {
                return Err(GgufError::BadAlignment {
                    msg: format!("it is {}, expected u32", v.type_description()),
                })
            }
        };

        let mut tensors = Vec::with_capacity(n_tensors);
        let mut tensor_index = HashMap::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = c.string(&|| format!("name of tensor #{i}"))?;
            let n_dims = c.u32(&|| format!("dim count of tensor '{name}'"))?;
            if n_dims > MAX_DIMS {
                return Err(GgufError::BadRank { name, n_dims });
            }
            let mut ne = Vec::with_capacity(n_dims as usize);
            for d in 0..n_dims {
                ne.push(c.u64(&|| format!("dim {d} of tensor '{name}'"))?);
            }
            let type_id = c.u32(&|| format!("type of tensor '{name}'"))?;
            let offset = c.u64(&|| format!("data offset of tensor '{name}'"))?;
            let (type_name, block_elems, block_bytes) =
                ggml_layout(type_id).ok_or_else(|| GgufError::UnknownTensorType {
                    name: name.clone(),
                    type_id,
                })?;
            let inner = ne.first().copied().unwrap_or(1);
            if inner % block_elems != 0 {
                return Err(GgufError::NotBlockMultiple {
                    name,
                    dim: inner,
                    type_name: type_name.into(),
                    block: block_elems,
                });
            }
            let overflow = || GgufError::Overflow {
                what: format!("the size of tensor '{name}' (dims {ne:?})"),
            };
            let numel = ne
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .filter(|&n| n <= i64::MAX as u64)
                .ok_or_else(overflow)?;
            let n_bytes = (numel / block_elems).checked_mul(block_bytes).ok_or_else(overflow)?;
            let dims = ne
                .iter()
                .rev()
                .map(|&d| usize::try_from(d).map_err(|_| overflow()))
                .collect::<Result<Vec<_>, _>>()?;
            if tensor_index.insert(name.clone(), tensors.len()).is_some() {
                return Err(GgufError::Duplicate { what: "tensor", name });
            }
            tensors.push(TensorInfo {
                name,
                dims,
                type_id,
                type_name,
                offset,
                n_bytes,
            });
        }

        let data_offset = (c.pos as u64).div_ceil(alignment) * alignment;
        let len = file.len() as u64;
        for t in &tensors {
            let end = t.offset.checked_add(t.n_bytes).and_then(|e| e.checked_add(data_offset));
            let msg = if t.offset % alignment != 0 {
                Some(format!(
                    "starts at an offset that is not a multiple of the alignment {alignment}"
                ))
            } else if end.is_none_or(|e| e > len) {
                Some(format!("ends past the end of the file ({len} bytes)"))
            } else {
                None
            };
            if let Some(msg) = msg {
                return Err(GgufError::DataOutOfBounds {
                    name: t.name.clone(),
                    start: t.offset,
                    end: t.offset.saturating_add(t.n_bytes),
                    data_offset,
                    msg,
                });
            }
        }

        Ok(Gguf {
            file,
            version,
            alignment,
            data_offset,
            metadata,
            meta_index,
            tensors,
            tensor_index,
        })
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data alignment (`general.alignment`, 32 when absent).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute byte offset of the data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Every metadata pair, in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &MetaValue)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.meta_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// The value of `key`, or an error naming the missing key.
    pub fn value(&self, key: &str) -> Result<&MetaValue, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey { key: key.into() })
    }

    fn wrong(&self, key: &str, expected: &str, v: &MetaValue) -> GgufError {
        GgufError::WrongType {
            key: key.into(),
            expected: expected.into(),
            found: format!("{} {v}", v.type_description()),
        }
    }

    /// An unsigned integer that fits in u32, stored as any integer type (writers differ).
    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        let v = self.value(key)?;
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| self.wrong(key, "an integer in u32 range", v))
    }

    /// An unsigned integer, stored as any integer type.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.value(key)?;
        v.as_u64().ok_or_else(|| self.wrong(key, "a non-negative integer", v))
    }

    /// A signed integer that fits in i32, stored as any integer type.
    pub fn get_i32(&self, key: &str) -> Result<i32, GgufError> {
        let v = self.value(key)?;
        v.as_i64()
            .and_then(|x| i32::try_from(x).ok())
            .ok_or_else(|| self.wrong(key, "an integer in i32 range", v))
    }

    /// A float stored as f32 or f64.
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        let v = self.value(key)?;
        v.as_f64().map(|x| x as f32).ok_or_else(|| self.wrong(key, "f32", v))
    }

    /// A bool.
    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        match self.value(key)? {
            MetaValue::Bool(b) => Ok(*b),
            v => Err(self.wrong(key, "bool", v)),
        }
    }

    /// A string.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.value(key)?;
        v.as_str().ok_or_else(|| self.wrong(key, "string", v))
    }

    /// An array of any element type.
    pub fn get_array(&self, key: &str) -> Result<&[MetaValue], GgufError> {
        let v = self.value(key)?;
        v.as_array().ok_or_else(|| self.wrong(key, "array", v))
    }

    /// An array of strings (e.g. `tokenizer.ggml.tokens`).
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        let v = self.value(key)?;
        let err = || self.wrong(key, "array of string", v);
        v.as_array()
            .ok_or_else(err)?
            .iter()
            .map(|x| x.as_str().ok_or_else(err))
            .collect()
    }

    /// An array of integers that fit in i32 (e.g. `tokenizer.ggml.token_type`).
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>, GgufError> {
        let v = self.value(key)?;
        let err = || self.wrong(key, "array of integers", v);
        v.as_array()
            .ok_or_else(err)?
            .iter()
            .map(|x| x.as_i64().and_then(|i| i32::try_from(i).ok()).ok_or_else(err))
            .collect()
    }

    /// An array of floats (e.g. `tokenizer.ggml.scores`).
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>, GgufError> {
        let v = self.value(key)?;
        let err = || self.wrong(key, "array of floats", v);
        v.as_array()
            .ok_or_else(err)?
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32).ok_or_else(err))
            .collect()
    }

    /// `general.architecture` (e.g. `llama`).
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.get_str("general.architecture")
    }

    /// The tensor table, in file order.
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// A tensor's table entry, or an error naming the missing tensor.
    pub fn tensor_info(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor_index
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| GgufError::MissingTensor { name: name.into() })
    }

    /// True when the file has a tensor of this name.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.tensor_index.contains_key(name)
    }

    /// The raw bytes of a tensor (bounds were checked when the file was opened).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        let start = (self.data_offset + info.offset) as usize;
        &self.file[start..start + info.n_bytes as usize]
    }

    /// A tensor by name with its block type and bytes; errors name a missing tensor or an
    /// unsupported block type.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>, GgufError> {
        let info = self.tensor_info(name)?;
        Ok(TensorView {
            info,
            block: info.block_type()?,
            bytes: self.tensor_bytes(info),
        })
    }

    /// A tensor dequantized (or converted) to f32, in Kiln's dims order.
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>, GgufError> {
        let t = self.tensor(name)?;
        kiln_ir::quant::dequantize(t.block, t.bytes, t.info.numel()).map_err(|e| GgufError::BadTensorData {
            name: name.into(),
            msg: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::gguf::GgufWriter;

    fn sample() -> GgufWriter {
        let q = kiln_ir::quant::quantize(BlockType::Q8_0, &[0.5; 64]).unwrap();
        GgufWriter::new()
            .meta_str("general.architecture", "llama")
            .meta_u32("llama.block_count", 2)
            .meta_f32("llama.rope.freq_base", 10000.0)
            .meta_bool("flag", true)
            .meta("big", MetaValue::U64(1 << 40))
            .meta("neg", MetaValue::I8(-3))
            .meta("f64", MetaValue::F64(0.25))
            .meta_array_str("tokenizer.ggml.tokens", &["a", "b", "<s>"])
            .meta_array_i32("types", &[1, 2, 3])
            .meta_array_f32("scores", &[0.5, -1.0])
            .meta(
                "nested",
                MetaValue::Array(
                    ValueType::Array,
                    vec![MetaValue::Array(ValueType::U16, vec![MetaValue::U16(7)])],
                ),
            )
            .tensor_f32("norm", &[3], &[1.0, 2.0, 3.0])
            .tensor("w", &[2, 32], BlockType::Q8_0, q)
    }

    #[test]
    fn round_trips_metadata_and_tensors() {
        for version in [2, 3] {
            let g = Gguf::from_bytes(sample().version(version).to_bytes()).unwrap();
            assert_eq!(g.version(), version);
            assert_eq!(g.alignment(), 32);
            assert_eq!(g.data_offset() % 32, 0);
            assert_eq!(g.architecture().unwrap(), "llama");
            assert_eq!(g.get_u32("llama.block_count").unwrap(), 2);
            assert_eq!(g.get_f32("llama.rope.freq_base").unwrap(), 10000.0);
            assert!(g.get_bool("flag").unwrap());
            assert_eq!(g.get_u64("big").unwrap(), 1 << 40);
            assert_eq!(g.get_i32("neg").unwrap(), -3);
            assert_eq!(g.get_f32("f64").unwrap(), 0.25);
            assert_eq!(g.get_str_array("tokenizer.ggml.tokens").unwrap(), vec!["a", "b", "<s>"]);
            assert_eq!(g.get_i32_array("types").unwrap(), vec![1, 2, 3]);
            assert_eq!(g.get_f32_array("scores").unwrap(), vec![0.5, -1.0]);
            assert_eq!(g.get_array("nested").unwrap().len(), 1);
            assert_eq!(g.metadata().count(), 11);
            let w = g.tensor("w").unwrap();
            assert_eq!(w.block, BlockType::Q8_0);
            assert_eq!(w.info.dims, vec![2, 32]);
            assert_eq!(w.bytes.len(), 68);
            assert_eq!(w.info.offset % 32, 0);
            // The scale 0.5/127 rounds to f16, so the values come back within an f16 ulp.
            assert!(g.tensor_f32("w").unwrap().iter().all(|&v| (v - 0.5).abs() < 1e-3));
            assert_eq!(g.tensor_f32("norm").unwrap(), vec![1.0, 2.0, 3.0]);
        }
    }

    #[test]
    fn dims_are_reversed_to_outermost_first() {
        let bytes = GgufWriter::new().tensor_f32("t", &[2, 3, 4], &[0.0; 24]).to_bytes();
        // The writer puts GGUF's ne = [4, 3, 2] in the file.
        let g = Gguf::from_bytes(bytes.clone()).unwrap();
        assert_eq!(g.tensor_info("t").unwrap().dims, vec![2, 3, 4]);
        let ne0_at = 4 + 4 + 8 + 8 + 8 + 1 + 4;
        assert_eq!(u64::from_le_bytes(bytes[ne0_at..ne0_at + 8].try_into().unwrap()), 4);
    }

    #[test]
    fn custom_alignment_is_honoured() {
        let g = Gguf::from_bytes(
            GgufWriter::new()
                .alignment(64)
                .tensor_f32("a", &[3], &[1.0; 3])
                .tensor_f32("b", &[2], &[2.0; 2])
                .to_bytes(),
        )
        .unwrap();
        assert_eq!(g.alignment(), 64);
        assert_eq!(g.tensor_info("b").unwrap().offset, 64);
        assert_eq!(g.tensor_f32("b").unwrap(), vec![2.0, 2.0]);
    }

    #[test]
    fn lookups_name_the_key_or_tensor() {
        let g = Gguf::from_bytes(sample().to_bytes()).unwrap();
        let e = g.get_u32("llama.context_length").unwrap_err();
        assert_eq!(
            e,
            GgufError::MissingKey {
                key: "llama.context_length".into()
            }
        );
        assert!(e.to_string().contains("llama.context_length"));
        let e = g.get_u32("general.architecture").unwrap_err();
        assert!(
            matches!(e, GgufError::WrongType { ref key, .. } if key == "general.architecture"),
            "{e}"
        );
        assert_eq!(
            g.get_u32("neg").unwrap_err().to_string(),
            "metadata key 'neg' is i8 -3, expected an integer in u32 range"
        );
        let e = g.tensor("output.weight").unwrap_err();
        assert_eq!(
            e,
            GgufError::MissingTensor {
                name: "output.weight".into()
            }
        );
    }

    #[test]
    fn malformed_files_are_typed_errors() {
        let good = sample().to_bytes();
        assert!(matches!(
            Gguf::from_bytes(b"GGML....".to_vec()),
            Err(GgufError::BadMagic { .. })
        ));
        assert!(matches!(Gguf::from_bytes(vec![]), Err(GgufError::BadMagic { .. })));
        let v1 = GgufWriter::new().version(1).to_bytes();
        assert_eq!(
            Gguf::from_bytes(v1).unwrap_err(),
            GgufError::UnsupportedVersion { version: 1 }
        );
        // Every truncation of a valid file is an error, never a panic.
        for cut in 0..good.len() {
            let tail_is_padding = good[cut..].iter().all(|&b| b == 0) && cut > 300;
            let r = Gguf::from_bytes(good[..cut].to_vec());
            assert!(r.is_err() || tail_is_padding, "cut at {cut} parsed");
        }
        let e = Gguf::from_bytes(good[..40].to_vec()).unwrap_err();
        assert!(
            matches!(e, GgufError::Truncated { .. } | GgufError::BadString { .. }),
            "{e}"
        );
        // A huge tensor count is refused before allocating.
        let mut huge = good.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            Gguf::from_bytes(huge),
            Err(GgufError::Overflow { .. } | GgufError::Truncated { .. })
        ));
    }

    #[test]
    fn bad_values_strings_and_tensors_are_named() {
        let e = Gguf::from_bytes(
            GgufWriter::new()
                .meta_str("k", "x")
                .to_bytes()
                .into_iter()
                .enumerate()
                .map(|(i, b)| if i == 32 { 0xFF } else { b })
                .collect(),
        )
        .unwrap_err();
        assert!(matches!(e, GgufError::BadString { .. }), "{e}");
        // Value type 13 does not exist.
        let mut b = GgufWriter::new().meta_u32("k", 1).to_bytes();
        b[24 + 9..24 + 13].copy_from_slice(&13u32.to_le_bytes());
        let e = Gguf::from_bytes(b).unwrap_err();
        assert_eq!(
            e,
            GgufError::UnknownValueType {
                key: "k".into(),
                type_id: 13,
                offset: 33
            }
        );
        // q5_0 is known but unsupported: the file opens, the tensor does not.
        let g = Gguf::from_bytes(
            GgufWriter::new()
                .tensor_raw("blk.0.ffn_down.weight", &[32], 6, vec![0; 22])
                .to_bytes(),
        )
        .unwrap();
        let e = g.tensor("blk.0.ffn_down.weight").unwrap_err();
        assert!(
            matches!(e, GgufError::UnsupportedBlockType { ref name, type_id: 6, .. } if name == "blk.0.ffn_down.weight"),
            "{e}"
        );
        assert!(e.to_string().contains("q5_0"), "{e}");
        let e = Gguf::from_bytes(GgufWriter::new().tensor_raw("t", &[4], 99, vec![0; 4]).to_bytes()).unwrap_err();
        assert_eq!(
            e,
            GgufError::UnknownTensorType {
                name: "t".into(),
                type_id: 99
            }
        );
        let e = Gguf::from_bytes(
            GgufWriter::new()
                .tensor("t", &[2, 16], BlockType::Q4_0, vec![0; 18])
                .to_bytes(),
        )
        .unwrap_err();
        assert!(
            matches!(e, GgufError::NotBlockMultiple { dim: 16, block: 32, .. }),
            "{e}"
        );
        // Too few bytes for the dims: the data runs past the end of the file.
        let e = Gguf::from_bytes(GgufWriter::new().tensor_f32("t", &[64], &[1.0; 4]).to_bytes()).unwrap_err();
        assert!(
            matches!(e, GgufError::DataOutOfBounds { ref name, .. } if name == "t"),
            "{e}"
        );
        let e = Gguf::from_bytes(GgufWriter::new().tensor_f32("t", &[1 << 62, 1 << 62], &[]).to_bytes()).unwrap_err();
        assert!(matches!(e, GgufError::Overflow { .. }), "{e}");
        let e = Gguf::from_bytes(GgufWriter::new().meta_u32("k", 1).meta_u32("k", 2).to_bytes()).unwrap_err();
        assert!(matches!(e, GgufError::Duplicate { .. }), "{e}");
        let e = Gguf::from_bytes(GgufWriter::new().alignment(24).to_bytes()).unwrap_err();
        assert!(matches!(e, GgufError::BadAlignment { .. }), "{e}");
    }
}
