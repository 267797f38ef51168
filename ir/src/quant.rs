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

    /// q4_0, q4_1 and q8_0: blocks of 32 plain integers and scales, whose GEMV parts each read
    /// 8 values of x (so a lane's rows can share them) and whose integers dot directly with
    /// 8-bit x ([`crate::Op::QuantizeQ8`]'s blocks, `dot4I8Packed`).
    pub fn has_int8_dot(self) -> bool {
        matches!(self, BlockType::Q4_0 | BlockType::Q4_1 | BlockType::Q8_0)
    }

    /// True for the GGML quantized block types (not F32/F16/BF16).
    pub fn is_quantized(self) -> bool {
        self.block_elems() > 1
    }

    /// Bytes of `elems` elements, or `None` when `elems` is not a whole number of blocks or the
    /// size overflows.
    pub fn bytes_for(self, elems: u64) -> Option<u64> {
        let be = self.block_elems() as u64;
        if !elems.is_multiple_of(be) {
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

/// Why packed bytes could not be decoded or values could not be packed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum QuantError {
    /// The element count is not a whole number of blocks.
    #[error("{n} elements are not a whole number of {block} blocks of {elems}")]
    NotBlockMultiple {
        /// The format.
        block: BlockType,
        /// Requested elements.
        n: usize,
        /// Elements per block.
        elems: usize,
    },
    /// The byte buffer is shorter than `n` elements need.
    #[error("{n} {block} elements need {need} bytes, got {got}")]
    TooShort {
        /// The format.
        block: BlockType,
        /// Requested elements.
        n: usize,
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        got: usize,
    },
    /// No quantizer for this format.
    #[error("Kiln has no quantizer for {0}")]
    NoQuantizer(BlockType),
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K super-block's 12 packed bytes.
pub fn q4k_scale_min(scales: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        (
            (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4),
            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
        )
    }
}

/// Decodes one block (`block.block_bytes()` bytes) into `block.block_elems()` values, exactly
/// as [`dequantize`] decodes each block; panics if `b` or `out` is shorter than that.
pub fn dequantize_block(block: BlockType, b: &[u8], out: &mut [f32]) {
    match block {
        BlockType::F32 => out[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        BlockType::F16 => out[0] = f16_at(b, 0),
        BlockType::BF16 => out[0] = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
        BlockType::Q4_0 => {
            let d = f16_at(b, 0);
            for j in 0..16 {
                out[j] = d * ((b[2 + j] & 0xF) as f32 - 8.0);
                out[j + 16] = d * ((b[2 + j] >> 4) as f32 - 8.0);
            }
        }
        BlockType::Q4_1 => {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            for j in 0..16 {
                out[j] = d * (b[4 + j] & 0xF) as f32 + m;
                out[j + 16] = d * (b[4 + j] >> 4) as f32 + m;
            }
        }
        BlockType::Q8_0 => {
            let d = f16_at(b, 0);
            for j in 0..32 {
                out[j] = d * (b[2 + j] as i8) as f32;
            }
        }
        BlockType::Q4K => {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let scales = &b[4..16];
            let qs = &b[16..144];
            // Four chunks of 64 values; each chunk's 32 bytes hold sub-block 2c in the low
            // nibbles and sub-block 2c+1 in the high nibbles.
            for c in 0..4 {
                let (s0, m0) = q4k_scale_min(scales, 2 * c);
                let (s1, m1) = q4k_scale_min(scales, 2 * c + 1);
                let (d0, n0) = (d * s0 as f32, dmin * m0 as f32);
                let (d1, n1) = (d * s1 as f32, dmin * m1 as f32);
                for l in 0..32 {
                    let q = qs[32 * c + l];
                    out[64 * c + l] = d0 * (q & 0xF) as f32 - n0;
                    out[64 * c + 32 + l] = d1 * (q >> 4) as f32 - n1;
                }
            }
        }
        BlockType::Q6K => {
            let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
            let d = f16_at(b, 208);
            // Two halves of 128 values; in each, value 32*r + l takes its low nibble from
            // ql[64h + l (+32 for r odd)] (low nibble for r < 2, high otherwise) and its high
            // two bits from qh[32h + l] at bit 2r.
            for h in 0..2 {
                for l in 0..32 {
                    let is = l / 16;
                    for r in 0..4 {
                        let lo = ql[64 * h + l + 32 * (r % 2)];
                        let lo = if r < 2 { lo & 0xF } else { lo >> 4 };
                        let hi = (qh[32 * h + l] >> (2 * r)) & 3;
                        let q = (lo | (hi << 4)) as i32 - 32;
                        let s = sc[8 * h + is + 2 * r] as i8;
                        out[128 * h + 32 * r + l] = d * s as f32 * q as f32;
                    }
                }
            }
        }
    }
}

/// Decodes the first `n` elements of packed `bytes` in format `block` (exactly as GGML does).
pub fn dequantize(block: BlockType, bytes: &[u8], n: usize) -> Result<Vec<f32>, QuantError> {
    let elems = block.block_elems();
    if !n.is_multiple_of(elems) {
        return Err(QuantError::NotBlockMultiple { block, n, elems });
    }
    let bb = block.block_bytes();
    let need = n / elems * bb;
    if bytes.len() < need {
        return Err(QuantError::TooShort {
            block,
            n,
            need,
            got: bytes.len(),
        });
    }
    let mut out = vec![0.0f32; n];
    for (o, b) in out.chunks_exact_mut(elems).zip(bytes.chunks_exact(bb)) {
        dequantize_block(block, b, o);
    }
    Ok(out)
}

/// Encodes `values` (a whole number of blocks) in format `block`: the plain formats round to
/// nearest, Q8_0/Q4_0/Q4_1 follow GGML's reference quantizers (round-to-nearest per block
/// scale). The K formats have no quantizer here (tests build their blocks directly).
pub fn quantize(block: BlockType, values: &[f32]) -> Result<Vec<u8>, QuantError> {
    let elems = block.block_elems();
    if !values.len().is_multiple_of(elems) {
        return Err(QuantError::NotBlockMultiple {
            block,
            n: values.len(),
            elems,
        });
    }
    let f16b = |x: f32| half::f16::from_f32(x).to_le_bytes();
    let mut out = Vec::with_capacity(values.len() / elems * block.block_bytes());
    for x in values.chunks_exact(elems) {
        match block {
            BlockType::F32 => out.extend_from_slice(&x[0].to_le_bytes()),
            BlockType::F16 => out.extend_from_slice(&f16b(x[0])),
            BlockType::BF16 => out.extend_from_slice(&half::bf16::from_f32(x[0]).to_le_bytes()),
            BlockType::Q8_0 => {
                let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16b(d));
                out.extend(x.iter().map(|v| (v * id).round() as i8 as u8));
            }
            BlockType::Q4_0 => {
                // The value of largest magnitude maps to -8.
                let max = x.iter().fold(0.0f32, |a, &v| if v.abs() > a.abs() { v } else { a });
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                let q = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
                out.extend_from_slice(&f16b(d));
                out.extend((0..16).map(|j| q(x[j]) | (q(x[j + 16]) << 4)));
            }
            BlockType::Q4_1 => {
                let min = x.iter().copied().fold(f32::INFINITY, f32::min);
                let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                let q = |v: f32| (((v - min) * id + 0.5) as i32).clamp(0, 15) as u8;
                out.extend_from_slice(&f16b(d));
                out.extend_from_slice(&f16b(min));
                out.extend((0..16).map(|j| q(x[j]) | (q(x[j + 16]) << 4)));
            }
            BlockType::Q4K | BlockType::Q6K => return Err(QuantError::NoQuantizer(block)),
        }
    }
    Ok(out)
}

/// Number of u32 words that hold an `[n, k]` weight packed as `block` (None when `k` is not a
/// whole number of blocks or the size overflows).
pub fn packed_words(block: BlockType, n: usize, k: usize) -> Option<usize> {
    if !k.is_multiple_of(block.block_elems()) {
        return None;
    }
    let bytes = block.bytes_for((n as u64).checked_mul(k as u64)?)?;
    usize::try_from(bytes.div_ceil(4)).ok()
}

/// An `[n, k]` weight given as packed bytes, as the u32 constant [`crate::Op::QMatMul`] reads
/// (`None` when the byte count does not match).
pub fn packed_tensor(block: BlockType, n: usize, k: usize, bytes: &[u8]) -> Option<crate::Tensor> {
    let words = packed_words(block, n, k)?;
    if bytes.len() as u64 != block.bytes_for(n as u64 * k as u64)? {
        return None;
    }
    let w = bytes_to_words(bytes);
    debug_assert_eq!(w.len(), words);
    Some(crate::Tensor {
        shape: vec![words],
        data: crate::TensorData::U32(w),
    })
}

/// Packs bytes into little-endian u32 words (zero-padded to a multiple of 4): how packed
/// weights are stored in bundles and read by the GPU kernels.
pub fn bytes_to_words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect()
}

/// The little-endian bytes of u32 words (the inverse of [`bytes_to_words`], with the padding).
pub fn words_to_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// [`crate::Op::QuantizeQ8`] on consecutive blocks of 32 values, in f32 as the kernels compute
/// it: per block the scale `d = max|x| / 127`, its reciprocal, `round_ties_even(x * (1 / d))`
/// (an integer in -127..=127) and that integer times `d`. A block of zeros stays zero.
/// `values.len()` must be a multiple of 32 (a shorter last block is rounded on its own).
pub fn round_q8(values: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(values.len());
    for block in values.chunks(32) {
        let amax = block.iter().fold(0f32, |m, &e| m.max(e.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        out.extend(block.iter().map(|&e| (e * id).round_ties_even() * d));
    }
    out
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

    fn f16le(x: f32) -> [u8; 2] {
        half::f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q4_0_block_decodes_by_hand() {
        // d = 0.5; byte j holds element j (low nibble) and j+16 (high nibble).
        let mut b = f16le(0.5).to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let v = dequantize(BlockType::Q4_0, &b, 32).unwrap();
        assert_eq!(v[0], 0.5 * (0.0 - 8.0));
        assert_eq!(v[3], 0.5 * (3.0 - 8.0));
        assert_eq!(v[16], 0.5 * (15.0 - 8.0));
        assert_eq!(v[31], 0.5 * (0.0 - 8.0));
    }

    #[test]
    fn q4_1_and_q8_0_blocks_decode_by_hand() {
        let mut b = f16le(0.25).to_vec();
        b.extend(f16le(-1.0));
        b.extend((0..16u8).map(|j| j | (2 << 4)));
        let v = dequantize(BlockType::Q4_1, &b, 32).unwrap();
        assert_eq!(v[5], 0.25 * 5.0 - 1.0);
        assert_eq!(v[20], 0.25 * 2.0 - 1.0);

        let mut b = f16le(2.0).to_vec();
        b.extend((0..32i8).map(|j| (j - 16) as u8));
        let v = dequantize(BlockType::Q8_0, &b, 32).unwrap();
        assert_eq!(v[0], -32.0);
        assert_eq!(v[31], 30.0);
    }

    #[test]
    fn q4k_block_decodes_by_hand() {
        let mut b = vec![0u8; 144];
        b[0..2].copy_from_slice(&f16le(0.5));
        b[2..4].copy_from_slice(&f16le(0.25));
        // Sub-block 0: scale 3, min 2. Sub-block 5: scale 0b01_0110 = 22 (low 4 bits in
        // scales[9], high 2 in scales[1] bits 6..8), min 0b10_0001 = 33.
        b[4] = 3;
        b[4 + 4] = 2;
        b[4 + 9] = 0x6 | (0x1 << 4);
        b[4 + 1] = 1 << 6;
        b[4 + 5] = 2 << 6;
        assert_eq!(q4k_scale_min(&b[4..16], 5), (22, 33));
        // Element 0: low nibble of qs[0] (sub-block 0). Sub-block 5 is the high nibbles of
        // chunk 2 (qs[64..96]): elements 160..192.
        b[16] = 7;
        b[16 + 64 + 7] = 9 << 4;
        let v = dequantize(BlockType::Q4K, &b, 256).unwrap();
        assert_eq!(v[0], 0.5 * 3.0 * 7.0 - 0.25 * 2.0);
        assert_eq!(v[160 + 7], 0.5 * 22.0 * 9.0 - 0.25 * 33.0);
    }

    #[test]
    fn q6k_block_decodes_by_hand() {
        let mut b = vec![0u8; 210];
        b[208..210].copy_from_slice(&f16le(0.5));
        for s in 0..16 {
            b[192 + s] = (s as i8 - 4) as u8;
        }
        // Element 128 + 64 + 20 (half 1, r = 2, l = 20): low nibble = high nibble of
        // ql[64 + 20], high bits = qh[32 + 20] bits 4..6; scale index 8 + 1 + 4 = 13.
        b[64 + 20] = 0xA0;
        b[128 + 32 + 20] = 0b10 << 4;
        let v = dequantize(BlockType::Q6K, &b, 256).unwrap();
        let q = (0xA | (0b10 << 4)) as f32 - 32.0;
        assert_eq!(v[128 + 64 + 20], 0.5 * (13.0 - 4.0) * q);
        // An all-zero element is -32 times its scale.
        assert_eq!(v[0], 0.5 * -4.0 * -32.0);
    }

    #[test]
    fn plain_formats_decode() {
        let b: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(dequantize(BlockType::F32, &b, 2).unwrap(), vec![1.5, -2.0]);
        assert_eq!(dequantize(BlockType::F16, &f16le(-0.75), 1).unwrap(), vec![-0.75]);
        let bf = half::bf16::from_f32(3.0).to_le_bytes();
        assert_eq!(dequantize(BlockType::BF16, &bf, 1).unwrap(), vec![3.0]);
    }

    #[test]
    fn quantizers_round_trip_within_half_a_step() {
        let x: Vec<f32> = (0..64).map(|i| ((i * 37 % 64) as f32 - 30.0) / 7.0).collect();
        for block in [
            BlockType::Q8_0,
            BlockType::Q4_0,
            BlockType::Q4_1,
            BlockType::F16,
            BlockType::BF16,
        ] {
            let q = quantize(block, &x).unwrap();
            assert_eq!(q.len(), block.bytes_for(64).unwrap() as usize);
            let y = dequantize(block, &q, 64).unwrap();
            for blk in 0..2 {
                let xs = &x[blk * 32..blk * 32 + 32];
                let amax = xs.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let range = xs.iter().cloned().fold(f32::MIN, f32::max) - xs.iter().cloned().fold(f32::MAX, f32::min);
                // Half a quantization step, plus f16 rounding of the scale.
                let tol = match block {
                    BlockType::Q8_0 => amax / 127.0 * 0.5 + amax * 1e-3,
                    BlockType::Q4_0 => amax / 8.0 * 0.5 + amax * 1e-3,
                    BlockType::Q4_1 => range / 15.0 * 0.5 + amax * 2e-3,
                    _ => amax * 4e-3,
                };
                for i in 0..32 {
                    let (a, b) = (xs[i], y[blk * 32 + i]);
                    // Q4_0 cannot represent +8 steps: the largest positive value clamps to 7.
                    let t = if block == BlockType::Q4_0 {
                        tol + amax / 8.0
                    } else {
                        tol
                    };
                    assert!((a - b).abs() <= t, "{block}: {a} vs {b} (tol {t})");
                }
            }
        }
        assert_eq!(
            quantize(BlockType::Q4K, &[0.0; 256]),
            Err(QuantError::NoQuantizer(BlockType::Q4K))
        );
    }

    #[test]
    fn bad_lengths_are_errors() {
        assert!(matches!(
            dequantize(BlockType::Q4_0, &[0; 18], 31),
            Err(QuantError::NotBlockMultiple { .. })
        ));
        assert!(matches!(
            dequantize(BlockType::Q4_0, &[0; 17], 32),
            Err(QuantError::TooShort { need: 18, .. })
        ));
        assert_eq!(
            words_to_bytes(&bytes_to_words(&[1, 2, 3, 4, 5])),
            vec![1, 2, 3, 4, 5, 0, 0, 0]
        );
    }

    #[test]
    fn round_q8_keeps_each_block_on_its_own_integer_grid() {
        // Block 0: max 127 -> scale 1, integers stay, halves round to even. Block 1: zeros.
        // Block 2: max 2.54 -> scale 0.02; every value becomes a multiple of it within half a
        // step, and the block's maximum maps to +-127 exactly.
        let mut x: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        x.extend([0.0; 32]);
        x.extend((0..32).map(|i| (i as f32 * 0.37).sin() * 2.0));
        x[64] = -2.54;
        let y = round_q8(&x);
        assert_eq!(y[0], 127.0);
        assert_eq!(y[1], 2.0);
        assert_eq!(y[2], -4.0);
        assert_eq!(&y[3..32], &x[3..32]);
        assert!(y[32..64].iter().all(|&v| v == 0.0));
        let d = 2.54f32 / 127.0;
        assert_eq!(y[64], -127.0 * d);
        for (a, b) in x[64..].iter().zip(&y[64..]) {
            assert!((a - b).abs() <= d * 0.5 + 1e-6, "{a} -> {b}");
            let q = b / d;
            assert!((q - q.round()).abs() < 1e-3, "{b} is not on the grid of {d}");
        }
    }
}
