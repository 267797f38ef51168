//! GPU vs interpreter for the anchor and tensor-expression ops: convolution (implicit GEMM) in
//! its variants, and `Compute` expressions such as padding, tiling and masks.

use kiln::compiler::{compile_to_dir, CompileOptions, Model};
use kiln::convert::{rel_l2, to_host};
use kiln::ir::{BinaryOp, DType, Dim, Expr, Graph, NodeId, Op, Tensor, TensorType};
use kiln::runtime::{Bundle, Session, SessionOptions};
use kiln::schedules::tuning::TuningDb;
use kiln::schedules::{DeviceLimits, GemmParams, Schedule};
use std::collections::{BTreeMap, HashMap};

fn values(n: usize, seed: u64) -> Vec<f32> {
    kiln::demo::pseudo_random(n, seed, 1.0)
}

/// Compiles a one-output graph, runs it on the GPU with `x` and checks it against the
/// interpreter (relative L2 < 1e-5). Returns the reference output.
fn check(g: Graph, x: Tensor) -> Tensor {
    check_with(g, x, CompileOptions::default())
}

/// [`check`] under `opts` (e.g. a tuning record forcing a schedule).
fn check_with(g: Graph, x: Tensor, opts: CompileOptions) -> Tensor {
    let model = Model {
        name: "op".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    };
    let inputs = HashMap::from([("x".to_string(), x.clone())]);
    let reference = kiln::ir::interp::evaluate(&model.graph, &inputs).expect("interpreter");
    let dir = tempfile::tempdir().unwrap();
    compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap_or_else(|e| panic!("{e}"));
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let mut s = Session::new(&bundle, &SessionOptions::default()).unwrap();
    let out: HashMap<_, _> = s
        .run(
            "run",
            &HashMap::from([("x".to_string(), to_host(&x, kiln::abi::ElemType::F32))]),
        )
        .unwrap()
        .into_iter()
        .collect();
    let r = &reference["y"];
    assert_eq!(out["y"].shape, r.shape);
    let err = rel_l2(&out["y"].to_f32(), &r.to_f32());
    assert!(err < 1e-5, "relative L2 error {err:e}");
    r.clone()
}

fn conv_graph(
    x: &[usize],
    w: &[usize],
    strides: Vec<usize>,
    pads: Vec<(usize, usize)>,
    dil: Vec<usize>,
    groups: usize,
    bias: bool,
) -> Graph {
    let mut g = Graph::new();
    let xi = g.add_input("x", TensorType::new(DType::F32, x));
    let wn: usize = w.iter().product();
    let wi = g.add_const("w", Tensor::f32(w.to_vec(), values(wn, 7)));
    let mut ins: Vec<NodeId> = vec![xi, wi];
    if bias {
        ins.push(g.add_const("b", Tensor::f32(vec![w[0]], values(w[0], 8))));
    }
    let y = g
        .add(
            "conv",
            Op::Conv {
                strides,
                pads,
                dilations: dil,
                groups,
            },
            &ins,
        )
        .unwrap();
    g.add_output("y", y);
    g
}

#[test]
fn conv_interpreter_matches_hand_computed_windows() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[1, 1, 3, 3]));
    let w = g.add_const("w", Tensor::f32(vec![1, 1, 2, 2], vec![1.0; 4]));
    let y = g
        .add(
            "conv",
            Op::Conv {
                strides: vec![1, 1],
                pads: vec![(0, 0); 2],
                dilations: vec![1, 1],
                groups: 1,
            },
            &[x, w],
        )
        .unwrap();
    g.add_output("y", y);
    let x = Tensor::f32(vec![1, 1, 3, 3], (1..=9).map(|v| v as f32).collect());
    let r = check(g, x);
    assert_eq!(r.to_f32(), vec![12.0, 16.0, 24.0, 28.0]);
}

/// x shape, w shape, strides, pads, dilations, groups, bias.
type ConvCase = (
    Vec<usize>,
    Vec<usize>,
    Vec<usize>,
    Vec<(usize, usize)>,
    Vec<usize>,
    usize,
    bool,
);

#[test]
fn conv_variants_match_the_interpreter() {
    let n = |s: &[usize]| s.iter().product::<usize>();
    let cases: Vec<ConvCase> = vec![
        (
            vec![2, 3, 9, 11],
            vec![8, 3, 3, 3],
            vec![1, 1],
            vec![(1, 1), (1, 1)],
            vec![1, 1],
            1,
            true,
        ),
        (
            vec![1, 4, 16, 16],
            vec![6, 2, 3, 3],
            vec![2, 2],
            vec![(1, 0), (0, 1)],
            vec![1, 1],
            2,
            false,
        ),
        (
            vec![1, 8, 10, 10],
            vec![8, 1, 3, 3],
            vec![1, 1],
            vec![(2, 2), (2, 2)],
            vec![2, 2],
            8,
            true,
        ),
        (vec![2, 5, 20], vec![7, 5, 4], vec![3], vec![(2, 1)], vec![1], 1, true),
        (
            vec![1, 16, 7, 7],
            vec![32, 16, 1, 1],
            vec![1, 1],
            vec![(0, 0), (0, 0)],
            vec![1, 1],
            1,
            true,
        ),
    ];
    for (x, w, s, p, d, g, b) in cases {
        let graph = conv_graph(&x, &w, s, p, d, g, b);
        check(graph, Tensor::f32(x.clone(), values(n(&x), 3)));
    }
}

/// The implicit-GEMM convolution under tiles forced by a tuning record (the tuner may pick
/// any of them): the single and double-buffered 8x8 tiles and the wide 8x16 / 16x8 ones, whose
/// im2col reads go through registers one K-step ahead. K = 5 x 3 x 3 = 45 is not a multiple of
/// bk, M = 20 and N = 9 x 11 are ragged against every block, and the batch has two images.
#[test]
fn conv_under_forced_gemm_tiles_matches_the_interpreter() {
    let (x, w) = (vec![2, 5, 9, 11], vec![20, 5, 3, 3]);
    let key = "conv:x=2x5x9x11,w=20x5x3x3,s=[1, 1],g=1";
    for p in [
        GemmParams::new(128, 128, 16, 8, 8),
        GemmParams::new(128, 128, 16, 8, 8).double_buffered(),
        GemmParams::new(128, 128, 16, 8, 16),
        GemmParams::new(256, 128, 8, 16, 8),
        GemmParams::new(64, 64, 32, 4, 4),
    ] {
        let db = TuningDb::forcing(key, Schedule::Gemm(p));
        let opts = CompileOptions {
            target: DeviceLimits::desktop(),
            tuning: Some(db),
            ..Default::default()
        };
        let graph = conv_graph(&x, &w, vec![1, 1], vec![(1, 1), (1, 1)], vec![1, 1], 1, true);
        // The record must be the one used: the kernel's WGSL names the schedule.
        let dir = tempfile::tempdir().unwrap();
        let model = Model {
            name: "conv".into(),
            graph: graph.clone(),
            io_dtypes: BTreeMap::new(),
        };
        let m = compile_to_dir(&model, &opts, &dir.path().join("b")).unwrap();
        assert!(
            m.kernels.iter().any(|k| k.schedule == Schedule::Gemm(p).to_string()),
            "{p:?} not used: {:?}",
            m.kernels.iter().map(|k| &k.schedule).collect::<Vec<_>>()
        );
        check_with(graph, Tensor::f32(x.clone(), values(2 * 5 * 9 * 11, 3)), opts);
    }
}

/// The channel-blocked implicit GEMM (channels per group a multiple of bk, vec4 tiles forced by
/// a tuning record): K walked as (channel block, kernel position, channel), each load's pixel
/// and base address computed before the K loop. Cases: ragged M and N against every block, two
/// images, padding on every edge (asymmetric too), stride 2 and 3, dilation 2, two groups, a
/// 1-D and a 1x1 convolution, a tile of fewer threads than B's columns (a pixel per load), and
/// spatial sizes that are not multiples of 4.
#[test]
fn conv_channel_blocked_loads_match_the_interpreter() {
    let t = |bm, bn, bk, tm, tn| GemmParams::new(bm, bn, bk, tm, tn);
    let square = vec![(1, 1), (1, 1)];
    let cases: Vec<(ConvCase, Vec<GemmParams>)> = vec![
        (
            (
                vec![2, 16, 9, 11],
                vec![20, 16, 3, 3],
                vec![1, 1],
                square.clone(),
                vec![1, 1],
                1,
                true,
            ),
            vec![
                t(128, 128, 16, 8, 8),
                t(128, 128, 16, 8, 8).double_buffered(),
                t(64, 64, 16, 4, 4),
                t(128, 128, 16, 8, 16),
                t(64, 64, 8, 4, 4),
                t(32, 256, 8, 8, 16),
            ],
        ),
        (
            (
                vec![1, 32, 13, 10],
                vec![24, 16, 3, 3],
                vec![2, 2],
                vec![(1, 0), (0, 2)],
                vec![1, 1],
                2,
                true,
            ),
            vec![t(64, 64, 16, 4, 4), t(128, 64, 16, 4, 8)],
        ),
        (
            (
                vec![1, 16, 10, 10],
                vec![8, 16, 3, 3],
                vec![1, 1],
                vec![(2, 2), (2, 2)],
                vec![2, 2],
                1,
                false,
            ),
            vec![t(64, 64, 16, 4, 4)],
        ),
        (
            (vec![2, 16, 21], vec![7, 16, 5], vec![3], vec![(2, 1)], vec![1], 1, true),
            vec![t(64, 64, 16, 4, 4), t(32, 64, 16, 4, 4)],
        ),
        (
            (
                vec![1, 32, 7, 5],
                vec![10, 32, 1, 1],
                vec![1, 1],
                vec![(0, 0), (0, 0)],
                vec![1, 1],
                1,
                true,
            ),
            vec![t(64, 64, 32, 4, 4), t(64, 64, 16, 4, 4)],
        ),
    ];
    let dims = |v: &[usize]| v.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x");
    for ((x, w, s, p, d, g, b), tiles) in cases {
        let key = format!("conv:x={},w={},s={s:?},g={g}", dims(&x), dims(&w));
        for tile in tiles {
            let db = TuningDb::forcing(&key, Schedule::Gemm(tile));
            let opts = CompileOptions {
                target: DeviceLimits::desktop(),
                tuning: Some(db),
                ..Default::default()
            };
            let graph = conv_graph(&x, &w, s.clone(), p.clone(), d.clone(), g, b);
            let model = Model {
                name: "conv".into(),
                graph: graph.clone(),
                io_dtypes: BTreeMap::new(),
            };
            let bundle = kiln::compiler::compile(&model, &opts).unwrap_or_else(|e| panic!("{tile:?}: {e}"));
            assert!(
                bundle
                    .kernel_sources
                    .iter()
                    .any(|(_, src)| src.contains("let cv_bx0 = ")),
                "{key} under {tile:?}: not the channel-blocked loads"
            );
            let n: usize = x.iter().product();
            check_with(graph, Tensor::f32(x.clone(), values(n, 3)), opts);
        }
    }
}

/// Convolutions with one input channel per group take the direct kernel (a thread per output
/// element): depthwise with bias, a depth multiplier of 2 with stride 2 and asymmetric
/// padding, a dilated 5x5 window, a 1-D one, and a single-channel input (groups 1).
#[test]
fn conv_direct_kernel_matches_the_interpreter() {
    let n = |s: &[usize]| s.iter().product::<usize>();
    let cases: Vec<ConvCase> = vec![
        (
            vec![2, 8, 10, 9],
            vec![8, 1, 3, 3],
            vec![1, 1],
            vec![(1, 1), (1, 1)],
            vec![1, 1],
            8,
            true,
        ),
        (
            vec![1, 6, 11, 12],
            vec![12, 1, 3, 3],
            vec![2, 2],
            vec![(1, 0), (2, 1)],
            vec![1, 1],
            6,
            false,
        ),
        (
            vec![1, 4, 9, 9],
            vec![4, 1, 5, 5],
            vec![1, 1],
            vec![(4, 4), (4, 4)],
            vec![2, 2],
            4,
            true,
        ),
        (vec![2, 5, 17], vec![5, 1, 4], vec![2], vec![(2, 1)], vec![1], 5, true),
        (
            vec![1, 1, 8, 7],
            vec![4, 1, 3, 3],
            vec![1, 1],
            vec![(1, 1), (1, 1)],
            vec![1, 1],
            1,
            true,
        ),
    ];
    for (x, w, s, p, d, g, b) in cases {
        let graph = conv_graph(&x, &w, s, p, d, g, b);
        let model = Model {
            name: "conv".into(),
            graph: graph.clone(),
            io_dtypes: BTreeMap::new(),
        };
        let bundle = kiln::compiler::compile(&model, &CompileOptions::default()).unwrap();
        assert!(
            bundle
                .kernel_sources
                .iter()
                .all(|(_, src)| src.starts_with("// Kiln injective kernel")),
            "{x:?} {w:?}: not the direct kernel"
        );
        check(graph, Tensor::f32(x.clone(), values(n(&x), 3)));
    }
    // A fused activation reads the biased value.
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[1, 6, 7, 7]));
    let w = g.add_const("w", Tensor::f32(vec![6, 1, 3, 3], values(54, 7)));
    let b = g.add_const("b", Tensor::f32(vec![6], values(6, 8)));
    let op = Op::Conv {
        strides: vec![1, 1],
        pads: vec![(1, 1); 2],
        dilations: vec![1, 1],
        groups: 6,
    };
    let c = g.add("conv", op, &[x, w, b]).unwrap();
    let y = g.add("relu", Op::Unary(kiln::ir::UnaryOp::Relu), &[c]).unwrap();
    g.add_output("y", y);
    check(g, Tensor::f32(vec![1, 6, 7, 7], values(294, 3)));
}

#[test]
fn compute_expressions_match_the_interpreter() {
    // Reflect padding of the last axis by 2 on each side, a lower-triangular mask and a tile,
    // each as one tensor expression.
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[3, 5]));
    let c1 = Expr::Coord(1).sub(Expr::int(2));
    let reflected = Expr::select(
        c1.clone().cmp(BinaryOp::Less, Expr::int(0), DType::I32),
        Expr::int(0).sub(c1.clone()),
        Expr::select(
            c1.clone().cmp(BinaryOp::GreaterEqual, Expr::int(5), DType::I32),
            Expr::int(8).sub(c1.clone()),
            c1,
        ),
    );
    let pad = g
        .add(
            "pad",
            Op::Compute {
                shape: vec![Dim::c(3), Dim::c(9)],
                dtype: DType::F32,
                expr: Expr::Load {
                    input: 0,
                    index: vec![Expr::Coord(0), reflected],
                },
                name: "Pad".into(),
            },
            &[x],
        )
        .unwrap();
    let tril = Expr::select(
        Expr::Coord(1).cmp(BinaryOp::LessEqual, Expr::Coord(0).add(Expr::int(4)), DType::I32),
        Expr::Load {
            input: 0,
            index: vec![Expr::Coord(0), Expr::Coord(1)],
        },
        Expr::Lit(0.0, DType::F32),
    );
    let masked = g
        .add(
            "tril",
            Op::Compute {
                shape: vec![Dim::c(3), Dim::c(9)],
                dtype: DType::F32,
                expr: tril,
                name: "Trilu".into(),
            },
            &[pad],
        )
        .unwrap();
    let tile = Expr::Load {
        input: 0,
        index: vec![Expr::Coord(0).rem(Expr::int(3)), Expr::Coord(1)],
    };
    let y = g
        .add(
            "tile",
            Op::Compute {
                shape: vec![Dim::c(6), Dim::c(9)],
                dtype: DType::F32,
                expr: tile,
                name: "Tile".into(),
            },
            &[masked],
        )
        .unwrap();
    g.add_output("y", y);
    let r = check(g, Tensor::f32(vec![3, 5], (0..15).map(|v| v as f32).collect()));
    // Row 0 of pad(x) is [2, 1, 0, 1, 2, 3, 4, 3, 2]; the mask keeps columns <= 4.
    assert_eq!(&r.to_f32()[..9], &[2.0, 1.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(&r.to_f32()[27..36], &r.to_f32()[..9]);
}

#[test]
fn large_gemm_with_ragged_edges_matches_the_interpreter() {
    // Big enough for the 128x128 block schedule, with M, N, K not multiples of any tile.
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[600, 130]));
    let w = g.add_const("w", Tensor::f32(vec![130, 530], values(130 * 530, 11)));
    let y = g.add("mm", Op::MatMul, &[x, w]).unwrap();
    g.add_output("y", y);
    check(g, Tensor::f32(vec![600, 130], values(600 * 130, 12)));
}

#[test]
fn top_k_and_scatter_nd_match_the_interpreter() {
    // Top-3 indices along the middle axis of a tensor with ties (values rounded to 0.25).
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[2, 9, 3]));
    let idx = g
        .add(
            "topk",
            Op::TopK {
                k: 3,
                axis: 1,
                largest: true,
            },
            &[x],
        )
        .unwrap();
    let as_f = g.add("cast", Op::Cast(DType::F32), &[idx]).unwrap();
    g.add_output("y", as_f);
    let vals: Vec<f32> = values(54, 21).iter().map(|v| (v * 4.0).round() / 4.0).collect();
    let r = check(g, Tensor::f32(vec![2, 9, 3], vals));
    assert_eq!(r.shape, vec![2, 3, 3]);

    // ScatterND with duplicate index rows (the last update wins) into a 4x5 matrix.
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[4, 5]));
    let ind = g.add_const("ind", Tensor::i32(vec![3, 1], vec![2, -1, 2]));
    let upd = g.add_const("upd", Tensor::f32(vec![3, 5], (0..15).map(|v| v as f32).collect()));
    let y = g
        .add(
            "scatter",
            Op::ScatterNd {
                reduction: kiln::ir::ScatterReduction::None,
            },
            &[x, ind, upd],
        )
        .unwrap();
    g.add_output("y", y);
    let r = check(g, Tensor::f32(vec![4, 5], vec![-1.0; 20]));
    assert_eq!(
        &r.to_f32()[10..20],
        &[10.0, 11.0, 12.0, 13.0, 14.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    );
}

/// Top-k with ties against hand-computed indices (ties go to the lower index): GPU and
/// interpreter both, so neither is its own reference.
#[test]
fn top_k_ties_match_hand_computed_indices() {
    // x[0, t, i] for t = 0..6 (the axis) and i = 0..2:
    //   column 0: 1  3  3  2  3  0      column 1: -1 -1  5 -1  5  2
    let x = Tensor::f32(
        vec![1, 6, 2],
        vec![1.0, -1.0, 3.0, -1.0, 3.0, 5.0, 2.0, -1.0, 3.0, 5.0, 0.0, 2.0],
    );
    for (largest, want) in [
        // Largest 3: column 0 the three 3s at 1, 2, 4; column 1 the 5s at 2, 4, then 2 at 5.
        (true, [1.0, 2.0, 2.0, 4.0, 4.0, 5.0]),
        // Smallest 3: column 0 0 at 5, 1 at 0, 2 at 3; column 1 the three -1s at 0, 1, 3.
        (false, [5.0, 0.0, 0.0, 1.0, 3.0, 3.0]),
    ] {
        let mut g = Graph::new();
        let xi = g.add_input("x", TensorType::new(DType::F32, &[1, 6, 2]));
        let idx = g.add("topk", Op::TopK { k: 3, axis: 1, largest }, &[xi]).unwrap();
        let as_f = g.add("cast", Op::Cast(DType::F32), &[idx]).unwrap();
        g.add_output("y", as_f);
        // `check` holds the GPU within 1e-5 relative L2 of the interpreter; with indices this
        // small one wrong index is an error of about 0.1, so both equal `want`.
        let r = check(g, x.clone());
        assert_eq!(r.shape, vec![1, 3, 2]);
        assert_eq!(r.to_f32(), want, "largest = {largest}");
    }
}

/// RMSNorm (the layer-norm template without the mean pass and the bias) with rows cached in
/// registers (384), streamed (4100 > 16 x 256) and short (7), against the interpreter
/// (relative L2 < 1e-5: one mean of squares and one inverse square root per row).
#[test]
fn rms_norm_rows_cached_and_streamed_match_the_interpreter() {
    for (rows, len) in [(5usize, 384usize), (4, 1000), (2, 4096), (2, 4100), (3, 7)] {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[rows, len]));
        let w = g.add_const("w", Tensor::f32(vec![len], values(len, 9)));
        let y = g.add("rms", Op::RmsNorm { axis: 1, epsilon: 1e-6 }, &[x, w]).unwrap();
        g.add_output("y", y);
        let xin = Tensor::f32(
            vec![rows, len],
            values(rows * len, 10).iter().map(|v| v * 3.0 + 1.0).collect(),
        );
        check(g, xin);
    }
}

/// Mean pooling whose division is the reduction's epilogue, plus embeddings gathered by a
/// range and a fill constant (computed in the kernel, not loaded): GPU = interpreter.
#[test]
fn reduction_epilogue_and_index_constants_match_the_interpreter() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, &[2, 5, 4]));
    let table = g.add_const("table", Tensor::f32(vec![8, 4], values(32, 3)));
    let types = g.add_const("types", Tensor::f32(vec![2, 4], values(8, 4)));
    let pos = g.add_const(
        "pos",
        Tensor::from_f64(DType::I32, vec![1, 5], &[1.0, 2.0, 3.0, 4.0, 5.0]),
    );
    let zeros = g.add_const("zeros", Tensor::from_f64(DType::I32, vec![1, 5], &[1.0; 5]));
    let p = g.add("pos_emb", Op::Gather { axis: 0 }, &[table, pos]).unwrap();
    let t = g.add("type_emb", Op::Gather { axis: 0 }, &[types, zeros]).unwrap();
    let e = g.add("emb", Op::Binary(BinaryOp::Add), &[p, t]).unwrap();
    let h = g.add("h", Op::Binary(BinaryOp::Mul), &[x, e]).unwrap();
    let sum = Op::Reduce {
        op: kiln::ir::ReduceOp::Sum,
        axes: vec![1],
        keep_dims: false,
    };
    let s = g.add("sum", sum.clone(), &[h]).unwrap();
    let c = g.add("count", sum, &[x]).unwrap();
    let a = g.add("abs", Op::Unary(kiln::ir::UnaryOp::Abs), &[c]).unwrap();
    let one = g.add_const("one", Tensor::f32(vec![], vec![1.0]));
    let d = g.add("den", Op::Binary(BinaryOp::Add), &[a, one]).unwrap();
    let y = g.add("div", Op::Binary(BinaryOp::Div), &[s, d]).unwrap();
    g.add_output("y", y);
    check(g, Tensor::f32(vec![2, 5, 4], values(40, 5)));
}
