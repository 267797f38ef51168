//! Packed weight formats (GGML block types) that Kiln reads directly: the shared contract between
//! the GGUF reader, the interpreter and the WGSL dequantization code.
//!
//! A quantized tensor of `n` elements along its innermost axis is stored as `n / block_elems`
//! consecutive blocks of `block_bytes` bytes, exactly as in a GGUF file. On the GPU the bytes are
//! read as little-endian `u32` words, so a tensor's byte size is padded to a multiple of 4.

use serde::{Deserialize, Serialize};

/// A weight storage format: plain (F32, F16, BF16) or a GGML quantized block type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BlockType {
    /// IEEE f32, one element per "block".
    F32,
    /// IEEE f16.
    F16,
    /// bfloat16.
    BF16,
    /// 32 elements: f16 scale `d`, 16 bytes of 4-bit values; `x = d * (q - 8)`.
    Q4_0,
    /// 32 elements: f16 scale `d`, f16 minimum `m`, 16 bytes of 4-bit values; `x = d * q + m`.
    Q4_1,
    /// 32 elements: f16 scale `d`, 32 signed bytes; `x = d * q`.
    Q8_0,
    /// 256-element super-block: f16 `d`, f16 `dmin`, 12 bytes of packed 6-bit sub-block scales
    /// and mins (8 sub-blocks of 32), 128 bytes of 4-bit values.
    Q4K,
    /// 256-element super-block: 128 bytes of low 4 bits, 64 bytes of high 2 bits, 16 signed
    /// 8-bit sub-block scales (16 sub-blocks of 16), f16 `d`.
    Q6K,
}

impl BlockType {
    /// Every supported format.
    pub const ALL: [BlockType; 8] = [
        BlockType::F32,
        BlockType::F16,
        BlockType::BF16,
        BlockType::Q4_0,
        BlockType::Q4_1,
        BlockType::Q8_0,
        BlockType::Q4K,
        BlockType::Q6K,
    ];

    /// The format with GGML type id `id` (as stored in GGUF tensor infos), if supported.
    pub fn from_ggml_id(id: u32) -> Option<BlockType> {
        BlockType::ALL.into_iter().find(|b| b.ggml_id() == id)
    }

    /// GGML type id.
    pub fn ggml_id(self) -> u32 {
        match self {
            BlockType::F32 => 0,
            BlockType::F16 => 1,
            BlockType::Q4_0 => 2,
            BlockType::Q4_1 => 3,
            BlockType::Q8_0 => 8,
            BlockType::Q4K => 12,
            BlockType::Q6K => 14,
            BlockType::BF16 => 30,
        }
    }

    /// Elements per block.
    pub fn block_elems(self) -> usize {
        match self {
            BlockType::F32 | BlockType::F16 | BlockType::BF16 => 1,
            BlockType::Q4_0 | BlockType::Q4_1 | BlockType::Q8_0 => 32,
            BlockType::Q4K | BlockType::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            BlockType::F32 => 4,
            BlockType::F16 | BlockType::BF16 => 2,
            BlockType::Q4_0 => 18,
            BlockType::Q4_1 => 20,
            BlockType::Q8_0 => 34,
            BlockType::Q4K => 144,
            BlockType::Q6K => 210,
        }
    }

    /// True for the GGML quantized block types (not F32/F16/BF16).
    pub fn is_quantized(self) -> bool {
        self.block_elems() > 1
    }

    /// Bytes of `elems` elements, or `None` when `elems` is not a whole number of blocks or the
    /// size overflows.
    pub fn bytes_for(self, elems: u64) -> Option<u64> {
        let be = self.block_elems() as u64;
        if elems % be != 0 {
            return None;
        }
        (elems / be).checked_mul(self.block_bytes() as u64)
    }

    /// GGML's name for the format (`q4_1`, `f16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            BlockType::F32 => "f32",
            BlockType::F16 => "f16",
            BlockType::BF16 => "bf16",
            BlockType::Q4_0 => "q4_0",
            BlockType::Q4_1 => "q4_1",
            BlockType::Q8_0 => "q8_0",
            BlockType::Q4K => "q4_K",
            BlockType::Q6K => "q6_K",
        }
    }
}

impl std::fmt::Display for BlockType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sizes_match_ggml() {
        for b in BlockType::ALL {
            assert_eq!(BlockType::from_ggml_id(b.ggml_id()), Some(b));
        }
        assert_eq!(BlockType::from_ggml_id(6), None); // q5_0: not supported
        assert_eq!(BlockType::Q4_1.bytes_for(64), Some(40));
        assert_eq!(BlockType::Q6K.bytes_for(512), Some(420));
        assert_eq!(BlockType::Q4_0.bytes_for(33), None);
    }
}
