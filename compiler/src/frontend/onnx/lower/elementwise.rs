//! Elementwise ops: arithmetic, comparison and logic (binary and variadic), unary math, `Where`,
//! `Cast`/`CastLike` and `Clip`.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::data;
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Expr, NodeId, Op, UnaryOp};

/// The IR binary op of an ONNX binary op type.
fn binary_op(op: &str) -> Option<BinaryOp> {
    Some(match op {
        "Add" | "Sum" => BinaryOp::Add,
        "Sub" => BinaryOp::Sub,
        "Mul" => BinaryOp::Mul,
        "Div" => BinaryOp::Div,
        "Pow" => BinaryOp::Pow,
        "Mod" => BinaryOp::Mod,
        "Min" => BinaryOp::Min,
        "Max" => BinaryOp::Max,
        "Equal" => BinaryOp::Equal,
        "Less" => BinaryOp::Less,
        "LessOrEqual" => BinaryOp::LessEqual,
        "Greater" => BinaryOp::Greater,
        "GreaterOrEqual" => BinaryOp::GreaterEqual,
        "And" => BinaryOp::And,
        "Or" => BinaryOp::Or,
        "Xor" => BinaryOp::Xor,
        _ => return None,
    })
}

/// Two-input elementwise ops with numpy broadcasting.
pub(crate) fn binary(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let a = cx.input(n, 0)?;
    let mut b = cx.input(n, 1)?;
    let op = binary_op(n.op).expect("dispatched");
    let (da, db) = (cx.ty(a).dtype, cx.ty(b).dtype);
    if op == BinaryOp::Pow && da != db {
        // Pow allows an exponent of another numeric type (opset 12+).
        b = cx.add(n, "exponent", Op::Cast(da), &[b])?;
    }
    if op == BinaryOp::Mod {
        let fmod = n.attr_i("fmod", 0)? != 0;
        if da.is_float() && !fmod {
            // Floor modulo (sign of the divisor, opset 28) as numpy: r = fmod(a, b), plus b where
            // r is non-zero and its sign differs from b's (exact, and right for infinite b).
            let r = cx.add(n, "fmod", Op::Binary(BinaryOp::Mod), &[a, b])?;
            // fmod(a, ±inf) is a; the kernels' `a - b * trunc(a / b)` gives NaN there.
            let inf = cx.scalar(n, "inf", da, f64::INFINITY);
            let b_abs = cx.add(n, "b_abs", Op::Unary(UnaryOp::Abs), &[b])?;
            let b_inf = cx.add(n, "b_is_inf", Op::Binary(BinaryOp::Equal), &[b_abs, inf])?;
            let r = cx.add(n, "fmod_inf", Op::Where, &[b_inf, a, r])?;
            let zero = cx.scalar(n, "zero", da, 0.0);
            let nz = cx.add(n, "nonzero", Op::Binary(BinaryOp::Equal), &[r, zero])?;
            let nz = cx.add(n, "is_nonzero", Op::Unary(UnaryOp::Not), &[nz])?;
            let rn = cx.add(n, "r_neg", Op::Binary(BinaryOp::Less), &[r, zero])?;
            let bn = cx.add(n, "b_neg", Op::Binary(BinaryOp::Less), &[b, zero])?;
            let differ = cx.add(n, "signs_differ", Op::Binary(BinaryOp::Xor), &[rn, bn])?;
            let fix = cx.add(n, "needs_shift", Op::Binary(BinaryOp::And), &[nz, differ])?;
            let shifted = cx.add(n, "shifted", Op::Binary(BinaryOp::Add), &[r, b])?;
            return Ok(one(cx.add(n, "", Op::Where, &[fix, shifted, r])?));
        }
        if da.is_int() && fmod {
            // C fmod on integers: a - b * trunc(a / b) (the IR's integer Div truncates).
            let q = cx.add(n, "quot", Op::Binary(BinaryOp::Div), &[a, b])?;
            let p = cx.add(n, "prod", Op::Binary(BinaryOp::Mul), &[b, q])?;
            return Ok(one(cx.add(n, "", Op::Binary(BinaryOp::Sub), &[a, p])?));
        }
    }
    Ok(one(cx.add(n, "", Op::Binary(op), &[a, b])?))
}

/// `Min`, `Max`, `Sum`, `Mean` over any number of inputs.
pub(crate) fn variadic(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let count = n.n_inputs();
    if count == 0 {
        return Err(n.err("needs at least one input"));
    }
    let op = binary_op(if n.op == "Mean" { "Sum" } else { n.op }).expect("dispatched");
    let mut acc = cx.input(n, 0)?;
    for i in 1..count {
        let x = cx.input(n, i)?;
        let suffix = if i + 1 == count && n.op != "Mean" {
            String::new()
        } else {
            format!("acc{i}")
        };
        acc = cx.add(n, &suffix, Op::Binary(op), &[acc, x])?;
    }
    if n.op == "Mean" {
        let dt = cx.ty(acc).dtype;
        let c = cx.scalar(n, "count", dt, count as f64);
        acc = cx.add(n, "", Op::Binary(BinaryOp::Div), &[acc, c])?;
    } else if count == 1 {
        return Ok(vec![cx.value(n, 0)?.cloned().expect("present")]);
    }
    Ok(one(acc))
}

/// One-input math ops that are IR unary ops.
pub(crate) fn unary(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let u = match n.op {
        "Neg" => UnaryOp::Neg,
        "Abs" => UnaryOp::Abs,
        "Exp" => UnaryOp::Exp,
        "Log" => UnaryOp::Log,
        "Sqrt" => UnaryOp::Sqrt,
        "Reciprocal" => UnaryOp::Reciprocal,
        "Sin" => UnaryOp::Sin,
        "Cos" => UnaryOp::Cos,
        "Erf" => UnaryOp::Erf,
        "Floor" => UnaryOp::Floor,
        "Ceil" => UnaryOp::Ceil,
        "Round" => UnaryOp::Round,
        "Sign" => UnaryOp::Sign,
        "Not" => UnaryOp::Not,
        "IsNaN" => UnaryOp::IsNan,
        _ => {
            return Err(OnnxError::UnsupportedOp {
                op_type: n.op.to_string(),
                node: n.name.clone(),
                domain: n.proto.domain.clone().unwrap_or_default(),
            })
        }
    };
    Ok(one(cx.add(n, "", Op::Unary(u), &[x])?))
}

/// `Where(cond, x, y)`.
pub(crate) fn where_(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let c = cx.input(n, 0)?;
    let x = cx.input(n, 1)?;
    let y = cx.input(n, 2)?;
    Ok(one(cx.add(n, "", Op::Where, &[c, x, y])?))
}

/// `Cast(x, to)` and `CastLike(x, like)`; a cast to the same IR dtype is the identity.
pub(crate) fn cast(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let to = if n.op == "CastLike" {
        let like = cx.input(n, 1)?;
        cx.ty(like).dtype
    } else {
        let to = n.attr_i_opt("to")?.ok_or_else(|| n.err("attribute 'to' is required"))?;
        data::ir_dtype(to as i32).map_err(|m| n.err(format!("attribute 'to': {m}")))?
    };
    if cx.ty(x).dtype == to {
        return Ok(one(x));
    }
    Ok(one(cx.add(n, "", Op::Cast(to), &[x])?))
}

/// `BitCast` (opset 26): reinterprets each element's bits as the same-width type `to`. Between
/// the 32-bit types (f32, i32, u32) a bit reinterpretation; between the 8-bit ones (i8, u8,
/// bool) a wrapping conversion, which keeps the bit pattern. 16- and 64-bit types are not
/// supported: Kiln holds them in 32 bits, so their bit patterns are not the ONNX ones.
pub(crate) fn bitcast(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    use super::super::proto::tensor_proto::DataType as T;
    let x = cx.input(n, 0)?;
    let to_code = n.attr_i_opt("to")?.ok_or_else(|| n.err("attribute 'to' is required"))? as i32;
    let to = data::ir_dtype(to_code).map_err(|m| n.err(format!("attribute 'to': {m}")))?;
    let wide = matches!(
        T::try_from(to_code),
        Ok(T::Int64 | T::Uint64 | T::Double | T::Int16 | T::Uint16 | T::Float16 | T::Bfloat16)
    );
    let from = cx.ty(x).dtype;
    if wide || from == DType::F16 {
        return Err(n.unsupported(format!(
            "bit casts of 16- and 64-bit types are not supported (to {}, input {}): Kiln holds them in other widths",
            data::type_name(to_code),
            cx.ty(x).describe()
        )));
    }
    if from == to {
        return Ok(one(x));
    }
    let word = |d: DType| matches!(d, DType::F32 | DType::I32 | DType::U32);
    let byte = |d: DType| matches!(d, DType::I8 | DType::U8 | DType::Bool);
    if byte(from) && byte(to) {
        return Ok(one(cx.add(n, "", Op::Cast(to), &[x])?));
    }
    if !(word(from) && word(to)) {
        return Err(n.err(format!(
            "input {} and 'to' {} differ in width",
            cx.ty(x).describe(),
            to.name()
        )));
    }
    let ty = cx.ty(x).clone();
    let load = Expr::Load {
        input: 0,
        index: (0..ty.rank()).map(Expr::Coord).collect(),
    };
    let op = Op::Compute {
        shape: ty.shape.clone(),
        dtype: to,
        expr: Expr::Bitcast(Box::new(load), from, to),
        name: "BitCast".into(),
    };
    Ok(one(cx.add(n, "", op, &[x])?))
}

/// `Clip`: bounds from attributes (opset < 11) or optional inputs (opset >= 11).
pub(crate) fn clip(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let dt = cx.ty(x).dtype;
    let (lo, hi): (Option<NodeId>, Option<NodeId>) = if n.opset < 11 {
        let lo = n.attr_f_opt("min")?.map(|v| cx.scalar(n, "min", dt, v as f64));
        let hi = n.attr_f_opt("max")?.map(|v| cx.scalar(n, "max", dt, v as f64));
        (lo, hi)
    } else {
        (cx.opt_input(n, 1)?, cx.opt_input(n, 2)?)
    };
    let mut y = x;
    if let Some(lo) = lo {
        let suffix = if hi.is_some() { "lower" } else { "" };
        y = cx.add(n, suffix, Op::Binary(BinaryOp::Max), &[y, lo])?;
    }
    if let Some(hi) = hi {
        y = cx.add(n, "", Op::Binary(BinaryOp::Min), &[y, hi])?;
    }
    Ok(one(y))
}

/// Applies a binary op to a node and a scalar constant of the node's dtype.
pub(crate) fn with_scalar(
    cx: &mut Ctx,
    n: &N,
    suffix: &str,
    op: BinaryOp,
    x: NodeId,
    v: f64,
) -> Result<NodeId, OnnxError> {
    let dt: DType = cx.ty(x).dtype;
    let c = cx.scalar(n, &format!("{suffix}_c"), dt, v);
    cx.add(n, suffix, Op::Binary(op), &[x, c])
}

/// Unary math without an IR op of its own: `Tan`, `Sinh`, `Cosh`, `IsInf`, `Shrink`.
pub(crate) fn derived_unary(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let dt = cx.ty(x).dtype;
    let un = |cx: &mut Ctx, s: &str, u: UnaryOp, v| cx.add(n, s, Op::Unary(u), &[v]);
    let bin = |cx: &mut Ctx, s: &str, b: BinaryOp, a, c| cx.add(n, s, Op::Binary(b), &[a, c]);
    let y = match n.op {
        "Tan" => {
            let s = un(cx, "sin", UnaryOp::Sin, x)?;
            let c = un(cx, "cos", UnaryOp::Cos, x)?;
            bin(cx, "", BinaryOp::Div, s, c)?
        }
        "Sinh" | "Cosh" => {
            let e = un(cx, "exp", UnaryOp::Exp, x)?;
            let nx = un(cx, "neg", UnaryOp::Neg, x)?;
            let en = un(cx, "exp_neg", UnaryOp::Exp, nx)?;
            let op = if n.op == "Sinh" { BinaryOp::Sub } else { BinaryOp::Add };
            let s = bin(cx, "sum", op, e, en)?;
            with_scalar(cx, n, "", BinaryOp::Mul, s, 0.5)?
        }
        "IsInf" => {
            let pos = n.attr_i("detect_positive", 1)? != 0;
            let neg = n.attr_i("detect_negative", 1)? != 0;
            let mut acc = None;
            for (on, v, s) in [(pos, f64::INFINITY, "pos"), (neg, f64::NEG_INFINITY, "neg")] {
                if on {
                    let c = cx.scalar(n, &format!("{s}_inf"), dt, v);
                    let e = bin(cx, &format!("is_{s}"), BinaryOp::Equal, x, c)?;
                    acc = Some(match acc {
                        None => e,
                        Some(a) => bin(cx, "", BinaryOp::Or, a, e)?,
                    });
                }
            }
            match acc {
                Some(a) => a,
                None => {
                    let f = cx.constant(n, "false", kiln_ir::Tensor::from_f64(DType::Bool, vec![], &[0.0]));
                    let shape = cx.ty(x).shape.clone();
                    cx.add(n, "", Op::Expand { shape }, &[f])?
                }
            }
        }
        "Shrink" => {
            // x < -lambd ? x + bias : (x > lambd ? x - bias : 0)
            let bias = n.attr_f("bias", 0.0)? as f64;
            let lambd = n.attr_f("lambd", 0.5)? as f64;
            let lo = cx.scalar(n, "neg_lambd", dt, -lambd);
            let hi = cx.scalar(n, "lambd", dt, lambd);
            let below = bin(cx, "below", BinaryOp::Less, x, lo)?;
            let above = bin(cx, "above", BinaryOp::Greater, x, hi)?;
            let plus = with_scalar(cx, n, "plus_bias", BinaryOp::Add, x, bias)?;
            let minus = with_scalar(cx, n, "minus_bias", BinaryOp::Sub, x, bias)?;
            let z = cx.scalar(n, "zero", dt, 0.0);
            let upper = cx.add(n, "upper", Op::Where, &[above, minus, z])?;
            cx.add(n, "", Op::Where, &[below, plus, upper])?
        }
        _ => unreachable!("dispatched"),
    };
    Ok(one(y))
}
