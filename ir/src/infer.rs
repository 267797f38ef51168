//! Shape and dtype inference: one rule per op, errors say what does not fit.

use crate::expr::ExprError;
use crate::{DType, Dim, Op, ReduceOp, Shape, SliceAxis, Tensor, TensorType};

/// Why shape and dtype inference rejected an op (the node is named by
/// [`crate::IrError::Infer`], which carries this).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferError {
    /// The op got the wrong number of inputs.
    #[error("expects {expected} inputs, got {got}")]
    Arity {
        /// How many it takes.
        expected: String,
        /// How many it got.
        got: usize,
    },
    /// Inputs and constants have no rule: their types are given when they are added.
    #[error("inputs and constants are added with add_input/add_const")]
    NoRule,
    /// An operand has a dtype the op does not accept.
    #[error("{operand} must be {expected}, got {got}")]
    DType {
        /// Which operand.
        operand: String,
        /// What the op accepts.
        expected: String,
        /// The operand's type.
        got: String,
    },
    /// Operands that must share a dtype differ.
    #[error("{what} dtypes differ: {a} vs {b}")]
    DTypeMismatch {
        /// Which operands.
        what: String,
        /// The first operand's type.
        a: String,
        /// The second operand's type.
        b: String,
    },
    /// An axis beyond the operand's rank.
    #[error("axis {axis} out of range for {of}")]
    Axis {
        /// The axis.
        axis: usize,
        /// The operand (its type, or its rank).
        of: String,
    },
    /// Two shapes do not broadcast.
    #[error("shapes [{a}] and [{b}] do not broadcast (axis {axis}: {da} vs {db})")]
    Broadcast {
        /// First shape.
        a: String,
        /// Second shape.
        b: String,
        /// Output axis where they disagree.
        axis: usize,
        /// First shape's dim there.
        da: String,
        /// Second shape's dim there.
        db: String,
    },
    /// Operand shapes that do not fit together; the text says which and how.
    #[error("{0}")]
    Shape(String),
    /// An attribute value the op cannot take; the text names it.
    #[error("{0}")]
    Attribute(String),
    /// A size that must be concrete is symbolic; the text names it.
    #[error("{0}")]
    Symbolic(String),
    /// A `Compute` expression does not fit its inputs.
    #[error("expression: {0}")]
    Expr(#[from] ExprError),
}

/// "To the end" for slice ends: any end at or past this is clamped to the dim.
pub const SLICE_END_MAX: i64 = 1 << 40;

/// Infers the output type of `op` applied to inputs of `ins` types (`consts` has the value of
/// each input that is a constant, for ops whose output shape depends on values).
pub fn infer(op: &Op, ins: &[&TensorType], _consts: &[Option<&Tensor>]) -> Result<TensorType, InferError> {
    if let Some(n) = op.arity() {
        if ins.len() != n {
            return Err(InferError::Arity {
                expected: n.to_string(),
                got: ins.len(),
            });
        }
    }
    let same = |t: &TensorType| Ok(t.clone());
    match op {
        Op::Input { .. } | Op::Constant(_) => Err(InferError::NoRule),
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
                        return Err(dtype_err("operand", "numeric", t));
                    }
                    same(t)
                }
                _ => {
                    if !t.dtype.is_float() {
                        return Err(dtype_err("operand", "floating point", t));
                    }
                    same(t)
                }
            }
        }
        Op::Binary(b) => {
            let (a, c) = (ins[0], ins[1]);
            if a.dtype != c.dtype {
                return Err(mismatch("operand", a, c));
            }
            if b.is_logical() {
                expect_dtype(a, DType::Bool, "operands")?;
            } else if a.dtype == DType::Bool && !matches!(b, crate::BinaryOp::Equal) {
                return Err(dtype_err("operands", &format!("non-bool for {b:?}"), a));
            }
            let shape = broadcast(&a.shape, &c.shape)?;
            let dtype = if b.is_comparison() { DType::Bool } else { a.dtype };
            Ok(TensorType { dtype, shape })
        }
        Op::Where => {
            expect_dtype(ins[0], DType::Bool, "condition")?;
            if ins[1].dtype != ins[2].dtype {
                return Err(mismatch("branch", ins[1], ins[2]));
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
                return Err(dtype_err("reduced operand", "numeric", t));
            }
            if matches!(r, ReduceOp::Mean) && !t.dtype.is_float() {
                return Err(dtype_err("mean's operand", "floating point", t));
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
                return Err(InferError::Shape(format!(
                    "cannot reshape {} ({} elements) to [{}] ({} elements)",
                    t.describe(),
                    have,
                    join(shape),
                    want
                )));
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
                return Err(InferError::Attribute(format!(
                    "perm {perm:?} is not a permutation of the {} axes of {}",
                    t.rank(),
                    t.describe()
                )));
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
                    return Err(InferError::Axis {
                        axis: s.axis,
                        of: t.describe(),
                    });
                }
                if s.step == 0 {
                    return Err(InferError::Attribute(format!("slice step on axis {} is zero", s.axis)));
                }
                shape[s.axis] = slice_len(&t.shape[s.axis], s)?;
            }
            Ok(TensorType { dtype: t.dtype, shape })
        }
        Op::Concat { axis } => {
            let first = ins.first().ok_or_else(|| InferError::Arity {
                expected: "at least 1".into(),
                got: 0,
            })?;
            if *axis >= first.rank() {
                return Err(InferError::Axis {
                    axis: *axis,
                    of: first.describe(),
                });
            }
            let mut total = Dim::c(0);
            for (k, t) in ins.iter().enumerate() {
                if t.dtype != first.dtype || t.rank() != first.rank() {
                    return Err(InferError::Shape(format!(
                        "input {k} is {} but input 0 is {}",
                        t.describe(),
                        first.describe()
                    )));
                }
                for (i, (a, b)) in t.shape.iter().zip(&first.shape).enumerate() {
                    if i != *axis && a != b {
                        return Err(InferError::Shape(format!(
                            "input {k} is {} but input 0 is {}: dims differ on axis {i}",
                            t.describe(),
                            first.describe()
                        )));
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
                return Err(InferError::Axis {
                    axis: *axis,
                    of: d.describe(),
                });
            }
            if !i.dtype.is_int() {
                return Err(dtype_err("indices", "integers", i));
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
                return Err(dtype_err("operand", "floating point", t));
            }
            same(t)
        }
        Op::Sample => {
            let (l, p, r) = (ins[0], ins[1], ins[2]);
            if l.dtype != DType::F32 || l.rank() != 2 {
                return Err(InferError::Shape(format!(
                    "logits must be f32 [rows, vocab], got {}",
                    l.describe()
                )));
            }
            if p.dtype != DType::I32 || p.shape != [Dim::c(crate::sample::PARAMS_LEN as i64)] {
                return Err(InferError::Shape(format!(
                    "sampling parameters must be i32 [{}], got {}",
                    crate::sample::PARAMS_LEN,
                    p.describe()
                )));
            }
            let window_ok = r.rank() == 1
                && r.shape[0]
                    .as_const()
                    .is_some_and(|w| (1..=crate::sample::MAX_WINDOW as i64).contains(&w));
            if r.dtype != DType::I32 || !window_ok {
                return Err(InferError::Shape(format!(
                    "recent tokens must be i32 [w] with a constant 1 <= w <= {}, got {}",
                    crate::sample::MAX_WINDOW,
                    r.describe()
                )));
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
                return Err(dtype_err("ranked operand", "numeric", t));
            }
            if let Some(n) = t.shape[*axis].as_const() {
                if *k as i64 > n {
                    return Err(InferError::Attribute(format!(
                        "k = {k} exceeds axis {axis} of {}",
                        t.describe()
                    )));
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
                return Err(dtype_err("indices", "an integer tensor of rank >= 1", i));
            }
            let m = i.shape[i.rank() - 1]
                .as_const()
                .ok_or_else(|| InferError::Symbolic("the last dim of indices must be concrete".into()))?
                as usize;
            if m > d.rank() {
                return Err(InferError::Shape(format!(
                    "index rows of length {m} exceed the rank of data {}",
                    d.describe()
                )));
            }
            let mut want: Shape = i.shape[..i.rank() - 1].to_vec();
            want.extend(d.shape[m..].iter().cloned());
            if u.shape != want || u.dtype != d.dtype {
                return Err(InferError::Shape(format!(
                    "updates must be {}[{}], got {}",
                    d.dtype,
                    want.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "),
                    u.describe()
                )));
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
                return Err(InferError::DType {
                    operand: "the expression".into(),
                    expected: dtype.to_string(),
                    got: expr.dtype(&dts).to_string(),
                });
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
                return Err(dtype_err("operand", "floating point", t));
            }
            let norm_shape: Shape = t.shape[*axis..].to_vec();
            for (what, p) in [("scale", ins[1]), ("bias", ins[ins.len() - 1])]
                .into_iter()
                .take(ins.len() - 1)
            {
                if p.dtype != t.dtype {
                    return Err(mismatch(what, p, t));
                }
                let b = broadcast(&norm_shape, &p.shape).map_err(|e| {
                    InferError::Shape(format!("{what} {} does not fit normalized shape: {e}", p.describe()))
                })?;
                if b != norm_shape {
                    return Err(InferError::Shape(format!(
                        "{what} {} is larger than the normalized shape [{}]",
                        p.describe(),
                        join(&norm_shape)
                    )));
                }
            }
            same(t)
        }
        Op::QuantizeQ8 => {
            let x = ins[0];
            expect_dtype(x, DType::F32, "activation")?;
            match x.shape.last().and_then(|d| d.as_const()) {
                Some(k) if k > 0 && k % 32 == 0 => same(x),
                _ => Err(InferError::Shape(format!(
                    "QuantizeQ8 rounds blocks of 32 values of the last axis, which must be a constant multiple of 32; got {}",
                    x.describe()
                ))),
            }
        }
        Op::QMatMul { block, n, k } => {
            let (x, w) = (ins[0], ins[1]);
            expect_dtype(x, DType::F32, "activation")?;
            expect_dtype(w, DType::U32, "packed weight")?;
            let words = crate::quant::packed_words(*block, *n, *k).ok_or_else(|| {
                InferError::Attribute(format!(
                    "K = {k} is not a multiple of the {block} block size {}",
                    block.block_elems()
                ))
            })?;
            if w.shape != [Dim::from(words)] {
                return Err(InferError::Shape(format!(
                    "packed {block} weight [{n}, {k}] needs u32[{words}], got {}",
                    w.describe()
                )));
            }
            match x.shape.last() {
                Some(d) if *d == Dim::from(*k) => {}
                _ => {
                    return Err(InferError::Shape(format!(
                        "activation {} must end in K = {k}",
                        x.describe()
                    )))
                }
            }
            let mut shape = x.shape.clone();
            *shape.last_mut().expect("checked above") = Dim::from(*n);
            Ok(TensorType {
                dtype: DType::F32,
                shape,
            })
        }
        Op::QGather { block, n, k } => {
            let (idx, w) = (ins[0], ins[1]);
            expect_dtype(idx, DType::I32, "indices")?;
            expect_dtype(w, DType::U32, "packed table")?;
            let words = crate::quant::packed_words(*block, *n, *k).ok_or_else(|| {
                InferError::Attribute(format!(
                    "row length {k} is not a multiple of the {block} block size {}",
                    block.block_elems()
                ))
            })?;
            if w.shape != [Dim::from(words)] {
                return Err(InferError::Shape(format!(
                    "packed {block} table [{n}, {k}] needs u32[{words}], got {}",
                    w.describe()
                )));
            }
            let mut shape = idx.shape.clone();
            shape.push(Dim::from(*k));
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
                return Err(InferError::Shape(format!(
                    "update {} does not have the rank of state '{state}' {state_shape:?}",
                    t.describe()
                )));
            }
            for (a, (d, &s)) in t.shape.iter().zip(state_shape).enumerate().skip(1) {
                if *d != Dim::c(s as i64) {
                    return Err(InferError::Shape(format!(
                        "update {} differs from state '{state}' {state_shape:?} in axis {a}",
                        t.describe()
                    )));
                }
            }
            let rows = offset.add(&t.shape[0]);
            if let Some(r) = rows.as_const() {
                if r > state_shape[0] as i64 {
                    return Err(InferError::Shape(format!(
                        "writes rows up to {r} of state '{state}', which has {}",
                        state_shape[0]
                    )));
                }
            }
            let mut shape = t.shape.clone();
            shape[0] = rows;
            Ok(TensorType { dtype: t.dtype, shape })
        }
    }
}

fn expect_dtype(t: &TensorType, d: DType, what: &str) -> Result<(), InferError> {
    if t.dtype != d {
        return Err(dtype_err(what, &d.to_string(), t));
    }
    Ok(())
}

/// `operand` (of type `t`) must be `expected`.
fn dtype_err(operand: &str, expected: &str, t: &TensorType) -> InferError {
    InferError::DType {
        operand: operand.into(),
        expected: expected.into(),
        got: t.describe(),
    }
}

/// `what` operands `a` and `b` must share a dtype.
fn mismatch(what: &str, a: &TensorType, b: &TensorType) -> InferError {
    InferError::DTypeMismatch {
        what: what.into(),
        a: a.describe(),
        b: b.describe(),
    }
}

fn check_axes(axes: &[usize], rank: usize) -> Result<(), InferError> {
    for &a in axes {
        if a >= rank {
            return Err(InferError::Axis {
                axis: a,
                of: format!("rank {rank}"),
            });
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
pub fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Shape, InferError> {
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
            return Err(InferError::Broadcast {
                a: join(a),
                b: join(b),
                axis: i,
                da: da.to_string(),
                db: db.to_string(),
            });
        });
    }
    Ok(out)
}

fn matmul_type(a: &TensorType, b: &TensorType) -> Result<TensorType, InferError> {
    if a.dtype != b.dtype || a.dtype == DType::Bool {
        return Err(mismatch("operand (numeric, shared)", a, b));
    }
    if a.rank() == 0 || b.rank() == 0 {
        return Err(InferError::Shape("operands must have rank >= 1".into()));
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
        return Err(InferError::Shape(format!(
            "inner dims differ: {} is [.., {ka}] and {} is [{kb}, ..]",
            a.describe(),
            b.describe()
        )));
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
pub fn slice_len(d: &Dim, s: &SliceAxis) -> Result<Dim, InferError> {
    if let Some(n) = d.as_const() {
        return Ok(Dim::c(resolve_slice(n, s).1));
    }
    if s.step != 1 {
        return Err(InferError::Symbolic(format!(
            "slice with step {} of symbolic dim {d} needs a concrete size (use --dim)",
            s.step
        )));
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
        return Err(InferError::Symbolic(format!(
            "slice [{}:{}] of symbolic dim {d} depends on its size (use --dim to make it concrete)",
            s.start, s.end
        )));
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
) -> Result<Dim, InferError> {
    let span = dilation as i64 * (kernel - 1) + 1;
    let padded = input.add(&Dim::c((pad.0 + pad.1) as i64));
    if let Some(p) = padded.as_const() {
        if p < span {
            return Err(InferError::Shape(format!(
                "padded input {p} is smaller than the dilated kernel {span}"
            )));
        }
        return Ok(Dim::c((p - span) / stride as i64 + 1));
    }
    // floor((padded - span) / stride) + 1, symbolically (the runtime evaluates the quotient).
    padded
        .sub(&Dim::c(span))
        .floor_div(stride as i64)
        .map(|q| q.add(&Dim::c(1)))
        .ok_or_else(|| InferError::Attribute(format!("stride {stride} must be positive")))
}

fn conv_type(
    ins: &[&TensorType],
    strides: &[usize],
    pads: &[(usize, usize)],
    dilations: &[usize],
    groups: usize,
) -> Result<TensorType, InferError> {
    if ins.len() < 2 || ins.len() > 3 {
        return Err(InferError::Arity {
            expected: "2 or 3 (x, w, bias)".into(),
            got: ins.len(),
        });
    }
    let (x, w) = (ins[0], ins[1]);
    let sp = x
        .rank()
        .checked_sub(2)
        .filter(|&s| s >= 1)
        .ok_or_else(|| InferError::Shape(format!("x must be [N, C, spatial...], got {}", x.describe())))?;
    if w.rank() != x.rank() || strides.len() != sp || pads.len() != sp || dilations.len() != sp {
        return Err(InferError::Shape(format!(
            "w {} and the attributes must match the {sp} spatial axes of x {}",
            w.describe(),
            x.describe()
        )));
    }
    if !x.dtype.is_float() || w.dtype != x.dtype {
        return Err(mismatch("x and w (floating point, shared)", x, w));
    }
    if groups == 0 || strides.contains(&0) || dilations.contains(&0) {
        return Err(InferError::Attribute(
            "groups, strides and dilations must be positive".into(),
        ));
    }
    let oc = w.shape[0]
        .as_const()
        .ok_or_else(|| InferError::Symbolic("the output channel count must be concrete".into()))?;
    let cg = w.shape[1].clone();
    if x.shape[1] != cg.mul(&Dim::c(groups as i64)) || oc % groups as i64 != 0 {
        return Err(InferError::Shape(format!(
            "channels do not fit groups={groups}: x {} has {} channels, w {} expects {} per group",
            x.describe(),
            x.shape[1],
            w.describe(),
            cg
        )));
    }
    if let Some(b) = ins.get(2) {
        if b.shape != vec![Dim::c(oc)] || b.dtype != x.dtype {
            return Err(dtype_err("bias", &format!("{}[{oc}]", x.dtype), b));
        }
    }
    let mut shape = vec![x.shape[0].clone(), Dim::c(oc)];
    for i in 0..sp {
        let k = w.shape[2 + i]
            .as_const()
            .ok_or_else(|| InferError::Symbolic("kernel sizes must be concrete".into()))?;
        shape.push(conv_out_dim(&x.shape[2 + i], k, strides[i], pads[i], dilations[i])?);
    }
    Ok(TensorType { dtype: x.dtype, shape })
}
