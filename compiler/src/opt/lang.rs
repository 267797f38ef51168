//! The e-graph language: one e-node per IR op, with hashable attribute payloads.
//!
//! [`KOp`] mirrors [`Op`] variant by variant. Attributes are plain hashable values (perms,
//! axes, symbolic shapes, float attributes by their bits); a constant is an id into the
//! analysis's constant table (weights are never hashed or compared), and an op with an
//! unhashable payload (`Compute`'s expression tree) is an id into the opaque-op table.

use egg::{Id, Language};
use kiln_ir::{BinaryOp, BlockType, DType, Dim, Op, ReduceOp, ScatterReduction, SliceAxis, UnaryOp};
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

/// A [`UnaryOp`] as a hashable, totally ordered key (its float parameter compared by bits).
#[derive(Clone, Copy, Debug)]
pub struct UnaryKey(pub UnaryOp);

impl UnaryKey {
    fn key(&self) -> (String, u32) {
        let bits = match self.0 {
            UnaryOp::LeakyRelu(a) | UnaryOp::Elu(a) => a.to_bits(),
            _ => 0,
        };
        let name = format!("{:?}", self.0);
        (name.split('(').next().unwrap_or_default().to_string(), bits)
    }
}

impl PartialEq for UnaryKey {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}
impl Eq for UnaryKey {}
impl Hash for UnaryKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.key().hash(h)
    }
}
impl PartialOrd for UnaryKey {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for UnaryKey {
    fn cmp(&self, o: &Self) -> Ordering {
        self.key().cmp(&o.key())
    }
}

/// Implements a total order for a field-less IR enum by its discriminant.
macro_rules! ordered_key {
    ($(#[$doc:meta])* $name:ident, $ty:ty) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub $ty);
        impl PartialOrd for $name {
            fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for $name {
            fn cmp(&self, o: &Self) -> Ordering {
                (self.0 as u8).cmp(&(o.0 as u8))
            }
        }
    };
}

ordered_key!(
    /// A [`BinaryOp`] as an ordered key.
    BinaryKey,
    BinaryOp
);
ordered_key!(
    /// A [`ReduceOp`] as an ordered key.
    ReduceKey,
    ReduceOp
);
ordered_key!(
    /// A [`ScatterReduction`] as an ordered key.
    ScatterKey,
    ScatterReduction
);

/// The e-graph's operators: [`Op`] with hashable payloads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KOp {
    /// Graph input number `i` (in declaration order).
    Input(u32),
    /// Constant number `i` of the analysis's constant table.
    Const(u32),
    /// Elementwise unary.
    Unary(UnaryKey),
    /// Elementwise binary with broadcasting.
    Binary(BinaryKey),
    /// `cond ? a : b`.
    Where,
    /// Conversion.
    Cast(DType),
    /// Reduction.
    Reduce {
        /// Combining function.
        op: ReduceKey,
        /// Reduced axes.
        axes: Vec<usize>,
        /// Keep reduced axes.
        keep_dims: bool,
    },
    /// Arg-max/min: (max, axis, keep_dims, select_last).
    ArgReduce(bool, usize, bool, bool),
    /// Matrix product.
    MatMul,
    /// Reshape to a shape.
    Reshape(Vec<Dim>),
    /// Axis permutation.
    Transpose(Vec<usize>),
    /// Slice: (axis, start, end, step) per sliced axis.
    Slice(Vec<(usize, i64, i64, i64)>),
    /// Concatenation along an axis.
    Concat(usize),
    /// Gather along an axis.
    Gather(usize),
    /// Broadcast to a shape.
    Expand(Vec<Dim>),
    /// Softmax: (axis, log).
    Softmax(usize, bool),
    /// Convolution: (strides, pads, dilations, groups).
    Conv(Vec<usize>, Vec<(usize, usize)>, Vec<usize>, usize),
    /// Top-k: (k, axis, largest).
    TopK(usize, usize, bool),
    /// ScatterND.
    ScatterNd(ScatterKey),
    /// Token sampling.
    Sample,
    /// Layer norm: (first axis, epsilon bits).
    LayerNorm(usize, u32),
    /// RMS norm: (axis, epsilon bits).
    RmsNorm(usize, u32),
    /// Quantized matmul: (block type, n, k).
    QMatMul(BlockType, usize, usize),
    /// Rows of a packed table: (block type, n, k).
    QGather(BlockType, usize, usize),
    /// Activations rounded to 8-bit integers per block of 32.
    QuantizeQ8,
    /// An op with an unhashable payload: number `i` of the analysis's opaque-op table.
    Opaque(u32),
}

impl KOp {
    /// The key of a non-constant, non-input op, or `None` for ops held in the opaque table
    /// (and for `Input`/`Constant`, which the converter numbers itself).
    pub fn from_op(op: &Op) -> Option<KOp> {
        Some(match op {
            Op::Input { .. } | Op::Constant(_) | Op::Compute { .. } | Op::StateAppend { .. } => return None,
            Op::Unary(u) => KOp::Unary(UnaryKey(*u)),
            Op::Binary(b) => KOp::Binary(BinaryKey(*b)),
            Op::Where => KOp::Where,
            Op::Cast(d) => KOp::Cast(*d),
            Op::Reduce { op, axes, keep_dims } => KOp::Reduce {
                op: ReduceKey(*op),
                axes: axes.clone(),
                keep_dims: *keep_dims,
            },
            Op::ArgReduce {
                max,
                axis,
                keep_dims,
                select_last,
            } => KOp::ArgReduce(*max, *axis, *keep_dims, *select_last),
            Op::MatMul => KOp::MatMul,
            Op::Reshape { shape } => KOp::Reshape(shape.clone()),
            Op::Transpose { perm } => KOp::Transpose(perm.clone()),
            Op::Slice { axes } => KOp::Slice(axes.iter().map(|a| (a.axis, a.start, a.end, a.step)).collect()),
            Op::Concat { axis } => KOp::Concat(*axis),
            Op::Gather { axis } => KOp::Gather(*axis),
            Op::Expand { shape } => KOp::Expand(shape.clone()),
            Op::Softmax { axis, log } => KOp::Softmax(*axis, *log),
            Op::Conv {
                strides,
                pads,
                dilations,
                groups,
            } => KOp::Conv(strides.clone(), pads.clone(), dilations.clone(), *groups),
            Op::TopK { k, axis, largest } => KOp::TopK(*k, *axis, *largest),
            Op::ScatterNd { reduction } => KOp::ScatterNd(ScatterKey(*reduction)),
            Op::Sample => KOp::Sample,
            Op::LayerNorm { axis, epsilon } => KOp::LayerNorm(*axis, epsilon.to_bits()),
            Op::RmsNorm { axis, epsilon } => KOp::RmsNorm(*axis, epsilon.to_bits()),
            Op::QMatMul { block, n, k } => KOp::QMatMul(*block, *n, *k),
            Op::QGather { block, n, k } => KOp::QGather(*block, *n, *k),
            Op::QuantizeQ8 => KOp::QuantizeQ8,
        })
    }

    /// The IR op for a key; `Input`, `Const` and `Opaque` are resolved by the caller's tables
    /// and yield `None` here.
    pub fn to_op(&self) -> Option<Op> {
        Some(match self {
            KOp::Input(_) | KOp::Const(_) | KOp::Opaque(_) => return None,
            KOp::Unary(u) => Op::Unary(u.0),
            KOp::Binary(b) => Op::Binary(b.0),
            KOp::Where => Op::Where,
            KOp::Cast(d) => Op::Cast(*d),
            KOp::Reduce { op, axes, keep_dims } => Op::Reduce {
                op: op.0,
                axes: axes.clone(),
                keep_dims: *keep_dims,
            },
            KOp::ArgReduce(max, axis, keep_dims, select_last) => Op::ArgReduce {
                max: *max,
                axis: *axis,
                keep_dims: *keep_dims,
                select_last: *select_last,
            },
            KOp::MatMul => Op::MatMul,
            KOp::Reshape(shape) => Op::Reshape { shape: shape.clone() },
            KOp::Transpose(perm) => Op::Transpose { perm: perm.clone() },
            KOp::Slice(axes) => Op::Slice {
                axes: axes
                    .iter()
                    .map(|&(axis, start, end, step)| SliceAxis { axis, start, end, step })
                    .collect(),
            },
            KOp::Concat(axis) => Op::Concat { axis: *axis },
            KOp::Gather(axis) => Op::Gather { axis: *axis },
            KOp::Expand(shape) => Op::Expand { shape: shape.clone() },
            KOp::Softmax(axis, log) => Op::Softmax { axis: *axis, log: *log },
            KOp::Conv(strides, pads, dilations, groups) => Op::Conv {
                strides: strides.clone(),
                pads: pads.clone(),
                dilations: dilations.clone(),
                groups: *groups,
            },
            KOp::TopK(k, axis, largest) => Op::TopK {
                k: *k,
                axis: *axis,
                largest: *largest,
            },
            KOp::ScatterNd(r) => Op::ScatterNd { reduction: r.0 },
            KOp::Sample => Op::Sample,
            KOp::LayerNorm(axis, eps) => Op::LayerNorm {
                axis: *axis,
                epsilon: f32::from_bits(*eps),
            },
            KOp::RmsNorm(axis, eps) => Op::RmsNorm {
                axis: *axis,
                epsilon: f32::from_bits(*eps),
            },
            KOp::QMatMul(block, n, k) => Op::QMatMul {
                block: *block,
                n: *n,
                k: *k,
            },
            KOp::QGather(block, n, k) => Op::QGather {
                block: *block,
                n: *n,
                k: *k,
            },
            KOp::QuantizeQ8 => Op::QuantizeQ8,
        })
    }
}

/// An e-node: an operator and its operand e-classes in slot order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KNode {
    /// The operator.
    pub op: KOp,
    /// Operands.
    pub children: Vec<Id>,
}

impl KNode {
    /// A node of `op` over `children`.
    pub fn new(op: KOp, children: Vec<Id>) -> KNode {
        KNode { op, children }
    }
}

impl Language for KNode {
    type Discriminant = KOp;

    fn discriminant(&self) -> KOp {
        self.op.clone()
    }

    fn matches(&self, other: &Self) -> bool {
        self.op == other.op && self.children.len() == other.children.len()
    }

    fn children(&self) -> &[Id] {
        &self.children
    }

    fn children_mut(&mut self) -> &mut [Id] {
        &mut self.children
    }
}
