//! `DeformConv` (opset 19): a 2-D convolution whose kernel taps are moved by learned
//! per-position `offset`s (and optionally scaled by a `mask`), as in deformable convolution
//! networks v1/v2.
//!
//! Lowered as im2col followed by a matrix product: one `Compute` samples `X` bilinearly at every
//! shifted tap, `cols [N, C, kH, kW, oH, oW]` (zero outside the image, times the mask), then a
//! batched `MatMul` of the grouped weights `[G, OC/G, C/G·kH·kW]` with `cols` regrouped to
//! `[N, G, C/G·kH·kW, oH·oW]`, plus the bias.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::fexpr::{add, and, as_f32, floor, lit, mul, sub, to_f, to_i};
use kiln_ir::{BinaryOp, DType, Dim, Expr, Op};

/// `DeformConv`.
pub(crate) fn deform_conv(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let w = cx.input(n, 1)?;
    let offset = cx.input(n, 2)?;
    let bias = cx.opt_input(n, 3)?;
    let mask = cx.opt_input(n, 4)?;
    let xt = cx.ty(x).clone();
    let wt = cx.ty(w).clone();
    let ot = cx.ty(offset).clone();
    if !matches!(xt.dtype, DType::F32 | DType::F16) {
        return Err(n.err(format!("X must be f32 or f16, got {}", xt.describe())));
    }
    if xt.rank() != 4 {
        return Err(n.unsupported(format!(
            "only 2-D deformable convolution (X [N, C, H, W]) is supported, got X {}",
            xt.describe()
        )));
    }
    let const_dims = |what: &str, t: &kiln_ir::TensorType| {
        t.const_shape().ok_or_else(|| {
            n.err(format!(
                "{what} {} needs a concrete shape (bind its dims with --dim)",
                t.describe()
            ))
        })
    };
    let xs = const_dims("X", &xt)?;
    let ws = const_dims("W", &wt)?;
    let os = const_dims("offset", &ot)?;
    let (batch, c, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    if ws.len() != 4 {
        return Err(n.err(format!("W must be [OC, C/group, kH, kW], got {}", wt.describe())));
    }
    let kernel = match n.attr_ints("kernel_shape")? {
        Some(k) if k.len() == 2 && k.iter().all(|&v| v > 0) => [k[0] as usize, k[1] as usize],
        Some(k) => return Err(n.err(format!("kernel_shape {k:?} must hold two positive values"))),
        None => [ws[2], ws[3]],
    };
    if kernel != [ws[2], ws[3]] {
        return Err(n.err(format!(
            "kernel_shape {kernel:?} differs from W's kernel {:?}",
            &ws[2..]
        )));
    }
    let pair = |name: &str, default: i64| -> Result<[i64; 2], OnnxError> {
        match n.attr_ints(name)? {
            None => Ok([default; 2]),
            Some(v) if v.len() == 2 => Ok([v[0], v[1]]),
            Some(v) => Err(n.err(format!("attribute '{name}' {v:?} must hold 2 values"))),
        }
    };
    let strides = pair("strides", 1)?;
    let dil = pair("dilations", 1)?;
    let pads = match n.attr_ints("pads")? {
        None => [0i64; 4],
        Some(p) if p.len() == 4 => [p[0], p[1], p[2], p[3]],
        Some(p) => return Err(n.err(format!("attribute 'pads' {p:?} must hold 4 values"))),
    };
    if strides.iter().chain(&dil).any(|&v| v < 1) || pads.iter().any(|&p| p < 0) {
        return Err(n.err(format!(
            "strides {strides:?} and dilations {dil:?} must be positive, pads {pads:?} non-negative"
        )));
    }
    let group = n.attr_i("group", 1)?;
    let ogroup = n.attr_i("offset_group", 1)?;
    if group < 1 || ogroup < 1 {
        return Err(n.err(format!("group {group} and offset_group {ogroup} must be positive")));
    }
    let (group, ogroup) = (group as usize, ogroup as usize);
    let oc = ws[0];
    if ws[1] * group != c || oc % group != 0 || c % ogroup != 0 {
        return Err(n.err(format!(
            "X {} and W {} do not fit group {group} and offset_group {ogroup}",
            xt.describe(),
            wt.describe()
        )));
    }
    let out_len = |i: usize, len: usize| -> i64 {
        let span = (kernel[i] as i64 - 1) * dil[i] + 1;
        (len as i64 + pads[i] + pads[i + 2] - span) / strides[i] + 1
    };
    let (oh, ow) = (out_len(0, h), out_len(1, wd));
    let taps = kernel[0] * kernel[1];
    if oh < 1 || ow < 1 {
        return Err(n.err(format!(
            "the output would be empty ({oh}x{ow}) for X {} and kernel {kernel:?}",
            xt.describe()
        )));
    }
    let want_off = [batch, ogroup * taps * 2, oh as usize, ow as usize];
    if os != want_off {
        return Err(n.err(format!("offset {} must be {want_off:?}", ot.describe())));
    }
    if let Some(m) = mask {
        let want = [batch, ogroup * taps, oh as usize, ow as usize];
        if cx.ty(m).const_shape().as_deref() != Some(&want[..]) {
            return Err(n.err(format!("mask {} must be {want:?}", cx.ty(m).describe())));
        }
    }

    // im2col with bilinear sampling: coordinates (n, c, i, j, y, x).
    let c_per_og = (c / ogroup) as i64;
    let og = Expr::Coord(1).div(Expr::int(c_per_og));
    let tap = og
        .mul(Expr::int(kernel[0] as i64))
        .add(Expr::Coord(2))
        .mul(Expr::int(kernel[1] as i64))
        .add(Expr::Coord(3));
    let at = |input: usize, ch: Expr, dtype: DType| {
        as_f32(
            Expr::Load {
                input,
                index: vec![Expr::Coord(0), ch, Expr::Coord(4), Expr::Coord(5)],
            },
            dtype,
        )
    };
    let base = |axis: usize, kc: usize| {
        Expr::Coord(4 + axis)
            .mul(Expr::int(strides[axis]))
            .add(Expr::int(-pads[axis]))
            .add(Expr::Coord(kc).mul(Expr::int(dil[axis])))
    };
    let py = add(to_f(base(0, 2)), at(1, tap.clone().mul(Expr::int(2)), ot.dtype));
    let px = add(
        to_f(base(1, 3)),
        at(1, tap.clone().mul(Expr::int(2)).add(Expr::int(1)), ot.dtype),
    );
    let (fy, fx) = (floor(py.clone()), floor(px.clone()));
    let (ly, lx) = (sub(py, fy.clone()), sub(px, fx.clone()));
    let (y0, x0) = (to_i(fy), to_i(fx));
    let inside = |v: &Expr, len: usize| {
        and(
            Expr::int(-1).cmp(BinaryOp::Less, v.clone(), DType::I32),
            v.clone().cmp(BinaryOp::Less, Expr::int(len as i64), DType::I32),
        )
    };
    let mut sum: Option<Expr> = None;
    for (dy, wy) in [(0, sub(lit(1.0), ly.clone())), (1, ly)] {
        for (dx, wx) in [(0, sub(lit(1.0), lx.clone())), (1, lx.clone())] {
            let yy = y0.clone().add(Expr::int(dy));
            let xx = x0.clone().add(Expr::int(dx));
            let v = as_f32(
                Expr::Load {
                    input: 0,
                    index: vec![Expr::Coord(0), Expr::Coord(1), yy.clone(), xx.clone()],
                },
                xt.dtype,
            );
            let v = Expr::select(and(inside(&yy, h), inside(&xx, wd)), v, lit(0.0));
            let term = mul(mul(wy.clone(), wx), v);
            sum = Some(match sum.take() {
                Some(s) => add(s, term),
                None => term,
            });
        }
    }
    let mut expr = sum.expect("four taps");
    let mut ins = vec![x, offset];
    if let Some(m) = mask {
        expr = mul(expr, at(2, tap, cx.ty(m).dtype));
        ins.push(m);
    }
    if xt.dtype != DType::F32 {
        expr = Expr::Cast(Box::new(expr), DType::F32, xt.dtype);
    }
    let d = |v: usize| Dim::c(v as i64);
    let cols_shape = vec![
        d(batch),
        d(c),
        d(kernel[0]),
        d(kernel[1]),
        d(oh as usize),
        d(ow as usize),
    ];
    let cols = cx.add(
        n,
        "cols",
        Op::Compute {
            shape: cols_shape,
            dtype: xt.dtype,
            expr,
            name: "DeformConvCols".into(),
        },
        &ins,
    )?;
    let k = (c / group) * taps;
    let p = (oh * ow) as usize;
    let cols = cx.add(
        n,
        "cols_grouped",
        Op::Reshape {
            shape: vec![d(batch), d(group), d(k), d(p)],
        },
        &[cols],
    )?;
    let wg = cx.add(
        n,
        "weight_grouped",
        Op::Reshape {
            shape: vec![d(group), d(oc / group), d(k)],
        },
        &[w],
    )?;
    let wg = if wt.dtype == xt.dtype {
        wg
    } else {
        cx.add(n, "weight_cast", Op::Cast(xt.dtype), &[wg])?
    };
    let y = cx.add(n, "matmul", Op::MatMul, &[wg, cols])?;
    let mut y = cx.add(
        n,
        if bias.is_some() { "unbiased" } else { "" },
        Op::Reshape {
            shape: vec![d(batch), d(oc), d(oh as usize), d(ow as usize)],
        },
        &[y],
    )?;
    if let Some(b) = bias {
        let bt = cx.ty(b).clone();
        if bt.const_shape().as_deref() != Some(&[oc][..]) {
            return Err(n.err(format!("B {} must be [{oc}]", bt.describe())));
        }
        let b = cx.add(
            n,
            "bias",
            Op::Reshape {
                shape: vec![d(oc), d(1), d(1)],
            },
            &[b],
        )?;
        let b = if bt.dtype == xt.dtype {
            b
        } else {
            cx.add(n, "bias_cast", Op::Cast(xt.dtype), &[b])?
        };
        y = cx.add(n, "", Op::Binary(BinaryOp::Add), &[y, b])?;
    }
    Ok(one(y))
}
