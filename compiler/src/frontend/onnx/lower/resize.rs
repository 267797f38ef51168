//! `Resize` (modes nearest and linear) and the older `Upsample`, as one tensor expression.
//!
//! For every resized axis the source coordinates are computed on the host (exactly as the ONNX
//! reference does, in f64) into small constant tables: the nearest index, or the two neighbour
//! indices and their weights. The expression then loads `x` at table-given coordinates, so the
//! GPU does no coordinate arithmetic and rounding cannot differ from the reference.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Dim, NodeId, Op, TExpr, Tensor};

/// How an output coordinate maps to an input coordinate. `out_len` is the resized length as the
/// reference sees it: `scale * in_len` (unrounded) when scales are given, else the size.
fn source_coord(mode: &str, o: f64, scale: f64, in_len: usize, out_len: f64) -> Option<f64> {
    Some(match mode {
        "half_pixel" => (o + 0.5) / scale - 0.5,
        "pytorch_half_pixel" => {
            if out_len > 1.0 {
                (o + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        "align_corners" => {
            if out_len > 1.0 {
                o * (in_len as f64 - 1.0) / (out_len - 1.0)
            } else {
                0.0
            }
        }
        "asymmetric" => o / scale,
        "tf_half_pixel_for_nn" => (o + 0.5) / scale,
        "half_pixel_symmetric" => {
            let adjustment = out_len.floor() / (scale * in_len as f64);
            let center = in_len as f64 / 2.0;
            center * (1.0 - adjustment) + (o + 0.5) / scale - 0.5
        }
        _ => return None,
    })
}

/// Rounds a source coordinate to an index by `nearest_mode`.
fn nearest(mode: &str, x: f64) -> Option<i64> {
    let frac_is_half = (x - x.floor() - 0.5).abs() < 1e-12;
    Some(match mode {
        "round_prefer_floor" => {
            if frac_is_half {
                x.floor()
            } else {
                x.round()
            }
        }
        "round_prefer_ceil" => {
            if frac_is_half {
                x.ceil()
            } else {
                x.round()
            }
        }
        "floor" => x.floor(),
        "ceil" => x.ceil(),
        _ => return None,
    } as i64)
}

/// `Resize` (opset 10 and 11+) and `Upsample` (opset 7-9).
pub(crate) fn resize(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let xt = cx.ty(x).clone();
    let r = xt.rank();
    let upsample = n.op == "Upsample";
    let legacy = upsample || n.opset < 11;
    let mode = n.attr_s("mode")?.unwrap_or_else(|| "nearest".into());
    if !matches!(mode.as_str(), "nearest" | "linear" | "bilinear") {
        return Err(n.err(format!(
            "mode '{mode}' is not supported (nearest and linear are)"
        )));
    }
    let linear = mode != "nearest";
    let transform = if legacy {
        "asymmetric".to_string()
    } else {
        n.attr_s("coordinate_transformation_mode")?
            .unwrap_or_else(|| "half_pixel".into())
    };
    let nearest_mode = if legacy {
        "floor".to_string()
    } else {
        n.attr_s("nearest_mode")?
            .unwrap_or_else(|| "round_prefer_floor".into())
    };
    if n.attr_i("antialias", 0)? != 0 {
        return Err(n.err("antialias=1 is not supported"));
    }
    let policy = n
        .attr_s("keep_aspect_ratio_policy")?
        .unwrap_or_else(|| "stretch".into());
    if policy != "stretch" {
        return Err(n.err(format!(
            "keep_aspect_ratio_policy '{policy}' is not supported"
        )));
    }
    // Scales / sizes, per listed axis.
    let axes: Vec<usize> = match n.attr_ints("axes")? {
        Some(a) => a
            .iter()
            .map(|&v| n.axis(v, r, "axis"))
            .collect::<Result<_, _>>()?,
        None => (0..r).collect(),
    };
    let (scales_slot, sizes_slot) = if upsample && n.opset < 9 {
        (None, None)
    } else if legacy {
        (Some(1), None)
    } else {
        (Some(2), Some(3))
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
        let t = cx.const_tensor(n, i)?.ok_or_else(|| {
            n.err(format!(
                "input {i} ('scales') must be a compile-time constant"
            ))
        })?;
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
    let dt = xt.dtype;
    if !dt.is_float() {
        return Err(n.err(format!(
            "input must be floating point, got {}",
            xt.describe()
        )));
    }
    let mut out_shape = xt.shape.clone();
    let mut consts: Vec<NodeId> = vec![x];
    // Per output axis: how to get the source coordinate(s) and weight(s).
    let mut index_of: Vec<Vec<(TExpr, Option<TExpr>)>> = Vec::new();
    let mut resized: Vec<(usize, Dim)> = Vec::new();
    for a in 0..r {
        let k = axes.iter().position(|&v| v == a);
        let unchanged = match (k, &scales, &sizes) {
            (None, ..) => true,
            (Some(k), Some(s), _) => s[k] == 1.0,
            (Some(k), _, Some(z)) => xt.shape[a].as_const() == Some(z[k]),
            _ => true,
        };
        if unchanged {
            index_of.push(vec![(TExpr::Coord(a), None)]);
            continue;
        }
        let k = k.expect("resized axes are listed");
        let in_len = xt.shape[a].as_const().ok_or_else(|| {
            n.err(format!(
                "resized axis {a} of {} must be concrete (use --dim)",
                xt.describe()
            ))
        })? as usize;
        let (out_len, scale) = match (&scales, &sizes) {
            (Some(s), _) => ((in_len as f64 * s[k]).floor() as usize, s[k]),
            (_, Some(z)) => (z[k] as usize, z[k] as f64 / in_len as f64),
            _ => unreachable!("one is given"),
        };
        if scale <= 0.0 {
            return Err(n.err(format!("scale {scale} on axis {a} is not positive")));
        }
        resized.push((a, Dim::c(out_len as i64)));
        let last = in_len as i64 - 1;
        let table = |cx: &mut Ctx, what: &str, v: Vec<f64>, d: DType| -> NodeId {
            let len = v.len();
            let id = cx.constant(
                n,
                &format!("axis{a}_{what}"),
                Tensor::from_f64(d, vec![len], &v),
            );
            id
        };
        let mut lo = Vec::with_capacity(out_len);
        let mut hi = Vec::with_capacity(out_len);
        let mut w_lo = Vec::with_capacity(out_len);
        let mut w_hi = Vec::with_capacity(out_len);
        for o in 0..out_len {
            let out_f = if scales.is_some() {
                in_len as f64 * scale
            } else {
                out_len as f64
            };
            let src =
                source_coord(&transform, o as f64, scale, in_len, out_f).ok_or_else(|| {
                    n.err(format!(
                        "coordinate_transformation_mode '{transform}' is not supported"
                    ))
                })?;
            if linear {
                let s = src.clamp(0.0, last as f64);
                let f = s.floor();
                lo.push(f.clamp(0.0, last as f64));
                hi.push((f + 1.0).clamp(0.0, last as f64));
                w_hi.push(s - f);
                w_lo.push(1.0 - (s - f));
            } else {
                let i = nearest(&nearest_mode, src).ok_or_else(|| {
                    n.err(format!("nearest_mode '{nearest_mode}' is not supported"))
                })?;
                lo.push(i.clamp(0, last) as f64);
            }
        }
        let load_table = |id: NodeId, consts: &mut Vec<NodeId>| {
            consts.push(id);
            TExpr::Load {
                input: consts.len() - 1,
                index: vec![TExpr::Coord(a)],
            }
        };
        let t_lo = table(cx, "index", lo, DType::I32);
        let e_lo = load_table(t_lo, &mut consts);
        if linear {
            let t_hi = table(cx, "index_next", hi, DType::I32);
            let t_wl = table(cx, "weight", w_lo, dt);
            let t_wh = table(cx, "weight_next", w_hi, dt);
            let (e_hi, e_wl, e_wh) = (
                load_table(t_hi, &mut consts),
                load_table(t_wl, &mut consts),
                load_table(t_wh, &mut consts),
            );
            index_of.push(vec![(e_lo, Some(e_wl)), (e_hi, Some(e_wh))]);
        } else {
            index_of.push(vec![(e_lo, None)]);
        }
    }
    for (a, d) in resized {
        out_shape[a] = d;
    }
    // Sum over the corners of the interpolation cell.
    let corners: usize = index_of.iter().map(Vec::len).product();
    let mut expr: Option<TExpr> = None;
    for c in 0..corners {
        let mut rem = c;
        let mut index = Vec::with_capacity(r);
        let mut weight: Option<TExpr> = None;
        for opts in index_of.iter().rev() {
            let (ix, w) = &opts[rem % opts.len()];
            rem /= opts.len();
            index.push(ix.clone());
            if let Some(w) = w {
                weight = Some(match weight {
                    None => w.clone(),
                    Some(acc) => {
                        TExpr::Binary(BinaryOp::Mul, Box::new(acc), Box::new(w.clone()), dt)
                    }
                });
            }
        }
        index.reverse();
        let load = TExpr::Load { input: 0, index };
        let term = match weight {
            Some(w) => TExpr::Binary(BinaryOp::Mul, Box::new(w), Box::new(load), dt),
            None => load,
        };
        expr = Some(match expr {
            None => term,
            Some(acc) => TExpr::Binary(BinaryOp::Add, Box::new(acc), Box::new(term), dt),
        });
    }
    let op = Op::Compute {
        shape: out_shape,
        dtype: dt,
        expr: expr.expect("at least one corner"),
        name: n.op.to_string(),
    };
    Ok(one(cx.add(n, "", op, &consts)?))
}
