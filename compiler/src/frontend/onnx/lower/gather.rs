//! Index-driven data movement as tensor expressions: `GatherND`, `ReverseSequence`,
//! `TensorScatter` (a KV-cache write), and `Compress` with a constant condition.
//!
//! Each is one [`Op::Compute`] whose loads take coordinates read from an index tensor. Loads
//! clamp out-of-range coordinates, so where an index may fall outside (`TensorScatter`) the
//! expression selects explicitly.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Dim, Expr, NodeId, Op, Tensor};

/// `v < 0 ? v + dim : v` (i32).
fn wrap_negative(v: Expr, dim: &Dim) -> Expr {
    Expr::select(
        v.clone().cmp(BinaryOp::Less, Expr::int(0), DType::I32),
        v.clone().add(Expr::Dim(dim.clone())),
        v,
    )
}

/// The node as i32 (index tensors arrive as i32 already; other integer types are cast).
fn as_i32(cx: &mut Ctx, n: &N, suffix: &str, x: NodeId) -> Result<NodeId, OnnxError> {
    let t = cx.ty(x).clone();
    if t.dtype == DType::I32 {
        return Ok(x);
    }
    if !t.dtype.is_int() {
        return Err(n.err(format!("{suffix} must be integer, got {}", t.describe())));
    }
    cx.add(n, &format!("{suffix}_i32"), Op::Cast(DType::I32), &[x])
}

/// All coordinates of a rank-`r` output, in order.
fn coords(r: usize) -> Vec<Expr> {
    (0..r).map(Expr::Coord).collect()
}

/// `GatherND(data, indices, batch_dims)`: output `indices.shape[..-1] ++ data.shape[b + m..]`
/// where `m = indices.shape[-1]` (must be concrete).
pub(crate) fn gather_nd(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let data = cx.input(n, 0)?;
    let idx = cx.input(n, 1)?;
    let idx = as_i32(cx, n, "indices", idx)?;
    let dt = cx.ty(data).clone();
    let it = cx.ty(idx).clone();
    let b = n.attr_i("batch_dims", 0)?;
    let (r, q) = (dt.rank(), it.rank());
    if q == 0 || r == 0 {
        return Err(n.err("data and indices must have rank >= 1"));
    }
    let m = it.shape[q - 1]
        .as_const()
        .ok_or_else(|| n.err("the last dim of indices must be concrete"))? as usize;
    if b < 0 || b as usize >= q.min(r) || b as usize + m > r {
        return Err(n.err(format!(
            "batch_dims {b} with indices {} does not fit data {}",
            it.describe(),
            dt.describe()
        )));
    }
    let b = b as usize;
    if dt.shape[..b] != it.shape[..b] {
        return Err(n.err(format!(
            "the first batch_dims={b} dims of data {} and indices {} differ",
            dt.describe(),
            it.describe()
        )));
    }
    let mut shape: Vec<Dim> = it.shape[..q - 1].to_vec();
    shape.extend_from_slice(&dt.shape[b + m..]);
    let mut index: Vec<Expr> = coords(b);
    for k in 0..m {
        let mut ii = coords(q - 1);
        ii.push(Expr::int(k as i64));
        let v = Expr::Load { input: 1, index: ii };
        index.push(wrap_negative(v, &dt.shape[b + k]));
    }
    index.extend((q - 1..q - 1 + (r - b - m)).map(Expr::Coord));
    let expr = Expr::Load { input: 0, index };
    Ok(one(cx.add(
        n,
        "",
        Op::Compute {
            shape,
            dtype: dt.dtype,
            expr,
            name: "GatherND".into(),
        },
        &[data, idx],
    )?))
}

/// `ReverseSequence(x, sequence_lens)`: along `time_axis`, the first `sequence_lens[b]`
/// elements of batch `b` are reversed; the rest pass through.
pub(crate) fn reverse_sequence(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let lens = cx.input(n, 1)?;
    let lens = as_i32(cx, n, "sequence_lens", lens)?;
    let xt = cx.ty(x).clone();
    if xt.rank() < 2 {
        return Err(n.err(format!("input must have rank >= 2, got {}", xt.describe())));
    }
    let ba = n.axis(n.attr_i("batch_axis", 1)?, xt.rank(), "batch_axis")?;
    let ta = n.axis(n.attr_i("time_axis", 0)?, xt.rank(), "time_axis")?;
    if ba == ta {
        return Err(n.err("batch_axis and time_axis must differ"));
    }
    let len = Expr::Load {
        input: 1,
        index: vec![Expr::Coord(ba)],
    };
    let t = Expr::Coord(ta);
    let mut rev = coords(xt.rank());
    rev[ta] = len.clone().sub(Expr::int(1)).sub(t.clone());
    let expr = Expr::select(
        t.cmp(BinaryOp::Less, len, DType::I32),
        Expr::Load { input: 0, index: rev },
        Expr::Load {
            input: 0,
            index: coords(xt.rank()),
        },
    );
    Ok(one(cx.add(
        n,
        "",
        Op::Compute {
            shape: xt.shape.clone(),
            dtype: xt.dtype,
            expr,
            name: "ReverseSequence".into(),
        },
        &[x, lens],
    )?))
}

/// `TensorScatter(past_cache, update, write_indices?)` (opset 24): the update is written into
/// the cache along `axis` from `write_indices[b]` on (`circular` wraps around the cache length).
pub(crate) fn tensor_scatter(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let past = cx.input(n, 0)?;
    let upd = cx.input(n, 1)?;
    let wi = cx.opt_input(n, 2)?;
    let pt = cx.ty(past).clone();
    let ut = cx.ty(upd).clone();
    let r = pt.rank();
    if r < 2 || ut.rank() != r {
        return Err(n.err(format!(
            "past_cache {} and update {} must have the same rank >= 2",
            pt.describe(),
            ut.describe()
        )));
    }
    let axis = n.axis(n.attr_i("axis", -2)?, r, "axis")?;
    if axis == 0 {
        return Err(n.err("axis must not be the batch axis 0"));
    }
    let mode = n.attr_s("mode")?.unwrap_or_else(|| "linear".into());
    if mode != "linear" && mode != "circular" {
        return Err(n.err(format!("mode must be 'linear' or 'circular', got '{mode}'")));
    }
    for a in (0..r).filter(|&a| a != axis) {
        if pt.shape[a] != ut.shape[a] {
            return Err(n.err(format!(
                "past_cache {} and update {} differ in dim {a}",
                pt.describe(),
                ut.describe()
            )));
        }
    }
    let mut ins = vec![past, upd];
    let w = match wi {
        Some(w) => {
            ins.push(as_i32(cx, n, "write_indices", w)?);
            Expr::Load {
                input: 2,
                index: vec![Expr::Coord(0)],
            }
        }
        None => Expr::int(0),
    };
    let mut j = Expr::Coord(axis).sub(w);
    if mode == "circular" {
        j = j.rem(Expr::Dim(pt.shape[axis].clone()));
    }
    let inside = Expr::Binary(
        BinaryOp::And,
        Box::new(j.clone().cmp(BinaryOp::GreaterEqual, Expr::int(0), DType::I32)),
        Box::new(
            j.clone()
                .cmp(BinaryOp::Less, Expr::Dim(ut.shape[axis].clone()), DType::I32),
        ),
        DType::Bool,
    );
    let mut ui = coords(r);
    ui[axis] = j;
    let mut upd_load = Expr::Load { input: 1, index: ui };
    if ut.dtype != pt.dtype {
        upd_load = Expr::Cast(Box::new(upd_load), ut.dtype, pt.dtype);
    }
    let expr = Expr::select(
        inside,
        upd_load,
        Expr::Load {
            input: 0,
            index: coords(r),
        },
    );
    Ok(one(cx.add(
        n,
        "",
        Op::Compute {
            shape: pt.shape.clone(),
            dtype: pt.dtype,
            expr,
            name: "TensorScatter".into(),
        },
        &ins,
    )?))
}

/// `Compress(input, condition, axis?)` with a compile-time condition: a `Gather` of the kept
/// positions (of the flattened input when there is no axis).
pub(crate) fn compress(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let cond = cx.const_tensor(n, 1)?.ok_or_else(|| {
        n.needs_constant(
            1,
            "input 1 ('condition') must be a compile-time constant (it sets the output shape)",
        )
    })?;
    let xt = cx.ty(x).clone();
    let (x, axis) = match n.attr_i_opt("axis")? {
        Some(a) => (x, n.axis(a, xt.rank(), "axis")?),
        None => {
            let flat = cx.add(
                n,
                "flatten",
                Op::Reshape {
                    shape: vec![xt.numel()],
                },
                &[x],
            )?;
            (flat, 0)
        }
    };
    let len = cx.ty(x).shape[axis].as_const();
    let kept: Vec<i32> = cond
        .to_f64()
        .iter()
        .enumerate()
        .filter(|(i, &c)| c != 0.0 && len.is_none_or(|l| (*i as i64) < l))
        .map(|(i, _)| i as i32)
        .collect();
    let k = kept.len();
    let idx = cx.constant(n, "kept", Tensor::i32(vec![k], kept));
    Ok(one(cx.add(n, "", Op::Gather { axis }, &[x, idx])?))
}
