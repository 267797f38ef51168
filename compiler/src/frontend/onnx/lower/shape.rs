//! Data movement and shape ops: `Constant`, `Identity`/`Dropout`, `Reshape`, `Transpose`,
//! `Flatten`, `Squeeze`/`Unsqueeze`, `Concat`, `Split`, `Slice`, `Gather`, `Expand`, `Tile`,
//! `Shape`/`Size`, `ConstantOfShape`, `Range`, `Trilu`.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::data::{self, Literal};
use crate::frontend::onnx::value::{Ints, Value};
use crate::frontend::onnx::OnnxError;
use kiln_ir::infer::SLICE_END_MAX;
use kiln_ir::{BinaryOp, DType, Dim, Expr, NodeId, Op, SliceAxis, Tensor};

/// `Constant`: a tensor or one of the `value_*` attributes.
pub(crate) fn constant(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let out = n.proto.output.first().cloned().unwrap_or_else(|| n.name.clone());
    if let Some(t) = n.attr_t("value")? {
        return Ok(vec![cx.literal(&out, t)?]);
    }
    if let Some(v) = n.attr_f_opt("value_float")? {
        return Ok(one(cx.g.add_const(&out, Tensor::scalar(DType::F32, v as f64))));
    }
    if let Some(v) = n.attr_floats("value_floats")? {
        return Ok(one(cx.g.add_const(&out, Tensor::f32(vec![v.len()], v))));
    }
    if let Some(v) = n.attr_i_opt("value_int")? {
        return Ok(vec![Value::Ints(Ints::scalar(Dim::c(v)))]);
    }
    if let Some(v) = n.attr_ints("value_ints")? {
        return Ok(vec![Value::Ints(Ints::from_i64(vec![v.len()], &v))]);
    }
    if n.has_attr("sparse_value") {
        return Err(n.unsupported("attribute 'sparse_value': sparse constants are not supported"));
    }
    if n.has_attr("value_string") || n.has_attr("value_strings") {
        return Err(n.unsupported("string constants are not supported"));
    }
    Err(n.err("has no value attribute"))
}

/// `Identity` and `Dropout` (inference: the input; the optional mask is all true).
pub(crate) fn identity(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let v = cx
        .value(n, 0)?
        .cloned()
        .ok_or_else(|| n.err("input 0 is required but missing"))?;
    if n.op == "Dropout" && cx.has_input(n, 2) {
        match cx.const_tensor(n, 2)?.map(|t| t.to_f64().iter().any(|&x| x != 0.0)) {
            Some(false) => {}
            Some(true) => {
                // Training mode drops nothing only with ratio 0 (the default is 0.5).
                let ratio = if cx.has_input(n, 1) {
                    match cx.const_tensor(n, 1)? {
                        Some(t) => t.to_f64().first().copied().unwrap_or(0.5),
                        None => {
                            return Err(n.needs_constant(
                                1,
                                "input 1 ('ratio') must be a compile-time constant in training mode (only ratio 0 is supported)",
                            ))
                        }
                    }
                } else {
                    0.5
                };
                if ratio != 0.0 {
                    return Err(n.unsupported(format!(
                        "training_mode=true with ratio {ratio}: random dropout is not supported (only ratio 0)"
                    )));
                }
            }
            None => {
                return Err(n.needs_constant(
                    2,
                    "input 2 ('training_mode') must be a compile-time constant (false: training-mode dropout is not supported)",
                ));
            }
        }
    }
    let mut outs = vec![v];
    if n.op == "Dropout" && n.proto.output.get(1).is_some_and(|s| !s.is_empty()) {
        let shape = cx.input_shape(n, 0)?;
        let t = cx.constant(n, "true", Tensor::from_f64(DType::Bool, vec![], &[1.0]));
        outs.push(Value::Node(cx.add(n, "mask", Op::Expand { shape }, &[t])?));
    }
    Ok(outs)
}

/// Resolves a reshape target: 0 copies the input dim (unless `allowzero`), one -1 takes what is
/// left (exact division of dims, symbolic included).
pub(crate) fn reshape_target(n: &N, input: &[Dim], spec: &[Dim], allowzero: bool) -> Result<Vec<Dim>, OnnxError> {
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, d) in spec.iter().enumerate() {
        match d.as_const() {
            Some(0) if !allowzero => out.push(input.get(i).cloned().ok_or_else(|| {
                n.err(format!(
                    "shape {spec:?} copies dim {i} (0) but the input has rank {}",
                    input.len()
                ))
            })?),
            Some(-1) => {
                if infer_at.replace(i).is_some() {
                    return Err(n.err(format!("shape {spec:?} has more than one -1")));
                }
                out.push(Dim::c(1));
            }
            Some(v) if v < 0 => return Err(n.err(format!("shape {spec:?} has invalid dim {v}"))),
            _ => out.push(d.clone()),
        }
    }
    if let Some(i) = infer_at {
        let total = Dim::product(input);
        let known = Dim::product(&out);
        out[i] = total.exact_div(&known).filter(|_| known != Dim::c(0)).ok_or_else(|| {
            n.err(format!(
                "cannot infer the -1 in shape [{}]: {} elements are not divisible by {}",
                spec.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
                total,
                known
            ))
        })?;
    }
    Ok(out)
}

/// `Reshape` with the target shape from a compile-time (possibly symbolic) integer tensor.
pub(crate) fn reshape(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let spec = cx.ints(n, 1)?.ok_or_else(|| {
        n.needs_constant(
            1,
            "input 1 ('shape') must be known at compile time (a compile-time constant or a shape computation)",
        )
    })?;
    let allowzero = n.attr_i("allowzero", 0)? != 0;
    let in_shape = cx.ty(x).shape.clone();
    let shape = reshape_target(n, &in_shape, &spec.elems, allowzero)?;
    if shape == in_shape {
        return Ok(one(x));
    }
    Ok(one(cx.add(n, "", Op::Reshape { shape }, &[x])?))
}

/// `Transpose` (default: reverse the axes).
pub(crate) fn transpose(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let rank = cx.ty(x).rank();
    let perm = match n.attr_ints("perm")? {
        Some(p) => p
            .iter()
            .map(|&a| n.axis(a, rank, "perm entry"))
            .collect::<Result<Vec<_>, _>>()?,
        None => (0..rank).rev().collect(),
    };
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(one(x));
    }
    Ok(one(cx.add(n, "", Op::Transpose { perm }, &[x])?))
}

/// `Flatten`: `[prod(d[..axis]), prod(d[axis..])]`.
pub(crate) fn flatten(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let shape = cx.ty(x).shape.clone();
    let r = shape.len() as i64;
    let axis = n.attr_i("axis", 1)?;
    let axis = if axis < 0 { axis + r } else { axis };
    if !(0..=r).contains(&axis) {
        return Err(n.err(format!("axis {axis} is out of range for rank {r}")));
    }
    let a = axis as usize;
    let target = vec![Dim::product(&shape[..a]), Dim::product(&shape[a..])];
    if target == shape {
        return Ok(one(x));
    }
    Ok(one(cx.add(n, "", Op::Reshape { shape: target }, &[x])?))
}

/// Axes of `Squeeze`/`Unsqueeze`: an attribute before opset 13, an input from 13.
fn squeeze_axes(cx: &Ctx, n: &N) -> Result<Option<Vec<i64>>, OnnxError> {
    if n.opset >= 13 {
        if cx.has_input(n, 1) {
            Ok(Some(cx.const_ints(n, 1, "axes")?))
        } else {
            Ok(None)
        }
    } else {
        n.attr_ints("axes")
    }
}

/// The output shape of `Squeeze` for an input shape.
pub(crate) fn squeeze_shape(cx: &Ctx, n: &N, shape: &[Dim]) -> Result<Vec<Dim>, OnnxError> {
    let one_d = Dim::c(1);
    let axes = match squeeze_axes(cx, n)? {
        Some(a) => n.axes(&a, shape.len(), "axis")?,
        None => (0..shape.len()).filter(|&i| shape[i] == one_d).collect(),
    };
    for &a in &axes {
        if shape[a] != one_d {
            return Err(n.err(format!("cannot squeeze axis {a} of size {}", shape[a])));
        }
    }
    Ok(shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, d)| d.clone())
        .collect())
}

/// The output shape of `Unsqueeze` for an input shape.
pub(crate) fn unsqueeze_shape(cx: &Ctx, n: &N, shape: &[Dim]) -> Result<Vec<Dim>, OnnxError> {
    let axes = squeeze_axes(cx, n)?.ok_or_else(|| n.err("axes are required"))?;
    let out_rank = shape.len() + axes.len();
    let axes = n.axes(&axes, out_rank, "axis")?;
    let mut rest = shape.iter();
    Ok((0..out_rank)
        .map(|i| {
            if axes.contains(&i) {
                Dim::c(1)
            } else {
                rest.next().expect("counted").clone()
            }
        })
        .collect())
}

/// `Squeeze` as a reshape.
pub(crate) fn squeeze(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let shape = squeeze_shape(cx, n, &cx.ty(x).shape.clone())?;
    Ok(one(cx.add(n, "", Op::Reshape { shape }, &[x])?))
}

/// `Unsqueeze` as a reshape.
pub(crate) fn unsqueeze(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let shape = unsqueeze_shape(cx, n, &cx.ty(x).shape.clone())?;
    Ok(one(cx.add(n, "", Op::Reshape { shape }, &[x])?))
}

/// `Concat` along `axis`.
pub(crate) fn concat(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let ins = (0..n.n_inputs())
        .map(|i| cx.input(n, i))
        .collect::<Result<Vec<_>, _>>()?;
    let first = *ins.first().ok_or_else(|| n.err("needs at least one input"))?;
    let rank = cx.ty(first).rank();
    let axis = n.axis(
        n.attr_i_opt("axis")?
            .ok_or_else(|| n.err("attribute 'axis' is required"))?,
        rank,
        "axis",
    )?;
    if ins.len() == 1 {
        return Ok(one(first));
    }
    Ok(one(cx.add(n, "", Op::Concat { axis }, &ins)?))
}

/// `Split` into slices along `axis` (sizes from the attribute, input, or equal parts).
pub(crate) fn split(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let ty = cx.ty(x).clone();
    let axis = n.axis(n.attr_i("axis", 0)?, ty.rank(), "axis")?;
    let outputs = n.proto.output.len();
    let sizes = if n.opset >= 13 {
        if cx.has_input(n, 1) {
            Some(cx.const_ints(n, 1, "split")?)
        } else {
            None
        }
    } else {
        n.attr_ints("split")?
    };
    let dim = ty.shape[axis].as_const();
    let sizes = match sizes {
        Some(s) => s,
        None => {
            let d = dim.ok_or_else(|| n.err(format!("equal split of symbolic dim {} needs --dim", ty.shape[axis])))?;
            let parts = if n.opset >= 18 {
                n.attr_i("num_outputs", outputs as i64)?
            } else {
                outputs as i64
            };
            if parts <= 0 {
                return Err(n.err("needs at least one output"));
            }
            if n.opset < 18 && d % parts != 0 {
                return Err(n.err(format!("dim {d} does not split into {parts} equal parts")));
            }
            let chunk = (d + parts - 1) / parts;
            (0..parts).map(|k| (d - k * chunk).clamp(0, chunk)).collect()
        }
    };
    if sizes.len() != outputs {
        return Err(n.err(format!("{} split sizes for {outputs} outputs", sizes.len())));
    }
    if let Some(d) = dim {
        if sizes.iter().sum::<i64>() != d {
            return Err(n.err(format!("split sizes {sizes:?} do not add up to dim {d}")));
        }
    }
    let mut start = 0i64;
    let mut outs = Vec::new();
    for (k, &s) in sizes.iter().enumerate() {
        let axes = vec![SliceAxis {
            axis,
            start,
            end: start + s,
            step: 1,
        }];
        let name = n.proto.output.get(k).cloned().unwrap_or_default();
        outs.push(Value::Node(cx.add(
            n,
            &format!("out{k}_{name}"),
            Op::Slice { axes },
            &[x],
        )?));
        start += s;
    }
    Ok(outs)
}

/// Clamps an ONNX slice bound into the IR's range (`INT64_MAX` means "to the end").
fn clamp_bound(v: i64) -> i64 {
    v.clamp(-SLICE_END_MAX, SLICE_END_MAX)
}

/// The slice parameters of a `Slice` node: attributes before opset 10, inputs from 10.
pub(crate) fn slice_axes(cx: &Ctx, n: &N, rank: usize) -> Result<Vec<SliceAxis>, OnnxError> {
    let (starts, ends, axes, steps) = if n.opset < 10 {
        let starts = n
            .attr_ints("starts")?
            .ok_or_else(|| n.err("attribute 'starts' is required"))?;
        let ends = n
            .attr_ints("ends")?
            .ok_or_else(|| n.err("attribute 'ends' is required"))?;
        (starts, ends, n.attr_ints("axes")?, None)
    } else {
        let starts = cx.const_ints(n, 1, "starts")?;
        let ends = cx.const_ints(n, 2, "ends")?;
        let axes = if cx.has_input(n, 3) {
            Some(cx.const_ints(n, 3, "axes")?)
        } else {
            None
        };
        let steps = if cx.has_input(n, 4) {
            Some(cx.const_ints(n, 4, "steps")?)
        } else {
            None
        };
        (starts, ends, axes, steps)
    };
    if starts.len() != ends.len() {
        return Err(n.err(format!("{} starts but {} ends", starts.len(), ends.len())));
    }
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(n.err(format!(
            "starts, ends, axes and steps differ in length ({}, {}, {}, {})",
            starts.len(),
            ends.len(),
            axes.len(),
            steps.len()
        )));
    }
    let norm = n.axes(&axes, rank, "axis")?;
    let mut out = Vec::new();
    for (k, &a) in axes.iter().enumerate() {
        if steps[k] == 0 {
            return Err(n.err(format!("step on axis {a} is zero")));
        }
        let axis = n.axis(a, rank, "axis")?;
        debug_assert!(norm.contains(&axis));
        out.push(SliceAxis {
            axis,
            start: clamp_bound(starts[k]),
            end: clamp_bound(ends[k]),
            step: steps[k],
        });
    }
    out.sort_by_key(|s| s.axis);
    Ok(out)
}

/// `Slice`.
pub(crate) fn slice(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let symbolic = n.opset >= 10
        && [1, 2]
            .iter()
            .any(|&i| matches!(cx.ints(n, i), Ok(Some(v)) if v.consts().is_none()));
    if symbolic {
        return symbolic_slice(cx, n, x);
    }
    let axes = slice_axes(cx, n, cx.ty(x).rank())?;
    Ok(one(cx.add(n, "", Op::Slice { axes }, &[x])?))
}

/// A step-1 `Slice` whose starts/ends mention symbolic dims (e.g. `position_ids[:, :seq]`), as
/// a tensor expression that loads at `coordinate + start`. Symbolic bounds are taken to lie
/// inside the dim (the exporter's contract); constant ones follow ONNX's negative-index rule.
fn symbolic_slice(cx: &mut Ctx, n: &N, x: NodeId) -> Result<Vec<Value>, OnnxError> {
    let ty = cx.ty(x).clone();
    let rank = ty.rank();
    let bound = |i: usize, what: &str| -> Result<Vec<Dim>, OnnxError> {
        cx.ints(n, i)?
            .map(|v| v.elems)
            .ok_or_else(|| n.needs_constant(i, format!("input {i} ('{what}') must be known at compile time")))
    };
    let (starts, ends) = (bound(1, "starts")?, bound(2, "ends")?);
    if starts.len() != ends.len() {
        return Err(n.err(format!("{} starts but {} ends", starts.len(), ends.len())));
    }
    let axes = if cx.has_input(n, 3) {
        cx.const_ints(n, 3, "axes")?
    } else {
        (0..starts.len() as i64).collect()
    };
    if cx.has_input(n, 4) && cx.const_ints(n, 4, "steps")?.iter().any(|&s| s != 1) {
        return Err(n.err("a slice with symbolic bounds needs steps of 1 (bind dims with --dim)"));
    }
    if axes.len() != starts.len() {
        return Err(n.err(format!("{} axes for {} starts", axes.len(), starts.len())));
    }
    let resolve = |b: &Dim, d: &Dim| -> Dim {
        match b.as_const() {
            Some(v) if v >= SLICE_END_MAX => d.clone(),
            Some(v) if v < 0 => d.add(&Dim::c(v)),
            _ => b.clone(),
        }
    };
    let mut shape = ty.shape.clone();
    let mut index: Vec<Expr> = (0..rank).map(Expr::Coord).collect();
    for (k, &a) in axes.iter().enumerate() {
        let a = n.axis(a, rank, "axis")?;
        let d = ty.shape[a].clone();
        let (s, e) = (resolve(&starts[k], &d), resolve(&ends[k], &d));
        if !e.is_const() {
            // ONNX clamps the end to the dim; the expression below does not, so the model is
            // only correct while the end fits (a sequence no longer than a position table).
            // The runtime and the interpreter check this before running.
            cx.g.assume_at_most(
                e.clone(),
                d.clone(),
                format!(
                    "node '{}' (Slice) takes elements up to '{e}' along axis {a} of a tensor with {d} there",
                    n.name
                ),
            )
            .map_err(|err| n.err(err.to_string()))?;
        }
        shape[a] = e.sub(&s);
        index[a] = Expr::Coord(a).add(Expr::Dim(s));
    }
    let expr = Expr::Load { input: 0, index };
    let op = Op::Compute {
        shape,
        dtype: ty.dtype,
        expr,
        name: "Slice".into(),
    };
    Ok(one(cx.add(n, "", op, &[x])?))
}

/// `Gather` along `axis`.
pub(crate) fn gather(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let data = cx.input(n, 0)?;
    let idx = cx.input(n, 1)?;
    let axis = n.axis(n.attr_i("axis", 0)?, cx.ty(data).rank(), "axis")?;
    // Constant indices are checked now: on the GPU an out-of-range index reads zeros.
    if let (Some(size), Some(t)) = (cx.ty(data).shape[axis].as_const(), cx.const_tensor(n, 1)?) {
        if let Some((at, &i)) = t
            .to_f64()
            .iter()
            .enumerate()
            .find(|(_, &i)| i < -(size as f64) || i >= size as f64)
        {
            return Err(n.err(format!(
                "constant index {i} (at flat position {at} of input 1) is out of range for axis {axis} of size {size} (valid: {}..{size})",
                -size
            )));
        }
    }
    Ok(one(cx.add(n, "", Op::Gather { axis }, &[data, idx])?))
}

/// A compile-time shape operand (constant or symbolic dims).
fn shape_operand(cx: &Ctx, n: &N, i: usize, what: &str) -> Result<Vec<Dim>, OnnxError> {
    let v = cx.ints(n, i)?.ok_or_else(|| {
        n.needs_constant(
            i,
            format!(
                "input {i} ('{what}') must be known at compile time (a compile-time constant or a shape computation)"
            ),
        )
    })?;
    if v.shape.len() != 1 {
        return Err(n.err(format!("input {i} ('{what}') must be 1-D, got shape {:?}", v.shape)));
    }
    Ok(v.elems)
}

/// `Expand` (bidirectional broadcast to a shape that may mention symbolic dims).
pub(crate) fn expand(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let shape = shape_operand(cx, n, 1, "shape")?;
    let out = kiln_ir::infer::broadcast(&cx.ty(x).shape, &shape).map_err(|e| n.err(e.to_string()))?;
    if out == cx.ty(x).shape {
        return Ok(one(x));
    }
    Ok(one(cx.add(n, "", Op::Expand { shape }, &[x])?))
}

/// `Tile` as reshape to `[1, d0, 1, d1, ...]`, expand to `[r0, d0, r1, d1, ...]`, reshape to
/// `[r0*d0, r1*d1, ...]`.
pub(crate) fn tile(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let shape = cx.ty(x).shape.clone();
    let reps = cx.const_ints(n, 1, "repeats")?;
    if reps.len() != shape.len() {
        return Err(n.err(format!("{} repeats for rank {}", reps.len(), shape.len())));
    }
    if let Some(r) = reps.iter().find(|&&r| r < 0) {
        return Err(n.err(format!("repeat {r} is negative")));
    }
    if reps.iter().all(|&r| r == 1) {
        return Ok(one(x));
    }
    let inter: Vec<Dim> = shape.iter().flat_map(|d| [Dim::c(1), d.clone()]).collect();
    let big: Vec<Dim> = shape
        .iter()
        .zip(&reps)
        .flat_map(|(d, &r)| [Dim::c(r), d.clone()])
        .collect();
    let out: Vec<Dim> = shape.iter().zip(&reps).map(|(d, &r)| d.mul(&Dim::c(r))).collect();
    let a = cx.add(n, "interleave", Op::Reshape { shape: inter }, &[x])?;
    let b = cx.add(n, "expand", Op::Expand { shape: big }, &[a])?;
    Ok(one(cx.add(n, "", Op::Reshape { shape: out }, &[b])?))
}

/// `Shape` (with `start`/`end` from opset 15) and `Size`: compile-time integers, symbolic dims
/// included.
pub(crate) fn shape_of(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let shape = cx.input_shape(n, 0)?;
    if n.op == "Size" {
        return Ok(vec![Value::Ints(Ints::scalar(Dim::product(&shape)))]);
    }
    let r = shape.len() as i64;
    let norm = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = norm(n.attr_i("start", 0)?);
    let end = norm(n.attr_i("end", r)?);
    let dims = if start < end {
        shape[start..end].to_vec()
    } else {
        vec![]
    };
    Ok(vec![Value::Ints(Ints::vec(dims))])
}

/// `ConstantOfShape`: a broadcast scalar (a compile-time integer tensor when small and integral).
pub(crate) fn constant_of_shape(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let shape = shape_operand(cx, n, 0, "shape")?;
    let out = n.proto.output.first().cloned().unwrap_or_default();
    let lit = match n.attr_t("value")? {
        Some(t) => data::read_tensor(t, None).map_err(|m| n.err(format!("attribute 'value': {m}")))?,
        None => Literal::Tensor(Tensor::scalar(DType::F32, 0.0)),
    };
    let scalar = match lit {
        Literal::Int { values, .. } => {
            let v = *values
                .first()
                .ok_or_else(|| n.err("attribute 'value' must hold one element"))?;
            let dims: Option<Vec<i64>> = shape.iter().map(Dim::as_const).collect();
            if let Some(dims) = dims {
                let count: i64 = dims.iter().product();
                if (0..=4096).contains(&count) {
                    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
                    return Ok(vec![Value::Ints(Ints::from_i64(shape, &vec![v; count as usize]))]);
                }
            }
            let v = i32::try_from(v).map_err(|_| n.err(format!("value {v} is outside the i32 range")))?;
            Tensor::i32(vec![], vec![v])
        }
        Literal::Tensor(t) => {
            if t.numel() != 1 {
                return Err(n.err("attribute 'value' must hold one element"));
            }
            Tensor {
                shape: vec![],
                data: t.data,
            }
        }
    };
    let c = cx.g.add_const(&format!("{out}/value"), scalar);
    if shape.is_empty() {
        return Ok(one(c));
    }
    Ok(one(cx.add(n, "", Op::Expand { shape }, &[c])?))
}

/// `Range` whose bounds mention symbolic dims (e.g. position ids `Range(0, seq, 1)`): a tensor
/// expression `start + i * delta` of length `(limit - start) / delta` (exact division).
fn symbolic_range(cx: &mut Ctx, n: &N, s: &Ints, l: &Ints, d: &Ints) -> Result<Vec<Value>, OnnxError> {
    let scalar = |v: &Ints, what: &str| -> Result<Dim, OnnxError> {
        match v.elems.as_slice() {
            [x] => Ok(x.clone()),
            _ => Err(n.err(format!("{what} must hold one value, got shape {:?}", v.shape))),
        }
    };
    let (start, limit) = (scalar(s, "start")?, scalar(l, "limit")?);
    let delta = scalar(d, "delta")?
        .as_const()
        .filter(|&v| v > 0)
        .ok_or_else(|| n.err("a Range with symbolic bounds needs a positive constant delta"))?;
    let count = limit.sub(&start).exact_div(&Dim::c(delta)).ok_or_else(|| {
        n.err(format!(
            "the length ({limit} - {start}) / {delta} of a symbolic Range must be exact; bind dims with --dim"
        ))
    })?;
    let expr = Expr::Dim(start).add(Expr::Coord(0).mul(Expr::int(delta)));
    let op = Op::Compute {
        shape: vec![count],
        dtype: DType::I32,
        expr,
        name: "Range".into(),
    };
    Ok(one(cx.add(n, "", op, &[])?))
}

/// Most elements a compile-time-folded value (such as a constant `Range`) may have: 2^26, a
/// 256 MiB f32 tensor. The size is checked before anything is allocated.
pub(crate) const MAX_FOLDED_ELEMS: f64 = (1u64 << 26) as f64;

/// Most elements kept as compile-time integers (per-element symbolic dims) rather than a tensor.
const MAX_INTS_ELEMS: usize = 4096;

/// Refuses a folded value of `count` elements beyond [`MAX_FOLDED_ELEMS`], before allocation.
pub(crate) fn check_folded_count(n: &N, count: f64, what: &str) -> Result<(), OnnxError> {
    if count > MAX_FOLDED_ELEMS {
        return Err(n.err(format!(
            "{what} has {count:.0} elements; Kiln computes it at compile time and refuses more than {MAX_FOLDED_ELEMS:.0}"
        )));
    }
    Ok(())
}

/// `Range(start, limit, delta)` with compile-time operands.
pub(crate) fn range(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    if let (Some(s), Some(l), Some(d)) = (cx.ints(n, 0)?, cx.ints(n, 1)?, cx.ints(n, 2)?) {
        let (s, l, d) = match (s.consts(), l.consts(), d.consts()) {
            (Some(s), Some(l), Some(d)) if s.len() == 1 && l.len() == 1 && d.len() == 1 => (s[0], l[0], d[0]),
            _ => return symbolic_range(cx, n, &s, &l, &d),
        };
        if d == 0 {
            return Err(n.err("delta is zero"));
        }
        // Exact count in i128 (no overflow for any i64 operands): ceil((l - s) / d), at least 0.
        let (num, den) = (l as i128 - s as i128, d as i128);
        let count = if (num > 0) == (den > 0) && num != 0 {
            (num.abs() + den.abs() - 1) / den.abs()
        } else {
            0
        };
        check_folded_count(n, count as f64, &format!("Range({s}, {l}, {d})"))?;
        let count = count as usize;
        // Small ranges stay compile-time integers (shape arithmetic); larger ones are constants.
        if count <= MAX_INTS_ELEMS {
            let vals: Vec<i64> = (0..count as i64).map(|k| s + k * d).collect();
            return Ok(vec![Value::Ints(Ints::from_i64(vec![count], &vals))]);
        }
    }
    let mut v = Vec::new();
    let mut dtype = DType::F32;
    for i in 0..3 {
        let t = cx.const_tensor(n, i)?.ok_or_else(|| {
            n.needs_constant(
                i,
                format!("input {i} must be a compile-time constant (the IR has no iota op yet)"),
            )
        })?;
        dtype = t.dtype();
        v.push(*t.to_f64().first().ok_or_else(|| n.err(format!("input {i} is empty")))?);
    }
    let (s, l, d) = (v[0], v[1], v[2]);
    if d == 0.0 || !d.is_finite() || !s.is_finite() || !l.is_finite() {
        return Err(n.err(format!(
            "start {s}, limit {l} and delta {d} must be finite, delta nonzero"
        )));
    }
    let count = ((l - s) / d).ceil().max(0.0);
    check_folded_count(n, count, &format!("Range({s}, {l}, {d})"))?;
    let count = count as usize;
    let vals: Vec<f64> = (0..count).map(|k| s + k as f64 * d).collect();
    Ok(one(cx.constant(n, "", Tensor::from_f64(dtype, vec![count], &vals))))
}

/// `Trilu`: keeps the upper (or lower) triangle via a constant mask and `Where`.
pub(crate) fn trilu(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let ty = cx.ty(x).clone();
    let r = ty.rank();
    if r < 2 {
        return Err(n.err(format!("input must have rank >= 2, got {}", ty.describe())));
    }
    let k = if cx.has_input(n, 1) {
        *cx.const_ints(n, 1, "k")?
            .first()
            .ok_or_else(|| n.err("input 1 ('k') is empty"))?
    } else {
        0
    };
    let upper = n.attr_i("upper", 1)? != 0;
    // Keep x[.., i, j] where j - i >= k (upper) or j - i <= k (lower).
    let diag = Expr::Coord(r - 1).sub(Expr::Coord(r - 2));
    let cmp = if upper {
        BinaryOp::GreaterEqual
    } else {
        BinaryOp::LessEqual
    };
    let keep = diag.cmp(cmp, Expr::int(k), DType::I32);
    let load = Expr::Load {
        input: 0,
        index: (0..r).map(Expr::Coord).collect(),
    };
    let expr = Expr::select(keep, load, Expr::Lit(0.0, ty.dtype));
    let op = Op::Compute {
        shape: ty.shape.clone(),
        dtype: ty.dtype,
        expr,
        name: "Trilu".into(),
    };
    Ok(one(cx.add(n, "", op, &[x])?))
}

/// `EyeLike`: a constant with ones on diagonal `k` (the input's shape must be concrete).
pub(crate) fn eye_like(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let shape = cx.input_shape(n, 0)?;
    let dims: Vec<usize> = match shape.iter().map(Dim::as_const).collect::<Option<Vec<_>>>() {
        Some(d) if d.len() == 2 => d.iter().map(|&v| v as usize).collect(),
        _ => return Err(n.err("input must be 2-D with a concrete shape")),
    };
    let dtype = match n.attr_i_opt("dtype")? {
        Some(t) => data::ir_dtype(t as i32).map_err(|m| n.err(format!("attribute 'dtype': {m}")))?,
        None => match cx.value(n, 0)? {
            Some(Value::Node(id)) => cx.ty(*id).dtype,
            _ => DType::I32,
        },
    };
    let k = n.attr_i("k", 0)?;
    let v: Vec<f64> = (0..dims[0] * dims[1])
        .map(|p| ((p % dims[1]) as i64 - (p / dims[1]) as i64 == k) as u8 as f64)
        .collect();
    Ok(one(cx.constant(n, "", Tensor::from_f64(dtype, dims, &v))))
}

/// `Pad` (modes constant, edge, reflect, wrap; negative pads crop), one axis at a time with
/// `Slice`, `Expand` and `Concat`.
pub(crate) fn pad(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let ty = cx.ty(x).clone();
    let rank = ty.rank();
    let mode = n.attr_s("mode")?.unwrap_or_else(|| "constant".into());
    let (pads, value, axes) = if n.opset < 11 {
        let pads = n
            .attr_ints("pads")?
            .ok_or_else(|| n.err("attribute 'pads' is required"))?;
        let v = cx.scalar(n, "value", ty.dtype, n.attr_f("value", 0.0)? as f64);
        (pads, v, (0..rank).collect::<Vec<_>>())
    } else {
        let pads = cx.const_ints(n, 1, "pads")?;
        let v = match cx.opt_input(n, 2)? {
            Some(v) => {
                let t = cx.ty(v).clone();
                if t.numel() != Dim::c(1) {
                    return Err(n.err(format!("constant_value must hold one element, got {}", t.describe())));
                }
                cx.add(n, "value", Op::Reshape { shape: vec![] }, &[v])?
            }
            None => cx.scalar(n, "value", ty.dtype, 0.0),
        };
        let axes = if cx.has_input(n, 3) {
            cx.const_ints(n, 3, "axes")?
                .iter()
                .map(|&a| n.axis(a, rank, "axis"))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            (0..rank).collect()
        };
        (pads, v, axes)
    };
    if pads.len() != 2 * axes.len() {
        return Err(n.err(format!(
            "{} pads for {} axes (expected twice as many)",
            pads.len(),
            axes.len()
        )));
    }
    let mut y = x;
    for (k, &a) in axes.iter().enumerate() {
        let (b, e) = (pads[k], pads[k + axes.len()]);
        if b == 0 && e == 0 {
            continue;
        }
        let tag = format!("axis{a}");
        if b < 0 || e < 0 {
            let sa = SliceAxis {
                axis: a,
                start: (-b).max(0),
                end: if e < 0 { e } else { SLICE_END_MAX },
                step: 1,
            };
            y = cx.add(n, &format!("{tag}_crop"), Op::Slice { axes: vec![sa] }, &[y])?;
        }
        let cur = cx.ty(y).shape.clone();
        let block = |cx: &mut Ctx, left: bool, p: i64| -> Result<NodeId, OnnxError> {
            let side = if left { "before" } else { "after" };
            let mut shape = cur.clone();
            shape[a] = Dim::c(p);
            let sl = |cx: &mut Ctx, start: i64, end: i64, step: i64| {
                let sa = SliceAxis {
                    axis: a,
                    start,
                    end,
                    step,
                };
                cx.add(n, &format!("{tag}_{side}_slice"), Op::Slice { axes: vec![sa] }, &[y])
            };
            match mode.as_str() {
                "constant" => cx.add(n, &format!("{tag}_{side}"), Op::Expand { shape }, &[value]),
                "edge" => {
                    let s = if left {
                        sl(cx, 0, 1, 1)?
                    } else {
                        sl(cx, -1, SLICE_END_MAX, 1)?
                    };
                    cx.add(n, &format!("{tag}_{side}"), Op::Expand { shape }, &[s])
                }
                "reflect" => {
                    if cur[a].as_const().is_some_and(|d| d <= p) {
                        return Err(n.err(format!("reflect pad {p} on axis {a} needs a dim larger than {p}")));
                    }
                    if left {
                        sl(cx, p, 0, -1)
                    } else {
                        sl(cx, -2, -2 - p, -1)
                    }
                }
                "wrap" => {
                    if left {
                        sl(cx, -p, SLICE_END_MAX, 1)
                    } else {
                        sl(cx, 0, p, 1)
                    }
                }
                other => Err(n.err(format!(
                    "attribute 'mode' is '{other}', expected constant, edge, reflect or wrap"
                ))),
            }
        };
        let mut parts = Vec::new();
        if b > 0 {
            parts.push(block(cx, true, b)?);
        }
        parts.push(y);
        if e > 0 {
            parts.push(block(cx, false, e)?);
        }
        if parts.len() > 1 {
            y = cx.add(n, &tag, Op::Concat { axis: a }, &parts)?;
        }
    }
    Ok(one(y))
}

/// `GatherElements` as a `Gather` from the flattened data at computed flat indices (concrete
/// shapes only).
pub(crate) fn gather_elements(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let data = cx.input(n, 0)?;
    let idx = cx.input(n, 1)?;
    let (dt, it) = (cx.ty(data).clone(), cx.ty(idx).clone());
    let (Some(ds), Some(is)) = (dt.const_shape(), it.const_shape()) else {
        return Err(n.err(format!(
            "needs concrete shapes (use --dim), got {} and {}",
            dt.describe(),
            it.describe()
        )));
    };
    if ds.len() != is.len() {
        return Err(n.err(format!(
            "data {} and indices {} differ in rank",
            dt.describe(),
            it.describe()
        )));
    }
    let axis = n.axis(n.attr_i("axis", 0)?, ds.len(), "axis")?;
    let base = offsets_without_axis(&is, &ds, axis);
    let idx = if it.dtype == DType::I32 {
        idx
    } else {
        cx.add(n, "indices_i32", Op::Cast(DType::I32), &[idx])?
    };
    let zero = cx.scalar(n, "zero", DType::I32, 0.0);
    let neg = cx.add(n, "negative", Op::Binary(BinaryOp::Less), &[idx, zero])?;
    let len = cx.scalar(n, "axis_len", DType::I32, ds[axis] as f64);
    let wrapped = cx.add(n, "wrapped", Op::Binary(BinaryOp::Add), &[idx, len])?;
    let norm = cx.add(n, "normalized", Op::Where, &[neg, wrapped, idx])?;
    let stride = cx.scalar(n, "stride", DType::I32, kiln_ir::tensor::strides(&ds)[axis] as f64);
    let along = cx.add(n, "along", Op::Binary(BinaryOp::Mul), &[norm, stride])?;
    let base = cx.constant(n, "base", Tensor::i32(is.clone(), base));
    let flat_idx = cx.add(n, "flat_index", Op::Binary(BinaryOp::Add), &[along, base])?;
    let flat = cx.add(
        n,
        "flat_data",
        Op::Reshape {
            shape: vec![Dim::c(ds.iter().product::<usize>() as i64)],
        },
        &[data],
    )?;
    Ok(one(cx.add(n, "", Op::Gather { axis: 0 }, &[flat, flat_idx])?))
}

/// `DepthToSpace` (DCR or CRD) and `SpaceToDepth` as reshape -> transpose -> reshape.
pub(crate) fn depth_space(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let ty = cx.ty(x).clone();
    if ty.rank() != 4 {
        return Err(n.err(format!("input must be [N, C, H, W], got {}", ty.describe())));
    }
    let b = n
        .attr_i_opt("blocksize")?
        .filter(|&b| b > 0)
        .ok_or_else(|| n.err("attribute 'blocksize' must be positive"))?;
    let bd = Dim::c(b);
    let [nn, c, h, w] = [0, 1, 2, 3].map(|i| ty.shape[i].clone());
    let (split, perm, out) = if n.op == "DepthToSpace" {
        let cb = c
            .exact_div(&Dim::c(b * b))
            .ok_or_else(|| n.err(format!("{c} channels are not divisible by blocksize^2 = {}", b * b)))?;
        let out = vec![nn.clone(), cb.clone(), h.mul(&bd), w.mul(&bd)];
        match n.attr_s("mode")?.as_deref().unwrap_or("DCR") {
            "DCR" => (vec![nn, bd.clone(), bd, cb, h, w], vec![0, 3, 4, 1, 5, 2], out),
            "CRD" => (vec![nn, cb, bd.clone(), bd, h, w], vec![0, 1, 4, 2, 5, 3], out),
            other => return Err(n.err(format!("attribute 'mode' is '{other}', expected DCR or CRD"))),
        }
    } else {
        let hb = h
            .exact_div(&bd)
            .ok_or_else(|| n.err(format!("height {h} is not divisible by blocksize {b}")))?;
        let wb = w
            .exact_div(&bd)
            .ok_or_else(|| n.err(format!("width {w} is not divisible by blocksize {b}")))?;
        let out = vec![nn.clone(), c.mul(&Dim::c(b * b)), hb.clone(), wb.clone()];
        // DCR puts the block offset outermost in the channel; CRD (opset 28) innermost.
        let perm = match n.attr_s("mode")?.as_deref().unwrap_or("DCR") {
            "DCR" => vec![0, 3, 5, 1, 2, 4],
            "CRD" => vec![0, 1, 3, 5, 2, 4],
            other => return Err(n.err(format!("attribute 'mode' is '{other}', expected DCR or CRD"))),
        };
        (vec![nn, c, hb, bd.clone(), wb, bd], perm, out)
    };
    let a = cx.add(n, "split", Op::Reshape { shape: split }, &[x])?;
    let t = cx.add(n, "permute", Op::Transpose { perm }, &[a])?;
    Ok(one(cx.add(n, "", Op::Reshape { shape: out }, &[t])?))
}

/// `OneHot(indices, depth, values)`: `values[1]` where the (wrapped) index equals the coordinate
/// along `axis`, else `values[0]`; one tensor expression.
pub(crate) fn one_hot(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let idx = cx.input(n, 0)?;
    let depth =
        cx.const_tensor(n, 1)?
            .and_then(|t| t.to_f64().first().copied())
            .ok_or_else(|| n.needs_constant(1, "input 1 ('depth') must be a compile-time constant"))? as i64;
    let values = cx.input(n, 2)?;
    let it = cx.ty(idx).clone();
    let vt = cx.ty(values).clone();
    if vt.numel() != Dim::c(2) {
        return Err(n.err(format!("values must hold [off, on], got {}", vt.describe())));
    }
    let values = if vt.rank() == 1 {
        values
    } else {
        cx.add(n, "values_flat", Op::Reshape { shape: vec![Dim::c(2)] }, &[values])?
    };
    let idx = if it.dtype == DType::I32 {
        idx
    } else {
        cx.add(n, "indices_i32", Op::Cast(DType::I32), &[idx])?
    };
    let r = it.rank() + 1;
    let axis = n.axis(n.attr_i("axis", -1)?, r, "axis")?;
    let mut shape = it.shape.clone();
    shape.insert(axis, Dim::c(depth));
    let index: Vec<Expr> = (0..r).filter(|&i| i != axis).map(Expr::Coord).collect();
    let raw = Expr::Load { input: 0, index };
    let wrapped = Expr::select(
        raw.clone().cmp(BinaryOp::Less, Expr::int(0), DType::I32),
        raw.clone().add(Expr::int(depth)),
        raw,
    );
    let hit = wrapped.cmp(BinaryOp::Equal, Expr::Coord(axis), DType::I32);
    let on = Expr::Load {
        input: 1,
        index: vec![Expr::int(1)],
    };
    let off = Expr::Load {
        input: 1,
        index: vec![Expr::int(0)],
    };
    let op = Op::Compute {
        shape,
        dtype: vt.dtype,
        expr: Expr::select(hit, on, off),
        name: "OneHot".into(),
    };
    Ok(one(cx.add(n, "", op, &[idx, values])?))
}

/// For every element of an index tensor of shape `is` (row-major), the flat position in a data
/// tensor of shape `ds` at the same coordinates, leaving out the `axis` term (the index value
/// supplies that one): the base table of GatherElements and ScatterElements.
pub(super) fn offsets_without_axis(is: &[usize], ds: &[usize], axis: usize) -> Vec<i32> {
    let dstr = kiln_ir::tensor::strides(ds);
    let istr = kiln_ir::tensor::strides(is);
    let total: usize = is.iter().product();
    (0..total)
        .map(|p| {
            (0..is.len())
                .filter(|&i| i != axis)
                .map(|i| (p / istr[i] % is[i]) * dstr[i])
                .sum::<usize>() as i32
        })
        .collect()
}
