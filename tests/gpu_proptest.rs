//! Property tests: graphs drawn at random, compiled by Kiln, run on the GPU (lavapipe in CI) and
//! compared with a reference. Every graph is built without dropping errors: a graph the IR
//! rejects fails the test.
//!
//! | test | draws | reference | tolerance |
//! |---|---|---|---|
//! | `random_graphs_match_the_interpreter` | chains of elementwise (incl. Div, Pow), broadcast, reduce, MatMul, Softmax, LayerNorm, Transpose, Slice, Concat, Gather on f32 | interpreter | relative L2 2e-5, or more where the graph is ill-conditioned ([`conditioned_tolerance`]) |
//! | `gemm_spans_tiles_and_loops_over_k` | MatMul M, N ≤ 300, K ≤ 600 (ragged), batch, bias/ReLU epilogue | f64 sums in this file | `(K+2)·u·Σ|a||b|` per element |
//! | `long_reductions_match_exact_sums` | Sum/Mean/Max/Min/Softmax/LayerNorm over up to 5000 elements, rows and columns | f64 in this file | per op, below |
//! | `data_movement_is_exact` | Transpose/Slice/Concat/Gather/Expand chains on f32 and i32 | interpreter | bit-exact |
//! | `integer_graphs_are_exact` | i32 Add/Sub/Mul/Div/Mod/Max/Min/Neg/Abs, reductions | interpreter | exact |
//! | `symbolic_dims_run_at_two_sizes` | one bundle over symbolic dims, run at two drawn sizes | interpreter | relative L2 2e-5 |
//!
//! `u` is the f32 unit roundoff 2^-24. Opt-levels 0 and 2 are drawn per case. Case counts are
//! the defaults below (several hundred in all); `PROPTEST_CASES` overrides every count.

use kiln::compiler::{compile_to_dir, CompileOptions, Model};
use kiln::convert::{rel_l2, to_host};
use kiln::ir::{BinaryOp, DType, Dim, Graph, IrError, NodeId, Op, ReduceOp, SliceAxis, Tensor, TensorType, UnaryOp};
use kiln::runtime::{Bundle, HostTensor, Runtime, Session};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// The f32 unit roundoff.
const U: f64 = 1.0 / 16_777_216.0;

/// Relative L2 tolerance for random f32 graphs and symbolic graphs against the interpreter
/// (which computes each op exactly in f64 and rounds to f32). Each op here is accurate to a few
/// ULP on Vulkan (exp/log/pow within 3 + 2|x| ULP, division 2.5, inverseSqrt 2); chains of at
/// most 8 ops and sums over at most a few hundred elements in a different order stay far below
/// 2e-5 (about 300 ULP), while any wrong index, broadcast or axis gives an O(1) error.
const GRAPH_RTOL: f64 = 2e-5;

/// Relative size of the perturbation [`conditioned_tolerance`] applies to every value: 8 units
/// of roundoff, about what a few-ULP op or a reordered short sum leaves.
const PERTURB_EPS: f64 = 8.0 * U;

/// How much larger than the perturbed twins' spread the GPU's error may be.
const CONDITION_MARGIN: f64 = 8.0;

/// Past this spread a graph's output says nothing at f32 (cancellation to a few bits): the case
/// is rejected instead of checked with a tolerance that could not fail.
const MAX_CONDITIONED_RTOL: f64 = 1e-3;

/// Case count: the given default, or `PROPTEST_CASES` when set.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default_cases),
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    }
}

/// One adapter for the whole test binary (each session still creates its own device).
fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new().expect("a GPU adapter (lavapipe in CI)"))
}

fn fail(what: &str) -> impl Fn(String) -> TestCaseError + '_ {
    move |e| TestCaseError::fail(format!("{what}: {e}"))
}

/// Adds an op; an IR error fails the case (with the op named).
fn add(g: &mut Graph, name: &str, op: Op, ins: &[NodeId]) -> Result<NodeId, TestCaseError> {
    let what = format!("building {name} ({})", op.name());
    g.add(name, op, ins)
        .map_err(|e: IrError| TestCaseError::fail(format!("{what}: {e}")))
}

fn shape_of(g: &Graph, id: NodeId) -> Vec<usize> {
    g.node(id).ty.const_shape().expect("constant shapes in these graphs")
}

fn model(g: Graph) -> Model {
    Model {
        name: "random".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    }
}

fn host(t: &Tensor) -> HostTensor {
    let e = match t.dtype() {
        DType::I32 => kiln::abi::ElemType::I32,
        _ => kiln::abi::ElemType::F32,
    };
    to_host(t, e)
}

/// Compiles `model` at `opt_level` into a fresh session on the shared adapter.
fn session(model: &Model, opt_level: u8) -> Result<Session, TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| fail("tempdir")(e.to_string()))?;
    let opts = CompileOptions {
        opt_level,
        ..Default::default()
    };
    let path = dir.path().join("b");
    compile_to_dir(model, &opts, &path).map_err(|e| fail("compile")(e.to_string()))?;
    let bundle = Bundle::load(&path).map_err(|e| fail("load bundle")(e.to_string()))?;
    Session::with_runtime(runtime().clone(), &bundle).map_err(|e| fail("session")(e.to_string()))
}

/// Runs the session on `inputs`; outputs by name.
fn run(session: &mut Session, inputs: &HashMap<String, Tensor>) -> Result<HashMap<String, HostTensor>, TestCaseError> {
    let host_inputs: HashMap<String, HostTensor> = inputs.iter().map(|(n, t)| (n.clone(), host(t))).collect();
    Ok(session
        .run("run", &host_inputs)
        .map_err(|e| fail("run")(e.to_string()))?
        .into_iter()
        .collect())
}

fn interpret(m: &Model, inputs: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>, TestCaseError> {
    kiln::ir::interp::evaluate(&m.graph, inputs).map_err(|e| fail("interpreter")(e.to_string()))
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    kiln::demo::pseudo_random(n, seed, 1.0)
}

/// Relative L2 error with the reference norm floored, so all-zero results compare sanely.
fn graph_error(gpu: &[f32], reference: &[f32]) -> f64 {
    let norm: f64 = reference.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    let floor = 1e-3 * (reference.len() as f64).sqrt();
    if norm < floor {
        let diff: f64 = gpu
            .iter()
            .zip(reference)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        diff / floor
    } else {
        rel_l2(gpu, reference)
    }
}

/// Compares every interpreter output with the GPU's: shapes exactly, then f32 within
/// [`GRAPH_RTOL`] (or bit-exactly when `exact`), i32 exactly.
fn check_outputs(
    what: &str,
    gpu: &HashMap<String, HostTensor>,
    reference: &HashMap<String, Tensor>,
    exact: bool,
) -> Result<(), TestCaseError> {
    check_outputs_within(what, gpu, reference, exact, GRAPH_RTOL)
}

/// [`check_outputs`] with relative L2 tolerance `rtol` for f32 outputs.
fn check_outputs_within(
    what: &str,
    gpu: &HashMap<String, HostTensor>,
    reference: &HashMap<String, Tensor>,
    exact: bool,
    rtol: f64,
) -> Result<(), TestCaseError> {
    for (name, r) in reference {
        let g = gpu
            .get(name)
            .ok_or_else(|| TestCaseError::fail(format!("{what}: no output '{name}'")))?;
        prop_assert_eq!(&g.shape, &r.shape, "{}: shape of '{}'", what, name);
        match r.dtype() {
            DType::I32 => {
                let want: Vec<i64> = r.to_f64().iter().map(|&v| v as i64).collect();
                prop_assert_eq!(g.to_i64(), want, "{}: '{}'", what, name);
            }
            _ if exact => {
                let got: Vec<u32> = g.to_f32().iter().map(|v| v.to_bits()).collect();
                let want: Vec<u32> = r.to_f32().iter().map(|v| v.to_bits()).collect();
                prop_assert_eq!(got, want, "{}: '{}' (bits)", what, name);
            }
            _ => {
                let err = graph_error(&g.to_f32(), &r.to_f32());
                prop_assert!(
                    err < rtol,
                    "{}: '{}' relative L2 error {:e} (tolerance {:e})",
                    what,
                    name,
                    err,
                    rtol
                );
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Random f32 graphs

/// Binary ops of the random graphs (Div and Pow get guarded operands, see [`build`]).
const BINARY_OPS: [BinaryOp; 7] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Max,
    BinaryOp::Min,
    BinaryOp::Div,
    BinaryOp::Pow,
];

/// One step of a random graph recipe; numbers pick operands and attributes.
#[derive(Clone, Debug)]
enum Step {
    Unary(u8, usize),
    Binary(u8, usize, usize),
    BroadcastBinary(u8, usize, u8),
    Reduce(u8, usize, u8, bool),
    MatMul(usize, u8),
    Softmax(usize, u8, bool),
    LayerNorm(usize, u8),
    Transpose(usize, u64),
    Slice(usize, u8, u8, u8, u8),
    Concat(usize, u8, bool),
    Gather(usize, u8, u8, u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..10, any::<usize>()).prop_map(|(o, a)| Step::Unary(o, a)),
        (0u8..7, any::<usize>(), any::<usize>()).prop_map(|(o, a, b)| Step::Binary(o, a, b)),
        (0u8..5, any::<usize>(), any::<u8>()).prop_map(|(o, a, m)| Step::BroadcastBinary(o, a, m)),
        (0u8..4, any::<usize>(), any::<u8>(), any::<bool>()).prop_map(|(o, a, m, k)| Step::Reduce(o, a, m, k)),
        (any::<usize>(), 1u8..40).prop_map(|(a, n)| Step::MatMul(a, n)),
        (any::<usize>(), any::<u8>(), any::<bool>()).prop_map(|(a, x, l)| Step::Softmax(a, x, l)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, x)| Step::LayerNorm(a, x)),
        (any::<usize>(), any::<u64>()).prop_map(|(a, s)| Step::Transpose(a, s)),
        (any::<usize>(), any::<u8>(), any::<u8>(), any::<u8>(), 1u8..4)
            .prop_map(|(a, x, s, l, st)| Step::Slice(a, x, s, l, st)),
        (any::<usize>(), any::<u8>(), any::<bool>()).prop_map(|(a, x, f)| Step::Concat(a, x, f)),
        (any::<usize>(), any::<u8>(), 1u8..6, any::<u64>()).prop_map(|(a, x, n, s)| Step::Gather(a, x, n, s)),
    ]
}

/// A permutation of `0..n` drawn from `seed`.
fn permutation(n: usize, mut seed: u64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        p.swap(i, (seed >> 33) as usize % (i + 1));
    }
    p
}

/// Values reachable in a graph, and how to add guarded helper nodes.
struct Builder {
    g: Graph,
    vals: Vec<NodeId>,
    consts: u64,
    seed: u64,
    /// In a perturbed twin ([`conditioned_tolerance`]): the perturbation's seed and how many
    /// values it has perturbed.
    perturb: Option<(u64, u64)>,
}

impl Builder {
    fn pick(&self, k: usize) -> NodeId {
        self.vals[k % self.vals.len()]
    }

    fn constant(&mut self, shape: Vec<usize>) -> NodeId {
        self.consts += 1;
        let n = shape.iter().product();
        let v = values(n, self.seed.wrapping_add(self.consts));
        self.g.add_const(&format!("c{}", self.consts), Tensor::f32(shape, v))
    }

    fn scalar(&mut self, v: f32) -> NodeId {
        self.consts += 1;
        self.g
            .add_const(&format!("s{}", self.consts), Tensor::f32(vec![], vec![v]))
    }

    /// `v` itself, or in a perturbed twin `v · (1 + PERTURB_EPS · r)` with `r` drawn per
    /// element in [-1, 1): a stand-in for the rounding of the op that made `v`, felt by every op
    /// that reads it (so a sum that cancels sees errors of the size of its terms).
    fn perturbed(&mut self, v: NodeId) -> Result<NodeId, TestCaseError> {
        let Some((seed, count)) = self.perturb.as_mut() else {
            return Ok(v);
        };
        *count += 1;
        let shape = shape_of(&self.g, v);
        let factors = values(shape.iter().product(), seed.wrapping_add(*count))
            .into_iter()
            .map(|r| (1.0 + PERTURB_EPS * r as f64) as f32)
            .collect();
        let name = format!("perturb{count}");
        let c = self
            .g
            .add_const(&format!("{name}_factors"), Tensor::f32(shape, factors));
        add(&mut self.g, &name, Op::Binary(BinaryOp::Mul), &[v, c])
    }

    /// `offset + scale * tanh(x)`: a value in `offset ± scale`, to keep Div's divisor and Pow's
    /// base away from 0 and Pow's exponent bounded.
    fn squash(&mut self, name: &str, x: NodeId, offset: f32, scale: f32) -> Result<NodeId, TestCaseError> {
        let t = add(&mut self.g, &format!("{name}_tanh"), Op::Unary(UnaryOp::Tanh), &[x])?;
        let s = self.scalar(scale);
        let m = add(
            &mut self.g,
            &format!("{name}_scale"),
            Op::Binary(BinaryOp::Mul),
            &[t, s],
        )?;
        let o = self.scalar(offset);
        add(
            &mut self.g,
            &format!("{name}_offset"),
            Op::Binary(BinaryOp::Add),
            &[m, o],
        )
    }
}

/// Builds a graph from a recipe. Steps whose preconditions do not hold for the drawn shapes
/// (nothing to reduce, a tensor grown past 4096 elements) are skipped; every op that is added
/// must be accepted by the IR.
fn build(shape: &[usize], steps: &[Step], seed: u64) -> Result<(Model, HashMap<String, Tensor>), TestCaseError> {
    build_twin(shape, steps, seed, None)
}

/// [`build`], or with `perturb` a twin of it that perturbs the input and every op's result
/// ([`Builder::perturbed`]); the twin draws the same constants and picks the same operands.
fn build_twin(
    shape: &[usize],
    steps: &[Step],
    seed: u64,
    perturb: Option<u64>,
) -> Result<(Model, HashMap<String, Tensor>), TestCaseError> {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, shape));
    let mut b = Builder {
        g,
        vals: Vec::new(),
        consts: 0,
        seed,
        perturb: perturb.map(|p| (p, 0)),
    };
    let x = b.perturbed(x)?;
    b.vals.push(x);
    for (i, s) in steps.iter().enumerate() {
        let name = format!("n{i}");
        let added = match *s {
            Step::Unary(o, a) => {
                let src = b.pick(a);
                let (u, guarded) = match o {
                    0 => (UnaryOp::Relu, src),
                    1 => (UnaryOp::Tanh, src),
                    2 => (UnaryOp::Sigmoid, src),
                    3 => (UnaryOp::Neg, src),
                    4 => (UnaryOp::Abs, src),
                    5 => (UnaryOp::Softplus, src),
                    6 => (UnaryOp::Erf, src),
                    // exp, log and sqrt of bounded or positive values keep magnitudes sane.
                    7 => (UnaryOp::Exp, b.squash(&name, src, 0.0, 2.0)?),
                    8 => (UnaryOp::Log, b.squash(&name, src, 1.5, 1.0)?),
                    _ => (UnaryOp::Sqrt, b.squash(&name, src, 1.5, 1.0)?),
                };
                Some(add(&mut b.g, &name, Op::Unary(u), &[guarded])?)
            }
            Step::Binary(o, a, c) => {
                let l = b.pick(a);
                let sh = shape_of(&b.g, l);
                // The right operand: a value of the same shape (the left one if none other).
                let same: Vec<NodeId> = b.vals.iter().copied().filter(|&v| shape_of(&b.g, v) == sh).collect();
                let r = same[c % same.len()];
                let op = BINARY_OPS[o as usize];
                let (l, r) = match op {
                    // Divisor in [0.5, 2.5]; Pow's base in [0.5, 1.5], exponent in (-2, 2).
                    BinaryOp::Div => (l, b.squash(&name, r, 1.5, 1.0)?),
                    BinaryOp::Pow => (
                        b.squash(&format!("{name}_b"), l, 1.0, 0.5)?,
                        b.squash(&name, r, 0.0, 2.0)?,
                    ),
                    _ => (l, r),
                };
                Some(add(&mut b.g, &name, Op::Binary(op), &[l, r])?)
            }
            Step::BroadcastBinary(o, a, mask) => {
                let op = BINARY_OPS[o as usize];
                let src = b.pick(a);
                let sh = shape_of(&b.g, src);
                // A constant whose dims are 1 where the mask bit is set, trailing-aligned, maybe shorter.
                let drop = (mask as usize >> 4) % (sh.len() + 1);
                let csh: Vec<usize> = sh[drop..]
                    .iter()
                    .enumerate()
                    .map(|(j, &d)| if mask & (1 << j) != 0 { 1 } else { d })
                    .collect();
                let c = b.constant(csh);
                let (l, r) = if mask & 8 != 0 { (c, src) } else { (src, c) };
                Some(add(&mut b.g, &name, Op::Binary(op), &[l, r])?)
            }
            Step::Reduce(o, a, mask, keep) => {
                let op = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min][o as usize];
                let src = b.pick(a);
                let rank = b.g.node(src).ty.rank();
                let axes: Vec<usize> = (0..rank).filter(|j| mask & (1 << j) != 0).collect();
                if axes.is_empty() || (!keep && axes.len() == rank) {
                    None
                } else {
                    let op = Op::Reduce {
                        op,
                        axes,
                        keep_dims: keep,
                    };
                    Some(add(&mut b.g, &name, op, &[src])?)
                }
            }
            Step::MatMul(a, n) => {
                let src = b.pick(a);
                let sh = shape_of(&b.g, src);
                let k = *sh.last().expect("rank >= 1");
                let w = b.constant(vec![k, n as usize]);
                Some(add(&mut b.g, &name, Op::MatMul, &[src, w])?)
            }
            Step::Softmax(a, axis, log) => {
                let src = b.pick(a);
                let axis = axis as usize % b.g.node(src).ty.rank();
                Some(add(&mut b.g, &name, Op::Softmax { axis, log }, &[src])?)
            }
            Step::LayerNorm(a, axis) => {
                let src = b.pick(a);
                let sh = shape_of(&b.g, src);
                let axis = axis as usize % sh.len();
                let scale = b.constant(sh[axis..].to_vec());
                let bias = b.constant(sh[axis..].to_vec());
                // epsilon 1e-3 bounds how much a row of nearly equal values (a Min or Max against
                // a constant clamps most of a short row) amplifies f32 rounding in `x - mean`: by
                // 1/sqrt(epsilon), about 32x, instead of 316x at 1e-5, which put a 6-element row
                // just over GRAPH_RTOL (2.3e-5; the seed is kept in proptest-regressions/). A
                // wrong index or axis still gives an O(1) error.
                let op = Op::LayerNorm { axis, epsilon: 1e-3 };
                Some(add(&mut b.g, &name, op, &[src, scale, bias])?)
            }
            Step::Transpose(a, s) => {
                let src = b.pick(a);
                let perm = permutation(b.g.node(src).ty.rank(), s);
                Some(add(&mut b.g, &name, Op::Transpose { perm }, &[src])?)
            }
            Step::Slice(a, axis, start, len, step) => {
                let src = b.pick(a);
                let sh = shape_of(&b.g, src);
                let axis = axis as usize % sh.len();
                let d = sh[axis] as i64;
                let start = start as i64 % d;
                let end = start + 1 + len as i64 % (d - start);
                let axes = vec![SliceAxis {
                    axis,
                    start,
                    end,
                    step: step as i64,
                }];
                Some(add(&mut b.g, &name, Op::Slice { axes }, &[src])?)
            }
            Step::Concat(a, axis, flip) => {
                let src = b.pick(a);
                let sh = shape_of(&b.g, src);
                if 2 * sh.iter().product::<usize>() > 4096 {
                    None
                } else {
                    let axis = axis as usize % sh.len();
                    let other = add(&mut b.g, &format!("{name}_t"), Op::Unary(UnaryOp::Tanh), &[src])?;
                    let ins = if flip { [other, src] } else { [src, other] };
                    Some(add(&mut b.g, &name, Op::Concat { axis }, &ins)?)
                }
            }
            Step::Gather(a, axis, count, s) => {
                let src = b.pick(a);
                let sh = shape_of(&b.g, src);
                let axis = axis as usize % sh.len();
                let d = sh[axis] as i64;
                // Indices in [-d, d): negative ones count from the end.
                let idx: Vec<i32> = (0..count as u64)
                    .map(|j| ((s.wrapping_mul(2654435761).wrapping_add(j * 40503) >> 7) as i64 % (2 * d) - d) as i32)
                    .collect();
                b.consts += 1;
                let ic =
                    b.g.add_const(&format!("idx{}", b.consts), Tensor::i32(vec![idx.len()], idx));
                Some(add(&mut b.g, &name, Op::Gather { axis }, &[src, ic])?)
            }
        };
        if let Some(id) = added {
            let id = b.perturbed(id)?;
            b.vals.push(id);
        }
    }
    // The last value and one earlier intermediate are outputs.
    let mut g = b.g;
    let last = *b.vals.last().expect("at least the input");
    g.add_output("out", last);
    if b.vals.len() > 2 {
        g.add_output("mid", b.vals[b.vals.len() / 2]);
    }
    let n: usize = shape.iter().product();
    let inputs = HashMap::from([("x".to_string(), Tensor::f32(shape.to_vec(), values(n, seed)))]);
    Ok((model(g), inputs))
}

/// The tolerance for a random graph's outputs: [`GRAPH_RTOL`], or where the graph amplifies
/// rounding more than that allows (a sum that cancels to a small value, then read by an op
/// that keeps it), [`CONDITION_MARGIN`] times the largest relative L2 difference between the
/// interpreter's outputs and those of two perturbed twins ([`build_twin`]). The twins feel
/// rounding-sized errors at every value, as the GPU does; a wrong index, axis or broadcast
/// still gives an O(1) error. A graph whose twins differ by more than
/// [`MAX_CONDITIONED_RTOL`] is rejected (`prop_assume`), not checked loosely.
fn conditioned_tolerance(
    shape: &[usize],
    steps: &[Step],
    seed: u64,
    reference: &HashMap<String, Tensor>,
) -> Result<f64, TestCaseError> {
    let mut spread: f64 = 0.0;
    for twin in [1u64, 2] {
        let (m, inputs) = build_twin(shape, steps, seed, Some(seed.wrapping_mul(31).wrapping_add(twin)))?;
        let perturbed = interpret(&m, &inputs)?;
        for (name, r) in reference {
            let p = perturbed
                .get(name)
                .ok_or_else(|| TestCaseError::fail(format!("perturbed twin: no output '{name}'")))?;
            spread = spread.max(graph_error(&p.to_f32(), &r.to_f32()));
        }
    }
    prop_assume!(
        spread < MAX_CONDITIONED_RTOL,
        "ill-conditioned graph: twins differ by {:e}",
        spread
    );
    Ok(GRAPH_RTOL.max(CONDITION_MARGIN * spread))
}

proptest! {
    #![proptest_config(config(150))]

    #[test]
    fn random_graphs_match_the_interpreter(
        shape in prop::collection::vec(1usize..10, 1..4),
        steps in prop::collection::vec(step(), 1..8),
        seed in any::<u64>(),
        opt_level in prop_oneof![Just(0u8), Just(2u8)],
    ) {
        let (m, inputs) = build(&shape, &steps, seed)?;
        let reference = interpret(&m, &inputs)?;
        let rtol = conditioned_tolerance(&shape, &steps, seed, &reference)?;
        let gpu = run(&mut session(&m, opt_level)?, &inputs)?;
        check_outputs_within(&format!("opt-level {opt_level}, steps {steps:?}"), &gpu, &reference, false, rtol)?;
    }
}

// ---------------------------------------------------------------------------------------------
// GEMM over several tiles, looping over K

/// `a [batch, m, k] @ b [k, n] (+ bias [n]) (then ReLU)` in f64 from the f32 operands, and per
/// element `Σ_k |a||b| + |bias|`, the magnitude the rounding error bound scales with.
fn gemm_reference(
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    (batch, m, k, n): (usize, usize, usize, usize),
) -> (Vec<f64>, Vec<f64>) {
    let mut exact = vec![0f64; batch * m * n];
    let mut mag = vec![0f64; batch * m * n];
    for p in 0..batch {
        for i in 0..m {
            let row = &a[(p * m + i) * k..(p * m + i + 1) * k];
            for j in 0..n {
                let (mut s, mut s_abs) = (0f64, 0f64);
                for (kk, &x) in row.iter().enumerate() {
                    let t = x as f64 * b[kk * n + j] as f64;
                    s += t;
                    s_abs += t.abs();
                }
                if let Some(bias) = bias {
                    s += bias[j] as f64;
                    s_abs += (bias[j] as f64).abs();
                }
                let o = (p * m + i) * n + j;
                exact[o] = if relu { s.max(0.0) } else { s };
                mag[o] = s_abs;
            }
        }
    }
    (exact, mag)
}

/// Sizes: mostly across several tiles (and odd), sometimes tiny.
fn dim(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![1usize..=8, 9usize..=max]
}

proptest! {
    #![proptest_config(config(40))]

    #[test]
    fn gemm_spans_tiles_and_loops_over_k(
        m in dim(300),
        n in dim(300),
        k in dim(600),
        batch in 1usize..=2,
        b_is_input in any::<bool>(),
        epilogue in 0u8..3,
        opt_level in prop_oneof![Just(0u8), Just(2u8)],
        seed in any::<u64>(),
    ) {
        let mut g = Graph::new();
        let a_shape = if batch == 1 { vec![m, k] } else { vec![batch, m, k] };
        let a = g.add_input("a", TensorType::new(DType::F32, &a_shape));
        let a_vals = values(batch * m * k, seed);
        let b_vals = values(k * n, seed ^ 0x5eed);
        let bias_vals = values(n, seed.wrapping_add(7));
        let mut inputs = HashMap::from([("a".to_string(), Tensor::f32(a_shape.clone(), a_vals.clone()))]);
        let b = if b_is_input {
            inputs.insert("b".into(), Tensor::f32(vec![k, n], b_vals.clone()));
            g.add_input("b", TensorType::new(DType::F32, &[k, n]))
        } else {
            g.add_const("b", Tensor::f32(vec![k, n], b_vals.clone()))
        };
        let mut y = add(&mut g, "mm", Op::MatMul, &[a, b])?;
        if epilogue > 0 {
            let bias = g.add_const("bias", Tensor::f32(vec![n], bias_vals.clone()));
            y = add(&mut g, "bias_add", Op::Binary(BinaryOp::Add), &[y, bias])?;
        }
        if epilogue > 1 {
            y = add(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[y])?;
        }
        g.add_output("y", y);
        let m_ = model(g);
        let gpu = run(&mut session(&m_, opt_level)?, &inputs)?;
        let got = gpu["y"].to_f32();
        let mut want_shape = a_shape.clone();
        *want_shape.last_mut().expect("rank 2 or 3") = n;
        prop_assert_eq!(&gpu["y"].shape, &want_shape);
        let bias = (epilogue > 0).then_some(bias_vals.as_slice());
        let (exact, mag) = gemm_reference(&a_vals, &b_vals, bias, epilogue > 1, (batch, m, k, n));
        // Any summation order of K products and the bias is within γ_{K+2}·Σ|terms| of the
        // exact value (each product and each addition rounds once); ReLU adds no error.
        let gamma = (k + 2) as f64 * U / (1.0 - (k + 2) as f64 * U);
        for (o, (&g_, (&e, &mg))) in got.iter().zip(exact.iter().zip(&mag)).enumerate() {
            let err = (g_ as f64 - e).abs();
            prop_assert!(
                err <= gamma * mg + f64::MIN_POSITIVE,
                "[{}x{}x{} batch {} epilogue {} opt {}] element {}: got {}, exact {}, error {:e} > bound {:e}",
                m, k, n, batch, epilogue, opt_level, o, g_, e, err, gamma * mg
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reductions over thousands of elements

/// Lengths: short, or thousands.
fn reduced_len() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..=64, 1000usize..=5000]
}

proptest! {
    #![proptest_config(config(40))]

    #[test]
    fn long_reductions_match_exact_sums(
        rows in 1usize..=3,
        len in reduced_len(),
        op in 0u8..6,
        along_columns in any::<bool>(),
        opt_level in prop_oneof![Just(0u8), Just(2u8)],
        seed in any::<u64>(),
    ) {
        // x is [rows, len] (reduce axis 1) or [len, rows] (reduce axis 0, strided); LayerNorm
        // normalizes trailing axes, so rows only.
        let along_columns = along_columns && op != 5;
        let shape = if along_columns { vec![len, rows] } else { vec![rows, len] };
        let axis = if along_columns { 0 } else { 1 };
        let x_vals = values(rows * len, seed);
        let at = |r: usize, i: usize| -> f64 {
            (if along_columns { x_vals[i * rows + r] } else { x_vals[r * len + i] }) as f64
        };
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &shape));
        let gamma_vals = values(len, seed ^ 1);
        let beta_vals = values(len, seed ^ 2);
        let y = match op {
            0..=3 => {
                let rop = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min][op as usize];
                add(&mut g, "r", Op::Reduce { op: rop, axes: vec![axis], keep_dims: false }, &[x])?
            }
            4 => add(&mut g, "sm", Op::Softmax { axis, log: false }, &[x])?,
            _ => {
                let s = g.add_const("gamma", Tensor::f32(vec![len], gamma_vals.clone()));
                let b = g.add_const("beta", Tensor::f32(vec![len], beta_vals.clone()));
                add(&mut g, "ln", Op::LayerNorm { axis: 1, epsilon: 1e-5 }, &[x, s, b])?
            }
        };
        g.add_output("y", y);
        let m_ = model(g);
        let inputs = HashMap::from([("x".to_string(), Tensor::f32(shape.clone(), x_vals.clone()))]);
        let gpu = run(&mut session(&m_, opt_level)?, &inputs)?;
        let got = gpu["y"].to_f32();
        let n = len as f64;
        // γ_n: any order of summing n terms is within γ_n·Σ|terms| of the exact sum.
        let gamma = n * U / (1.0 - n * U);
        let mut checks: Vec<(usize, f64, f64)> = Vec::new(); // (flat index, exact, bound)
        for r in 0..rows {
            let xs: Vec<f64> = (0..len).map(|i| at(r, i)).collect();
            let sum: f64 = xs.iter().sum();
            let abs: f64 = xs.iter().map(|v| v.abs()).sum();
            let max = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let min = xs.iter().cloned().fold(f64::INFINITY, f64::min);
            let out = |i: usize| if along_columns { i * rows + r } else { r * len + i };
            match op {
                0 => checks.push((r, sum, gamma * abs)),
                // The sum's bound over n, plus the rounding of the division.
                1 => checks.push((r, sum / n, gamma * abs / n + 2.0 * U * (sum / n).abs())),
                // Max and min are exact.
                2 => checks.push((r, max, 0.0)),
                3 => checks.push((r, min, 0.0)),
                4 => {
                    // exp(x - max) with |x - max| <= 2 is within 7 ULP (3 + 2|x|); the sum of
                    // positive terms adds γ_n relative; the division 2.5 ULP.
                    let z: f64 = xs.iter().map(|v| (v - max).exp()).sum();
                    for (i, v) in xs.iter().enumerate() {
                        let p = (v - max).exp() / z;
                        checks.push((out(i), p, (n + 24.0) * U * p));
                    }
                }
                _ => {
                    // mean within γ_n·mean|x|; the variance's relative error about (n + 4)u, the
                    // inverse square root's half of that plus 2 ULP. With |x| < 1 and σ ≈ 0.58,
                    // |Δŷ| <= (2n + 16)·u·(1 + |ŷ|); scale and shift (|γ|, |β| < 1) add 2 ULP.
                    let mean = sum / n;
                    let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                    let inv = 1.0 / (var + 1e-5f32 as f64).sqrt();
                    for (i, v) in xs.iter().enumerate() {
                        let yhat = (v - mean) * inv;
                        let y = yhat * gamma_vals[i] as f64 + beta_vals[i] as f64;
                        checks.push((out(i), y, (2.0 * n + 16.0) * U * (1.0 + yhat.abs()) + 4.0 * U * y.abs()));
                    }
                }
            }
        }
        for (o, want, bound) in checks {
            let err = (got[o] as f64 - want).abs();
            prop_assert!(
                err <= bound,
                "op {} over {} ({} rows, columns: {}, opt {}): element {}: got {}, exact {}, error {:e} > bound {:e}",
                op, len, rows, along_columns, opt_level, o, got[o], want, err, bound
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Data movement, and integer graphs

/// One data-movement (or, for integer graphs, integer arithmetic) step.
#[derive(Clone, Debug)]
enum Move {
    Transpose(u64),
    Slice(u8, u8, u8, u8),
    Concat(u8, bool),
    Gather(u8, u8, u64),
    Expand(u8),
    /// Integer arithmetic (only in `integer_graphs_are_exact`): op, operand, constant.
    Int(u8, usize, i8),
    /// Integer reduction: op, axis.
    IntReduce(u8, u8),
}

fn movement() -> impl Strategy<Value = Move> {
    prop_oneof![
        any::<u64>().prop_map(Move::Transpose),
        (any::<u8>(), any::<u8>(), any::<u8>(), 1u8..4).prop_map(|(a, s, l, st)| Move::Slice(a, s, l, st)),
        (any::<u8>(), any::<bool>()).prop_map(|(a, f)| Move::Concat(a, f)),
        (any::<u8>(), 1u8..6, any::<u64>()).prop_map(|(a, n, s)| Move::Gather(a, n, s)),
        (1u8..4).prop_map(Move::Expand),
    ]
}

fn int_step() -> impl Strategy<Value = Move> {
    prop_oneof![
        2 => movement(),
        4 => (0u8..9, any::<usize>(), any::<i8>()).prop_map(|(o, a, c)| Move::Int(o, a, c)),
        1 => (0u8..3, any::<u8>()).prop_map(|(o, a)| Move::IntReduce(o, a)),
    ]
}

/// Builds a chain over input `x` of `dtype`; integer steps keep values within ±(1009·2^8).
fn build_moves(dtype: DType, shape: &[usize], steps: &[Move], seed: u64) -> Result<Model, TestCaseError> {
    let mut g = Graph::new();
    let mut vals = vec![g.add_input("x", TensorType::new(dtype, shape))];
    let mut consts = 0usize;
    let mut konst = |g: &mut Graph, t: Tensor| {
        consts += 1;
        g.add_const(&format!("k{consts}"), t)
    };
    for (i, s) in steps.iter().enumerate() {
        let name = format!("m{i}");
        let src = *vals.last().expect("the input");
        let sh = shape_of(&g, src);
        let rank = sh.len();
        let numel: usize = sh.iter().product();
        let added = match *s {
            Move::Transpose(seed) => Some(add(
                &mut g,
                &name,
                Op::Transpose {
                    perm: permutation(rank, seed),
                },
                &[src],
            )?),
            Move::Slice(a, start, len, step) => {
                let axis = a as usize % rank;
                let d = sh[axis] as i64;
                let start = start as i64 % d;
                let end = start + 1 + len as i64 % (d - start);
                let axes = vec![SliceAxis {
                    axis,
                    start,
                    end,
                    step: step as i64,
                }];
                Some(add(&mut g, &name, Op::Slice { axes }, &[src])?)
            }
            Move::Concat(a, flip) if 2 * numel <= 4096 => {
                let axis = a as usize % rank;
                let earlier = vals[vals.len() / 2];
                // Another value of the same shape when there is one, else the value itself.
                let other = if shape_of(&g, earlier) == sh { earlier } else { src };
                let ins = if flip { [other, src] } else { [src, other] };
                Some(add(&mut g, &name, Op::Concat { axis }, &ins)?)
            }
            Move::Concat(..) => None,
            Move::Gather(a, count, s) => {
                let axis = a as usize % rank;
                let d = sh[axis] as i64;
                let idx: Vec<i32> = (0..count as u64)
                    .map(|j| ((s.wrapping_mul(2654435761).wrapping_add(j * 40503) >> 7) as i64 % (2 * d) - d) as i32)
                    .collect();
                let ic = konst(&mut g, Tensor::i32(vec![idx.len()], idx));
                Some(add(&mut g, &name, Op::Gather { axis }, &[src, ic])?)
            }
            Move::Expand(by) if numel * by as usize <= 4096 => {
                // A new leading axis of size `by`.
                let mut target: Vec<Dim> = vec![Dim::c(by as i64)];
                target.extend(sh.iter().map(|&d| Dim::c(d as i64)));
                Some(add(&mut g, &name, Op::Expand { shape: target }, &[src])?)
            }
            Move::Expand(_) => None,
            Move::Int(o, a, c) => {
                let l = src;
                let other = vals[a % vals.len()];
                let r = if shape_of(&g, other) == sh { other } else { l };
                let c = if c == 0 { 3 } else { c as i32 };
                let kc = konst(&mut g, Tensor::i32(vec![], vec![c]));
                let (op, ins) = match o {
                    0 => (Op::Binary(BinaryOp::Add), [l, r]),
                    1 => (Op::Binary(BinaryOp::Sub), [l, r]),
                    2 => (Op::Binary(BinaryOp::Max), [l, r]),
                    3 => (Op::Binary(BinaryOp::Min), [l, r]),
                    // Division and modulo by a non-zero constant (truncating / floored).
                    4 => (Op::Binary(BinaryOp::Div), [l, kc]),
                    5 => (Op::Binary(BinaryOp::Mod), [l, kc]),
                    6 => (Op::Unary(UnaryOp::Neg), [l, l]),
                    7 => (Op::Unary(UnaryOp::Abs), [l, l]),
                    _ => (Op::Binary(BinaryOp::Mul), [l, kc]),
                };
                let arity = op.arity().expect("fixed arity");
                let mut y = add(&mut g, &name, op, &ins[..arity])?;
                if o >= 8 {
                    // Keep products bounded: y mod 1009 (floored).
                    let m = konst(&mut g, Tensor::i32(vec![], vec![1009]));
                    y = add(&mut g, &format!("{name}_mod"), Op::Binary(BinaryOp::Mod), &[y, m])?;
                }
                Some(y)
            }
            Move::IntReduce(o, a) if rank > 1 => {
                let op = [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min][o as usize];
                let axes = vec![a as usize % rank];
                Some(add(
                    &mut g,
                    &name,
                    Op::Reduce {
                        op,
                        axes,
                        keep_dims: false,
                    },
                    &[src],
                )?)
            }
            Move::IntReduce(..) => None,
        };
        if let Some(id) = added {
            vals.push(id);
        }
    }
    let last = *vals.last().expect("the input");
    g.add_output("out", last);
    let _ = seed;
    Ok(model(g))
}

fn int_values(n: usize, seed: u64) -> Vec<i32> {
    values(n, seed).iter().map(|v| (v * 50.0).round() as i32).collect()
}

proptest! {
    #![proptest_config(config(60))]

    #[test]
    fn data_movement_is_exact(
        shape in prop::collection::vec(1usize..8, 1..5),
        steps in prop::collection::vec(movement(), 1..6),
        int in any::<bool>(),
        opt_level in prop_oneof![Just(0u8), Just(2u8)],
        seed in any::<u64>(),
    ) {
        let dtype = if int { DType::I32 } else { DType::F32 };
        let m_ = build_moves(dtype, &shape, &steps, seed)?;
        let n: usize = shape.iter().product();
        let x = if int { Tensor::i32(shape.clone(), int_values(n, seed)) } else { Tensor::f32(shape.clone(), values(n, seed)) };
        let inputs = HashMap::from([("x".to_string(), x)]);
        let reference = interpret(&m_, &inputs)?;
        let gpu = run(&mut session(&m_, opt_level)?, &inputs)?;
        check_outputs(&format!("{dtype:?} opt-level {opt_level}, steps {steps:?}"), &gpu, &reference, true)?;
    }

    #[test]
    fn integer_graphs_are_exact(
        shape in prop::collection::vec(1usize..9, 1..4),
        steps in prop::collection::vec(int_step(), 1..8),
        opt_level in prop_oneof![Just(0u8), Just(2u8)],
        seed in any::<u64>(),
    ) {
        let m_ = build_moves(DType::I32, &shape, &steps, seed)?;
        let n: usize = shape.iter().product();
        let inputs = HashMap::from([("x".to_string(), Tensor::i32(shape.clone(), int_values(n, seed)))]);
        let reference = interpret(&m_, &inputs)?;
        let gpu = run(&mut session(&m_, opt_level)?, &inputs)?;
        check_outputs(&format!("opt-level {opt_level}, steps {steps:?}"), &gpu, &reference, true)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Symbolic dims: one bundle, two sizes

proptest! {
    #![proptest_config(config(25))]

    #[test]
    fn symbolic_dims_run_at_two_sizes(
        width in 1usize..40,
        out_width in 1usize..40,
        ops in prop::collection::vec(0u8..6, 1..5),
        sizes in ((1usize..40, 1usize..20), (1usize..40, 1usize..20)),
        opt_level in prop_oneof![Just(0u8), Just(2u8)],
        seed in any::<u64>(),
    ) {
        // x: [batch, seq, width] with symbolic batch and seq; every op keeps them symbolic.
        let mut g = Graph::new();
        let ty = TensorType { dtype: DType::F32, shape: vec![Dim::sym("batch"), Dim::sym("seq"), Dim::c(width as i64)] };
        let x = g.add_input("x", ty);
        let mut y = x;
        let mut w = width;
        for (i, &o) in ops.iter().enumerate() {
            let name = format!("s{i}");
            y = match o {
                0 => {
                    let wt = g.add_const(&format!("w{i}"), Tensor::f32(vec![w, out_width], values(w * out_width, seed + i as u64)));
                    w = out_width;
                    add(&mut g, &name, Op::MatMul, &[y, wt])?
                }
                1 => add(&mut g, &name, Op::Softmax { axis: 2, log: false }, &[y])?,
                2 => {
                    let s = g.add_const(&format!("g{i}"), Tensor::f32(vec![w], values(w, seed ^ i as u64)));
                    let b = g.add_const(&format!("b{i}"), Tensor::f32(vec![w], values(w, seed ^ 99 ^ i as u64)));
                    add(&mut g, &name, Op::LayerNorm { axis: 2, epsilon: 1e-5 }, &[y, s, b])?
                }
                3 => {
                    let b = g.add_const(&format!("bias{i}"), Tensor::f32(vec![w], values(w, seed + 50 + i as u64)));
                    add(&mut g, &name, Op::Binary(BinaryOp::Add), &[y, b])?
                }
                4 => add(&mut g, &name, Op::Unary(UnaryOp::Tanh), &[y])?,
                _ => add(&mut g, &name, Op::Reduce { op: ReduceOp::Mean, axes: vec![2], keep_dims: true }, &[y])?,
            };
            if o == 5 {
                w = 1;
            }
        }
        g.add_output("y", y);
        let m_ = model(g);
        let mut s = session(&m_, opt_level)?;
        for (k, (batch, seq)) in [sizes.0, sizes.1].into_iter().enumerate() {
            let n = batch * seq * width;
            let inputs = HashMap::from([("x".to_string(), Tensor::f32(vec![batch, seq, width], values(n, seed + k as u64)))]);
            let reference = interpret(&m_, &inputs)?;
            let gpu = run(&mut s, &inputs)?;
            check_outputs(&format!("batch {batch} seq {seq}, ops {ops:?}, opt {opt_level}"), &gpu, &reference, false)?;
        }
    }
}
