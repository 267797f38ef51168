//! Property test for the optimizer: random graphs built from the rule families' ops (sibling
//! linear layers with biases, GELU in its erf and tanh forms, residual adds, decomposed and
//! fused layer norms, decomposed RMS norms and softmaxes, attention blocks with scale and
//! mask, transposes and their inverses, slices and concats, reductions broadcast back,
//! convolutions followed by a per-channel scale and shift) must
//!
//! 1. give the same interpreter outputs before and after the `optimize` pass (e-graph
//!    rewriting) and the graph rewrites (f32 tolerance), and
//! 2. run on the GPU (lavapipe in CI) at opt-levels 0, 1 and 2 with the interpreter's outputs
//!    (relative L2 error < 1e-4: the fused attention kernel computes softmax online, in a
//!    different order than the interpreter).
//!
//! Cases default to 8 (each compiles three bundles and opens three GPU sessions); set
//! `PROPTEST_CASES` for more. Shapes are [2, 5, 8] hidden states with 2 heads of 4.

use kiln::compiler::{compile_to_dir, CompileOptions, Model};
use kiln::convert::{rel_l2, to_host};
use kiln::ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceOp, SliceAxis, Tensor, TensorType, UnaryOp};
use kiln::runtime::{Bundle, Session, SessionOptions};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};

const B: usize = 2;
const S: usize = 5;
const H: usize = 8;
const HEADS: usize = 2;

/// One step of a recipe; numbers pick operands and variants.
#[derive(Clone, Debug)]
enum Step {
    /// Linear layer (+ bias) from a hidden value, with activation variant and optional residual.
    Linear(usize, u8, bool),
    /// Several linear layers of one input (merged by the sibling rule), summed.
    Siblings(usize, u8),
    /// A self-attention block, with or without a mask.
    Attention(usize, bool),
    /// Layer norm: decomposed (ONNX export form) or the fused op.
    LayerNorm(usize, bool),
    /// Transpose followed by its inverse, then an elementwise op.
    TransposePair(usize, u8),
    /// The last axis split in two halves, swapped by a concat.
    SliceConcat(usize),
    /// A sum over the last axis broadcast back by a multiply.
    ReduceBroadcast(usize, usize),
    /// RMS norm, decomposed in one of its spellings.
    RmsNorm(usize, u8),
    /// Softmax over the last axis, decomposed (max subtracted).
    Softmax(usize),
    /// A 1-D convolution over [B, S, H] as [N, C, W] with a per-channel scale and shift.
    ConvAffine(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (any::<usize>(), 0u8..4, any::<bool>()).prop_map(|(a, v, r)| Step::Linear(a, v, r)),
        (any::<usize>(), 2u8..4).prop_map(|(a, n)| Step::Siblings(a, n)),
        (any::<usize>(), any::<bool>()).prop_map(|(a, m)| Step::Attention(a, m)),
        (any::<usize>(), any::<bool>()).prop_map(|(a, d)| Step::LayerNorm(a, d)),
        (any::<usize>(), 0u8..3).prop_map(|(a, o)| Step::TransposePair(a, o)),
        any::<usize>().prop_map(Step::SliceConcat),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Step::ReduceBroadcast(a, b)),
        (any::<usize>(), 0u8..4).prop_map(|(a, v)| Step::RmsNorm(a, v)),
        any::<usize>().prop_map(Step::Softmax),
        any::<usize>().prop_map(Step::ConvAffine),
    ]
}

/// Builds graphs; every value in `vals` is a [B, S, H] hidden state.
struct Builder {
    g: Graph,
    vals: Vec<NodeId>,
    seed: u64,
    n: usize,
}

impl Builder {
    fn name(&mut self, what: &str) -> String {
        self.n += 1;
        format!("{what}{}", self.n)
    }

    fn op(&mut self, what: &str, op: Op, ins: &[NodeId]) -> NodeId {
        let name = self.name(what);
        self.g.add(&name, op, ins).unwrap_or_else(|e| panic!("{e}"))
    }

    fn constant(&mut self, shape: Vec<usize>, scale: f32) -> NodeId {
        self.seed += 1;
        let n = shape.iter().product();
        let name = self.name("c");
        self.g.add_const(
            &name,
            Tensor::f32(shape, kiln::demo::pseudo_random(n, self.seed, scale)),
        )
    }

    fn scalar(&mut self, v: f32) -> NodeId {
        let name = self.name("s");
        self.g.add_const(&name, Tensor::f32(vec![], vec![v]))
    }

    fn bin(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
        self.op("b", Op::Binary(op), &[a, b])
    }

    fn pick(&self, k: usize) -> NodeId {
        self.vals[k % self.vals.len()]
    }

    /// MatMul by a constant [H, n] weight plus a constant [n] bias (bias first, as PyTorch's
    /// ONNX export writes it).
    fn linear(&mut self, x: NodeId, n: usize) -> NodeId {
        let w = self.constant(vec![H, n], 0.5);
        let bias = self.constant(vec![n], 0.1);
        let m = self.op("mm", Op::MatMul, &[x, w]);
        self.bin(BinaryOp::Add, bias, m)
    }

    fn gelu_erf(&mut self, x: NodeId) -> NodeId {
        let s = self.scalar(std::f32::consts::SQRT_2);
        let d = self.bin(BinaryOp::Div, x, s);
        let e = self.op("erf", Op::Unary(UnaryOp::Erf), &[d]);
        let one = self.scalar(1.0);
        let a = self.bin(BinaryOp::Add, e, one);
        let m = self.bin(BinaryOp::Mul, x, a);
        let half = self.scalar(0.5);
        self.bin(BinaryOp::Mul, m, half)
    }

    fn gelu_tanh(&mut self, x: NodeId) -> NodeId {
        let x2 = self.bin(BinaryOp::Mul, x, x);
        let x3 = self.bin(BinaryOp::Mul, x2, x);
        let c = self.scalar(0.044715);
        let t = self.bin(BinaryOp::Mul, x3, c);
        let inner = self.bin(BinaryOp::Add, x, t);
        let k = self.scalar((2.0 / std::f32::consts::PI).sqrt());
        let u = self.bin(BinaryOp::Mul, inner, k);
        let th = self.op("tanh", Op::Unary(UnaryOp::Tanh), &[u]);
        let one = self.scalar(1.0);
        let a = self.bin(BinaryOp::Add, th, one);
        let m = self.bin(BinaryOp::Mul, x, a);
        let half = self.scalar(0.5);
        self.bin(BinaryOp::Mul, m, half)
    }

    fn layer_norm_decomposed(&mut self, x: NodeId) -> NodeId {
        let mean = |b: &mut Builder, v| {
            b.op(
                "mean",
                Op::Reduce {
                    op: ReduceOp::Mean,
                    axes: vec![2],
                    keep_dims: true,
                },
                &[v],
            )
        };
        let mu = mean(self, x);
        let d = self.bin(BinaryOp::Sub, x, mu);
        let two = self.scalar(2.0);
        let sq = self.bin(BinaryOp::Pow, d, two);
        let var = mean(self, sq);
        let eps = self.scalar(1e-5);
        let ve = self.bin(BinaryOp::Add, var, eps);
        let sd = self.op("sqrt", Op::Unary(UnaryOp::Sqrt), &[ve]);
        let n = self.bin(BinaryOp::Div, d, sd);
        let gamma = self.constant(vec![H], 1.0);
        let beta = self.constant(vec![H], 0.1);
        let m = self.bin(BinaryOp::Mul, n, gamma);
        self.bin(BinaryOp::Add, m, beta)
    }

    fn reduce_last(&mut self, op: ReduceOp, x: NodeId) -> NodeId {
        self.op(
            "reduce",
            Op::Reduce {
                op,
                axes: vec![2],
                keep_dims: true,
            },
            &[x],
        )
    }

    /// `x * rsqrt(mean(x²) + eps) * w` in the spelling `variant` picks.
    fn rms_norm_decomposed(&mut self, x: NodeId, variant: u8) -> NodeId {
        let sq = if variant == 1 {
            let two = self.scalar(2.0);
            self.bin(BinaryOp::Pow, x, two)
        } else {
            self.bin(BinaryOp::Mul, x, x)
        };
        let ms = self.reduce_last(ReduceOp::Mean, sq);
        let eps = self.scalar(1e-6);
        let ve = self.bin(BinaryOp::Add, ms, eps);
        let n = match variant {
            2 => {
                let s = self.op("sqrt", Op::Unary(UnaryOp::Sqrt), &[ve]);
                self.bin(BinaryOp::Div, x, s)
            }
            3 => {
                let s = self.op("sqrt", Op::Unary(UnaryOp::Sqrt), &[ve]);
                let r = self.op("recip", Op::Unary(UnaryOp::Reciprocal), &[s]);
                self.bin(BinaryOp::Mul, r, x)
            }
            _ => {
                let r = self.op("rsqrt", Op::Unary(UnaryOp::Rsqrt), &[ve]);
                self.bin(BinaryOp::Mul, x, r)
            }
        };
        let w = self.constant(vec![H], 1.0);
        self.bin(BinaryOp::Mul, n, w)
    }

    fn softmax_decomposed(&mut self, x: NodeId) -> NodeId {
        let m = self.reduce_last(ReduceOp::Max, x);
        let d = self.bin(BinaryOp::Sub, x, m);
        let e = self.op("exp", Op::Unary(UnaryOp::Exp), &[d]);
        let s = self.reduce_last(ReduceOp::Sum, e);
        self.bin(BinaryOp::Div, e, s)
    }

    fn conv_affine(&mut self, x: NodeId) -> NodeId {
        let w = self.constant(vec![S, S, 3], 0.3);
        let b = self.constant(vec![S], 0.1);
        let c = self.op(
            "conv",
            Op::Conv {
                strides: vec![1],
                pads: vec![(1, 1)],
                dilations: vec![1],
                groups: 1,
            },
            &[x, w, b],
        );
        let scale = self.constant(vec![S, 1], 1.0);
        let shift = self.constant(vec![1, S, 1], 0.2);
        let m = self.bin(BinaryOp::Mul, c, scale);
        self.bin(BinaryOp::Add, shift, m)
    }

    fn heads(&mut self, x: NodeId, perm: Vec<usize>) -> NodeId {
        let shape = [B, S, HEADS, H / HEADS]
            .iter()
            .map(|&d| kiln::ir::Dim::c(d as i64))
            .collect();
        let r = self.op("reshape", Op::Reshape { shape }, &[x]);
        self.op("transpose", Op::Transpose { perm }, &[r])
    }

    fn attention(&mut self, x: NodeId, masked: bool) -> NodeId {
        let q = self.linear(x, H);
        let k = self.linear(x, H);
        let v = self.linear(x, H);
        let q = self.heads(q, vec![0, 2, 1, 3]);
        let k = self.heads(k, vec![0, 2, 3, 1]);
        let v = self.heads(v, vec![0, 2, 1, 3]);
        let s = self.op("qk", Op::MatMul, &[q, k]);
        let scale = self.scalar(((H / HEADS) as f32).sqrt());
        let mut s = self.bin(BinaryOp::Div, s, scale);
        if masked {
            // A [B, 1, 1, S] additive mask: the last key of the second sequence masked out.
            let mut m = vec![0.0f32; B * S];
            m[2 * S - 1] = -10000.0;
            let name = self.name("mask");
            let mask = self.g.add_const(&name, Tensor::f32(vec![B, 1, 1, S], m));
            s = self.bin(BinaryOp::Add, s, mask);
        }
        let p = self.op("softmax", Op::Softmax { axis: 3, log: false }, &[s]);
        let o = self.op("av", Op::MatMul, &[p, v]);
        let t = self.op("transpose", Op::Transpose { perm: vec![0, 2, 1, 3] }, &[o]);
        let shape = [B, S, H].iter().map(|&d| kiln::ir::Dim::c(d as i64)).collect();
        let r = self.op("reshape", Op::Reshape { shape }, &[t]);
        self.linear(r, H)
    }

    fn apply(&mut self, s: &Step) {
        let v = match *s {
            Step::Linear(a, act, residual) => {
                let x = self.pick(a);
                let wide = self.linear(x, 2 * H);
                let h = match act {
                    0 => self.gelu_erf(wide),
                    1 => self.gelu_tanh(wide),
                    2 => self.op("relu", Op::Unary(UnaryOp::Relu), &[wide]),
                    _ => wide,
                };
                let w = self.constant(vec![2 * H, H], 0.3);
                let bias = self.constant(vec![H], 0.1);
                let m = self.op("mm", Op::MatMul, &[h, w]);
                let y = self.bin(BinaryOp::Add, bias, m);
                if residual {
                    self.bin(BinaryOp::Add, y, x)
                } else {
                    y
                }
            }
            Step::Siblings(a, n) => {
                let x = self.pick(a);
                let mut acc = self.linear(x, H);
                for _ in 1..n {
                    let y = self.linear(x, H);
                    acc = self.bin(BinaryOp::Add, acc, y);
                }
                acc
            }
            Step::Attention(a, masked) => {
                let x = self.pick(a);
                let y = self.attention(x, masked);
                self.bin(BinaryOp::Add, y, x)
            }
            Step::LayerNorm(a, decomposed) => {
                let x = self.pick(a);
                if decomposed {
                    self.layer_norm_decomposed(x)
                } else {
                    let gamma = self.constant(vec![H], 1.0);
                    let beta = self.constant(vec![H], 0.1);
                    self.op("ln", Op::LayerNorm { axis: 2, epsilon: 1e-5 }, &[x, gamma, beta])
                }
            }
            Step::TransposePair(a, o) => {
                let x = self.pick(a);
                let t = self.op("t", Op::Transpose { perm: vec![2, 0, 1] }, &[x]);
                let u = self.op(
                    "u",
                    Op::Unary([UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Neg][o as usize]),
                    &[t],
                );
                self.op("t", Op::Transpose { perm: vec![1, 2, 0] }, &[u])
            }
            Step::SliceConcat(a) => {
                let x = self.pick(a);
                let half = |b: &mut Builder, start: i64, end: i64| {
                    b.op(
                        "slice",
                        Op::Slice {
                            axes: vec![SliceAxis {
                                axis: 2,
                                start,
                                end,
                                step: 1,
                            }],
                        },
                        &[x],
                    )
                };
                let lo = half(self, 0, (H / 2) as i64);
                let hi = half(self, (H / 2) as i64, H as i64);
                self.op("concat", Op::Concat { axis: 2 }, &[hi, lo])
            }
            Step::ReduceBroadcast(a, b) => {
                let x = self.pick(a);
                let y = self.pick(b);
                let r = self.op(
                    "sum",
                    Op::Reduce {
                        op: ReduceOp::Sum,
                        axes: vec![2],
                        keep_dims: true,
                    },
                    &[x],
                );
                let t = self.op("tanh", Op::Unary(UnaryOp::Tanh), &[r]);
                self.bin(BinaryOp::Mul, y, t)
            }
            Step::RmsNorm(a, v) => {
                let x = self.pick(a);
                self.rms_norm_decomposed(x, v)
            }
            Step::Softmax(a) => {
                let x = self.pick(a);
                self.softmax_decomposed(x)
            }
            Step::ConvAffine(a) => {
                let x = self.pick(a);
                self.conv_affine(x)
            }
        };
        self.vals.push(v);
    }
}

/// Builds a graph from a recipe; the last value and one earlier value are outputs.
fn build(steps: &[Step], seed: u64, also: usize) -> (Model, HashMap<String, Tensor>) {
    let mut b = Builder {
        g: Graph::new(),
        vals: Vec::new(),
        seed,
        n: 0,
    };
    let x = b.g.add_input("x", TensorType::new(DType::F32, &[B, S, H]));
    b.vals.push(x);
    for s in steps {
        b.apply(s);
    }
    let last = *b.vals.last().unwrap();
    b.g.add_output("y", last);
    let extra = b.vals[1 + also % (b.vals.len() - 1)];
    if extra != last {
        b.g.add_output("z", extra);
    }
    let xin = Tensor::f32(vec![B, S, H], kiln::demo::pseudo_random(B * S * H, seed ^ 0x5eed, 1.0));
    let model = Model {
        name: "opt-random".into(),
        graph: b.g,
        io_dtypes: BTreeMap::new(),
    };
    (model, HashMap::from([("x".to_string(), xin)]))
}

fn run_case(steps: Vec<Step>, seed: u64, also: usize) -> Result<(), TestCaseError> {
    let (model, inputs) = build(&steps, seed, also);
    let reference =
        kiln::ir::interp::evaluate(&model.graph, &inputs).map_err(|e| TestCaseError::fail(e.to_string()))?;

    // 1. The e-graph optimizer and the graph rewrites keep the interpreter's outputs.
    let optimized = kiln::compiler::opt::optimize(model.graph.clone(), &CompileOptions::default())
        .map_err(|e| TestCaseError::fail(format!("optimize: {e}")))?;
    let after = kiln::ir::interp::evaluate(&optimized, &inputs).map_err(|e| TestCaseError::fail(e.to_string()))?;
    for (name, r) in &reference {
        let err = rel_l2(&after[name].to_f32(), &r.to_f32());
        prop_assert!(
            err < 1e-5,
            "{} after optimize: relative L2 error {:e} ({:?})",
            name,
            err,
            steps
        );
    }
    let rewritten = kiln::compiler::passes::rewrite(optimized, &CompileOptions::default())
        .map_err(|e| TestCaseError::fail(format!("rewrite: {e}")))?;
    let after = kiln::ir::interp::evaluate(&rewritten, &inputs).map_err(|e| TestCaseError::fail(e.to_string()))?;
    for (name, r) in &reference {
        let err = rel_l2(&after[name].to_f32(), &r.to_f32());
        prop_assert!(
            err < 1e-5,
            "{} after rewriting: relative L2 error {:e} ({:?})",
            name,
            err,
            steps
        );
    }

    // 2. The GPU at every opt-level agrees with the interpreter.
    let host = HashMap::from([("x".to_string(), to_host(&inputs["x"], kiln::abi::ElemType::F32))]);
    for opt_level in [0u8, 1, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let opts = CompileOptions {
            opt_level,
            ..Default::default()
        };
        compile_to_dir(&model, &opts, &dir.path().join("b"))
            .map_err(|e| TestCaseError::fail(format!("compile at opt-level {opt_level}: {e}")))?;
        let bundle = Bundle::load(dir.path().join("b")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut session =
            Session::new(&bundle, &SessionOptions::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let out: HashMap<_, _> = session
            .run("run", &host)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .into_iter()
            .collect();
        for (name, r) in &reference {
            let gpu = &out[name];
            prop_assert_eq!(&gpu.shape, &r.shape, "{} shape at opt-level {}", name, opt_level);
            let err = rel_l2(&gpu.to_f32(), &r.to_f32());
            prop_assert!(
                err < 1e-4,
                "{} at opt-level {}: relative L2 error {:e} (steps {:?})",
                name,
                opt_level,
                err,
                steps
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(8),
        max_shrink_iters: 32,
        ..ProptestConfig::default()
    })]

    #[test]
    fn optimized_graphs_match_the_interpreter(
        steps in prop::collection::vec(step(), 1..6),
        seed in any::<u64>(),
        also in any::<usize>(),
    ) {
        run_case(steps, seed, also)?;
    }
}

/// The shape every rule family aims at, fixed: a BERT layer (merged QKV, fused attention,
/// bias/GELU/residual epilogues, layer-norm prologues) needs few dispatches at opt-level 2.
#[test]
fn bert_layer_fuses_into_few_kernels_and_matches() {
    let steps = vec![
        Step::Attention(0, true),
        Step::LayerNorm(1, false),
        Step::Linear(2, 0, true),
        Step::LayerNorm(3, true),
    ];
    run_case(steps.clone(), 7, 0).unwrap();
    let (model, _) = build(&steps, 7, 0);
    let count = |level: u8| {
        let opts = CompileOptions {
            opt_level: level,
            ..Default::default()
        };
        kiln::compiler::compile(&model, &opts).unwrap().manifest.programs[0]
            .dispatches
            .len()
    };
    let (l0, l1, l2, l3) = (count(0), count(1), count(2), count(3));
    eprintln!("bert layer: {l0} / {l1} / {l2} / {l3} dispatches at opt-levels 0 / 1 / 2 / 3");
    // QKV GEMM, attention, output GEMM (+residual), layer norm, FFN GEMM (+GELU), FFN GEMM
    // (+residual), decomposed layer norm: 2 mean reductions and its normalize/affine tail.
    // Opt-level 2 computes attention as QK^T GEMM, softmax (scale and mask as its prologue)
    // and a GEMM with V, two more, unless a batch has at most 8 query rows (as here: then
    // it is the same decode-schedule kernel as at level 3).
    assert!(l3 <= 9, "{l3} dispatches at opt-level 3");
    assert!(l2 <= l3 + 2, "{l2} dispatches at opt-level 2");
    assert!(l1 > l2 && l0 > l1, "levels 0 ({l0}) > 1 ({l1}) > 2 ({l2})");
}

/// A convolution with BatchNorm (per-channel Mul/Add, folded into it by the optimizer) and a
/// hard-swish that reads the folded conv's output twice is one kernel at opt-level 2: the
/// conv is a core whose every use stays inside the kernel (PP-OCRv4 det's backbone pattern;
/// requiring a single user left 23 of its convolutions without their epilogues).
#[test]
fn conv_read_twice_by_its_epilogue_stays_one_kernel() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[1, 4, 8, 8]));
    let w = g.add_const(
        "w",
        Tensor::f32(vec![6, 4, 3, 3], kiln::demo::pseudo_random(6 * 4 * 9, 3, 0.3)),
    );
    let conv = Op::Conv {
        strides: vec![1, 1],
        pads: vec![(1, 1); 2],
        dilations: vec![1, 1],
        groups: 1,
    };
    let c = g.add("conv", conv, &[x, w]).unwrap();
    let scale = g.add_const(
        "bn_scale",
        Tensor::f32(vec![1, 6, 1, 1], vec![0.5, 1.5, 1.0, 2.0, 0.7, 1.1]),
    );
    let shift = g.add_const(
        "bn_shift",
        Tensor::f32(vec![1, 6, 1, 1], vec![0.1, -0.2, 0.3, 0.0, 0.5, -0.4]),
    );
    let s = g.add("bn_mul", Op::Binary(BinaryOp::Mul), &[c, scale]).unwrap();
    let y = g.add("bn_add", Op::Binary(BinaryOp::Add), &[s, shift]).unwrap();
    let three = g.add_const("three", Tensor::f32(vec![1], vec![3.0]));
    let zero = g.add_const("zero", Tensor::f32(vec![1], vec![0.0]));
    let six = g.add_const("six", Tensor::f32(vec![1], vec![6.0]));
    let p = g.add("hs_add", Op::Binary(BinaryOp::Add), &[y, three]).unwrap();
    let lo = g.add("hs_max", Op::Binary(BinaryOp::Max), &[p, zero]).unwrap();
    let hi = g.add("hs_min", Op::Binary(BinaryOp::Min), &[lo, six]).unwrap();
    let m = g.add("hs_mul", Op::Binary(BinaryOp::Mul), &[y, hi]).unwrap();
    let out = g.add("hs_div", Op::Binary(BinaryOp::Div), &[m, six]).unwrap();
    g.add_output("y", out);
    let model = Model {
        name: "conv-bn-hardswish".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let compiled = kiln::compiler::compile(&model, &CompileOptions::default()).unwrap();
    assert_eq!(compiled.manifest.programs[0].dispatches.len(), 1);
}

/// A residual stream through two GEMMs, `r = x·W1 + x; z = r·W2 + r`: `r` (the first GEMM's
/// epilogue) is read from memory by the second GEMM's operand load, so the first GEMM's kernel
/// stores it and the second GEMM's epilogue reads it instead of recomputing `x·W1 + x`, which
/// needed the raw product stored by a second run of the first GEMM (an LLM's attention
/// residual did this: the output projection ran twice). Two dispatches, and the interpreter's
/// result (relative L2 < 1e-5: f32 dot products of 8 terms).
#[test]
fn gemm_epilogue_read_by_another_gemm_is_stored_once() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[2, 4, 8]));
    let w1 = g.add_const("w1", Tensor::f32(vec![8, 8], kiln::demo::pseudo_random(64, 5, 0.3)));
    let w2 = g.add_const("w2", Tensor::f32(vec![8, 8], kiln::demo::pseudo_random(64, 6, 0.3)));
    let m1 = g.add("mm1", Op::MatMul, &[x, w1]).unwrap();
    let r = g.add("residual1", Op::Binary(BinaryOp::Add), &[m1, x]).unwrap();
    let m2 = g.add("mm2", Op::MatMul, &[r, w2]).unwrap();
    let z = g.add("residual2", Op::Binary(BinaryOp::Add), &[m2, r]).unwrap();
    g.add_output("z", z);
    let model = Model {
        name: "residual-gemms".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let xin = Tensor::f32(vec![2, 4, 8], kiln::demo::pseudo_random(64, 7, 1.0));
    let reference = kiln::ir::interp::evaluate(&model.graph, &HashMap::from([("x".to_string(), xin.clone())])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let compiled = compile_to_dir(&model, &CompileOptions::default(), &dir.path().join("b")).unwrap();
    let labels: Vec<&str> = compiled.programs[0]
        .dispatches
        .iter()
        .map(|d| d.label.as_str())
        .collect();
    assert_eq!(labels.len(), 2, "{labels:?}");
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let mut session = Session::new(&bundle, &SessionOptions::default()).unwrap();
    let host = HashMap::from([("x".to_string(), to_host(&xin, kiln::abi::ElemType::F32))]);
    let out: HashMap<_, _> = session.run("run", &host).unwrap().into_iter().collect();
    let err = rel_l2(&out["z"].to_f32(), &reference["z"].to_f32());
    assert!(err < 1e-5, "relative L2 error {err:e}");
}
