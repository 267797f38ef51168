//! The whole-block quantized GEMV (`qgemv_blocks.wgsl`): each thread decodes steps of several
//! whole q4_0, q4_1 or q8_0 blocks, the step's words of each W row loaded together (16-byte
//! loads where rows and steps are 16-byte aligned) and every word of a block read at an offset
//! known when the kernel is generated (a half-word offset joins two loaded words).

use kiln_ir::BlockType;

/// How the whole-block GEMV reads a weight's rows.
#[derive(Clone, Copy, Debug)]
pub(super) struct BlockSteps {
    /// The block type (q4_0, q4_1 or q8_0: blocks of 32 values).
    pub block: BlockType,
    /// Whole blocks per thread step.
    pub blocks: usize,
    /// The weight is bound as `vec4<u32>` and a step's words are loaded 16 bytes at a time.
    pub wide: bool,
}

impl BlockSteps {
    /// The steps of `blocks` blocks over rows of `k` values, or `None` where the kernel does not
    /// apply: another block type, or rows or steps that are not whole 4-byte words (q4_0 and
    /// q8_0 rows of an odd block count, odd steps).
    pub fn new(block: BlockType, blocks: u32, k: usize) -> Option<BlockSteps> {
        if !matches!(block, BlockType::Q4_0 | BlockType::Q4_1 | BlockType::Q8_0) || blocks == 0 {
            return None;
        }
        let bb = block.block_bytes();
        let row_bytes = k / block.block_elems() * bb;
        let step = blocks as usize * bb;
        if row_bytes % 4 != 0 || step % 4 != 0 || k % block.block_elems() != 0 {
            return None;
        }
        Some(BlockSteps {
            block,
            blocks: blocks as usize,
            wide: row_bytes % 16 == 0 && step % 16 == 0,
        })
    }

    /// Bytes of a row a thread step reads.
    pub fn step_bytes(&self) -> usize {
        self.blocks * self.block.block_bytes()
    }

    /// The step loop's body for `rows` W rows (byte offsets `rb0..`, accumulators `acc0..`;
    /// the step index is `u`, the row of x starts at value `xr`): the step's words of every row
    /// loaded first, then block by block its x values and their dot product with each row.
    pub fn step_lines(&self, rows: usize) -> Vec<String> {
        let sb = self.step_bytes();
        let (unit, n) = if self.wide { (16, sb / 16) } else { (4, sb / 4) };
        let mut lines = vec![format!("let so = u * {sb}u;")];
        for r in 0..rows {
            let loads: Vec<String> = (0..n)
                .map(|j| format!("let w{r}_{j} = in1[(rb{r} + so) / {unit}u + {j}u];"))
                .collect();
            lines.push(loads.join(" "));
        }
        let word = |r: usize, o: usize| -> String {
            let at = |o: usize| {
                if self.wide {
                    format!("w{r}_{}.{}", o / 16, ["x", "y", "z", "w"][(o / 4) % 4])
                } else {
                    format!("w{r}_{}", o / 4)
                }
            };
            if o % 4 == 0 {
                at(o)
            } else {
                format!("(({} >> 16u) | ({} << 16u))", at(o - 2), at(o + 2))
            }
        };
        let bb = self.block.block_bytes();
        for b in 0..self.blocks {
            let x = format!("xr + (u * {}u + {b}u) * 32u", self.blocks);
            lines.extend(self.block_lines(&x, rows, |r, off| word(r, b * bb + off)));
        }
        lines
    }

    /// The remainder loop's body: block `tb` of each row, its words read one by one.
    pub fn tail_lines(&self, rows: usize) -> Vec<String> {
        let bb = self.block.block_bytes();
        self.block_lines("xr + tb * 32u", rows, |r, off| {
            format!("kiln_wword(rb{r} + tb * {bb}u + {off}u)")
        })
    }

    /// One block: its 32 x values (from value `x`) and their sum read once, then its dot
    /// product with each row, whose 4 bytes at block offset `off` are `word(row, off)`.
    fn block_lines(&self, x: &str, rows: usize, word: impl Fn(usize, usize) -> String) -> Vec<String> {
        let xs: Vec<String> = (0..8)
            .map(|i| {
                if i == 0 {
                    "kiln_x4(xo)".to_string()
                } else {
                    format!("kiln_x4(xo + {}u)", 4 * i)
                }
            })
            .collect();
        let mut lines = vec![
            "{".to_string(),
            format!("    let xo = {x};"),
            format!("    let xv = array<vec4<f32>, 8>({});", xs.join(", ")),
            "    let xs = kiln_xsum(xv);".to_string(),
        ];
        // Byte offset of the first quant word in the block.
        let q0 = if self.block == BlockType::Q4_1 { 4 } else { 2 };
        let quads = if self.block == BlockType::Q8_0 { 2 } else { 1 };
        for r in 0..rows {
            let q: Vec<String> = (0..quads)
                .map(|v| {
                    let w: Vec<String> = (0..4).map(|j| word(r, q0 + 16 * v + 4 * j)).collect();
                    format!("vec4<u32>({})", w.join(", "))
                })
                .collect();
            lines.push(format!(
                "    acc{r} += kiln_bdot({}, {}, xv, xs);",
                word(r, 0),
                q.join(", ")
            ));
        }
        lines.push("}".to_string());
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_need_whole_words_and_wide_loads_need_16_byte_alignment() {
        // q4_1 rows of 2048 values: 1280 bytes; 4 blocks are 80 bytes (five 16-byte words).
        let s = BlockSteps::new(BlockType::Q4_1, 4, 2048).unwrap();
        assert!(s.wide && s.step_bytes() == 80);
        // SmolLM2-135M's 576 values: 360-byte rows, not 16-byte aligned.
        assert!(!BlockSteps::new(BlockType::Q4_1, 4, 576).unwrap().wide);
        // q8_0: 2 blocks are 68 bytes (whole words), 8 blocks 272 (whole 16-byte words).
        assert!(!BlockSteps::new(BlockType::Q8_0, 2, 2048).unwrap().wide);
        assert!(BlockSteps::new(BlockType::Q8_0, 8, 2048).unwrap().wide);
        // q4_0 rows of an odd block count start at half words.
        assert!(BlockSteps::new(BlockType::Q4_0, 2, 224).is_none());
        assert!(BlockSteps::new(BlockType::Q6K, 2, 256).is_none());
    }

    #[test]
    fn half_word_offsets_join_two_loaded_words() {
        // q8_0's second block of a 2-block step starts at byte 34: its scale word joins words
        // 8 and 9, its quants (byte 36 on) are whole words.
        let lines = BlockSteps::new(BlockType::Q8_0, 2, 64)
            .unwrap()
            .step_lines(1)
            .join("\n");
        assert!(lines.contains("kiln_bdot(((w0_8 >> 16u) | (w0_9 << 16u)), vec4<u32>(w0_9, w0_10"));
        assert!(lines.contains("let w0_16 = in1[(rb0 + so) / 4u + 16u];"));
    }
}
