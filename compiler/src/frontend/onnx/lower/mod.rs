//! Per-op lowering rules, grouped by op family; [`lower_node`] dispatches on `op_type`.

mod activation;
mod attention;
mod control;
mod conv;
mod conv_int;
mod data_sized;
mod deform_conv;
mod elementwise;
mod gather;
mod grid;
mod ints;
mod linalg;
mod loss;
mod math;
mod matmul;
mod ml;
mod norm;
mod optional;
mod pool;
mod quant;
mod quant2;
mod reduce;
mod resize;
mod rnn;
mod roi_align;
mod scatter;
mod select;
mod shape;
mod signal;
mod text;
mod training;

use super::ctx::{Ctx, N};
use super::value::Value;
use super::OnnxError;
use kiln_ir::NodeId;

/// The ops that have a lowering (for messages and documentation).
pub const SUPPORTED_OPS: &[&str] = &[
    "BitShift",
    "BitwiseAnd",
    "BitwiseNot",
    "BitwiseOr",
    "BitwiseXor",
    "Einsum",
    "ScatterND",
    "TopK",
    "Abs",
    "Acos",
    "Acosh",
    "Add",
    "And",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "AveragePool",
    "ArgMax",
    "ArgMin",
    "Attention",
    "BatchNormalization",
    "Cast",
    "CastLike",
    "CausalConvWithState",
    "Ceil",
    "Celu",
    "Clip",
    "Compress",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvTranspose",
    "Cos",
    "Cosh",
    "DepthToSpace",
    "CumSum",
    "DequantizeLinear",
    "Div",
    "Dropout",
    "DynamicQuantizeLinear",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "EyeLike",
    "Flatten",
    "Floor",
    "Gather",
    "GatherElements",
    "GatherND",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalLpPool",
    "GlobalMaxPool",
    "Greater",
    "GreaterOrEqual",
    "GroupNormalization",
    "HardSigmoid",
    "HardSwish",
    "Hardmax",
    "Identity",
    "InstanceNormalization",
    "IsInf",
    "IsNaN",
    "LayerNormalization",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "LinearAttention",
    "Log",
    "LogSoftmax",
    "LRN",
    "LpNormalization",
    "LpPool",
    "MatMul",
    "MaxPool",
    "MatMulInteger",
    "Max",
    "Mean",
    "MeanVarianceNormalization",
    "Min",
    "Mish",
    "Mod",
    "Mul",
    "Neg",
    "NegativeLogLikelihoodLoss",
    "Not",
    "OneHot",
    "Or",
    "PRelu",
    "Pad",
    "Pow",
    "QLinearMatMul",
    "QuantizeLinear",
    "ReverseSequence",
    "RMSNormalization",
    "Range",
    "Reciprocal",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Resize",
    "RotaryEmbedding",
    "Round",
    "Selu",
    "Shape",
    "Shrink",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Size",
    "Slice",
    "Softmax",
    "SoftmaxCrossEntropyLoss",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "SwiGLU",
    "Swish",
    "Tan",
    "Tanh",
    "TensorScatter",
    "ThresholdedRelu",
    "Tile",
    "Transpose",
    "Trilu",
    "Unsqueeze",
    "Upsample",
    "Where",
    "Xor",
    "ScatterElements",
    "Scatter",
    "MaxUnpool",
    "Col2Im",
    "HannWindow",
    "HammingWindow",
    "BlackmanWindow",
    "CenterCropPad",
    "DFT",
    "GridSample",
    "RNN",
    "GRU",
    "LSTM",
    "If",
    "Loop",
    "Scan",
    "AffineGrid",
    "CumProd",
    "Det",
    "OptionalHasElement",
    "OptionalGetElement",
    "MelWeightMatrix",
    "ConvInteger",
    "QLinearConv",
    "TfIdfVectorizer",
    "RoiAlign",
    "DeformConv",
    "NonMaxSuppression",
    "NonZero",
    "Unique",
    "STFT",
    "BitCast",
];

/// The ops of other domains that have a lowering, as (domain, op).
pub const SUPPORTED_DOMAIN_OPS: &[(&str, &str)] = &[
    ("ai.onnx.ml", "Binarizer"),
    ("ai.onnx.ml", "ArrayFeatureExtractor"),
    ("ai.onnx.preview.training", "Adagrad"),
    ("ai.onnx.preview.training", "Momentum"),
    ("ai.onnx.preview.training", "Adam"),
];

/// One IR node as the node's only output.
pub(crate) fn one(id: NodeId) -> Vec<Value> {
    vec![Value::Node(id)]
}

/// How many inputs (counting empty optional slots) an op accepts, for the ops whose lowerings
/// would otherwise ignore extra inputs silently; from the ONNX operator schemas.
fn input_arity(op: &str) -> Option<(usize, usize)> {
    Some(match op {
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Mod" | "Equal" | "Less" | "LessOrEqual" | "Greater"
        | "GreaterOrEqual" | "And" | "Or" | "Xor" | "MatMul" | "PRelu" | "Gather" | "GatherElements" | "GatherND"
        | "Expand" | "BitShift" | "BitwiseAnd" | "BitwiseOr" | "BitwiseXor" => (2, 2),
        // Older opsets took some operands as attributes (Reshape < 5, Slice < 10, Pad < 11) or
        // had an extra input (Tile < 6).
        "Reshape" => (1, 2),
        "Tile" => (2, 3),
        "Neg"
        | "Abs"
        | "Exp"
        | "Log"
        | "Sqrt"
        | "Reciprocal"
        | "Sin"
        | "Cos"
        | "Tan"
        | "Erf"
        | "Floor"
        | "Ceil"
        | "Round"
        | "Sign"
        | "Not"
        | "IsNaN"
        | "IsInf"
        | "Relu"
        | "Sigmoid"
        | "Tanh"
        | "LeakyRelu"
        | "Elu"
        | "Selu"
        | "Celu"
        | "HardSigmoid"
        | "HardSwish"
        | "Softplus"
        | "Softsign"
        | "Mish"
        | "ThresholdedRelu"
        | "Softmax"
        | "LogSoftmax"
        | "Hardmax"
        | "Transpose"
        | "Flatten"
        | "Identity"
        | "Shape"
        | "Size"
        | "Cast"
        | "MaxPool"
        | "AveragePool"
        | "GlobalAveragePool"
        | "GlobalMaxPool"
        | "ArgMax"
        | "ArgMin"
        | "BitwiseNot"
        | "Sinh"
        | "Cosh"
        | "Acos"
        | "Asin"
        | "Atan"
        | "Acosh"
        | "Asinh"
        | "Atanh"
        | "Gelu"
        | "LRN"
        | "LpNormalization"
        | "MeanVarianceNormalization"
        | "DepthToSpace"
        | "SpaceToDepth"
        | "ConstantOfShape"
        | "EyeLike" => (1, 1),
        "Where" | "Range" => (3, 3),
        "Gemm" | "Conv" | "LayerNormalization" => (2, 3),
        "BatchNormalization" => (5, 5),
        "InstanceNormalization" | "GroupNormalization" => (3, 3),
        "Clip" => (1, 3),
        "Squeeze" | "Unsqueeze" | "CastLike" => (1, 2),
        "Slice" => (1, 5),
        "Pad" => (1, 4),
        "Resize" => (1, 4),
        "ConvTranspose" => (2, 3),
        "ScatterElements" | "Scatter" | "Col2Im" => (3, 3),
        "MaxUnpool" => (2, 3),
        "HannWindow" | "HammingWindow" | "BlackmanWindow" => (1, 1),
        "CenterCropPad" => (2, 2),
        "DFT" => (1, 3),
        "GridSample" => (2, 2),
        "RNN" | "GRU" => (3, 6),
        "LSTM" => (3, 8),
        "If" => (1, 1),
        "AffineGrid" => (2, 2),
        "CumProd" => (2, 2),
        "Det" => (1, 1),
        "MelWeightMatrix" => (5, 5),
        "ConvInteger" => (2, 4),
        "QLinearConv" => (8, 9),
        "TfIdfVectorizer" => (1, 1),
        "RoiAlign" => (3, 3),
        "DeformConv" => (3, 5),
        "NonMaxSuppression" => (2, 5),
        "NonZero" | "Unique" => (1, 1),
        "STFT" => (2, 4),
        "BitCast" => (1, 1),
        _ => return None,
    })
}

/// Refuses a node with more inputs than its op takes (or fewer than it needs), before any
/// lowering could silently ignore or misread one.
fn check_arity(n: &N) -> Result<(), OnnxError> {
    let Some((lo, hi)) = input_arity(n.op) else {
        return Ok(());
    };
    // Trailing empty names are absent optional inputs.
    let given = n.proto.input.iter().rposition(|s| !s.is_empty()).map_or(0, |i| i + 1);
    if given > hi {
        return Err(n.err(format!("has {given} inputs; {} takes {}", n.op, arity_str(lo, hi))));
    }
    if given < lo {
        return Err(n.err(format!("has {given} inputs; {} needs {}", n.op, arity_str(lo, hi))));
    }
    Ok(())
}

fn arity_str(lo: usize, hi: usize) -> String {
    if lo == hi {
        format!("exactly {lo}")
    } else {
        format!("{lo} to {hi}")
    }
}

/// Lowers one ONNX node; returns the values of its outputs in order.
pub(crate) fn lower_node(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let domain = n.proto.domain.as_deref().unwrap_or("");
    if !super::ctx::is_default_domain(domain) {
        return match (domain, n.op) {
            ("ai.onnx.ml", "Binarizer") => ml::binarizer(cx, n),
            ("ai.onnx.ml", "ArrayFeatureExtractor") => ml::array_feature_extractor(cx, n),
            ("ai.onnx.preview.training", "Adagrad" | "Momentum" | "Adam") => training::optimizer(cx, n),
            _ => Err(OnnxError::UnsupportedOp {
                op_type: n.op.to_string(),
                node: n.name.clone(),
                domain: domain.to_string(),
            }),
        };
    }
    check_arity(n)?;
    // Shape arithmetic on compile-time integers first (keeps symbolic dims and i64 range).
    if let Some(v) = ints::try_lower(cx, n)? {
        return Ok(v);
    }
    match n.op {
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Mod" | "Equal" | "Less" | "LessOrEqual" | "Greater"
        | "GreaterOrEqual" | "And" | "Or" | "Xor" => elementwise::binary(cx, n),
        "Min" | "Max" | "Sum" | "Mean" => elementwise::variadic(cx, n),
        "Neg" | "Abs" | "Exp" | "Log" | "Sqrt" | "Reciprocal" | "Sin" | "Cos" | "Erf" | "Floor" | "Ceil" | "Round"
        | "Sign" | "Not" | "IsNaN" => elementwise::unary(cx, n),
        "Tan" | "Sinh" | "Cosh" | "IsInf" | "Shrink" => elementwise::derived_unary(cx, n),
        "Where" => elementwise::where_(cx, n),
        "Cast" | "CastLike" => elementwise::cast(cx, n),
        "Clip" => elementwise::clip(cx, n),
        "Relu" | "Sigmoid" | "Tanh" | "LeakyRelu" | "Elu" | "Selu" | "Celu" | "HardSigmoid" | "HardSwish" | "Gelu"
        | "Softplus" | "Softsign" | "Mish" | "ThresholdedRelu" | "PRelu" => activation::lower(cx, n),
        "MatMul" => matmul::matmul(cx, n),
        "Gemm" => matmul::gemm(cx, n),
        "Softmax" | "LogSoftmax" => norm::softmax(cx, n),
        "LayerNormalization" => norm::layer_norm(cx, n),
        "BatchNormalization" => norm::batch_norm(cx, n),
        "InstanceNormalization" => norm::instance_norm(cx, n),
        "RMSNormalization" => norm::rms_norm(cx, n),
        "LpNormalization" => norm::lp_norm(cx, n),
        "MeanVarianceNormalization" => norm::mean_variance_norm(cx, n),
        "GroupNormalization" => norm::group_norm(cx, n),
        "Hardmax" => norm::hardmax(cx, n),
        "LRN" => norm::lrn(cx, n),
        "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1" | "ReduceL2"
        | "ReduceSumSquare" | "ReduceLogSum" | "ReduceLogSumExp" => reduce::reduce(cx, n),
        "ArgMax" | "ArgMin" => reduce::arg(cx, n),
        "GlobalAveragePool" | "GlobalMaxPool" => reduce::global_pool(cx, n),
        "Constant" => shape::constant(cx, n),
        "Identity" | "Dropout" => shape::identity(cx, n),
        "Reshape" => shape::reshape(cx, n),
        "Transpose" => shape::transpose(cx, n),
        "Flatten" => shape::flatten(cx, n),
        "Squeeze" => shape::squeeze(cx, n),
        "Unsqueeze" => shape::unsqueeze(cx, n),
        "Concat" => shape::concat(cx, n),
        "Split" => shape::split(cx, n),
        "Slice" => shape::slice(cx, n),
        "Gather" => shape::gather(cx, n),
        "Expand" => shape::expand(cx, n),
        "Tile" => shape::tile(cx, n),
        "Shape" | "Size" => shape::shape_of(cx, n),
        "ConstantOfShape" => shape::constant_of_shape(cx, n),
        "Range" => shape::range(cx, n),
        "Trilu" => shape::trilu(cx, n),
        "EyeLike" => shape::eye_like(cx, n),
        "Pad" => shape::pad(cx, n),
        "GatherElements" => shape::gather_elements(cx, n),
        "Conv" => conv::conv(cx, n),
        "ConvTranspose" => conv::conv_transpose(cx, n),
        "Resize" | "Upsample" => resize::resize(cx, n),
        "DepthToSpace" | "SpaceToDepth" => shape::depth_space(cx, n),
        "OneHot" => shape::one_hot(cx, n),
        "MaxPool" | "AveragePool" => conv::pool(cx, n),
        "LpPool" => pool::lp_pool(cx, n),
        "GlobalLpPool" => pool::global_lp_pool(cx, n),
        "DequantizeLinear" => quant::dequantize(cx, n),
        "Attention" => attention::attention(cx, n),
        "QuantizeLinear" => quant::quantize(cx, n),
        "MatMulInteger" => matmul::matmul_integer(cx, n),
        "CumSum" => reduce::cumsum(cx, n),
        "TopK" => select::top_k(cx, n),
        "ScatterND" => select::scatter_nd(cx, n),
        "NegativeLogLikelihoodLoss" => loss::nll_loss(cx, n),
        "SoftmaxCrossEntropyLoss" => loss::softmax_cross_entropy(cx, n),
        "RotaryEmbedding" => attention::rotary_embedding(cx, n),
        "GatherND" => gather::gather_nd(cx, n),
        "ReverseSequence" => gather::reverse_sequence(cx, n),
        "TensorScatter" => gather::tensor_scatter(cx, n),
        "Compress" => gather::compress(cx, n),
        "Acos" | "Asin" | "Atan" | "Acosh" | "Asinh" | "Atanh" | "Swish" | "SwiGLU" => math::composed_unary(cx, n),
        "QLinearMatMul" => quant2::qlinear_matmul(cx, n),
        "DynamicQuantizeLinear" => quant2::dynamic_quantize(cx, n),
        "LinearAttention" => attention::linear_attention(cx, n),
        "CausalConvWithState" => attention::causal_conv_with_state(cx, n),
        "Einsum" => math::einsum(cx, n),
        "ScatterElements" | "Scatter" => scatter::scatter_elements(cx, n),
        "MaxUnpool" => scatter::max_unpool(cx, n),
        "Col2Im" => scatter::col2im(cx, n),
        "HannWindow" | "HammingWindow" | "BlackmanWindow" => signal::window(cx, n),
        "CenterCropPad" => signal::center_crop_pad(cx, n),
        "DFT" => signal::dft(cx, n),
        "GridSample" => grid::grid_sample(cx, n),
        "RNN" | "GRU" | "LSTM" => rnn::recurrent(cx, n),
        "If" => control::if_(cx, n),
        "Loop" => control::loop_(cx, n),
        "Scan" => control::scan(cx, n),
        "AffineGrid" => grid::affine_grid(cx, n),
        "CumProd" => reduce::cumprod(cx, n),
        "Det" => linalg::det(cx, n),
        "OptionalHasElement" => optional::has_element(cx, n),
        "OptionalGetElement" => optional::get_element(cx, n),
        "MelWeightMatrix" => signal::mel_weight_matrix(cx, n),
        "ConvInteger" => conv_int::conv_integer(cx, n),
        "QLinearConv" => conv_int::qlinear_conv(cx, n),
        "TfIdfVectorizer" => text::tfidf_vectorizer(cx, n),
        "RoiAlign" => roi_align::roi_align(cx, n),
        "DeformConv" => deform_conv::deform_conv(cx, n),
        "NonMaxSuppression" => data_sized::non_max_suppression(cx, n),
        "NonZero" => data_sized::non_zero(cx, n),
        "Unique" => data_sized::unique(cx, n),
        "STFT" => signal::stft(cx, n),
        "BitCast" => elementwise::bitcast(cx, n),
        // Declined on purpose, with the reason in the error.
        "ImageDecoder" => Err(n.unsupported(
            "decoding encoded image bytes (JPEG, PNG, ...) is host work, not a tensor computation: decode images before feeding the model",
        )),
        "Bernoulli" | "RandomUniform" | "RandomUniformLike" | "RandomNormal" | "RandomNormalLike" | "Multinomial" => {
            Err(n.unsupported(
                "random sampling is not supported: ONNX does not specify the generator, so even a seeded draw cannot reproduce another runtime's values",
            ))
        }
        "BitwiseAnd" | "BitwiseOr" | "BitwiseXor" | "BitwiseNot" | "BitShift" => math::bitwise(cx, n),
        _ => Err(OnnxError::UnsupportedOp {
            op_type: n.op.to_string(),
            node: n.name.clone(),
            domain: n.proto.domain.clone().unwrap_or_default(),
        }),
    }
}
