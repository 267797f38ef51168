//! Math ops composed from IR primitives, and small node-building helpers that the other lowering
//! files of this family (`attention.rs`, `loss.rs`, `gather.rs`) share.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Dim, Expr, NodeId, Op, UnaryOp};

/// `a op b` (broadcasting).
pub(crate) fn bin(cx: &mut Ctx, n: &N, suffix: &str, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId, OnnxError> {
    cx.add(n, suffix, Op::Binary(op), &[a, b])
}

/// `op x`.
pub(crate) fn unary(cx: &mut Ctx, n: &N, suffix: &str, op: UnaryOp, x: NodeId) -> Result<NodeId, OnnxError> {
    cx.add(n, suffix, Op::Unary(op), &[x])
}

/// Reshape to `shape` (skipped when the shape is already that).
pub(crate) fn reshape(cx: &mut Ctx, n: &N, suffix: &str, x: NodeId, shape: Vec<Dim>) -> Result<NodeId, OnnxError> {
    if cx.ty(x).shape == shape {
        return Ok(x);
    }
    cx.add(n, suffix, Op::Reshape { shape }, &[x])
}

/// Transpose by `perm` (skipped for the identity permutation).
pub(crate) fn transpose(cx: &mut Ctx, n: &N, suffix: &str, x: NodeId, perm: Vec<usize>) -> Result<NodeId, OnnxError> {
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(x);
    }
    cx.add(n, suffix, Op::Transpose { perm }, &[x])
}

/// Float scalar expressions over one elementwise input (`x` = input 0 at the output
/// coordinates), in the input's dtype.
struct Fx {
    dt: DType,
    rank: usize,
}

impl Fx {
    fn x(&self) -> Expr {
        Expr::Load {
            input: 0,
            index: (0..self.rank).map(Expr::Coord).collect(),
        }
    }
    fn lit(&self, v: f64) -> Expr {
        Expr::Lit(v, self.dt)
    }
    fn b(&self, op: BinaryOp, a: Expr, c: Expr) -> Expr {
        Expr::Binary(op, Box::new(a), Box::new(c), self.dt)
    }
    fn add(&self, a: Expr, c: Expr) -> Expr {
        self.b(BinaryOp::Add, a, c)
    }
    fn sub(&self, a: Expr, c: Expr) -> Expr {
        self.b(BinaryOp::Sub, a, c)
    }
    fn mul(&self, a: Expr, c: Expr) -> Expr {
        self.b(BinaryOp::Mul, a, c)
    }
    fn div(&self, a: Expr, c: Expr) -> Expr {
        self.b(BinaryOp::Div, a, c)
    }
    fn u(&self, op: UnaryOp, a: Expr) -> Expr {
        Expr::Unary(op, Box::new(a), self.dt)
    }
    /// `c0 + z*(c1 + z*(c2 + ...))`.
    fn horner(&self, z: &Expr, coeffs: &[f64]) -> Expr {
        let mut acc = self.lit(*coeffs.last().expect("coefficients"));
        for &c in coeffs.iter().rev().skip(1) {
            acc = self.add(self.mul(acc, z.clone()), self.lit(c));
        }
        acc
    }
    /// `sign(s) * v` for a value `v >= 0` computed from `|s|`.
    fn with_sign_of(&self, s: Expr, v: Expr) -> Expr {
        self.mul(self.u(UnaryOp::Sign, s), v)
    }

    /// atan of `a >= 0`: `t = min(a, 1/a)` on [0, 1], the Abramowitz & Stegun 4.4.49 odd
    /// polynomial (|error| <= 2e-8), and `pi/2 - p` for `a > 1`.
    fn atan_nonneg(&self, a: Expr) -> Expr {
        const C: [f64; 8] = [
            0.999_999_332_9,
            -0.333_298_560_5,
            0.199_465_359_9,
            -0.139_085_335_1,
            0.096_420_044_1,
            -0.055_909_886_1,
            0.021_861_228_8,
            -0.004_054_058_0,
        ];
        let t = self.b(BinaryOp::Min, a.clone(), self.u(UnaryOp::Reciprocal, a.clone()));
        let z = self.mul(t.clone(), t.clone());
        let p = self.mul(t, self.horner(&z, &C));
        let big = a.cmp(BinaryOp::Greater, self.lit(1.0), self.dt);
        let base = Expr::select(big.clone(), self.lit(std::f64::consts::FRAC_PI_2), self.lit(0.0));
        let sgn = Expr::select(big, self.lit(-1.0), self.lit(1.0));
        self.add(base, self.mul(sgn, p))
    }

    /// asin of `a` in [0, 1] (Cephes `asinf`): a polynomial in `a^2` below 0.5, and
    /// `pi/2 - 2 asin(sqrt((1 - a) / 2))` above.
    fn asin_nonneg(&self, a: Expr) -> Expr {
        const C: [f64; 5] = [
            1.666_675_242_2e-1,
            7.495_300_268_6e-2,
            4.547_002_599_8e-2,
            2.418_131_104_9e-2,
            4.216_319_904_8e-2,
        ];
        let high = a.clone().cmp(BinaryOp::Greater, self.lit(0.5), self.dt);
        let zh = self.mul(self.lit(0.5), self.sub(self.lit(1.0), a.clone()));
        let z = Expr::select(high.clone(), zh.clone(), self.mul(a.clone(), a.clone()));
        let s = Expr::select(high.clone(), self.u(UnaryOp::Sqrt, zh), a);
        let p = self.add(s.clone(), self.mul(self.mul(s, z.clone()), self.horner(&z, &C)));
        let base = Expr::select(high.clone(), self.lit(std::f64::consts::FRAC_PI_2), self.lit(0.0));
        let k = Expr::select(high, self.lit(-2.0), self.lit(1.0));
        self.add(base, self.mul(k, p))
    }
}

/// Inverse trigonometric and hyperbolic functions, `Swish`, `SwiGLU`: one tensor expression
/// each (the IR has no atan/asin primitives; they are polynomial approximations accurate to
/// about 1e-7 in f32).
pub(crate) fn composed_unary(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let t = cx.ty(x).clone();
    if !t.dtype.is_float() {
        return Err(n.err(format!("input must be floating point, got {}", t.describe())));
    }
    let f = Fx {
        dt: t.dtype,
        rank: t.rank(),
    };
    let xv = f.x();
    let ax = f.u(UnaryOp::Abs, xv.clone());
    let one_ = || f.lit(1.0);
    let mut ins = vec![x];
    let expr = match n.op {
        "Atan" => f.with_sign_of(xv, f.atan_nonneg(ax)),
        "Asin" => f.with_sign_of(xv, f.asin_nonneg(ax)),
        "Acos" => f.sub(
            f.lit(std::f64::consts::FRAC_PI_2),
            f.with_sign_of(xv, f.asin_nonneg(ax)),
        ),
        // sign(x) ln(|x| + sqrt(x^2 + 1))
        "Asinh" => {
            let r = f.u(UnaryOp::Sqrt, f.add(f.mul(ax.clone(), ax.clone()), one_()));
            f.with_sign_of(xv, f.u(UnaryOp::Log, f.add(ax, r)))
        }
        // ln(x + sqrt((x - 1)(x + 1)))
        "Acosh" => {
            let r = f.u(
                UnaryOp::Sqrt,
                f.mul(f.sub(xv.clone(), one_()), f.add(xv.clone(), one_())),
            );
            f.u(UnaryOp::Log, f.add(xv, r))
        }
        // ln((1 + x) / (1 - x)) / 2
        "Atanh" => {
            let q = f.div(f.add(one_(), xv.clone()), f.sub(one_(), xv));
            f.mul(f.lit(0.5), f.u(UnaryOp::Log, q))
        }
        // x * sigmoid(alpha x)
        "Swish" => {
            let alpha = n.attr_f("alpha", 1.0)? as f64;
            let s = f.u(UnaryOp::Sigmoid, f.mul(f.lit(alpha), xv.clone()));
            f.mul(xv, s)
        }
        // a * sigmoid(alpha a) * b (equal shapes)
        "SwiGLU" => {
            let b = cx.input(n, 1)?;
            if cx.ty(b) != &t {
                return Err(n.err(format!(
                    "A {} and B {} must have the same shape and type",
                    t.describe(),
                    cx.ty(b).describe()
                )));
            }
            ins.push(b);
            let alpha = n.attr_f("alpha", 1.0)? as f64;
            let s = f.u(UnaryOp::Sigmoid, f.mul(f.lit(alpha), xv.clone()));
            let bv = Expr::Load {
                input: 1,
                index: (0..f.rank).map(Expr::Coord).collect(),
            };
            f.mul(f.mul(xv, s), bv)
        }
        _ => unreachable!("dispatched"),
    };
    Ok(one(cx.add(
        n,
        "",
        Op::Compute {
            shape: t.shape.clone(),
            dtype: t.dtype,
            expr,
            name: n.op.to_string(),
        },
        &ins,
    )?))
}

/// One parsed einsum operand: a label per axis (ellipsis axes get labels `'0'..`, right-aligned
/// across operands so that they broadcast).
type Labels = Vec<char>;

/// Parses an einsum equation for operands of the given ranks into per-operand labels and the
/// output labels (implicit output: ellipsis labels, then the letters used once, sorted).
fn parse_einsum(eq: &str, ranks: &[usize]) -> Result<(Vec<Labels>, Labels), String> {
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != ranks.len() {
        return Err(format!(
            "the equation has {} operand terms but the node has {} inputs",
            terms.len(),
            ranks.len()
        ));
    }
    let letters = |t: &str| -> Result<(Vec<char>, Option<usize>), String> {
        let mut out = Vec::new();
        let mut ell = None;
        let mut rest = t;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("...") {
                if ell.is_some() {
                    return Err(format!("term '{t}' has more than one ellipsis"));
                }
                ell = Some(out.len());
                rest = r;
            } else {
                let c = rest.chars().next().expect("non-empty");
                if !c.is_ascii_alphabetic() {
                    return Err(format!("term '{t}' has the character '{c}'"));
                }
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        Ok((out, ell))
    };
    let mut parsed = Vec::new();
    let mut ell_rank = 0usize;
    for (t, &r) in terms.iter().zip(ranks) {
        let (ls, ell) = letters(t)?;
        let er = match ell {
            Some(_) => r
                .checked_sub(ls.len())
                .ok_or_else(|| format!("term '{t}' has more labels than its operand's rank {r}"))?,
            None if ls.len() == r => 0,
            None => return Err(format!("term '{t}' has {} labels for an operand of rank {r}", ls.len())),
        };
        ell_rank = ell_rank.max(er);
        parsed.push((ls, ell, er));
    }
    let ell_labels: Vec<char> = (0..ell_rank)
        .map(|i| char::from_digit(i as u32, 36).expect("small rank"))
        .collect();
    let expand = |ls: &[char], ell: Option<usize>, er: usize| -> Labels {
        match ell {
            None => ls.to_vec(),
            Some(p) => {
                let mut v = ls[..p].to_vec();
                v.extend_from_slice(&ell_labels[ell_rank - er..]);
                v.extend_from_slice(&ls[p..]);
                v
            }
        }
    };
    let ops: Vec<Labels> = parsed.iter().map(|(ls, ell, er)| expand(ls, *ell, *er)).collect();
    let out = match rhs {
        Some(r) => {
            let (ls, ell) = letters(&r)?;
            let o = expand(&ls, ell, if ell.is_some() { ell_rank } else { 0 });
            for c in &o {
                if !ops.iter().any(|op| op.contains(c)) {
                    return Err(format!("output label '{c}' is not in any operand"));
                }
            }
            o
        }
        None => {
            let mut counts = std::collections::BTreeMap::new();
            for c in ops.iter().flatten().filter(|c| c.is_ascii_alphabetic()) {
                *counts.entry(*c).or_insert(0) += 1;
            }
            let mut o = ell_labels.clone();
            o.extend(counts.into_iter().filter(|(_, k)| *k == 1).map(|(c, _)| c));
            o
        }
    };
    Ok((ops, out))
}

/// Reduces one operand to distinct labels: repeated labels take the diagonal (a tensor
/// expression) and labels in `keep`'s complement are summed away.
fn einsum_prepare(
    cx: &mut Ctx,
    n: &N,
    what: &str,
    x: NodeId,
    labels: &Labels,
    keep: &dyn Fn(char) -> bool,
) -> Result<(NodeId, Labels), OnnxError> {
    let t = cx.ty(x).clone();
    let mut uniq: Labels = Vec::new();
    for &c in labels {
        if !uniq.contains(&c) {
            uniq.push(c);
        }
    }
    let mut x = x;
    if uniq.len() != labels.len() {
        let shape: Vec<Dim> = uniq
            .iter()
            .map(|c| t.shape[labels.iter().position(|l| l == c).expect("label")].clone())
            .collect();
        let index: Vec<Expr> = labels
            .iter()
            .map(|c| Expr::Coord(uniq.iter().position(|u| u == c).expect("label")))
            .collect();
        x = cx.add(
            n,
            &format!("{what}_diagonal"),
            Op::Compute {
                shape,
                dtype: t.dtype,
                expr: Expr::Load { input: 0, index },
                name: "EinsumDiagonal".into(),
            },
            &[x],
        )?;
    }
    let axes: Vec<usize> = (0..uniq.len()).filter(|&i| !keep(uniq[i])).collect();
    if !axes.is_empty() {
        x = cx.add(
            n,
            &format!("{what}_sum"),
            Op::Reduce {
                op: kiln_ir::ReduceOp::Sum,
                axes: axes.clone(),
                keep_dims: false,
            },
            &[x],
        )?;
        uniq = uniq
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, c)| c)
            .collect();
    }
    Ok((x, uniq))
}

/// `Einsum`: operands are combined left to right; each pair becomes one batched `MatMul` of
/// `[batch, free_a, contracted] x [batch, contracted, free_b]` after transposes and reshapes.
/// Repeated labels take diagonals, labels used by one operand only are summed first.
pub(crate) fn einsum(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let eq = n
        .attr_s("equation")?
        .ok_or_else(|| n.err("attribute 'equation' is required"))?;
    let count = n.n_inputs();
    if count == 0 {
        return Err(n.err("needs at least one input"));
    }
    let ins: Vec<NodeId> = (0..count).map(|i| cx.input(n, i)).collect::<Result<_, _>>()?;
    let ranks: Vec<usize> = ins.iter().map(|&i| cx.ty(i).rank()).collect();
    let (ops, out) = parse_einsum(&eq, &ranks).map_err(|m| n.err(format!("equation '{eq}': {m}")))?;
    // Labels needed after operand k: the output's and those of later operands.
    let needed_after = |k: usize, c: char| out.contains(&c) || ops[k + 1..].iter().any(|o| o.contains(&c));
    let (mut acc, mut acc_l) = einsum_prepare(cx, n, "in0", ins[0], &ops[0], &|c| {
        needed_after(0, c) || ops[1..].iter().any(|o| o.contains(&c))
    })?;
    for k in 1..count {
        let (b, bl) = einsum_prepare(cx, n, &format!("in{k}"), ins[k], &ops[k], &|c| {
            needed_after(k, c) || acc_l.contains(&c)
        })?;
        let keep = |c: char| needed_after(k, c);
        let batch: Labels = acc_l.iter().copied().filter(|c| bl.contains(c) && keep(*c)).collect();
        let contr: Labels = acc_l.iter().copied().filter(|c| bl.contains(c) && !keep(*c)).collect();
        let fa: Labels = acc_l.iter().copied().filter(|c| !bl.contains(c)).collect();
        let fb: Labels = bl.iter().copied().filter(|c| !acc_l.contains(c)).collect();
        let dim_of = |cx: &Ctx, id: NodeId, ls: &Labels, c: char| {
            cx.ty(id).shape[ls.iter().position(|l| *l == c).expect("label")].clone()
        };
        let perm = |ls: &Labels, order: &[&Labels]| -> Vec<usize> {
            order
                .iter()
                .flat_map(|g| g.iter())
                .map(|c| ls.iter().position(|l| l == c).expect("label"))
                .collect()
        };
        let a_t = transpose(cx, n, &format!("a{k}_t"), acc, perm(&acc_l, &[&batch, &fa, &contr]))?;
        let b_t = transpose(cx, n, &format!("b{k}_t"), b, perm(&bl, &[&batch, &contr, &fb]))?;
        let bd_a: Vec<Dim> = batch.iter().map(|&c| dim_of(cx, acc, &acc_l, c)).collect();
        let bd_b: Vec<Dim> = batch.iter().map(|&c| dim_of(cx, b, &bl, c)).collect();
        let fa_d: Vec<Dim> = fa.iter().map(|&c| dim_of(cx, acc, &acc_l, c)).collect();
        let fb_d: Vec<Dim> = fb.iter().map(|&c| dim_of(cx, b, &bl, c)).collect();
        let ka: Vec<Dim> = contr.iter().map(|&c| dim_of(cx, acc, &acc_l, c)).collect();
        let kb: Vec<Dim> = contr.iter().map(|&c| dim_of(cx, b, &bl, c)).collect();
        let mut sa = bd_a.clone();
        sa.push(Dim::product(&fa_d));
        sa.push(Dim::product(&ka));
        let mut sb = bd_b.clone();
        sb.push(Dim::product(&kb));
        sb.push(Dim::product(&fb_d));
        let a3 = reshape(cx, n, &format!("a{k}_mat"), a_t, sa)?;
        let b3 = reshape(cx, n, &format!("b{k}_mat"), b_t, sb)?;
        let prod = cx.add(n, &format!("product{k}"), Op::MatMul, &[a3, b3])?;
        // Batch dims broadcast in the product; take them from its shape.
        let ps = cx.ty(prod).shape.clone();
        let mut shape: Vec<Dim> = ps[..batch.len()].to_vec();
        shape.extend(fa_d);
        shape.extend(fb_d);
        acc = reshape(cx, n, &format!("product{k}_split"), prod, shape)?;
        acc_l = batch.iter().chain(&fa).chain(&fb).copied().collect();
    }
    // Sum labels not in the output (single operand), then order as the output.
    let (acc, acc_l) = einsum_prepare(cx, n, "result", acc, &acc_l, &|c| out.contains(&c))?;
    let p: Vec<usize> = out
        .iter()
        .map(|c| acc_l.iter().position(|l| l == c).expect("label"))
        .collect();
    Ok(one(transpose(cx, n, "", acc, p)?))
}

/// Input `slot` (of rank `r`) at the output coordinates of a rank-`out_rank` broadcast, as i32
/// (loads clamp, so a size-1 axis reads its only element).
fn int_operand(slot: usize, r: usize, out_rank: usize, dt: DType) -> Expr {
    let off = out_rank - r;
    let load = Expr::Load {
        input: slot,
        index: (0..r).map(|j| Expr::Coord(j + off)).collect(),
    };
    if dt == DType::I32 {
        load
    } else {
        Expr::Cast(Box::new(load), dt, DType::I32)
    }
}

/// Two's complement helpers over i32 expressions for a `w`-bit type (`w` = 8 or 32).
struct Bits {
    w: u32,
    signed: bool,
}

impl Bits {
    /// `2^k` for `k < 31`.
    fn pow2(k: u32) -> Expr {
        Expr::int(1i64 << k)
    }
    /// The weight of the top bit of a signed type: `-2^(w-1)`.
    fn min(&self) -> Expr {
        Expr::int(-(1i64 << (self.w - 1)))
    }
    fn is_neg(a: &Expr) -> Expr {
        a.clone().cmp(BinaryOp::Less, Expr::int(0), DType::I32)
    }
    /// The value bits below the sign bit, as a non-negative number.
    fn low(&self, a: &Expr) -> Expr {
        if self.signed {
            Expr::select(Self::is_neg(a), a.clone().sub(self.min()), a.clone())
        } else {
            a.clone()
        }
    }
    /// Bits `0..n` with their weights (`n = w - 1` for signed types).
    fn n_low(&self) -> u32 {
        if self.signed {
            self.w - 1
        } else {
            self.w
        }
    }
    /// Bit `k` (0 or 1) of a non-negative value.
    fn bit(u: &Expr, k: u32) -> Expr {
        u.clone().div(Self::pow2(k)).rem(Expr::int(2))
    }
    /// `a op b` bitwise, with `g` combining two bits (0/1 expressions) into 0/1.
    fn combine(&self, a: &Expr, b: &Expr, g: &dyn Fn(Expr, Expr) -> Expr) -> Expr {
        let (ua, ub) = (self.low(a), self.low(b));
        let mut acc: Option<Expr> = None;
        for k in 0..self.n_low() {
            let term = g(Self::bit(&ua, k), Self::bit(&ub, k)).mul(Self::pow2(k));
            acc = Some(match acc {
                Some(x) => x.add(term),
                None => term,
            });
        }
        let mut acc = acc.unwrap_or_else(|| Expr::int(0));
        if self.signed {
            let sa = Expr::select(Self::is_neg(a), Expr::int(1), Expr::int(0));
            let sb = Expr::select(Self::is_neg(b), Expr::int(1), Expr::int(0));
            acc = acc.add(g(sa, sb).mul(self.min()));
        }
        acc
    }
    /// Wraps an i32 value into the `w`-bit type's range.
    fn wrap(&self, v: Expr) -> Expr {
        match (self.w, self.signed) {
            (32, _) => v,
            (w, true) => {
                let h = 1i64 << (w - 1);
                v.add(Expr::int(h)).rem(Expr::int(2 * h)).sub(Expr::int(h))
            }
            (w, false) => v.rem(Expr::int(1i64 << w)),
        }
    }
    /// `2^b` for `0 <= b < w` (`-2^31` for `b = 31`, the wrapped value).
    fn pow2_of(&self, b: &Expr) -> Expr {
        let p = Expr::Binary(BinaryOp::Pow, Box::new(Expr::int(2)), Box::new(b.clone()), DType::I32);
        if self.w == 32 {
            Expr::select(
                b.clone().cmp(BinaryOp::Equal, Expr::int(31), DType::I32),
                Expr::int(i32::MIN as i64),
                p,
            )
        } else {
            p
        }
    }
}

/// `BitwiseAnd/Or/Xor/Not` and `BitShift` as integer arithmetic in one tensor expression (the IR
/// has no bit operations): operands are split into bits by division and floor modulo, the sign
/// bit carrying weight `-2^(w-1)`; shifts multiply or floor-divide by powers of two. Widths
/// follow the IR dtype (int16/int64 data are i32 in Kiln, so they shift as 32-bit values).
pub(crate) fn bitwise(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let a = cx.input(n, 0)?;
    let at = cx.ty(a).clone();
    let dt = at.dtype;
    let (w, signed) = match dt {
        DType::I8 => (8, true),
        DType::U8 => (8, false),
        // u32 bit patterns are handled as i32 (same bits).
        DType::I32 | DType::U32 => (32, true),
        _ => return Err(n.err(format!("input must be an integer tensor, got {}", at.describe()))),
    };
    let bits = Bits { w, signed };
    let mut ins = vec![a];
    let (shape, expr) = if n.op == "BitwiseNot" {
        let x = int_operand(0, at.rank(), at.rank(), dt);
        let e = if signed {
            Expr::int(-1).sub(x)
        } else {
            Expr::int((1i64 << w) - 1).sub(x)
        };
        (at.shape.clone(), e)
    } else {
        let b = cx.input(n, 1)?;
        let bt = cx.ty(b).clone();
        if bt.dtype != dt {
            return Err(n.err(format!(
                "operands must have the same type, got {} and {}",
                at.describe(),
                bt.describe()
            )));
        }
        ins.push(b);
        let shape = kiln_ir::infer::broadcast(&at.shape, &bt.shape)
            .map_err(|m| n.err(format!("operands do not broadcast: {m}")))?;
        let r = shape.len();
        let x = int_operand(0, at.rank(), r, dt);
        let y = int_operand(1, bt.rank(), r, dt);
        let e = match n.op {
            "BitwiseAnd" => bits.combine(&x, &y, &|p, q| p.mul(q)),
            "BitwiseOr" => bits.combine(&x, &y, &|p, q| p.clone().add(q.clone()).sub(p.mul(q))),
            "BitwiseXor" => bits.combine(&x, &y, &|p, q| p.clone().add(q.clone()).sub(Expr::int(2).mul(p.mul(q)))),
            _ => {
                let dir = n
                    .attr_s("direction")?
                    .ok_or_else(|| n.err("attribute 'direction' is required"))?;
                let in_range = Expr::Binary(
                    BinaryOp::And,
                    Box::new(y.clone().cmp(BinaryOp::GreaterEqual, Expr::int(0), DType::I32)),
                    Box::new(y.clone().cmp(BinaryOp::Less, Expr::int(w as i64), DType::I32)),
                    DType::Bool,
                );
                match dir.as_str() {
                    "LEFT" => {
                        let v = bits.wrap(x.mul(bits.pow2_of(&y)));
                        Expr::select(in_range, v, Expr::int(0))
                    }
                    "RIGHT" => {
                        let v = if signed && dt == DType::U32 {
                            // Logical shift of a u32 held as i32 bits.
                            let low = bits.low(&x).div(bits.pow2_of(&y));
                            let top = bits.pow2_of(&Expr::int(31).sub(y.clone()));
                            let shifted = low.add(Expr::select(Bits::is_neg(&x), top, Expr::int(0)));
                            Expr::select(
                                y.clone().cmp(BinaryOp::Equal, Expr::int(0), DType::I32),
                                x.clone(),
                                shifted,
                            )
                        } else if signed {
                            // Floor division; 2^31 is not an i32, so a shift by 31 is the sign.
                            let p = bits.pow2_of(&y);
                            let floor = x.clone().sub(x.clone().rem(p.clone())).div(p);
                            if w == 32 {
                                Expr::select(
                                    y.clone().cmp(BinaryOp::Equal, Expr::int(31), DType::I32),
                                    fill_neg(&x),
                                    floor,
                                )
                            } else {
                                floor
                            }
                        } else {
                            x.clone().div(bits.pow2_of(&y))
                        };
                        let out_fill = if signed && dt != DType::U32 {
                            fill_neg(&x)
                        } else {
                            Expr::int(0)
                        };
                        Expr::select(in_range, v, out_fill)
                    }
                    other => return Err(n.err(format!("attribute 'direction' must be LEFT or RIGHT, got '{other}'"))),
                }
            }
        };
        (shape, e)
    };
    let expr = if dt == DType::I32 {
        expr
    } else {
        Expr::Cast(Box::new(expr), DType::I32, dt)
    };
    Ok(one(cx.add(
        n,
        "",
        Op::Compute {
            shape,
            dtype: dt,
            expr,
            name: n.op.to_string(),
        },
        &ins,
    )?))
}

/// `a < 0 ? -1 : 0`: every bit a copy of the sign.
fn fill_neg(a: &Expr) -> Expr {
    Expr::select(Bits::is_neg(a), Expr::int(-1), Expr::int(0))
}
