//! Integer convolutions, exact in i32: `ConvInteger` and `QLinearConv`.
//!
//! The zero-point-centred input is unfolded into columns (`[N, positions, C * kernel]`, one
//! tensor expression, zero in the padding) and multiplied by the centred weight `[C * kernel,
//! M]` with an i32 `MatMul`, so the sums are exact whatever their size. `QLinearConv` then
//! adds the i32 bias and requantizes: `saturate(round(acc * x_scale * w_scale / y_scale) +
//! y_zero_point)`.

use super::conv::{pooled_len, window};
use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Dim, Expr, NodeId, Op, UnaryOp};

/// `v` as i32 minus its zero point (scalar, or per output channel for the weight).
fn centred(
    cx: &mut Ctx,
    n: &N,
    what: &str,
    v: NodeId,
    zp: Option<NodeId>,
    per_channel_rank: usize,
) -> Result<NodeId, OnnxError> {
    let vi = cx.add(n, &format!("{what}_i32"), Op::Cast(DType::I32), &[v])?;
    let Some(z) = zp else { return Ok(vi) };
    let zi = cx.add(n, &format!("{what}_zero_point_i32"), Op::Cast(DType::I32), &[z])?;
    let zt = cx.ty(zi).clone();
    let zi = match zt.rank() {
        0 => zi,
        1 if zt.shape[0] == Dim::c(1) => {
            cx.add(n, &format!("{what}_zp_scalar"), Op::Reshape { shape: vec![] }, &[zi])?
        }
        1 if per_channel_rank > 0 => {
            let mut shape = vec![Dim::c(1); per_channel_rank];
            shape[0] = zt.shape[0].clone();
            cx.add(n, &format!("{what}_zp_channels"), Op::Reshape { shape }, &[zi])?
        }
        _ => {
            return Err(n.err(format!(
                "{what} zero point {} must be a scalar{}",
                zt.describe(),
                if per_channel_rank > 0 {
                    " or one per output channel"
                } else {
                    ""
                }
            )))
        }
    };
    cx.add(n, &format!("{what}_centred"), Op::Binary(BinaryOp::Sub), &[vi, zi])
}

/// The exact i32 convolution `[N, M, *out]` of the centred input and weight.
fn conv_i32(cx: &mut Ctx, n: &N, x: NodeId, w: NodeId) -> Result<NodeId, OnnxError> {
    let (xt, wt) = (cx.ty(x).clone(), cx.ty(w).clone());
    if xt.rank() < 3 || wt.rank() != xt.rank() {
        return Err(n.err(format!(
            "x {} and w {} must be [N, C, spatial...] and [M, C, kernel...]",
            xt.describe(),
            wt.describe()
        )));
    }
    if n.attr_i("group", 1)? != 1 {
        return Err(n.unsupported("attribute 'group' other than 1 is not supported for integer convolutions"));
    }
    let sp = xt.rank() - 2;
    let consts = |shape: &[Dim], what: &str| -> Result<Vec<usize>, OnnxError> {
        shape
            .iter()
            .map(|d| d.as_const().map(|c| c as usize))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| n.err(format!("{what} must have concrete dims (use --dim)")))
    };
    let xs = consts(&xt.shape, "x")?;
    let ws = consts(&wt.shape, "w")?;
    if ws[1] != xs[1] {
        return Err(n.err(format!(
            "w {} has {} input channels, x {} has {}",
            wt.describe(),
            ws[1],
            xt.describe(),
            xs[1]
        )));
    }
    let kernel = ws[2..].to_vec();
    if let Some(k) = n.attr_ints("kernel_shape")? {
        if k.iter().map(|&v| v as usize).collect::<Vec<_>>() != kernel {
            return Err(n.err(format!(
                "attribute 'kernel_shape' {k:?} does not match w {}",
                wt.describe()
            )));
        }
    }
    let win = window(n, kernel.clone(), &xt.shape[2..], false)?;
    let mut out = Vec::with_capacity(sp);
    for (i, &k) in kernel.iter().enumerate() {
        let o = pooled_len(
            &xt.shape[2 + i],
            k,
            win.strides[i],
            win.dilations[i],
            win.pads[i],
            false,
        )
        .and_then(|d| d.as_const())
        .ok_or_else(|| n.err(format!("the kernel does not fit axis {} of {}", 2 + i, xt.describe())))?;
        out.push(o as usize);
    }
    let positions: usize = out.iter().product();
    let taps: usize = kernel.iter().product();
    let depth = xs[1] * taps;
    // Columns [N, positions, C * taps]: coordinate 1 -> output position, 2 -> (channel, tap).
    let mut index = vec![Expr::Coord(0)];
    let mut valid: Option<Expr> = None;
    let channel = Expr::Coord(2).div(Expr::int(taps as i64));
    index.push(channel);
    let mut pos_stride = positions;
    let mut tap_stride = taps;
    for i in 0..sp {
        pos_stride /= out[i];
        tap_stride /= kernel[i];
        let o = Expr::Coord(1)
            .div(Expr::int(pos_stride as i64))
            .rem(Expr::int(out[i] as i64));
        let k = Expr::Coord(2)
            .div(Expr::int(tap_stride as i64))
            .rem(Expr::int(kernel[i] as i64));
        let p = o
            .mul(Expr::int(win.strides[i] as i64))
            .add(k.mul(Expr::int(win.dilations[i] as i64)))
            .sub(Expr::int(win.pads[i].0 as i64));
        let ok = Expr::Binary(
            BinaryOp::And,
            Box::new(p.clone().cmp(BinaryOp::GreaterEqual, Expr::int(0), DType::I32)),
            Box::new(p.clone().cmp(BinaryOp::Less, Expr::int(xs[2 + i] as i64), DType::I32)),
            DType::Bool,
        );
        valid = Some(match valid {
            None => ok,
            Some(v) => Expr::Binary(BinaryOp::And, Box::new(v), Box::new(ok), DType::Bool),
        });
        index.push(p);
    }
    let expr = Expr::select(valid.expect("sp >= 1"), Expr::Load { input: 0, index }, Expr::int(0));
    let cols = cx.add(
        n,
        "columns",
        Op::Compute {
            shape: vec![Dim::c(xs[0] as i64), Dim::c(positions as i64), Dim::c(depth as i64)],
            dtype: DType::I32,
            expr,
            name: "Im2Col".into(),
        },
        &[x],
    )?;
    let wm = cx.add(
        n,
        "w_rows",
        Op::Reshape {
            shape: vec![Dim::c(ws[0] as i64), Dim::c(depth as i64)],
        },
        &[w],
    )?;
    let wm = cx.add(n, "w_cols", Op::Transpose { perm: vec![1, 0] }, &[wm])?;
    let y = cx.add(n, "matmul", Op::MatMul, &[cols, wm])?;
    let y = cx.add(n, "channels_first", Op::Transpose { perm: vec![0, 2, 1] }, &[y])?;
    let mut shape = vec![Dim::c(xs[0] as i64), Dim::c(ws[0] as i64)];
    shape.extend(out.iter().map(|&o| Dim::c(o as i64)));
    cx.add(n, "conv", Op::Reshape { shape }, &[y])
}

/// `ConvInteger`: `(x - x_zero_point) * (w - w_zero_point)` convolved, in i32.
pub(crate) fn conv_integer(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let w = cx.input(n, 1)?;
    let rank = cx.ty(w).rank();
    let xz = cx.opt_input(n, 2)?;
    let wz = cx.opt_input(n, 3)?;
    let xc = centred(cx, n, "x", x, xz, 0)?;
    let wc = centred(cx, n, "w", w, wz, rank)?;
    Ok(one(conv_i32(cx, n, xc, wc)?))
}

/// `QLinearConv`: the integer convolution plus the i32 bias, requantized to y's scale and zero
/// point (round half to even, saturated to y's type).
pub(crate) fn qlinear_conv(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let xs = cx.input(n, 1)?;
    let xz = cx.opt_input(n, 2)?;
    let w = cx.input(n, 3)?;
    let ws = cx.input(n, 4)?;
    let wz = cx.opt_input(n, 5)?;
    let ys = cx.input(n, 6)?;
    let yz = cx.opt_input(n, 7)?;
    let bias = cx.opt_input(n, 8)?;
    let rank = cx.ty(w).rank();
    let out_dtype = match yz {
        Some(z) => cx.ty(z).dtype,
        None => cx.ty(x).dtype,
    };
    let (lo, hi) = match out_dtype {
        DType::I8 => (-128.0, 127.0),
        DType::U8 => (0.0, 255.0),
        other => return Err(n.unsupported(format!("output type {other} is not supported (only int8 and uint8)"))),
    };
    let xc = centred(cx, n, "x", x, xz, 0)?;
    let wc = centred(cx, n, "w", w, wz, rank)?;
    let mut acc = conv_i32(cx, n, xc, wc)?;
    if let Some(b) = bias {
        let bi = cx.add(n, "bias_i32", Op::Cast(DType::I32), &[b])?;
        let mut shape = vec![Dim::c(1); rank];
        shape[1] = cx.ty(bi).shape.first().cloned().unwrap_or(Dim::c(1));
        let bi = cx.add(n, "bias_channels", Op::Reshape { shape }, &[bi])?;
        acc = cx.add(n, "biased", Op::Binary(BinaryOp::Add), &[acc, bi])?;
    }
    let f = DType::F32;
    let accf = cx.add(n, "acc_f32", Op::Cast(f), &[acc])?;
    // The weight scale is a scalar or one per output channel.
    let wst = cx.ty(ws).clone();
    let ws = if wst.rank() == 1 && wst.shape[0] != Dim::c(1) {
        let mut shape = vec![Dim::c(1); rank];
        shape[1] = wst.shape[0].clone();
        cx.add(n, "w_scale_channels", Op::Reshape { shape }, &[ws])?
    } else {
        ws
    };
    let scale = cx.add(n, "scale_xw", Op::Binary(BinaryOp::Mul), &[xs, ws])?;
    let scale = cx.add(n, "scale", Op::Binary(BinaryOp::Div), &[scale, ys])?;
    let r = cx.add(n, "scaled", Op::Binary(BinaryOp::Mul), &[accf, scale])?;
    let mut r = cx.add(n, "rounded", Op::Unary(UnaryOp::Round), &[r])?;
    if let Some(z) = yz {
        let zf = cx.add(n, "y_zero_point_f32", Op::Cast(f), &[z])?;
        r = cx.add(n, "shifted", Op::Binary(BinaryOp::Add), &[r, zf])?;
    }
    let lo_c = cx.scalar(n, "min", f, lo);
    let hi_c = cx.scalar(n, "max", f, hi);
    let c = cx.add(n, "clamp_low", Op::Binary(BinaryOp::Max), &[r, lo_c])?;
    let c = cx.add(n, "clamped", Op::Binary(BinaryOp::Min), &[c, hi_c])?;
    Ok(one(cx.add(n, "", Op::Cast(out_dtype), &[c])?))
}
