//! Signal-processing ops: the window functions (HannWindow, HammingWindow, BlackmanWindow),
//! computed at compile time from a constant size, and CenterCropPad (a crop or zero pad
//! centred on each listed axis, one tensor expression), DFT and STFT (products with constant
//! cosine and sine tables) and MelWeightMatrix.

use super::super::ctx::{Ctx, N};
use super::super::data;
use super::super::value::Value;
use super::super::OnnxError;
use super::one;
use super::shape::check_folded_count;
use kiln_ir::{BinaryOp, DType, Dim, Expr, Op, Tensor};

/// `HannWindow`, `HammingWindow`, `BlackmanWindow` (opset 17): a 1-D window of the constant
/// `size`, periodic (the default) or symmetric, as a constant of `output_datatype`.
pub(crate) fn window(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let size = cx.const_ints(n, 0, "size")?;
    let &[size] = size.as_slice() else {
        return Err(n.err(format!("input 'size' must hold one value, got {}", size.len())));
    };
    if size < 0 {
        return Err(n.err(format!("size must be non-negative, got {size}")));
    }
    check_folded_count(n, size as f64, "the window")?;
    let dtype = data::ir_dtype(n.attr_i("output_datatype", 1)? as i32)
        .map_err(|m| n.err(format!("attribute 'output_datatype': {m}")))?;
    let periodic = n.attr_i("periodic", 1)? != 0;
    let denom = if periodic { size } else { size - 1 } as f64;
    let tau = 2.0 * std::f64::consts::PI;
    let values: Vec<f64> = (0..size)
        .map(|i| {
            let x = i as f64 / denom;
            match n.op {
                "HannWindow" => 0.5 - 0.5 * (tau * x).cos(),
                "HammingWindow" => 25.0 / 46.0 - (21.0 / 46.0) * (tau * x).cos(),
                _ => 0.42 - 0.5 * (tau * x).cos() + 0.08 * (2.0 * tau * x).cos(),
            }
        })
        .collect();
    Ok(one(cx.constant(
        n,
        "",
        Tensor::from_f64(dtype, vec![size as usize], &values),
    )))
}

/// `CenterCropPad` (opset 18): each listed axis becomes the constant target length, cropped
/// (keeping the centre, the extra element on the right when odd) or zero-padded (the extra
/// zero on the right) around the centre.
pub(crate) fn center_crop_pad(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let ty = cx.ty(x).clone();
    let rank = ty.rank();
    let target = cx.const_ints(n, 1, "shape")?;
    let axes = match n.attr_ints("axes")? {
        Some(a) => n.axes(&a, rank, "axes")?,
        None => (0..rank).collect(),
    };
    if target.len() != axes.len() {
        return Err(n.err(format!("'shape' has {} values for {} axes", target.len(), axes.len())));
    }
    let mut shape = ty.shape.clone();
    // Output coordinate o reads input o + shift[a]; in range only for 0 <= o + shift < len.
    let mut index: Vec<Expr> = (0..rank).map(Expr::Coord).collect();
    let mut inside: Option<Expr> = None;
    for (&a, &t) in axes.iter().zip(&target) {
        let len = ty.shape[a].as_const().ok_or_else(|| {
            n.err(format!(
                "axis {a} has symbolic length {}; bind it with --dim",
                ty.shape[a]
            ))
        })?;
        if t < 0 || t > i32::MAX as i64 {
            return Err(n.err(format!("target length {t} for axis {a} is out of range")));
        }
        shape[a] = Dim::c(t);
        if t == len {
            continue;
        }
        let shift = if t < len { (len - t) / 2 } else { -((t - len) / 2) };
        let src = Expr::Coord(a).add(Expr::int(shift));
        if t > len {
            let lo = src.clone().cmp(BinaryOp::GreaterEqual, Expr::int(0), DType::I32);
            let hi = src.clone().cmp(BinaryOp::Less, Expr::int(len), DType::I32);
            let both = lo.cmp(BinaryOp::And, hi, DType::Bool);
            inside = Some(match inside {
                None => both,
                Some(c) => c.cmp(BinaryOp::And, both, DType::Bool),
            });
        }
        index[a] = src;
    }
    let load = Expr::Load { input: 0, index };
    let expr = match inside {
        Some(c) => Expr::select(c, load, Expr::Lit(0.0, ty.dtype)),
        None => load,
    };
    Ok(one(cx.add(
        n,
        "",
        Op::Compute {
            shape,
            dtype: ty.dtype,
            expr,
            name: "CenterCropPad".into(),
        },
        &[x],
    )?))
}

/// Which transform a DFT node computes.
#[derive(Clone, Copy)]
enum DftKind {
    /// `e^{-iθ}`, the first `bins` outputs (all, or `N/2 + 1` when one-sided).
    Forward { bins: usize },
    /// `e^{+iθ} / N`, complex output.
    Inverse,
    /// One-sided (Hermitian) spectrum back to a real signal of length N (numpy's irfft).
    InverseReal,
}

/// Input 0 of DFT or STFT: a float tensor of concrete shape `[..., 1]` (real) or `[..., 2]`
/// (complex), of rank `rank` when given (else at least 2); with that shape.
fn signal_input(cx: &mut Ctx, n: &N, rank: Option<usize>) -> Result<(kiln_ir::NodeId, Vec<usize>), OnnxError> {
    let x = cx.input(n, 0)?;
    let ty = cx.ty(x).clone();
    let xs = ty.const_shape().ok_or_else(|| {
        n.err(format!(
            "needs a concrete signal shape (use --dim), got {}",
            ty.describe()
        ))
    })?;
    let r = xs.len();
    let rank_ok = rank.map_or(r >= 2, |want| r == want);
    if !rank_ok || !(xs[r - 1] == 1 || xs[r - 1] == 2) || !matches!(ty.dtype, DType::F32 | DType::F16) {
        let lead = if rank == Some(3) { "[batch, length, " } else { "[..., " };
        return Err(n.err(format!(
            "the signal must be a float {lead}1] (real) or {lead}2] (complex) tensor, got {}",
            ty.describe()
        )));
    }
    Ok((x, xs))
}

/// `DFT` (opset 17+) as matrix products with constant cosine and sine tables along the
/// transformed axis: the signal (real `[..., 1]` or complex `[..., 2]`) is moved so the axis is
/// last, multiplied by `[L, K]` tables (zero rows beyond `dft_length` truncate; missing rows
/// zero-pad), and moved back. `dft_length` and (opset 20) `axis` must be constants.
pub(crate) fn dft(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let (x, xs) = signal_input(cx, n, None)?;
    let rank = xs.len();
    let raw_axis = if n.opset >= 20 {
        if cx.has_input(n, 2) {
            let a = cx.const_ints(n, 2, "axis")?;
            *a.first().ok_or_else(|| n.err("input 'axis' is empty"))?
        } else {
            -2
        }
    } else {
        n.attr_i("axis", 1)?
    };
    let axis = n.axis(raw_axis, rank, "axis")?;
    if axis == rank - 1 {
        return Err(n.err("axis must not be the last (real/imaginary) axis"));
    }
    let inverse = n.attr_i("inverse", 0)? != 0;
    let onesided = n.attr_i("onesided", 0)? != 0;
    let len = xs[axis];
    let dft_len = if cx.has_input(n, 1) {
        let d = cx.const_ints(n, 1, "dft_length")?;
        let d = *d.first().ok_or_else(|| n.err("input 'dft_length' is empty"))?;
        if d < 1 || d > i32::MAX as i64 {
            return Err(n.err(format!("dft_length must be positive, got {d}")));
        }
        d as usize
    } else if inverse && onesided {
        2 * len.saturating_sub(1)
    } else {
        len
    };
    if dft_len == 0 {
        return Err(n.err("the transform length is zero"));
    }
    let kind = match (inverse, onesided) {
        (false, false) => DftKind::Forward { bins: dft_len },
        (false, true) => DftKind::Forward { bins: dft_len / 2 + 1 },
        (true, false) => DftKind::Inverse,
        (true, true) => DftKind::InverseReal,
    };
    Ok(one(transform(cx, n, x, &xs, axis, dft_len, kind)?))
}

/// `STFT` (opset 17): the short-time Fourier transform of `signal [batch, length, 1 | 2]`:
/// frames of `frame_length` samples every `frame_step` (both compile-time constants), each
/// multiplied by `window` (ones when absent), one tensor expression `[batch, frames,
/// frame_length, 1 | 2]`; then the DFT along the frame axis (one-sided by default), giving
/// `[batch, frames, bins, 2]`.
pub(crate) fn stft(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let (x, xs) = signal_input(cx, n, Some(3))?;
    let ty = cx.ty(x).clone();
    let scalar = |cx: &Ctx, i: usize, what: &str| -> Result<i64, OnnxError> {
        let v = cx.const_ints(n, i, what)?;
        match v.as_slice() {
            [v] => Ok(*v),
            _ => Err(n.err(format!("input {i} ('{what}') must hold one value, got {}", v.len()))),
        }
    };
    let step = scalar(cx, 1, "frame_step")?;
    let window = cx.opt_input(n, 2)?;
    let window_len = match window {
        Some(w) => {
            let wt = cx.ty(w).clone();
            match wt.const_shape().as_deref() {
                Some(&[l]) => Some(l as i64),
                _ => {
                    return Err(n.err(format!(
                        "window must be a 1-D tensor of known length, got {}",
                        wt.describe()
                    )))
                }
            }
        }
        None => None,
    };
    let frame_len = if cx.has_input(n, 3) {
        scalar(cx, 3, "frame_length")?
    } else {
        window_len.unwrap_or(xs[1] as i64)
    };
    if window_len.is_some_and(|l| l != frame_len) {
        return Err(n.err(format!(
            "window length {} differs from frame_length {frame_len}",
            window_len.unwrap_or(0)
        )));
    }
    if step < 1 || frame_len < 1 || frame_len > xs[1] as i64 {
        return Err(n.err(format!(
            "frame_step {step} must be positive and frame_length {frame_len} in 1..={}",
            xs[1]
        )));
    }
    let onesided = n.attr_i("onesided", 1)? != 0;
    if onesided && xs[2] == 2 {
        return Err(n.err("onesided=1 needs a real signal ([batch, length, 1])"));
    }
    let frames = (xs[1] as i64 - frame_len) / step + 1;
    // Frame f, sample j, component k: signal[b, f * step + j, k] (times window[j]).
    let sample = Expr::Coord(1).mul(Expr::int(step)).add(Expr::Coord(2));
    let mut expr = Expr::Load {
        input: 0,
        index: vec![Expr::Coord(0), sample, Expr::Coord(3)],
    };
    let mut ins = vec![x];
    if let Some(w) = window {
        let wd = cx.ty(w).dtype;
        let mut wv = Expr::Load {
            input: 1,
            index: vec![Expr::Coord(2)],
        };
        if wd != ty.dtype {
            wv = Expr::Cast(Box::new(wv), wd, ty.dtype);
        }
        expr = Expr::Binary(BinaryOp::Mul, Box::new(expr), Box::new(wv), ty.dtype);
        ins.push(w);
    }
    let fs = [xs[0], frames as usize, frame_len as usize, xs[2]];
    let framed = cx.add(
        n,
        "frames",
        Op::Compute {
            shape: fs.iter().map(|&d| Dim::c(d as i64)).collect(),
            dtype: ty.dtype,
            expr,
            name: "StftFrames".into(),
        },
        &ins,
    )?;
    let fl = frame_len as usize;
    let bins = if onesided { fl / 2 + 1 } else { fl };
    Ok(one(transform(cx, n, framed, &fs, 2, fl, DftKind::Forward { bins })?))
}

/// The transform of `x` (shape `xs`, real `[..., 1]` or complex `[..., 2]`) along `axis` with
/// `dft_len` points, as `kind` says: the shared core of `DFT` and `STFT`.
fn transform(
    cx: &mut Ctx,
    n: &N,
    x: kiln_ir::NodeId,
    xs: &[usize],
    axis: usize,
    dft_len: usize,
    kind: DftKind,
) -> Result<kiln_ir::NodeId, OnnxError> {
    let rank = xs.len();
    let complex = xs[rank - 1] == 2;
    let len = xs[axis];
    let ty_dtype = cx.ty(x).dtype;
    let out_len = match kind {
        DftKind::Forward { bins } => bins,
        _ => dft_len,
    };
    check_folded_count(n, len as f64 * out_len as f64, "a DFT table")?;
    // Tables T[j, k] (j input position, k output position): re_out = xr·A + xi·B and
    // im_out = xr·C + xi·D.
    let nn = dft_len as f64;
    let tau = 2.0 * std::f64::consts::PI;
    let mut tabs = [
        vec![0f64; len * out_len],
        vec![0f64; len * out_len],
        vec![0f64; len * out_len],
        vec![0f64; len * out_len],
    ];
    for j in 0..len {
        for k in 0..out_len {
            let theta = tau * ((j * k) % dft_len) as f64 / nn;
            let (c, s) = (theta.cos(), theta.sin());
            let at = j * out_len + k;
            let (a, b, cc, d) = match kind {
                DftKind::Forward { .. } if j < dft_len => (c, s, -s, c),
                DftKind::Inverse if j < dft_len => (c / nn, -s / nn, s / nn, c / nn),
                DftKind::InverseReal if j <= dft_len / 2 => {
                    // Bin j and its mirror N - j (the conjugate) both contribute, except DC
                    // and (even N) Nyquist, which appear once.
                    let w = if j == 0 || 2 * j == dft_len { 1.0 } else { 2.0 };
                    (w * c / nn, -w * s / nn, 0.0, 0.0)
                }
                _ => (0.0, 0.0, 0.0, 0.0),
            };
            tabs[0][at] = a;
            tabs[1][at] = b;
            tabs[2][at] = cc;
            tabs[3][at] = d;
        }
    }
    // Split real and imaginary parts, each [d0, .., d_{r-2}], and move the axis last.
    let sig_shape: Vec<Dim> = xs[..rank - 1].iter().map(|&d| Dim::c(d as i64)).collect();
    let part = |cx: &mut Ctx, i: i64, tag: &str| -> Result<kiln_ir::NodeId, OnnxError> {
        let s = cx.add(
            n,
            &format!("{tag}_slice"),
            Op::Slice {
                axes: vec![kiln_ir::SliceAxis {
                    axis: rank - 1,
                    start: i,
                    end: i + 1,
                    step: 1,
                }],
            },
            &[x],
        )?;
        let s = cx.add(
            n,
            tag,
            Op::Reshape {
                shape: sig_shape.clone(),
            },
            &[s],
        )?;
        let mut perm: Vec<usize> = (0..rank - 1).filter(|&a| a != axis).collect();
        perm.push(axis);
        cx.add(n, &format!("{tag}_axis_last"), Op::Transpose { perm }, &[s])
    };
    let xr = part(cx, 0, "real")?;
    let xi = if complex { Some(part(cx, 1, "imag")?) } else { None };
    let dtype = ty_dtype;
    let product = |cx: &mut Ctx, tag: &str, sig: kiln_ir::NodeId, t: usize| -> Result<kiln_ir::NodeId, OnnxError> {
        let table = cx.constant(
            n,
            &format!("{tag}_table"),
            Tensor::from_f64(dtype, vec![len, out_len], &tabs[t]),
        );
        cx.add(n, tag, Op::MatMul, &[sig, table])
    };
    let combine = |cx: &mut Ctx, tag: &str, ta: usize, tb: usize| -> Result<kiln_ir::NodeId, OnnxError> {
        let a = product(cx, &format!("{tag}_from_real"), xr, ta)?;
        match xi {
            Some(xi) => {
                let b = product(cx, &format!("{tag}_from_imag"), xi, tb)?;
                cx.add(n, tag, Op::Binary(BinaryOp::Add), &[a, b])
            }
            None => Ok(a),
        }
    };
    let mut parts = vec![combine(cx, "out_real", 0, 1)?];
    if !matches!(kind, DftKind::InverseReal) {
        parts.push(combine(cx, "out_imag", 2, 3)?);
    }
    // Axis back in place, and a trailing [.., 1] per part, joined on the last axis.
    let mut inv = vec![0; rank - 1];
    let mut perm: Vec<usize> = (0..rank - 1).filter(|&a| a != axis).collect();
    perm.push(axis);
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    let mut shape: Vec<Dim> = sig_shape.clone();
    shape[axis] = Dim::c(out_len as i64);
    shape.push(Dim::c(1));
    let mut cols = Vec::new();
    for (i, p) in parts.into_iter().enumerate() {
        let t = cx.add(
            n,
            &format!("part{i}_axis_back"),
            Op::Transpose { perm: inv.clone() },
            &[p],
        )?;
        cols.push(cx.add(
            n,
            &format!("part{i}_column"),
            Op::Reshape { shape: shape.clone() },
            &[t],
        )?);
    }
    if cols.len() == 1 {
        return Ok(cols[0]);
    }
    cx.add(n, "", Op::Concat { axis: rank - 1 }, &cols)
}

/// `MelWeightMatrix` (opset 17): the `[dft_length / 2 + 1, num_mel_bins]` triangular mel filter
/// bank, computed at compile time from constant parameters exactly as the ONNX reference does
/// (including its band edges spaced over `num_mel_bins + 2` steps).
pub(crate) fn mel_weight_matrix(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let one_int = |cx: &Ctx, i: usize, what: &str| -> Result<i64, OnnxError> {
        match cx.const_ints(n, i, what)?.as_slice() {
            [v] => Ok(*v),
            v => Err(n.err(format!("input {i} ('{what}') must hold one value, got {}", v.len()))),
        }
    };
    let one_float = |cx: &Ctx, i: usize, what: &str| -> Result<f64, OnnxError> {
        let t = cx
            .const_tensor(n, i)?
            .ok_or_else(|| n.needs_constant(i, format!("input {i} ('{what}') must be a compile-time constant")))?;
        match t.to_f64().as_slice() {
            [v] => Ok(*v),
            v => Err(n.err(format!("input {i} ('{what}') must hold one value, got {}", v.len()))),
        }
    };
    let mels = one_int(cx, 0, "num_mel_bins")?;
    let dft_length = one_int(cx, 1, "dft_length")?;
    let sample_rate = one_int(cx, 2, "sample_rate")?;
    let lower = one_float(cx, 3, "lower_edge_hertz")?;
    let upper = one_float(cx, 4, "upper_edge_hertz")?;
    if mels <= 0 || dft_length <= 0 || sample_rate <= 0 {
        return Err(n.err(format!(
            "num_mel_bins {mels}, dft_length {dft_length} and sample_rate {sample_rate} must be positive"
        )));
    }
    let spec_bins = (dft_length / 2 + 1) as usize;
    check_folded_count(n, spec_bins as f64 * mels as f64, "the mel weight matrix")?;
    let mels = mels as usize;
    let to_mel = |hz: f64| 2595.0 * (hz / 700.0).ln_1p() / std::f64::consts::LN_10;
    let (lo, hi) = (to_mel(lower), to_mel(upper));
    let step = (hi - lo) / (mels + 2) as f64;
    let bins: Vec<i64> = (0..mels + 2)
        .map(|k| {
            let mel = k as f64 * step + lo;
            let hz = 700.0 * (mel / 2595.0 * std::f64::consts::LN_10).exp_m1();
            (((dft_length + 1) as f64 * hz) / sample_rate as f64).floor() as i64
        })
        .collect();
    let mut out = vec![0.0f64; spec_bins * mels];
    let mut set = |j: i64, i: usize, v: f64| -> Result<(), OnnxError> {
        if j < 0 || j as usize >= spec_bins {
            return Err(n.err(format!(
                "mel band {i} reaches frequency bin {j}, outside the {spec_bins} spectrogram bins (check the edge frequencies)"
            )));
        }
        out[j as usize * mels + i] = v;
        Ok(())
    };
    for i in 0..mels {
        let (left, center, right) = (bins[i], bins[i + 1], bins[i + 2]);
        if center == left {
            set(center, i, 1.0)?;
        } else {
            for j in left..=center {
                set(j, i, (j - left) as f64 / (center - left) as f64)?;
            }
        }
        if right > center {
            for j in center..right {
                set(j, i, (right - j) as f64 / (right - center) as f64)?;
            }
        }
    }
    let dtype = data::ir_dtype(n.attr_i("output_datatype", 1)? as i32)
        .map_err(|m| n.err(format!("attribute 'output_datatype': {m}")))?;
    Ok(one(cx.constant(
        n,
        "",
        Tensor::from_f64(dtype, vec![spec_bins, mels], &out),
    )))
}
