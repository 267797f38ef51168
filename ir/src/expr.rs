//! Scalar expressions: the one expression tree of graph ops and kernels.
//!
//! [`crate::Op::Compute`] carries an [`Expr`]: a scalar expression over the output coordinates
//! ([`Expr::Coord`]), dims, literals and loads of input elements at computed coordinates
//! ([`Expr::Load`]). Pad, tile, trilu, depth-to-space, resize, gather-elements and many more ONNX
//! ops are each one such expression, written once in the frontend; the interpreter evaluates it
//! here and the injective schedule renders it to WGSL, so neither needs a case per op.
//!
//! Kernel formation (the compiler's `lower`) builds kernels from the same tree: it replaces each
//! graph-level load by a load of a kernel input slot ([`Expr::LoadAt`], [`Expr::Read`] through an
//! [`Access`], [`Expr::LoadIdx`] at a linear index) and adds the kernel-level leaves
//! ([`Expr::Index`], [`Expr::CoordOf`], [`Expr::Concat`], [`Expr::Core`]). Those leaves never
//! appear in a graph op: [`Expr::check`] refuses them. One tree means one set of operators, one
//! dtype rule and one builder vocabulary for the frontends, the fusion code and the renderer.
//!
//! Index arithmetic is i32. A load whose coordinates fall outside the input is clamped into
//! range (as WebGPU's robust buffer access makes GPU reads safe); expressions guard such loads
//! with [`Expr::Select`] when the value matters.

use crate::{BinaryOp, DType, Dim, DimBindings, Shape, UnaryOp};

/// How a kernel reads one of its input slots relative to the output element
/// ([`Expr::Read`]); kernel-level only.
#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    /// Same linear index as the output element (input has the output's shape).
    Linear,
    /// `offset + sum_i coord_i * strides[i]` over the output coordinates.
    Strided {
        /// One stride per output axis (0 for broadcast axes).
        strides: Vec<Dim>,
        /// Element offset.
        offset: Dim,
    },
    /// Like `Strided`, plus `index * axis_stride`, where `index` is an expression (a gather
    /// index, wrapped into range when negative).
    Gathered {
        /// One stride per output axis.
        strides: Vec<Dim>,
        /// The gathered index.
        index: Box<Expr>,
        /// Size of the gathered axis (negative indices add it).
        axis_len: Dim,
        /// Stride of the gathered axis.
        axis_stride: Dim,
    },
}

/// A scalar expression, evaluated once per output element.
///
/// The first nine variants are shared by graph ops and kernels; the rest are kernel-level
/// leaves that only kernel formation creates.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// Output coordinate along an axis (i32).
    Coord(usize),
    /// A (possibly symbolic) dim as an i32 value.
    Dim(Dim),
    /// A literal of a dtype.
    Lit(f64, DType),
    /// Element of the op's input `input` at the given per-axis coordinates (each an i32
    /// expression), clamped into the input's shape. Graph-level: kernels use [`Expr::LoadAt`].
    Load {
        /// Input slot of the op.
        input: usize,
        /// One coordinate per input axis.
        index: Vec<Expr>,
    },
    /// Unary function; the dtype is the operand's.
    Unary(UnaryOp, Box<Expr>, DType),
    /// Binary function; the dtype is the operands'.
    Binary(BinaryOp, Box<Expr>, Box<Expr>, DType),
    /// `cond ? a : b` (`cond` is bool).
    Select(Box<Expr>, Box<Expr>, Box<Expr>),
    /// Conversion (from, to).
    Cast(Box<Expr>, DType, DType),
    /// Reinterpretation of the bits of a 32-bit value as another 32-bit type (from, to): f32,
    /// i32 or u32 (ONNX `BitCast`).
    Bitcast(Box<Expr>, DType, DType),
    /// Kernel-level: element of kernel input `slot`, read through that input's access.
    Read(usize, Box<Access>),
    /// Kernel-level: element of kernel input `slot` (of the given shape) at per-axis
    /// coordinates, each clamped into range.
    LoadAt(usize, Vec<Expr>, Shape),
    /// Kernel-level: concatenation; picks part `k` when `coord < ends[k]` (first match).
    Concat {
        /// The coordinate along the concatenated axis (i32).
        coord: Box<Expr>,
        /// Part expressions with the exclusive end of their range along `axis`.
        parts: Vec<(Expr, Dim)>,
    },
    /// Kernel-level: the output element's linear index (i32).
    Index,
    /// Kernel-level: coordinate of a linear index along one axis of a row-major shape,
    /// `(index / stride) % dim` (no modulo for the outermost axis); operands are non-negative.
    CoordOf {
        /// The linear index.
        index: Box<Expr>,
        /// Elements per step along the axis.
        stride: Dim,
        /// Axis length (`None` for the outermost axis).
        dim: Option<Dim>,
    },
    /// Kernel-level: element of kernel input `slot` at a linear index.
    LoadIdx(usize, Box<Expr>),
    /// Kernel-level: the value an anchor kernel (GEMM, conv) computed for this element, the
    /// input of an epilogue.
    Core(DType),
}

// Named builder methods (rather than operator traits) read better in frontend lowering code,
// where most expressions mix several dtypes and comparisons.
#[allow(clippy::should_implement_trait)]
impl Expr {
    /// i32 literal.
    pub fn int(v: i64) -> Expr {
        Expr::Lit(v as f64, DType::I32)
    }

    /// i32 `a + b`.
    pub fn add(self, o: Expr) -> Expr {
        Expr::Binary(BinaryOp::Add, Box::new(self), Box::new(o), DType::I32)
    }

    /// i32 `a - b`.
    pub fn sub(self, o: Expr) -> Expr {
        Expr::Binary(BinaryOp::Sub, Box::new(self), Box::new(o), DType::I32)
    }

    /// i32 `a * b`.
    pub fn mul(self, o: Expr) -> Expr {
        Expr::Binary(BinaryOp::Mul, Box::new(self), Box::new(o), DType::I32)
    }

    /// i32 `a / b` (truncating).
    pub fn div(self, o: Expr) -> Expr {
        Expr::Binary(BinaryOp::Div, Box::new(self), Box::new(o), DType::I32)
    }

    /// i32 `a mod b` (floor).
    pub fn rem(self, o: Expr) -> Expr {
        Expr::Binary(BinaryOp::Mod, Box::new(self), Box::new(o), DType::I32)
    }

    /// Comparison `a op b` on operands of dtype `d`.
    pub fn cmp(self, op: BinaryOp, o: Expr, d: DType) -> Expr {
        Expr::Binary(op, Box::new(self), Box::new(o), d)
    }

    /// `cond ? a : b`.
    pub fn select(cond: Expr, a: Expr, b: Expr) -> Expr {
        Expr::Select(Box::new(cond), Box::new(a), Box::new(b))
    }

    /// The dtype of the expression's value, given the dtypes of the inputs (the op's inputs
    /// for graph-level loads, the kernel's input slots for kernel-level ones).
    pub fn dtype(&self, inputs: &[DType]) -> DType {
        match self {
            Expr::Coord(_) | Expr::Dim(_) | Expr::Index | Expr::CoordOf { .. } => DType::I32,
            Expr::Lit(_, d) | Expr::Core(d) => *d,
            Expr::Load { input: slot, .. }
            | Expr::Read(slot, _)
            | Expr::LoadAt(slot, _, _)
            | Expr::LoadIdx(slot, _) => inputs.get(*slot).copied().unwrap_or(DType::F32),
            Expr::Unary(u, _, d) => match u {
                UnaryOp::IsNan | UnaryOp::Not => DType::Bool,
                _ => *d,
            },
            Expr::Binary(b, _, _, d) => {
                if b.is_comparison() {
                    DType::Bool
                } else {
                    *d
                }
            }
            Expr::Select(_, a, _) => a.dtype(inputs),
            Expr::Cast(_, _, to) | Expr::Bitcast(_, _, to) => *to,
            Expr::Concat { parts, .. } => parts.first().map_or(DType::F32, |(e, _)| e.dtype(inputs)),
        }
    }

    /// Whether this node is a kernel-level leaf (never valid inside a graph op).
    pub fn is_kernel_level(&self) -> bool {
        matches!(
            self,
            Expr::Read(..)
                | Expr::LoadAt(..)
                | Expr::Concat { .. }
                | Expr::Index
                | Expr::CoordOf { .. }
                | Expr::LoadIdx(..)
                | Expr::Core(_)
        )
    }

    /// Whether the expression reads input slot `s` in any form (a read, a load at coordinates
    /// or a load at a linear index), anywhere in it.
    pub fn reads_slot(&self, s: usize) -> bool {
        match self {
            Expr::Read(x, _) | Expr::LoadAt(x, ..) | Expr::LoadIdx(x, _) if *x == s => true,
            e => e.children().into_iter().any(|c| c.reads_slot(s)),
        }
    }

    /// The direct sub-expressions, in order.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Coord(_) | Expr::Dim(_) | Expr::Lit(..) | Expr::Index | Expr::Core(_) => Vec::new(),
            Expr::Load { index, .. } | Expr::LoadAt(_, index, _) => index.iter().collect(),
            Expr::Unary(_, a, _) | Expr::Cast(a, _, _) | Expr::Bitcast(a, _, _) | Expr::LoadIdx(_, a) => vec![a],
            Expr::CoordOf { index, .. } => vec![index],
            Expr::Binary(_, a, b, _) => vec![a, b],
            Expr::Select(c, a, b) => vec![c, a, b],
            Expr::Read(_, access) => match access.as_ref() {
                Access::Gathered { index, .. } => vec![index],
                Access::Linear | Access::Strided { .. } => Vec::new(),
            },
            Expr::Concat { coord, parts } => std::iter::once(coord.as_ref())
                .chain(parts.iter().map(|(e, _)| e))
                .collect(),
        }
    }

    /// Rebuilds the tree bottom-up: `f` gets each node after its children were rebuilt, and
    /// returns its replacement. Dims inside the node (strides, shapes) are left to `f`.
    pub fn rewrite(&self, f: &mut dyn FnMut(Expr) -> Expr) -> Expr {
        let rebuilt = match self {
            Expr::Load { input, index } => Expr::Load {
                input: *input,
                index: index.iter().map(|x| x.rewrite(f)).collect(),
            },
            Expr::LoadAt(slot, index, shape) => {
                Expr::LoadAt(*slot, index.iter().map(|x| x.rewrite(f)).collect(), shape.clone())
            }
            Expr::Unary(u, a, d) => Expr::Unary(*u, Box::new(a.rewrite(f)), *d),
            Expr::Cast(a, from, to) => Expr::Cast(Box::new(a.rewrite(f)), *from, *to),
            Expr::Bitcast(a, from, to) => Expr::Bitcast(Box::new(a.rewrite(f)), *from, *to),
            Expr::LoadIdx(slot, a) => Expr::LoadIdx(*slot, Box::new(a.rewrite(f))),
            Expr::CoordOf { index, stride, dim } => Expr::CoordOf {
                index: Box::new(index.rewrite(f)),
                stride: stride.clone(),
                dim: dim.clone(),
            },
            Expr::Binary(o, a, b, d) => Expr::Binary(*o, Box::new(a.rewrite(f)), Box::new(b.rewrite(f)), *d),
            Expr::Select(c, a, b) => {
                Expr::Select(Box::new(c.rewrite(f)), Box::new(a.rewrite(f)), Box::new(b.rewrite(f)))
            }
            Expr::Read(slot, access) => Expr::Read(
                *slot,
                Box::new(match access.as_ref() {
                    Access::Gathered {
                        strides,
                        index,
                        axis_len,
                        axis_stride,
                    } => Access::Gathered {
                        strides: strides.clone(),
                        index: Box::new(index.rewrite(f)),
                        axis_len: axis_len.clone(),
                        axis_stride: axis_stride.clone(),
                    },
                    other => other.clone(),
                }),
            ),
            Expr::Concat { coord, parts } => Expr::Concat {
                coord: Box::new(coord.rewrite(f)),
                parts: parts.iter().map(|(e, end)| (e.rewrite(f), end.clone())).collect(),
            },
            leaf => leaf.clone(),
        };
        f(rebuilt)
    }

    /// Checks that a graph op's expression is well formed: input slots, load ranks and
    /// coordinate axes in range, and no kernel-level leaves.
    pub fn check(&self, input_ranks: &[usize], out_rank: usize) -> Result<(), ExprError> {
        match self {
            Expr::Coord(a) if *a >= out_rank => Err(ExprError::CoordOutOfRank {
                axis: *a,
                rank: out_rank,
            }),
            Expr::Load { input, index } => {
                let rank = *input_ranks.get(*input).ok_or(ExprError::NoSuchInput {
                    input: *input,
                    inputs: input_ranks.len(),
                })?;
                if index.len() != rank {
                    return Err(ExprError::LoadRank {
                        input: *input,
                        rank,
                        coords: index.len(),
                    });
                }
                index.iter().try_for_each(|e| e.check(input_ranks, out_rank))
            }
            Expr::Bitcast(a, from, to) => {
                let word = |d: &DType| matches!(d, DType::F32 | DType::I32 | DType::U32);
                if !word(from) || !word(to) {
                    return Err(ExprError::Bitcast { from: *from, to: *to });
                }
                a.check(input_ranks, out_rank)
            }
            e if e.is_kernel_level() => Err(ExprError::KernelLevel(format!("{e:?}").chars().take(80).collect())),
            e => e
                .children()
                .into_iter()
                .try_for_each(|c| c.check(input_ranks, out_rank)),
        }
    }
}

/// Why a graph op's expression is malformed ([`Expr::check`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ExprError {
    /// A coordinate names an axis the output does not have.
    #[error("coordinate {axis} of a rank-{rank} output")]
    CoordOutOfRank {
        /// The axis.
        axis: usize,
        /// The output's rank.
        rank: usize,
    },
    /// A load names an input the op does not have.
    #[error("load of input {input}, op has {inputs}")]
    NoSuchInput {
        /// The input slot.
        input: usize,
        /// How many inputs the op has.
        inputs: usize,
    },
    /// A load gives the wrong number of coordinates.
    #[error("load of rank-{rank} input {input} with {coords} coordinates")]
    LoadRank {
        /// The input slot.
        input: usize,
        /// The input's rank.
        rank: usize,
        /// Coordinates given.
        coords: usize,
    },
    /// A bit cast between types other than the 32-bit f32, i32 and u32.
    #[error("bit cast from {from:?} to {to:?}: only f32, i32 and u32 are supported")]
    Bitcast {
        /// The source type.
        from: DType,
        /// The target type.
        to: DType,
    },
    /// A kernel-level leaf inside a graph op.
    #[error("kernel-level expression in a graph op: {0}")]
    KernelLevel(String),
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
pub fn eval(e: &Expr, coord: &[i64], cx: &EvalCtx) -> f64 {
    match e {
        Expr::Coord(a) => coord[*a] as f64,
        Expr::Dim(d) => d.eval(cx.bindings).unwrap_or(0) as f64,
        Expr::Lit(v, d) => d.round(*v),
        Expr::Load { input, index } => {
            let shape = &cx.shapes[*input];
            let mut off = 0usize;
            for (i, ix) in index.iter().enumerate() {
                let v = eval(ix, coord, cx) as i64;
                let c = v.clamp(0, shape[i].max(1) as i64 - 1) as usize;
                off = off * shape[i] + c;
            }
            cx.values[*input].get(off).copied().unwrap_or(0.0)
        }
        Expr::Unary(u, a, d) => d_round(e, cx, crate::interp::unary_value(*u, eval(a, coord, cx), *d)),
        Expr::Binary(b, x, y, d) => {
            let v = crate::interp::binary_value(*b, eval(x, coord, cx), eval(y, coord, cx), d.is_int());
            d_round(e, cx, v)
        }
        Expr::Select(c, a, b) => {
            if eval(c, coord, cx) != 0.0 {
                eval(a, coord, cx)
            } else {
                eval(b, coord, cx)
            }
        }
        Expr::Cast(a, from, to) => crate::interp::cast(eval(a, coord, cx), *from, *to),
        Expr::Bitcast(a, from, to) => crate::interp::bitcast(eval(a, coord, cx), *from, *to),
        // `Expr::check` refuses kernel-level leaves when a graph op is inserted.
        kernel => unreachable!("kernel-level expression in a graph op: {kernel:?}"),
    }
}

fn d_round(e: &Expr, cx: &EvalCtx, v: f64) -> f64 {
    e.dtype(cx.dtypes).round(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_refuses_kernel_level_leaves_in_a_graph_op() {
        let e = Expr::Coord(0).add(Expr::Index);
        assert!(matches!(e.check(&[], 1), Err(ExprError::KernelLevel(_))));
        let ok = Expr::Load {
            input: 0,
            index: vec![Expr::Coord(0).add(Expr::int(1))],
        };
        assert_eq!(ok.check(&[1], 1), Ok(()));
        assert_eq!(
            ok.check(&[2], 1),
            Err(ExprError::LoadRank {
                input: 0,
                rank: 2,
                coords: 1
            })
        );
        assert_eq!(
            Expr::Coord(3).check(&[], 2),
            Err(ExprError::CoordOutOfRank { axis: 3, rank: 2 })
        );
    }

    #[test]
    fn rewrite_visits_every_node_bottom_up_including_gather_indices() {
        let gathered = Expr::Read(
            1,
            Box::new(Access::Gathered {
                strides: vec![Dim::c(1)],
                index: Box::new(Expr::Dim(Dim::sym("n"))),
                axis_len: Dim::c(4),
                axis_stride: Dim::c(1),
            }),
        );
        let e = Expr::select(
            Expr::Dim(Dim::sym("n")).cmp(BinaryOp::Less, Expr::int(2), DType::I32),
            gathered,
            Expr::Lit(0.0, DType::F32),
        );
        let mut seen = 0;
        let out = e.rewrite(&mut |n| {
            seen += 1;
            match n {
                Expr::Dim(_) => Expr::int(7),
                n => n,
            }
        });
        // select, cmp, dim, 2, read, dim (gather index), literal 0.
        assert_eq!(seen, 7);
        let mut dims = 0;
        fn count(e: &Expr, dims: &mut usize) {
            if matches!(e, Expr::Dim(_)) {
                *dims += 1;
            }
            e.children().into_iter().for_each(|c| count(c, dims));
        }
        count(&out, &mut dims);
        assert_eq!(dims, 0, "every Dim leaf was replaced: {out:?}");
        assert_eq!(out.dtype(&[DType::F32, DType::F32]), DType::F32);
    }
}
