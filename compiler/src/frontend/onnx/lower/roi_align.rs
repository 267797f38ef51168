//! `RoiAlign` (opsets 10 and 16): average or max pooling of bilinear samples of `X [N, C, H, W]`
//! over a regular grid in each region of interest `rois [R, 4]` (x1, y1, x2, y2), the image of
//! region `r` being `batch_indices[r]`; output `[R, C, output_height, output_width]`. As the
//! ONNX reference (and onnxruntime) computes it, including its treatment of samples outside
//! the image (weight 0) and of max mode (the max of the weighted taps).
//!
//! Two stages of tensor expressions. Stage 1 computes, per region, output row and sample row
//! (and likewise per column), `[R, output_height, G]` tensors of the two source rows of the
//! bilinear taps, their weights (zero for samples outside the image) and, for the adaptive
//! grid, whether the sample exists. Stage 2
//! sums (or maxes) over the `G × G` samples of a bin the four taps `weight · X[b, c, row, col]`.
//!
//! The grid `G` is `sampling_ratio` when positive. With `sampling_ratio = 0` it is adaptive
//! (`ceil(roi_height / output_height)` per region), which bounds the expression only when the
//! regions are known: then `G` is the largest grid of any region and smaller grids mask their
//! extra samples; otherwise the node needs `rois` at compile time.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::fexpr::{add, and, as_f32, as_i32, ceil, div, floor, le, lit, lt, max, mul, or, sub, to_f, to_i};
use kiln_ir::{DType, Dim, Expr, Op};

/// The most samples per bin (`G × G`) that one output element sums over.
const MAX_SAMPLES: usize = 256;

/// The stage-1 tensors of one axis, in order.
const LOW: usize = 0;
const HIGH: usize = 1;
const W_LOW: usize = 2;
const W_HIGH: usize = 3;
const EXISTS: usize = 4;

/// How the region's corners map to sample positions.
struct Geometry {
    half_pixel: bool,
    spatial_scale: f32,
    /// Sampling grid per bin axis (> 0), or `None` for the adaptive grid.
    ratio: Option<usize>,
    /// Average (true) or max pooling.
    avg: bool,
}

/// `RoiAlign`.
pub(crate) fn roi_align(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let rois = cx.input(n, 1)?;
    let bidx = cx.input(n, 2)?;
    let xt = cx.ty(x).clone();
    let rt = cx.ty(rois).clone();
    let bt = cx.ty(bidx).clone();
    if xt.rank() != 4 || !matches!(xt.dtype, DType::F32 | DType::F16) {
        return Err(n.err(format!("X must be a float [N, C, H, W] tensor, got {}", xt.describe())));
    }
    if rt.rank() != 2 || rt.shape[1].as_const() != Some(4) || !rt.dtype.is_float() {
        return Err(n.err(format!("rois must be a float [R, 4] tensor, got {}", rt.describe())));
    }
    if bt.rank() != 1 || !bt.dtype.is_int() {
        return Err(n.err(format!(
            "batch_indices must be an integer [R] tensor, got {}",
            bt.describe()
        )));
    }
    let mode = n.attr_s("mode")?.unwrap_or_else(|| "avg".into());
    let avg = match mode.as_str() {
        "avg" => true,
        "max" => false,
        m => return Err(n.err(format!("attribute 'mode' must be 'avg' or 'max', got '{m}'"))),
    };
    // Opset 16 added the mode and made half_pixel the default; opset 10 behaves as
    // output_half_pixel.
    let default_ctm = if n.opset >= 16 {
        "half_pixel"
    } else {
        "output_half_pixel"
    };
    let ctm = n
        .attr_s("coordinate_transformation_mode")?
        .unwrap_or_else(|| default_ctm.into());
    let half_pixel = match ctm.as_str() {
        "half_pixel" => true,
        "output_half_pixel" => false,
        m => {
            return Err(n.err(format!(
                "attribute 'coordinate_transformation_mode' must be 'half_pixel' or 'output_half_pixel', got '{m}'"
            )))
        }
    };
    let oh = n.attr_i("output_height", 1)?;
    let ow = n.attr_i("output_width", 1)?;
    if oh < 1 || ow < 1 || oh > i32::MAX as i64 || ow > i32::MAX as i64 {
        return Err(n.err(format!("output_height {oh} and output_width {ow} must be positive")));
    }
    let ratio = n.attr_i("sampling_ratio", 0)?;
    if ratio < 0 {
        return Err(n.err(format!("sampling_ratio must be non-negative, got {ratio}")));
    }
    let geo = Geometry {
        half_pixel,
        spatial_scale: n.attr_f("spatial_scale", 1.0)?,
        ratio: (ratio > 0).then_some(ratio as usize),
        avg,
    };
    let (oh, ow) = (oh as usize, ow as usize);
    let (gy, gx) = match geo.ratio {
        Some(r) => (r, r),
        None => adaptive_grid(cx, n, &geo, oh, ow)?,
    };
    if gy * gx > MAX_SAMPLES {
        return Err(n.unsupported(format!(
            "{gy}x{gx} samples per bin (sampling_ratio {ratio}) exceed the {MAX_SAMPLES} that Kiln unrolls"
        )));
    }
    let r_dim = rt.shape[0].clone();
    let ys = sample_table(cx, n, "rows", rois, &geo, 1, xt.shape[2].clone(), oh, gy, &r_dim)?;
    let xs = sample_table(cx, n, "cols", rois, &geo, 0, xt.shape[3].clone(), ow, gx, &r_dim)?;

    // Stage 2: inputs X, row table, column table, batch indices; output (r, c, ph, pw).
    // Inputs: X, batch indices, then the row tensors, then the column tensors.
    let fields = ys.len();
    let field = |axis: usize, s: usize, k: usize| Expr::Load {
        input: 2 + axis * fields + k,
        index: vec![Expr::Coord(0), Expr::Coord(2 + axis), Expr::int(s as i64)],
    };
    let batch = as_i32(
        Expr::Load {
            input: 1,
            index: vec![Expr::Coord(0)],
        },
        bt.dtype,
    );
    let pixel = |row: Expr, col: Expr| {
        as_f32(
            Expr::Load {
                input: 0,
                index: vec![batch.clone(), Expr::Coord(1), to_i(row), to_i(col)],
            },
            xt.dtype,
        )
    };
    let mut acc: Option<Expr> = None;
    for sy in 0..gy {
        for sx in 0..gx {
            let taps = [(LOW, W_LOW), (HIGH, W_HIGH)];
            let mut vals = Vec::with_capacity(4);
            for (ry, wy) in taps {
                for (rx, wx) in taps {
                    let w = mul(field(0, sy, wy), field(1, sx, wx));
                    vals.push(mul(w, pixel(field(0, sy, ry), field(1, sx, rx))));
                }
            }
            let sample = if geo.avg {
                vals.into_iter().reduce(add).expect("four taps")
            } else {
                vals.into_iter().reduce(max).expect("four taps")
            };
            acc = Some(match acc.take() {
                None => sample,
                Some(a) if geo.avg => add(a, sample),
                Some(a) if geo.ratio.is_some() => max(a, sample),
                // Adaptive max: a masked sample (beyond its region's grid) leaves the max alone.
                Some(a) => {
                    let exists = and(lt(lit(0.5), field(0, sy, EXISTS)), lt(lit(0.5), field(1, sx, EXISTS)));
                    Expr::select(exists, max(a.clone(), sample), a)
                }
            });
        }
    }
    let mut expr = acc.expect("at least one sample");
    match geo.ratio {
        // Adaptive avg folds 1/grid into the weights (stage 1).
        Some(_) if geo.avg => expr = div(expr, lit((gy * gx) as f64)),
        Some(_) => {}
        None if geo.avg => {}
        // A region whose grid is empty pools to 0, as in the reference.
        None => {
            let first = and(lt(lit(0.5), field(0, 0, EXISTS)), lt(lit(0.5), field(1, 0, EXISTS)));
            expr = Expr::select(first, expr, lit(0.0));
        }
    }
    if xt.dtype != DType::F32 {
        expr = Expr::Cast(Box::new(expr), DType::F32, xt.dtype);
    }
    let op = Op::Compute {
        shape: vec![r_dim, xt.shape[1].clone(), Dim::c(oh as i64), Dim::c(ow as i64)],
        dtype: xt.dtype,
        expr,
        name: "RoiAlign".into(),
    };
    let mut ins = vec![x, bidx];
    ins.extend(ys);
    ins.extend(xs);
    Ok(one(cx.add(n, "", op, &ins)?))
}

/// The largest adaptive grid (rows, columns) of any region, from constant `rois`.
fn adaptive_grid(cx: &Ctx, n: &N, geo: &Geometry, oh: usize, ow: usize) -> Result<(usize, usize), OnnxError> {
    let rois = cx.const_tensor(n, 1)?.ok_or_else(|| {
        n.needs_constant(
            1,
            "input 1 ('rois') must be known at compile time with sampling_ratio=0: the adaptive \
             sampling grid (and so the work per output element) depends on each region's size",
        )
    })?;
    let v = rois.to_f32();
    let (mut gy, mut gx) = (0usize, 0usize);
    for r in v.chunks_exact(4) {
        let extent = |lo: f32, hi: f32| {
            let off = if geo.half_pixel { 0.5 } else { 0.0 };
            let len = (hi * geo.spatial_scale - off) - (lo * geo.spatial_scale - off);
            if geo.half_pixel {
                len
            } else {
                len.max(1.0)
            }
        };
        let g = |len: f32, bins: usize| {
            let g = (len / bins as f32).ceil();
            if g.is_finite() && g > 0.0 {
                g.min(MAX_SAMPLES as f32 + 1.0) as usize
            } else {
                0
            }
        };
        gy = gy.max(g(extent(r[1], r[3]), oh));
        gx = gx.max(g(extent(r[0], r[2]), ow));
    }
    Ok((gy.max(1), gx.max(1)))
}

/// Stage 1 along one image axis (`corner` 1 for rows: y1, y2; 0 for columns: x1, x2): per
/// region, output bin and sample (`[R, bins, grid]` f32 each), the low and high tap index, their
/// weights, and (adaptive grid only) whether the sample exists.
#[allow(clippy::too_many_arguments)]
fn sample_table(
    cx: &mut Ctx,
    n: &N,
    tag: &str,
    rois: kiln_ir::NodeId,
    geo: &Geometry,
    corner: i64,
    len: Dim,
    bins: usize,
    grid: usize,
    r_dim: &Dim,
) -> Result<Vec<kiln_ir::NodeId>, OnnxError> {
    let rd = cx.ty(rois).dtype;
    let corner_at = |k: i64| {
        as_f32(
            Expr::Load {
                input: 0,
                index: vec![Expr::Coord(0), Expr::int(k)],
            },
            rd,
        )
    };
    let off = if geo.half_pixel { 0.5 } else { 0.0 };
    let start = sub(mul(corner_at(corner), lit(geo.spatial_scale)), lit(off));
    let end = sub(mul(corner_at(corner + 2), lit(geo.spatial_scale)), lit(off));
    let mut extent = sub(end, start.clone());
    if !geo.half_pixel {
        extent = max(extent, lit(1.0));
    }
    let bin = div(extent.clone(), lit(bins as f64));
    // The region's grid along this axis, and whether sample Coord(2) is inside it.
    let (g, inside_grid) = match geo.ratio {
        Some(r) => (lit(r as f64), None),
        None => {
            let g = max(ceil(div(extent, lit(bins as f64))), lit(0.0));
            (g.clone(), Some(lt(to_f(Expr::Coord(2)), g)))
        }
    };
    let s = to_f(Expr::Coord(2));
    let pos = add(
        add(start, mul(to_f(Expr::Coord(1)), bin.clone())),
        div(mul(add(s, lit(0.5)), bin), g.clone()),
    );
    let lenf = to_f(Expr::Dim(len));
    let outside = or(lt(pos.clone(), lit(-1.0)), lt(lenf.clone(), pos.clone()));
    let p = max(pos, lit(0.0));
    let low0 = floor(p.clone());
    let last = sub(lenf, lit(1.0));
    let at_edge = le(last.clone(), low0.clone());
    let low = Expr::select(at_edge.clone(), last.clone(), low0.clone());
    let high = Expr::select(at_edge.clone(), last, add(low0, lit(1.0)));
    let p = Expr::select(at_edge, low.clone(), p);
    let w_high = sub(p, low.clone());
    let w_low = sub(lit(1.0), w_high.clone());
    let valid = match &inside_grid {
        None => Expr::Unary(kiln_ir::UnaryOp::Not, Box::new(outside), DType::Bool),
        Some(ig) => and(
            ig.clone(),
            Expr::Unary(kiln_ir::UnaryOp::Not, Box::new(outside), DType::Bool),
        ),
    };
    // Adaptive average pooling divides by the region's grid here (per axis), since the grid
    // differs between regions.
    let scale = |w: Expr| {
        if geo.avg && geo.ratio.is_none() {
            div(w, max(g.clone(), lit(1.0)))
        } else {
            w
        }
    };
    let w_low = Expr::select(valid.clone(), scale(w_low), lit(0.0));
    let w_high = Expr::select(valid, scale(w_high), lit(0.0));
    let exists = match inside_grid {
        None => lit(1.0),
        Some(ig) => Expr::select(ig, lit(1.0), lit(0.0)),
    };
    let mut parts = vec![("low", low), ("high", high), ("w_low", w_low), ("w_high", w_high)];
    if geo.ratio.is_none() {
        parts.push(("exists", exists));
    }
    let shape = vec![r_dim.clone(), Dim::c(bins as i64), Dim::c(grid as i64)];
    let mut out = Vec::with_capacity(parts.len());
    for (name, expr) in parts {
        let op = Op::Compute {
            shape: shape.clone(),
            dtype: DType::F32,
            expr,
            name: "RoiAlignSamples".into(),
        };
        out.push(cx.add(n, &format!("{tag}_{name}"), op, &[rois])?);
    }
    Ok(out)
}
