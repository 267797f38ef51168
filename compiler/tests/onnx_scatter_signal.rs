//! The scatter-style lowerings (ScatterElements, Col2Im) and the signal ops (windows,
//! CenterCropPad, DFT) through the interpreter, against direct Rust references.

use kiln_compiler::frontend::onnx::builder::{d, tensor_i64, DataType, ModelBuilder};
use kiln_compiler::frontend::onnx::load_onnx_bytes;
use kiln_ir::{interp, DimBindings, Tensor};
use std::collections::HashMap;

fn run(b: &ModelBuilder, x: &Tensor) -> Tensor {
    let m = load_onnx_bytes(&b.encode(), "t", &DimBindings::new()).unwrap_or_else(|e| panic!("load: {e}"));
    let ins: HashMap<String, Tensor> = [("x".to_string(), x.clone())].into();
    interp::evaluate(&m.graph, &ins).unwrap_or_else(|e| panic!("evaluate: {e}"))["y"].clone()
}

fn model(opset: i64, shape: &[usize]) -> ModelBuilder {
    let mut b = ModelBuilder::new("t");
    b.opset(opset);
    let dims: Vec<_> = shape.iter().map(|&s| d(s)).collect();
    b.input("x", DataType::Float, &dims);
    b.output("y", DataType::Float);
    b
}

#[track_caller]
fn close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "element {i}: got {g}, want {w}");
    }
}

#[test]
fn scatter_elements_wraps_negative_indices_and_adds_duplicates() {
    let mut b = model(18, &[2, 3]);
    b.initializer(tensor_i64("idx", &[2, 2], &[-1, 0, 2, 2]));
    b.init_f32("upd", &[2, 2], &[10.0, 20.0, 30.0, 40.0]);
    b.node("ScatterElements", &["x", "idx", "upd"], &["y"])
        .attr_int("axis", 1)
        .attr_str("reduction", "add");
    let x = Tensor::f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let y = run(&b, &x);
    // Row 0: index -1 is column 2, index 0 column 0. Row 1: both updates add into column 2.
    close(&y.to_f32(), &[21.0, 2.0, 13.0, 4.0, 5.0, 76.0], 0.0);
}

#[test]
fn col2im_sums_overlapping_blocks_and_drops_padding() {
    // One channel, a 1x3 image, blocks of 1x2 with stride 1 and one column of padding on each
    // side: padded width 5 gives 4 blocks.
    let mut b = model(18, &[1, 2, 4]);
    b.initializer(tensor_i64("image", &[2], &[1, 3]));
    b.initializer(tensor_i64("block", &[2], &[1, 2]));
    b.node("Col2Im", &["x", "image", "block"], &["y"])
        .attr_ints("pads", &[0, 1, 0, 1]);
    // x[0, k, l]: kernel offset k of block l, which covers padded columns l and l + 1.
    let x = Tensor::f32(vec![1, 2, 4], vec![1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0]);
    let y = run(&b, &x);
    assert_eq!(y.shape, vec![1, 1, 1, 3]);
    // Padded column c (1..=3 survive) gets x[0,0,c] + x[0,1,c-1].
    close(&y.to_f32(), &[2.0 + 10.0, 3.0 + 20.0, 4.0 + 30.0], 0.0);
}

#[test]
fn windows_center_crop_pad_and_dft() {
    let mut b = model(17, &[]);
    b.initializer(tensor_i64("n", &[], &[4]));
    b.node("HannWindow", &["n"], &["w"]).attr_int("periodic", 1);
    b.node("Add", &["w", "x"], &["y"]);
    let y = run(&b, &Tensor::f32(vec![], vec![0.0]));
    close(&y.to_f32(), &[0.0, 0.5, 1.0, 0.5], 1e-6);

    let mut b = model(18, &[3, 2]);
    b.initializer(tensor_i64("s", &[2], &[2, 3]));
    b.node("CenterCropPad", &["x", "s"], &["y"]);
    let y = run(&b, &Tensor::f32(vec![3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    // Rows: crop 3 -> 2 keeps rows 0..2; columns: pad 2 -> 3 adds a zero on the right.
    close(&y.to_f32(), &[1.0, 2.0, 0.0, 3.0, 4.0, 0.0], 0.0);

    // One-sided DFT of a real signal along axis 1 of [1, 4, 1].
    let mut b = model(17, &[1, 4, 1]);
    b.node("DFT", &["x"], &["y"]).attr_int("onesided", 1);
    let sig = [1.0f32, 2.0, 0.0, -1.0];
    let y = run(&b, &Tensor::f32(vec![1, 4, 1], sig.to_vec()));
    assert_eq!(y.shape, vec![1, 3, 2]);
    let mut want = Vec::new();
    for k in 0..3 {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (n, &v) in sig.iter().enumerate() {
            let th = -2.0 * std::f64::consts::PI * (k * n) as f64 / 4.0;
            re += v as f64 * th.cos();
            im += v as f64 * th.sin();
        }
        want.extend([re as f32, im as f32]);
    }
    close(&y.to_f32(), &want, 1e-5);
}
