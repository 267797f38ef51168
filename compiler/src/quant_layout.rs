//! The bundle's storage order of packed quantized weights ([`QuantLayout`]): which constants
//! are stored block-column-major, and their bytes reordered so.

use crate::options::QuantLayout;
use kiln_ir::{BlockType, Graph, NodeId, Op, Tensor, TensorData};

/// The block type and `[n, k]` shape of a packed quantized weight stored block-column-major
/// under `layout`: a `u32` constant read only as the weight of `QMatMul`s or the table of
/// `QGather`s, all of one `(block, n, k)`. `None` when it is stored in GGUF's order.
pub fn block_column_weight(g: &Graph, id: NodeId, layout: QuantLayout) -> Option<(BlockType, usize, usize)> {
    if layout != QuantLayout::BlockColumns || !matches!(g.node(id).op, Op::Constant(_)) {
        return None;
    }
    let users = g.users_of(id);
    let mut shape = None;
    for &u in users.iter() {
        let this = match g.node(u).op {
            Op::QMatMul { block, n, k } if g.inputs_of(u).get(1) == Some(&id) && g.inputs_of(u)[0] != id => {
                (block, n, k)
            }
            Op::QGather { block, n, k }
                if g.inputs_of(u).first() == Some(&id) && g.inputs_of(u).get(1) != Some(&id) =>
            {
                (block, n, k)
            }
            _ => return None,
        };
        if shape.is_some_and(|s| s != this) {
            return None;
        }
        shape = Some(this);
    }
    shape
}

/// `words` (a `[n, k]` weight of `block`s in GGUF's order, as little-endian u32 words) with
/// its blocks reordered block-column-major: block `kb` of row `r` moves to position
/// `kb * n + r`. The byte count, and so the word count, is unchanged.
pub fn to_block_columns(t: &Tensor, block: BlockType, n: usize, k: usize) -> Tensor {
    let TensorData::U32(words) = &t.data else {
        return t.clone();
    };
    let (bb, nb) = (block.block_bytes(), k / block.block_elems());
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut out = vec![0u8; bytes.len()];
    for r in 0..n {
        for kb in 0..nb {
            let from = (r * nb + kb) * bb;
            let to = (kb * n + r) * bb;
            out[to..to + bb].copy_from_slice(&bytes[from..from + bb]);
        }
    }
    Tensor {
        shape: t.shape.clone(),
        data: TensorData::U32(
            out.chunks(4)
                .map(|c| {
                    let mut w = [0u8; 4];
                    w[..c.len()].copy_from_slice(c);
                    u32::from_le_bytes(w)
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_move_to_block_columns_and_bytes_stay() {
        // 3 rows of 2 q8_0 blocks (34 bytes each, so blocks straddle words): byte i of the
        // input is i % 251, and block (r, kb) must land at kb * 3 + r.
        let (n, k, bb) = (3usize, 64usize, 34usize);
        let bytes: Vec<u8> = (0..n * 2 * bb).map(|i| (i % 251) as u8).collect();
        let mut padded = bytes.clone();
        padded.resize(bytes.len().div_ceil(4) * 4, 0);
        let words: Vec<u32> = padded
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let t = Tensor {
            shape: vec![words.len()],
            data: TensorData::U32(words.clone()),
        };
        let out = to_block_columns(&t, BlockType::Q8_0, n, k);
        let TensorData::U32(got) = &out.data else { panic!() };
        assert_eq!(got.len(), words.len());
        let got: Vec<u8> = got.iter().flat_map(|w| w.to_le_bytes()).collect();
        for r in 0..n {
            for kb in 0..2 {
                let to = (kb * n + r) * bb;
                let from = (r * 2 + kb) * bb;
                assert_eq!(got[to..to + bb], bytes[from..from + bb], "block ({r}, {kb})");
            }
        }
    }
}
