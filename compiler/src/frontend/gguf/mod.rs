//! GGUF frontend: reading (and, for tests and tools, writing) GGUF files, the container format of
//! llama.cpp models.
//!
//! A GGUF file is a header (magic `GGUF`, version, counts), typed metadata key/value pairs, a
//! table of tensor infos (name, dims, GGML type, offset) and an aligned data section. Kiln reads
//! versions 2 and 3. See docs/gguf.md.

pub mod error;
pub mod reader;
pub mod value;
pub mod writer;

pub use error::GgufError;
pub use reader::{Gguf, TensorInfo};
pub use value::{MetaValue, ValueType};
pub use writer::GgufWriter;

/// The file's first four bytes.
pub const MAGIC: [u8; 4] = *b"GGUF";

/// `general.alignment` when the file does not set it.
pub const DEFAULT_ALIGNMENT: u64 = 32;
