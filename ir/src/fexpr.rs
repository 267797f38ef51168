//! f32 expression builders: the float counterparts of [`Expr`]'s i32 builder methods
//! ([`Expr::add`], [`Expr::int`], ...), for frontend lowerings that write sampling, weighting
//! or update formulas as tensor expressions (GridSample, RoiAlign, DeformConv, optimizers).
//!
//! Free functions rather than methods, so a formula reads as nested calls (`add(mul(a, b), c)`)
//! without colliding with the i32 methods.

use crate::{BinaryOp, DType, Expr, UnaryOp};

const F: DType = DType::F32;

/// f32 literal.
pub fn lit(v: impl Into<f64>) -> Expr {
    Expr::Lit(v.into(), F)
}

/// f32 `a op b` (a non-comparison binary op).
pub fn bin(op: BinaryOp, a: Expr, b: Expr) -> Expr {
    Expr::Binary(op, Box::new(a), Box::new(b), F)
}

/// f32 `a + b`.
pub fn add(a: Expr, b: Expr) -> Expr {
    bin(BinaryOp::Add, a, b)
}

/// f32 `a - b`.
pub fn sub(a: Expr, b: Expr) -> Expr {
    bin(BinaryOp::Sub, a, b)
}

/// f32 `a * b`.
pub fn mul(a: Expr, b: Expr) -> Expr {
    bin(BinaryOp::Mul, a, b)
}

/// f32 `a / b`.
pub fn div(a: Expr, b: Expr) -> Expr {
    bin(BinaryOp::Div, a, b)
}

/// f32 `max(a, b)`.
pub fn max(a: Expr, b: Expr) -> Expr {
    bin(BinaryOp::Max, a, b)
}

/// f32 `min(a, b)`.
pub fn min(a: Expr, b: Expr) -> Expr {
    bin(BinaryOp::Min, a, b)
}

/// f32 `floor a`.
pub fn floor(a: Expr) -> Expr {
    Expr::Unary(UnaryOp::Floor, Box::new(a), F)
}

/// f32 `ceil a`.
pub fn ceil(a: Expr) -> Expr {
    Expr::Unary(UnaryOp::Ceil, Box::new(a), F)
}

/// f32 `sqrt a`.
pub fn sqrt(a: Expr) -> Expr {
    Expr::Unary(UnaryOp::Sqrt, Box::new(a), F)
}

/// f32 `a < b` (bool).
pub fn lt(a: Expr, b: Expr) -> Expr {
    a.cmp(BinaryOp::Less, b, F)
}

/// f32 `a <= b` (bool).
pub fn le(a: Expr, b: Expr) -> Expr {
    a.cmp(BinaryOp::LessEqual, b, F)
}

/// Logical `a || b` of bool operands.
pub fn or(a: Expr, b: Expr) -> Expr {
    Expr::Binary(BinaryOp::Or, Box::new(a), Box::new(b), DType::Bool)
}

/// Logical `a && b` of bool operands.
pub fn and(a: Expr, b: Expr) -> Expr {
    Expr::Binary(BinaryOp::And, Box::new(a), Box::new(b), DType::Bool)
}

/// An i32 expression as f32.
pub fn to_f(a: Expr) -> Expr {
    Expr::Cast(Box::new(a), DType::I32, F)
}

/// An f32 expression as i32 (truncating).
pub fn to_i(a: Expr) -> Expr {
    Expr::Cast(Box::new(a), F, DType::I32)
}

/// A value of dtype `from` as f32 (itself when it already is).
pub fn as_f32(a: Expr, from: DType) -> Expr {
    if from == F {
        a
    } else {
        Expr::Cast(Box::new(a), from, F)
    }
}

/// A value of dtype `from` as i32 (itself when it already is).
pub fn as_i32(a: Expr, from: DType) -> Expr {
    if from == DType::I32 {
        a
    } else {
        Expr::Cast(Box::new(a), from, DType::I32)
    }
}
