//! Softmax and normalizations: `Softmax`/`LogSoftmax` (both opset semantics),
//! `LayerNormalization`, `BatchNormalization` (inference), `InstanceNormalization`,
//! `RMSNormalization`.

use super::elementwise::with_scalar;
use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, Dim, NodeId, Op, ReduceOp, UnaryOp};

/// A constant `v` broadcast to `shape`: the LayerNorm op takes scale and bias of exactly the
/// normalized shape, so normalizations without an affine step pass ones and zeros of it.
fn filled(
    cx: &mut Ctx,
    n: &N,
    suffix: &str,
    dtype: kiln_ir::DType,
    v: f64,
    shape: &[Dim],
) -> Result<NodeId, OnnxError> {
    let s = cx.scalar(n, &format!("{suffix}_scalar"), dtype, v);
    if shape.is_empty() {
        return Ok(s);
    }
    cx.add(n, suffix, Op::Expand { shape: shape.to_vec() }, &[s])
}

/// `Softmax` / `LogSoftmax`. Before opset 13 the input is flattened to 2-D at `axis` and the
/// softmax runs over the whole trailing block; from 13 on it runs over the one axis.
pub(crate) fn softmax(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let log = n.op == "LogSoftmax";
    let shape = cx.ty(x).shape.clone();
    let rank = shape.len();
    let legacy = n.opset < 13;
    let axis = n.attr_i("axis", if legacy { 1 } else { -1 })?;
    if rank == 0 {
        return Err(n.err("input must have rank >= 1"));
    }
    let axis = n.axis(axis, rank, "axis")?;
    if !legacy || axis + 1 == rank {
        return Ok(one(cx.add(n, "", Op::Softmax { axis, log }, &[x])?));
    }
    // Flatten semantics: [prod(d[..axis]), prod(d[axis..])], softmax over axis 1, reshape back.
    let rows = Dim::product(&shape[..axis]);
    let cols = Dim::product(&shape[axis..]);
    let flat = cx.add(
        n,
        "flatten",
        Op::Reshape {
            shape: vec![rows, cols],
        },
        &[x],
    )?;
    let s = cx.add(n, "softmax", Op::Softmax { axis: 1, log }, &[flat])?;
    Ok(one(cx.add(n, "", Op::Reshape { shape }, &[s])?))
}

/// `LayerNormalization` (opset 17): normalizes axes `axis..`; bias optional.
pub(crate) fn layer_norm(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let scale = cx.input(n, 1)?;
    let dt = cx.ty(x).dtype;
    let rank = cx.ty(x).rank();
    let axis = n.axis(n.attr_i("axis", -1)?, rank, "axis")?;
    let bias = match cx.opt_input(n, 2)? {
        Some(b) => b,
        None => {
            let normalized = cx.ty(x).shape[axis..].to_vec();
            filled(cx, n, "bias", dt, 0.0, &normalized)?
        }
    };
    let epsilon = n.attr_f("epsilon", 1e-5)?;
    let y = cx.add(n, "", Op::LayerNorm { axis, epsilon }, &[x, scale, bias])?;
    let wants = |k: usize| n.proto.output.get(k).is_some_and(|s| !s.is_empty());
    if !wants(1) && !wants(2) {
        return Ok(one(y));
    }
    // Optional outputs: Mean and InvStdDev over the normalized axes (kept as size 1).
    let axes: Vec<usize> = (axis..rank).collect();
    let mean_op = Op::Reduce {
        op: ReduceOp::Mean,
        axes,
        keep_dims: true,
    };
    let mean = cx.add(n, "mean", mean_op.clone(), &[x])?;
    let centered = cx.add(n, "centered", Op::Binary(BinaryOp::Sub), &[x, mean])?;
    let sq = cx.add(n, "centered_sq", Op::Binary(BinaryOp::Mul), &[centered, centered])?;
    let var = cx.add(n, "var", mean_op, &[sq])?;
    let ve = with_scalar(cx, n, "var_eps", BinaryOp::Add, var, epsilon as f64)?;
    let inv = cx.add(n, "inv_std_dev", Op::Unary(UnaryOp::Rsqrt), &[ve])?;
    Ok(vec![Value::Node(y), Value::Node(mean), Value::Node(inv)])
}

/// Reshapes a per-channel `[C]` tensor to `[C, 1, ...]` so it broadcasts against `[N, C, ...]`.
fn per_channel(cx: &mut Ctx, n: &N, suffix: &str, v: NodeId, rank: usize) -> Result<NodeId, OnnxError> {
    let ty = cx.ty(v).clone();
    if ty.rank() != 1 {
        return Err(n.err(format!(
            "per-channel parameter '{suffix}' must be 1-D, got {}",
            ty.describe()
        )));
    }
    let mut shape = vec![ty.shape[0].clone()];
    shape.extend(std::iter::repeat_n(Dim::c(1), rank.saturating_sub(2)));
    cx.add(n, suffix, Op::Reshape { shape }, &[v])
}

/// `BatchNormalization` in inference mode: `x * s + t` with `s = scale / sqrt(var + eps)` and
/// `t = bias - mean * s` (constants fold when the statistics are initializers).
pub(crate) fn batch_norm(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let training = n.attr_i("training_mode", 0)? != 0;
    if n.attr_i("spatial", 1)? == 0 {
        return Err(n.unsupported("spatial=0 is not supported"));
    }
    let x = cx.input(n, 0)?;
    let scale = cx.input(n, 1)?;
    let bias = cx.input(n, 2)?;
    let mut mean = cx.input(n, 3)?;
    let mut var = cx.input(n, 4)?;
    let eps = n.attr_f("epsilon", 1e-5)? as f64;
    let rank = cx.ty(x).rank();
    if rank < 2 {
        return Err(n.err(format!("input X must have rank >= 2, got {}", cx.ty(x).describe())));
    }
    // Training mode: normalize with the batch statistics (population variance over every axis
    // but the channel axis) and also output the running statistics
    // `running * momentum + batch * (1 - momentum)`.
    let mut running = None;
    if training {
        let momentum = n.attr_f("momentum", 0.9)? as f64;
        let axes: Vec<usize> = (0..rank).filter(|&a| a != 1).collect();
        let reduce = |cx: &mut Ctx, suffix: &str, v: NodeId, keep_dims: bool| {
            let op = Op::Reduce {
                op: kiln_ir::ReduceOp::Mean,
                axes: axes.clone(),
                keep_dims,
            };
            cx.add(n, suffix, op, &[v])
        };
        let batch_mean_k = reduce(cx, "batch_mean_keep", x, true)?;
        let centered = cx.add(n, "centered", Op::Binary(BinaryOp::Sub), &[x, batch_mean_k])?;
        let sq = cx.add(n, "centered_sq", Op::Binary(BinaryOp::Mul), &[centered, centered])?;
        let batch_var = reduce(cx, "batch_var", sq, false)?;
        let batch_mean = reduce(cx, "batch_mean", x, false)?;
        let blend = |cx: &mut Ctx, what: &str, old: NodeId, new: NodeId| -> Result<NodeId, OnnxError> {
            let a = with_scalar(cx, n, &format!("{what}_old"), BinaryOp::Mul, old, momentum)?;
            let b = with_scalar(cx, n, &format!("{what}_new"), BinaryOp::Mul, new, 1.0 - momentum)?;
            cx.add(n, &format!("running_{what}"), Op::Binary(BinaryOp::Add), &[a, b])
        };
        let rm = blend(cx, "mean", mean, batch_mean)?;
        let rv = blend(cx, "var", var, batch_var)?;
        running = Some((rm, rv));
        mean = batch_mean;
        var = batch_var;
    }
    let ve = with_scalar(cx, n, "var_eps", BinaryOp::Add, var, eps)?;
    let inv = cx.add(n, "inv_std", Op::Unary(UnaryOp::Rsqrt), &[ve])?;
    let s = cx.add(n, "s", Op::Binary(BinaryOp::Mul), &[scale, inv])?;
    let ms = cx.add(n, "mean_s", Op::Binary(BinaryOp::Mul), &[mean, s])?;
    let t = cx.add(n, "t", Op::Binary(BinaryOp::Sub), &[bias, ms])?;
    let s = per_channel(cx, n, "scale_c", s, rank)?;
    let t = per_channel(cx, n, "shift_c", t, rank)?;
    let y = cx.add(n, "scaled", Op::Binary(BinaryOp::Mul), &[x, s])?;
    let y = cx.add(n, "", Op::Binary(BinaryOp::Add), &[y, t])?;
    Ok(match running {
        Some((rm, rv)) => vec![Value::Node(y), Value::Node(rm), Value::Node(rv)],
        None => one(y),
    })
}

/// `InstanceNormalization`: a layer norm over the spatial axes `2..`, then per-channel scale and
/// bias.
pub(crate) fn instance_norm(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let scale = cx.input(n, 1)?;
    let bias = cx.input(n, 2)?;
    let eps = n.attr_f("epsilon", 1e-5)?;
    let ty = cx.ty(x).clone();
    if ty.rank() < 3 {
        return Err(n.err(format!(
            "input must have rank >= 3 ([N, C, D...]), got {}",
            ty.describe()
        )));
    }
    let one_c = filled(cx, n, "one", ty.dtype, 1.0, &ty.shape[2..])?;
    let zero_c = filled(cx, n, "zero", ty.dtype, 0.0, &ty.shape[2..])?;
    let norm = cx.add(
        n,
        "normalized",
        Op::LayerNorm { axis: 2, epsilon: eps },
        &[x, one_c, zero_c],
    )?;
    let s = per_channel(cx, n, "scale_c", scale, ty.rank())?;
    let b = per_channel(cx, n, "bias_c", bias, ty.rank())?;
    let y = cx.add(n, "scaled", Op::Binary(BinaryOp::Mul), &[norm, s])?;
    Ok(one(cx.add(n, "", Op::Binary(BinaryOp::Add), &[y, b])?))
}

/// `RMSNormalization` (opset 23): `x / sqrt(mean(x^2 over axis..) + eps) * scale`.
pub(crate) fn rms_norm(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let scale = cx.input(n, 1)?;
    let rank = cx.ty(x).rank();
    let axis = n.axis(n.attr_i("axis", -1)?, rank, "axis")?;
    let eps = n.attr_f("epsilon", 1e-5)? as f64;
    let sq = cx.add(n, "square", Op::Binary(BinaryOp::Mul), &[x, x])?;
    let ms = cx.add(
        n,
        "mean_square",
        Op::Reduce {
            op: ReduceOp::Mean,
            axes: (axis..rank).collect(),
            keep_dims: true,
        },
        &[sq],
    )?;
    let me = with_scalar(cx, n, "mean_square_eps", BinaryOp::Add, ms, eps)?;
    let inv = cx.add(n, "inv_rms", Op::Unary(UnaryOp::Rsqrt), &[me])?;
    let y = cx.add(n, "normalized", Op::Binary(BinaryOp::Mul), &[x, inv])?;
    Ok(one(cx.add(n, "", Op::Binary(BinaryOp::Mul), &[y, scale])?))
}

/// `LpNormalization` (p = 1 or 2): `x / ||x||_p` along `axis`.
pub(crate) fn lp_norm(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let rank = cx.ty(x).rank();
    let axis = n.axis(n.attr_i("axis", -1)?, rank, "axis")?;
    let p = n.attr_i("p", 2)?;
    let sum = |cx: &mut Ctx, v| {
        cx.add(
            n,
            "sum",
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: vec![axis],
                keep_dims: true,
            },
            &[v],
        )
    };
    let norm = match p {
        1 => {
            let a = cx.add(n, "abs", Op::Unary(UnaryOp::Abs), &[x])?;
            sum(cx, a)?
        }
        2 => {
            let sq = cx.add(n, "square", Op::Binary(BinaryOp::Mul), &[x, x])?;
            let s = sum(cx, sq)?;
            cx.add(n, "norm", Op::Unary(UnaryOp::Sqrt), &[s])?
        }
        other => return Err(n.err(format!("attribute 'p' is {other}; only 1 and 2 are defined"))),
    };
    // A zero norm divides by 1 (the reference keeps zero vectors at zero).
    let dt = cx.ty(norm).dtype;
    let zero = cx.scalar(n, "zero", dt, 0.0);
    let one_c = cx.scalar(n, "one", dt, 1.0);
    let is_zero = cx.add(n, "is_zero", Op::Binary(BinaryOp::Equal), &[norm, zero])?;
    let norm = cx.add(n, "safe_norm", Op::Where, &[is_zero, one_c, norm])?;
    Ok(one(cx.add(n, "", Op::Binary(BinaryOp::Div), &[x, norm])?))
}

/// `MeanVarianceNormalization` as its ONNX function body:
/// `(x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9)` over `axes` (default `[0, 2, 3]`).
pub(crate) fn mean_variance_norm(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let rank = cx.ty(x).rank();
    let axes = n.attr_ints("axes")?.unwrap_or_else(|| vec![0, 2, 3]);
    let axes = n.axes(&axes, rank, "axis")?;
    let mean_op = Op::Reduce {
        op: ReduceOp::Mean,
        axes,
        keep_dims: true,
    };
    let m = cx.add(n, "mean", mean_op.clone(), &[x])?;
    let m2 = cx.add(n, "mean_sq", Op::Binary(BinaryOp::Mul), &[m, m])?;
    let xx = cx.add(n, "x_sq", Op::Binary(BinaryOp::Mul), &[x, x])?;
    let ex2 = cx.add(n, "e_x_sq", mean_op, &[xx])?;
    let var = cx.add(n, "var", Op::Binary(BinaryOp::Sub), &[ex2, m2])?;
    let sd = cx.add(n, "std", Op::Unary(UnaryOp::Sqrt), &[var])?;
    let sde = with_scalar(cx, n, "std_eps", BinaryOp::Add, sd, 1e-9)?;
    let c = cx.add(n, "centered", Op::Binary(BinaryOp::Sub), &[x, m])?;
    Ok(one(cx.add(n, "", Op::Binary(BinaryOp::Div), &[c, sde])?))
}

/// `GroupNormalization`: reshape `[N, C, ...]` to `[N, G, C/G * ...]`, layer-normalize axis 2,
/// reshape back, then per-channel (opset 21) or per-group (opset 18) scale and bias.
pub(crate) fn group_norm(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let scale = cx.input(n, 1)?;
    let bias = cx.input(n, 2)?;
    let eps = n.attr_f("epsilon", 1e-5)?;
    let groups = n
        .attr_i_opt("num_groups")?
        .ok_or_else(|| n.err("attribute 'num_groups' is required"))?;
    let ty = cx.ty(x).clone();
    if ty.rank() < 3 {
        return Err(n.err(format!(
            "input must have rank >= 3 ([N, C, D...]), got {}",
            ty.describe()
        )));
    }
    let g = Dim::c(groups);
    let rest = Dim::product(&ty.shape[1..])
        .exact_div(&g)
        .ok_or_else(|| n.err(format!("{} channels do not split into {groups} groups", ty.shape[1])))?;
    let grouped = cx.add(
        n,
        "grouped",
        Op::Reshape {
            shape: vec![ty.shape[0].clone(), g.clone(), rest.clone()],
        },
        &[x],
    )?;
    let one_c = filled(cx, n, "one", ty.dtype, 1.0, std::slice::from_ref(&rest))?;
    let zero_c = filled(cx, n, "zero", ty.dtype, 0.0, std::slice::from_ref(&rest))?;
    let normed = cx.add(
        n,
        "normalized",
        Op::LayerNorm { axis: 2, epsilon: eps },
        &[grouped, one_c, zero_c],
    )?;
    let per_group = cx.ty(scale).shape.first() == Some(&g) && ty.shape[1] != g;
    if per_group {
        // Opset 18: scale and bias have one value per group.
        let sg = cx.add(
            n,
            "scale_g",
            Op::Reshape {
                shape: vec![g.clone(), Dim::c(1)],
            },
            &[scale],
        )?;
        let bg = cx.add(
            n,
            "bias_g",
            Op::Reshape {
                shape: vec![g, Dim::c(1)],
            },
            &[bias],
        )?;
        let y = cx.add(n, "scaled", Op::Binary(BinaryOp::Mul), &[normed, sg])?;
        let y = cx.add(n, "shifted", Op::Binary(BinaryOp::Add), &[y, bg])?;
        return Ok(one(cx.add(
            n,
            "",
            Op::Reshape {
                shape: ty.shape.clone(),
            },
            &[y],
        )?));
    }
    let back = cx.add(
        n,
        "ungrouped",
        Op::Reshape {
            shape: ty.shape.clone(),
        },
        &[normed],
    )?;
    let s = per_channel(cx, n, "scale_c", scale, ty.rank())?;
    let b = per_channel(cx, n, "bias_c", bias, ty.rank())?;
    let y = cx.add(n, "scaled", Op::Binary(BinaryOp::Mul), &[back, s])?;
    Ok(one(cx.add(n, "", Op::Binary(BinaryOp::Add), &[y, b])?))
}

/// `Hardmax`: 1 at the first maximum along the axis (flattened to 2-D before opset 13), else 0.
pub(crate) fn hardmax(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let ty = cx.ty(x).clone();
    let rank = ty.rank();
    let legacy = n.opset < 13;
    let axis = n.axis(n.attr_i("axis", if legacy { 1 } else { -1 })?, rank, "axis")?;
    let (src, ax) = if legacy && axis + 1 != rank {
        let shape = vec![Dim::product(&ty.shape[..axis]), Dim::product(&ty.shape[axis..])];
        (cx.add(n, "flatten", Op::Reshape { shape }, &[x])?, 1)
    } else {
        (x, axis)
    };
    let sty = cx.ty(src).clone();
    let len = sty.shape[ax]
        .as_const()
        .ok_or_else(|| n.err(format!("axis {ax} of {} must be concrete (use --dim)", sty.describe())))?;
    let am = cx.add(
        n,
        "argmax",
        Op::ArgReduce {
            max: true,
            axis: ax,
            keep_dims: true,
            select_last: false,
        },
        &[src],
    )?;
    let mut iota_shape = vec![1usize; sty.rank()];
    iota_shape[ax] = len as usize;
    let iota = cx.constant(n, "iota", kiln_ir::Tensor::i32(iota_shape, (0..len as i32).collect()));
    let hit = cx.add(n, "hit", Op::Binary(BinaryOp::Equal), &[am, iota])?;
    let y = cx.add(n, if src == x { "" } else { "flat" }, Op::Cast(ty.dtype), &[hit])?;
    if src == x {
        return Ok(one(y));
    }
    Ok(one(cx.add(n, "", Op::Reshape { shape: ty.shape }, &[y])?))
}

/// `LRN`: `x / (bias + alpha / size * sum of x^2 over the channel window)^beta`, one tensor
/// expression with the window unrolled.
pub(crate) fn lrn(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    use kiln_ir::{DType, Expr};
    let x = cx.input(n, 0)?;
    let ty = cx.ty(x).clone();
    if ty.rank() < 3 || !ty.dtype.is_float() {
        return Err(n.err(format!(
            "input must be floating point [N, C, D...], got {}",
            ty.describe()
        )));
    }
    let size = n
        .attr_i_opt("size")?
        .filter(|&s| (1..=64).contains(&s))
        .ok_or_else(|| n.err("attribute 'size' must be in 1..=64"))?;
    let alpha = n.attr_f("alpha", 1e-4)? as f64;
    let beta = n.attr_f("beta", 0.75)? as f64;
    let bias = n.attr_f("bias", 1.0)? as f64;
    let dt = ty.dtype;
    let r = ty.rank();
    let lit = |v: f64| Expr::Lit(v, dt);
    let bin = |op: BinaryOp, a: Expr, b: Expr| Expr::Binary(op, Box::new(a), Box::new(b), dt);
    let at = |c: Expr| {
        let mut index: Vec<Expr> = (0..r).map(Expr::Coord).collect();
        index[1] = c;
        Expr::Load { input: 0, index }
    };
    let mut sum: Option<Expr> = None;
    for o in -((size - 1) / 2)..=(size / 2) {
        let ch = Expr::Coord(1).add(Expr::int(o));
        let valid = Expr::Binary(
            BinaryOp::And,
            Box::new(ch.clone().cmp(BinaryOp::GreaterEqual, Expr::int(0), DType::I32)),
            Box::new(
                ch.clone()
                    .cmp(BinaryOp::Less, Expr::Dim(ty.shape[1].clone()), DType::I32),
            ),
            DType::Bool,
        );
        let v = at(ch);
        let term = Expr::select(valid, bin(BinaryOp::Mul, v.clone(), v), lit(0.0));
        sum = Some(match sum {
            None => term,
            Some(s) => bin(BinaryOp::Add, s, term),
        });
    }
    let denom = bin(
        BinaryOp::Add,
        lit(bias),
        bin(BinaryOp::Mul, lit(alpha / size as f64), sum.expect("size >= 1")),
    );
    let expr = bin(BinaryOp::Div, at(Expr::Coord(1)), bin(BinaryOp::Pow, denom, lit(beta)));
    let op = Op::Compute {
        shape: ty.shape.clone(),
        dtype: dt,
        expr,
        name: "LRN".into(),
    };
    Ok(one(cx.add(n, "", op, &[x])?))
}
