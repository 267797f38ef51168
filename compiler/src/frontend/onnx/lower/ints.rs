//! Shape arithmetic on compile-time integer tensors ([`Ints`]): the ops that shape computations
//! use (`Gather`, `Concat`, `Unsqueeze`, `Slice`, `Mul`, ...) evaluated on dims, so that
//! `Shape -> Gather -> Concat -> Reshape` chains resolve even when a dim is symbolic.
//!
//! [`try_lower`] declines (returns `None`) whenever an input is not a compile-time integer tensor
//! or the op/case is not one it handles; the regular lowering then runs.

use super::shape::{reshape_target, slice_axes, squeeze_shape, unsqueeze_shape};
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::data;
use crate::frontend::onnx::value::{Ints, Value};
use crate::frontend::onnx::OnnxError;
use kiln_ir::infer::resolve_slice;
use kiln_ir::tensor::strides;
use kiln_ir::{DType, Dim};

/// Largest compile-time integer tensor this module produces.
const LIMIT: usize = 1 << 16;

/// Lowers `n` on compile-time integers if every data input is one; `None` declines.
pub(crate) fn try_lower(cx: &mut Ctx, n: &N) -> Result<Option<Vec<Value>>, OnnxError> {
    let data_inputs = match n.op {
        "Identity" | "Cast" | "Unsqueeze" | "Squeeze" | "Flatten" | "Slice" | "Neg" | "Abs" => 1,
        "Gather" | "Reshape" | "Add" | "Sub" | "Mul" | "Div" | "Mod" => 2,
        "Equal" | "Less" | "LessOrEqual" | "Greater" | "GreaterOrEqual" | "And" | "Or" => 2,
        "Not" => 1,
        "Where" => 3,
        "Concat" | "Max" | "Min" => n.n_inputs(),
        _ => return Ok(None),
    };
    let mut ins = Vec::with_capacity(data_inputs);
    for i in 0..data_inputs {
        match cx.ints(n, i)? {
            Some(v) => ins.push(v),
            None => return Ok(None),
        }
    }
    if ins.is_empty() {
        return Ok(None);
    }
    let arithmetic = matches!(
        n.op,
        "Neg" | "Abs" | "Add" | "Sub" | "Mul" | "Div" | "Mod" | "Max" | "Min"
    );
    let ordering = matches!(n.op, "Less" | "LessOrEqual" | "Greater" | "GreaterOrEqual");
    if (arithmetic || ordering) && ins.iter().any(|v| v.boolean) {
        return Ok(None);
    }
    let out = match n.op {
        "Identity" => Some(ins[0].clone()),
        "Cast" => {
            let to = n.attr_i("to", 0)? as i32;
            match data::ir_dtype(to) {
                Ok(DType::I32) => Some(ins[0].with_elems(ins[0].elems.clone())),
                Ok(DType::Bool) => ins[0].consts().map(|v| {
                    let mut b = ins[0].with_elems(v.iter().map(|&x| Dim::c((x != 0) as i64)).collect());
                    b.boolean = true;
                    b
                }),
                _ => None,
            }
        }
        "Neg" => Some(ins[0].with_elems(ins[0].elems.iter().map(|d| Dim::c(0).sub(d)).collect())),
        "Abs" => ins[0]
            .consts()
            .map(|v| Ints::from_i64(ins[0].shape.clone(), &v.iter().map(|x| x.abs()).collect::<Vec<_>>())),
        "Unsqueeze" | "Squeeze" | "Flatten" | "Reshape" => {
            let x = &ins[0];
            let dims: Vec<Dim> = x.shape.iter().map(|&d| Dim::from(d)).collect();
            let new = match n.op {
                "Unsqueeze" => unsqueeze_shape(cx, n, &dims)?,
                "Squeeze" => squeeze_shape(cx, n, &dims)?,
                "Flatten" => {
                    let r = dims.len() as i64;
                    let a = n.attr_i("axis", 1)?;
                    let a = if a < 0 { a + r } else { a };
                    if !(0..=r).contains(&a) {
                        return Ok(None);
                    }
                    let a = a as usize;
                    vec![Dim::product(&dims[..a]), Dim::product(&dims[a..])]
                }
                _ => reshape_target(n, &dims, &ins[1].elems, n.attr_i("allowzero", 0)? != 0)?,
            };
            let shape: Option<Vec<usize>> = new.iter().map(|d| d.as_const().map(|v| v as usize)).collect();
            match shape {
                Some(s) if s.iter().product::<usize>() == x.elems.len() => Some(Ints {
                    shape: s,
                    elems: x.elems.clone(),
                    boolean: x.boolean,
                }),
                _ => return Err(n.err(format!("cannot reshape {} elements to {new:?}", x.elems.len()))),
            }
        }
        "Gather" => gather(n, &ins[0], &ins[1])?,
        "Concat" => concat(n, &ins)?,
        "Slice" => {
            let x = &ins[0];
            if x.shape.len() != 1 {
                None
            } else {
                let axes = slice_axes(cx, n, 1)?;
                let mut elems = Vec::new();
                if let Some(s) = axes.first() {
                    let (start, len) = resolve_slice(x.elems.len() as i64, s);
                    for k in 0..len {
                        elems.push(x.elems[(start + k * s.step) as usize].clone());
                    }
                } else {
                    elems = x.elems.clone();
                }
                let mut v = Ints::vec(elems);
                v.boolean = x.boolean;
                Some(v)
            }
        }
        "Equal" | "Less" | "LessOrEqual" | "Greater" | "GreaterOrEqual" => {
            if ins[0].boolean != ins[1].boolean {
                return Ok(None);
            }
            let op = n.op;
            zip(&ins[0], &ins[1], |a, b| {
                let o = compare(a, b)?;
                let t = match op {
                    "Equal" => o.is_eq(),
                    "Less" => o.is_lt(),
                    "LessOrEqual" => o.is_le(),
                    "Greater" => o.is_gt(),
                    _ => o.is_ge(),
                };
                Some(Dim::c(t as i64))
            })
            .map(|mut v| {
                v.boolean = true;
                v
            })
        }
        "And" | "Or" | "Not" => {
            if !ins.iter().all(|v| v.boolean) {
                return Ok(None);
            }
            let is = |d: &Dim| d.as_const().map(|c| c != 0);
            let r = match n.op {
                "Not" => ins[0]
                    .consts()
                    .map(|v| ins[0].with_elems(v.iter().map(|&x| Dim::c((x == 0) as i64)).collect())),
                "And" => zip(&ins[0], &ins[1], |a, b| Some(Dim::c((is(a)? && is(b)?) as i64))),
                _ => zip(&ins[0], &ins[1], |a, b| Some(Dim::c((is(a)? || is(b)?) as i64))),
            };
            r.map(|mut v| {
                v.boolean = true;
                v
            })
        }
        "Where" => {
            if !ins[0].boolean || ins[1].boolean != ins[2].boolean {
                return Ok(None);
            }
            zip_n(&[&ins[0], &ins[1], &ins[2]], |e| match e[0].as_const()? {
                0 => Some(e[2].clone()),
                _ => Some(e[1].clone()),
            })
            .map(|mut v| {
                v.boolean = ins[1].boolean;
                v
            })
        }
        "Add" => zip(&ins[0], &ins[1], |a, b| Some(a.add(b))),
        "Sub" => zip(&ins[0], &ins[1], |a, b| Some(a.sub(b))),
        "Mul" => zip(&ins[0], &ins[1], |a, b| Some(a.mul(b))),
        "Div" => zip(&ins[0], &ins[1], |a, b| match (a.as_const(), b.as_const()) {
            (Some(x), Some(y)) if y != 0 => Some(Dim::c(x / y)),
            (_, Some(0)) => None,
            _ => a.exact_div(b),
        }),
        "Mod" => {
            let fmod = n.attr_i("fmod", 0)? != 0;
            zip(&ins[0], &ins[1], |a, b| match (a.as_const(), b.as_const()) {
                (Some(x), Some(y)) if y != 0 => Some(Dim::c(int_mod(x, y, fmod))),
                _ => None,
            })
        }
        "Max" | "Min" => {
            let max = n.op == "Max";
            let mut acc = Some(ins[0].clone());
            for b in &ins[1..] {
                acc = acc.and_then(|a| {
                    zip(&a, b, |x, y| match (x.as_const(), y.as_const()) {
                        (Some(p), Some(q)) => Some(Dim::c(if max { p.max(q) } else { p.min(q) })),
                        _ if x == y => Some(x.clone()),
                        _ => None,
                    })
                });
            }
            acc
        }
        _ => None,
    };
    Ok(out.filter(|v| v.elems.len() <= LIMIT).map(|v| vec![Value::Ints(v)]))
}

/// Integer remainder: C `fmod` semantics, or (ONNX default) the sign of the divisor.
fn int_mod(x: i64, y: i64, fmod: bool) -> i64 {
    let r = x % y;
    if !fmod && r != 0 && ((r < 0) != (y < 0)) {
        r + y
    } else {
        r
    }
}

/// Orders two dims when that is decidable: their difference is a constant, or one is a negative
/// constant and the other symbolic (symbolic dims are sizes, never negative).
fn compare(a: &Dim, b: &Dim) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    if let Some(c) = a.sub(b).as_const() {
        return Some(c.cmp(&0));
    }
    match (a.as_const(), b.as_const()) {
        (None, Some(c)) if c < 0 => Some(Ordering::Greater),
        (Some(c), None) if c < 0 => Some(Ordering::Less),
        _ => None,
    }
}

/// Elementwise `f` of two operands with numpy broadcasting.
fn zip(a: &Ints, b: &Ints, f: impl Fn(&Dim, &Dim) -> Option<Dim>) -> Option<Ints> {
    zip_n(&[a, b], |e| f(e[0], e[1]))
}

/// Elementwise `f` with numpy broadcasting; `None` if shapes do not broadcast or `f` declines.
fn zip_n(ins: &[&Ints], f: impl Fn(&[&Dim]) -> Option<Dim>) -> Option<Ints> {
    let rank = ins.iter().map(|v| v.shape.len()).max().unwrap_or(0);
    let padded: Vec<Vec<usize>> = ins
        .iter()
        .map(|v| {
            let mut p = vec![1usize; rank - v.shape.len()];
            p.extend_from_slice(&v.shape);
            p
        })
        .collect();
    let mut shape = vec![1usize; rank];
    for p in &padded {
        for (o, &d) in shape.iter_mut().zip(p) {
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    let st: Vec<Vec<usize>> = padded.iter().map(|p| strides(p)).collect();
    let total: usize = shape.iter().product();
    let mut elems = Vec::with_capacity(total);
    let mut coord = vec![0usize; rank];
    let mut args: Vec<&Dim> = Vec::with_capacity(ins.len());
    for _ in 0..total {
        args.clear();
        for (k, v) in ins.iter().enumerate() {
            let off: usize = (0..rank)
                .map(|i| if padded[k][i] == 1 { 0 } else { coord[i] * st[k][i] })
                .sum();
            args.push(&v.elems[off]);
        }
        elems.push(f(&args)?);
        for ax in (0..rank).rev() {
            coord[ax] += 1;
            if coord[ax] < shape[ax] {
                break;
            }
            coord[ax] = 0;
        }
    }
    Some(Ints {
        shape,
        elems,
        boolean: false,
    })
}

/// `Gather` on compile-time integers (indices must be constants).
fn gather(n: &N, data: &Ints, idx: &Ints) -> Result<Option<Ints>, OnnxError> {
    if data.shape.is_empty() {
        return Err(n.err("data must have rank >= 1"));
    }
    let axis = n.axis(n.attr_i("axis", 0)?, data.shape.len(), "axis")?;
    let Some(ix) = idx.consts() else {
        return Ok(None);
    };
    let outer: usize = data.shape[..axis].iter().product();
    let len = data.shape[axis];
    let inner: usize = data.shape[axis + 1..].iter().product();
    let mut elems = Vec::new();
    for o in 0..outer {
        for &i in &ix {
            let k = if i < 0 { i + len as i64 } else { i };
            if k < 0 || k >= len as i64 {
                return Err(n.err(format!("index {i} is out of range for axis {axis} of size {len}")));
            }
            let base = (o * len + k as usize) * inner;
            elems.extend_from_slice(&data.elems[base..base + inner]);
        }
    }
    let mut shape = data.shape[..axis].to_vec();
    shape.extend_from_slice(&idx.shape);
    shape.extend_from_slice(&data.shape[axis + 1..]);
    Ok(Some(Ints {
        shape,
        elems,
        boolean: data.boolean,
    }))
}

/// `Concat` on compile-time integers.
fn concat(n: &N, ins: &[Ints]) -> Result<Option<Ints>, OnnxError> {
    let rank = ins[0].shape.len();
    let axis = n.axis(
        n.attr_i_opt("axis")?
            .ok_or_else(|| n.err("attribute 'axis' is required"))?,
        rank,
        "axis",
    )?;
    for (k, x) in ins.iter().enumerate() {
        let same = x.shape.len() == rank && (0..rank).all(|i| i == axis || x.shape[i] == ins[0].shape[i]);
        if !same {
            return Err(n.err(format!(
                "input {k} has shape {:?} but input 0 has {:?}",
                x.shape, ins[0].shape
            )));
        }
    }
    let outer: usize = ins[0].shape[..axis].iter().product();
    let mut elems = Vec::new();
    for o in 0..outer {
        for x in ins {
            let chunk: usize = x.shape[axis..].iter().product();
            elems.extend_from_slice(&x.elems[o * chunk..(o + 1) * chunk]);
        }
    }
    let mut shape = ins[0].shape.clone();
    shape[axis] = ins.iter().map(|x| x.shape[axis]).sum();
    if ins.iter().any(|x| x.boolean != ins[0].boolean) {
        return Ok(None);
    }
    Ok(Some(Ints {
        shape,
        elems,
        boolean: ins[0].boolean,
    }))
}
