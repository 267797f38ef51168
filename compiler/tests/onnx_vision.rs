//! Vision ops of the ONNX frontend (Conv, ConvTranspose, MaxPool, AveragePool, Resize,
//! Upsample, Pad, DepthToSpace, SpaceToDepth): small models built with the builder, lowered,
//! evaluated with the reference interpreter and compared with naive Rust implementations written
//! straight from the ONNX operator specs (loops over output elements, f64 accumulation).
//! GPU correctness of the same lowerings is covered by `kiln conformance` and the PP-OCRv4
//! real-model test.

use kiln_compiler::frontend::onnx::builder::{d, tensor_f32, DataType, ModelBuilder, NodeRef};
use kiln_compiler::frontend::onnx::load_onnx_bytes;
use kiln_ir::{interp, DimBindings, Op, Tensor};
use std::collections::HashMap;

// ---------------------------------------------------------------------------------------------
// Harness

/// Deterministic values in [-1, 1).
fn vals(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut out = vec![0; shape.len()];
    for a in (0..shape.len()).rev() {
        out[a] = i % shape[a];
        i /= shape[a];
    }
    out
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

fn dims(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&v| v as i64).collect()
}

/// A model with one float input `x` of `shape`, opset `opset`, output `y`.
fn model(opset: i64, shape: &[usize]) -> ModelBuilder {
    let mut b = ModelBuilder::new("vision");
    b.opset(opset);
    let ds: Vec<_> = shape.iter().map(|&v| d(v)).collect();
    b.input("x", DataType::Float, &ds);
    b.output("y", DataType::Float);
    b
}

/// Lowers and evaluates the model on `x`; returns `y` and its shape.
fn run(b: &ModelBuilder, x: &[f32], shape: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let m = load_onnx_bytes(&b.encode(), "vision", &DimBindings::new()).unwrap_or_else(|e| panic!("load failed: {e}"));
    let ins: HashMap<String, Tensor> = [("x".to_string(), Tensor::f32(shape.to_vec(), x.to_vec()))].into();
    let out = interp::evaluate(&m.graph, &ins).unwrap_or_else(|e| panic!("evaluate failed: {e}"));
    (out["y"].to_f32(), out["y"].shape.clone())
}

/// Asserts that no node of the lowered graph computes from constants only (weight transforms
/// such as ConvTranspose's flip were folded at compile time).
#[track_caller]
fn assert_folded(b: &ModelBuilder) {
    let m = load_onnx_bytes(&b.encode(), "vision", &DimBindings::new()).unwrap();
    let g = &m.graph;
    for id in g.topo_order() {
        let ins = g.inputs_of(id);
        let all_const = ins.iter().all(|&i| matches!(g.node(i).op, Op::Constant(_)));
        assert!(
            ins.is_empty() || !all_const,
            "node '{}' ({}) was not folded",
            g.node(id).name,
            g.node(id).op.name()
        );
    }
}

#[track_caller]
fn assert_close(what: &str, got: (Vec<f32>, Vec<usize>), want: (Vec<f32>, Vec<usize>)) {
    assert_eq!(got.1, want.1, "{what}: shape");
    for (i, (g, w)) in got.0.iter().zip(&want.0).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{what}: element {i} (at {:?}): got {g}, want {w}",
            unravel(i, &want.1)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Convolution

/// Resolved convolution geometry (per spatial axis).
#[derive(Clone)]
struct Geo {
    strides: Vec<usize>,
    pads: Vec<(i64, i64)>,
    dil: Vec<usize>,
    group: usize,
}

/// Direct N-d convolution: `y[n, o, p] = b[o] + sum_{ci, k} x[n, g*cg + ci, p*s + k*d - pb] *
/// w[o, ci, k]`, zero outside the input.
fn conv_ref(x: &[f32], xs: &[usize], w: &[f32], ws: &[usize], b: Option<&[f32]>, g: &Geo) -> (Vec<f32>, Vec<usize>) {
    let sp = xs.len() - 2;
    let (oc, cg) = (ws[0], ws[1]);
    let ocg = oc / g.group;
    let mut ys = vec![xs[0], oc];
    for i in 0..sp {
        let ke = (ws[2 + i] - 1) * g.dil[i] + 1;
        let padded = xs[2 + i] as i64 + g.pads[i].0 + g.pads[i].1;
        ys.push(((padded - ke as i64) / g.strides[i] as i64 + 1) as usize);
    }
    let ks = &ws[2..];
    let mut y = vec![0.0; numel(&ys)];
    for (yi, out) in y.iter_mut().enumerate() {
        let yc = unravel(yi, &ys);
        let (n, o) = (yc[0], yc[1]);
        let grp = o / ocg;
        let mut acc = b.map_or(0.0, |b| b[o] as f64);
        for ci in 0..cg {
            for ki in 0..numel(ks) {
                let kc = unravel(ki, ks);
                let mut xc = vec![n, grp * cg + ci];
                let mut inside = true;
                for i in 0..sp {
                    let p = (yc[2 + i] * g.strides[i] + kc[i] * g.dil[i]) as i64 - g.pads[i].0;
                    inside &= p >= 0 && p < xs[2 + i] as i64;
                    xc.push(p.max(0) as usize);
                }
                if inside {
                    let mut wc = vec![o, ci];
                    wc.extend(&kc);
                    acc += x[ravel(&xc, xs)] as f64 * w[ravel(&wc, ws)] as f64;
                }
            }
        }
        *out = acc as f32;
    }
    (y, ys)
}

/// Transposed convolution by scattering: every input element adds `x * w[c, o, k]` at output
/// position `i*s + k*d - pb` of channel `g*ocg + o`; `out` is the output's spatial size.
fn conv_transpose_ref(
    x: &[f32],
    xs: &[usize],
    w: &[f32],
    ws: &[usize],
    b: Option<&[f32]>,
    g: &Geo,
    out: &[usize],
) -> (Vec<f32>, Vec<usize>) {
    let sp = xs.len() - 2;
    let (c, ocg) = (xs[1], ws[1]);
    let cg = c / g.group;
    let mut ys = vec![xs[0], ocg * g.group];
    ys.extend(out);
    let mut y = vec![0.0f64; numel(&ys)];
    for (yi, v) in y.iter_mut().enumerate() {
        *v = b.map_or(0.0, |b| b[unravel(yi, &ys)[1]] as f64);
    }
    let ks = &ws[2..];
    for (xi, &xv) in x.iter().enumerate() {
        let xc = unravel(xi, xs);
        let grp = xc[1] / cg;
        for o in 0..ocg {
            for ki in 0..numel(ks) {
                let kc = unravel(ki, ks);
                let mut yc = vec![xc[0], grp * ocg + o];
                let mut inside = true;
                for i in 0..sp {
                    let p = (xc[2 + i] * g.strides[i] + kc[i] * g.dil[i]) as i64 - g.pads[i].0;
                    inside &= p >= 0 && p < out[i] as i64;
                    yc.push(p.max(0) as usize);
                }
                if inside {
                    let mut wc = vec![xc[1], o];
                    wc.extend(&kc);
                    y[ravel(&yc, &ys)] += xv as f64 * w[ravel(&wc, ws)] as f64;
                }
            }
        }
    }
    (y.iter().map(|&v| v as f32).collect(), ys)
}

/// Runs a Conv/ConvTranspose node on x `xs` with weights `ws` and (if `nb > 0`) a bias of `nb`
/// elements, all initializers; `attrs` sets the node's attributes. Returns the output and the
/// inputs (x, w, bias).
#[allow(clippy::type_complexity)]
fn conv_case(
    op: &str,
    xs: &[usize],
    ws: &[usize],
    nb: usize,
    attrs: impl FnOnce(NodeRef) -> NodeRef,
) -> ((Vec<f32>, Vec<usize>), Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
    let x = vals(numel(xs), 1);
    let w = vals(numel(ws), 2);
    let bias = (nb > 0).then(|| vals(nb, 3));
    let mut b = model(17, xs);
    b.initializer(tensor_f32("w", &dims(ws), &w));
    let mut ins = vec!["x", "w"];
    if let Some(bv) = &bias {
        b.initializer(tensor_f32("b", &[nb as i64], bv));
        ins.push("b");
    }
    attrs(b.node(op, &ins, &["y"]).name("op"));
    (run(&b, &x, xs), x, w, bias)
}

fn geo(strides: &[usize], pads: &[(i64, i64)], dil: &[usize], group: usize) -> Geo {
    Geo {
        strides: strides.to_vec(),
        pads: pads.to_vec(),
        dil: dil.to_vec(),
        group,
    }
}

#[test]
fn conv_2d_groups_strides_dilations_asymmetric_pads_bias() {
    let (xs, ws) = ([2, 4, 7, 6], [6, 2, 3, 2]);
    let (got, x, w, b) = conv_case("Conv", &xs, &ws, 6, |n| {
        n.attr_int("group", 2)
            .attr_ints("strides", &[2, 1])
            .attr_ints("dilations", &[1, 2])
            .attr_ints("pads", &[1, 0, 2, 1])
            .attr_ints("kernel_shape", &[3, 2])
    });
    let g = geo(&[2, 1], &[(1, 2), (0, 1)], &[1, 2], 2);
    assert_close("conv2d", got, conv_ref(&x, &xs, &w, &ws, b.as_deref(), &g));
}

#[test]
fn conv_depthwise_and_pointwise() {
    let (xs, ws) = ([1, 3, 5, 5], [3, 1, 3, 3]);
    let (got, x, w, b) = conv_case("Conv", &xs, &ws, 0, |n| {
        n.attr_int("group", 3).attr_ints("pads", &[1, 1, 1, 1])
    });
    let g = geo(&[1, 1], &[(1, 1), (1, 1)], &[1, 1], 3);
    assert_close("depthwise", got, conv_ref(&x, &xs, &w, &ws, b.as_deref(), &g));
    let (xs, ws) = ([2, 3, 4, 3], [5, 3, 1, 1]);
    let (got, x, w, b) = conv_case("Conv", &xs, &ws, 5, |n| n);
    let g = geo(&[1, 1], &[(0, 0), (0, 0)], &[1, 1], 1);
    assert_close("pointwise", got, conv_ref(&x, &xs, &w, &ws, b.as_deref(), &g));
}

#[test]
fn conv_auto_pad_modes_1d_and_3d() {
    // 1-D, SAME_UPPER with stride 2: out = ceil(9/2) = 5, total pad = (5-1)*2 + 3 - 9 = 2.
    let (xs, ws) = ([1, 2, 9], [3, 2, 3]);
    let (got, x, w, b) = conv_case("Conv", &xs, &ws, 3, |n| {
        n.attr_str("auto_pad", "SAME_UPPER").attr_ints("strides", &[2])
    });
    let g = geo(&[2], &[(1, 1)], &[1], 1);
    assert_close("same_upper", got, conv_ref(&x, &xs, &w, &ws, b.as_deref(), &g));
    // SAME_LOWER with an even kernel: total pad 1 goes to the beginning.
    let (xs, ws) = ([1, 1, 6], [1, 1, 2]);
    let (got, x, w, b) = conv_case("Conv", &xs, &ws, 0, |n| n.attr_str("auto_pad", "SAME_LOWER"));
    let g = geo(&[1], &[(1, 0)], &[1], 1);
    assert_close("same_lower", got, conv_ref(&x, &xs, &w, &ws, b.as_deref(), &g));
    // VALID ignores pads.
    let (xs, ws) = ([1, 2, 4, 5, 3], [2, 2, 2, 3, 2]);
    let (got, x, w, b) = conv_case("Conv", &xs, &ws, 2, |n| {
        n.attr_str("auto_pad", "VALID").attr_ints("strides", &[1, 2, 1])
    });
    let g = geo(&[1, 2, 1], &[(0, 0); 3], &[1, 1, 1], 1);
    assert_close("valid_3d", got, conv_ref(&x, &xs, &w, &ws, b.as_deref(), &g));
}

#[test]
fn conv_transpose_upsampling_layer_with_bias() {
    // The PP-OCR pattern: kernel 2, stride 2, no padding.
    let (xs, ws) = ([1, 3, 4, 5], [3, 2, 2, 2]);
    let (got, x, w, b) = conv_case("ConvTranspose", &xs, &ws, 2, |n| {
        n.attr_ints("strides", &[2, 2]).attr_ints("kernel_shape", &[2, 2])
    });
    let g = geo(&[2, 2], &[(0, 0); 2], &[1, 1], 1);
    let want = conv_transpose_ref(&x, &xs, &w, &ws, b.as_deref(), &g, &[8, 10]);
    assert_close("convT k2s2", got, want);
    // The weight transform is evaluated at compile time.
    let mut m = model(17, &xs);
    m.init_f32("w", &dims(&ws), &w);
    m.node("ConvTranspose", &["x", "w"], &["y"])
        .attr_ints("strides", &[2, 2]);
    assert_folded(&m);
}

#[test]
fn conv_transpose_pads_output_padding_and_output_shape() {
    let (xs, ws) = ([1, 1, 3, 3], [1, 2, 3, 3]);
    // Explicit pads: out = 3*(3-1) + 3 - 2 = 7 rows, 2*(3-1) + 3 - 4 = 3 columns.
    let (got, x, w, _) = conv_case("ConvTranspose", &xs, &ws, 0, |n| {
        n.attr_ints("strides", &[3, 2]).attr_ints("pads", &[1, 2, 1, 2])
    });
    let g = geo(&[3, 2], &[(1, 1), (2, 2)], &[1, 1], 1);
    assert_close("pads", got, conv_transpose_ref(&x, &xs, &w, &ws, None, &g, &[7, 3]));
    // output_padding adds rows/columns at the end: 10 x 8.
    let (got, x, w, _) = conv_case("ConvTranspose", &xs, &ws, 0, |n| {
        n.attr_ints("strides", &[3, 2]).attr_ints("output_padding", &[1, 1])
    });
    let g = geo(&[3, 2], &[(0, 0); 2], &[1, 1], 1);
    assert_close(
        "output_padding",
        got,
        conv_transpose_ref(&x, &xs, &w, &ws, None, &g, &[10, 8]),
    );
    // output_shape 10 x 8: total padding -1 per axis, split (0, -1) (floor division).
    let (got, x, w, _) = conv_case("ConvTranspose", &xs, &ws, 0, |n| {
        n.attr_ints("strides", &[3, 2]).attr_ints("output_shape", &[10, 8])
    });
    assert_close(
        "output_shape",
        got,
        conv_transpose_ref(&x, &xs, &w, &ws, None, &g, &[10, 8]),
    );
    // output_shape smaller than the full result: total padding 2 and 1.
    let (got, x, w, _) = conv_case("ConvTranspose", &xs, &ws, 0, |n| {
        n.attr_ints("strides", &[3, 2]).attr_ints("output_shape", &[7, 6])
    });
    let g = geo(&[3, 2], &[(1, 1), (1, 0)], &[1, 1], 1);
    assert_close(
        "output_shape crop",
        got,
        conv_transpose_ref(&x, &xs, &w, &ws, None, &g, &[7, 6]),
    );
}

#[test]
fn conv_transpose_groups_dilations_auto_pad_1d() {
    // Groups with dilation, bias.
    let (xs, ws) = ([2, 4, 3, 4], [4, 3, 2, 3]);
    let (got, x, w, b) = conv_case("ConvTranspose", &xs, &ws, 6, |n| {
        n.attr_int("group", 2)
            .attr_ints("dilations", &[2, 1])
            .attr_ints("strides", &[1, 2])
    });
    // out rows: 1*(3-1) + 1*2 + 1 = 5; columns: 2*(4-1) + 3 = 9.
    let g = geo(&[1, 2], &[(0, 0); 2], &[2, 1], 2);
    let want = conv_transpose_ref(&x, &xs, &w, &ws, b.as_deref(), &g, &[5, 9]);
    assert_close("groups+dilations", got, want);
    // SAME_UPPER, stride 2: out = in * 2 = 10, total = 2*(5-1) + 3 - 10 = 1 -> (0, 1).
    let (xs, ws) = ([1, 2, 5], [2, 1, 3]);
    let (got, x, w, _) = conv_case("ConvTranspose", &xs, &ws, 0, |n| {
        n.attr_str("auto_pad", "SAME_UPPER").attr_ints("strides", &[2])
    });
    let g = geo(&[2], &[(0, 1)], &[1], 1);
    assert_close("same_upper", got, conv_transpose_ref(&x, &xs, &w, &ws, None, &g, &[10]));
    // Stride 1 with pads: a plain convolution with complementary padding.
    let (xs, ws) = ([1, 2, 6], [2, 3, 4]);
    let (got, x, w, _) = conv_case("ConvTranspose", &xs, &ws, 0, |n| n.attr_ints("pads", &[1, 2]));
    let g = geo(&[1], &[(1, 2)], &[1], 1);
    assert_close(
        "stride 1 pads",
        got,
        conv_transpose_ref(&x, &xs, &w, &ws, None, &g, &[6]),
    );
}

// ---------------------------------------------------------------------------------------------
// Pooling

#[derive(Clone, Copy, PartialEq)]
enum Pool {
    Max,
    /// Average; `true` counts padding positions in the divisor.
    Avg(bool),
    /// `(sum |x|^p)^(1/p)` over the input elements of the window.
    Lp(i32),
}

/// Pooling geometry from the ONNX spec: output size floor or ceil of
/// `(in + pads - dilated_kernel) / stride + 1`, where in ceil mode a window must start inside
/// the input or its begin padding; or `ceil(in / stride)` for SAME padding.
fn pool_ref(kind: Pool, x: &[f32], xs: &[usize], k: &[usize], g: &Geo, ceil: bool) -> (Vec<f32>, Vec<usize>) {
    let sp = xs.len() - 2;
    let mut ys = xs[..2].to_vec();
    for i in 0..sp {
        let ke = ((k[i] - 1) * g.dil[i] + 1) as i64;
        let avail = xs[2 + i] as i64 + g.pads[i].0 + g.pads[i].1 - ke;
        let s = g.strides[i] as i64;
        let mut o = if ceil {
            (avail + s - 1).div_euclid(s) + 1
        } else {
            avail.div_euclid(s) + 1
        };
        if ceil && (o - 1) * s >= xs[2 + i] as i64 + g.pads[i].0 {
            o -= 1;
        }
        ys.push(o as usize);
    }
    let mut y = vec![0.0; numel(&ys)];
    for (yi, out) in y.iter_mut().enumerate() {
        let yc = unravel(yi, &ys);
        let (mut best, mut sum, mut valid, mut padded) = (f64::NEG_INFINITY, 0.0, 0usize, 0usize);
        let mut lp = 0.0;
        for ki in 0..numel(k) {
            let kc = unravel(ki, k);
            let mut xc = yc[..2].to_vec();
            let (mut inside, mut in_pad) = (true, true);
            for i in 0..sp {
                let p = (yc[2 + i] * g.strides[i] + kc[i] * g.dil[i]) as i64 - g.pads[i].0;
                inside &= p >= 0 && p < xs[2 + i] as i64;
                in_pad &= p < xs[2 + i] as i64 + g.pads[i].1;
                xc.push(p.max(0) as usize);
            }
            padded += in_pad as usize;
            if inside {
                let v = x[ravel(&xc, xs)] as f64;
                best = best.max(v);
                sum += v;
                if let Pool::Lp(p) = kind {
                    lp += v.abs().powi(p);
                }
                valid += 1;
            }
        }
        *out = match kind {
            Pool::Max => best,
            Pool::Avg(false) => sum / valid as f64,
            Pool::Avg(true) => sum / padded as f64,
            Pool::Lp(p) => lp.powf(1.0 / p as f64),
        } as f32;
    }
    (y, ys)
}

fn pool_case(op: &str, xs: &[usize], attrs: impl FnOnce(NodeRef) -> NodeRef) -> ((Vec<f32>, Vec<usize>), Vec<f32>) {
    let x = vals(numel(xs), 7);
    let mut b = model(17, xs);
    attrs(b.node(op, &["x"], &["y"]).name("pool"));
    (run(&b, &x, xs), x)
}

#[test]
fn max_pool_pads_strides_dilations_ceil() {
    let xs = [2, 3, 7, 8];
    let (got, x) = pool_case("MaxPool", &xs, |n| {
        n.attr_ints("kernel_shape", &[3, 3])
            .attr_ints("strides", &[2, 2])
            .attr_ints("pads", &[1, 1, 1, 0])
    });
    let g = geo(&[2, 2], &[(1, 1), (1, 0)], &[1, 1], 1);
    assert_close("pads+strides", got, pool_ref(Pool::Max, &x, &xs, &[3, 3], &g, false));
    let (got, x) = pool_case("MaxPool", &xs, |n| {
        n.attr_ints("kernel_shape", &[2, 3])
            .attr_ints("strides", &[2, 2])
            .attr_ints("dilations", &[2, 1])
            .attr_int("ceil_mode", 1)
    });
    let g = geo(&[2, 2], &[(0, 0); 2], &[2, 1], 1);
    assert_close("dilations+ceil", got, pool_ref(Pool::Max, &x, &xs, &[2, 3], &g, true));
    // 1-D and 3-D.
    let xs = [1, 2, 10];
    let (got, x) = pool_case("MaxPool", &xs, |n| {
        n.attr_ints("kernel_shape", &[4]).attr_ints("strides", &[3])
    });
    let g = geo(&[3], &[(0, 0)], &[1], 1);
    assert_close("1d", got, pool_ref(Pool::Max, &x, &xs, &[4], &g, false));
    let xs = [1, 1, 4, 5, 3];
    let (got, x) = pool_case("MaxPool", &xs, |n| n.attr_ints("kernel_shape", &[2, 2, 2]));
    let g = geo(&[1, 1, 1], &[(0, 0); 3], &[1, 1, 1], 1);
    assert_close("3d", got, pool_ref(Pool::Max, &x, &xs, &[2, 2, 2], &g, false));
}

#[test]
fn max_pool_same_upper_and_indices_output() {
    // SAME_UPPER, stride 2 on 7: out 4, total pad (4-1)*2 + 3 - 7 = 2 -> (1, 1).
    let xs = [1, 2, 7, 6];
    let (got, x) = pool_case("MaxPool", &xs, |n| {
        n.attr_ints("kernel_shape", &[3, 2])
            .attr_ints("strides", &[2, 2])
            .attr_str("auto_pad", "SAME_UPPER")
    });
    let g = geo(&[2, 2], &[(1, 1), (0, 0)], &[1, 1], 1);
    assert_close("same_upper", got, pool_ref(Pool::Max, &x, &xs, &[3, 2], &g, false));
    // The indices output is supported (its values are checked by the ONNX node tests
    // `test_maxpool_with_argmax_*` in the conformance gate): the model loads.
    let mut b = model(17, &[1, 1, 4, 4]);
    b.node("MaxPool", &["x"], &["y", "idx"])
        .attr_ints("kernel_shape", &[2, 2]);
    if let Err(e) = load_onnx_bytes(&b.encode(), "vision", &DimBindings::new()) {
        panic!("MaxPool with indices: {e}");
    }
}

#[test]
fn average_pool_count_include_pad_ceil_and_same_lower() {
    let xs = [1, 2, 6, 5];
    for cip in [0, 1] {
        let (got, x) = pool_case("AveragePool", &xs, |n| {
            n.attr_ints("kernel_shape", &[3, 3])
                .attr_ints("pads", &[1, 2, 1, 0])
                .attr_ints("strides", &[2, 1])
                .attr_int("count_include_pad", cip)
        });
        let g = geo(&[2, 1], &[(1, 1), (2, 0)], &[1, 1], 1);
        let want = pool_ref(Pool::Avg(cip == 1), &x, &xs, &[3, 3], &g, false);
        assert_close(&format!("count_include_pad={cip}"), got, want);
    }
    // Ceil mode: the last window hangs over the end and averages fewer elements.
    let xs = [1, 1, 4, 4];
    let (got, x) = pool_case("AveragePool", &xs, |n| {
        n.attr_ints("kernel_shape", &[3, 3])
            .attr_ints("strides", &[2, 2])
            .attr_int("ceil_mode", 1)
    });
    let g = geo(&[2, 2], &[(0, 0); 2], &[1, 1], 1);
    assert_close("ceil", got, pool_ref(Pool::Avg(false), &x, &xs, &[3, 3], &g, true));
    // SAME_LOWER, stride 1, kernel 2: one pad at the beginning.
    let xs = [2, 1, 5, 3];
    let (got, x) = pool_case("AveragePool", &xs, |n| {
        n.attr_ints("kernel_shape", &[2, 2]).attr_str("auto_pad", "SAME_LOWER")
    });
    let g = geo(&[1, 1], &[(1, 0), (1, 0)], &[1, 1], 1);
    assert_close(
        "same_lower",
        got,
        pool_ref(Pool::Avg(false), &x, &xs, &[2, 2], &g, false),
    );
}

// ---------------------------------------------------------------------------------------------
// Resize / Upsample

/// The source coordinate of output index `o` on an axis of `inp` -> `out` elements (ONNX
/// `coordinate_transformation_mode`).
fn source(ctm: &str, o: usize, scale: f64, inp: usize, out: usize) -> f64 {
    let (o, inp_f, out_f) = (o as f64, inp as f64, out as f64);
    match ctm {
        "half_pixel" => (o + 0.5) / scale - 0.5,
        "asymmetric" => o / scale,
        "align_corners" if out == 1 => 0.0,
        "align_corners" => o * (inp_f - 1.0) / (out_f - 1.0),
        "pytorch_half_pixel" if out == 1 => -0.5,
        "pytorch_half_pixel" => (o + 0.5) / scale - 0.5,
        "half_pixel_symmetric" => {
            let adjustment = out_f / (scale * inp_f);
            inp_f / 2.0 * (1.0 - adjustment) + (o + 0.5) / scale - 0.5
        }
        other => panic!("no reference for {other}"),
    }
}

/// Resizes one axis (separable interpolation, as the ONNX reference does).
#[allow(clippy::too_many_arguments)]
fn resize_axis(
    x: &[f64],
    xs: &[usize],
    axis: usize,
    out: usize,
    scale: f64,
    mode: &str,
    ctm: &str,
    nearest: &str,
) -> (Vec<f64>, Vec<usize>) {
    let mut ys = xs.to_vec();
    ys[axis] = out;
    let inp = xs[axis];
    let clamp = |i: i64| i.clamp(0, inp as i64 - 1) as usize;
    let y = (0..numel(&ys))
        .map(|yi| {
            let mut c = unravel(yi, &ys);
            let s = source(ctm, c[axis], scale, inp, out);
            let at = |c: &mut Vec<usize>, i: usize| {
                c[axis] = i;
                x[ravel(c, xs)]
            };
            let (fl, frac) = (s.floor(), s - s.floor());
            if mode == "nearest" {
                let i = match nearest {
                    "round_prefer_floor" if frac == 0.5 => fl,
                    "round_prefer_ceil" if frac == 0.5 => fl + 1.0,
                    "round_prefer_floor" | "round_prefer_ceil" => s.round(),
                    "floor" => fl,
                    "ceil" => s.ceil(),
                    other => panic!("nearest_mode {other}"),
                };
                at(&mut c, clamp(i as i64))
            } else {
                let a = at(&mut c, clamp(fl as i64));
                let b = at(&mut c, clamp(fl as i64 + 1));
                a * (1.0 - frac) + b * frac
            }
        })
        .collect();
    (y, ys)
}

/// Resize by per-axis `(out, scale)` pairs.
fn resize_ref(
    x: &[f32],
    xs: &[usize],
    axes: &[(usize, f64)],
    mode: &str,
    ctm: &str,
    nearest: &str,
) -> (Vec<f32>, Vec<usize>) {
    let mut v: Vec<f64> = x.iter().map(|&a| a as f64).collect();
    let mut shape = xs.to_vec();
    for (axis, &(out, scale)) in axes.iter().enumerate() {
        if out == shape[axis] && scale == 1.0 {
            continue;
        }
        (v, shape) = resize_axis(&v, &shape, axis, out, scale, mode, ctm, nearest);
    }
    (v.iter().map(|&a| a as f32).collect(), shape)
}

/// Per-axis (out, scale) from scales (out = floor(in * scale)).
fn from_scales(xs: &[usize], scales: &[f32]) -> Vec<(usize, f64)> {
    xs.iter()
        .zip(scales)
        .map(|(&i, &s)| ((i as f64 * s as f64).floor() as usize, s as f64))
        .collect()
}

/// Per-axis (out, scale) from sizes (scale = out / in).
fn from_sizes(xs: &[usize], sizes: &[usize]) -> Vec<(usize, f64)> {
    xs.iter().zip(sizes).map(|(&i, &o)| (o, o as f64 / i as f64)).collect()
}

/// A Resize (opset 13+ form: x, roi, scales, sizes) with scales or sizes as initializers.
fn resize_case(
    xs: &[usize],
    scales: Option<&[f32]>,
    sizes: Option<&[usize]>,
    attrs: &[(&str, &str)],
) -> ((Vec<f32>, Vec<usize>), Vec<f32>) {
    let x = vals(numel(xs), 11);
    let mut b = model(17, xs);
    let ins: Vec<&str> = match (scales, sizes) {
        (Some(s), _) => {
            b.init_f32("scales", &[s.len() as i64], s);
            vec!["x", "", "scales"]
        }
        (None, Some(s)) => {
            b.init_i64("sizes", &[s.len() as i64], &dims(s));
            vec!["x", "", "", "sizes"]
        }
        _ => unreachable!(),
    };
    let mut node = b.node("Resize", &ins, &["y"]).name("resize");
    for (k, v) in attrs {
        node = node.attr_str(k, v);
    }
    (run(&b, &x, xs), x)
}

#[test]
fn resize_nearest_modes() {
    let xs = [1, 2, 4, 5];
    // The PP-OCR neck: 2x nearest, asymmetric coordinates, floor.
    let s = [1.0, 1.0, 2.0, 2.0];
    let a = [
        ("mode", "nearest"),
        ("coordinate_transformation_mode", "asymmetric"),
        ("nearest_mode", "floor"),
    ];
    let (got, x) = resize_case(&xs, Some(&s), None, &a);
    let want = resize_ref(&x, &xs, &from_scales(&xs, &s), "nearest", "asymmetric", "floor");
    assert_close("2x asymmetric floor", got, want);
    // Downsampling by 0.6 with the defaults (half_pixel, round_prefer_floor).
    let s = [1.0, 1.0, 0.6, 0.6];
    let (got, x) = resize_case(&xs, Some(&s), None, &[("mode", "nearest")]);
    let want = resize_ref(
        &x,
        &xs,
        &from_scales(&xs, &s),
        "nearest",
        "half_pixel",
        "round_prefer_floor",
    );
    assert_close("0.6 half_pixel", got, want);
    for (ctm, nm, sizes) in [
        ("align_corners", "round_prefer_ceil", [1, 2, 7, 8]),
        ("half_pixel", "ceil", [1, 2, 7, 3]),
        ("asymmetric", "round_prefer_ceil", [1, 2, 9, 12]),
        ("pytorch_half_pixel", "round_prefer_floor", [1, 1, 1, 7]),
    ] {
        let a = [
            ("mode", "nearest"),
            ("coordinate_transformation_mode", ctm),
            ("nearest_mode", nm),
        ];
        let (got, x) = resize_case(&xs, None, Some(&sizes), &a);
        let want = resize_ref(&x, &xs, &from_sizes(&xs, &sizes), "nearest", ctm, nm);
        assert_close(&format!("{ctm} {nm} {sizes:?}"), got, want);
    }
}

#[test]
fn resize_linear_coordinate_modes() {
    let xs = [1, 2, 4, 5];
    for (ctm, s) in [
        ("half_pixel", [1.0f32, 1.0, 2.0, 1.5]),
        ("asymmetric", [1.0, 1.0, 1.5, 0.8]),
        ("align_corners", [1.0, 1.0, 2.5, 0.6]),
        ("pytorch_half_pixel", [1.0, 1.0, 0.25, 3.0]),
        ("half_pixel_symmetric", [1.0, 1.0, 0.6, 1.7]),
    ] {
        let a = [("mode", "linear"), ("coordinate_transformation_mode", ctm)];
        let (got, x) = resize_case(&xs, Some(&s), None, &a);
        let want = resize_ref(&x, &xs, &from_scales(&xs, &s), "linear", ctm, "");
        assert_close(&format!("linear {ctm} {s:?}"), got, want);
    }
    // Trilinear: three resized axes (channels included) from sizes.
    let xs = [1, 3, 4, 2];
    let sizes = [1, 5, 3, 4];
    let a = [("mode", "linear"), ("coordinate_transformation_mode", "align_corners")];
    let (got, x) = resize_case(&xs, None, Some(&sizes), &a);
    let want = resize_ref(&x, &xs, &from_sizes(&xs, &sizes), "linear", "align_corners", "");
    assert_close("trilinear", got, want);
}

#[test]
fn upsample_by_opset() {
    // Upsample-9: scales as an input; nearest repeats elements.
    let xs = [1, 2, 3, 2];
    let x = vals(numel(&xs), 5);
    let s = [1.0, 1.0, 2.0, 3.0];
    let mut b = model(9, &xs);
    b.init_f32("scales", &[4], &s);
    b.node("Upsample", &["x", "scales"], &["y"]).attr_str("mode", "nearest");
    let want = resize_ref(&x, &xs, &from_scales(&xs, &s), "nearest", "asymmetric", "floor");
    assert_close("upsample-9 nearest", run(&b, &x, &xs), want);
    // Upsample-7: scales as an attribute; linear with asymmetric coordinates.
    let mut b = model(7, &xs);
    b.node("Upsample", &["x"], &["y"])
        .attr_str("mode", "linear")
        .attr_floats("scales", &s);
    let want = resize_ref(&x, &xs, &from_scales(&xs, &s), "linear", "asymmetric", "");
    assert_close("upsample-7 linear", run(&b, &x, &xs), want);
}

#[test]
fn resize_antialias_linear_loads() {
    // Antialiasing widens the linear and cubic filters when downsampling; its values are
    // checked by the ONNX node tests `test_resize_downsample_*_antialias` in the conformance
    // gate. Here: the model loads.
    let mut b = model(18, &[1, 1, 4, 4]);
    b.init_f32("scales", &[4], &[1.0, 1.0, 0.5, 0.5]);
    b.node("Resize", &["x", "", "scales"], &["y"])
        .attr_str("mode", "linear")
        .attr_int("antialias", 1);
    if let Err(e) = load_onnx_bytes(&b.encode(), "vision", &DimBindings::new()) {
        panic!("Resize with antialias: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Pad, DepthToSpace, SpaceToDepth

/// numpy-style padding: `pads[a] = (begin, end)` (negative crops), modes constant / reflect /
/// edge / wrap, where reflect bounces off the ends as often as needed.
fn pad_ref(x: &[f32], xs: &[usize], pads: &[(i64, i64)], mode: &str, value: f32) -> (Vec<f32>, Vec<usize>) {
    // Crop first, then pad the cropped extent.
    let crop: Vec<(usize, usize)> = pads
        .iter()
        .map(|&(b, e)| ((-b).max(0) as usize, (-e).max(0) as usize))
        .collect();
    let ys: Vec<usize> = xs
        .iter()
        .zip(pads)
        .map(|(&d, &(b, e))| (d as i64 + b + e) as usize)
        .collect();
    let y = (0..numel(&ys))
        .map(|yi| {
            let yc = unravel(yi, &ys);
            let mut xc = Vec::new();
            for a in 0..xs.len() {
                let m = (xs[a] - crop[a].0 - crop[a].1) as i64;
                let mut i = yc[a] as i64 - pads[a].0.max(0);
                if !(0..m).contains(&i) {
                    match mode {
                        "constant" => return value,
                        "edge" => i = i.clamp(0, m - 1),
                        "wrap" => i = i.rem_euclid(m),
                        _ => {
                            while !(0..m).contains(&i) {
                                i = if i < 0 { -i } else { 2 * (m - 1) - i };
                            }
                        }
                    }
                }
                xc.push((i + crop[a].0 as i64) as usize);
            }
            x[ravel(&xc, xs)]
        })
        .collect();
    (y, ys)
}

#[test]
fn pad_modes_negative_pads_and_axes() {
    let xs = [2, 3, 4];
    let x = vals(numel(&xs), 21);
    for mode in ["constant", "reflect", "edge", "wrap"] {
        // Reflect pads must stay below the axis size (as in onnxruntime); wrap pads up to it.
        let pads = match mode {
            "reflect" => [(0, 1), (2, 2), (2, -1)],
            "wrap" => [(0, 1), (3, 2), (2, -1)],
            _ => [(0, 1), (4, 3), (2, -1)],
        };
        let raw: Vec<i64> = pads.iter().map(|p| p.0).chain(pads.iter().map(|p| p.1)).collect();
        let mut b = model(13, &xs);
        b.init_i64("pads", &[6], &raw);
        b.init_f32("value", &[], &[2.5]);
        b.node("Pad", &["x", "pads", "value"], &["y"]).attr_str("mode", mode);
        assert_close(mode, run(&b, &x, &xs), pad_ref(&x, &xs, &pads, mode, 2.5));
    }
    // Opset 18: pads for the listed axes only (negative axis).
    let mut b = model(18, &xs);
    b.init_i64("pads", &[4], &[1, 0, 2, -1]);
    b.init_i64("axes", &[2], &[-1, 0]);
    b.node("Pad", &["x", "pads", "", "axes"], &["y"])
        .attr_str("mode", "reflect");
    let want = pad_ref(&x, &xs, &[(0, -1), (0, 0), (1, 2)], "reflect", 0.0);
    assert_close("axes", run(&b, &x, &xs), want);
    // Opset 2: pads and value as attributes.
    let mut b = model(2 + 5, &xs);
    b.opset(7);
    b.node("Pad", &["x"], &["y"])
        .attr_ints("pads", &[1, 0, 0, 0, 2, 1])
        .attr_float("value", -1.0);
    let want = pad_ref(&x, &xs, &[(1, 0), (0, 2), (0, 1)], "constant", -1.0);
    assert_close("attributes", run(&b, &x, &xs), want);
}

#[test]
fn depth_to_space_and_space_to_depth() {
    let (bs, c, h, w) = (2usize, 2usize, 2usize, 3usize);
    let xs = [1, c * bs * bs, h, w];
    let x = vals(numel(&xs), 31);
    for mode in ["DCR", "CRD"] {
        let mut b = model(13, &xs);
        b.node("DepthToSpace", &["x"], &["y"])
            .attr_int("blocksize", bs as i64)
            .attr_str("mode", mode);
        let ys = vec![1, c, h * bs, w * bs];
        let y = (0..numel(&ys))
            .map(|yi| {
                let [_, ch, r, q] = unravel(yi, &ys)[..] else {
                    unreachable!()
                };
                let (i, j) = (r % bs, q % bs);
                let src = if mode == "DCR" {
                    (i * bs + j) * c + ch
                } else {
                    ch * bs * bs + i * bs + j
                };
                x[ravel(&[0, src, r / bs, q / bs], &xs)]
            })
            .collect();
        assert_close(mode, run(&b, &x, &xs), (y, ys));
    }
    // SpaceToDepth (DCR order): out channel (i*bs + j)*C + c holds x[c, r*bs + i, q*bs + j].
    let xs = [1, c, h * bs, w * bs];
    let x = vals(numel(&xs), 32);
    let mut b = model(13, &xs);
    b.node("SpaceToDepth", &["x"], &["y"]).attr_int("blocksize", bs as i64);
    let ys = vec![1, c * bs * bs, h, w];
    let y = (0..numel(&ys))
        .map(|yi| {
            let [_, oc, r, q] = unravel(yi, &ys)[..] else {
                unreachable!()
            };
            let (blk, ch) = (oc / c, oc % c);
            x[ravel(&[0, ch, r * bs + blk / bs, q * bs + blk % bs], &xs)]
        })
        .collect();
    assert_close("SpaceToDepth", run(&b, &x, &xs), (y, ys));
}

#[test]
fn lp_pool_and_global_lp_pool() {
    let xs = [2, 2, 7, 6];
    for p in [1, 2, 3] {
        let (got, x) = pool_case("LpPool", &xs, |n| {
            n.attr_ints("kernel_shape", &[3, 2])
                .attr_ints("strides", &[2, 1])
                .attr_ints("pads", &[1, 0, 1, 1])
                .attr_int("p", p)
        });
        let g = geo(&[2, 1], &[(1, 1), (0, 1)], &[1, 1], 1);
        let want = pool_ref(Pool::Lp(p as i32), &x, &xs, &[3, 2], &g, false);
        assert_close(&format!("LpPool p={p}"), got, want);
    }
    let (got, x) = pool_case("LpPool", &xs, |n| {
        n.attr_ints("kernel_shape", &[2, 2])
            .attr_ints("strides", &[2, 2])
            .attr_ints("dilations", &[2, 1])
            .attr_int("ceil_mode", 1)
    });
    let g = geo(&[2, 2], &[(0, 0); 2], &[2, 1], 1);
    assert_close("LpPool ceil", got, pool_ref(Pool::Lp(2), &x, &xs, &[2, 2], &g, true));
    let (got, x) = pool_case("LpPool", &xs, |n| {
        n.attr_ints("kernel_shape", &[2, 3])
            .attr_str("auto_pad", "SAME_LOWER")
            .attr_int("p", 3)
    });
    let g = geo(&[1, 1], &[(1, 0), (1, 1)], &[1, 1], 1);
    assert_close(
        "LpPool same_lower",
        got,
        pool_ref(Pool::Lp(3), &x, &xs, &[2, 3], &g, false),
    );
    for p in [2, 3] {
        let (got, x) = pool_case("GlobalLpPool", &xs, |n| n.attr_int("p", p));
        let g = geo(&[1, 1], &[(0, 0); 2], &[1, 1], 1);
        let want = pool_ref(Pool::Lp(p as i32), &x, &xs, &[7, 6], &g, false);
        assert_close(&format!("GlobalLpPool p={p}"), got, want);
    }
}

/// Cubic convolution kernel weight at distance `d` (Keys, coefficient `a`).
fn cubic_kernel(d: f64, a: f64) -> f64 {
    let d = d.abs();
    if d <= 1.0 {
        (a + 2.0) * d.powi(3) - (a + 3.0) * d * d + 1.0
    } else if d < 2.0 {
        a * d.powi(3) - 5.0 * a * d * d + 8.0 * a * d - 4.0 * a
    } else {
        0.0
    }
}

/// Cubic resize of one axis: neighbours `floor(x) - 1 ..= floor(x) + 2`, edge-clamped, or
/// dropped and renormalized with `exclude_outside`.
fn cubic_axis(
    x: &[f64],
    xs: &[usize],
    axis: usize,
    out: usize,
    scale: f64,
    a: f64,
    exclude: bool,
) -> (Vec<f64>, Vec<usize>) {
    let mut ys = xs.to_vec();
    ys[axis] = out;
    let inp = xs[axis] as i64;
    let y = (0..numel(&ys))
        .map(|yi| {
            let mut c = unravel(yi, &ys);
            let s = source("half_pixel", c[axis], scale, xs[axis], out);
            let base = s.floor() as i64;
            let (mut acc, mut wsum) = (0.0, 0.0);
            for i in base - 1..=base + 2 {
                let mut w = cubic_kernel(s - i as f64, a);
                if exclude && !(0..inp).contains(&i) {
                    w = 0.0;
                }
                c[axis] = i.clamp(0, inp - 1) as usize;
                acc += w * x[ravel(&c, xs)];
                wsum += w;
            }
            if exclude {
                acc / wsum
            } else {
                acc
            }
        })
        .collect();
    (y, ys)
}

#[test]
fn resize_cubic_with_and_without_exclude_outside() {
    let xs = [1, 1, 5, 4];
    let s = [1.0f32, 1.0, 1.6, 0.75];
    for (a, exclude) in [(-0.75, 0), (-0.5, 1)] {
        let x = vals(numel(&xs), 41);
        let mut b = model(17, &xs);
        b.init_f32("scales", &[4], &s);
        b.node("Resize", &["x", "", "scales"], &["y"])
            .attr_str("mode", "cubic")
            .attr_float("cubic_coeff_a", a as f32)
            .attr_int("exclude_outside", exclude);
        let mut v: Vec<f64> = x.iter().map(|&t| t as f64).collect();
        let mut shape = xs.to_vec();
        for (axis, (out, sc)) in from_scales(&xs, &s).into_iter().enumerate().skip(2) {
            (v, shape) = cubic_axis(&v, &shape, axis, out, sc, a as f32 as f64, exclude == 1);
        }
        let want = (v.iter().map(|&t| t as f32).collect(), shape);
        assert_close(&format!("cubic a={a} exclude={exclude}"), run(&b, &x, &xs), want);
    }
}

#[test]
fn resize_tf_crop_and_resize_with_extrapolation_and_axes() {
    let xs = [1, 1, 4, 5];
    let x = vals(numel(&xs), 43);
    // Crop rows [0.2, 1.3] (partly outside) and columns [0.1, 0.7] of the image, resized to 3x4.
    let roi = [0.2f32, 0.1, 1.3, 0.7];
    let mut b = model(18, &xs);
    b.init_f32("roi", &[4], &roi);
    b.init_i64("sizes", &[2], &[3, 4]);
    b.node("Resize", &["x", "roi", "", "sizes"], &["y"])
        .attr_str("mode", "linear")
        .attr_str("coordinate_transformation_mode", "tf_crop_and_resize")
        .attr_float("extrapolation_value", 7.5)
        .attr_ints("axes", &[2, 3]);
    let ys = vec![1, 1, 3, 4];
    let src = |o: usize, out: usize, (s, e): (f32, f32), inp: usize| {
        let (s, e, inp) = (s as f64, e as f64, inp as f64 - 1.0);
        o as f64 * (e - s) * inp / (out as f64 - 1.0) + s * inp
    };
    let y = (0..numel(&ys))
        .map(|yi| {
            let [_, _, i, j] = unravel(yi, &ys)[..] else {
                unreachable!()
            };
            let (r, c) = (src(i, 3, (roi[0], roi[2]), 4), src(j, 4, (roi[1], roi[3]), 5));
            if !(0.0..=3.0).contains(&r) || !(0.0..=4.0).contains(&c) {
                return 7.5;
            }
            let at = |r: usize, c: usize| x[r.min(3) * 5 + c.min(4)] as f64;
            let (r0, c0) = (r.floor() as usize, c.floor() as usize);
            let (fr, fc) = (r - r0 as f64, c - c0 as f64);
            let top = at(r0, c0) * (1.0 - fc) + at(r0, c0 + 1) * fc;
            let bottom = at(r0 + 1, c0) * (1.0 - fc) + at(r0 + 1, c0 + 1) * fc;
            (top * (1.0 - fr) + bottom * fr) as f32
        })
        .collect();
    assert_close("tf_crop_and_resize", run(&b, &x, &xs), (y, ys));
}

#[test]
fn resize_keep_aspect_ratio_policy() {
    let xs = [1, 1, 4, 6];
    for (policy, scale) in [("not_larger", 1.5f64), ("not_smaller", 2.0)] {
        // sizes 6x12 ask for 1.5x rows and 2x columns; the policy picks one scale for both.
        let x = vals(numel(&xs), 45);
        let mut b = model(18, &xs);
        b.init_i64("sizes", &[2], &[6, 12]);
        b.node("Resize", &["x", "", "", "sizes"], &["y"])
            .attr_str("mode", "nearest")
            .attr_str("keep_aspect_ratio_policy", policy)
            .attr_ints("axes", &[2, 3]);
        let geo: Vec<(usize, f64)> = xs
            .iter()
            .enumerate()
            .map(|(a, &i)| {
                if a < 2 {
                    (i, 1.0)
                } else {
                    ((scale * i as f64 + 0.5).floor() as usize, scale)
                }
            })
            .collect();
        let want = resize_ref(&x, &xs, &geo, "nearest", "half_pixel", "round_prefer_floor");
        assert_close(policy, run(&b, &x, &xs), want);
    }
}

#[test]
fn two_axis_cubic_resize_fits_the_default_webgpu_limits() {
    // One shared tap table: x, the table and the output are 3 of the 8 storage buffers.
    let xs = [1, 2, 5, 6];
    let mut b = model(13, &xs);
    b.init_f32("scales", &[4], &[1.0, 1.0, 2.0, 1.5]);
    b.node("Resize", &["x", "", "scales"], &["y"]).attr_str("mode", "cubic");
    let m = load_onnx_bytes(&b.encode(), "vision", &DimBindings::new()).unwrap();
    kiln_compiler::compile(&m, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
}
