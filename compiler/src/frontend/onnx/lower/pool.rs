//! `LpPool` and `GlobalLpPool`: `(sum |x|^p)^(1/p)` over each window (padding contributes
//! nothing).
//!
//! `LpPool` is a tensor expression that lays every window out along an extra trailing axis,
//! `[N, C, *out, K]` with `K = prod(kernel_shape)` and `|x|^p` (or 0 outside the input) as the
//! element, followed by an `Op::Reduce` sum over that axis and the p-th root. `GlobalLpPool` is
//! the same over all spatial axes, without the window expression.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Dim, Expr, NodeId, Op, ReduceOp, UnaryOp};

/// A per-spatial-axis ints attribute with a default and a lower bound.
fn spatial_attr(n: &N, name: &str, sp: usize, default: i64, min: i64) -> Result<Vec<i64>, OnnxError> {
    let v = n.attr_ints(name)?.unwrap_or_else(|| vec![default; sp]);
    if v.len() != sp || v.iter().any(|&x| x < min) {
        return Err(n.err(format!(
            "attribute '{name}' is {v:?}; expected {sp} values of at least {min}"
        )));
    }
    Ok(v)
}

/// One pooled spatial axis: output length and begin padding.
struct Axis {
    out: i64,
    pad_begin: i64,
    /// Input length.
    len: i64,
}

/// Output lengths and begin pads of a pooling window (ONNX rules: `auto_pad` SAME gives
/// `ceil(in / stride)` outputs, extra padding at the end for SAME_UPPER; explicit pads give
/// `floor` (or `ceil`) of `(in + pads - dilated_kernel) / stride + 1`, where in ceil mode the
/// last window must start inside the input or its begin padding).
fn pooled_axes(
    n: &N,
    spatial: &[Dim],
    kernel: &[i64],
    strides: &[i64],
    dilations: &[i64],
) -> Result<Vec<Axis>, OnnxError> {
    let sp = kernel.len();
    let ceil = n.attr_i("ceil_mode", 0)? != 0;
    let auto_pad = n.attr_s("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    let pads: Option<Vec<i64>> = n.attr_ints("pads")?;
    if let Some(p) = &pads {
        if p.len() != 2 * sp || p.iter().any(|&v| v < 0) {
            return Err(n.err(format!(
                "attribute 'pads' is {p:?}; expected {} non-negative values",
                2 * sp
            )));
        }
    }
    let mut axes = Vec::with_capacity(sp);
    for i in 0..sp {
        let len = spatial[i].as_const().ok_or_else(|| {
            n.err(format!(
                "spatial dim {} must be concrete for pooling (bind it with --dim)",
                spatial[i]
            ))
        })?;
        let (s, ke) = (strides[i], (kernel[i] - 1) * dilations[i] + 1);
        let (out, pad_begin) = match auto_pad.as_str() {
            "SAME_UPPER" | "SAME_LOWER" => {
                let out = (len + s - 1) / s;
                let total = ((out - 1) * s + ke - len).max(0);
                let half = total / 2;
                (out, if auto_pad == "SAME_UPPER" { half } else { total - half })
            }
            "VALID" => ((len - ke).div_euclid(s) + 1, 0),
            "NOTSET" | "" => {
                let (pb, pe) = pads.as_ref().map_or((0, 0), |p| (p[i], p[sp + i]));
                let avail = len + pb + pe - ke;
                let mut out = if ceil {
                    (avail + s - 1).div_euclid(s) + 1
                } else {
                    avail.div_euclid(s) + 1
                };
                if ceil && (out - 1) * s >= len + pb {
                    out -= 1;
                }
                (out, pb)
            }
            other => {
                return Err(n.err(format!(
                    "auto_pad '{other}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID"
                )))
            }
        };
        if out < 1 {
            return Err(n.err(format!(
                "the window (extent {ke}) does not fit spatial axis {i} of length {len}"
            )));
        }
        axes.push(Axis { out, pad_begin, len });
    }
    Ok(axes)
}

/// `|v|^p` as an expression of dtype `d`.
fn abs_pow(v: Expr, p: i64, d: DType) -> Expr {
    let a = Expr::Unary(UnaryOp::Abs, Box::new(v), d);
    match p {
        1 => a,
        2 => Expr::Binary(BinaryOp::Mul, Box::new(a.clone()), Box::new(a), d),
        _ => Expr::Binary(BinaryOp::Pow, Box::new(a), Box::new(Expr::Lit(p as f64, d)), d),
    }
}

/// The p-th root of `s`.
fn root(cx: &mut Ctx, n: &N, s: NodeId, p: i64) -> Result<NodeId, OnnxError> {
    match p {
        1 => Ok(s),
        2 => cx.add(n, "", Op::Unary(UnaryOp::Sqrt), &[s]),
        _ => {
            let d = cx.ty(s).dtype;
            let e = cx.scalar(n, "inv_p", d, 1.0 / p as f64);
            cx.add(n, "", Op::Binary(BinaryOp::Pow), &[s, e])
        }
    }
}

/// The exponent `p` (an int from opset 2; a float in `LpPool-1`/`GlobalLpPool-1`).
fn exponent(n: &N) -> Result<i64, OnnxError> {
    let p = if n.opset < 2 {
        n.attr_f("p", 2.0)? as i64
    } else {
        n.attr_i("p", 2)?
    };
    if p < 1 {
        return Err(n.err(format!("attribute 'p' is {p}; it must be at least 1")));
    }
    Ok(p)
}

/// Checks `x` is a floating-point `[N, C, spatial...]` tensor; returns the spatial rank.
fn check_input(cx: &Ctx, n: &N, x: NodeId) -> Result<usize, OnnxError> {
    let t = cx.ty(x);
    if t.rank() < 3 || !t.dtype.is_float() {
        return Err(n.err(format!(
            "input must be a floating point [N, C, spatial...] tensor, got {}",
            t.describe()
        )));
    }
    Ok(t.rank() - 2)
}

/// `LpPool`: windowed `(sum |x|^p)^(1/p)` with strides, dilations, pads / `auto_pad`, ceil mode.
pub(crate) fn lp_pool(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let sp = check_input(cx, n, x)?;
    let xt = cx.ty(x).clone();
    let p = exponent(n)?;
    let kernel = n
        .attr_ints("kernel_shape")?
        .ok_or_else(|| n.err("attribute 'kernel_shape' is required"))?;
    if kernel.len() != sp || kernel.iter().any(|&k| k < 1) {
        return Err(n.err(format!(
            "kernel_shape {kernel:?} must have {sp} positive values (one per spatial axis of {})",
            xt.describe()
        )));
    }
    let strides = spatial_attr(n, "strides", sp, 1, 1)?;
    let dilations = spatial_attr(n, "dilations", sp, 1, 1)?;
    let axes = pooled_axes(n, &xt.shape[2..], &kernel, &strides, &dilations)?;
    let taps: i64 = kernel.iter().product();
    // Windows along a trailing axis: element (.., o, t) is |x|^p at o*s + k(t)*d - pad_begin.
    let last = Expr::Coord(2 + sp);
    let mut index = vec![Expr::Coord(0), Expr::Coord(1)];
    let mut inside = Vec::new();
    let mut shape = xt.shape[..2].to_vec();
    for (i, a) in axes.iter().enumerate() {
        shape.push(Dim::c(a.out));
        let kstride: i64 = kernel[i + 1..].iter().product();
        let mut k = last.clone();
        if kstride > 1 {
            k = k.div(Expr::int(kstride));
        }
        if i > 0 {
            k = k.rem(Expr::int(kernel[i]));
        }
        let mut pos = Expr::Coord(2 + i);
        if strides[i] > 1 {
            pos = pos.mul(Expr::int(strides[i]));
        }
        pos = pos.add(if dilations[i] > 1 {
            k.mul(Expr::int(dilations[i]))
        } else {
            k
        });
        if a.pad_begin > 0 {
            pos = pos.sub(Expr::int(a.pad_begin));
        }
        // Which windows can leave the input on this axis.
        let last_pos = (a.out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] - a.pad_begin;
        if a.pad_begin > 0 {
            inside.push(pos.clone().cmp(BinaryOp::GreaterEqual, Expr::int(0), DType::I32));
        }
        if last_pos >= a.len {
            inside.push(pos.clone().cmp(BinaryOp::Less, Expr::int(a.len), DType::I32));
        }
        index.push(pos);
    }
    shape.push(Dim::c(taps));
    let d = xt.dtype;
    let mut expr = abs_pow(Expr::Load { input: 0, index }, p, d);
    if let Some(c) = inside
        .into_iter()
        .reduce(|a, b| Expr::Binary(BinaryOp::And, Box::new(a), Box::new(b), DType::Bool))
    {
        expr = Expr::select(c, expr, Expr::Lit(0.0, d));
    }
    let windows = cx.add(
        n,
        "windows",
        Op::Compute {
            shape,
            dtype: d,
            expr,
            name: "LpPoolWindows".into(),
        },
        &[x],
    )?;
    let sum = cx.add(
        n,
        if p == 1 { "" } else { "sum" },
        Op::Reduce {
            op: ReduceOp::Sum,
            axes: vec![2 + sp],
            keep_dims: false,
        },
        &[windows],
    )?;
    Ok(one(root(cx, n, sum, p)?))
}

/// `GlobalLpPool`: `(sum |x|^p)^(1/p)` over all spatial axes, kept as size 1.
pub(crate) fn global_lp_pool(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let sp = check_input(cx, n, x)?;
    let p = exponent(n)?;
    let d = cx.ty(x).dtype;
    let rank = sp + 2;
    let powered = cx.add(
        n,
        "pow",
        Op::Compute {
            shape: cx.ty(x).shape.clone(),
            dtype: d,
            expr: abs_pow(
                Expr::Load {
                    input: 0,
                    index: (0..rank).map(Expr::Coord).collect(),
                },
                p,
                d,
            ),
            name: "AbsPow".into(),
        },
        &[x],
    )?;
    let sum = cx.add(
        n,
        if p == 1 { "" } else { "sum" },
        Op::Reduce {
            op: ReduceOp::Sum,
            axes: (2..rank).collect(),
            keep_dims: true,
        },
        &[powered],
    )?;
    Ok(one(root(cx, n, sum, p)?))
}
