//! `Resize` (modes nearest, linear and cubic; every coordinate transformation mode, including
//! `tf_crop_and_resize` with its extrapolation value; `keep_aspect_ratio_policy`; `axes`) and
//! the older `Upsample`, as one tensor expression.
//!
//! For every resized axis the taps of each output coordinate (source indices and weights, with
//! edge clamping and `exclude_outside`) are computed on the host in f64, exactly as the ONNX
//! reference does, and stored in one small constant table `[rows, 2 * taps + 1]` shared by all
//! axes (index columns, weight columns, an "extrapolate" flag). The expression sums, over every
//! combination of taps, the product of the weights times `x` at the tapped coordinates; so the
//! GPU does no coordinate arithmetic, rounding cannot differ from the reference, and the kernel
//! needs a single extra buffer whatever the number of resized axes. A nearest mapping that is
//! `o / k` or `o * k` needs no table at all.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Dim, Expr, Op, Tensor, UnaryOp};

/// Interpolation mode.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

/// Everything that decides the taps of one axis.
struct Params<'a> {
    mode: Mode,
    nearest_mode: &'a str,
    cubic_a: f64,
    exclude_outside: bool,
    /// Widen the linear/cubic filter by 1/scale when downsampling (opset 18).
    antialias: bool,
}

/// The source coordinate of output index `o` (the reference's `_compute_x_ori`), and whether
/// `tf_crop_and_resize` extrapolates there. `out_f` is `scale * in_len` (unrounded) as the
/// reference uses it; `roi` is the axis' (start, end).
fn source_coord(
    transform: &str,
    o: f64,
    scale: f64,
    in_len: usize,
    out_f: f64,
    out_len: usize,
    roi: (f64, f64),
) -> Option<(f64, bool)> {
    let in_f = in_len as f64;
    Some(match transform {
        "half_pixel" => ((o + 0.5) / scale - 0.5, false),
        "pytorch_half_pixel" if out_f == 1.0 => (-0.5, false),
        "pytorch_half_pixel" => ((o + 0.5) / scale - 0.5, false),
        "align_corners" if out_f == 1.0 => (0.0, false),
        "align_corners" => (o * (in_f - 1.0) / (out_f - 1.0), false),
        "asymmetric" => (o / scale, false),
        "tf_half_pixel_for_nn" => ((o + 0.5) / scale, false),
        "half_pixel_symmetric" => {
            let adjustment = out_len as f64 / out_f;
            let offset = in_f / 2.0 * (1.0 - adjustment);
            (offset + (o + 0.5) / scale - 0.5, false)
        }
        "tf_crop_and_resize" => {
            let x = if out_f == 1.0 {
                (roi.1 - roi.0) * (in_f - 1.0) / 2.0
            } else {
                o * (roi.1 - roi.0) * (in_f - 1.0) / (out_f - 1.0)
            } + roi.0 * (in_f - 1.0);
            (x, x < 0.0 || x > in_f - 1.0)
        }
        _ => return None,
    })
}

/// The interpolation coefficients for `ratio` in (0, 1] (1 when the source coordinate is an
/// integer), over the neighbours `floor(x) - n/2 + 1 ..` (`n` coefficients).
fn coeffs(p: &Params, ratio: f64, scale: f64) -> Option<Vec<f64>> {
    if p.antialias && p.mode != Mode::Nearest {
        return Some(antialias_coeffs(p, ratio, scale));
    }
    Some(match p.mode {
        Mode::Nearest => {
            if ratio == 1.0 {
                return Some(vec![0.0, 1.0]);
            }
            let up = match p.nearest_mode {
                "round_prefer_floor" => ratio > 0.5,
                "round_prefer_ceil" => ratio >= 0.5,
                "floor" => false,
                "ceil" => true,
                _ => return None,
            };
            if up {
                vec![0.0, 1.0]
            } else {
                vec![1.0, 0.0]
            }
        }
        Mode::Linear => vec![1.0 - ratio, ratio],
        Mode::Cubic => {
            let a = p.cubic_a;
            let (r, s) = (ratio, 1.0 - ratio);
            vec![
                ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
                ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
                ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0,
                ((a * (s + 1.0) - 5.0 * a) * (s + 1.0) + 8.0 * a) * (s + 1.0) - 4.0 * a,
            ]
        }
    })
}

/// The antialiased linear or cubic coefficients (the reference's `_linear_coeffs_antialias` and
/// `_cubic_coeffs_antialias`): the filter stretched by `1 / scale` when downsampling, over
/// `2 - 2 * start` neighbours, normalized to sum 1.
fn antialias_coeffs(p: &Params, ratio: f64, scale: f64) -> Vec<f64> {
    let scale = scale.min(1.0);
    let support = if p.mode == Mode::Cubic { 2.0 } else { 1.0 };
    let start = (-support / scale).floor() as i64 + 1;
    let end = 2 - start;
    let a = p.cubic_a;
    let c: Vec<f64> = (start..end)
        .map(|i| {
            let x = (scale * (i as f64 - ratio)).abs();
            if p.mode == Mode::Linear {
                (1.0 - x).clamp(0.0, 1.0)
            } else if x <= 1.0 {
                (a + 2.0) * x * x * x - (a + 3.0) * x * x + 1.0
            } else if x < 2.0 {
                a * x * x * x - 5.0 * a * x * x + 8.0 * a * x - 4.0 * a
            } else {
                0.0
            }
        })
        .collect();
    let sum: f64 = c.iter().sum();
    c.iter().map(|w| w / sum).collect()
}

/// The taps of one output coordinate with source coordinate `x` on an axis of `in_len` resized
/// by `scale`: distinct clamped indices with their (non-zero) weights.
fn taps(p: &Params, x: f64, in_len: usize, scale: f64) -> Option<Vec<(i64, f64)>> {
    let fl = x.floor();
    let exact = x == fl;
    let mut c = coeffs(p, if exact { 1.0 } else { x - fl }, scale)?;
    let n = c.len() as i64;
    let first = fl as i64 - n / 2 + if exact { 0 } else { 1 };
    let last = in_len as i64 - 1;
    if p.exclude_outside {
        for (t, w) in c.iter_mut().enumerate() {
            if !(0..=last).contains(&(first + t as i64)) {
                *w = 0.0;
            }
        }
        let sum: f64 = c.iter().sum();
        if sum != 0.0 {
            c.iter_mut().for_each(|w| *w /= sum);
        }
    }
    let mut out: Vec<(i64, f64)> = Vec::new();
    for (t, &w) in c.iter().enumerate() {
        if w == 0.0 {
            continue;
        }
        let i = (first + t as i64).clamp(0, last);
        match out.iter_mut().find(|(j, _)| *j == i) {
            Some(e) => e.1 += w,
            None => out.push((i, w)),
        }
    }
    if out.is_empty() {
        out.push((first.clamp(0, last), 0.0));
    }
    Some(out)
}

/// How one output axis reads the input.
enum AxisMap {
    /// The same coordinate.
    Same,
    /// A single source index per output coordinate (nearest), as an expression.
    Index(Expr),
    /// Rows of the shared table: offset of the axis' first row, taps per row, row count.
    Table { row: i64, taps: usize, len: usize },
}

/// `Resize` (opset 10 and 11+) and `Upsample` (opset 7-9).
pub(crate) fn resize(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let xt = cx.ty(x).clone();
    let r = xt.rank();
    let upsample = n.op == "Upsample";
    let legacy = upsample || n.opset < 11;
    let mode_s = n.attr_s("mode")?.unwrap_or_else(|| "nearest".into());
    let mode = match mode_s.as_str() {
        "nearest" => Mode::Nearest,
        "linear" | "bilinear" => Mode::Linear,
        "cubic" | "bicubic" if !upsample => Mode::Cubic,
        other => return Err(n.err(format!("mode '{other}' is not one of nearest, linear, cubic"))),
    };
    let transform = if legacy {
        "asymmetric".to_string()
    } else {
        n.attr_s("coordinate_transformation_mode")?
            .unwrap_or_else(|| "half_pixel".into())
    };
    let nearest_mode = if legacy {
        "floor".to_string()
    } else {
        n.attr_s("nearest_mode")?.unwrap_or_else(|| "round_prefer_floor".into())
    };
    let policy = n
        .attr_s("keep_aspect_ratio_policy")?
        .unwrap_or_else(|| "stretch".into());
    if !matches!(policy.as_str(), "stretch" | "not_larger" | "not_smaller") {
        return Err(n.err(format!(
            "keep_aspect_ratio_policy '{policy}' is not one of stretch, not_larger, not_smaller"
        )));
    }
    let params = Params {
        mode,
        nearest_mode: &nearest_mode,
        cubic_a: n.attr_f("cubic_coeff_a", -0.75)? as f64,
        exclude_outside: n.attr_i("exclude_outside", 0)? != 0,
        antialias: n.attr_i("antialias", 0)? != 0,
    };
    let extrapolation = n.attr_f("extrapolation_value", 0.0)? as f64;
    // Scales / sizes / roi, per listed axis.
    let axes: Vec<usize> = match n.attr_ints("axes")? {
        Some(a) => {
            n.axes(&a, r, "axis")?;
            a.iter().map(|&v| n.axis(v, r, "axis")).collect::<Result<_, _>>()?
        }
        None => (0..r).collect(),
    };
    let (roi_slot, scales_slot, sizes_slot) = if upsample && n.opset < 9 {
        (None, None, None)
    } else if legacy {
        (None, Some(1), None)
    } else {
        (Some(1), Some(2), Some(3))
    };
    let mut scales: Option<Vec<f64>> = if upsample && n.opset < 9 {
        Some(
            n.attr_floats("scales")?
                .ok_or_else(|| n.err("attribute 'scales' is required"))?
                .iter()
                .map(|&v| v as f64)
                .collect(),
        )
    } else {
        None
    };
    if let Some(i) = scales_slot.filter(|&i| cx.has_input(n, i)) {
        let t = cx
            .const_tensor(n, i)?
            .ok_or_else(|| n.needs_constant(i, format!("input {i} ('scales') must be a compile-time constant")))?;
        if t.numel() > 0 {
            scales = Some(t.to_f64());
        }
    }
    let mut sizes: Option<Vec<i64>> = None;
    if let Some(i) = sizes_slot.filter(|&i| cx.has_input(n, i)) {
        let v = cx.const_ints(n, i, "sizes")?;
        if !v.is_empty() {
            sizes = Some(v);
        }
    }
    if scales.is_some() == sizes.is_some() {
        return Err(n.err("exactly one of 'scales' and 'sizes' must be given"));
    }
    let given = scales
        .as_ref()
        .map(Vec::len)
        .or(sizes.as_ref().map(Vec::len))
        .unwrap_or(0);
    if given != axes.len() {
        return Err(n.err(format!("{given} scales/sizes for {} axes", axes.len())));
    }
    let mut roi = vec![(0.0, 1.0); r];
    if transform == "tf_crop_and_resize" {
        let t = roi_slot
            .filter(|&i| cx.has_input(n, i))
            .map(|i| cx.const_tensor(n, i))
            .transpose()?
            .flatten()
            .ok_or_else(|| {
                let i = roi_slot.unwrap_or(1);
                n.needs_constant(
                    i,
                    format!("tf_crop_and_resize needs input {i} ('roi') as a compile-time constant"),
                )
            })?
            .to_f64();
        if t.len() != 2 * axes.len() {
            return Err(n.err(format!(
                "roi has {} values for {} axes (need start and end per axis)",
                t.len(),
                axes.len()
            )));
        }
        for (k, &a) in axes.iter().enumerate() {
            roi[a] = (t[k], t[axes.len() + k]);
        }
    }
    if axes.iter().any(|&a| !xt.shape[a].is_const()) {
        return resize_symbolic(cx, n, x, &xt, &axes, scales.as_deref(), &transform, &params, &roi);
    }
    // Input lengths of the listed axes (concrete), and per axis (output length, scale).
    let mut in_len = vec![0usize; r];
    for &a in &axes {
        in_len[a] = xt.shape[a].as_const().ok_or_else(|| {
            n.err(format!(
                "resized axis {a} of {} must be concrete (use --dim)",
                xt.describe()
            ))
        })? as usize;
    }
    let mut geometry: Vec<Option<(usize, f64)>> = vec![None; r];
    match (&scales, &sizes) {
        (Some(s), _) => {
            for (k, &a) in axes.iter().enumerate() {
                if s[k] <= 0.0 {
                    return Err(n.err(format!("scale {} on axis {a} is not positive", s[k])));
                }
                geometry[a] = Some(((in_len[a] as f64 * s[k]).floor() as usize, s[k]));
            }
        }
        (_, Some(z)) => {
            let ratio = |k: usize, a: usize| z[k] as f64 / in_len[a] as f64;
            let kept = axes.iter().enumerate().map(|(k, &a)| ratio(k, a));
            let common = match policy.as_str() {
                "not_larger" => Some(kept.fold(f64::INFINITY, f64::min)),
                "not_smaller" => Some(kept.fold(f64::NEG_INFINITY, f64::max)),
                _ => None,
            };
            for (k, &a) in axes.iter().enumerate() {
                if z[k] < 0 {
                    return Err(n.err(format!("size {} on axis {a} is negative", z[k])));
                }
                geometry[a] = Some(match common {
                    Some(s) => ((s * in_len[a] as f64 + 0.5).floor() as usize, s),
                    None => (z[k] as usize, ratio(k, a)),
                });
            }
        }
        _ => unreachable!("one is given"),
    }
    // Per axis: taps of every output coordinate; rows of the shared table.
    let mut out_shape = xt.shape.clone();
    let mut maps = Vec::with_capacity(r);
    let mut rows: Vec<(Vec<(i64, f64)>, bool)> = Vec::new();
    for a in 0..r {
        let Some((out_len, scale)) = geometry[a] else {
            maps.push(AxisMap::Same);
            continue;
        };
        let len = in_len[a];
        out_shape[a] = Dim::c(out_len as i64);
        if out_len == len && (scale - 1.0).abs() < 1e-9 && roi[a] == (0.0, 1.0) {
            maps.push(AxisMap::Same);
            continue;
        }
        if len == 0 || out_len == 0 {
            return Err(n.unsupported(format!(
                "axis {a} resizes {len} elements to {out_len}; empty tensors are not supported"
            )));
        }
        let out_f = scale * len as f64;
        let mut axis_rows = Vec::with_capacity(out_len);
        for o in 0..out_len {
            let (src, outside) =
                source_coord(&transform, o as f64, scale, len, out_f, out_len, roi[a]).ok_or_else(|| {
                    n.unsupported(format!("coordinate_transformation_mode '{transform}' is not supported"))
                })?;
            let t = taps(&params, src, len, scale)
                .ok_or_else(|| n.unsupported(format!("nearest_mode '{nearest_mode}' is not supported")))?;
            axis_rows.push((t, outside));
        }
        let single = axis_rows.iter().all(|(t, out)| !out && t.len() == 1 && t[0].1 == 1.0);
        if single {
            let idx: Vec<i64> = axis_rows.iter().map(|(t, _)| t[0].0).collect();
            if let Some(e) = affine_index(&idx, a) {
                maps.push(AxisMap::Index(e));
                continue;
            }
        }
        let taps = axis_rows.iter().map(|(t, _)| t.len()).max().unwrap_or(1);
        maps.push(AxisMap::Table {
            row: rows.len() as i64,
            taps,
            len: out_len,
        });
        rows.extend(axis_rows);
    }
    if maps.iter().all(|m| matches!(m, AxisMap::Same)) && out_shape == xt.shape {
        return Ok(one(x));
    }
    // The shared table: [rows, 2 * width + 1] = index columns, weight columns, flag.
    let width = maps
        .iter()
        .map(|m| match m {
            AxisMap::Table { taps, .. } => *taps,
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    let dt = xt.dtype;
    if dt == DType::Bool && mode != Mode::Nearest {
        return Err(n.unsupported(format!("{mode_s} interpolation of {} is not supported", xt.describe())));
    }
    let cols = 2 * width + 1;
    let mut ins = vec![x];
    if !rows.is_empty() {
        let mut data = vec![0.0f64; rows.len() * cols];
        for (i, (t, outside)) in rows.iter().enumerate() {
            for (k, &(idx, w)) in t.iter().enumerate() {
                data[i * cols + k] = idx as f64;
                data[i * cols + width + k] = w;
            }
            data[i * cols + 2 * width] = *outside as u8 as f64;
        }
        ins.push(cx.constant(n, "taps", Tensor::from_f64(DType::F32, vec![rows.len(), cols], &data)));
    }
    let table = |row: &Expr, col: usize| Expr::Load {
        input: 1,
        index: vec![row.clone(), Expr::int(col as i64)],
    };
    // Per axis: the choices (index expression, optional weight expression).
    let mut choices: Vec<Vec<(Expr, Option<Expr>)>> = Vec::with_capacity(r);
    let mut flags = Vec::new();
    for (a, m) in maps.iter().enumerate() {
        choices.push(match m {
            AxisMap::Same => vec![(Expr::Coord(a), None)],
            AxisMap::Index(e) => vec![(e.clone(), None)],
            AxisMap::Table { row, taps, len } => {
                let rowe = if *row == 0 {
                    Expr::Coord(a)
                } else {
                    Expr::Coord(a).add(Expr::int(*row))
                };
                let axis_rows = &rows[*row as usize..*row as usize + len];
                if axis_rows.iter().any(|(_, out)| *out) {
                    flags.push(table(&rowe, 2 * width).cmp(BinaryOp::Greater, Expr::Lit(0.5, DType::F32), DType::F32));
                }
                let unit = axis_rows.iter().all(|(t, _)| t.len() == 1 && t[0].1 == 1.0);
                (0..*taps)
                    .map(|k| {
                        let ix = Expr::Cast(Box::new(table(&rowe, k)), DType::F32, DType::I32);
                        (ix, (!unit).then(|| table(&rowe, width + k)))
                    })
                    .collect()
            }
        });
    }
    // Sum over every combination of taps of weight products times the loads.
    // Weighted sums are computed in f32 (and converted back for other dtypes).
    let float = DType::F32;
    let combos: usize = choices.iter().map(Vec::len).product();
    let mut sum: Option<Expr> = None;
    let mut any_weight = false;
    for c in 0..combos {
        let mut rem = c;
        let mut index = vec![Expr::int(0); r];
        let mut weight: Option<Expr> = None;
        for a in (0..r).rev() {
            let (ix, w) = &choices[a][rem % choices[a].len()];
            rem /= choices[a].len();
            index[a] = ix.clone();
            if let Some(w) = w {
                weight = Some(match weight {
                    None => w.clone(),
                    Some(acc) => mul(acc, w.clone(), float),
                });
            }
        }
        let load = Expr::Load { input: 0, index };
        let term = match weight {
            Some(w) => {
                any_weight = true;
                mul(w, cast(load, dt, float), float)
            }
            None => load,
        };
        sum = Some(match sum {
            None => term,
            Some(acc) => Expr::Binary(BinaryOp::Add, Box::new(acc), Box::new(term), float),
        });
    }
    let mut expr = sum.expect("at least one combination");
    if any_weight && dt != float {
        if dt.is_int() {
            expr = Expr::Unary(UnaryOp::Round, Box::new(expr), float);
        }
        expr = cast(expr, float, dt);
    }
    if let Some(c) = flags
        .into_iter()
        .reduce(|a, b| Expr::Binary(BinaryOp::Or, Box::new(a), Box::new(b), DType::Bool))
    {
        expr = Expr::select(c, Expr::Lit(extrapolation, dt), expr);
    }
    let op = Op::Compute {
        shape: out_shape,
        dtype: dt,
        expr,
        name: n.op.to_string(),
    };
    Ok(one(cx.add(n, "", op, &ins)?))
}

/// `a * b` of dtype `d`.
fn mul(a: Expr, b: Expr, d: DType) -> Expr {
    Expr::Binary(BinaryOp::Mul, Box::new(a), Box::new(b), d)
}

/// `a` converted from `from` to `to` (no node when equal).
fn cast(a: Expr, from: DType, to: DType) -> Expr {
    if from == to {
        a
    } else {
        Expr::Cast(Box::new(a), from, to)
    }
}

/// The nearest indices `idx[o]` of axis `a` as `o`, `o / k` or `o * k` when they are one of
/// those (integer up- or downsampling), so that no table is needed.
fn affine_index(idx: &[i64], a: usize) -> Option<Expr> {
    let o = Expr::Coord(a);
    let fits = |f: &dyn Fn(i64) -> i64| idx.iter().enumerate().all(|(i, &v)| v == f(i as i64));
    if fits(&|i| i) {
        return Some(o);
    }
    if let Some(k) = idx.iter().position(|&v| v == 1).map(|k| k as i64) {
        if k > 1 && fits(&|i| i / k) {
            return Some(o.div(Expr::int(k)));
        }
    }
    let k = *idx.get(1)?;
    if k > 1 && fits(&|i| i * k) {
        return Some(o.mul(Expr::int(k)));
    }
    None
}

/// Lengths at which [`resize_symbolic`] checks that a symbolic axis' nearest mapping is the
/// integer pattern it compiles (every length up to a few periods of the largest factor).
const PROBE_LENGTHS: std::ops::RangeInclusive<usize> = 1..=33;

/// `Resize` over symbolic axes: nearest-neighbour up- or downsampling by an integer factor `k`
/// (scale `k` or `1 / k`), whose source index is `o / k` or `o * k` whatever the length, so one
/// kernel serves every size (the output length is `k * len` or `floor(len / k)`). The mapping
/// of the node's coordinate transformation and nearest mode is checked against the reference
/// taps at every length in [`PROBE_LENGTHS`]; anything else needs concrete sizes.
#[allow(clippy::too_many_arguments)]
fn resize_symbolic(
    cx: &mut Ctx,
    n: &N,
    x: kiln_ir::NodeId,
    xt: &kiln_ir::TensorType,
    axes: &[usize],
    scales: Option<&[f64]>,
    transform: &str,
    params: &Params,
    roi: &[(f64, f64)],
) -> Result<Vec<Value>, OnnxError> {
    let needs = |why: &str| {
        n.err(format!(
            "resizing symbolic axes of {} {why}; other resizes need concrete sizes (use --dim)",
            xt.describe()
        ))
    };
    let scales = scales.ok_or_else(|| needs("needs 'scales' (not 'sizes')"))?;
    let mut index: Vec<Expr> = (0..xt.rank()).map(Expr::Coord).collect();
    let mut out_shape = xt.shape.clone();
    for (k, &a) in axes.iter().enumerate() {
        let s = scales[k];
        if s == 1.0 && roi[a] == (0.0, 1.0) {
            continue;
        }
        if params.mode != Mode::Nearest || roi[a] != (0.0, 1.0) {
            return Err(needs("is supported for mode 'nearest' without a region of interest"));
        }
        let up = s >= 1.0 && s.fract() == 0.0;
        let down = s > 0.0 && s < 1.0 && (1.0 / s).fract() == 0.0;
        if !up && !down {
            return Err(needs(&format!(
                "is supported for integer factors (scale k or 1/k), not scale {s}"
            )));
        }
        let f = if up { s as i64 } else { (1.0 / s).round() as i64 };
        for len in PROBE_LENGTHS {
            let out_len = (len as f64 * s).floor() as usize;
            let want_len = if up { len * f as usize } else { len / f as usize };
            let mut ok = out_len == want_len;
            for o in 0..out_len {
                let Some((src, outside)) = source_coord(transform, o as f64, s, len, s * len as f64, out_len, roi[a])
                else {
                    ok = false;
                    break;
                };
                let want = if up { o as i64 / f } else { o as i64 * f };
                ok &= !outside && taps(params, src, len, s).is_some_and(|t| t.len() == 1 && t[0] == (want, 1.0));
            }
            if !ok {
                return Err(needs(&format!(
                    "maps output index o to o / k or o * k only for some lengths with coordinate_transformation_mode '{transform}' and nearest_mode '{}' (scale {s})",
                    params.nearest_mode
                )));
            }
        }
        let len = &xt.shape[a];
        if up {
            out_shape[a] = len.mul(&Dim::c(f));
            index[a] = Expr::Coord(a).div(Expr::int(f));
        } else {
            out_shape[a] = len.floor_div(f).expect("f >= 2");
            index[a] = Expr::Coord(a).mul(Expr::int(f));
        }
    }
    let op = Op::Compute {
        shape: out_shape,
        dtype: xt.dtype,
        expr: Expr::Load { input: 0, index },
        name: n.op.to_string(),
    };
    Ok(one(cx.add(n, "", op, &[x])?))
}
