//! Convolution and pooling: `Conv` (the IR's `Conv` anchor op), `MaxPool` and `AveragePool`
//! (one tensor expression each, with the window unrolled).

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Dim, Expr, Op};

/// Most taps an unrolled pooling window may have.
const MAX_TAPS: usize = 256;

/// Spatial geometry of a windowed op: per spatial axis kernel, stride, dilation, pads.
pub(super) struct Window {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads: Vec<(usize, usize)>,
}

/// Reads `strides`, `dilations`, `pads` / `auto_pad` for `sp` spatial axes with the given kernel.
pub(super) fn window(n: &N, kernel: Vec<usize>, spatial: &[Dim], ceil_mode: bool) -> Result<Window, OnnxError> {
    let sp = kernel.len();
    let ints = |name: &str, default: usize| -> Result<Vec<usize>, OnnxError> {
        match n.attr_ints(name)? {
            Some(v) if v.len() == sp && v.iter().all(|&x| x > 0) => Ok(v.iter().map(|&x| x as usize).collect()),
            Some(v) => Err(n.err(format!("attribute '{name}' is {v:?}; expected {sp} positive values"))),
            None => Ok(vec![default; sp]),
        }
    };
    let strides = ints("strides", 1)?;
    let dilations = ints("dilations", 1)?;
    let auto_pad = n.attr_s("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    let pads = match auto_pad.as_str() {
        "NOTSET" => match n.attr_ints("pads")? {
            Some(p) if p.len() == 2 * sp && p.iter().all(|&x| x >= 0) => {
                (0..sp).map(|i| (p[i] as usize, p[i + sp] as usize)).collect()
            }
            Some(p) => {
                return Err(n.err(format!(
                    "attribute 'pads' is {p:?}; expected {} non-negative values",
                    2 * sp
                )))
            }
            None => vec![(0, 0); sp],
        },
        "VALID" => vec![(0, 0); sp],
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut pads = Vec::new();
            for i in 0..sp {
                let len = spatial[i].as_const().ok_or_else(|| {
                    n.err(format!(
                        "auto_pad={auto_pad} needs concrete spatial dims (use --dim), got {}",
                        spatial[i]
                    ))
                })? as usize;
                let out = len.div_ceil(strides[i]);
                let span = (kernel[i] - 1) * dilations[i] + 1;
                let total = ((out - 1) * strides[i] + span).saturating_sub(len);
                let small = total / 2;
                pads.push(if auto_pad == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                });
            }
            pads
        }
        other => return Err(n.err(format!("attribute 'auto_pad' is '{other}'"))),
    };
    let _ = ceil_mode;
    Ok(Window {
        kernel,
        strides,
        dilations,
        pads,
    })
}

/// `Conv` (any number of spatial axes, groups, dilations, explicit or automatic padding).
pub(crate) fn conv(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let w = cx.input(n, 1)?;
    let b = cx.opt_input(n, 2)?;
    let (xt, wt) = (cx.ty(x).clone(), cx.ty(w).clone());
    if xt.rank() < 3 || wt.rank() != xt.rank() {
        return Err(n.err(format!(
            "x {} and w {} must be [N, C, spatial...] and [M, C/group, kernel...]",
            xt.describe(),
            wt.describe()
        )));
    }
    let kernel: Vec<usize> = wt.shape[2..]
        .iter()
        .map(|d| d.as_const().map(|v| v as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| n.err(format!("kernel dims of w {} must be concrete", wt.describe())))?;
    if let Some(ks) = n.attr_ints("kernel_shape")? {
        if ks.iter().map(|&k| k as usize).collect::<Vec<_>>() != kernel {
            return Err(n.err(format!(
                "attribute 'kernel_shape' {ks:?} does not match w {}",
                wt.describe()
            )));
        }
    }
    let win = window(n, kernel, &xt.shape[2..], false)?;
    let groups = n.attr_i("group", 1)?;
    if groups <= 0 {
        return Err(n.err(format!("attribute 'group' is {groups}")));
    }
    let op = Op::Conv {
        strides: win.strides,
        pads: win.pads,
        dilations: win.dilations,
        groups: groups as usize,
    };
    let ins: Vec<_> = std::iter::once(x).chain(std::iter::once(w)).chain(b).collect();
    Ok(one(cx.add(n, "", op, &ins)?))
}

/// Output length of a pooled axis (floor or ceil mode; a ceil-mode window must start inside the
/// input or its begin padding). A symbolic length gives a floor/ceil quotient the runtime
/// evaluates; in ceil mode that needs `pad_end + stride <= span`, where the last window can
/// never start in the end padding (else `None`, as for a window that does not fit).
pub(super) fn pooled_len(len: &Dim, k: usize, s: usize, d: usize, pad: (usize, usize), ceil: bool) -> Option<Dim> {
    let span = (k - 1) * d + 1;
    if let Some(len) = len.as_const() {
        let len = usize::try_from(len).ok()?;
        let avail = (len + pad.0 + pad.1).checked_sub(span)?;
        let mut out = if ceil { avail.div_ceil(s) + 1 } else { avail / s + 1 };
        if ceil && (out - 1) * s >= len + pad.0 {
            out -= 1;
        }
        return Some(Dim::c(out as i64));
    }
    if ceil && pad.1 + s > span {
        return None;
    }
    let avail = len.add(&Dim::c((pad.0 + pad.1) as i64 - span as i64));
    let q = if ceil {
        avail.ceil_div(s as i64)?
    } else {
        avail.floor_div(s as i64)?
    };
    Some(q.add(&Dim::c(1)))
}

/// `MaxPool` / `AveragePool` as one tensor expression over the unrolled window.
pub(crate) fn pool(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let xt = cx.ty(x).clone();
    if xt.rank() < 3 {
        return Err(n.err(format!("input must be [N, C, spatial...], got {}", xt.describe())));
    }
    let max = n.op == "MaxPool";
    let supported = xt.dtype.is_float() || (max && xt.dtype.is_int());
    if !supported {
        return Err(n.err(format!("input must be floating point, got {}", xt.describe())));
    }
    let want_indices = n.proto.output.get(1).is_some_and(|s| !s.is_empty());
    if want_indices && !max {
        return Err(n.err("has a second output, which only MaxPool has"));
    }
    let storage_order = n.attr_i("storage_order", 0)?;
    if !(0..=1).contains(&storage_order) {
        return Err(n.err(format!("attribute 'storage_order' must be 0 or 1, got {storage_order}")));
    }
    let sp = xt.rank() - 2;
    let kernel_shape = n
        .attr_ints("kernel_shape")?
        .ok_or_else(|| n.err("attribute 'kernel_shape' is required"))?;
    if let Some(k) = kernel_shape.iter().find(|&&k| k < 1) {
        return Err(n.err(format!(
            "attribute 'kernel_shape' {kernel_shape:?} has a window of size {k}; every size must be at least 1"
        )));
    }
    let kernel: Vec<usize> = kernel_shape.iter().map(|&k| k as usize).collect();
    if kernel.len() != sp {
        return Err(n.err(format!(
            "kernel_shape {kernel:?} does not match the {sp} spatial axes of {}",
            xt.describe()
        )));
    }
    let ceil = n.attr_i("ceil_mode", 0)? != 0;
    let win = window(n, kernel, &xt.shape[2..], ceil)?;
    let taps: usize = win.kernel.iter().product();
    if taps > MAX_TAPS {
        return Err(n.err(format!(
            "a {taps}-tap window is too large to unroll (limit {MAX_TAPS}); the IR has no windowed reduction yet"
        )));
    }
    let mut lens = Vec::new();
    let mut out_shape = xt.shape[..2].to_vec();
    for i in 0..sp {
        let len = xt.shape[2 + i].clone();
        let o = pooled_len(&len, win.kernel[i], win.strides[i], win.dilations[i], win.pads[i], ceil)
            .ok_or_else(|| {
                if len.is_const() {
                    n.err(format!("the window does not fit axis {} of {}", 2 + i, xt.describe()))
                } else {
                    n.err(format!(
                        "ceil_mode over symbolic axis {} of {} can start a window in the end padding; it needs a concrete size",
                        2 + i,
                        xt.describe()
                    ))
                }
            })?;
        lens.push(len);
        out_shape.push(o);
    }
    let include_pad = n.attr_i("count_include_pad", 0)? != 0;
    let dt = xt.dtype;
    let and = |a: Expr, b: Expr| Expr::Binary(BinaryOp::And, Box::new(a), Box::new(b), DType::Bool);
    let in_range = |v: Expr, lo: i64, hi: Dim| {
        let hi = match hi.as_const() {
            Some(h) => Expr::int(h),
            None => Expr::Dim(hi),
        };
        and(
            v.clone().cmp(BinaryOp::GreaterEqual, Expr::int(lo), DType::I32),
            v.cmp(BinaryOp::Less, hi, DType::I32),
        )
    };
    let mut acc: Option<Expr> = None;
    let mut count: Option<Expr> = None;
    // Per tap: whether it lies inside x, and its position along each spatial axis.
    let mut tap_positions: Vec<(Expr, Vec<Expr>)> = Vec::with_capacity(taps);
    for t in 0..taps {
        // Kernel offset of tap t along each spatial axis.
        let mut rem = t;
        let mut offs = vec![0usize; sp];
        for i in (0..sp).rev() {
            offs[i] = rem % win.kernel[i];
            rem /= win.kernel[i];
        }
        let mut index = vec![Expr::Coord(0), Expr::Coord(1)];
        let mut valid: Option<Expr> = None;
        let mut in_padded: Option<Expr> = None;
        for i in 0..sp {
            let shift = (offs[i] * win.dilations[i]) as i64 - win.pads[i].0 as i64;
            let pos = Expr::Coord(2 + i)
                .mul(Expr::int(win.strides[i] as i64))
                .add(Expr::int(shift));
            let v = in_range(pos.clone(), 0, lens[i].clone());
            let p = in_range(
                pos.clone(),
                -(win.pads[i].0 as i64),
                lens[i].add(&Dim::c(win.pads[i].1 as i64)),
            );
            valid = Some(match valid {
                None => v,
                Some(a) => and(a, v),
            });
            in_padded = Some(match in_padded {
                None => p,
                Some(a) => and(a, p),
            });
            index.push(pos);
        }
        let (valid, in_padded) = (valid.expect("sp >= 1"), in_padded.expect("sp >= 1"));
        tap_positions.push((valid.clone(), index[2..].to_vec()));
        let load = Expr::Load { input: 0, index };
        let fill = match (max, dt) {
            (false, _) => 0.0,
            (true, DType::I8) => -128.0,
            (true, DType::I32) => i32::MIN as f64,
            (true, DType::U8 | DType::U32) => 0.0,
            (true, _) => f64::NEG_INFINITY,
        };
        let val = Expr::select(valid.clone(), load, Expr::Lit(fill, dt));
        let op = if max { BinaryOp::Max } else { BinaryOp::Add };
        acc = Some(match acc {
            None => val,
            Some(a) => Expr::Binary(op, Box::new(a), Box::new(val), dt),
        });
        let counted = if include_pad { in_padded } else { valid };
        let c = Expr::Cast(Box::new(counted), DType::Bool, dt);
        count = Some(match count {
            None => c,
            Some(a) => Expr::Binary(BinaryOp::Add, Box::new(a), Box::new(c), dt),
        });
    }
    let mut expr = acc.expect("taps >= 1");
    if !max {
        expr = Expr::Binary(BinaryOp::Div, Box::new(expr), Box::new(count.expect("taps >= 1")), dt);
    }
    let op = Op::Compute {
        shape: out_shape.clone(),
        dtype: dt,
        expr,
        name: n.op.to_string(),
    };
    let y = cx.add(n, "", op, &[x])?;
    if !want_indices {
        return Ok(one(y));
    }
    // Indices: the first tap (in window order) inside x whose value is the maximum, as the flat
    // index into x (spatial axes row-major, or column-major for storage_order 1).
    let dim = |d: &Dim| match d.as_const() {
        Some(c) => Expr::int(c),
        None => Expr::Dim(d.clone()),
    };
    let out_index: Vec<Expr> = (0..out_shape.len()).map(Expr::Coord).collect();
    let mut best: Option<Expr> = None;
    for (valid, pos) in tap_positions.iter().rev() {
        let mut flat = Expr::Coord(0).mul(dim(&xt.shape[1])).add(Expr::Coord(1));
        let order: Vec<usize> = if storage_order == 0 {
            (0..sp).collect()
        } else {
            (0..sp).rev().collect()
        };
        let mut spatial: Option<Expr> = None;
        for &i in &order {
            spatial = Some(match spatial {
                None => pos[i].clone(),
                Some(s) => s.mul(dim(&xt.shape[2 + i])).add(pos[i].clone()),
            });
        }
        for i in 0..sp {
            flat = flat.mul(dim(&xt.shape[2 + i]));
        }
        flat = flat.add(spatial.expect("sp >= 1"));
        let mut index = vec![Expr::Coord(0), Expr::Coord(1)];
        index.extend(pos.iter().cloned());
        let hit = Expr::Binary(
            BinaryOp::And,
            Box::new(valid.clone()),
            Box::new(Expr::Load { input: 0, index }.cmp(
                BinaryOp::Equal,
                Expr::Load {
                    input: 1,
                    index: out_index.clone(),
                },
                dt,
            )),
            DType::Bool,
        );
        // Later taps first, so the earliest hit is selected last.
        best = Some(match best {
            None => Expr::select(hit, flat, Expr::int(-1)),
            Some(b) => Expr::select(hit, flat, b),
        });
    }
    let op = Op::Compute {
        shape: out_shape,
        dtype: DType::I32,
        expr: best.expect("taps >= 1"),
        name: "MaxPoolIndices".into(),
    };
    let idx = cx.add(n, "indices", op, &[x, y])?;
    Ok(vec![Value::Node(y), Value::Node(idx)])
}

/// `ConvTranspose` as a `Conv`: the input is spread out by the strides (zeros between elements,
/// a tensor expression), the kernel is flipped with in/out channels swapped per group (folded
/// for constant weights), and the padding becomes `dilation * (k - 1) - pad` (cropped where
/// negative).
pub(crate) fn conv_transpose(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let w = cx.input(n, 1)?;
    let b = cx.opt_input(n, 2)?;
    let (xt, wt) = (cx.ty(x).clone(), cx.ty(w).clone());
    if xt.rank() < 3 || wt.rank() != xt.rank() {
        return Err(n.err(format!(
            "x {} and w {} must be [N, C, spatial...] and [C, M/group, kernel...]",
            xt.describe(),
            wt.describe()
        )));
    }
    let sp = xt.rank() - 2;
    let dims = |t: &kiln_ir::TensorType, what: &str| -> Result<Vec<usize>, OnnxError> {
        t.shape[2..]
            .iter()
            .map(|d| d.as_const().map(|v| v as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                n.err(format!(
                    "spatial dims of {what} {} must be concrete (use --dim)",
                    t.describe()
                ))
            })
    };
    let kernel = dims(&wt, "w")?;
    let in_dims: Vec<Dim> = xt.shape[2..].to_vec();
    let groups = n.attr_i("group", 1)?.max(1) as usize;
    let ints = |name: &str, default: i64| -> Result<Vec<i64>, OnnxError> {
        Ok(n.attr_ints(name)?.unwrap_or_else(|| vec![default; sp]))
    };
    let strides = ints("strides", 1)?;
    let dil = ints("dilations", 1)?;
    let out_pad = ints("output_padding", 0)?;
    if [&strides, &dil, &out_pad].iter().any(|v| v.len() != sp) || strides.iter().chain(&dil).any(|&v| v <= 0) {
        return Err(n.err("strides, dilations and output_padding must have one (positive) value per spatial axis"));
    }
    let auto_pad = n.attr_s("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    let output_shape = n
        .attr_ints("output_shape")?
        .map(|v| v[v.len().saturating_sub(sp)..].to_vec());
    let mut pads: Vec<(i64, i64)> = match n.attr_ints("pads")? {
        Some(p) if p.len() == 2 * sp => (0..sp).map(|i| (p[i], p[i + sp])).collect(),
        Some(p) => return Err(n.err(format!("attribute 'pads' is {p:?}; expected {} values", 2 * sp))),
        None => vec![(0, 0); sp],
    };
    let targets: Option<Vec<i64>> = match (&output_shape, auto_pad.as_str()) {
        (Some(o), _) => Some(o.clone()),
        (None, "SAME_UPPER" | "SAME_LOWER") => Some(vec![]),
        _ => None,
    };
    if let Some(mut t) = targets {
        // Padding from a target size needs concrete input lengths.
        let in_len = dims(&xt, "x")?;
        if output_shape.is_none() {
            t = (0..sp).map(|i| in_len[i] as i64 * strides[i]).collect();
        } else if t.len() != sp {
            return Err(n.err(format!("attribute 'output_shape' needs {sp} spatial sizes, got {t:?}")));
        }
        for i in 0..sp {
            let full = strides[i] * (in_len[i] as i64 - 1) + out_pad[i] + (kernel[i] as i64 - 1) * dil[i] + 1;
            let total = full - t[i];
            let half = total.div_euclid(2);
            pads[i] = if auto_pad == "SAME_UPPER" {
                (half, total - half)
            } else {
                (total - half, half)
            };
        }
    }
    // Spread x by the strides.
    let mut spread = x;
    if strides.iter().any(|&s| s > 1) {
        let mut shape = xt.shape[..2].to_vec();
        let mut index = vec![Expr::Coord(0), Expr::Coord(1)];
        let mut on_grid: Option<Expr> = None;
        for i in 0..sp {
            shape.push(in_dims[i].sub(&Dim::c(1)).mul(&Dim::c(strides[i])).add(&Dim::c(1)));
            let c = Expr::Coord(2 + i);
            let s = Expr::int(strides[i]);
            index.push(c.clone().div(s.clone()));
            let hit = c.rem(s).cmp(BinaryOp::Equal, Expr::int(0), DType::I32);
            on_grid = Some(match on_grid {
                None => hit,
                Some(a) => Expr::Binary(BinaryOp::And, Box::new(a), Box::new(hit), DType::Bool),
            });
        }
        let expr = Expr::select(
            on_grid.expect("sp >= 1"),
            Expr::Load { input: 0, index },
            Expr::Lit(0.0, xt.dtype),
        );
        spread = cx.add(
            n,
            "spread",
            Op::Compute {
                shape,
                dtype: xt.dtype,
                expr,
                name: "ConvTransposeSpread".into(),
            },
            &[x],
        )?;
    }
    // w [C, M/g, k...] -> [M, C/g, k...], spatially flipped.
    let c = xt.shape[1].clone();
    let mg = wt.shape[1].clone();
    let g = Dim::c(groups as i64);
    let cg = c
        .exact_div(&g)
        .ok_or_else(|| n.err(format!("{c} channels do not split into {groups} groups")))?;
    let kd: Vec<Dim> = kernel.iter().map(|&k| Dim::c(k as i64)).collect();
    let mut s5 = vec![g.clone(), cg.clone(), mg.clone()];
    s5.extend(kd.iter().cloned());
    let w5 = cx.add(n, "w_groups", Op::Reshape { shape: s5 }, &[w])?;
    let mut perm = vec![0, 2, 1];
    perm.extend(3..3 + sp);
    let wt5 = cx.add(n, "w_swap", Op::Transpose { perm }, &[w5])?;
    let mut s4 = vec![mg.mul(&g), cg];
    s4.extend(kd.iter().cloned());
    let w4 = cx.add(n, "w_swapped", Op::Reshape { shape: s4 }, &[wt5])?;
    let flip: Vec<kiln_ir::SliceAxis> = (0..sp)
        .map(|i| kiln_ir::SliceAxis {
            axis: 2 + i,
            start: -1,
            end: -kiln_ir::infer::SLICE_END_MAX,
            step: -1,
        })
        .collect();
    let wf = cx.add(n, "w_flipped", Op::Slice { axes: flip }, &[w4])?;
    // Conv with the complementary padding, cropping where it is negative.
    let mut conv_pads = Vec::new();
    let mut crop = Vec::new();
    for i in 0..sp {
        let full = (kernel[i] as i64 - 1) * dil[i];
        let (pb, pe) = (full - pads[i].0, full - pads[i].1 + out_pad[i]);
        conv_pads.push((pb.max(0) as usize, pe.max(0) as usize));
        if pb < 0 || pe < 0 {
            crop.push(kiln_ir::SliceAxis {
                axis: 2 + i,
                start: (-pb).max(0),
                end: if pe < 0 { pe } else { kiln_ir::infer::SLICE_END_MAX },
                step: 1,
            });
        }
    }
    let op = Op::Conv {
        strides: vec![1; sp],
        pads: conv_pads,
        dilations: dil.iter().map(|&d| d as usize).collect(),
        groups,
    };
    let ins: Vec<_> = [spread, wf]
        .into_iter()
        .chain(if crop.is_empty() { b } else { None })
        .collect();
    let y = cx.add(n, if crop.is_empty() { "" } else { "conv" }, op, &ins)?;
    if crop.is_empty() {
        return Ok(one(y));
    }
    let y = cx.add(
        n,
        if b.is_some() { "cropped" } else { "" },
        Op::Slice { axes: crop },
        &[y],
    )?;
    match b {
        Some(b) => {
            let oc = cx.ty(b).shape.clone();
            let mut shape = oc;
            shape.extend(std::iter::repeat_n(Dim::c(1), sp));
            let bc = cx.add(n, "bias_c", Op::Reshape { shape }, &[b])?;
            Ok(one(cx.add(n, "", Op::Binary(BinaryOp::Add), &[y, bc])?))
        }
        None => Ok(one(y)),
    }
}
