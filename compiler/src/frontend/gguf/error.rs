//! Errors reading a GGUF file: each names what is wrong and where (a byte offset, a key or a
//! tensor name).

use kiln_ir::BlockType;
use thiserror::Error;

/// A malformed or unsupported GGUF file, or a metadata/tensor lookup that failed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GgufError {
    /// The file could not be read.
    #[error("reading {path}: {msg}")]
    Io {
        /// The file.
        path: String,
        /// The OS message.
        msg: String,
    },
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: the first bytes are {found:02x?}, expected \"GGUF\"")]
    BadMagic {
        /// What the file starts with (up to four bytes).
        found: Vec<u8>,
    },
    /// A version other than 2 or 3.
    #[error("unsupported GGUF version {version} (Kiln reads versions 2 and 3)")]
    UnsupportedVersion {
        /// The file's version.
        version: u32,
    },
    /// The file ends inside a field.
    #[error("truncated file: {what} needs {need} bytes at offset {offset}, but the file is {len} bytes long")]
    Truncated {
        /// The field being read.
        what: String,
        /// Its byte offset.
        offset: u64,
        /// Bytes it needs.
        need: u64,
        /// File length.
        len: u64,
    },
    /// A string that is not UTF-8 (or whose length cannot be right).
    #[error("bad string at offset {offset} ({what}): {msg}")]
    BadString {
        /// What the string is (a key, a value of some key, a tensor name).
        what: String,
        /// Byte offset of the string's length field.
        offset: u64,
        /// What is wrong.
        msg: String,
    },
    /// A metadata value type id outside the GGUF specification.
    #[error("unknown metadata value type {type_id} at offset {offset} (key '{key}')")]
    UnknownValueType {
        /// The key whose value has it.
        key: String,
        /// The type id.
        type_id: u32,
        /// Byte offset of the type field.
        offset: u64,
    },
    /// Arrays nested deeper than Kiln accepts.
    #[error("metadata key '{key}': arrays nested more than {max} deep at offset {offset}")]
    NestingTooDeep {
        /// The key.
        key: String,
        /// Byte offset of the innermost array.
        offset: u64,
        /// The limit.
        max: usize,
    },
    /// A key or tensor name that occurs twice.
    #[error("duplicate {what} '{name}'")]
    Duplicate {
        /// `metadata key` or `tensor`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// `general.alignment` is not a power of two (or has the wrong type).
    #[error("bad general.alignment: {msg}")]
    BadAlignment {
        /// What is wrong.
        msg: String,
    },
    /// A tensor's bytes lie outside the data section, or its offset is not aligned.
    #[error("tensor '{name}': data {start}..{end} (relative to the data section at offset {data_offset}) {msg}")]
    DataOutOfBounds {
        /// Tensor name.
        name: String,
        /// Start of its data, relative to the data section.
        start: u64,
        /// End of its data, relative to the data section.
        end: u64,
        /// Absolute offset of the data section.
        data_offset: u64,
        /// What is wrong (outside the file of a given length, misaligned).
        msg: String,
    },
    /// A GGML type id Kiln does not know at all.
    #[error("tensor '{name}': unknown GGML type id {type_id}")]
    UnknownTensorType {
        /// Tensor name.
        name: String,
        /// The type id.
        type_id: u32,
    },
    /// A GGML type Kiln knows but cannot compute with (e.g. q5_0).
    #[error("tensor '{name}': unsupported block type {type_name} (GGML type {type_id}); Kiln supports {supported}")]
    UnsupportedBlockType {
        /// Tensor name.
        name: String,
        /// GGML's name for the type.
        type_name: String,
        /// The type id.
        type_id: u32,
        /// The supported types, for the message.
        supported: String,
    },
    /// The innermost dim is not a whole number of blocks.
    #[error("tensor '{name}': innermost dim {dim} is not a multiple of the {type_name} block size {block}")]
    NotBlockMultiple {
        /// Tensor name.
        name: String,
        /// The innermost (GGUF `ne[0]`) dim.
        dim: u64,
        /// GGML's name for the type.
        type_name: String,
        /// Elements per block.
        block: u64,
    },
    /// A tensor with more than 4 dims (GGML's maximum) or no dims where some are needed.
    #[error("tensor '{name}': {n_dims} dims (GGUF allows 1 to 4)")]
    BadRank {
        /// Tensor name.
        name: String,
        /// Its number of dims.
        n_dims: u32,
    },
    /// A size computation overflows.
    #[error("overflow computing {what}")]
    Overflow {
        /// What (e.g. a tensor's byte size, naming the tensor).
        what: String,
    },
    /// A tensor's bytes could not be decoded.
    #[error("tensor '{name}': {msg}")]
    BadTensorData {
        /// Tensor name.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// A metadata key the caller needs is absent.
    #[error("metadata key '{key}' is missing")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A metadata key holds another type than the caller needs.
    #[error("metadata key '{key}' is {found}, expected {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// What the caller asked for.
        expected: String,
        /// What the file has.
        found: String,
    },
    /// A tensor the caller needs is absent.
    #[error("tensor '{name}' is missing from the GGUF file")]
    MissingTensor {
        /// Tensor name.
        name: String,
    },
}

impl GgufError {
    /// The error for a type id that is known to GGML but not to Kiln's [`BlockType`].
    pub(crate) fn unsupported(name: &str, type_id: u32, type_name: &str) -> GgufError {
        GgufError::UnsupportedBlockType {
            name: name.to_string(),
            type_name: type_name.to_string(),
            type_id,
            supported: BlockType::ALL.map(|b| b.name()).join(", "),
        }
    }
}
