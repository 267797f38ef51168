//! Activation functions: IR unary ops where one exists, else short decompositions.

use super::elementwise::with_scalar;
use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, Op, UnaryOp};

/// Lowers `Relu`, `Sigmoid`, `Tanh`, `LeakyRelu`, `Elu`, `Selu`, `Celu`, `HardSigmoid`,
/// `HardSwish`, `Gelu`, `Softplus`, `Softsign`, `Mish`, `ThresholdedRelu`, `PRelu`.
pub(crate) fn lower(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let dt = cx.ty(x).dtype;
    let unary = |cx: &mut Ctx, suffix: &str, u: UnaryOp, x| cx.add(n, suffix, Op::Unary(u), &[x]);
    let bin = |cx: &mut Ctx, suffix: &str, b: BinaryOp, x, y| cx.add(n, suffix, Op::Binary(b), &[x, y]);
    let y = match n.op {
        "Relu" => unary(cx, "", UnaryOp::Relu, x)?,
        "Sigmoid" => unary(cx, "", UnaryOp::Sigmoid, x)?,
        "Tanh" => unary(cx, "", UnaryOp::Tanh, x)?,
        "Softplus" => unary(cx, "", UnaryOp::Softplus, x)?,
        "LeakyRelu" => unary(cx, "", UnaryOp::LeakyRelu(n.attr_f("alpha", 0.01)?), x)?,
        "Elu" => unary(cx, "", UnaryOp::Elu(n.attr_f("alpha", 1.0)?), x)?,
        "Selu" => {
            let alpha = n.attr_f("alpha", 1.673_263_2)?;
            let gamma = n.attr_f("gamma", 1.050_701)?;
            let e = unary(cx, "elu", UnaryOp::Elu(alpha), x)?;
            with_scalar(cx, n, "", BinaryOp::Mul, e, gamma as f64)?
        }
        "Celu" => {
            // celu(x) = alpha * elu_1(x / alpha)
            let alpha = n.attr_f("alpha", 1.0)?;
            if alpha == 1.0 {
                unary(cx, "", UnaryOp::Elu(1.0), x)?
            } else {
                let s = with_scalar(cx, n, "scaled", BinaryOp::Div, x, alpha as f64)?;
                let e = unary(cx, "elu", UnaryOp::Elu(1.0), s)?;
                with_scalar(cx, n, "", BinaryOp::Mul, e, alpha as f64)?
            }
        }
        "HardSigmoid" => {
            let alpha = n.attr_f("alpha", 0.2)?;
            let beta = n.attr_f("beta", 0.5)?;
            hard_sigmoid(cx, n, x, alpha as f64, beta as f64, "")?
        }
        "HardSwish" => {
            let h = hard_sigmoid(cx, n, x, 1.0 / 6.0, 0.5, "hardsigmoid")?;
            bin(cx, "", BinaryOp::Mul, x, h)?
        }
        "Gelu" => {
            let approximate = n.attr_s("approximate")?.unwrap_or_else(|| "none".into());
            let inner = match approximate.as_str() {
                "none" => {
                    let s = with_scalar(cx, n, "scaled", BinaryOp::Mul, x, std::f64::consts::FRAC_1_SQRT_2)?;
                    unary(cx, "erf", UnaryOp::Erf, s)?
                }
                "tanh" => {
                    // tanh(sqrt(2/pi) * (x + 0.044715 x^3))
                    let x2 = bin(cx, "x2", BinaryOp::Mul, x, x)?;
                    let x3 = bin(cx, "x3", BinaryOp::Mul, x2, x)?;
                    let c = with_scalar(cx, n, "cubic", BinaryOp::Mul, x3, 0.044715)?;
                    let s = bin(cx, "sum", BinaryOp::Add, x, c)?;
                    let k = with_scalar(cx, n, "scaled", BinaryOp::Mul, s, (2.0 / std::f64::consts::PI).sqrt())?;
                    unary(cx, "tanh", UnaryOp::Tanh, k)?
                }
                other => {
                    return Err(n.err(format!(
                        "attribute 'approximate' is '{other}', expected 'none' or 'tanh'"
                    )))
                }
            };
            let p = with_scalar(cx, n, "one_plus", BinaryOp::Add, inner, 1.0)?;
            let h = with_scalar(cx, n, "half_x", BinaryOp::Mul, x, 0.5)?;
            bin(cx, "", BinaryOp::Mul, h, p)?
        }
        "Softsign" => {
            let a = unary(cx, "abs", UnaryOp::Abs, x)?;
            let d = with_scalar(cx, n, "denom", BinaryOp::Add, a, 1.0)?;
            bin(cx, "", BinaryOp::Div, x, d)?
        }
        "Mish" => {
            let sp = unary(cx, "softplus", UnaryOp::Softplus, x)?;
            let t = unary(cx, "tanh", UnaryOp::Tanh, sp)?;
            bin(cx, "", BinaryOp::Mul, x, t)?
        }
        "ThresholdedRelu" => {
            let alpha = n.attr_f("alpha", 1.0)?;
            let a = cx.scalar(n, "alpha", dt, alpha as f64);
            let m = bin(cx, "mask", BinaryOp::Greater, x, a)?;
            let z = cx.scalar(n, "zero", dt, 0.0);
            cx.add(n, "", Op::Where, &[m, x, z])?
        }
        "PRelu" => {
            let slope = cx.input(n, 1)?;
            let z = cx.scalar(n, "zero", dt, 0.0);
            let m = bin(cx, "mask", BinaryOp::Less, x, z)?;
            let s = bin(cx, "scaled", BinaryOp::Mul, x, slope)?;
            cx.add(n, "", Op::Where, &[m, s, x])?
        }
        _ => unreachable!("dispatched"),
    };
    Ok(one(y))
}

/// max(0, min(1, alpha * x + beta)).
fn hard_sigmoid(
    cx: &mut Ctx,
    n: &N,
    x: kiln_ir::NodeId,
    alpha: f64,
    beta: f64,
    suffix: &str,
) -> Result<kiln_ir::NodeId, OnnxError> {
    let p = |s: &str| {
        if suffix.is_empty() {
            s.to_string()
        } else {
            format!("{suffix}_{s}")
        }
    };
    let a = with_scalar(cx, n, &p("scaled"), BinaryOp::Mul, x, alpha)?;
    let b = with_scalar(cx, n, &p("shifted"), BinaryOp::Add, a, beta)?;
    let c = with_scalar(cx, n, &p("upper"), BinaryOp::Min, b, 1.0)?;
    with_scalar(cx, n, suffix, BinaryOp::Max, c, 0.0)
}
