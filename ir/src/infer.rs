//! Shape and dtype inference: one rule per op, errors say what does not fit.

use crate::{DType, Dim, Op, ReduceOp, Shape, SliceAxis, Tensor, TensorType};

/// "To the end" for slice ends: any end at or past this is clamped to the dim.
pub const SLICE_END_MAX: i64 = 1 << 40;

/// Infers the output type of `op` applied to inputs of `ins` types (`consts` has the value of
/// each input that is a constant, for ops whose output shape depends on values).
pub fn infer(op: &Op, ins: &[&TensorType], _consts: &[Option<&Tensor>]) -> Result<TensorType, String> {
    if let Some(n) = op.arity() {
        if ins.len() != n {
            return Err(format!("expects {n} inputs, got {}", ins.len()));
        }
    }
    let same = |t: &TensorType| Ok(t.clone());
    match op {
        Op::Input { .. } | Op::Constant(_) => Err("inputs and constants are added with add_input/add_const".into()),
        Op::Unary(u) => {
            use crate::UnaryOp::*;
            let t = ins[0];
            match u {
                Not => {
                    expect_dtype(t, DType::Bool, "operand")?;
                    same(t)
                }
                IsNan => Ok(TensorType {
                    dtype: DType::Bool,
                    shape: t.shape.clone(),
                }),
                Neg | Abs | Sign | Relu => {
                    if t.dtype == DType::Bool {
                        return Err(format!("operand must be numeric, got {}", t.describe()));
                    }
                    same(t)
                }
                _ => {
                    if !t.dtype.is_float() {
                        return Err(format!("operand must be floating point, got {}", t.describe()));
                    }
                    same(t)
                }
            }
        }
        Op::Binary(b) => {
            let (a, c) = (ins[0], ins[1]);
            if a.dtype != c.dtype {
                return Err(format!("operand dtypes differ: {} vs {}", a.describe(), c.describe()));
            }
            if b.is_logical() {
                expect_dtype(a, DType::Bool, "operands")?;
            } else if a.dtype == DType::Bool && !matches!(b, crate::BinaryOp::Equal) {
                return Err(format!("{b:?} is not defined on bool operands"));
            }
            let shape = broadcast(&a.shape, &c.shape)?;
            let dtype = if b.is_comparison() { DType::Bool } else { a.dtype };
            Ok(TensorType { dtype, shape })
        }
        Op::Where => {
            expect_dtype(ins[0], DType::Bool, "condition")?;
            if ins[1].dtype != ins[2].dtype {
                return Err(format!(
                    "branch dtypes differ: {} vs {}",
                    ins[1].describe(),
                    ins[2].describe()
                ));
            }
            let shape = broadcast(&broadcast(&ins[0].shape, &ins[1].shape)?, &ins[2].shape)?;
            Ok(TensorType {
                dtype: ins[1].dtype,
                shape,
            })
        }
        Op::Cast(d) => Ok(TensorType {
            dtype: *d,
            shape: ins[0].shape.clone(),
        }),
        Op::Reduce { op: r, axes, keep_dims } => {
            let t = ins[0];
            check_axes(axes, t.rank())?;
            if t.dtype == DType::Bool {
                return Err("cannot reduce bool tensors".into());
            }
            if matches!(r, ReduceOp::Mean) && !t.dtype.is_float() {
                return Err(format!("mean needs a floating point operand, got {}", t.describe()));
            }
            Ok(TensorType {
                dtype: t.dtype,
                shape: reduced_shape(&t.shape, axes, *keep_dims),
            })
        }
        Op::ArgReduce { axis, keep_dims, .. } => {
            let t = ins[0];
            check_axes(&[*axis], t.rank())?;
            Ok(TensorType {
                dtype: DType::I32,
                shape: reduced_shape(&t.shape, &[*axis], *keep_dims),
            })
        }
        Op::MatMul => matmul_type(ins[0], ins[1]),
        Op::Reshape { shape } => {
            let t = ins[0];
            let (have, want) = (t.numel(), Dim::product(shape));
            if have != want {
                return Err(format!(
                    "cannot reshape {} ({} elements) to [{}] ({} elements)",
                    t.describe(),
                    have,
                    join(shape),
                    want
                ));
            }
            Ok(TensorType {
                dtype: t.dtype,
                shape: shape.clone(),
            })
        }
        Op::Transpose { perm } => {
            let t = ins[0];
            let mut seen = perm.clone();
            seen.sort();
            if seen != (0..t.rank()).collect::<Vec<_>>() {
                return Err(format!(
                    "perm {perm:?} is not a permutation of the {} axes of {}",
                    t.rank(),
                    t.describe()
                ));
            }
            Ok(TensorType {
                dtype: t.dtype,
                shape: perm.iter().map(|&p| t.shape[p].clone()).collect(),
            })
        }
        Op::Slice { axes } => {
            let t = ins[0];
            let mut shape = t.shape.clone();
            for s in axes {
                if s.axis >= t.rank() {
                    return Err(format!("slice axis {} out of range for {}", s.axis, t.describe()));
                }
                if s.step == 0 {
                    return Err(format!("slice step on axis {} is zero", s.axis));
                }
                shape[s.axis] = slice_len(&t.shape[s.axis], s)?;
            }
            Ok(TensorType { dtype: t.dtype, shape })
        }
        Op::Concat { axis } => {
            let first = ins.first().ok_or("needs at least one input")?;
            if *axis >= first.rank() {
                return Err(format!("axis {axis} out of range for {}", first.describe()));
            }
            let mut total = Dim::c(0);
            for (k, t) in ins.iter().enumerate() {
                if t.dtype != first.dtype || t.rank() != first.rank() {
                    return Err(format!(
                        "input {k} is {} but input 0 is {}",
                        t.describe(),
                        first.describe()
                    ));
                }
                for (i, (a, b)) in t.shape.iter().zip(&first.shape).enumerate() {
                    if i != *axis && a != b {
                        return Err(format!(
                            "input {k} is {} but input 0 is {}: dims differ on axis {i}",
                            t.describe(),
                            first.describe()
                        ));
                    }
                }
                total = total.add(&t.shape[*axis]);
            }
            let mut shape = first.shape.clone();
            shape[*axis] = total;
            Ok(TensorType {
                dtype: first.dtype,
                shape,
            })
        }
        Op::Gather { axis } => {
            let (d, i) = (ins[0], ins[1]);
            if *axis >= d.rank() {
                return Err(format!("axis {axis} out of range for {}", d.describe()));
            }
            if !i.dtype.is_int() {
                return Err(format!("indices must be integers, got {}", i.describe()));
            }
            let mut shape: Shape = d.shape[..*axis].to_vec();
            shape.extend(i.shape.iter().cloned());
            shape.extend(d.shape[axis + 1..].iter().cloned());
            Ok(TensorType { dtype: d.dtype, shape })
        }
        Op::Expand { shape } => {
            let t = ins[0];
            Ok(TensorType {
                dtype: t.dtype,
                shape: broadcast(&t.shape, shape)?,
            })
        }
        Op::Softmax { axis, .. } => {
            let t = ins[0];
            check_axes(&[*axis], t.rank())?;
            if !t.dtype.is_float() {
                return Err(format!("operand must be floating point, got {}", t.describe()));
            }
            same(t)
        }
        Op::Sample => {
            let (l, p, r) = (ins[0], ins[1], ins[2]);
            if l.dtype != DType::F32 || l.rank() != 2 {
                return Err(format!("logits must be f32 [rows, vocab], got {}", l.describe()));
            }
            if p.dtype != DType::I32 || p.shape != [Dim::c(crate::sample::PARAMS_LEN as i64)] {
                return Err(format!(
                    "sampling parameters must be i32 [{}], got {}",
                    crate::sample::PARAMS_LEN,
                    p.describe()
                ));
            }
            let window_ok = r.rank() == 1
                && r.shape[0]
                    .as_const()
                    .is_some_and(|w| (1..=crate::sample::MAX_WINDOW as i64).contains(&w));
            if r.dtype != DType::I32 || !window_ok {
                return Err(format!(
                    "recent tokens must be i32 [w] with a constant 1 <= w <= {}, got {}",
                    crate::sample::MAX_WINDOW,
                    r.describe()
                ));
            }
            Ok(TensorType {
                dtype: DType::I32,
                shape: vec![l.shape[0].clone()],
            })
        }
        Op::TopK { k, axis, .. } => {
            let t = ins[0];
            check_axes(&[*axis], t.rank())?;
            if t.dtype == DType::Bool {
                return Err("cannot rank bool elements".into());
            }
            if let Some(n) = t.shape[*axis].as_const() {
                if *k as i64 > n {
                    return Err(format!("k = {k} exceeds axis {axis} of {}", t.describe()));
                }
            }
            let mut shape = t.shape.clone();
            shape[*axis] = Dim::c(*k as i64);
            Ok(TensorType {
                dtype: DType::I32,
                shape,
            })
        }
        Op::ScatterNd { .. } => {
            let (d, i, u) = (ins[0], ins[1], ins[2]);
            if !i.dtype.is_int() || i.rank() == 0 {
                return Err(format!(
                    "indices must be an integer tensor of rank >= 1, got {}",
                    i.describe()
                ));
            }
            let m = i.shape[i.rank() - 1]
                .as_const()
                .ok_or("the last dim of indices must be concrete")? as usize;
            if m > d.rank() {
                return Err(format!(
                    "index rows of length {m} exceed the rank of data {}",
                    d.describe()
                ));
            }
            let mut want: Shape = i.shape[..i.rank() - 1].to_vec();
            want.extend(d.shape[m..].iter().cloned());
            if u.shape != want || u.dtype != d.dtype {
                return Err(format!(
                    "updates must be {}[{}], got {}",
                    d.dtype,
                    want.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "),
                    u.describe()
                ));
            }
            Ok(d.clone())
        }
        Op::Conv {
            strides,
            pads,
            dilations,
            groups,
        } => conv_type(ins, strides, pads, dilations, *groups),
        Op::Compute { shape, dtype, expr, .. } => {
            let ranks: Vec<usize> = ins.iter().map(|t| t.rank()).collect();
            expr.check(&ranks, shape.len())?;
            let dts: Vec<DType> = ins.iter().map(|t| t.dtype).collect();
            if expr.dtype(&dts) != *dtype {
                return Err(format!(
                    "expression yields {} but the op declares {dtype}",
                    expr.dtype(&dts)
                ));
            }
            Ok(TensorType {
                dtype: *dtype,
                shape: shape.clone(),
            })
        }
        Op::LayerNorm { axis, .. } | Op::RmsNorm { axis, .. } => {
            let t = ins[0];
            check_axes(&[*axis], t.rank())?;
            if !t.dtype.is_float() {
                return Err(format!("operand must be floating point, got {}", t.describe()));
            }
            let norm_shape: Shape = t.shape[*axis..].to_vec();
            for (what, p) in [("scale", ins[1]), ("bias", ins[ins.len() - 1])]
                .into_iter()
                .take(ins.len() - 1)
            {
                if p.dtype != t.dtype {
                    return Err(format!("{what} is {} but x is {}", p.describe(), t.describe()));
                }
                let b = broadcast(&norm_shape, &p.shape)
                    .map_err(|e| format!("{what} {} does not fit normalized shape: {e}", p.describe()))?;
                if b != norm_shape {
                    return Err(format!(
                        "{what} {} is larger than the normalized shape [{}]",
                        p.describe(),
                        join(&norm_shape)
                    ));
                }
            }
            same(t)
        }
        Op::QMatMul { block, n, k } => {
            let (x, w) = (ins[0], ins[1]);
            expect_dtype(x, DType::F32, "activation")?;
            expect_dtype(w, DType::U32, "packed weight")?;
            let words = crate::quant::packed_words(*block, *n, *k).ok_or_else(|| {
                format!(
                    "K = {k} is not a multiple of the {block} block size {}",
                    block.block_elems()
                )
            })?;
            if w.shape != [Dim::from(words)] {
                return Err(format!(
                    "packed {block} weight [{n}, {k}] needs u32[{words}], got {}",
                    w.describe()
                ));
            }
            match x.shape.last() {
                Some(d) if *d == Dim::from(*k) => {}
                _ => return Err(format!("activation {} must end in K = {k}", x.describe())),
            }
            let mut shape = x.shape.clone();
            *shape.last_mut().expect("checked above") = Dim::from(*n);
            Ok(TensorType {
                dtype: DType::F32,
                shape,
            })
        }
        Op::StateAppend {
            state,
            state_shape,
            offset,
        } => {
            let t = ins[0];
            if t.rank() != state_shape.len() || t.rank() == 0 {
                return Err(format!(
                    "update {} does not have the rank of state '{state}' {state_shape:?}",
                    t.describe()
                ));
            }
            for (a, (d, &s)) in t.shape.iter().zip(state_shape).enumerate().skip(1) {
                if *d != Dim::c(s as i64) {
                    return Err(format!(
                        "update {} differs from state '{state}' {state_shape:?} in axis {a}",
                        t.describe()
                    ));
                }
            }
            let rows = offset.add(&t.shape[0]);
            if let Some(r) = rows.as_const() {
                if r > state_shape[0] as i64 {
                    return Err(format!(
                        "writes rows up to {r} of state '{state}', which has {}",
                        state_shape[0]
                    ));
                }
            }
            let mut shape = t.shape.clone();
            shape[0] = rows;
            Ok(TensorType { dtype: t.dtype, shape })
        }
    }
}

fn expect_dtype(t: &TensorType, d: DType, what: &str) -> Result<(), String> {
    if t.dtype != d {
        return Err(format!("{what} must be {d}, got {}", t.describe()));
    }
    Ok(())
}

fn check_axes(axes: &[usize], rank: usize) -> Result<(), String> {
    for &a in axes {
        if a >= rank {
            return Err(format!("axis {a} out of range for rank {rank}"));
        }
    }
    Ok(())
}

fn join(s: &[Dim]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

/// The shape left after reducing `axes`.
pub fn reduced_shape(shape: &[Dim], axes: &[usize], keep_dims: bool) -> Shape {
    shape
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match (axes.contains(&i), keep_dims) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::c(1)),
            (true, false) => None,
        })
        .collect()
}

/// Numpy broadcasting of two shapes (right aligned; a dim of 1 stretches).
pub fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Shape, String> {
    let n = a.len().max(b.len());
    let one = Dim::c(1);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let da = if i + a.len() >= n { &a[i + a.len() - n] } else { &one };
        let db = if i + b.len() >= n { &b[i + b.len() - n] } else { &one };
        out.push(if da == db || *db == one {
            da.clone()
        } else if *da == one {
            db.clone()
        } else {
            return Err(format!(
                "shapes [{}] and [{}] do not broadcast (axis {i}: {da} vs {db})",
                join(a),
                join(b)
            ));
        });
    }
    Ok(out)
}

fn matmul_type(a: &TensorType, b: &TensorType) -> Result<TensorType, String> {
    if a.dtype != b.dtype || a.dtype == DType::Bool {
        return Err(format!(
            "operands must share a numeric dtype: {} vs {}",
            a.describe(),
            b.describe()
        ));
    }
    if a.rank() == 0 || b.rank() == 0 {
        return Err("operands must have rank >= 1".into());
    }
    let mut sa = a.shape.clone();
    let mut sb = b.shape.clone();
    if sa.len() == 1 {
        sa.insert(0, Dim::c(1));
    }
    if sb.len() == 1 {
        sb.push(Dim::c(1));
    }
    let (ka, kb) = (&sa[sa.len() - 1], &sb[sb.len() - 2]);
    if ka != kb {
        return Err(format!(
            "inner dims differ: {} is [.., {ka}] and {} is [{kb}, ..]",
            a.describe(),
            b.describe()
        ));
    }
    let batch = broadcast(&sa[..sa.len() - 2], &sb[..sb.len() - 2])?;
    let mut shape = batch;
    if a.rank() > 1 {
        shape.push(sa[sa.len() - 2].clone());
    }
    if b.rank() > 1 {
        shape.push(sb[sb.len() - 1].clone());
    }
    Ok(TensorType { dtype: a.dtype, shape })
}

/// Output length of a slice of a dim; symbolic dims work for positive steps where the bounds
/// are relative to one end.
pub fn slice_len(d: &Dim, s: &SliceAxis) -> Result<Dim, String> {
    if let Some(n) = d.as_const() {
        return Ok(Dim::c(resolve_slice(n, s).1));
    }
    if s.step != 1 {
        return Err(format!(
            "slice with step {} of symbolic dim {d} needs a concrete size (use --dim)",
            s.step
        ));
    }
    let start = if s.start < 0 {
        d.add(&Dim::c(s.start))
    } else {
        Dim::c(s.start)
    };
    let end = if s.end >= SLICE_END_MAX {
        d.clone()
    } else if s.end < 0 {
        d.add(&Dim::c(s.end))
    } else {
        return Err(format!(
            "slice [{}:{}] of symbolic dim {d} depends on its size (use --dim to make it concrete)",
            s.start, s.end
        ));
    };
    Ok(end.sub(&start))
}

/// Resolves ONNX slice semantics on a concrete dim: returns (first index, element count).
pub fn resolve_slice(n: i64, s: &SliceAxis) -> (i64, i64) {
    let norm = |v: i64| if v < 0 { v + n } else { v };
    if s.step > 0 {
        let start = norm(s.start).clamp(0, n);
        let end = norm(s.end.min(SLICE_END_MAX)).clamp(0, n);
        let len = if end > start {
            (end - start + s.step - 1) / s.step
        } else {
            0
        };
        (start, len)
    } else {
        let start = norm(s.start.min(SLICE_END_MAX)).clamp(-1, n - 1);
        let end = if s.end <= -SLICE_END_MAX {
            -1
        } else {
            norm(s.end).clamp(-1, n - 1)
        };
        let step = -s.step;
        let len = if start > end {
            (start - end + step - 1) / step
        } else {
            0
        };
        (start, len)
    }
}

/// Output spatial size of a convolution along one axis.
pub fn conv_out_dim(
    input: &Dim,
    kernel: i64,
    stride: usize,
    pad: (usize, usize),
    dilation: usize,
) -> Result<Dim, String> {
    let span = dilation as i64 * (kernel - 1) + 1;
    let padded = input.add(&Dim::c((pad.0 + pad.1) as i64));
    if let Some(p) = padded.as_const() {
        if p < span {
            return Err(format!("padded input {p} is smaller than the dilated kernel {span}"));
        }
        return Ok(Dim::c((p - span) / stride as i64 + 1));
    }
    // floor((padded - span) / stride) + 1, symbolically (the runtime evaluates the quotient).
    padded
        .sub(&Dim::c(span))
        .floor_div(stride as i64)
        .map(|q| q.add(&Dim::c(1)))
        .ok_or_else(|| format!("stride {stride} must be positive"))
}

fn conv_type(
    ins: &[&TensorType],
    strides: &[usize],
    pads: &[(usize, usize)],
    dilations: &[usize],
    groups: usize,
) -> Result<TensorType, String> {
    if ins.len() < 2 || ins.len() > 3 {
        return Err(format!("expects 2 or 3 inputs (x, w, bias), got {}", ins.len()));
    }
    let (x, w) = (ins[0], ins[1]);
    let sp = x
        .rank()
        .checked_sub(2)
        .filter(|&s| s >= 1)
        .ok_or_else(|| format!("x must be [N, C, spatial...], got {}", x.describe()))?;
    if w.rank() != x.rank() || strides.len() != sp || pads.len() != sp || dilations.len() != sp {
        return Err(format!(
            "w {} and the attributes must match the {sp} spatial axes of x {}",
            w.describe(),
            x.describe()
        ));
    }
    if !x.dtype.is_float() || w.dtype != x.dtype {
        return Err(format!(
            "x and w must share a floating point dtype: {} vs {}",
            x.describe(),
            w.describe()
        ));
    }
    if groups == 0 || strides.contains(&0) || dilations.contains(&0) {
        return Err("groups, strides and dilations must be positive".into());
    }
    let oc = w.shape[0]
        .as_const()
        .ok_or("the output channel count must be concrete")?;
    let cg = w.shape[1].clone();
    if x.shape[1] != cg.mul(&Dim::c(groups as i64)) || oc % groups as i64 != 0 {
        return Err(format!(
            "channels do not fit groups={groups}: x {} has {} channels, w {} expects {} per group",
            x.describe(),
            x.shape[1],
            w.describe(),
            cg
        ));
    }
    if let Some(b) = ins.get(2) {
        if b.shape != vec![Dim::c(oc)] || b.dtype != x.dtype {
            return Err(format!("bias must be {}[{oc}], got {}", x.dtype, b.describe()));
        }
    }
    let mut shape = vec![x.shape[0].clone(), Dim::c(oc)];
    for i in 0..sp {
        let k = w.shape[2 + i].as_const().ok_or("kernel sizes must be concrete")?;
        shape.push(conv_out_dim(&x.shape[2 + i], k, strides[i], pads[i], dilations[i])?);
    }
    Ok(TensorType { dtype: x.dtype, shape })
}
