//! The op set: primitives that every frontend lowers into.
//!
//! Each op is either *injective* (every output element is a scalar expression of input elements
//! at computed indices), a *reduction*, or an *anchor* (MatMul) with a hand-designed kernel.

use crate::{BlockType, DType, Dim, Expr, Tensor};

/// Elementwise functions of one operand.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// -x
    Neg,
    /// |x|
    Abs,
    /// e^x
    Exp,
    /// ln x
    Log,
    /// sqrt x
    Sqrt,
    /// 1/sqrt x
    Rsqrt,
    /// 1/x
    Reciprocal,
    /// sin x
    Sin,
    /// cos x
    Cos,
    /// tanh x
    Tanh,
    /// 1/(1+e^-x)
    Sigmoid,
    /// max(x, 0)
    Relu,
    /// Gauss error function.
    Erf,
    /// floor x
    Floor,
    /// ceil x
    Ceil,
    /// Round half to even.
    Round,
    /// -1, 0 or 1.
    Sign,
    /// Logical not (bool).
    Not,
    /// x if x >= 0 else alpha*x
    LeakyRelu(f32),
    /// x if x > 0 else alpha*(e^x - 1)
    Elu(f32),
    /// ln(1 + e^x)
    Softplus,
    /// True where x is NaN.
    IsNan,
}

/// Elementwise functions of two operands (numpy broadcasting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// a / b (integer division truncates)
    Div,
    /// a ^ b
    Pow,
    /// max(a, b)
    Max,
    /// min(a, b)
    Min,
    /// Remainder with the sign of the divisor (integer) / fmod semantics selectable later.
    Mod,
    /// a == b (bool result)
    Equal,
    /// a < b
    Less,
    /// a <= b
    LessEqual,
    /// a > b
    Greater,
    /// a >= b
    GreaterEqual,
    /// Logical and (bool).
    And,
    /// Logical or (bool).
    Or,
    /// Logical xor (bool).
    Xor,
}

impl BinaryOp {
    /// True if the result is bool whatever the operand dtype.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Equal | BinaryOp::Less | BinaryOp::LessEqual | BinaryOp::Greater | BinaryOp::GreaterEqual
        )
    }

    /// True for the bool-only logical ops.
    pub fn is_logical(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor)
    }
}

/// How a reduction combines elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// Product.
    Prod,
}

/// How [`Op::ScatterNd`] combines an update with the existing element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScatterReduction {
    /// Replace (the last update to an element wins).
    None,
    /// Add.
    Add,
    /// Multiply.
    Mul,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
}

/// One axis of a [`Op::Slice`], with ONNX semantics: negative `start`/`end` count from the end,
/// out-of-range values clamp, `step` may be negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SliceAxis {
    /// Axis (non-negative).
    pub axis: usize,
    /// First index.
    pub start: i64,
    /// One past the last index (exclusive), in the direction of `step`.
    pub end: i64,
    /// Stride; never zero.
    pub step: i64,
}

/// A graph operation. Every op has exactly one output.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A graph input, bound at run time.
    Input {
        /// External name.
        name: String,
    },
    /// A constant tensor (weights and small literals).
    Constant(Tensor),
    /// Elementwise unary function.
    Unary(UnaryOp),
    /// Elementwise binary function with broadcasting.
    Binary(BinaryOp),
    /// `cond ? a : b` with broadcasting over all three inputs.
    Where,
    /// Converts elements to another dtype.
    Cast(DType),
    /// Reduces the listed axes.
    Reduce {
        /// Combining function.
        op: ReduceOp,
        /// Axes to reduce (sorted, unique, non-negative).
        axes: Vec<usize>,
        /// Keep reduced axes as size 1.
        keep_dims: bool,
    },
    /// Index of the max (or min) along one axis, as i32.
    ArgReduce {
        /// True for argmax, false for argmin.
        max: bool,
        /// Axis.
        axis: usize,
        /// Keep the axis as size 1.
        keep_dims: bool,
        /// On ties, pick the last index instead of the first.
        select_last: bool,
    },
    /// Batched matrix product with numpy broadcasting of batch dims; rank-1 operands are
    /// promoted as in numpy.
    MatMul,
    /// Reinterprets the elements in a new shape of the same element count.
    Reshape {
        /// Target shape (fully resolved: no -1 or 0 placeholders).
        shape: Vec<Dim>,
    },
    /// Permutes axes: output axis `i` is input axis `perm[i]`.
    Transpose {
        /// Permutation.
        perm: Vec<usize>,
    },
    /// Strided slice along some axes.
    Slice {
        /// Sliced axes.
        axes: Vec<SliceAxis>,
    },
    /// Joins inputs along an axis.
    Concat {
        /// Axis (non-negative).
        axis: usize,
    },
    /// `data.take(indices, axis)`; negative indices count from the end.
    Gather {
        /// Axis of `data` (non-negative).
        axis: usize,
    },
    /// Broadcasts the input to a shape (numpy rules; the result has the broadcast shape).
    Expand {
        /// Target shape.
        shape: Vec<Dim>,
    },
    /// Softmax (or log-softmax) along one axis.
    Softmax {
        /// Axis (non-negative).
        axis: usize,
        /// Log-softmax instead of softmax.
        log: bool,
    },
    /// N-d convolution (NCHW...): inputs x `[N, C, *spatial]`, w `[OC, C/groups, *kernel]`, and
    /// an optional bias `[OC]`.
    Conv {
        /// Stride per spatial axis.
        strides: Vec<usize>,
        /// Padding (begin, end) per spatial axis.
        pads: Vec<(usize, usize)>,
        /// Dilation per spatial axis.
        dilations: Vec<usize>,
        /// Channel groups.
        groups: usize,
    },
    /// Indices (i32) of the `k` largest (or smallest) elements along `axis`, best first; ties
    /// go to the lower index. The values are a gather of the input at these indices.
    TopK {
        /// How many.
        k: usize,
        /// Axis.
        axis: usize,
        /// Largest (true) or smallest.
        largest: bool,
    },
    /// Draws a token id per row of logits `[rows, vocab]` (f32) on the device: input 1 is the
    /// sampling parameters (`[crate::sample::PARAMS_LEN]` i32: temperature, top-k, top-p,
    /// repetition penalty, seed, step), input 2 the recent token ids (`[window]` i32, -1 for
    /// none) that the repetition penalty applies to; output `[rows]` i32. Greedy when the
    /// temperature is 0. The algorithm and its random draws are in [`crate::sample`].
    Sample,
    /// ONNX ScatterND: inputs data, indices (`[..., m]`, integer), updates; the output is data
    /// with each update slice combined into the element slice its index row addresses.
    ScatterNd {
        /// Combining rule.
        reduction: ScatterReduction,
    },
    /// A tensor expression: every output element of the given type is `expr` evaluated at its
    /// coordinates (see [`crate::texpr`]); any number of inputs.
    Compute {
        /// Output shape.
        shape: Vec<Dim>,
        /// Output dtype.
        dtype: DType,
        /// The element expression.
        expr: Expr,
        /// What the expression implements (e.g. `Pad`), for messages and kernel labels.
        name: String,
    },
    /// Layer normalization over axes `axis..rank`; inputs: x, scale, bias.
    LayerNorm {
        /// First normalized axis.
        axis: usize,
        /// Added to the variance.
        epsilon: f32,
    },
    /// Matrix product with a packed (GGUF block) weight: `y = x · Wᵀ`. Input 0 is the f32
    /// activation `[.., K]`; input 1 is the weight `W` of logical shape `[N, K]` (row `n` holds
    /// the K inputs of output `n`, as GGUF stores a linear layer), packed as `block` blocks along
    /// K and stored as a u32 tensor of `ceil(N * K / block_elems * block_bytes / 4)` little-endian
    /// words (the bytes exactly as in the GGUF file, zero-padded to a whole word). The output is
    /// f32 `[.., N]`.
    QMatMul {
        /// The weight's block type.
        block: BlockType,
        /// Output features (rows of W).
        n: usize,
        /// Input features (the reduced axis; a multiple of the block's element count).
        k: usize,
    },
    /// Rows of a packed (quantized) `[n, k]` table gathered by index, e.g. a language model's
    /// token embedding read from the same packed tensor its tied output head multiplies by:
    /// inputs `indices` (i32, any shape; negative values count from the end) and the table as
    /// [`Op::QMatMul`] takes its weight (u32 words in `block` format). The output is f32
    /// `[indices.., k]`, each gathered row decoded as it is read.
    QGather {
        /// The table's block type.
        block: BlockType,
        /// Rows of the table.
        n: usize,
        /// Row length (a multiple of the block's element count).
        k: usize,
    },
    /// The activation of an integer-dot product: `x` (f32, last axis a multiple of 32) rounded
    /// to 8-bit integers per block of 32 consecutive values of the last axis, each block with
    /// the scale `d = max|x| / 127`: `y = round(x * (1 / d)) * d` (ties to even; a block of
    /// zeros stays zero). The output is f32, the values a product with 8-bit activations sees
    /// (llama.cpp's q8_1 activations); a kernel may store it as the bytes and scales instead
    /// (see docs/llm.md "Activations as 8-bit integers").
    QuantizeQ8,
    /// RMS normalization over axes `axis..rank`: `x / sqrt(mean(x²) + epsilon) * scale`;
    /// inputs: x, scale (broadcastable to the normalized shape).
    RmsNorm {
        /// First normalized axis.
        axis: usize,
        /// Added to the mean square.
        epsilon: f32,
    },
    /// Writes `update` (the one input, `[n, rest...]`) into rows `offset .. offset + n` of the
    /// persistent state `state` (shape `state_shape = [rows, rest...]`, the update's dtype), in
    /// place, and yields the written prefix `[offset + n, rest...]` = `state[0 : offset] ++
    /// update`. Every reader of the state reads this output, so it runs after the write. A
    /// graph writes each state at most once. See docs/llm.md.
    StateAppend {
        /// State name (unique in the bundle).
        state: String,
        /// Full constant shape of the state.
        state_shape: Vec<usize>,
        /// First row written (e.g. the symbol `past`).
        offset: Dim,
    },
}

impl Op {
    /// Short op name for messages and manifests.
    pub fn name(&self) -> String {
        match self {
            Op::Input { .. } => "Input".into(),
            Op::Constant(_) => "Constant".into(),
            Op::Unary(u) => format!("{u:?}").split('(').next().unwrap_or("Unary").to_string(),
            Op::Binary(b) => format!("{b:?}"),
            Op::Where => "Where".into(),
            Op::Cast(_) => "Cast".into(),
            Op::Reduce { op, .. } => format!("Reduce{op:?}"),
            Op::ArgReduce { max, .. } => if *max { "ArgMax" } else { "ArgMin" }.into(),
            Op::MatMul => "MatMul".into(),
            Op::Reshape { .. } => "Reshape".into(),
            Op::Transpose { .. } => "Transpose".into(),
            Op::Slice { .. } => "Slice".into(),
            Op::Concat { .. } => "Concat".into(),
            Op::Gather { .. } => "Gather".into(),
            Op::Expand { .. } => "Expand".into(),
            Op::Softmax { log, .. } => if *log { "LogSoftmax" } else { "Softmax" }.into(),
            Op::LayerNorm { .. } => "LayerNorm".into(),
            Op::Compute { name, .. } => name.clone(),
            Op::Conv { .. } => "Conv".into(),
            Op::TopK { .. } => "TopK".into(),
            Op::ScatterNd { .. } => "ScatterND".into(),
            Op::Sample => "Sample".into(),
            Op::QMatMul { .. } => "QMatMul".into(),
            Op::QGather { .. } => "QGather".into(),
            Op::RmsNorm { .. } => "RmsNorm".into(),
            Op::QuantizeQ8 => "QuantizeQ8".into(),
            Op::StateAppend { .. } => "StateAppend".into(),
        }
    }

    /// Number of inputs the op takes (`None` for variadic).
    pub fn arity(&self) -> Option<usize> {
        Some(match self {
            Op::Input { .. } | Op::Constant(_) => 0,
            Op::Unary(_) | Op::Cast(_) | Op::Reduce { .. } | Op::ArgReduce { .. } => 1,
            Op::Reshape { .. } | Op::Transpose { .. } | Op::Slice { .. } | Op::Expand { .. } => 1,
            Op::Softmax { .. } | Op::TopK { .. } | Op::StateAppend { .. } | Op::QuantizeQ8 => 1,
            Op::ScatterNd { .. } | Op::Sample => 3,
            Op::Binary(_) | Op::MatMul | Op::Gather { .. } | Op::QMatMul { .. } | Op::QGather { .. } => 2,
            Op::Where | Op::LayerNorm { .. } => 3,
            Op::Concat { .. } | Op::Compute { .. } | Op::Conv { .. } => return None,
            Op::RmsNorm { .. } => 2,
        })
    }
}
