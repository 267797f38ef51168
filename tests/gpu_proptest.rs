//! Property test: random graphs of elementwise, broadcast, reduce and matmul ops compiled at
//! opt-levels 0 and 2, run on the GPU (lavapipe in CI), must equal the CPU reference
//! interpreter within relative L2 error 1e-5 (f32).
//!
//! Cases default to 16 (each compiles two bundles and opens two GPU sessions); set
//! `PROPTEST_CASES` for more.

use kiln::compiler::{compile_to_dir, CompileOptions, Model};
use kiln::convert::{rel_l2, to_host};
use kiln::ir::{BinaryOp, DType, Dim, Graph, NodeId, Op, ReduceOp, Tensor, TensorType, UnaryOp};
use kiln::runtime::{Bundle, Session, SessionOptions};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};

/// Binary ops the random graphs draw from.
const BINARY_OPS: [BinaryOp; 5] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Max,
    BinaryOp::Min,
];

/// One step of a random graph recipe; numbers pick operands and attributes.
#[derive(Clone, Debug)]
enum Step {
    Unary(u8, usize),
    Binary(u8, usize, usize),
    BroadcastBinary(u8, usize, u8),
    Reduce(u8, usize, u8, bool),
    MatMul(usize, u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..6, any::<usize>()).prop_map(|(o, a)| Step::Unary(o, a)),
        (0u8..5, any::<usize>(), any::<usize>()).prop_map(|(o, a, b)| Step::Binary(o, a, b)),
        (0u8..5, any::<usize>(), any::<u8>()).prop_map(|(o, a, m)| Step::BroadcastBinary(o, a, m)),
        (0u8..4, any::<usize>(), any::<u8>(), any::<bool>()).prop_map(|(o, a, m, k)| Step::Reduce(o, a, m, k)),
        (any::<usize>(), 1u8..6).prop_map(|(a, n)| Step::MatMul(a, n)),
    ]
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    kiln::demo::pseudo_random(n, seed, 1.0)
}

/// Builds a graph from a recipe. Returns the model and its input tensors.
fn build(shape: &[usize], steps: &[Step], seed: u64) -> (Model, HashMap<String, Tensor>) {
    let mut g = Graph::new();
    let ty = TensorType::new(DType::F32, shape);
    let x = g.add_input("x", ty);
    let mut vals: Vec<NodeId> = vec![x];
    let mut consts = 0u64;
    for (i, s) in steps.iter().enumerate() {
        let name = format!("n{i}");
        let pick = |k: usize| vals[k % vals.len()];
        let shape_of = |g: &Graph, id: NodeId| g.node(id).ty.const_shape().expect("constant shapes");
        let added = match s {
            Step::Unary(o, a) => {
                let u = [
                    UnaryOp::Relu,
                    UnaryOp::Tanh,
                    UnaryOp::Sigmoid,
                    UnaryOp::Neg,
                    UnaryOp::Abs,
                    UnaryOp::Exp,
                ][*o as usize];
                // exp only of bounded values keeps magnitudes sane.
                let src = pick(*a);
                let src = if u == UnaryOp::Exp {
                    g.add(&format!("{name}_t"), Op::Unary(UnaryOp::Tanh), &[src]).ok()
                } else {
                    Some(src)
                };
                src.and_then(|src| g.add(&name, Op::Unary(u), &[src]).ok())
            }
            Step::Binary(o, a, b) => {
                let op = BINARY_OPS[*o as usize];
                g.add(&name, Op::Binary(op), &[pick(*a), pick(*b)]).ok()
            }
            Step::BroadcastBinary(o, a, mask) => {
                let op = BINARY_OPS[*o as usize];
                let src = pick(*a);
                let sh = shape_of(&g, src);
                // A constant whose dims are 1 where the mask bit is set, trailing-aligned, maybe shorter.
                let drop = (*mask as usize >> 4) % (sh.len() + 1);
                let csh: Vec<usize> = sh[drop..]
                    .iter()
                    .enumerate()
                    .map(|(j, &d)| if mask & (1 << j) != 0 { 1 } else { d })
                    .collect();
                consts += 1;
                let c = g.add_const(
                    &format!("c{i}"),
                    Tensor::f32(csh.clone(), values(csh.iter().product(), seed + consts)),
                );
                let (l, r) = if mask & 8 != 0 { (c, src) } else { (src, c) };
                g.add(&name, Op::Binary(op), &[l, r]).ok()
            }
            Step::Reduce(o, a, mask, keep) => {
                let op = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min][*o as usize];
                let src = pick(*a);
                let rank = g.node(src).ty.rank();
                let axes: Vec<usize> = (0..rank).filter(|j| mask & (1 << j) != 0).collect();
                if axes.is_empty() || (!keep && axes.len() == rank) {
                    None
                } else {
                    g.add(
                        &name,
                        Op::Reduce {
                            op,
                            axes,
                            keep_dims: *keep,
                        },
                        &[src],
                    )
                    .ok()
                }
            }
            Step::MatMul(a, n) => {
                let src = pick(*a);
                let sh = shape_of(&g, src);
                let k = *sh.last().unwrap_or(&1);
                if sh.is_empty() {
                    None
                } else {
                    consts += 1;
                    let w = g.add_const(
                        &format!("w{i}"),
                        Tensor::f32(vec![k, *n as usize], values(k * *n as usize, seed + consts)),
                    );
                    g.add(&name, Op::MatMul, &[src, w]).ok()
                }
            }
        };
        if let Some(id) = added {
            vals.push(id);
        }
    }
    // The last value and one earlier intermediate are outputs.
    let last = *vals.last().expect("at least the input");
    g.add_output("out", last);
    if vals.len() > 2 {
        g.add_output("mid", vals[vals.len() / 2]);
    }
    let n: usize = shape.iter().product();
    let inputs = HashMap::from([("x".to_string(), Tensor::f32(shape.to_vec(), values(n, seed)))]);
    (
        Model {
            name: "random".into(),
            graph: g,
            io_dtypes: BTreeMap::new(),
        },
        inputs,
    )
}

/// Relative L2 error with the reference norm floored, so all-zero results compare sanely.
fn error(gpu: &[f32], reference: &[f32]) -> f64 {
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

fn run_case(shape: Vec<usize>, steps: Vec<Step>, seed: u64) -> Result<(), TestCaseError> {
    let (model, inputs) = build(&shape, &steps, seed);
    let reference =
        kiln::ir::interp::evaluate(&model.graph, &inputs).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let host = HashMap::from([("x".to_string(), to_host(&inputs["x"], kiln::abi::ElemType::F32))]);
    for opt_level in [0u8, 2] {
        let dir = tempfile::tempdir().unwrap();
        let opts = CompileOptions {
            opt_level,
            ..Default::default()
        };
        compile_to_dir(&model, &opts, &dir.path().join("b"))
            .map_err(|e| TestCaseError::fail(format!("compile: {e}")))?;
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
            let err = error(&gpu.to_f32(), &r.to_f32());
            prop_assert!(
                err < 1e-5,
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
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(16),
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_graphs_match_the_interpreter(
        shape in prop::collection::vec(1usize..6, 1..4),
        steps in prop::collection::vec(step(), 1..7),
        seed in any::<u64>(),
    ) {
        run_case(shape, steps, seed)?;
    }
}

#[test]
fn symbolic_dim_graph_matches_at_two_sizes() {
    // A fixed graph over a symbolic batch, compiled once and run at two sizes.
    let mut g = Graph::new();
    let x = g.add_input(
        "x",
        TensorType {
            dtype: DType::F32,
            shape: vec![Dim::sym("batch"), Dim::c(7)],
        },
    );
    let w = g.add_const("w", Tensor::f32(vec![7, 5], values(35, 9)));
    let m = g.add("mm", Op::MatMul, &[x, w]).unwrap();
    let s = g.add("sm", Op::Softmax { axis: 1, log: false }, &[m]).unwrap();
    let r = g
        .add(
            "sum",
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: vec![0],
                keep_dims: false,
            },
            &[s],
        )
        .unwrap();
    g.add_output("sm", s);
    g.add_output("sum", r);
    let model = Model {
        name: "sym".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    compile_to_dir(&model, &CompileOptions::default(), &dir.path().join("b")).unwrap();
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let mut session = Session::new(&bundle, &SessionOptions::default()).unwrap();
    for batch in [3usize, 300] {
        let x = Tensor::f32(vec![batch, 7], values(batch * 7, batch as u64));
        let reference =
            kiln::ir::interp::evaluate(&model.graph, &HashMap::from([("x".to_string(), x.clone())])).unwrap();
        let out: HashMap<_, _> = session
            .run(
                "run",
                &HashMap::from([("x".to_string(), to_host(&x, kiln::abi::ElemType::F32))]),
            )
            .unwrap()
            .into_iter()
            .collect();
        for (name, r) in &reference {
            let err = rel_l2(&out[name].to_f32(), &r.to_f32());
            assert!(err < 1e-5, "{name} at batch {batch}: {err:e}");
        }
    }
}
