//! Ops that write elements to computed positions, all lowered onto the IR's `ScatterNd` over a
//! flattened tensor: ScatterElements (and its deprecated alias Scatter), MaxUnpool (the
//! inverse of MaxPool with indices) and Col2Im (the inverse of im2col, an add-scatter with
//! positions known at compile time).

use super::super::ctx::{Ctx, N};
use super::super::value::Value;
use super::super::OnnxError;
use super::one;
use super::shape::check_folded_count;
use kiln_ir::{BinaryOp, DType, Dim, NodeId, Op, ScatterReduction, SliceAxis, Tensor};

/// The concrete shape of input `i`, or an error that asks for `--dim`.
fn concrete(cx: &Ctx, n: &N, id: NodeId, what: &str) -> Result<Vec<usize>, OnnxError> {
    let t = cx.ty(id);
    t.const_shape().ok_or_else(|| {
        n.err(format!(
            "{what} needs a concrete shape (use --dim), got {}",
            t.describe()
        ))
    })
}

/// `x` reshaped to a flat vector of `len` elements.
fn flatten(cx: &mut Ctx, n: &N, suffix: &str, x: NodeId, len: usize) -> Result<NodeId, OnnxError> {
    cx.add(
        n,
        suffix,
        Op::Reshape {
            shape: vec![Dim::c(len as i64)],
        },
        &[x],
    )
}

/// Scatters the flat `updates` into a flat tensor `data` at the flat i32 positions `pos` (same
/// element count as `updates`), then reshapes to `shape`.
fn scatter_flat(
    cx: &mut Ctx,
    n: &N,
    data: NodeId,
    pos: NodeId,
    updates: NodeId,
    reduction: ScatterReduction,
    shape: &[usize],
) -> Result<NodeId, OnnxError> {
    let count = cx.ty(updates).numel();
    let rows = cx.add(
        n,
        "index_rows",
        Op::Reshape {
            shape: vec![count, Dim::c(1)],
        },
        &[pos],
    )?;
    let flat = cx.add(n, "scatter", Op::ScatterNd { reduction }, &[data, rows, updates])?;
    cx.add(
        n,
        "",
        Op::Reshape {
            shape: shape.iter().map(|&d| Dim::c(d as i64)).collect(),
        },
        &[flat],
    )
}

/// `x` as i32 (index inputs may be i64).
fn as_i32(cx: &mut Ctx, n: &N, x: NodeId) -> Result<NodeId, OnnxError> {
    if cx.ty(x).dtype == DType::I32 {
        Ok(x)
    } else {
        cx.add(n, "indices_i32", Op::Cast(DType::I32), &[x])
    }
}

/// `ScatterElements` (opset 11+, `reduction` from 16) and `Scatter` (opset 9-10, no reduction):
/// `out[c with c[axis] = idx[c]] (op)= updates[c]` for every coordinate `c` of `indices`.
pub(crate) fn scatter_elements(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let data = cx.input(n, 0)?;
    let idx = cx.input(n, 1)?;
    let updates = cx.input(n, 2)?;
    let ds = concrete(cx, n, data, "data")?;
    let is = concrete(cx, n, idx, "indices")?;
    let us = concrete(cx, n, updates, "updates")?;
    if ds.len() != is.len() || is != us {
        return Err(n.err(format!(
            "data {ds:?}, indices {is:?} and updates {us:?}: indices and updates must have the same shape, of data's rank"
        )));
    }
    if cx.ty(updates).dtype != cx.ty(data).dtype {
        return Err(n.err("updates and data differ in dtype"));
    }
    let axis = n.axis(n.attr_i("axis", 0)?, ds.len(), "axis")?;
    if let Some(a) = (0..ds.len()).find(|&a| a != axis && is[a] > ds[a]) {
        return Err(n.err(format!(
            "indices dim {a} is {} but data's is {} (only the axis dim may differ)",
            is[a], ds[a]
        )));
    }
    let reduction = match n.attr_s("reduction")?.as_deref().unwrap_or("none") {
        "none" => ScatterReduction::None,
        "add" => ScatterReduction::Add,
        "mul" => ScatterReduction::Mul,
        "max" => ScatterReduction::Max,
        "min" => ScatterReduction::Min,
        other => return Err(n.err(format!("reduction '{other}' is not one of none, add, mul, max, min"))),
    };
    let total_i: usize = is.iter().product();
    let total_d: usize = ds.iter().product();
    check_folded_count(n, total_i as f64, "the index base table")?;
    // The flat data position of every index element, without its axis term.
    let base = super::shape::offsets_without_axis(&is, &ds, axis);
    let idx = as_i32(cx, n, idx)?;
    // Negative indices count from the end of the axis.
    let zero = cx.scalar(n, "zero", DType::I32, 0.0);
    let neg = cx.add(n, "negative", Op::Binary(BinaryOp::Less), &[idx, zero])?;
    let len = cx.scalar(n, "axis_len", DType::I32, ds[axis] as f64);
    let wrapped = cx.add(n, "wrapped", Op::Binary(BinaryOp::Add), &[idx, len])?;
    let norm = cx.add(n, "normalized", Op::Where, &[neg, wrapped, idx])?;
    let stride = cx.scalar(n, "stride", DType::I32, kiln_ir::tensor::strides(&ds)[axis] as f64);
    let along = cx.add(n, "along", Op::Binary(BinaryOp::Mul), &[norm, stride])?;
    let base = cx.constant(n, "base", Tensor::i32(is.clone(), base));
    let pos = cx.add(n, "flat_index", Op::Binary(BinaryOp::Add), &[along, base])?;
    let flat_data = flatten(cx, n, "flat_data", data, total_d)?;
    let flat_updates = flatten(cx, n, "flat_updates", updates, total_i)?;
    Ok(one(scatter_flat(cx, n, flat_data, pos, flat_updates, reduction, &ds)?))
}

/// Per-spatial-axis integer attribute with a default, checked for length and minimum.
fn spatial(n: &N, name: &str, sp: usize, default: i64, min: i64) -> Result<Vec<usize>, OnnxError> {
    let v = n.attr_ints(name)?.unwrap_or_else(|| vec![default; sp]);
    if v.len() != sp {
        return Err(n.err(format!("'{name}' has {} values for {sp} spatial axes", v.len())));
    }
    v.iter()
        .map(|&x| {
            if x < min || x > i32::MAX as i64 {
                Err(n.err(format!("'{name}' value {x} is out of range (at least {min})")))
            } else {
                Ok(x as usize)
            }
        })
        .collect()
}

/// Begin/end padding pairs from a `pads` attribute of `2 * sp` values.
fn pads(n: &N, sp: usize) -> Result<Vec<(usize, usize)>, OnnxError> {
    let p = spatial(n, "pads", 2 * sp, 0, 0)?;
    Ok((0..sp).map(|i| (p[i], p[i + sp])).collect())
}

/// `MaxUnpool`: `X` and `I` (flat positions into the unpooled `[N, C, *spatial]` tensor, as
/// MaxPool returns them) scattered into zeros of the inferred shape, then zero-padded at the
/// end of each axis up to the optional `output_shape` input.
pub(crate) fn max_unpool(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let idx = cx.input(n, 1)?;
    let xs = concrete(cx, n, x, "X")?;
    let is = concrete(cx, n, idx, "I")?;
    if xs.len() < 3 || xs != is {
        return Err(n.err(format!("X {xs:?} and I {is:?} must have one shape [N, C, *spatial]")));
    }
    let sp = xs.len() - 2;
    let kernel = n
        .attr_ints("kernel_shape")?
        .ok_or_else(|| n.err("attribute 'kernel_shape' is required"))?;
    if kernel.len() != sp || kernel.iter().any(|&k| k < 1 || k > i32::MAX as i64) {
        return Err(n.err(format!("kernel_shape {kernel:?} must hold {sp} positive values")));
    }
    let strides = spatial(n, "strides", sp, 1, 1)?;
    let pads = pads(n, sp)?;
    let mut inferred = xs[..2].to_vec();
    for a in 0..sp {
        let len = (xs[a + 2] as i64 - 1) * strides[a] as i64 + kernel[a] - (pads[a].0 + pads[a].1) as i64;
        if len < 1 {
            return Err(n.err(format!("spatial axis {a}: the unpooled length {len} is not positive")));
        }
        inferred.push(len as usize);
    }
    let out_shape = if cx.has_input(n, 2) {
        let s = cx.const_ints(n, 2, "output_shape")?;
        if s.len() != xs.len() || s.iter().zip(&inferred).any(|(&o, &i)| o < i as i64) {
            return Err(n.err(format!(
                "output_shape {s:?} must have rank {} and be at least the inferred shape {inferred:?}",
                xs.len()
            )));
        }
        s.iter().map(|&d| d as usize).collect()
    } else {
        inferred.clone()
    };
    let total: f64 = inferred.iter().map(|&d| d as f64).product();
    check_folded_count(n, out_shape.iter().map(|&d| d as f64).product(), "the output")?;
    let total = total as usize;
    let count: usize = xs.iter().product();
    let dtype = cx.ty(x).dtype;
    let zeros = cx.constant(n, "zeros", Tensor::from_f64(dtype, vec![total], &vec![0.0; total]));
    let idx = as_i32(cx, n, idx)?;
    let flat_x = flatten(cx, n, "flat_x", x, count)?;
    let mut y = scatter_flat(cx, n, zeros, idx, flat_x, ScatterReduction::None, &inferred)?;
    if out_shape != inferred {
        // Zero padding at the end of each grown axis: a Compute that loads inside the inferred
        // extent and yields zero beyond it.
        let mut cond: Option<kiln_ir::Expr> = None;
        for (a, &len) in inferred.iter().enumerate() {
            if out_shape[a] == len {
                continue;
            }
            let inside = kiln_ir::Expr::Coord(a).cmp(BinaryOp::Less, kiln_ir::Expr::int(len as i64), DType::I32);
            cond = Some(match cond {
                None => inside,
                Some(c) => c.cmp(BinaryOp::And, inside, DType::Bool),
            });
        }
        let load = kiln_ir::Expr::Load {
            input: 0,
            index: (0..out_shape.len()).map(kiln_ir::Expr::Coord).collect(),
        };
        let expr = kiln_ir::Expr::select(cond.expect("a grown axis"), load, kiln_ir::Expr::Lit(0.0, dtype));
        y = cx.add(
            n,
            "padded",
            Op::Compute {
                shape: out_shape.iter().map(|&d| Dim::c(d as i64)).collect(),
                dtype,
                expr,
                name: "MaxUnpoolPad".into(),
            },
            &[y],
        )?;
    }
    Ok(one(y))
}

/// `Col2Im`: input `[N, C * prod(block), L]` (L sliding blocks) summed into the padded image
/// `[N, C, *image_shape]` at positions known at compile time (an add-scatter), then the
/// padding sliced off.
pub(crate) fn col2im(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let xs = concrete(cx, n, x, "input")?;
    let image = cx.const_ints(n, 1, "image_shape")?;
    let block = cx.const_ints(n, 2, "block_shape")?;
    let sp = image.len();
    if xs.len() != 3 || sp == 0 || block.len() != sp {
        return Err(n.err(format!(
            "input {xs:?} must be [N, C*prod(block), L] and image_shape {image:?}, block_shape {block:?} of one length"
        )));
    }
    if image.iter().chain(&block).any(|&v| v < 1 || v > i32::MAX as i64) {
        return Err(n.err(format!(
            "image_shape {image:?} and block_shape {block:?} must be positive"
        )));
    }
    let image: Vec<usize> = image.iter().map(|&v| v as usize).collect();
    let block: Vec<usize> = block.iter().map(|&v| v as usize).collect();
    let dil = spatial(n, "dilations", sp, 1, 1)?;
    let strides = spatial(n, "strides", sp, 1, 1)?;
    let pads = pads(n, sp)?;
    let k: usize = block.iter().product();
    if xs[1] % k != 0 {
        return Err(n.err(format!(
            "input dim 1 ({}) is not a multiple of prod(block_shape) = {k}",
            xs[1]
        )));
    }
    let (batch, chans, l) = (xs[0], xs[1] / k, xs[2]);
    let padded: Vec<usize> = (0..sp).map(|a| image[a] + pads[a].0 + pads[a].1).collect();
    let mut blocks = Vec::with_capacity(sp);
    for a in 0..sp {
        let span = dil[a] * (block[a] - 1) + 1;
        if padded[a] < span {
            return Err(n.err(format!(
                "spatial axis {a}: the block spans {span} > padded length {}",
                padded[a]
            )));
        }
        blocks.push((padded[a] - span) / strides[a] + 1);
    }
    if blocks.iter().product::<usize>() != l {
        return Err(n.err(format!("input has {l} blocks; the shapes give {blocks:?}")));
    }
    let count = batch * chans * k * l;
    let ptotal: usize = padded.iter().product();
    check_folded_count(n, count as f64, "the position table")?;
    check_folded_count(n, (batch * chans * ptotal) as f64, "the padded image")?;
    let pstr = kiln_ir::tensor::strides(&padded);
    let bstr = kiln_ir::tensor::strides(&blocks);
    let kstr = kiln_ir::tensor::strides(&block);
    // Input element (plane = n*C + c, kernel offset kk, block ll) lands at padded position
    // plane * ptotal + sum_a (block_a * stride_a + kernel_a * dil_a) * pstr_a.
    let mut pos = Vec::with_capacity(count);
    for plane in 0..batch * chans {
        for kk in 0..k {
            for ll in 0..l {
                let mut p = plane * ptotal;
                for a in 0..sp {
                    let b = ll / bstr[a] % blocks[a];
                    let o = kk / kstr[a] % block[a];
                    p += (b * strides[a] + o * dil[a]) * pstr[a];
                }
                pos.push(p as i32);
            }
        }
    }
    let dtype = cx.ty(x).dtype;
    let total = batch * chans * ptotal;
    let zeros = cx.constant(n, "zeros", Tensor::from_f64(dtype, vec![total], &vec![0.0; total]));
    let pos = cx.constant(n, "positions", Tensor::i32(vec![count], pos));
    let flat_x = flatten(cx, n, "flat_x", x, count)?;
    let mut shape = vec![batch, chans];
    shape.extend(&padded);
    let y = scatter_flat(cx, n, zeros, pos, flat_x, ScatterReduction::Add, &shape)?;
    let axes: Vec<SliceAxis> = (0..sp)
        .filter(|&a| pads[a] != (0, 0))
        .map(|a| SliceAxis {
            axis: a + 2,
            start: pads[a].0 as i64,
            end: (pads[a].0 + image[a]) as i64,
            step: 1,
        })
        .collect();
    if axes.is_empty() {
        return Ok(one(y));
    }
    Ok(one(cx.add(n, "unpadded", Op::Slice { axes }, &[y])?))
}
