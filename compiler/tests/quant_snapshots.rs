//! Snapshots of the quantized matmul kernels (`qgemv.wgsl`, `qgemm.wgsl` with the block
//! decoders of `quant.wgsl`) for every block type, and with a fused epilogue. A diff here is a
//! change in generated code: review it (`cargo insta review`, or `INSTA_UPDATE=always` and
//! `git diff`) before accepting. Each snapshot is checked to hold the kernels it is about.

use kiln_compiler::{compile, CompileOptions, Model};
use kiln_ir::quant::packed_words;
use kiln_ir::{BinaryOp, BlockType, DType, Dim, Graph, Op, Tensor, TensorData, TensorType};
use std::collections::BTreeMap;

/// One QMatMul per block type on an f32 `[m, k]` input (K = 256, N = 8), each its own output,
/// optionally followed by `+ bias`.
fn wgsl(m: usize, bias: bool, blocks: &[BlockType]) -> String {
    let (n, k) = (8, 256);
    let mut g = Graph::new();
    for (i, &block) in blocks.iter().enumerate() {
        let x = g.add_input(
            &format!("x{i}"),
            TensorType {
                dtype: DType::F32,
                shape: vec![Dim::from(m), Dim::from(k)],
            },
        );
        let words = packed_words(block, n, k).unwrap();
        let w = g.add_const(
            &format!("w{i}"),
            Tensor {
                shape: vec![words],
                data: TensorData::U32((0..words as u32).collect()),
            },
        );
        let mut y = g.add(&format!("qmm{i}"), Op::QMatMul { block, n, k }, &[x, w]).unwrap();
        if bias {
            let b = g.add_const(&format!("b{i}"), Tensor::f32(vec![n], vec![0.5; n]));
            y = g.add(&format!("bias{i}"), Op::Binary(BinaryOp::Add), &[y, b]).unwrap();
        }
        g.add_output(&format!("out{i}"), y);
    }
    let model = Model {
        name: "snap".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let b = compile(&model, &CompileOptions::default()).expect("compiles");
    b.kernel_sources
        .iter()
        .map(|(f, s)| format!("// ===== {f}\n{s}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn qgemv_for_every_block_type() {
    let src = wgsl(1, false, &BlockType::ALL);
    assert_eq!(src.matches("// Kiln quantized GEMV kernel").count(), 8);
    insta::assert_snapshot!(src);
}

#[test]
fn qgemm_for_every_block_type() {
    let src = wgsl(13, false, &BlockType::ALL);
    assert_eq!(src.matches("// Kiln quantized tiled GEMM kernel").count(), 8);
    insta::assert_snapshot!(src);
}

#[test]
fn quantized_kernels_with_a_bias_epilogue() {
    let src = wgsl(1, true, &[BlockType::Q4_1]) + &wgsl(13, true, &[BlockType::Q4K]);
    assert_eq!(src.matches("fn kiln_epilogue").count(), 2);
    insta::assert_snapshot!(src);
}
