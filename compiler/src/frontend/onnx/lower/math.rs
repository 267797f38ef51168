//! Math ops composed from IR primitives, and small node-building helpers that the other lowering
//! files of this family (`attention.rs`, `loss.rs`, `gather.rs`) share.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Dim, NodeId, Op, TExpr, UnaryOp};

/// `a op b` (broadcasting).
pub(crate) fn bin(
    cx: &mut Ctx,
    n: &N,
    suffix: &str,
    op: BinaryOp,
    a: NodeId,
    b: NodeId,
) -> Result<NodeId, OnnxError> {
    cx.add(n, suffix, Op::Binary(op), &[a, b])
}

/// `op x`.
pub(crate) fn unary(
    cx: &mut Ctx,
    n: &N,
    suffix: &str,
    op: UnaryOp,
    x: NodeId,
) -> Result<NodeId, OnnxError> {
    cx.add(n, suffix, Op::Unary(op), &[x])
}

/// Reshape to `shape` (skipped when the shape is already that).
pub(crate) fn reshape(
    cx: &mut Ctx,
    n: &N,
    suffix: &str,
    x: NodeId,
    shape: Vec<Dim>,
) -> Result<NodeId, OnnxError> {
    if cx.ty(x).shape == shape {
        return Ok(x);
    }
    cx.add(n, suffix, Op::Reshape { shape }, &[x])
}

/// Transpose by `perm` (skipped for the identity permutation).
pub(crate) fn transpose(
    cx: &mut Ctx,
    n: &N,
    suffix: &str,
    x: NodeId,
    perm: Vec<usize>,
) -> Result<NodeId, OnnxError> {
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
    fn x(&self) -> TExpr {
        TExpr::Load {
            input: 0,
            index: (0..self.rank).map(TExpr::Coord).collect(),
        }
    }
    fn lit(&self, v: f64) -> TExpr {
        TExpr::Lit(v, self.dt)
    }
    fn b(&self, op: BinaryOp, a: TExpr, c: TExpr) -> TExpr {
        TExpr::Binary(op, Box::new(a), Box::new(c), self.dt)
    }
    fn add(&self, a: TExpr, c: TExpr) -> TExpr {
        self.b(BinaryOp::Add, a, c)
    }
    fn sub(&self, a: TExpr, c: TExpr) -> TExpr {
        self.b(BinaryOp::Sub, a, c)
    }
    fn mul(&self, a: TExpr, c: TExpr) -> TExpr {
        self.b(BinaryOp::Mul, a, c)
    }
    fn div(&self, a: TExpr, c: TExpr) -> TExpr {
        self.b(BinaryOp::Div, a, c)
    }
    fn u(&self, op: UnaryOp, a: TExpr) -> TExpr {
        TExpr::Unary(op, Box::new(a), self.dt)
    }
    /// `c0 + z*(c1 + z*(c2 + ...))`.
    fn horner(&self, z: &TExpr, coeffs: &[f64]) -> TExpr {
        let mut acc = self.lit(*coeffs.last().expect("coefficients"));
        for &c in coeffs.iter().rev().skip(1) {
            acc = self.add(self.mul(acc, z.clone()), self.lit(c));
        }
        acc
    }
    /// `sign(s) * v` for a value `v >= 0` computed from `|s|`.
    fn with_sign_of(&self, s: TExpr, v: TExpr) -> TExpr {
        self.mul(self.u(UnaryOp::Sign, s), v)
    }

    /// atan of `a >= 0`: `t = min(a, 1/a)` on [0, 1], the Abramowitz & Stegun 4.4.49 odd
    /// polynomial (|error| <= 2e-8), and `pi/2 - p` for `a > 1`.
    fn atan_nonneg(&self, a: TExpr) -> TExpr {
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
        let t = self.b(
            BinaryOp::Min,
            a.clone(),
            self.u(UnaryOp::Reciprocal, a.clone()),
        );
        let z = self.mul(t.clone(), t.clone());
        let p = self.mul(t, self.horner(&z, &C));
        let big = a.cmp(BinaryOp::Greater, self.lit(1.0), self.dt);
        let base = TExpr::select(
            big.clone(),
            self.lit(std::f64::consts::FRAC_PI_2),
            self.lit(0.0),
        );
        let sgn = TExpr::select(big, self.lit(-1.0), self.lit(1.0));
        self.add(base, self.mul(sgn, p))
    }

    /// asin of `a` in [0, 1] (Cephes `asinf`): a polynomial in `a^2` below 0.5, and
    /// `pi/2 - 2 asin(sqrt((1 - a) / 2))` above.
    fn asin_nonneg(&self, a: TExpr) -> TExpr {
        const C: [f64; 5] = [
            1.666_675_242_2e-1,
            7.495_300_268_6e-2,
            4.547_002_599_8e-2,
            2.418_131_104_9e-2,
            4.216_319_904_8e-2,
        ];
        let high = a.clone().cmp(BinaryOp::Greater, self.lit(0.5), self.dt);
        let zh = self.mul(self.lit(0.5), self.sub(self.lit(1.0), a.clone()));
        let z = TExpr::select(high.clone(), zh.clone(), self.mul(a.clone(), a.clone()));
        let s = TExpr::select(high.clone(), self.u(UnaryOp::Sqrt, zh), a);
        let p = self.add(
            s.clone(),
            self.mul(self.mul(s, z.clone()), self.horner(&z, &C)),
        );
        let base = TExpr::select(
            high.clone(),
            self.lit(std::f64::consts::FRAC_PI_2),
            self.lit(0.0),
        );
        let k = TExpr::select(high, self.lit(-2.0), self.lit(1.0));
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
        return Err(n.err(format!(
            "input must be floating point, got {}",
            t.describe()
        )));
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
            let bv = TExpr::Load {
                input: 1,
                index: (0..f.rank).map(TExpr::Coord).collect(),
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
