//! Ops whose output *size* depends on input *values*: `NonMaxSuppression`, `NonZero` and
//! `Unique`. A Kiln bundle fixes every buffer size when it is compiled (up to symbolic dims of
//! the inputs' shapes), so these are evaluated at compile time when the inputs that decide the
//! size are constants (initializers, folded subgraphs, or graph inputs frozen with `kiln compile
//! --freeze`). Otherwise the node gets a [`OnnxError::NeedsConstant`] error naming the input
//! whose values decide the output size; Kiln never pads such an output to a bound, which would
//! change its ONNX meaning.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::{Ints, Value};
use crate::frontend::onnx::OnnxError;
use kiln_ir::Tensor;
use std::cmp::Ordering;

/// Input slot `i` as a constant tensor, or the error that asks for it: `what` names the input,
/// `why` says how its values decide the output size.
fn known(cx: &Ctx, n: &N, i: usize, what: &str, why: &str) -> Result<Tensor, OnnxError> {
    if !cx.has_input(n, i) {
        return Err(n.err(format!("input {i} ('{what}') is required but missing")));
    }
    cx.const_tensor(n, i)?.ok_or_else(|| {
        n.needs_constant(
            i,
            format!(
                "input {i} ('{what}') must be known at compile time: {why}, and Kiln fixes output sizes when it compiles"
            ),
        )
    })
}

/// An integer result as a compile-time value (it often feeds shape arithmetic).
fn ints(shape: Vec<usize>, values: &[i64]) -> Value {
    Value::Ints(Ints::from_i64(shape, values))
}

/// `NonZero`: the `[rank, count]` indices (row-major order) of the non-zero elements of a
/// constant input.
pub(crate) fn non_zero(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = known(
        cx,
        n,
        0,
        "X",
        "how many elements are non-zero decides the output's length",
    )?;
    let rank = x.shape.len();
    if rank == 0 {
        return Err(n.unsupported("a rank-0 input is not supported (give it shape [1])"));
    }
    let v = x.to_f64();
    let strides = kiln_ir::tensor::strides(&x.shape);
    let hits: Vec<usize> = (0..v.len()).filter(|&i| v[i] != 0.0).collect();
    let mut out = vec![0i64; rank * hits.len()];
    for (j, &flat) in hits.iter().enumerate() {
        for a in 0..rank {
            out[a * hits.len() + j] = ((flat / strides[a]) % x.shape[a]) as i64;
        }
    }
    Ok(vec![ints(vec![rank, hits.len()], &out)])
}

/// `Unique` (opset 11): the distinct elements (or, with `axis`, distinct slices along the axis)
/// of a constant input, sorted or in order of first occurrence, with the first-occurrence
/// indices, the inverse indices and the counts.
pub(crate) fn unique(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = known(
        cx,
        n,
        0,
        "X",
        "how many distinct values it holds decides the outputs' lengths",
    )?;
    let sorted = n.attr_i("sorted", 1)? != 0;
    let rank = x.shape.len();
    let v = x.to_f64();
    // Slices: (outer, len, inner) around the axis; without an axis, each element is a slice.
    let (axis, shape) = match n.attr_i_opt("axis")? {
        Some(a) => {
            let a = n.axis(a, rank, "axis")?;
            (Some(a), x.shape.clone())
        }
        None => (None, vec![v.len()]),
    };
    let a = axis.unwrap_or(0);
    let outer: usize = shape[..a].iter().product();
    let len = shape[a];
    let inner: usize = shape[a + 1..].iter().product();
    let slice = |k: usize| -> Vec<f64> {
        let mut s = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            s.extend_from_slice(&v[(o * len + k) * inner..(o * len + k + 1) * inner]);
        }
        s
    };
    let slices: Vec<Vec<f64>> = (0..len).map(slice).collect();
    let cmp = |p: &[f64], q: &[f64]| -> Ordering {
        p.iter()
            .zip(q)
            .map(|(a, b)| a.partial_cmp(b).unwrap_or(Ordering::Equal))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    };
    // Distinct slices by first occurrence, then (if sorted) in ascending lexicographic order.
    let mut firsts: Vec<usize> = Vec::new();
    let mut inverse_first = vec![0usize; len];
    for k in 0..len {
        match firsts
            .iter()
            .position(|&f| cmp(&slices[f], &slices[k]) == Ordering::Equal)
        {
            Some(p) => inverse_first[k] = p,
            None => {
                inverse_first[k] = firsts.len();
                firsts.push(k);
            }
        }
    }
    let mut order: Vec<usize> = (0..firsts.len()).collect();
    if sorted {
        order.sort_by(|&p, &q| cmp(&slices[firsts[p]], &slices[firsts[q]]));
    }
    // rank[p]: output position of the p-th distinct slice (by first occurrence).
    let mut pos = vec![0usize; firsts.len()];
    for (o, &p) in order.iter().enumerate() {
        pos[p] = o;
    }
    let m = firsts.len();
    let mut counts = vec![0i64; m];
    let inverse: Vec<i64> = inverse_first
        .iter()
        .map(|&p| {
            counts[pos[p]] += 1;
            pos[p] as i64
        })
        .collect();
    let indices: Vec<i64> = order.iter().map(|&p| firsts[p] as i64).collect();
    // Y: the distinct slices in output order, put back around the axis.
    let mut y = vec![0f64; outer * m * inner];
    for (o_pos, &p) in order.iter().enumerate() {
        let s = &slices[firsts[p]];
        for o in 0..outer {
            y[(o * m + o_pos) * inner..(o * m + o_pos + 1) * inner].copy_from_slice(&s[o * inner..(o + 1) * inner]);
        }
    }
    let mut y_shape = shape.clone();
    y_shape[a] = m;
    let y = cx.constant(n, "Y", Tensor::from_f64(x.dtype(), y_shape, &y));
    Ok(vec![
        Value::Node(y),
        ints(vec![m], &indices),
        ints(vec![len], &inverse),
        ints(vec![m], &counts),
    ])
}

/// `NonMaxSuppression` (opsets 10 and 11): per batch and class, greedily selects boxes by
/// descending score (ties: lower box index first) that overlap no selected box by more than
/// `iou_threshold` (IoU in f32, as the reference computes it), among the boxes scoring above
/// `score_threshold`, at most `max_output_boxes_per_class` of them; output `[count, 3]`
/// (batch, class, box) triples.
pub(crate) fn non_max_suppression(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let why = "which boxes survive suppression decides the output's length";
    // The scalar parameters first: they are the ones a user is likely to freeze.
    let scalar = |cx: &Ctx, i: usize, what: &str| -> Result<Option<f64>, OnnxError> {
        if !cx.has_input(n, i) {
            return Ok(None);
        }
        let t = known(cx, n, i, what, why)?;
        if t.numel() == 0 {
            return Ok(None);
        }
        if t.numel() != 1 {
            return Err(n.err(format!(
                "input {i} ('{what}') must hold one value, got shape {:?}",
                t.shape
            )));
        }
        Ok(Some(t.to_f64()[0]))
    };
    let max_out = scalar(cx, 2, "max_output_boxes_per_class")?.map_or(0, |v| v.max(0.0) as u64);
    let iou_threshold = scalar(cx, 3, "iou_threshold")?.unwrap_or(0.0) as f32;
    let score_threshold = scalar(cx, 4, "score_threshold")?.map(|v| v as f32);
    let boxes = known(cx, n, 0, "boxes", why)?;
    let scores = known(cx, n, 1, "scores", why)?;
    if boxes.shape.len() != 3 || boxes.shape[2] != 4 || scores.shape.len() != 3 {
        return Err(n.err(format!(
            "boxes {:?} must be [batches, boxes, 4] and scores {:?} [batches, classes, boxes]",
            boxes.shape, scores.shape
        )));
    }
    let (batches, nb, classes) = (boxes.shape[0], boxes.shape[1], scores.shape[1]);
    if scores.shape[0] != batches || scores.shape[2] != nb {
        return Err(n.err(format!(
            "scores {:?} do not match boxes {:?}: want [{batches}, classes, {nb}]",
            scores.shape, boxes.shape
        )));
    }
    if !(0.0..=1.0).contains(&iou_threshold) {
        return Err(n.err(format!("iou_threshold must be in [0, 1], got {iou_threshold}")));
    }
    let center = match n.attr_i("center_point_box", 0)? {
        0 => false,
        1 => true,
        c => return Err(n.err(format!("attribute 'center_point_box' must be 0 or 1, got {c}"))),
    };
    let bv = boxes.to_f32();
    let sv = scores.to_f32();
    // Each box as (x_min, x_max, y_min, y_max).
    let corners = |b: usize, i: usize| -> [f32; 4] {
        let p = &bv[(b * nb + i) * 4..(b * nb + i + 1) * 4];
        if center {
            let (hw, hh) = (p[2] / 2.0, p[3] / 2.0);
            [p[0] - hw, p[0] + hw, p[1] - hh, p[1] + hh]
        } else {
            [p[1].min(p[3]), p[1].max(p[3]), p[0].min(p[2]), p[0].max(p[2])]
        }
    };
    let suppresses = |a: [f32; 4], c: [f32; 4]| -> bool {
        let (ix0, ix1) = (a[0].max(c[0]), a[1].min(c[1]));
        let (iy0, iy1) = (a[2].max(c[2]), a[3].min(c[3]));
        if ix1 <= ix0 || iy1 <= iy0 {
            return false;
        }
        let inter = (ix1 - ix0) * (iy1 - iy0);
        let area_a = (a[1] - a[0]) * (a[3] - a[2]);
        let area_c = (c[1] - c[0]) * (c[3] - c[2]);
        let union = area_a + area_c - inter;
        if inter <= 0.0 || area_a <= 0.0 || area_c <= 0.0 || union <= 0.0 {
            return false;
        }
        inter / union > iou_threshold
    };
    let mut out: Vec<i64> = Vec::new();
    for b in 0..batches {
        for c in 0..classes {
            let s = &sv[(b * classes + c) * nb..(b * classes + c + 1) * nb];
            let mut cand: Vec<usize> = (0..nb).filter(|&i| score_threshold.is_none_or(|t| s[i] > t)).collect();
            cand.sort_by(|&p, &q| s[q].partial_cmp(&s[p]).unwrap_or(Ordering::Equal).then(p.cmp(&q)));
            let mut kept: Vec<usize> = Vec::new();
            for i in cand {
                if kept.len() as u64 >= max_out {
                    break;
                }
                if kept.iter().all(|&k| !suppresses(corners(b, i), corners(b, k))) {
                    kept.push(i);
                    out.extend([b as i64, c as i64, i as i64]);
                }
            }
        }
    }
    let count = out.len() / 3;
    if count == 0 {
        // An empty [0, 3] result as a constant (no kernel reads or writes it).
        return Ok(one(cx.constant(n, "", Tensor::i32(vec![0, 3], vec![]))));
    }
    Ok(vec![ints(vec![count, 3], &out)])
}
