//! The recurrent layers `RNN`, `GRU` and `LSTM`, unrolled over their (compile-time) sequence
//! length into matrix products and elementwise gate math.
//!
//! The input projection of every time step is one `MatMul` over the whole sequence; each step
//! then adds its hidden-state projection, applies the gate activations and updates the state.
//! Forward, reverse and bidirectional directions, both layouts, initial states, peepholes,
//! `clip`, `linear_before_reset`, `input_forget` and custom activations are supported;
//! `sequence_lens` (a run-time input) masks the steps past each batch row's length in the
//! forward direction.

use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Dim, Expr, NodeId, Op, SliceAxis, Tensor, UnaryOp};

/// Which recurrent layer.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Rnn,
    Gru,
    Lstm,
}

impl Kind {
    fn gates(self) -> usize {
        match self {
            Kind::Rnn => 1,
            Kind::Gru => 3,
            Kind::Lstm => 4,
        }
    }
    /// How many activations one direction uses (f, g, h).
    fn activations(self) -> usize {
        match self {
            Kind::Rnn => 1,
            Kind::Gru => 2,
            Kind::Lstm => 3,
        }
    }
    fn default_activations(self) -> &'static [&'static str] {
        match self {
            Kind::Rnn => &["Tanh"],
            Kind::Gru => &["Sigmoid", "Tanh"],
            Kind::Lstm => &["Sigmoid", "Tanh", "Tanh"],
        }
    }
}

/// An activation function with its alpha and beta.
#[derive(Clone)]
struct Act {
    name: String,
    alpha: Option<f32>,
    beta: Option<f32>,
}

/// Graph-building helpers scoped to one node.
struct B<'c, 'n, 'a> {
    cx: &'c mut Ctx,
    n: &'n N<'a>,
    dtype: DType,
    count: usize,
}

impl B<'_, '_, '_> {
    fn add(&mut self, what: &str, op: Op, ins: &[NodeId]) -> Result<NodeId, OnnxError> {
        self.count += 1;
        let suffix = format!("{what}{}", self.count);
        self.cx.add(self.n, &suffix, op, ins)
    }
    fn slice(&mut self, x: NodeId, axis: usize, start: i64, end: i64) -> Result<NodeId, OnnxError> {
        let axes = vec![SliceAxis {
            axis,
            start,
            end,
            step: 1,
        }];
        self.add("slice", Op::Slice { axes }, &[x])
    }
    fn reshape(&mut self, x: NodeId, shape: Vec<Dim>) -> Result<NodeId, OnnxError> {
        self.add("reshape", Op::Reshape { shape }, &[x])
    }
    fn transpose(&mut self, x: NodeId, perm: Vec<usize>) -> Result<NodeId, OnnxError> {
        self.add("transpose", Op::Transpose { perm }, &[x])
    }
    fn bin(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId, OnnxError> {
        self.add("op", Op::Binary(op), &[a, b])
    }
    fn un(&mut self, op: UnaryOp, a: NodeId) -> Result<NodeId, OnnxError> {
        self.add("op", Op::Unary(op), &[a])
    }
    fn matmul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, OnnxError> {
        self.add("matmul", Op::MatMul, &[a, b])
    }
    fn concat(&mut self, axis: usize, ins: &[NodeId]) -> Result<NodeId, OnnxError> {
        if ins.len() == 1 {
            return Ok(ins[0]);
        }
        self.add("concat", Op::Concat { axis }, ins)
    }
    fn scalar(&mut self, v: f64) -> NodeId {
        self.count += 1;
        let dtype = self.dtype;
        self.cx.scalar(self.n, &format!("c{}", self.count), dtype, v)
    }
    /// `x` with one elementwise expression applied (`e` maps the loaded element).
    fn map(&mut self, x: NodeId, e: impl Fn(Expr) -> Expr) -> Result<NodeId, OnnxError> {
        let ty = self.cx.ty(x).clone();
        let load = Expr::Load {
            input: 0,
            index: (0..ty.rank()).map(Expr::Coord).collect(),
        };
        let op = Op::Compute {
            shape: ty.shape.clone(),
            dtype: ty.dtype,
            expr: e(load),
            name: "RnnActivation".into(),
        };
        self.add("act", op, &[x])
    }
    /// Applies an activation function.
    fn act(&mut self, a: &Act, x: NodeId) -> Result<NodeId, OnnxError> {
        let d = self.dtype;
        let lit = move |v: f32| Expr::Lit(v as f64, d);
        let b = move |op: BinaryOp, p: Expr, q: Expr| Expr::Binary(op, Box::new(p), Box::new(q), d);
        let u = move |op: UnaryOp, p: Expr| Expr::Unary(op, Box::new(p), d);
        match a.name.as_str() {
            "Sigmoid" => self.un(UnaryOp::Sigmoid, x),
            "Tanh" => self.un(UnaryOp::Tanh, x),
            "Relu" => self.un(UnaryOp::Relu, x),
            "LeakyRelu" => self.un(UnaryOp::LeakyRelu(a.alpha.unwrap_or(0.01)), x),
            "Elu" => self.un(UnaryOp::Elu(a.alpha.unwrap_or(1.0)), x),
            "Softplus" => self.un(UnaryOp::Softplus, x),
            "Affine" => {
                let (al, be) = (a.alpha.unwrap_or(1.0), a.beta.unwrap_or(0.0));
                self.map(x, |v| b(BinaryOp::Add, b(BinaryOp::Mul, lit(al), v), lit(be)))
            }
            "ScaledTanh" => {
                let (al, be) = (a.alpha.unwrap_or(1.0), a.beta.unwrap_or(1.0));
                self.map(x, |v| {
                    b(BinaryOp::Mul, lit(al), u(UnaryOp::Tanh, b(BinaryOp::Mul, lit(be), v)))
                })
            }
            "HardSigmoid" => {
                let (al, be) = (a.alpha.unwrap_or(0.2), a.beta.unwrap_or(0.5));
                self.map(x, |v| {
                    let lin = b(BinaryOp::Add, b(BinaryOp::Mul, lit(al), v), lit(be));
                    b(BinaryOp::Max, lit(0.0), b(BinaryOp::Min, lit(1.0), lin))
                })
            }
            "Softsign" => self.map(x, |v| {
                b(BinaryOp::Div, v.clone(), b(BinaryOp::Add, lit(1.0), u(UnaryOp::Abs, v)))
            }),
            "ThresholdedRelu" => {
                let al = a.alpha.unwrap_or(1.0);
                self.map(x, |v| {
                    Expr::select(v.clone().cmp(BinaryOp::Greater, lit(al), d), v, lit(0.0))
                })
            }
            other => Err(self.n.unsupported(format!(
                "attribute 'activations': activation '{other}' is not supported"
            ))),
        }
    }
}

/// The activations of every direction: `activations` (with `activation_alpha` and
/// `activation_beta` consumed in order by the functions that take them) or the defaults.
fn activations(n: &N, kind: Kind, dirs: usize) -> Result<Vec<Vec<Act>>, OnnxError> {
    let names: Vec<String> = match n
        .proto
        .attribute
        .iter()
        .find(|a| a.name.as_deref() == Some("activations"))
    {
        Some(a) => a
            .strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        None => (0..dirs)
            .flat_map(|_| kind.default_activations().iter().map(|s| s.to_string()))
            .collect(),
    };
    let per = kind.activations();
    if names.len() != per * dirs {
        return Err(n.err(format!(
            "attribute 'activations' lists {} functions; {} with {dirs} direction(s) takes {}",
            names.len(),
            n.op,
            per * dirs
        )));
    }
    let alphas = n.attr_floats("activation_alpha")?.unwrap_or_default();
    let betas = n.attr_floats("activation_beta")?.unwrap_or_default();
    let (mut ia, mut ib) = (0, 0);
    let mut out = Vec::new();
    for name in names {
        // Which functions take alpha / beta (ONNX's list of RNN activation functions).
        let (ta, tb) = match name.as_str() {
            "Affine" | "ScaledTanh" | "HardSigmoid" => (true, true),
            "LeakyRelu" | "ThresholdedRelu" | "Elu" => (true, false),
            _ => (false, false),
        };
        let alpha = if ta { alphas.get(ia).copied() } else { None };
        let beta = if tb { betas.get(ib).copied() } else { None };
        ia += usize::from(ta && alpha.is_some());
        ib += usize::from(tb && beta.is_some());
        out.push(Act { name, alpha, beta });
    }
    Ok(out.chunks(per).map(<[Act]>::to_vec).collect())
}

/// `RNN`, `GRU`, `LSTM`.
pub(crate) fn recurrent(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let kind = match n.op {
        "RNN" => Kind::Rnn,
        "GRU" => Kind::Gru,
        _ => Kind::Lstm,
    };
    let g = kind.gates();
    let x0 = cx.input(n, 0)?;
    let w = cx.input(n, 1)?;
    let r = cx.input(n, 2)?;
    let bias = cx.opt_input(n, 3)?;
    let seq_lens = cx.opt_input(n, 4)?;
    let h_init = cx.opt_input(n, 5)?;
    let c_init = if kind == Kind::Lstm { cx.opt_input(n, 6)? } else { None };
    let peep = if kind == Kind::Lstm { cx.opt_input(n, 7)? } else { None };
    let xt = cx.ty(x0).clone();
    let dtype = xt.dtype;
    if !matches!(dtype, DType::F32 | DType::F16) {
        return Err(n.unsupported(format!("X {} must be f32 or f16", xt.describe())));
    }
    if xt.rank() != 3 {
        return Err(n.err(format!("X {} must have rank 3", xt.describe())));
    }
    let layout = n.attr_i("layout", 0)?;
    if !(0..=1).contains(&layout) {
        return Err(n.err(format!("attribute 'layout' must be 0 or 1, got {layout}")));
    }
    let direction = n.attr_s("direction")?.unwrap_or_else(|| "forward".into());
    let dirs = match direction.as_str() {
        "forward" | "reverse" => 1,
        "bidirectional" => 2,
        d => return Err(n.err(format!("attribute 'direction': unknown direction '{d}'"))),
    };
    let rt = cx.ty(r).clone();
    let hidden = match n.attr_i_opt("hidden_size")? {
        Some(h) => h,
        None => rt.shape.last().and_then(Dim::as_const).ok_or_else(|| {
            n.err(format!(
                "attribute 'hidden_size' is missing and R {} has no constant last dim",
                rt.describe()
            ))
        })?,
    };
    if hidden <= 0 {
        return Err(n.err(format!("attribute 'hidden_size' must be positive, got {hidden}")));
    }
    let wt = cx.ty(w).clone();
    let gh = g as i64 * hidden;
    if wt.rank() != 3
        || wt.shape[0].as_const() != Some(dirs as i64)
        || wt.shape[1].as_const() != Some(gh)
        || rt.rank() != 3
        || rt.shape[0].as_const() != Some(dirs as i64)
        || rt.shape[1].as_const() != Some(gh)
        || rt.shape[2].as_const() != Some(hidden)
    {
        return Err(n.err(format!(
            "W {} and R {} must be [{dirs}, {gh}, input] and [{dirs}, {gh}, {hidden}] for direction '{direction}' and hidden_size {hidden}",
            wt.describe(),
            rt.describe()
        )));
    }
    let clip = n.attr_f_opt("clip")?;
    let lbr = kind == Kind::Gru && n.attr_i("linear_before_reset", 0)? != 0;
    let input_forget = kind == Kind::Lstm && n.attr_i("input_forget", 0)? != 0;
    let acts = activations(n, kind, dirs)?;
    let mut b = B { cx, n, dtype, count: 0 };
    // Time-major X [seq, batch, input].
    let x = if layout == 1 {
        b.transpose(x0, vec![1, 0, 2])?
    } else {
        x0
    };
    let xs = b.cx.ty(x).shape.clone();
    let seq = xs[0].as_const().ok_or_else(|| {
        n.err(format!(
            "the sequence length {} must be known at compile time (the layer is unrolled); bind it with --dim",
            xs[0]
        ))
    })?;
    let batch = xs[1].clone();
    if seq_lens.is_some() && direction != "forward" {
        return Err(n.unsupported(format!(
            "input 'sequence_lens' with direction '{direction}' is not supported (only forward)"
        )));
    }
    // Per-step masks [batch, 1] (true while the step is inside the row's sequence).
    let mut masks: Vec<Option<NodeId>> = vec![None; seq as usize];
    if let Some(sl) = seq_lens {
        let sl = if b.cx.ty(sl).dtype == DType::I32 {
            sl
        } else {
            b.add("lens", Op::Cast(DType::I32), &[sl])?
        };
        let sl = b.reshape(sl, vec![batch.clone(), Dim::c(1)])?;
        for (t, m) in masks.iter_mut().enumerate() {
            b.count += 1;
            let tc = b.cx.scalar(n, &format!("t{}", b.count), DType::I32, t as f64);
            *m = Some(b.bin(BinaryOp::Less, tc, sl)?);
        }
    }
    // Initial states in [dirs, batch, hidden].
    let state0 = |b: &mut B, s: Option<NodeId>| -> Result<Option<NodeId>, OnnxError> {
        match s {
            Some(s) if layout == 1 => Ok(Some(b.transpose(s, vec![1, 0, 2])?)),
            other => Ok(other),
        }
    };
    let h_init = state0(&mut b, h_init)?;
    let c_init = state0(&mut b, c_init)?;
    let zero_state = {
        let z = b.scalar(0.0);
        b.add(
            "zeros",
            Op::Expand {
                shape: vec![batch.clone(), Dim::c(hidden)],
            },
            &[z],
        )?
    };
    let hd = Dim::c(hidden);
    let mut ys = Vec::new();
    let mut hs = Vec::new();
    let mut cs = Vec::new();
    for (d, act) in acts.iter().enumerate() {
        let reverse = direction == "reverse" || d == 1;
        let dd = d as i64;
        let wd = b.slice(w, 0, dd, dd + 1)?;
        let wd = b.reshape(wd, vec![Dim::c(gh), xs[2].clone()])?;
        let wd = b.transpose(wd, vec![1, 0])?;
        let rd = b.slice(r, 0, dd, dd + 1)?;
        let rd = b.reshape(rd, vec![Dim::c(gh), hd.clone()])?;
        let rd = b.transpose(rd, vec![1, 0])?;
        // Input projections of all steps [seq, batch, g*hidden], with the biases that are
        // added outside any gate product.
        let mut xw = b.matmul(x, wd)?;
        let mut rb_h = None;
        if let Some(bias) = bias {
            let bd = b.slice(bias, 0, dd, dd + 1)?;
            let bd = b.reshape(bd, vec![Dim::c(2 * gh)])?;
            let wb = b.slice(bd, 0, 0, gh)?;
            let rb = b.slice(bd, 0, gh, 2 * gh)?;
            xw = b.bin(BinaryOp::Add, xw, wb)?;
            if kind == Kind::Gru {
                let rb_zr = b.slice(rb, 0, 0, 2 * hidden)?;
                let zero_h = b.cx.constant(
                    n,
                    &format!("zero_rb_h{d}"),
                    Tensor::from_f64(dtype, vec![hidden as usize], &vec![0.0; hidden as usize]),
                );
                let rb_zr0 = b.concat(0, &[rb_zr, zero_h])?;
                xw = b.bin(BinaryOp::Add, xw, rb_zr0)?;
                rb_h = Some(b.slice(rb, 0, 2 * hidden, gh)?);
            } else {
                xw = b.bin(BinaryOp::Add, xw, rb)?;
            }
        }
        let peeps = match peep {
            Some(p) => {
                let pd = b.slice(p, 0, dd, dd + 1)?;
                let pd = b.reshape(pd, vec![Dim::c(3 * hidden)])?;
                let pi = b.slice(pd, 0, 0, hidden)?;
                let po = b.slice(pd, 0, hidden, 2 * hidden)?;
                let pf = b.slice(pd, 0, 2 * hidden, 3 * hidden)?;
                Some((pi, po, pf))
            }
            None => None,
        };
        let mut h = match h_init {
            Some(s) => {
                let s = b.slice(s, 0, dd, dd + 1)?;
                b.reshape(s, vec![batch.clone(), hd.clone()])?
            }
            None => zero_state,
        };
        let mut c = match c_init {
            Some(s) => {
                let s = b.slice(s, 0, dd, dd + 1)?;
                b.reshape(s, vec![batch.clone(), hd.clone()])?
            }
            None => zero_state,
        };
        let mut ys_d: Vec<NodeId> = Vec::with_capacity(seq as usize);
        let steps: Vec<i64> = if reverse {
            (0..seq).rev().collect()
        } else {
            (0..seq).collect()
        };
        for &t in &steps {
            let xt = b.slice(xw, 0, t, t + 1)?;
            let xt = b.reshape(xt, vec![batch.clone(), Dim::c(gh)])?;
            let hr = b.matmul(h, rd)?;
            let gate = |b: &mut B, v: NodeId, k: i64| b.slice(v, 1, k * hidden, (k + 1) * hidden);
            let clipped = |b: &mut B, v: NodeId| -> Result<NodeId, OnnxError> {
                match clip {
                    Some(cl) => {
                        let hi = b.scalar(cl as f64);
                        let lo = b.scalar(-cl as f64);
                        let v = b.bin(BinaryOp::Min, v, hi)?;
                        b.bin(BinaryOp::Max, v, lo)
                    }
                    None => Ok(v),
                }
            };
            let (h_new, c_new) = match kind {
                Kind::Rnn => {
                    let pre = b.bin(BinaryOp::Add, xt, hr)?;
                    let pre = clipped(&mut b, pre)?;
                    (b.act(&act[0], pre)?, None)
                }
                Kind::Gru => {
                    let xz = gate(&mut b, xt, 0)?;
                    let xr = gate(&mut b, xt, 1)?;
                    let xh = gate(&mut b, xt, 2)?;
                    let hz = gate(&mut b, hr, 0)?;
                    let hrr = gate(&mut b, hr, 1)?;
                    let z = b.bin(BinaryOp::Add, xz, hz)?;
                    let z = clipped(&mut b, z)?;
                    let z = b.act(&act[0], z)?;
                    let rr = b.bin(BinaryOp::Add, xr, hrr)?;
                    let rr = clipped(&mut b, rr)?;
                    let rr = b.act(&act[0], rr)?;
                    let hh = if lbr {
                        let mut hrh = gate(&mut b, hr, 2)?;
                        if let Some(rbh) = rb_h {
                            hrh = b.bin(BinaryOp::Add, hrh, rbh)?;
                        }
                        let p = b.bin(BinaryOp::Mul, rr, hrh)?;
                        b.bin(BinaryOp::Add, xh, p)?
                    } else {
                        let rh = b.bin(BinaryOp::Mul, rr, h)?;
                        let rdh = b.slice(rd, 1, 2 * hidden, 3 * hidden)?;
                        let p = b.matmul(rh, rdh)?;
                        let mut s = b.bin(BinaryOp::Add, xh, p)?;
                        if let Some(rbh) = rb_h {
                            s = b.bin(BinaryOp::Add, s, rbh)?;
                        }
                        s
                    };
                    let hh = clipped(&mut b, hh)?;
                    let hh = b.act(&act[1], hh)?;
                    // H = (1 - z) * hh + z * H = hh + z * (H - hh)
                    let diff = b.bin(BinaryOp::Sub, h, hh)?;
                    let zd = b.bin(BinaryOp::Mul, z, diff)?;
                    (b.bin(BinaryOp::Add, hh, zd)?, None)
                }
                Kind::Lstm => {
                    let pre = b.bin(BinaryOp::Add, xt, hr)?;
                    let pi = gate(&mut b, pre, 0)?;
                    let po = gate(&mut b, pre, 1)?;
                    let pf = gate(&mut b, pre, 2)?;
                    let pc = gate(&mut b, pre, 3)?;
                    let peep_add = |b: &mut B, v: NodeId, p: Option<NodeId>, s: NodeId| match p {
                        Some(p) => {
                            let ps = b.bin(BinaryOp::Mul, p, s)?;
                            b.bin(BinaryOp::Add, v, ps)
                        }
                        None => Ok(v),
                    };
                    let i = peep_add(&mut b, pi, peeps.map(|p| p.0), c)?;
                    let i = clipped(&mut b, i)?;
                    let i = b.act(&act[0], i)?;
                    let f = if input_forget {
                        let one = b.scalar(1.0);
                        b.bin(BinaryOp::Sub, one, i)?
                    } else {
                        let f = peep_add(&mut b, pf, peeps.map(|p| p.2), c)?;
                        let f = clipped(&mut b, f)?;
                        b.act(&act[0], f)?
                    };
                    let cc = clipped(&mut b, pc)?;
                    let cc = b.act(&act[1], cc)?;
                    let fc = b.bin(BinaryOp::Mul, f, c)?;
                    let ic = b.bin(BinaryOp::Mul, i, cc)?;
                    let c_new = b.bin(BinaryOp::Add, fc, ic)?;
                    let o = peep_add(&mut b, po, peeps.map(|p| p.1), c_new)?;
                    let o = clipped(&mut b, o)?;
                    let o = b.act(&act[0], o)?;
                    let hc = b.act(&act[2], c_new)?;
                    (b.bin(BinaryOp::Mul, o, hc)?, Some(c_new))
                }
            };
            let (h_next, y) = match masks[t as usize] {
                Some(m) => {
                    let hn = b.add("mask", Op::Where, &[m, h_new, h])?;
                    let z = b.scalar(0.0);
                    (hn, b.add("mask", Op::Where, &[m, h_new, z])?)
                }
                None => (h_new, h_new),
            };
            if let Some(c_new) = c_new {
                c = match masks[t as usize] {
                    Some(m) => b.add("mask", Op::Where, &[m, c_new, c])?,
                    None => c_new,
                };
            }
            h = h_next;
            ys_d.push(b.reshape(y, vec![Dim::c(1), Dim::c(1), batch.clone(), hd.clone()])?);
        }
        if reverse {
            ys_d.reverse();
        }
        ys.push(b.concat(0, &ys_d)?);
        hs.push(b.reshape(h, vec![Dim::c(1), batch.clone(), hd.clone()])?);
        cs.push(b.reshape(c, vec![Dim::c(1), batch.clone(), hd.clone()])?);
    }
    let mut y = b.concat(1, &ys)?;
    let mut yh = b.concat(0, &hs)?;
    let mut yc = b.concat(0, &cs)?;
    if layout == 1 {
        y = b.transpose(y, vec![2, 0, 1, 3])?;
        yh = b.transpose(yh, vec![1, 0, 2])?;
        yc = b.transpose(yc, vec![1, 0, 2])?;
    }
    let mut out = vec![Value::Node(y), Value::Node(yh)];
    if kind == Kind::Lstm {
        out.push(Value::Node(yc));
    }
    Ok(out)
}
