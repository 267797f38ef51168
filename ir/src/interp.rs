//! The CPU reference interpreter: the oracle for every GPU result.
//!
//! It favours obvious correctness over speed: values are held as exact `f64` and rounded to the
//! node's dtype after every op (f32 arithmetic done this way equals IEEE f32 arithmetic for
//! + - * / and sqrt), reductions and matmul accumulate in f64.

use crate::infer::resolve_slice;
use crate::tensor::strides;
use crate::{BinaryOp, DType, DimBindings, Graph, IrError, NodeId, Op, ReduceOp, Tensor, UnaryOp};
use std::collections::HashMap;

/// A value during evaluation: concrete shape plus exact elements.
#[derive(Clone, Debug)]
struct Val {
    shape: Vec<usize>,
    v: Vec<f64>,
}

/// Binds the symbolic dims of the graph inputs from the given tensors, checking dtypes and
/// shapes; errors name the input.
pub fn bind_inputs(g: &Graph, inputs: &HashMap<String, Tensor>) -> Result<DimBindings, IrError> {
    bind_inputs_with(g, inputs, &DimBindings::new())
}

/// [`bind_inputs`] with some symbols already bound by value.
fn bind_inputs_with(
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
    scalars: &DimBindings,
) -> Result<DimBindings, IrError> {
    let mut b = scalars.clone();
    // Plain symbols first, then check every dim (composite expressions included).
    for pass in 0..2 {
        for &id in g.inputs() {
            let n = g.node(id);
            let t = inputs.get(&n.name).ok_or_else(|| IrError::Input {
                name: n.name.clone(),
                msg: format!("missing (expects {})", n.ty.describe()),
            })?;
            if t.dtype() != n.ty.dtype {
                return Err(IrError::Input {
                    name: n.name.clone(),
                    msg: format!("dtype {} given, expects {}", t.dtype(), n.ty.describe()),
                });
            }
            if t.shape.len() != n.ty.rank() {
                return Err(IrError::Input {
                    name: n.name.clone(),
                    msg: format!("shape {:?} given, expects {}", t.shape, n.ty.describe()),
                });
            }
            for (d, &actual) in n.ty.shape.iter().zip(&t.shape) {
                let syms = d.symbols();
                if pass == 0 && syms.len() == 1 && *d == crate::Dim::sym(&syms[0]) {
                    let prev = *b.entry(syms[0].clone()).or_insert(actual as i64);
                    if prev != actual as i64 {
                        return Err(IrError::Input {
                            name: n.name.clone(),
                            msg: format!("dim '{}' is {actual} here but {prev} in another input", syms[0]),
                        });
                    }
                } else if pass == 1 {
                    let want = d.eval(&b).map_err(|s| IrError::Input {
                        name: n.name.clone(),
                        msg: format!("dim expression {d} uses '{}', which no input binds", s.symbol),
                    })?;
                    if want != actual as i64 {
                        return Err(IrError::Input {
                            name: n.name.clone(),
                            msg: format!(
                                "shape {:?} given, expects {} (dim {d} = {want})",
                                t.shape,
                                n.ty.describe()
                            ),
                        });
                    }
                }
            }
        }
    }
    g.check_assumptions(&b)?;
    Ok(b)
}

/// Evaluates the graph on the given named inputs and returns its named outputs.
pub fn evaluate(g: &Graph, inputs: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>, IrError> {
    evaluate_with(g, inputs, &DimBindings::new(), &mut HashMap::new())
}

/// Evaluates a graph that may use scalar symbols and persistent states: `scalars` binds
/// symbols no input shape carries (e.g. `past`), and `states` holds each state's value by name
/// (a missing state starts as zeros, as a GPU state buffer does); every
/// [`Op::StateAppend`] writes its rows into it, so the next call sees them.
pub fn evaluate_with(
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
    scalars: &DimBindings,
    states: &mut HashMap<String, Tensor>,
) -> Result<HashMap<String, Tensor>, IrError> {
    let mut bindings = bind_inputs_with(g, inputs, scalars)?;
    for (k, v) in scalars {
        bindings.insert(k.clone(), *v);
    }
    let order = g.topo_order();
    let mut remaining_uses: HashMap<NodeId, usize> = HashMap::new();
    for &id in &order {
        for i in g.inputs_of(id) {
            *remaining_uses.entry(i).or_default() += 1;
        }
    }
    let outputs: std::collections::HashSet<NodeId> = g.outputs().iter().map(|o| o.1).collect();
    let in_place = constants_read_in_place(g, &order, &outputs);
    let mut vals: HashMap<NodeId, Val> = HashMap::new();
    for id in order {
        let n = g.node(id);
        let ins_ids = g.inputs_of(id);
        if in_place.contains(&id) {
            continue;
        }
        let err = |msg| IrError::Eval {
            node: n.name.clone(),
            op: n.op.name(),
            msg,
        };
        let val = if let Some(v) = eval_in_place(g, &n.op, &ins_ids, &vals, &in_place) {
            v.map_err(err)?
        } else {
            let ins: Vec<&Val> = ins_ids.iter().map(|i| &vals[i]).collect();
            let in_dtypes: Vec<DType> = ins_ids.iter().map(|&i| g.node(i).ty.dtype).collect();
            let out_shape: Vec<usize> =
                n.ty.shape
                    .iter()
                    .map(|d| {
                        d.eval(&bindings)
                            .map(|v| v as usize)
                            .map_err(|s| format!("dim {d} uses unbound '{}'", s.symbol))
                    })
                    .collect::<Result<_, _>>()
                    .map_err(err)?;
            if let Op::StateAppend {
                state,
                state_shape,
                offset,
            } = &n.op
            {
                let offset = offset
                    .eval(&bindings)
                    .map_err(|s| err(format!("offset uses unbound '{s}'")))?;
                let (prefix, full) =
                    state_append(ins[0], states.get(state), state_shape, offset, n.ty.dtype).map_err(err)?;
                states.insert(state.clone(), full);
                prefix
            } else {
                eval_node(
                    &n.op,
                    n.ty.dtype,
                    &ins,
                    &in_dtypes,
                    inputs.get(&n.name),
                    &out_shape,
                    &bindings,
                )
                .map_err(err)?
            }
        };
        vals.insert(id, val);
        for i in ins_ids {
            let r = remaining_uses.get_mut(&i).expect("counted above");
            *r -= 1;
            if *r == 0 && !outputs.contains(&i) {
                vals.remove(&i);
            }
        }
    }
    Ok(g.outputs()
        .iter()
        .map(|(name, id)| {
            let v = &vals[id];
            (
                name.clone(),
                Tensor::from_f64(g.node(*id).ty.dtype, v.shape.clone(), &v.v),
            )
        })
        .collect())
}

/// Whether `op` reads a constant at input `pos` straight from its tensor instead of from an
/// f64 copy: QMatMul's and QGather's packed weight words and Gather's table (an LLM's embedding), the large
/// constants that would otherwise be converted in full on every evaluation.
fn reads_in_place(op: &Op, pos: usize, t: &Tensor) -> bool {
    match op {
        Op::QMatMul { .. } | Op::QGather { .. } => pos == 1 && matches!(t.data, crate::TensorData::U32(_)),
        Op::Gather { .. } => pos == 0,
        _ => false,
    }
}

/// The constants that only in-place readers use (never a graph output): they get no f64 value.
fn constants_read_in_place(
    g: &Graph,
    order: &[NodeId],
    outputs: &std::collections::HashSet<NodeId>,
) -> std::collections::HashSet<NodeId> {
    let mut candidates = std::collections::HashSet::new();
    let mut needs_value = std::collections::HashSet::new();
    for &id in order {
        for (pos, i) in g.inputs_of(id).into_iter().enumerate() {
            match &g.node(i).op {
                Op::Constant(t) if reads_in_place(&g.node(id).op, pos, t) => {
                    candidates.insert(i);
                }
                _ => {
                    needs_value.insert(i);
                }
            }
        }
    }
    candidates
        .into_iter()
        .filter(|i| !needs_value.contains(i) && !outputs.contains(i))
        .collect()
}

/// Evaluates a node whose constant input is read in place (see [`reads_in_place`]); `None`
/// when it has none.
fn eval_in_place(
    g: &Graph,
    op: &Op,
    ins: &[NodeId],
    vals: &HashMap<NodeId, Val>,
    in_place: &std::collections::HashSet<NodeId>,
) -> Option<Result<Val, String>> {
    let constant = |pos: usize| match ins.get(pos).map(|i| (in_place.contains(i), &g.node(*i).op)) {
        Some((true, Op::Constant(t))) => Some(t),
        _ => None,
    };
    match op {
        Op::QMatMul { block, n, k } => {
            let crate::TensorData::U32(words) = &constant(1)?.data else {
                return None;
            };
            Some(qmatmul(&vals[&ins[0]], words, *block, *n, *k))
        }
        Op::QGather { block, n, k } => {
            let crate::TensorData::U32(words) = &constant(1)?.data else {
                return None;
            };
            Some(qgather(&vals[&ins[0]], words, *block, *n, *k))
        }
        Op::Gather { axis } => {
            let t = constant(0)?;
            Some(gather(&t.shape, &vals[&ins[1]], *axis, |r| t.range_to_f64(r)))
        }
        _ => None,
    }
}

fn eval_node(
    op: &Op,
    dtype: DType,
    ins: &[&Val],
    in_dtypes: &[DType],
    input: Option<&Tensor>,
    out_shape: &[usize],
    bindings: &DimBindings,
) -> Result<Val, String> {
    let r = |v: f64| dtype.round(v);
    Ok(match op {
        Op::Input { name } => {
            let t = input.ok_or_else(|| format!("input '{name}' not given"))?;
            Val {
                shape: t.shape.clone(),
                v: t.to_f64(),
            }
        }
        Op::Constant(t) => Val {
            shape: t.shape.clone(),
            v: t.to_f64(),
        },
        Op::Unary(u) => Val {
            shape: ins[0].shape.clone(),
            v: ins[0].v.iter().map(|&x| r(unary_value(*u, x, in_dtypes[0]))).collect(),
        },
        Op::Binary(b) => {
            let is_int = in_dtypes[0].is_int();
            broadcast_map(&[ins[0], ins[1]], |x| r(binary_value(*b, x[0], x[1], is_int)))?
        }
        Op::Where => broadcast_map(&[ins[0], ins[1], ins[2]], |x| if x[0] != 0.0 { x[1] } else { x[2] })?,
        Op::Cast(to) => {
            let from = in_dtypes[0];
            Val {
                shape: ins[0].shape.clone(),
                v: ins[0].v.iter().map(|&x| cast(x, from, *to)).collect(),
            }
        }
        Op::Reduce { op, axes, keep_dims } => reduce(ins[0], *op, axes, *keep_dims, dtype),
        Op::ArgReduce {
            max,
            axis,
            keep_dims,
            select_last,
        } => arg_reduce(ins[0], *max, *axis, *keep_dims, *select_last),
        Op::MatMul => matmul(ins[0], ins[1], dtype),
        Op::Reshape { .. } => Val {
            shape: out_shape.to_vec(),
            v: ins[0].v.clone(),
        },
        Op::Transpose { perm } => transpose(ins[0], perm),
        Op::Slice { axes } => slice(ins[0], axes),
        Op::Concat { axis } => concat(ins, *axis),
        Op::Gather { axis } => gather(&ins[0].shape, ins[1], *axis, |r| ins[0].v[r].to_vec())?,
        Op::Expand { .. } => {
            let target = Val {
                shape: out_shape.to_vec(),
                v: vec![],
            };
            let mut out = broadcast_map_to(&[ins[0]], &target.shape, |x| x[0]);
            out.shape = out_shape.to_vec();
            out
        }
        Op::Softmax { axis, log } => softmax(ins[0], *axis, *log, dtype),
        Op::LayerNorm { axis, epsilon } => layer_norm(ins, *axis, *epsilon as f64, dtype)?,
        Op::QMatMul { block, n, k } => {
            let words: Vec<u32> = ins[1].v.iter().map(|&v| v as u32).collect();
            qmatmul(ins[0], &words, *block, *n, *k)?
        }
        Op::QGather { block, n, k } => {
            let words: Vec<u32> = ins[1].v.iter().map(|&v| v as u32).collect();
            qgather(ins[0], &words, *block, *n, *k)?
        }
        Op::RmsNorm { axis, epsilon } => layer_norm(ins, *axis, *epsilon as f64, dtype)?,
        Op::QuantizeQ8 => quantize_q8(ins[0]),
        Op::TopK { k, axis, largest } => top_k(ins[0], *k, *axis, *largest),
        Op::Sample => sample(ins[0], ins[1], ins[2]),
        Op::ScatterNd { reduction } => scatter_nd(ins, *reduction, dtype)?,
        Op::Conv {
            strides,
            pads,
            dilations,
            groups,
        } => conv(ins, out_shape, strides, pads, dilations, *groups, dtype),
        Op::StateAppend { .. } => unreachable!("evaluated by evaluate_with"),
        Op::Compute { expr, .. } => {
            let shapes: Vec<Vec<usize>> = ins.iter().map(|v| v.shape.clone()).collect();
            let values: Vec<&[f64]> = ins.iter().map(|v| v.v.as_slice()).collect();
            let cx = crate::expr::EvalCtx {
                shapes: &shapes,
                values: &values,
                dtypes: in_dtypes,
                bindings,
            };
            let n: usize = out_shape.iter().product();
            let mut coord = vec![0i64; out_shape.len()];
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(dtype.round(crate::expr::eval(expr, &coord, &cx)));
                for ax in (0..out_shape.len()).rev() {
                    coord[ax] += 1;
                    if coord[ax] < out_shape[ax] as i64 {
                        break;
                    }
                    coord[ax] = 0;
                }
            }
            Val {
                shape: out_shape.to_vec(),
                v,
            }
        }
    })
}

/// Writes `update` into rows `offset..` of a state (zeros when `old` is `None`); returns the
/// written prefix and the whole new state.
fn state_append(
    update: &Val,
    old: Option<&Tensor>,
    state_shape: &[usize],
    offset: i64,
    dtype: DType,
) -> Result<(Val, Tensor), String> {
    let row: usize = state_shape[1..].iter().product();
    let total: usize = state_shape.iter().product();
    let mut full = match old {
        Some(t) if t.shape == state_shape => t.to_f64(),
        Some(t) => return Err(format!("state has shape {:?}, expected {state_shape:?}", t.shape)),
        None => vec![0.0; total],
    };
    let n = update.shape[0];
    let offset = usize::try_from(offset).map_err(|_| format!("negative offset {offset}"))?;
    if offset + n > state_shape[0] {
        return Err(format!(
            "writes rows {offset}..{} of a state with {} rows",
            offset + n,
            state_shape[0]
        ));
    }
    full[offset * row..(offset + n) * row].copy_from_slice(&update.v);
    let mut shape = state_shape.to_vec();
    shape[0] = offset + n;
    let prefix = Val {
        shape,
        v: full[..(offset + n) * row].to_vec(),
    };
    Ok((prefix, Tensor::from_f64(dtype, state_shape.to_vec(), &full)))
}

/// Maps `f` over the broadcast of the operands (numpy rules).
fn broadcast_map(ins: &[&Val], f: impl Fn(&[f64]) -> f64) -> Result<Val, String> {
    let rank = ins.iter().map(|v| v.shape.len()).max().unwrap_or(0);
    let mut shape = vec![1usize; rank];
    for v in ins {
        for (i, &d) in v.shape.iter().enumerate() {
            let o = &mut shape[rank - v.shape.len() + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(format!(
                    "shapes {:?} do not broadcast",
                    ins.iter().map(|v| &v.shape).collect::<Vec<_>>()
                ));
            }
        }
    }
    Ok(broadcast_map_to(ins, &shape, f))
}

/// Maps `f` over `shape`, reading each operand at its broadcast position.
fn broadcast_map_to(ins: &[&Val], shape: &[usize], f: impl Fn(&[f64]) -> f64) -> Val {
    let rank = shape.len();
    let n: usize = shape.iter().product();
    let in_strides: Vec<Vec<usize>> = ins
        .iter()
        .map(|v| {
            let s = strides(&v.shape);
            let mut full = vec![0usize; rank];
            for (i, &d) in v.shape.iter().enumerate() {
                full[rank - v.shape.len() + i] = if d == 1 { 0 } else { s[i] };
            }
            full
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    let mut coord = vec![0usize; rank];
    let mut args = vec![0.0; ins.len()];
    for _ in 0..n {
        for (k, v) in ins.iter().enumerate() {
            let off: usize = coord.iter().zip(&in_strides[k]).map(|(c, s)| c * s).sum();
            args[k] = v.v[off];
        }
        out.push(f(&args));
        for ax in (0..rank).rev() {
            coord[ax] += 1;
            if coord[ax] < shape[ax] {
                break;
            }
            coord[ax] = 0;
        }
    }
    Val {
        shape: shape.to_vec(),
        v: out,
    }
}

/// The exact value of a unary op (before rounding to the dtype).
pub fn unary_value(u: UnaryOp, x: f64, dtype: DType) -> f64 {
    use UnaryOp::*;
    match u {
        Neg => -x,
        Abs => x.abs(),
        Exp => x.exp(),
        Log => x.ln(),
        Sqrt => x.sqrt(),
        Rsqrt => 1.0 / x.sqrt(),
        Reciprocal => 1.0 / x,
        Sin => x.sin(),
        Cos => x.cos(),
        Tanh => x.tanh(),
        Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Relu => x.max(0.0),
        Erf => erf(x),
        Floor => x.floor(),
        Ceil => x.ceil(),
        Round => round_half_even(x),
        Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        }
        Not => (x == 0.0) as u8 as f64,
        LeakyRelu(a) => {
            if x >= 0.0 {
                x
            } else {
                dtype.round(a as f64) * x
            }
        }
        Elu(a) => {
            if x > 0.0 {
                x
            } else {
                dtype.round(a as f64) * (x.exp() - 1.0)
            }
        }
        // max(x, 0) + log1p(exp(-|x|)): exp(x) would overflow for x > 88.
        Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
        IsNan => x.is_nan() as u8 as f64,
    }
}

/// Round half to even (IEEE roundTiesToEven), as WGSL's `round`.
pub fn round_half_even(x: f64) -> f64 {
    x.round_ties_even()
}

/// Error function: Maclaurin series below 2.5, erfc continued fraction above (~1e-15 accurate).
pub fn erf(x: f64) -> f64 {
    if x.is_nan() || x == 0.0 {
        return x;
    }
    let ax = x.abs();
    let r = if ax < 2.5 {
        // Maclaurin series: erf x = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
        let mut sum = 0.0;
        let mut term = ax;
        let x2 = ax * ax;
        let mut n = 0.0;
        loop {
            let t = term / (2.0 * n + 1.0);
            sum += t;
            if t.abs() <= 1e-17 * sum.abs() {
                break;
            }
            n += 1.0;
            term *= -x2 / n;
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else if ax > 6.0 {
        1.0
    } else {
        // Continued fraction for erfc (Lentz), converges fast for x >= 2.5.
        let x2 = ax * ax;
        let mut f = ax;
        let mut c = ax;
        let mut d = 0.0;
        for k in 1..200 {
            let a = k as f64 * 0.5;
            d = ax + a * d;
            d = if d == 0.0 { 1e-300 } else { 1.0 / d };
            c = ax + a / c;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        // f approximates x + 1/2/(x + 1/(x + ...)); erfc = exp(-x^2)/sqrt(pi) / f
        1.0 - (-x2).exp() / std::f64::consts::PI.sqrt() / f
    };
    r.copysign(x)
}

/// The exact value of a binary op (before rounding to the dtype).
pub fn binary_value(b: BinaryOp, x: f64, y: f64, is_int: bool) -> f64 {
    use BinaryOp::*;
    let t = |c: bool| c as u8 as f64;
    match b {
        Add => x + y,
        Sub => x - y,
        Mul => x * y,
        Div => {
            if is_int {
                if y == 0.0 {
                    0.0
                } else {
                    (x / y).trunc()
                }
            } else {
                x / y
            }
        }
        Pow => x.powf(y),
        Max => {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                x.max(y)
            }
        }
        Min => {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                x.min(y)
            }
        }
        Mod => {
            if is_int {
                if y == 0.0 {
                    0.0
                } else {
                    x - y * (x / y).floor()
                }
            } else {
                x % y
            }
        }
        Equal => t(x == y),
        Less => t(x < y),
        LessEqual => t(x <= y),
        Greater => t(x > y),
        GreaterEqual => t(x >= y),
        And => t(x != 0.0 && y != 0.0),
        Or => t(x != 0.0 || y != 0.0),
        Xor => t((x != 0.0) != (y != 0.0)),
    }
}

/// Converts a value between dtypes: float to int truncates toward zero and saturates (as WGSL
/// does); NaN becomes 0.
pub fn cast(x: f64, from: DType, to: DType) -> f64 {
    if from.is_float() && to.is_int() {
        let (lo, hi) = match to {
            DType::I32 => (i32::MIN as f64, i32::MAX as f64),
            DType::U32 => (0.0, u32::MAX as f64),
            DType::I8 => (-128.0, 127.0),
            _ => (0.0, 255.0),
        };
        if x.is_nan() {
            return 0.0;
        }
        return x.trunc().clamp(lo, hi);
    }
    to.round(x)
}

/// The value whose 32-bit pattern as `to` equals that of `x` as `from` (f32, i32 or u32; any
/// other pair leaves the value unchanged, as [`crate::Expr::Bitcast`] accepts only these).
pub fn bitcast(x: f64, from: DType, to: DType) -> f64 {
    let bits: u32 = match from {
        DType::F32 => (x as f32).to_bits(),
        DType::I32 => x as i32 as u32,
        DType::U32 => x as u32,
        _ => return x,
    };
    match to {
        DType::F32 => f32::from_bits(bits) as f64,
        DType::I32 => bits as i32 as f64,
        DType::U32 => bits as f64,
        _ => x,
    }
}

fn reduce(x: &Val, op: ReduceOp, axes: &[usize], keep_dims: bool, dtype: DType) -> Val {
    let rank = x.shape.len();
    let out_full: Vec<usize> = x
        .shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let out_strides = strides(&out_full);
    let n_out: usize = out_full.iter().product();
    let count: usize = axes.iter().map(|&a| x.shape[a]).product();
    let init = match op {
        ReduceOp::Sum | ReduceOp::Mean => 0.0,
        ReduceOp::Prod => 1.0,
        ReduceOp::Max => f64::NEG_INFINITY,
        ReduceOp::Min => f64::INFINITY,
    };
    let mut acc = vec![init; n_out];
    let mut coord = vec![0usize; rank];
    for &v in &x.v {
        let o: usize = (0..rank)
            .map(|i| {
                if axes.contains(&i) {
                    0
                } else {
                    coord[i] * out_strides[i]
                }
            })
            .sum();
        let a = &mut acc[o];
        *a = match op {
            ReduceOp::Sum | ReduceOp::Mean => *a + v,
            ReduceOp::Prod => *a * v,
            ReduceOp::Max => {
                if v.is_nan() || a.is_nan() {
                    f64::NAN
                } else {
                    a.max(v)
                }
            }
            ReduceOp::Min => {
                if v.is_nan() || a.is_nan() {
                    f64::NAN
                } else {
                    a.min(v)
                }
            }
        };
        for ax in (0..rank).rev() {
            coord[ax] += 1;
            if coord[ax] < x.shape[ax] {
                break;
            }
            coord[ax] = 0;
        }
    }
    if op == ReduceOp::Mean {
        for a in &mut acc {
            *a /= count as f64;
        }
    }
    let shape = if keep_dims {
        out_full
    } else {
        x.shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect()
    };
    Val {
        shape,
        v: acc.into_iter().map(|a| dtype.round(a)).collect(),
    }
}

fn arg_reduce(x: &Val, max: bool, axis: usize, keep_dims: bool, select_last: bool) -> Val {
    let outer: usize = x.shape[..axis].iter().product();
    let n = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let mut best = 0usize;
            for k in 1..n {
                let (v, b) = (x.v[(o * n + k) * inner + i], x.v[(o * n + best) * inner + i]);
                let better = if max { v > b } else { v < b };
                if better || (select_last && v == b) {
                    best = k;
                }
            }
            out.push(best as f64);
        }
    }
    let mut shape = x.shape.clone();
    if keep_dims {
        shape[axis] = 1;
    } else {
        shape.remove(axis);
    }
    Val { shape, v: out }
}

/// `x · Wᵀ` with W dequantized from its packed words one block at a time; f64 accumulation of
/// the f32 products in order along K, rounded to f32 once, like every other f32 op here.
fn qmatmul(x: &Val, words: &[u32], block: crate::BlockType, n: usize, k: usize) -> Result<Val, String> {
    let (elems, bb) = (block.block_elems(), block.block_bytes());
    if !k.is_multiple_of(elems) {
        return Err(format!(
            "K = {k} is not a whole number of {elems}-element {block:?} blocks"
        ));
    }
    let per_row = k / elems;
    let need = n * per_row * bb;
    if words.len() * 4 < need {
        return Err(format!(
            "{n} x {k} {block:?} weights need {need} bytes, the packed tensor has {}",
            words.len() * 4
        ));
    }
    let byte = |p: usize| (words[p / 4] >> (8 * (p % 4))) as u8;
    let rows = x.v.len() / k.max(1);
    let mut out = vec![0.0; rows * n];
    let mut acc = vec![0.0f64; rows];
    let (mut packed, mut w) = (vec![0u8; bb], vec![0.0f32; elems]);
    for j in 0..n {
        acc.fill(0.0);
        for b in 0..per_row {
            let start = (j * per_row + b) * bb;
            for (i, v) in packed.iter_mut().enumerate() {
                *v = byte(start + i);
            }
            crate::quant::dequantize_block(block, &packed, &mut w);
            for (r, a) in acc.iter_mut().enumerate() {
                let xs = &x.v[r * k + b * elems..r * k + (b + 1) * elems];
                let mut s = *a;
                for (&xv, &wv) in xs.iter().zip(&w) {
                    s += xv * wv as f64;
                }
                *a = s;
            }
        }
        for (r, a) in acc.iter().enumerate() {
            out[r * n + j] = *a as f32 as f64;
        }
    }
    let mut shape = x.shape.clone();
    if let Some(l) = shape.last_mut() {
        *l = n;
    }
    Ok(Val { shape, v: out })
}

/// Rows `idx` of the packed `[n, k]` table `w`, each decoded on its own (rows are whole blocks).
fn qgather(idx: &Val, words: &[u32], block: crate::BlockType, n: usize, k: usize) -> Result<Val, String> {
    let bytes = crate::quant::words_to_bytes(words);
    let row_bytes = k / block.block_elems().max(1) * block.block_bytes();
    let mut v = Vec::with_capacity(idx.v.len() * k);
    for &i in &idx.v {
        let r = if i < 0.0 { i + n as f64 } else { i };
        if r < 0.0 || r >= n as f64 {
            return Err(format!("index {i} out of range for a table of {n} rows"));
        }
        let at = r as usize * row_bytes;
        let row = crate::quant::dequantize(block, &bytes[at..at + row_bytes], k).map_err(|e| e.to_string())?;
        v.extend(row.iter().map(|&x| x as f64));
    }
    let mut shape = idx.shape.clone();
    shape.push(k);
    Ok(Val { shape, v })
}

fn matmul(a: &Val, b: &Val, dtype: DType) -> Val {
    let mut sa = a.shape.clone();
    let mut sb = b.shape.clone();
    if sa.len() == 1 {
        sa.insert(0, 1);
    }
    if sb.len() == 1 {
        sb.push(1);
    }
    let (m, k, n) = (sa[sa.len() - 2], sa[sa.len() - 1], sb[sb.len() - 1]);
    let ba = &sa[..sa.len() - 2];
    let bb = &sb[..sb.len() - 2];
    let rank = ba.len().max(bb.len());
    let pad = |s: &[usize]| {
        let mut p = vec![1usize; rank - s.len()];
        p.extend_from_slice(s);
        p
    };
    let (pa, pb) = (pad(ba), pad(bb));
    // Numpy broadcasting: a 1 takes the other side's size, including 0 (not `max`, which
    // would turn a [0] x [1] batch into 1 and index an empty operand).
    let batch: Vec<usize> = pa.iter().zip(&pb).map(|(&x, &y)| if x == 1 { y } else { x }).collect();
    let (sta, stb) = (strides(&pa), strides(&pb));
    let nb: usize = batch.iter().product();
    let mut out = vec![0.0; nb * m * n];
    let mut coord = vec![0usize; rank];
    for bi in 0..nb {
        let oa: usize = (0..rank)
            .map(|i| if pa[i] == 1 { 0 } else { coord[i] * sta[i] })
            .sum::<usize>()
            * m
            * k;
        let ob: usize = (0..rank)
            .map(|i| if pb[i] == 1 { 0 } else { coord[i] * stb[i] })
            .sum::<usize>()
            * k
            * n;
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    s += a.v[oa + i * k + p] * b.v[ob + p * n + j];
                }
                out[(bi * m + i) * n + j] = dtype.round(s);
            }
        }
        for ax in (0..rank).rev() {
            coord[ax] += 1;
            if coord[ax] < batch[ax] {
                break;
            }
            coord[ax] = 0;
        }
    }
    let mut shape = batch;
    if a.shape.len() > 1 {
        shape.push(m);
    }
    if b.shape.len() > 1 {
        shape.push(n);
    }
    Val { shape, v: out }
}

fn transpose(x: &Val, perm: &[usize]) -> Val {
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let st = strides(&x.shape);
    let mut v = Vec::with_capacity(x.v.len());
    let mut coord = vec![0usize; shape.len()];
    for _ in 0..x.v.len() {
        v.push(x.v[coord.iter().zip(perm).map(|(c, &p)| c * st[p]).sum::<usize>()]);
        for ax in (0..shape.len()).rev() {
            coord[ax] += 1;
            if coord[ax] < shape[ax] {
                break;
            }
            coord[ax] = 0;
        }
    }
    Val { shape, v }
}

fn slice(x: &Val, axes: &[crate::SliceAxis]) -> Val {
    let rank = x.shape.len();
    let mut start = vec![0i64; rank];
    let mut step = vec![1i64; rank];
    let mut shape = x.shape.clone();
    for s in axes {
        let (st, len) = resolve_slice(x.shape[s.axis] as i64, s);
        start[s.axis] = st;
        step[s.axis] = s.step;
        shape[s.axis] = len as usize;
    }
    let st = strides(&x.shape);
    let n: usize = shape.iter().product();
    let mut v = Vec::with_capacity(n);
    let mut coord = vec![0usize; rank];
    for _ in 0..n {
        let off: i64 = (0..rank)
            .map(|i| (start[i] + coord[i] as i64 * step[i]) * st[i] as i64)
            .sum();
        v.push(x.v[off as usize]);
        for ax in (0..rank).rev() {
            coord[ax] += 1;
            if coord[ax] < shape[ax] {
                break;
            }
            coord[ax] = 0;
        }
    }
    Val { shape, v }
}

fn concat(ins: &[&Val], axis: usize) -> Val {
    let mut shape = ins[0].shape.clone();
    shape[axis] = ins.iter().map(|v| v.shape[axis]).sum();
    let outer: usize = shape[..axis].iter().product();
    let mut v = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for x in ins {
            let chunk: usize = x.shape[axis..].iter().product();
            v.extend_from_slice(&x.v[o * chunk..(o + 1) * chunk]);
        }
    }
    Val { shape, v }
}

/// Gather along `axis` of data of shape `data_shape`; `read` gives the data's elements at a
/// range of flat positions.
fn gather(
    data_shape: &[usize],
    idx: &Val,
    axis: usize,
    read: impl Fn(std::ops::Range<usize>) -> Vec<f64>,
) -> Result<Val, String> {
    let outer: usize = data_shape[..axis].iter().product();
    let n = data_shape[axis];
    let inner: usize = data_shape[axis + 1..].iter().product();
    let mut v = Vec::with_capacity(outer * idx.v.len() * inner);
    for o in 0..outer {
        for &i in &idx.v {
            let k = if i < 0.0 { i + n as f64 } else { i };
            if k < 0.0 || k >= n as f64 {
                return Err(format!("index {i} out of range for axis {axis} of size {n}"));
            }
            let base = (o * n + k as usize) * inner;
            v.extend(read(base..base + inner));
        }
    }
    let mut shape = data_shape[..axis].to_vec();
    shape.extend_from_slice(&idx.shape);
    shape.extend_from_slice(&data_shape[axis + 1..]);
    Ok(Val { shape, v })
}

fn softmax(x: &Val, axis: usize, log: bool, dtype: DType) -> Val {
    let outer: usize = x.shape[..axis].iter().product();
    let n = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let mut v = x.v.clone();
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * n + k) * inner + i;
            let m = (0..n).map(|k| x.v[at(k)]).fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..n).map(|k| (x.v[at(k)] - m).exp()).sum();
            for k in 0..n {
                let e = x.v[at(k)] - m;
                v[at(k)] = dtype.round(if log { e - s.ln() } else { e.exp() / s });
            }
        }
    }
    Val {
        shape: x.shape.clone(),
        v,
    }
}

/// Layer norm (inputs x, scale, bias) or, with two inputs, RMS norm (x, scale: no mean
/// subtracted, no bias).
/// [`Op::QuantizeQ8`]: [`crate::quant::round_q8`] over the last axis.
fn quantize_q8(x: &Val) -> Val {
    let x32: Vec<f32> = x.v.iter().map(|&e| e as f32).collect();
    Val {
        shape: x.shape.clone(),
        v: crate::quant::round_q8(&x32).into_iter().map(f64::from).collect(),
    }
}

fn layer_norm(ins: &[&Val], axis: usize, eps: f64, dtype: DType) -> Result<Val, String> {
    let x = ins[0];
    let rms = ins.len() == 2;
    let rows: usize = x.shape[..axis].iter().product();
    let len: usize = x.shape[axis..].iter().product();
    let norm_shape = &x.shape[axis..];
    let expand = |p: &Val| broadcast_map_to(&[p], norm_shape, |a| a[0]).v;
    let scale = expand(ins[1]);
    let bias = if rms { vec![0.0; len] } else { expand(ins[2]) };
    let mut v = vec![0.0; x.v.len()];
    for r in 0..rows {
        let row = &x.v[r * len..(r + 1) * len];
        let mean = if rms { 0.0 } else { row.iter().sum::<f64>() / len as f64 };
        let var = row.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / len as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for k in 0..len {
            v[r * len + k] = dtype.round((row[k] - mean) * inv * scale[k] + bias[k]);
        }
    }
    Ok(Val {
        shape: x.shape.clone(),
        v,
    })
}

fn conv(
    ins: &[&Val],
    out_shape: &[usize],
    strides: &[usize],
    pads: &[(usize, usize)],
    dilations: &[usize],
    groups: usize,
    dtype: DType,
) -> Val {
    let (x, w) = (ins[0], ins[1]);
    let sp = x.shape.len() - 2;
    let (n, c, oc) = (x.shape[0], x.shape[1], w.shape[0]);
    let (cg, ocg) = (c / groups, oc / groups);
    let in_sp = &x.shape[2..];
    let k_sp = &w.shape[2..];
    let out_sp = &out_shape[2..];
    let kk: usize = k_sp.iter().product();
    let p: usize = out_sp.iter().product();
    let in_sz: usize = in_sp.iter().product();
    let mut out = vec![0.0; n * oc * p];
    let mut opos = vec![0usize; sp];
    let mut kpos = vec![0usize; sp];
    for b in 0..n {
        for o in 0..oc {
            let g = o / ocg;
            for pi in 0..p {
                let mut r = pi;
                for a in (0..sp).rev() {
                    opos[a] = r % out_sp[a];
                    r /= out_sp[a];
                }
                let mut acc = ins.get(2).map(|bias| bias.v[o]).unwrap_or(0.0);
                for ci in 0..cg {
                    let ch = g * cg + ci;
                    for ki in 0..kk {
                        let mut r = ki;
                        for a in (0..sp).rev() {
                            kpos[a] = r % k_sp[a];
                            r /= k_sp[a];
                        }
                        let mut off = 0usize;
                        let mut inside = true;
                        for a in 0..sp {
                            let pos = (opos[a] * strides[a] + kpos[a] * dilations[a]) as i64 - pads[a].0 as i64;
                            if pos < 0 || pos >= in_sp[a] as i64 {
                                inside = false;
                                break;
                            }
                            off = off * in_sp[a] + pos as usize;
                        }
                        if inside {
                            acc += x.v[(b * c + ch) * in_sz + off] * w.v[(o * cg + ci) * kk + ki];
                        }
                    }
                }
                out[(b * oc + o) * p + pi] = dtype.round(acc);
            }
        }
    }
    Val {
        shape: out_shape.to_vec(),
        v: out,
    }
}

/// [`Op::Sample`]: each row of logits through [`crate::sample::sample_row`].
fn sample(logits: &Val, params: &Val, recent: &Val) -> Val {
    let (rows, vocab) = (logits.shape[0], logits.shape[1]);
    let p: Vec<i32> = params.v.iter().map(|&x| x as i32).collect();
    let r: Vec<i32> = recent.v.iter().map(|&x| x as i32).collect();
    let v = (0..rows)
        .map(|row| {
            let l: Vec<f32> = logits.v[row * vocab..(row + 1) * vocab]
                .iter()
                .map(|&x| x as f32)
                .collect();
            crate::sample::sample_row(&l, &p, &r, row as u32) as f64
        })
        .collect();
    Val { shape: vec![rows], v }
}

fn top_k(x: &Val, k: usize, axis: usize, largest: bool) -> Val {
    let outer: usize = x.shape[..axis].iter().product();
    let n = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let mut out = vec![0.0; outer * k * inner];
    for o in 0..outer {
        for i in 0..inner {
            let mut idx: Vec<usize> = (0..n).collect();
            let at = |t: usize| x.v[(o * n + t) * inner + i];
            idx.sort_by(|&a, &b| {
                let ord = at(a).partial_cmp(&at(b)).unwrap_or(std::cmp::Ordering::Equal);
                let ord = if largest { ord.reverse() } else { ord };
                ord.then(a.cmp(&b))
            });
            for (j, &t) in idx.iter().take(k).enumerate() {
                out[(o * k + j) * inner + i] = t as f64;
            }
        }
    }
    let mut shape = x.shape.clone();
    shape[axis] = k;
    Val { shape, v: out }
}

fn scatter_nd(ins: &[&Val], reduction: crate::ScatterReduction, dtype: DType) -> Result<Val, String> {
    use crate::ScatterReduction as R;
    let (data, indices, updates) = (ins[0], ins[1], ins[2]);
    let m = *indices.shape.last().unwrap_or(&0);
    let rows: usize = indices.shape[..indices.shape.len() - 1].iter().product();
    let slice: usize = data.shape[m..].iter().product();
    let st = strides(&data.shape);
    let mut out = data.v.clone();
    for u in 0..rows {
        let mut off = 0usize;
        for (a, (&size, &stride)) in data.shape.iter().zip(&st).enumerate().take(m) {
            let mut ix = indices.v[u * m + a] as i64;
            let d = size as i64;
            if ix < 0 {
                ix += d;
            }
            if ix < 0 || ix >= d {
                return Err(format!(
                    "scatter index {} out of range for axis {a} of size {d}",
                    indices.v[u * m + a]
                ));
            }
            off += ix as usize * stride;
        }
        for e in 0..slice {
            let (o, v) = (&mut out[off + e], updates.v[u * slice + e]);
            *o = dtype.round(match reduction {
                R::None => v,
                R::Add => *o + v,
                R::Mul => *o * v,
                R::Max => o.max(v),
                R::Min => o.min(v),
            });
        }
    }
    Ok(Val {
        shape: data.shape.clone(),
        v: out,
    })
}

#[cfg(test)]
mod tests {
    use super::erf;
    use std::collections::HashMap;

    #[test]
    fn erf_matches_known_values_and_terminates_at_zero() {
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(0.5) - 0.520_499_877_813_046_5).abs() < 1e-15);
        assert!((erf(-1.0) + 0.842_700_792_949_714_9).abs() < 1e-15);
        assert!((erf(3.0) - 0.999_977_909_503_001_4).abs() < 1e-15);
        assert_eq!(erf(7.0), 1.0);
    }

    /// A zero-size batch broadcast against a batch of 1 is empty (it used to index the empty
    /// operand and panic when a MatMul over a zero-size initializer was constant-folded).
    #[test]
    fn matmul_with_an_empty_batch_is_empty_not_a_panic() {
        use crate::{DType, Graph, Op, Tensor};
        let mut g = Graph::new();
        let a = g.add_const("a", Tensor::f32(vec![0, 2, 3], vec![]));
        let b = g.add_const("b", Tensor::f32(vec![1, 3, 4], vec![1.0; 12]));
        let y = g.add("mm", Op::MatMul, &[a, b]).unwrap();
        g.add_output("y", y);
        let out = super::evaluate(&g, &Default::default()).unwrap();
        assert_eq!(out["y"].shape, vec![0, 2, 4]);
        assert_eq!(out["y"].numel(), 0);
        assert_eq!(out["y"].dtype(), DType::F32);
    }

    /// Constants read in place (QMatMul's packed words, Gather's table) give exactly what the
    /// same tensors give as graph inputs, which go through the f64 values; Q4_0 and Q8_0 blocks
    /// (18 and 34 bytes) straddle word boundaries.
    #[test]
    fn constants_read_in_place_equal_the_same_tensors_as_inputs() {
        use crate::{quant, BlockType, DType, Graph, Op, Tensor, TensorType};
        let (n, k, rows) = (5, 96, 3);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 13 % 29) as f32 - 14.0) / 6.0).collect();
        let x = Tensor::f32(vec![rows, k], (0..rows * k).map(|i| (i as f32 * 0.11).cos()).collect());
        let table = Tensor::f32(vec![7, 4], (0..28).map(|i| i as f32 * 0.5 - 3.0).collect());
        let idx = Tensor::i32(vec![2, 2], vec![6, 0, -1, 3]);
        for block in [BlockType::Q4_0, BlockType::Q4_1, BlockType::Q8_0] {
            let packed = quant::packed_tensor(block, n, k, &quant::quantize(block, &w).unwrap()).unwrap();
            let build = |as_input: bool| {
                let mut g = Graph::new();
                let xi = g.add_input("x", TensorType::new(DType::F32, &[rows, k]));
                let ii = g.add_input("i", TensorType::new(DType::I32, &[2, 2]));
                let (wq, t) = if as_input {
                    (
                        g.add_input("wq", packed.ty()),
                        g.add_input("t", TensorType::new(DType::F32, &[7, 4])),
                    )
                } else {
                    (g.add_const("wq", packed.clone()), g.add_const("t", table.clone()))
                };
                let y = g.add("y", Op::QMatMul { block, n, k }, &[xi, wq]).unwrap();
                let e = g.add("e", Op::Gather { axis: 0 }, &[t, ii]).unwrap();
                g.add_output("y", y);
                g.add_output("e", e);
                g
            };
            let mut inputs: HashMap<String, Tensor> = [("x".into(), x.clone()), ("i".into(), idx.clone())].into();
            let consts = super::evaluate(&build(false), &inputs).unwrap();
            inputs.insert("wq".into(), packed.clone());
            inputs.insert("t".into(), table.clone());
            let plain = super::evaluate(&build(true), &inputs).unwrap();
            assert_eq!(consts["y"], plain["y"], "{block:?}");
            assert_eq!(consts["e"], plain["e"]);
            assert_eq!(plain["e"].to_f32()[..4], table.to_f32()[24..28]);
            // And both equal the product with the whole matrix dequantized up front.
            let wq = quant::dequantize(block, &quant::quantize(block, &w).unwrap(), n * k).unwrap();
            let xv = x.to_f32();
            for r in 0..rows {
                for j in 0..n {
                    let want: f64 = (0..k).map(|p| xv[r * k + p] as f64 * wq[j * k + p] as f64).sum();
                    assert_eq!(consts["y"].to_f32()[r * n + j], want as f32, "{block:?} {r},{j}");
                }
            }
        }
    }

    #[test]
    fn qmatmul_is_x_times_dequantized_w_transposed() {
        use crate::{quant, BlockType, DType, Graph, Op, Tensor, TensorType};
        let (n, k) = (3, 64);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7 % 23) as f32 - 11.0) / 8.0).collect();
        let bytes = quant::quantize(BlockType::Q4_1, &w).unwrap();
        let wq = quant::dequantize(BlockType::Q4_1, &bytes, n * k).unwrap();
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[2, k]));
        let c = g.add_const("w", quant::packed_tensor(BlockType::Q4_1, n, k, &bytes).unwrap());
        let y = g
            .add(
                "y",
                Op::QMatMul {
                    block: BlockType::Q4_1,
                    n,
                    k,
                },
                &[x, c],
            )
            .unwrap();
        assert_eq!(g.node(y).ty, TensorType::new(DType::F32, &[2, n]));
        g.add_output("y", y);
        let xv: Vec<f32> = (0..2 * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let inputs = [("x".to_string(), Tensor::f32(vec![2, k], xv.clone()))]
            .into_iter()
            .collect();
        let out = super::evaluate(&g, &inputs).unwrap();
        let got = out["y"].to_f32();
        for r in 0..2 {
            for j in 0..n {
                let want: f64 = (0..k).map(|p| xv[r * k + p] as f64 * wq[j * k + p] as f64).sum();
                assert!((got[r * n + j] as f64 - want).abs() < 1e-5, "{r},{j}");
            }
        }
        // Wrong word count and a K that is not a whole block are inference errors.
        let bad = g.add_const(
            "bad",
            Tensor {
                shape: vec![5],
                data: crate::TensorData::U32(vec![0; 5]),
            },
        );
        assert!(g
            .add(
                "y2",
                Op::QMatMul {
                    block: BlockType::Q4_1,
                    n,
                    k
                },
                &[x, bad]
            )
            .is_err());
        assert!(g
            .add(
                "y3",
                Op::QMatMul {
                    block: BlockType::Q4_1,
                    n,
                    k: 48
                },
                &[x, c]
            )
            .is_err());
    }
}
