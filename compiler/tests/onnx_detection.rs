//! Detection and signal ops through the interpreter: RoiAlign, DeformConv, NonMaxSuppression,
//! NonZero, Unique and STFT, against hand-checked values (or a direct Rust DFT), and the typed
//! `NeedsConstant` errors of the ops whose output size depends on input values.

use kiln_compiler::frontend::onnx::builder::{d, tensor_i64, DataType, ModelBuilder};
use kiln_compiler::frontend::onnx::{load_onnx_bytes, OnnxError};
use kiln_ir::{interp, DimBindings, Tensor};
use std::collections::HashMap;

/// Loads the model and evaluates it with the given inputs; returns output `out`.
fn eval(b: &ModelBuilder, ins: &[(&str, Tensor)], out: &str) -> Tensor {
    let m = load_onnx_bytes(&b.encode(), "t", &DimBindings::new()).unwrap_or_else(|e| panic!("load: {e}"));
    let ins: HashMap<String, Tensor> = ins.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    interp::evaluate(&m.graph, &ins).unwrap_or_else(|e| panic!("evaluate: {e}"))[out].clone()
}

fn load_err(b: &ModelBuilder) -> OnnxError {
    load_onnx_bytes(&b.encode(), "t", &DimBindings::new()).expect_err("an error")
}

#[track_caller]
fn close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "element {i}: got {g}, want {w}");
    }
}

#[track_caller]
fn ints(t: &Tensor) -> Vec<i64> {
    t.to_f64().iter().map(|&v| v as i64).collect()
}

/// `X[0, 0, y, x] = 4y + x` on a 4x4 image: bilinear interpolation inside the image is exact,
/// so a sample at (y, x) reads `4y + x`.
fn ramp() -> Tensor {
    Tensor::f32(vec![1, 1, 4, 4], (0..16).map(|v| v as f32).collect())
}

fn roi_model(mode: &str, ctm: &str, ratio: i64, const_rois: Option<&[f32]>) -> ModelBuilder {
    let mut b = ModelBuilder::new("roi");
    b.opset(16);
    b.input("x", DataType::Float, &[d(1), d(1), d(4), d(4)]);
    match const_rois {
        Some(r) => {
            b.init_f32("rois", &[(r.len() / 4) as i64, 4], r);
            b.init_i64("bi", &[(r.len() / 4) as i64], &vec![0; r.len() / 4]);
        }
        None => {
            b.input("rois", DataType::Float, &[d(1), d(4)]);
            b.input("bi", DataType::Int64, &[d(1)]);
        }
    }
    b.node("RoiAlign", &["x", "rois", "bi"], &["y"])
        .attr_str("mode", mode)
        .attr_str("coordinate_transformation_mode", ctm)
        .attr_int("output_height", 1)
        .attr_int("output_width", 1)
        .attr_int("sampling_ratio", ratio);
    b.output("y", DataType::Float);
    b
}

#[test]
fn roi_align_averages_and_maxes_bilinear_samples() {
    let roi = [
        ("rois", Tensor::f32(vec![1, 4], vec![0.0, 0.0, 2.0, 2.0])),
        ("bi", Tensor::i32(vec![1], vec![0])),
    ];
    let with_x = |b: &ModelBuilder| {
        let mut ins = vec![("x", ramp())];
        ins.extend(roi.iter().cloned());
        eval(b, &ins, "y").to_f32()
    };
    // Region [0, 2]² without offset, one bin, 2x2 samples at 0.5 and 1.5 on each axis: the mean
    // of 4y + x is 4 + 1.
    close(&with_x(&roi_model("avg", "output_half_pixel", 2, None)), &[5.0], 1e-6);
    // half_pixel shifts the region by -0.5: samples at 0 and 1, mean 4·0.5 + 0.5.
    close(&with_x(&roi_model("avg", "half_pixel", 2, None)), &[2.5], 1e-6);
    // Max mode takes the largest weighted tap: sample (1.5, 1.5) has four taps of weight 1/4,
    // the largest X[2, 2] = 10, so 2.5.
    close(&with_x(&roi_model("max", "output_half_pixel", 2, None)), &[2.5], 1e-6);
}

#[test]
fn roi_align_adaptive_grid_needs_known_regions() {
    // sampling_ratio 0: each region's grid is ceil(extent / bins): 2 for [0, 2]², 3 for
    // [0, 3]² (samples at 0.5, 1.5, 2.5: mean 4·1.5 + 1.5).
    let b = roi_model(
        "avg",
        "output_half_pixel",
        0,
        Some(&[0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 3.0, 3.0]),
    );
    close(&eval(&b, &[("x", ramp())], "y").to_f32(), &[5.0, 7.5], 1e-6);
    // Max mode over the larger grid: sample (2.5, 2.5) has taps X[2..4, 2..4] of weight 1/4,
    // the largest 15 -> 3.75; the smaller region keeps its 2.5 (masked extra samples).
    let b = roi_model(
        "max",
        "output_half_pixel",
        0,
        Some(&[0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 3.0, 3.0]),
    );
    close(&eval(&b, &[("x", ramp())], "y").to_f32(), &[2.5, 3.75], 1e-6);
    // Regions known only at run time: the adaptive grid is unbounded, so the node names them.
    match load_err(&roi_model("avg", "output_half_pixel", 0, None)) {
        OnnxError::NeedsConstant {
            op_type,
            input,
            graph_input,
            ..
        } => assert_eq!(
            (op_type.as_str(), input, graph_input.as_deref()),
            ("RoiAlign", 1, Some("rois"))
        ),
        e => panic!("expected NeedsConstant, got {e:?}"),
    }
}

fn deform_model(with_mask_bias: bool) -> ModelBuilder {
    let mut b = ModelBuilder::new("deform");
    b.opset(19);
    b.input("x", DataType::Float, &[d(1), d(1), d(3), d(3)]);
    b.input("off", DataType::Float, &[d(1), d(8), d(2), d(2)]);
    b.init_f32("w", &[1, 1, 2, 2], &[1.0, 1.0, 1.0, 1.0]);
    let mut ins = vec!["x", "w", "off"];
    if with_mask_bias {
        b.init_f32("b", &[1], &[1.0]);
        b.init_f32("mask", &[1, 4, 2, 2], &[0.5; 16]);
        ins.extend(["b", "mask"]);
    }
    b.node("DeformConv", &ins, &["y"]).attr_ints("kernel_shape", &[2, 2]);
    b.output("y", DataType::Float);
    b
}

#[test]
fn deform_conv_samples_shifted_taps() {
    let x = Tensor::f32(vec![1, 1, 3, 3], (0..9).map(|v| v as f32).collect());
    let zeros = Tensor::f32(vec![1, 8, 2, 2], vec![0.0; 32]);
    // Zero offsets: a plain 2x2 box filter, sums of X[y..y+2, x..x+2].
    let y = eval(&deform_model(false), &[("x", x.clone()), ("off", zeros)], "y");
    close(&y.to_f32(), &[8.0, 12.0, 20.0, 24.0], 0.0);
    // Tap (0, 0) moved down by 0.5 everywhere: it reads (X[y, x] + X[y + 1, x]) / 2 = X[y, x] +
    // 1.5; tap (1, 1) moved right by 1.0 at output (1, 1): X[2, 3] is outside, so 0 (was 8).
    let mut off = vec![0.0f32; 32];
    off[..4].fill(0.5); // channel 0: tap (0, 0), dy
    off[7 * 4 + 3] = 1.0; // channel 7: tap (1, 1), dx, at output (1, 1)
    let off = Tensor::f32(vec![1, 8, 2, 2], off);
    let y = eval(&deform_model(false), &[("x", x.clone()), ("off", off.clone())], "y");
    close(&y.to_f32(), &[9.5, 13.5, 21.5, 25.5 - 8.0], 1e-6);
    // A mask of 0.5 halves every tap, then the bias adds 1.
    let y = eval(&deform_model(true), &[("x", x), ("off", off)], "y");
    close(&y.to_f32(), &[5.75, 7.75, 11.75, 9.75], 1e-6);
}

fn nms_model(boxes: Option<&[f32]>) -> ModelBuilder {
    let mut b = ModelBuilder::new("nms");
    b.opset(11);
    match boxes {
        Some(v) => {
            b.init_f32("boxes", &[1, (v.len() / 4) as i64, 4], v);
        }
        None => {
            b.input("boxes", DataType::Float, &[d(1), d(4), d(4)]);
        }
    }
    b.init_f32("scores", &[1, 2, 4], &[0.9, 0.8, 0.7, 0.95, 0.1, 0.2, 0.3, 0.4]);
    b.initializer(tensor_i64("max", &[1], &[2]));
    b.init_f32("iou", &[1], &[0.5]);
    b.init_f32("thr", &[1], &[0.25]);
    b.node("NonMaxSuppression", &["boxes", "scores", "max", "iou", "thr"], &["sel"]);
    b.output("sel", DataType::Int64);
    b
}

#[test]
fn nms_of_known_boxes_is_evaluated_at_compile_time() {
    // Boxes as [y1, x1, y2, x2]: 0 and 1 overlap with IoU 0.9 / 1.1 = 0.82 (> 0.5); 2 is
    // disjoint from both; 3 is box 0 with its corners swapped (IoU 1 with box 0).
    let boxes = [
        0.0, 0.0, 1.0, 1.0, //
        0.0, 0.1, 1.0, 1.1, //
        5.0, 5.0, 6.0, 6.0, //
        1.0, 1.0, 0.0, 0.0,
    ];
    let sel = eval(&nms_model(Some(&boxes)), &[], "sel");
    // Class 0 by score: 3 (0.95) kept, 0 and 1 suppressed by it, 2 kept: the limit of 2 is
    // reached. Class 1: only 3 (0.4) and 2 (0.3) score above 0.25; both kept.
    assert_eq!(sel.shape, vec![4, 3]);
    assert_eq!(ints(&sel), vec![0, 0, 3, 0, 0, 2, 0, 1, 3, 0, 1, 2]);

    // Boxes known only at run time: the node names the input that decides the output size.
    match load_err(&nms_model(None)) {
        OnnxError::NeedsConstant {
            op_type,
            input,
            graph_input,
            msg,
            ..
        } => {
            assert_eq!(
                (op_type.as_str(), input, graph_input.as_deref()),
                ("NonMaxSuppression", 0, Some("boxes"))
            );
            assert!(msg.contains("'boxes'") && msg.contains("output's length"), "{msg}");
        }
        e => panic!("expected NeedsConstant, got {e:?}"),
    }
}

#[test]
fn non_zero_and_unique_of_constants() {
    // NonZero: [[1, 0], [2, 3]] -> rows (0, 1, 1) and columns (0, 0, 1).
    let mut b = ModelBuilder::new("nz");
    b.opset(13);
    b.init_f32("c", &[2, 2], &[1.0, 0.0, 2.0, 3.0]);
    b.node("NonZero", &["c"], &["y"]);
    b.output("y", DataType::Int64);
    let y = eval(&b, &[], "y");
    assert_eq!((y.shape.clone(), ints(&y)), (vec![2, 3], vec![0, 1, 1, 0, 0, 1]));
    // A run-time input: a typed error naming it.
    let mut b = ModelBuilder::new("nz2");
    b.opset(13);
    b.input("c", DataType::Float, &[d(2), d(2)]);
    b.node("NonZero", &["c"], &["y"]);
    b.output("y", DataType::Int64);
    assert!(
        matches!(load_err(&b), OnnxError::NeedsConstant { input: 0, graph_input: Some(g), .. } if g == "c"),
        "NonZero of a graph input must ask for it"
    );

    // Unique without axis, sorted and in order of first occurrence.
    let unique = |sorted: i64, axis: Option<i64>, shape: &[i64], x: &[f32]| {
        let mut b = ModelBuilder::new("u");
        b.opset(11);
        b.init_f32("x", shape, x);
        let mut node = b
            .node("Unique", &["x"], &["y", "idx", "inv", "cnt"])
            .attr_int("sorted", sorted);
        if let Some(a) = axis {
            node = node.attr_int("axis", a);
        }
        let _ = node;
        b.output("y", DataType::Float);
        for o in ["idx", "inv", "cnt"] {
            b.output(o, DataType::Int64);
        }
        let m = load_onnx_bytes(&b.encode(), "u", &DimBindings::new()).unwrap_or_else(|e| panic!("{e}"));
        let out = interp::evaluate(&m.graph, &HashMap::new()).unwrap_or_else(|e| panic!("{e}"));
        (
            out["y"].clone(),
            ints(&out["idx"]),
            ints(&out["inv"]),
            ints(&out["cnt"]),
        )
    };
    let x = [2.0, 1.0, 1.0, 3.0, 4.0, 3.0];
    let (y, idx, inv, cnt) = unique(1, None, &[6], &x);
    close(&y.to_f32(), &[1.0, 2.0, 3.0, 4.0], 0.0);
    assert_eq!(
        (idx, inv, cnt),
        (vec![1, 0, 3, 4], vec![1, 0, 0, 2, 3, 2], vec![2, 1, 2, 1])
    );
    let (y, idx, inv, cnt) = unique(0, None, &[6], &x);
    close(&y.to_f32(), &[2.0, 1.0, 3.0, 4.0], 0.0);
    assert_eq!(
        (idx, inv, cnt),
        (vec![0, 1, 3, 4], vec![0, 1, 1, 2, 3, 2], vec![1, 2, 2, 1])
    );
    // Along axis 1 of [[1, 0, 1], [2, 5, 2]]: columns (1, 2), (0, 5), (1, 2); sorted
    // lexicographically (0, 5) < (1, 2).
    let (y, idx, inv, cnt) = unique(1, Some(1), &[2, 3], &[1.0, 0.0, 1.0, 2.0, 5.0, 2.0]);
    assert_eq!(y.shape, vec![2, 2]);
    close(&y.to_f32(), &[0.0, 1.0, 5.0, 2.0], 0.0);
    assert_eq!((idx, inv, cnt), (vec![1, 0], vec![1, 0, 1], vec![1, 2]));
}

#[test]
fn stft_is_a_windowed_dft_of_each_frame() {
    let mut b = ModelBuilder::new("stft");
    b.opset(17);
    b.input("x", DataType::Float, &[d(1), d(10), d(1)]);
    b.initializer(tensor_i64("step", &[], &[3]));
    b.init_f32("win", &[4], &[0.5, 1.0, 1.0, 0.5]);
    b.node("STFT", &["x", "step", "win"], &["y"]);
    b.output("y", DataType::Float);
    let sig: Vec<f32> = (0..10).map(|i| ((i * 7) % 5) as f32 - 1.5).collect();
    let y = eval(&b, &[("x", Tensor::f32(vec![1, 10, 1], sig.clone()))], "y");
    // Frames at 0, 3, 6 (10 - 4) / 3 + 1 = 3; one-sided: 4 / 2 + 1 = 3 bins.
    assert_eq!(y.shape, vec![1, 3, 3, 2]);
    let win = [0.5f64, 1.0, 1.0, 0.5];
    let mut want = Vec::new();
    for f in 0..3 {
        for k in 0..3 {
            let (mut re, mut im) = (0.0f64, 0.0f64);
            for (j, w) in win.iter().enumerate() {
                let v = sig[f * 3 + j] as f64 * w;
                let th = -2.0 * std::f64::consts::PI * (k * j) as f64 / 4.0;
                re += v * th.cos();
                im += v * th.sin();
            }
            want.extend([re as f32, im as f32]);
        }
    }
    close(&y.to_f32(), &want, 1e-5);
}

#[test]
fn bitcast_reinterprets_bits() {
    let cast = |from: DataType, to: DataType, x: Tensor| {
        let mut b = ModelBuilder::new("bc");
        b.opset(26);
        let dims: Vec<_> = x.shape.iter().map(|&s| d(s)).collect();
        b.input("x", from, &dims);
        b.node("BitCast", &["x"], &["y"]).attr_int("to", to as i64);
        b.output("y", to);
        eval(&b, &[("x", x)], "y")
    };
    // 1.0 = 0x3f800000, -2.5 = 0xc0200000, and back.
    let bits = cast(DataType::Float, DataType::Int32, Tensor::f32(vec![2], vec![1.0, -2.5]));
    assert_eq!(ints(&bits), vec![0x3f80_0000, 0xc020_0000u32 as i32 as i64]);
    let back = cast(
        DataType::Int32,
        DataType::Float,
        Tensor::i32(vec![2], vec![0x3f80_0000, 0xc020_0000u32 as i32]),
    );
    close(&back.to_f32(), &[1.0, -2.5], 0.0);
    // Same-width 8-bit types keep the bit pattern: -1 -> 255, -128 -> 128.
    let x = Tensor::from_f64(kiln_ir::DType::I8, vec![3], &[-1.0, -128.0, 127.0]);
    assert_eq!(ints(&cast(DataType::Int8, DataType::Uint8, x)), vec![255, 128, 127]);
    // 64-bit types are held in 32 bits: a typed Unsupported error, not wrong bits.
    let mut b = ModelBuilder::new("bc64");
    b.opset(26);
    b.input("x", DataType::Int64, &[d(2)]);
    b.node("BitCast", &["x"], &["y"])
        .attr_int("to", DataType::Double as i64);
    b.output("y", DataType::Double);
    assert!(matches!(load_err(&b), OnnxError::Unsupported { op_type, .. } if op_type == "BitCast"));
}
