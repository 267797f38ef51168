//! Tensor expressions: an op defined by what each output element is.
//!
//! [`crate::Op::Compute`] carries a [`TExpr`]: a scalar expression over the output coordinates
//! ([`TExpr::Coord`]), dims, literals and loads of input elements at computed coordinates.
//! Pad, tile, trilu, depth-to-space, resize, gather-elements and many more ONNX ops are each one
//! such expression, written once in the frontend; the interpreter evaluates it here and the
//! injective schedule renders it to WGSL, so neither needs a case per op.
//!
//! Index arithmetic is i32. A load whose coordinates fall outside the input is clamped into
//! range (as WebGPU's robust buffer access makes GPU reads safe); expressions guard such loads
//! with [`TExpr::Select`] when the value matters.

use crate::{BinaryOp, DType, Dim, DimBindings, UnaryOp};

/// Why a [`TExpr`] does not fit the op that carries it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TExprError {
    /// A coordinate of an axis the output does not have.
    #[error("coordinate {axis} of a rank-{rank} output")]
    Coord {
        /// The axis read.
        axis: usize,
        /// The output's rank.
        rank: usize,
    },
    /// A load of an input slot the op does not have.
    #[error("load of input {input}, op has {inputs}")]
    NoInput {
        /// The slot loaded.
        input: usize,
        /// How many inputs the op has.
        inputs: usize,
    },
    /// A load with a coordinate count other than the input's rank.
    #[error("load of rank-{rank} input {input} with {coords} coordinates")]
    LoadRank {
        /// The slot loaded.
        input: usize,
        /// Its rank.
        rank: usize,
        /// Coordinates given.
        coords: usize,
    },
}

/// A scalar tensor expression.
#[derive(Clone, Debug, PartialEq)]
pub enum TExpr {
    /// Output coordinate along an axis (i32).
    Coord(usize),
    /// A (possibly symbolic) dim as an i32 value.
    Dim(Dim),
    /// A literal of a dtype.
    Lit(f64, DType),
    /// Element of input `input` at the given per-axis coordinates (each an i32 expression).
    Load {
        /// Input slot of the op.
        input: usize,
        /// One coordinate per input axis.
        index: Vec<TExpr>,
    },
    /// Unary function; the dtype is the operand's.
    Unary(UnaryOp, Box<TExpr>, DType),
    /// Binary function; the dtype is the operands'.
    Binary(BinaryOp, Box<TExpr>, Box<TExpr>, DType),
    /// `cond ? a : b` (`cond` is bool).
    Select(Box<TExpr>, Box<TExpr>, Box<TExpr>),
    /// Conversion (from, to).
    Cast(Box<TExpr>, DType, DType),
}

// Named builder methods (rather than operator traits) read better in frontend lowering code,
// where most expressions mix several dtypes and comparisons.
#[allow(clippy::should_implement_trait)]
impl TExpr {
    /// i32 literal.
    pub fn int(v: i64) -> TExpr {
        TExpr::Lit(v as f64, DType::I32)
    }

    /// i32 `a + b`.
    pub fn add(self, o: TExpr) -> TExpr {
        TExpr::Binary(BinaryOp::Add, Box::new(self), Box::new(o), DType::I32)
    }

    /// i32 `a - b`.
    pub fn sub(self, o: TExpr) -> TExpr {
        TExpr::Binary(BinaryOp::Sub, Box::new(self), Box::new(o), DType::I32)
    }

    /// i32 `a * b`.
    pub fn mul(self, o: TExpr) -> TExpr {
        TExpr::Binary(BinaryOp::Mul, Box::new(self), Box::new(o), DType::I32)
    }

    /// i32 `a / b` (truncating).
    pub fn div(self, o: TExpr) -> TExpr {
        TExpr::Binary(BinaryOp::Div, Box::new(self), Box::new(o), DType::I32)
    }

    /// i32 `a mod b` (floor).
    pub fn rem(self, o: TExpr) -> TExpr {
        TExpr::Binary(BinaryOp::Mod, Box::new(self), Box::new(o), DType::I32)
    }

    /// Comparison `a op b` on operands of dtype `d`.
    pub fn cmp(self, op: BinaryOp, o: TExpr, d: DType) -> TExpr {
        TExpr::Binary(op, Box::new(self), Box::new(o), d)
    }

    /// `cond ? a : b`.
    pub fn select(cond: TExpr, a: TExpr, b: TExpr) -> TExpr {
        TExpr::Select(Box::new(cond), Box::new(a), Box::new(b))
    }

    /// The dtype of the expression's value, given the input dtypes.
    pub fn dtype(&self, inputs: &[DType]) -> DType {
        match self {
            TExpr::Coord(_) | TExpr::Dim(_) => DType::I32,
            TExpr::Lit(_, d) => *d,
            TExpr::Load { input, .. } => inputs.get(*input).copied().unwrap_or(DType::F32),
            TExpr::Unary(u, _, d) => match u {
                UnaryOp::IsNan | UnaryOp::Not => DType::Bool,
                _ => *d,
            },
            TExpr::Binary(b, _, _, d) => {
                if b.is_comparison() {
                    DType::Bool
                } else {
                    *d
                }
            }
            TExpr::Select(_, a, _) => a.dtype(inputs),
            TExpr::Cast(_, _, to) => *to,
        }
    }

    /// Checks input slots, load ranks and coordinate axes; errors say what is wrong.
    pub fn check(&self, input_ranks: &[usize], out_rank: usize) -> Result<(), TExprError> {
        match self {
            TExpr::Coord(a) if *a >= out_rank => Err(TExprError::Coord {
                axis: *a,
                rank: out_rank,
            }),
            TExpr::Load { input, index } => {
                let r = *input_ranks.get(*input).ok_or(TExprError::NoInput {
                    input: *input,
                    inputs: input_ranks.len(),
                })?;
                if index.len() != r {
                    return Err(TExprError::LoadRank {
                        input: *input,
                        rank: r,
                        coords: index.len(),
                    });
                }
                index.iter().try_for_each(|e| e.check(input_ranks, out_rank))
            }
            TExpr::Unary(_, a, _) | TExpr::Cast(a, _, _) => a.check(input_ranks, out_rank),
            TExpr::Binary(_, a, b, _) => {
                a.check(input_ranks, out_rank)?;
                b.check(input_ranks, out_rank)
            }
            TExpr::Select(c, a, b) => {
                c.check(input_ranks, out_rank)?;
                a.check(input_ranks, out_rank)?;
                b.check(input_ranks, out_rank)
            }
            _ => Ok(()),
        }
    }
}

/// Evaluation context: input values with their shapes, and symbol bindings.
pub struct EvalCtx<'a> {
    /// Input shapes.
    pub shapes: &'a [Vec<usize>],
    /// Input values (exact).
    pub values: &'a [&'a [f64]],
    /// Input dtypes.
    pub dtypes: &'a [DType],
    /// Symbol values.
    pub bindings: &'a DimBindings,
}

/// Evaluates `e` at output coordinate `coord` (exact arithmetic, rounded per dtype).
pub fn eval(e: &TExpr, coord: &[i64], cx: &EvalCtx) -> f64 {
    match e {
        TExpr::Coord(a) => coord[*a] as f64,
        TExpr::Dim(d) => d.eval(cx.bindings).unwrap_or(0) as f64,
        TExpr::Lit(v, d) => d.round(*v),
        TExpr::Load { input, index } => {
            let shape = &cx.shapes[*input];
            let mut off = 0usize;
            for (i, ix) in index.iter().enumerate() {
                let v = eval(ix, coord, cx) as i64;
                let c = v.clamp(0, shape[i].max(1) as i64 - 1) as usize;
                off = off * shape[i] + c;
            }
            cx.values[*input].get(off).copied().unwrap_or(0.0)
        }
        TExpr::Unary(u, a, d) => d_round(e, cx, crate::interp::unary_value(*u, eval(a, coord, cx), *d)),
        TExpr::Binary(b, x, y, d) => {
            let v = crate::interp::binary_value(*b, eval(x, coord, cx), eval(y, coord, cx), d.is_int());
            d_round(e, cx, v)
        }
        TExpr::Select(c, a, b) => {
            if eval(c, coord, cx) != 0.0 {
                eval(a, coord, cx)
            } else {
                eval(b, coord, cx)
            }
        }
        TExpr::Cast(a, from, to) => crate::interp::cast(eval(a, coord, cx), *from, *to),
    }
}

fn d_round(e: &TExpr, cx: &EvalCtx, v: f64) -> f64 {
    e.dtype(cx.dtypes).round(v)
}
