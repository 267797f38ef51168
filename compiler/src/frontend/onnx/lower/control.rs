//! Control flow: `If`, `Loop` and `Scan`, lowered into the straight-line graph.
//!
//! `If` with a compile-time condition lowers only the taken branch; with a run-time condition
//! both branches are lowered and every output is selected with `Where` (so both must have
//! compatible shapes and the same dtype). `Loop` needs a compile-time trip count or
//! condition and is unrolled; `Scan` is unrolled over its (compile-time) scan length.

use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::{Ints, Value};
use crate::frontend::onnx::OnnxError;
use kiln_ir::{Dim, NodeId, Op, SliceAxis};

/// Most iterations a `Loop` is unrolled to.
const MAX_UNROLL: usize = 4096;

/// The IR node of a value, for a lowering step of `n`.
fn node(cx: &mut Ctx, n: &N, what: &str, v: &Value) -> Result<NodeId, OnnxError> {
    cx.node_of(&n.sub(what), v).map_err(|m| n.err(format!("{what}: {m}")))
}

/// `If`.
pub(crate) fn if_(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let then_g = n.attr_g("then_branch")?;
    let else_g = n.attr_g("else_branch")?;
    if then_g.output.len() != else_g.output.len() {
        return Err(n.err(format!(
            "then_branch has {} outputs and else_branch {}",
            then_g.output.len(),
            else_g.output.len()
        )));
    }
    if let Some(c) = cx.ints(n, 0)? {
        let Some(vals) = c.consts() else {
            return Err(n.err("the condition depends on a symbolic dim; bind it with --dim"));
        };
        if vals.len() != 1 {
            return Err(n.err(format!("the condition must hold one value, got {}", vals.len())));
        }
        let (g, tag) = if vals[0] != 0 {
            (then_g, "then")
        } else {
            (else_g, "else")
        };
        return cx.lower_subgraph(n, g, &n.sub(tag), &[]);
    }
    let cond = cx.input(n, 0)?;
    let a = cx.lower_subgraph(n, then_g, &n.sub("then"), &[])?;
    let b = cx.lower_subgraph(n, else_g, &n.sub("else"), &[])?;
    let mut out = Vec::with_capacity(a.len());
    for (k, (va, vb)) in a.iter().zip(&b).enumerate() {
        let ia = node(cx, n, &format!("then{k}"), va)?;
        let ib = node(cx, n, &format!("else{k}"), vb)?;
        let (ta, tb) = (cx.ty(ia).clone(), cx.ty(ib).clone());
        if ta.dtype != tb.dtype {
            return Err(n.unsupported(format!(
                "with a run-time condition both branches are computed and selected, but output {k} is {} in then_branch and {} in else_branch",
                ta.describe(),
                tb.describe()
            )));
        }
        let id = cx.add(n, &format!("select{k}"), Op::Where, &[cond, ia, ib]).map_err(|e| {
            n.unsupported(format!(
                "with a run-time condition both branches are computed and selected, which needs outputs of compatible shapes: output {k}: {e}"
            ))
        })?;
        out.push(Value::Node(id));
    }
    Ok(out)
}

/// A scalar compile-time boolean.
fn bool_value(b: bool) -> Value {
    let mut v = Ints::from_i64(vec![], &[i64::from(b)]);
    v.boolean = true;
    Value::Ints(v)
}

/// The single compile-time value of an integer/boolean `Value`, if it is one.
fn const_scalar(cx: &Ctx, v: &Value) -> Option<i64> {
    let ints = match v {
        Value::Ints(x) => x.clone(),
        Value::Node(id) => match &cx.g.node(*id).op {
            Op::Constant(t) => {
                let vals = t.to_f64();
                return (vals.len() == 1).then(|| vals[0] as i64);
            }
            _ => return None,
        },
    };
    match ints.consts()?.as_slice() {
        [x] => Some(*x),
        _ => None,
    }
}

/// Stacks per-iteration values along a new axis `axis`.
fn stack(cx: &mut Ctx, n: &N, what: &str, vals: &[Value], axis: usize) -> Result<NodeId, OnnxError> {
    let mut parts = Vec::with_capacity(vals.len());
    for (i, v) in vals.iter().enumerate() {
        let id = node(cx, n, &format!("{what}/{i}"), v)?;
        let mut shape = cx.ty(id).shape.clone();
        if axis > shape.len() {
            return Err(n.err(format!(
                "{what}: axis {axis} is out of range for a rank-{} per-iteration value",
                shape.len()
            )));
        }
        shape.insert(axis, Dim::c(1));
        parts.push(cx.add(n, &format!("{what}/unsqueeze{i}"), Op::Reshape { shape }, &[id])?);
    }
    if parts.len() == 1 {
        return Ok(parts[0]);
    }
    cx.add(n, &format!("{what}/stack"), Op::Concat { axis }, &parts)
}

/// `Loop`, unrolled: the trip count (or the condition) must be known at compile time, and the
/// body's condition output must fold to a constant in every iteration.
pub(crate) fn loop_(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let body = n.attr_g("body")?;
    let trips = if cx.has_input(n, 0) {
        let m = cx.const_ints(n, 0, "M")?;
        let &[m] = m.as_slice() else {
            return Err(n.err(format!("input 'M' must hold one value, got {}", m.len())));
        };
        Some(m.max(0) as usize)
    } else {
        None
    };
    let mut cond = if cx.has_input(n, 1) {
        let c = cx.const_ints(n, 1, "cond")?;
        let &[c] = c.as_slice() else {
            return Err(n.err(format!("input 'cond' must hold one value, got {}", c.len())));
        };
        c != 0
    } else {
        true
    };
    let carried = n.n_inputs().saturating_sub(2);
    if body.input.len() != carried + 2 || body.output.len() < carried + 1 {
        return Err(n.err(format!(
            "the body has {} inputs and {} outputs; with {carried} loop-carried values it needs {} inputs and at least {} outputs",
            body.input.len(),
            body.output.len(),
            carried + 2,
            carried + 1
        )));
    }
    let mut state: Vec<Value> = (0..carried)
        .map(|k| {
            cx.value(n, 2 + k)?
                .cloned()
                .ok_or_else(|| n.err(format!("loop-carried input {} is missing", 2 + k)))
        })
        .collect::<Result<_, _>>()?;
    let n_scan = body.output.len() - 1 - carried;
    let mut scans: Vec<Vec<Value>> = vec![Vec::new(); n_scan];
    let limit = trips.unwrap_or(MAX_UNROLL + 1);
    let mut i = 0usize;
    while cond && i < limit {
        if i >= MAX_UNROLL {
            return Err(n.unsupported(format!(
                "the loop runs more than {MAX_UNROLL} iterations, the most Kiln unrolls"
            )));
        }
        let mut ins = vec![Value::Ints(Ints::from_i64(vec![], &[i as i64])), bool_value(cond)];
        ins.extend(state.iter().cloned());
        let outs = cx.lower_subgraph(n, body, &n.sub(&format!("iter{i}")), &ins)?;
        cond = match const_scalar(cx, &outs[0]) {
            Some(c) => c != 0,
            None => {
                return Err(n.unsupported(
                    "the body computes its condition at run time; Kiln unrolls loops and needs it at compile time",
                ))
            }
        };
        state = outs[1..=carried].to_vec();
        for (k, v) in outs[carried + 1..].iter().enumerate() {
            scans[k].push(v.clone());
        }
        i += 1;
    }
    let mut out = state;
    for (k, vals) in scans.iter().enumerate() {
        if vals.is_empty() {
            return Err(n.unsupported(format!(
                "scan output {k} of a loop that runs no iterations (its shape is unknown) is not supported"
            )));
        }
        out.push(Value::Node(stack(cx, n, &format!("scan{k}"), vals, 0)?));
    }
    Ok(out)
}

/// One value with `axis` indexed at `at` and removed.
fn take(cx: &mut Ctx, n: &N, what: &str, x: NodeId, axis: usize, at: i64) -> Result<NodeId, OnnxError> {
    let axes = vec![SliceAxis {
        axis,
        start: at,
        end: at + 1,
        step: 1,
    }];
    let s = cx.add(n, &format!("{what}/slice"), Op::Slice { axes }, &[x])?;
    let mut shape = cx.ty(s).shape.clone();
    shape.remove(axis);
    cx.add(n, &format!("{what}/squeeze"), Op::Reshape { shape }, &[s])
}

/// An ints attribute of one entry per value (default 0), each in `0..=rank` after adding
/// `rank` to negative ones when `ranks` is given.
fn per_value(n: &N, name: &str, count: usize) -> Result<Vec<i64>, OnnxError> {
    match n.attr_ints(name)? {
        Some(v) if v.len() == count => Ok(v),
        Some(v) => Err(n.err(format!("attribute '{name}' has {} entries for {count} values", v.len()))),
        None => Ok(vec![0; count]),
    }
}

/// `Scan` (opset 8 with its batch axis, and opset 9+), unrolled over the scan length.
pub(crate) fn scan(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let body = n.attr_g("body")?;
    let m = n
        .attr_i_opt("num_scan_inputs")?
        .ok_or_else(|| n.err("attribute 'num_scan_inputs' is required but missing"))? as usize;
    if n.opset < 9 {
        return scan8(cx, n, body, m);
    }
    let total = n.n_inputs();
    if m == 0 || m > total {
        return Err(n.err(format!("num_scan_inputs {m} does not fit its {total} inputs")));
    }
    let states: Vec<NodeId> = (0..total - m).map(|i| cx.input(n, i)).collect::<Result<_, _>>()?;
    let xs: Vec<NodeId> = (total - m..total).map(|i| cx.input(n, i)).collect::<Result<_, _>>()?;
    let out = scan_unrolled(cx, n, body, &states, &xs, "")?;
    Ok(out.into_iter().map(Value::Node).collect())
}

/// The opset-9 semantics on one batch row: `states` and the scan inputs `xs`.
fn scan_unrolled(
    cx: &mut Ctx,
    n: &N,
    body: &crate::frontend::onnx::proto::GraphProto,
    states: &[NodeId],
    xs: &[NodeId],
    tag: &str,
) -> Result<Vec<NodeId>, OnnxError> {
    let (ns, m) = (states.len(), xs.len());
    let in_axes = per_value(n, "scan_input_axes", m)?;
    let in_dirs = per_value(n, "scan_input_directions", m)?;
    let k = body.output.len().checked_sub(ns).ok_or_else(|| {
        n.err(format!(
            "the body has {} outputs, fewer than its {ns} states",
            body.output.len()
        ))
    })?;
    let out_axes = per_value(n, "scan_output_axes", k)?;
    let out_dirs = per_value(n, "scan_output_directions", k)?;
    let mut len: Option<i64> = None;
    let mut axes = Vec::with_capacity(m);
    for (j, &x) in xs.iter().enumerate() {
        let ty = cx.ty(x).clone();
        let a = n.axis(in_axes[j], ty.rank(), "scan_input_axes entry")?;
        let l = ty.shape[a].as_const().ok_or_else(|| {
            n.err(format!(
                "scan input {j} {} has a symbolic scan length; Kiln unrolls Scan and needs it at compile time (bind it with --dim)",
                ty.describe()
            ))
        })?;
        if len.is_some_and(|p| p != l) {
            return Err(n.err(format!(
                "scan inputs have different scan lengths ({} and {l})",
                len.unwrap_or(0)
            )));
        }
        len = Some(l);
        axes.push(a);
    }
    let len = len.unwrap_or(0);
    if len == 0 {
        return Err(n.unsupported("a scan of length 0 (its output shapes are unknown) is not supported"));
    }
    if len as usize > MAX_UNROLL {
        return Err(n.unsupported(format!(
            "a scan of length {len} is longer than the {MAX_UNROLL} steps Kiln unrolls"
        )));
    }
    let mut state: Vec<Value> = states.iter().map(|&s| Value::Node(s)).collect();
    let mut scans: Vec<Vec<Value>> = vec![Vec::new(); k];
    for t in 0..len {
        let mut ins = state.clone();
        for (j, &x) in xs.iter().enumerate() {
            let at = if in_dirs[j] != 0 { len - 1 - t } else { t };
            ins.push(Value::Node(take(cx, n, &format!("{tag}x{j}/t{t}"), x, axes[j], at)?));
        }
        let outs = cx.lower_subgraph(n, body, &n.sub(&format!("{tag}step{t}")), &ins)?;
        state = outs[..ns].to_vec();
        for (q, v) in outs[ns..].iter().enumerate() {
            scans[q].push(v.clone());
        }
    }
    let mut out = Vec::with_capacity(ns + k);
    for (i, v) in state.iter().enumerate() {
        out.push(node(cx, n, &format!("{tag}state{i}"), v)?);
    }
    for (q, mut vals) in scans.into_iter().enumerate() {
        if out_dirs[q] != 0 {
            vals.reverse();
        }
        let first = node(cx, n, &format!("{tag}scan{q}/first"), &vals[0])?;
        let a = n.axis(out_axes[q], cx.ty(first).rank() + 1, "scan_output_axes entry")?;
        out.push(stack(cx, n, &format!("{tag}scan{q}"), &vals, a)?);
    }
    Ok(out)
}

/// `Scan` of opset 8: every input has a leading batch axis (scan axis 1); run the opset-9
/// semantics per batch row and stack the rows.
fn scan8(
    cx: &mut Ctx,
    n: &N,
    body: &crate::frontend::onnx::proto::GraphProto,
    m: usize,
) -> Result<Vec<Value>, OnnxError> {
    if cx.has_input(n, 0) {
        return Err(n.unsupported("input 'sequence_lens' of opset-8 Scan is not supported"));
    }
    if n.has_attr("directions") && n.attr_ints("directions")?.is_some_and(|d| d.iter().any(|&x| x != 0)) {
        return Err(n.unsupported("attribute 'directions' with a reverse scan is not supported for opset-8 Scan"));
    }
    let total = n.n_inputs();
    if m == 0 || m + 1 > total {
        return Err(n.err(format!("num_scan_inputs {m} does not fit its {total} inputs")));
    }
    let states: Vec<NodeId> = (1..total - m).map(|i| cx.input(n, i)).collect::<Result<_, _>>()?;
    let xs: Vec<NodeId> = (total - m..total).map(|i| cx.input(n, i)).collect::<Result<_, _>>()?;
    let first = states.first().or(xs.first()).copied().expect("at least one scan input");
    let batch =
        cx.ty(first).shape.first().and_then(Dim::as_const).ok_or_else(|| {
            n.err("the batch axis of opset-8 Scan must have a compile-time length; bind it with --dim")
        })?;
    if batch == 0 {
        return Err(n.unsupported("an opset-8 Scan over an empty batch is not supported"));
    }
    let mut rows: Vec<Vec<NodeId>> = Vec::new();
    for b in 0..batch {
        let s: Vec<NodeId> = states
            .iter()
            .enumerate()
            .map(|(i, &x)| take(cx, n, &format!("b{b}/s{i}"), x, 0, b))
            .collect::<Result<_, _>>()?;
        let x: Vec<NodeId> = xs
            .iter()
            .enumerate()
            .map(|(i, &x)| take(cx, n, &format!("b{b}/x{i}"), x, 0, b))
            .collect::<Result<_, _>>()?;
        rows.push(scan_unrolled(cx, n, body, &s, &x, &format!("b{b}/"))?);
    }
    let outs = rows[0].len();
    (0..outs)
        .map(|o| {
            let vals: Vec<Value> = rows.iter().map(|r| Value::Node(r[o])).collect();
            Ok(Value::Node(stack(cx, n, &format!("out{o}"), &vals, 0)?))
        })
        .collect()
}
