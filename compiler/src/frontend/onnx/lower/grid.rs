//! `GridSample` (opsets 16 and 20): samples `X [N, C, D1..Dr]` at the normalized coordinates of
//! `grid [N, O1..Or, r]` with nearest, (multi)linear or cubic interpolation and zeros, border or
//! reflection padding, as the ONNX reference does.
//!
//! Two stages of tensor expressions: one `Compute` per spatial axis turns the grid component
//! into a source coordinate (denormalized, rounded for nearest, then clamped or reflected when
//! outside the border); one `Compute` sums, over every interpolation tap, the tap's weight times
//! `X` at the tap (zero outside for zeros padding, clamped for border, reflected for
//! reflection).

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::fexpr::{add, and, bin, div, floor, lit, lt, mul, or, sub, to_f, to_i};
use kiln_ir::{BinaryOp, DType, Expr, Op, UnaryOp};

const F: DType = DType::F32;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, PartialEq)]
enum Padding {
    Zeros,
    Border,
    Reflection,
}

/// The reference's `_gs_reflect`: folds `x` back into `[lo, hi]` (any number of bounces).
fn reflect(x: Expr, lo: Expr, hi: Expr) -> Expr {
    let rng = sub(hi.clone(), lo.clone());
    // dx past the border -> (remainder r = dx - k * rng, whether k = floor(dx / rng) is even).
    let bounce = |dx: Expr| {
        let k = floor(div(dx.clone(), rng.clone()));
        let r = sub(dx, mul(k.clone(), rng.clone()));
        let even = k
            .clone()
            .cmp(BinaryOp::Equal, mul(floor(div(k, lit(2.0))), lit(2.0)), F);
        (r, even)
    };
    let (rb, eb) = bounce(sub(lo.clone(), x.clone()));
    let below = Expr::select(eb, add(lo.clone(), rb.clone()), sub(hi.clone(), rb));
    let (ra, ea) = bounce(sub(x.clone(), hi.clone()));
    let above = Expr::select(ea, sub(hi.clone(), ra.clone()), add(lo.clone(), ra));
    Expr::select(lt(x.clone(), lo), below, Expr::select(lt(hi, x.clone()), above, x))
}

/// Cubic convolution weights (A = -0.75) of the four taps at fraction `t`.
fn cubic_weights(t: Expr) -> [Expr; 4] {
    let a = -0.75;
    let outer = |s: Expr| {
        // ((a*s - 5a)*s + 8a)*s - 4a for s in [1, 2]
        sub(
            mul(
                add(mul(sub(mul(lit(a), s.clone()), lit(5.0 * a)), s.clone()), lit(8.0 * a)),
                s,
            ),
            lit(4.0 * a),
        )
    };
    let inner = |s: Expr| {
        // ((a+2)*s - (a+3))*s*s + 1 for s in [0, 1]
        add(
            mul(mul(sub(mul(lit(a + 2.0), s.clone()), lit(a + 3.0)), s.clone()), s),
            lit(1.0),
        )
    };
    [
        outer(add(t.clone(), lit(1.0))),
        inner(t.clone()),
        inner(sub(lit(1.0), t.clone())),
        outer(sub(lit(2.0), t)),
    ]
}

/// `GridSample`.
pub(crate) fn grid_sample(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let grid = cx.input(n, 1)?;
    let xt = cx.ty(x).clone();
    let gt = cx.ty(grid).clone();
    if !matches!(xt.dtype, DType::F32 | DType::F16) || !matches!(gt.dtype, DType::F32 | DType::F16) {
        return Err(n.unsupported(format!(
            "X {} and grid {} must be f32 or f16",
            xt.describe(),
            gt.describe()
        )));
    }
    let rank = xt.rank();
    if rank < 3 || gt.rank() != rank {
        return Err(n.err(format!(
            "X {} and grid {} must both have rank r + 2 (r >= 1 spatial axes)",
            xt.describe(),
            gt.describe()
        )));
    }
    let r = rank - 2;
    if gt.shape[rank - 1].as_const() != Some(r as i64) {
        return Err(n.err(format!(
            "grid {} must end in {r} coordinates for {r} spatial axes",
            gt.describe()
        )));
    }
    let mode_s = n.attr_s("mode")?.unwrap_or_else(|| "linear".into());
    let mode = match mode_s.as_str() {
        "nearest" => Mode::Nearest,
        "linear" | "bilinear" => Mode::Linear,
        "cubic" | "bicubic" => Mode::Cubic,
        m => return Err(n.unsupported(format!("attribute 'mode': '{m}' is not supported"))),
    };
    if mode == Mode::Cubic && r > 3 {
        return Err(n.unsupported(format!(
            "attribute 'mode': cubic over {r} spatial axes is not supported (at most 3)"
        )));
    }
    let padding = match n.attr_s("padding_mode")?.as_deref().unwrap_or("zeros") {
        "zeros" => Padding::Zeros,
        "border" => Padding::Border,
        "reflection" => Padding::Reflection,
        p => return Err(n.unsupported(format!("attribute 'padding_mode': '{p}' is not supported"))),
    };
    let align = n.attr_i("align_corners", 0)? != 0;

    // Per spatial axis: its length as f32, and the border [lo, hi] outside which coordinates
    // are clamped or reflected.
    let len = |i: usize| to_f(Expr::Dim(xt.shape[2 + i].clone()));
    let bounds = |i: usize| {
        if align {
            (lit(0.0), sub(len(i), lit(1.0)))
        } else {
            (lit(-0.5), sub(len(i), lit(0.5)))
        }
    };
    let load_f = |input: usize, index: Vec<Expr>, dtype: DType| {
        let e = Expr::Load { input, index };
        if dtype == F {
            e
        } else {
            Expr::Cast(Box::new(e), dtype, F)
        }
    };

    // Stage 1: the source coordinate of every output position, one tensor per spatial axis.
    let out_spatial: Vec<_> = gt.shape[1..rank - 1].to_vec();
    let mut coord_shape = vec![gt.shape[0].clone()];
    coord_shape.extend(out_spatial.iter().cloned());
    let mut coords = Vec::with_capacity(r);
    for i in 0..r {
        let mut index: Vec<Expr> = (0..=r).map(Expr::Coord).collect();
        index.push(Expr::int((r - 1 - i) as i64));
        let g = load_f(0, index, gt.dtype);
        let mut c = if align {
            mul(div(add(g, lit(1.0)), lit(2.0)), sub(len(i), lit(1.0)))
        } else {
            div(sub(mul(add(g, lit(1.0)), len(i)), lit(1.0)), lit(2.0))
        };
        if mode == Mode::Nearest {
            c = Expr::Unary(UnaryOp::Round, Box::new(c), F);
        }
        let (lo, hi) = bounds(i);
        c = match padding {
            Padding::Zeros => c,
            Padding::Border => {
                let clamped = bin(
                    BinaryOp::Min,
                    bin(BinaryOp::Max, c.clone(), lit(0.0)),
                    sub(len(i), lit(1.0)),
                );
                let outside = or(lt(c.clone(), lo), lt(hi, c.clone()));
                Expr::select(outside, clamped, c)
            }
            Padding::Reflection => reflect(c, lo, hi),
        };
        let op = Op::Compute {
            shape: coord_shape.clone(),
            dtype: F,
            expr: c,
            name: "GridSampleCoord".into(),
        };
        coords.push(cx.add(n, &format!("coord{i}"), op, &[grid])?);
    }

    // Stage 2: the weighted sum over the taps. Input 0 is X, inputs 1..=r the coordinates.
    let coord = |i: usize| Expr::Load {
        input: 1 + i,
        index: std::iter::once(Expr::Coord(0))
            .chain((0..r).map(|k| Expr::Coord(2 + k)))
            .collect(),
    };
    // Per axis: the taps as (integer index, weight).
    let mut taps: Vec<Vec<(Expr, Expr)>> = Vec::with_capacity(r);
    for i in 0..r {
        let c = coord(i);
        taps.push(match mode {
            Mode::Nearest => vec![(to_i(c), lit(1.0))],
            Mode::Linear => {
                let f = floor(c.clone());
                let w1 = sub(c, f.clone());
                let i0 = to_i(f);
                vec![(i0.clone(), sub(lit(1.0), w1.clone())), (i0.add(Expr::int(1)), w1)]
            }
            Mode::Cubic => {
                let f = floor(c.clone());
                let t = sub(c, f.clone());
                let i0 = to_i(f);
                let w = cubic_weights(t);
                w.into_iter()
                    .enumerate()
                    .map(|(k, w)| (i0.clone().add(Expr::int(k as i64 - 1)), w))
                    .collect()
            }
        });
    }
    // The value of X at one tap (integer index per axis), with the padding rule.
    let pixel = |idx: &[Expr]| {
        let mut index = vec![Expr::Coord(0), Expr::Coord(1)];
        let mut inside: Option<Expr> = None;
        for (i, e) in idx.iter().enumerate() {
            match padding {
                Padding::Zeros => {
                    let ok = and(
                        Expr::int(-1).cmp(BinaryOp::Less, e.clone(), DType::I32),
                        e.clone()
                            .cmp(BinaryOp::Less, Expr::Dim(xt.shape[2 + i].clone()), DType::I32),
                    );
                    inside = Some(match inside.take() {
                        Some(p) => and(p, ok),
                        None => ok,
                    });
                    index.push(e.clone());
                }
                // The load clamps its coordinates into range.
                Padding::Border => index.push(e.clone()),
                Padding::Reflection => {
                    let (lo, hi) = bounds(i);
                    index.push(to_i(reflect(to_f(e.clone()), lo, hi)));
                }
            }
        }
        let v = load_f(0, index, xt.dtype);
        match inside {
            Some(ok) => Expr::select(ok, v, lit(0.0)),
            None => v,
        }
    };
    let combos: usize = taps.iter().map(Vec::len).product();
    let mut sum: Option<Expr> = None;
    for combo in 0..combos {
        // Mixed-radix digits of `combo`: the tap of each axis.
        let mut rest = combo;
        let mut pick = vec![0usize; r];
        for i in (0..r).rev() {
            pick[i] = rest % taps[i].len();
            rest /= taps[i].len();
        }
        let idx: Vec<Expr> = (0..r).map(|i| taps[i][pick[i]].0.clone()).collect();
        let mut term = pixel(&idx);
        if mode != Mode::Nearest {
            for (i, &k) in pick.iter().enumerate() {
                term = mul(taps[i][k].1.clone(), term);
            }
        }
        sum = Some(match sum.take() {
            Some(s) => add(s, term),
            None => term,
        });
    }
    let mut expr = sum.expect("at least one tap");
    if xt.dtype != F {
        expr = Expr::Cast(Box::new(expr), F, xt.dtype);
    }
    let mut shape = vec![xt.shape[0].clone(), xt.shape[1].clone()];
    shape.extend(out_spatial);
    let op = Op::Compute {
        shape,
        dtype: xt.dtype,
        expr,
        name: "GridSample".into(),
    };
    let mut ins = vec![x];
    ins.extend(coords);
    Ok(one(cx.add(n, "", op, &ins)?))
}

/// `AffineGrid` (opset 20): the sampling grid `[N, *spatial, r]` of the affine maps `theta
/// [N, r, r + 1]` for the constant output `size [N, C, *spatial]` (r = 2 or 3): a constant
/// table of homogeneous base coordinates `[x, (y, z,) 1]` per output position times `thetaᵀ`.
pub(crate) fn affine_grid(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let theta = cx.input(n, 0)?;
    let tt = cx.ty(theta).clone();
    let size = cx.const_ints(n, 1, "size")?;
    if size.len() != 4 && size.len() != 5 {
        return Err(n.err(format!(
            "'size' must hold 4 (2-D) or 5 (3-D) values, got {}",
            size.len()
        )));
    }
    if size.iter().any(|&s| s <= 0 || s > i32::MAX as i64) {
        return Err(n.err(format!("'size' {size:?} must be positive")));
    }
    let spatial: Vec<usize> = size[2..].iter().map(|&s| s as usize).collect();
    let r = spatial.len();
    if tt.rank() != 3
        || tt.shape[1].as_const() != Some(r as i64)
        || tt.shape[2].as_const() != Some(r as i64 + 1)
        || tt.shape[0].as_const().is_some_and(|b| b != size[0])
    {
        return Err(n.err(format!(
            "theta {} must be [{}, {r}, {}] for 'size' {size:?}",
            tt.describe(),
            size[0],
            r + 1
        )));
    }
    let align = n.attr_i("align_corners", 0)? != 0;
    let axis_coords = |len: usize| -> Vec<f64> {
        (0..len)
            .map(|i| {
                if align {
                    if len == 1 {
                        -1.0
                    } else {
                        -1.0 + 2.0 * i as f64 / (len - 1) as f64
                    }
                } else {
                    (2 * i + 1) as f64 / len as f64 - 1.0
                }
            })
            .collect()
    };
    let per_axis: Vec<Vec<f64>> = spatial.iter().map(|&l| axis_coords(l)).collect();
    let points: usize = spatial.iter().product();
    super::shape::check_folded_count(n, (points * (r + 1)) as f64, "the base grid")?;
    let mut base = Vec::with_capacity(points * (r + 1));
    for p in 0..points {
        // Spatial index of point p (row-major), then [x, y, (z,) 1] = reversed axes.
        let mut rest = p;
        let mut idx = vec![0usize; r];
        for a in (0..r).rev() {
            idx[a] = rest % spatial[a];
            rest /= spatial[a];
        }
        for a in (0..r).rev() {
            base.push(per_axis[a][idx[a]]);
        }
        base.push(1.0);
    }
    let base = cx.constant(
        n,
        "base",
        kiln_ir::Tensor::from_f64(tt.dtype, vec![points, r + 1], &base),
    );
    let theta_t = cx.add(n, "theta_t", Op::Transpose { perm: vec![0, 2, 1] }, &[theta])?;
    let grid = cx.add(n, "matmul", Op::MatMul, &[base, theta_t])?;
    let mut shape = vec![tt.shape[0].clone()];
    shape.extend(spatial.iter().map(|&s| kiln_ir::Dim::c(s as i64)));
    shape.push(kiln_ir::Dim::c(r as i64));
    Ok(one(cx.add(n, "", Op::Reshape { shape }, &[grid])?))
}
