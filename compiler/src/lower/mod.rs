//! Lowering: graph nodes become kernel drafts, each describing *what* one dispatch computes
//! (an injective scalar expression, a reduction, a row-wise normalization, or a GEMM).
//! Reshapes become views of their input's buffer and cost no dispatch.

pub mod affine;
pub mod anchor;
pub mod defer;
pub mod fuse;
pub mod siblings;

use crate::CompileError;
use kiln_ir::{DType, Dim, Graph, NodeId, Op, ReduceOp, Shape};

pub use kiln_ir::{Access, Expr};

/// Reduction flavours, including arg-reductions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReduceKind {
    /// A plain reduction.
    Plain(ReduceOp),
    /// Index of the max (`true`) or min (`false`); `select_last` breaks ties to the last index.
    Arg {
        /// Max or min.
        max: bool,
        /// Tie breaking.
        select_last: bool,
    },
}

/// What one kernel computes.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelBody {
    /// Every output element is `expr`.
    Injective {
        /// Output shape.
        shape: Shape,
        /// Output dtype.
        dtype: DType,
        /// The scalar expression.
        expr: Expr,
    },
    /// Reduction of input 0 over `axes`; the output is contiguous over the kept axes.
    Reduce {
        /// Input shape.
        in_shape: Shape,
        /// Input dtype.
        dtype: DType,
        /// Reduced axes.
        axes: Vec<usize>,
        /// Kind.
        kind: ReduceKind,
    },
    /// Softmax / log-softmax along `axis` of input 0.
    Softmax {
        /// Shape.
        shape: Shape,
        /// Axis.
        axis: usize,
        /// Log-softmax.
        log: bool,
    },
    /// Layer norm over axes `axis..` of input 0 with full-size scale (input 1) and bias (input 2).
    LayerNorm {
        /// Shape.
        shape: Shape,
        /// First normalized axis.
        axis: usize,
        /// Epsilon.
        epsilon: f32,
        /// RMS norm: no mean subtracted and no bias (input 2 absent).
        rms: bool,
    },
    /// Convolution of input 0 by weights 1 (+ bias 2) as an implicit GEMM per (image, group):
    /// `out[oc, p] = sum_k w[oc, k] * im2col(x)[k, p]`.
    Conv {
        /// x's shape `[N, C, *spatial]`.
        x: Shape,
        /// w's shape `[OC, C/groups, *kernel]`.
        w: Shape,
        /// Output shape.
        out: Shape,
        /// Strides.
        strides: Vec<usize>,
        /// Pads (begin, end).
        pads: Vec<(usize, usize)>,
        /// Dilations.
        dilations: Vec<usize>,
        /// Groups.
        groups: usize,
        /// Whether input 2 is a bias.
        bias: bool,
    },
    /// Top-k indices of input 0 along `axis`.
    TopK {
        /// Input shape.
        shape: Shape,
        /// Input dtype.
        dtype: DType,
        /// Axis.
        axis: usize,
        /// How many.
        k: usize,
        /// Largest first (else smallest).
        largest: bool,
    },
    /// A token drawn from each row of logits (input 0, `[rows, vocab]`) with the sampling
    /// parameters (input 1) and recent ids (input 2, `[window]`) of an [`Op::Sample`].
    Sample {
        /// Rows of logits.
        rows: Dim,
        /// Vocabulary size.
        vocab: Dim,
        /// Recent ids the repetition penalty looks at.
        window: usize,
    },
    /// ScatterND of updates (input 2) into data (input 0) at index rows (input 1).
    Scatter {
        /// Data shape.
        data: Shape,
        /// Indices shape (`[..., m]`).
        indices: Shape,
        /// Element dtype.
        dtype: DType,
        /// Combining rule.
        reduction: kiln_ir::ScatterReduction,
    },
    /// Attention: `softmax(score(Q·K), last axis)·V` per batch, where operand 0 is Q
    /// `[B.., Sq, D]`, operand 1 is K `[B.., D, Sk]` (already transposed), operand 2 is V
    /// `[B.., Sk, Dv]`, and the epilogue (if any) maps each raw score to the softmax input
    /// (scale, mask). D and Dv are constants.
    Attention {
        /// Flattened batch (product of the batch dims).
        batch: Dim,
        /// Query rows.
        sq: Dim,
        /// Keys.
        sk: Dim,
        /// Head dim of Q and K.
        d: usize,
        /// Head dim of V.
        dv: usize,
    },
    /// Batched matmul of inputs 0 and 1 (numpy semantics) into a contiguous output.
    Gemm {
        /// A's shape.
        a: Shape,
        /// B's shape.
        b: Shape,
        /// Element dtype.
        dtype: DType,
    },
    /// `x · Wᵀ` with a packed weight ([`Op::QMatMul`]): input 0 is the f32 activation `x`
    /// (`[.., k]`, read directly), input 1 the u32 words of `W` (`[n, k]` in `block` format);
    /// the output is f32 `[.., n]`. The weight is decoded in registers as it is read.
    QGemm {
        /// The activation's shape.
        x: Shape,
        /// The weight's block type.
        block: kiln_ir::BlockType,
        /// Output features.
        n: usize,
        /// Input features.
        k: usize,
        /// An RMS norm of `x`'s rows fused as prologue, with this epsilon: the product reads
        /// `x / sqrt(mean(x²) + eps) * g` with the scale `g` (`[k]`) as input 2 (a decode
        /// step's norm before its projections; see `anchor::Former::qmatmul_core`).
        norm: Option<f32>,
        /// A gated pair (SwiGLU): `W`'s first `n / 2` rows are a gate's, the rest an up
        /// projection's, and the kernel writes `silu(x · gateᵀ) * (x · upᵀ)`, `[.., n / 2]`
        /// (see `anchor::Former::gated_pair_root`).
        glu: bool,
        /// Input 0 is an [`Op::QuantizeQ8`] stored as [`Q8_BLOCK_WORDS`]-word blocks
        /// ([`q8_packed`]): the GEMV dots W's integers with x's (`dot4I8Packed`).
        xq8: bool,
        /// The GEMV's output rounded to 8-bit integers per block of 32 as it is stored: an
        /// [`Op::QuantizeQ8`] of it fused as epilogue, stored as the quantizer would store it
        /// (see `anchor::Former::quantized_gated_pair`). Each workgroup then owns whole blocks
        /// of outputs (a multiple of 32).
        q8_out: Option<Q8Storage>,
        /// x is input 0's RMS norm (`norm`, scale in input 2) rounded to 8-bit blocks inside
        /// each workgroup before the integer dot products: the activation quantizer between
        /// the norm and this GEMV fused as its prologue (see
        /// `anchor::Former::round_x_inside`).
        quantize_x: bool,
        /// Other kernels' parts (injective or state writes, each a draft over this kernel's
        /// input slots) run by extra workgroups after the GEMV's own: a decode step's K/V
        /// appends moved into the layer's next GEMV ([`defer`]). Their inputs are none of the
        /// GEMV's own.
        tail: Vec<KernelDraft>,
    },
    /// [`Op::QuantizeQ8`] of input 0's rows (one workgroup per row), optionally after an RMS
    /// norm of the row: f32 values on each block's integer grid, or with `packed` the blocks
    /// themselves for integer-dot GEMVs ([`Q8_BLOCK_WORDS`]).
    QuantizeRows {
        /// Rows (the product of the leading dims).
        rows: Dim,
        /// Row length (a multiple of 32).
        k: usize,
        /// An RMS norm of the rows fused as prologue, with this epsilon and the scale `[k]` as
        /// input 1 (see `anchor::Former::quantize_core`).
        norm: Option<f32>,
        /// Stored as blocks ([`q8_packed`]), not as f32.
        packed: bool,
    },
    /// Rows of a packed table ([`Op::QGather`]): input 0 the i32 indices (`rows` of them),
    /// input 1 the u32 words of the `[n, k]` table in `block` format; the output is f32
    /// `[.., k]`, each row decoded as it is read (no dequantized copy of the table).
    QGather {
        /// Number of indices (gathered rows).
        rows: Dim,
        /// The table's block type.
        block: kiln_ir::BlockType,
        /// Rows of the table.
        n: usize,
        /// Row length.
        k: usize,
    },
    /// Writes operand 0 (of shape `shape`) into a persistent state buffer at element offset
    /// `offset` (an [`Op::StateAppend`]); the kernel's output binding is the state buffer.
    StateWrite {
        /// Shape of the written update.
        shape: Shape,
        /// Element dtype.
        dtype: DType,
        /// First element written (rows before the update times the row size).
        offset: Dim,
    },
    /// Several independent injective or state-write kernels of one element count in one
    /// dispatch (horizontal fusion, [`siblings`]): each part is a draft over this kernel's input
    /// slots (its `inputs` are the kernel's) that writes its own output binding, in part
    /// order (see [`KernelDraft::outputs`]). An LLM layer's K and V cache appends are one.
    Parts(Vec<KernelDraft>),
}

/// A kernel before scheduling: which values it reads (binding order) and writes, and what it
/// computes.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelDraft {
    /// Graph node names, for labels and errors.
    pub label: String,
    /// Values read, in binding order.
    pub inputs: Vec<NodeId>,
    /// Value written (the first part's of a [`KernelBody::Parts`] kernel, which writes
    /// [`KernelDraft::outputs`]).
    pub output: NodeId,
    /// What is computed.
    pub body: KernelBody,
    /// Operand expressions of an anchor kernel with fused prologues: operand `i` at
    /// [`Expr::Index`] (a linear index into the operand's logical shape) over the kernel's input
    /// slots. Empty: operand `i` is input slot `i`, read directly.
    pub operands: Vec<Expr>,
    /// Epilogue of an anchor kernel: the stored value as an expression of [`Expr::Core`] (the
    /// computed value) and of input slots at the output element's [`Expr::Index`].
    pub epilogue: Option<Expr>,
}

impl KernelDraft {
    /// A draft whose operands are its input slots, without prologue or epilogue.
    pub fn plain(label: String, inputs: Vec<NodeId>, output: NodeId, body: KernelBody) -> KernelDraft {
        KernelDraft {
            label,
            inputs,
            output,
            body,
            operands: Vec::new(),
            epilogue: None,
        }
    }

    /// Values written, in binding order (after the inputs): `output`, or each part's output for
    /// a kernel of several parts (a GEMV's `output` and then its tail parts').
    pub fn outputs(&self) -> Vec<NodeId> {
        match &self.body {
            KernelBody::Parts(parts) => parts.iter().map(|p| p.output).collect(),
            KernelBody::QGemm { tail, .. } => std::iter::once(self.output)
                .chain(tail.iter().map(|p| p.output))
                .collect(),
            _ => vec![self.output],
        }
    }

    /// Operand `i` as an expression at [`Expr::Index`] (the input slot itself when no
    /// prologue was fused).
    pub fn operand(&self, i: usize) -> Expr {
        self.operands
            .get(i)
            .cloned()
            .unwrap_or_else(|| Expr::LoadIdx(i, Box::new(Expr::Index)))
    }
}

/// Row-major strides of a symbolic shape.
pub fn sym_strides(shape: &[Dim]) -> Vec<Dim> {
    let mut s = vec![Dim::c(1); shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].mul(&shape[i + 1]);
    }
    s
}

/// Strides with which an input of `in_shape` is read at the coordinates of a broadcast output
/// of rank `out_rank` (right aligned; size-1 axes get stride 0).
pub fn broadcast_strides(in_shape: &[Dim], out_rank: usize) -> Vec<Dim> {
    let st = sym_strides(in_shape);
    let mut out = vec![Dim::c(0); out_rank];
    for (i, d) in in_shape.iter().enumerate() {
        if *d != Dim::c(1) {
            out[out_rank - in_shape.len() + i] = st[i].clone();
        }
    }
    out
}

/// The access that reads `in_shape` broadcast into `out_shape`.
pub fn broadcast_access(in_shape: &[Dim], out_shape: &[Dim]) -> Access {
    if in_shape == out_shape {
        Access::Linear
    } else {
        Access::Strided {
            strides: broadcast_strides(in_shape, out_shape.len()),
            offset: Dim::c(0),
        }
    }
}

/// True for ops that become (part of) an injective expression.
pub fn is_elementwise(op: &Op) -> bool {
    matches!(op, Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast(_))
}

/// True for nodes that need no kernel: inputs, constants and reshapes (views).
pub fn is_free(op: &Op) -> bool {
    matches!(op, Op::Input { .. } | Op::Constant(_) | Op::Reshape { .. })
}

/// Words per block of 32 values of an activation stored packed ([`q8_packed`]): the scale `d`
/// and `d` times the sum of the block's integers (f32 bits), then the 32 integers as signed
/// bytes, four per word in element order (word `2 + i` holds values `4i .. 4i + 4`, the first
/// in the low byte).
pub const Q8_BLOCK_WORDS: usize = 10;

/// Most rows of x a packed activation may have: the GEMV kind's (`kiln_schedules` picks a
/// GEMV for at most 8 rows; more rows take the tiled GEMM, which reads f32).
pub const Q8_PACKED_MAX_ROWS: i64 = 8;

/// How an [`Op::QuantizeQ8`] value is stored ([`q8_packed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Q8Storage {
    /// f32 values on each block's integer grid (`q * d`).
    F32,
    /// [`Q8_BLOCK_WORDS`]-word blocks of scale, scaled sum and signed bytes.
    Packed,
}

impl Q8Storage {
    /// The storage of the quantizer node `q` ([`q8_packed`]).
    pub fn of(g: &Graph, q: NodeId) -> Q8Storage {
        if q8_packed(g, q) {
            Q8Storage::Packed
        } else {
            Q8Storage::F32
        }
    }
}

/// Whether the [`Op::QuantizeQ8`] node `q` is stored as blocks of integers and scales
/// ([`Q8_BLOCK_WORDS`]) rather than f32: when it is not a graph output and every user is a
/// GEMV-sized [`Op::QMatMul`] (at most [`Q8_PACKED_MAX_ROWS`] constant rows) of a q4_0, q4_1 or
/// q8_0 weight reading it as the activation. Those GEMVs then take integer dot products
/// (`KernelBody::QGemm::xq8`). The values are the same either way; only the storage differs.
pub fn q8_packed(g: &Graph, q: NodeId) -> bool {
    let node = g.node(q);
    if !matches!(node.op, Op::QuantizeQ8) || g.outputs().iter().any(|o| o.1 == q) {
        return false;
    }
    let shape = &node.ty.shape;
    let rows = Dim::product(&shape[..shape.len().saturating_sub(1)]).as_const();
    if !matches!(rows, Some(r) if (1..=Q8_PACKED_MAX_ROWS).contains(&r)) {
        return false;
    }
    let users = g.users_of(q);
    !users.is_empty()
        && users.iter().all(|&u| {
            let ins = g.inputs_of(u);
            matches!(g.node(u).op, Op::QMatMul { block, .. } if block.has_int8_dot()) && ins[0] == q && ins[1] != q
        })
}

/// Lowers one non-free node to a kernel draft on its own (no fusion).
pub fn lower_node(g: &Graph, id: NodeId) -> Result<KernelDraft, CompileError> {
    let n = g.node(id);
    let ins = g.inputs_of(id);
    let shape = |i: usize| g.node(ins[i]).ty.shape.clone();
    let dt = |i: usize| g.node(ins[i]).ty.dtype;
    let out = &n.ty;
    let inj = |expr: Expr| KernelBody::Injective {
        shape: out.shape.clone(),
        dtype: out.dtype,
        expr,
    };
    let load_bc = |i: usize| Expr::Read(i, Box::new(broadcast_access(&shape(i), &out.shape)));
    let body = match &n.op {
        Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast(_) => {
            let loads: Vec<Expr> = (0..ins.len()).map(load_bc).collect();
            inj(elementwise_expr(
                &n.op,
                loads,
                &(0..ins.len()).map(dt).collect::<Vec<_>>(),
            ))
        }
        Op::Expand { .. } => inj(load_bc(0)),
        Op::Transpose { perm } => {
            let st = sym_strides(&shape(0));
            let strides = perm.iter().map(|&p| st[p].clone()).collect();
            inj(Expr::Read(
                0,
                Box::new(Access::Strided {
                    strides,
                    offset: Dim::c(0),
                }),
            ))
        }
        Op::Slice { axes } => {
            let in_shape = shape(0);
            let st = sym_strides(&in_shape);
            let mut strides = st.clone();
            let mut offset = Dim::c(0);
            for s in axes {
                let start = match in_shape[s.axis].as_const() {
                    Some(d) => Dim::c(kiln_ir::infer::resolve_slice(d, s).0),
                    None if s.start < 0 => in_shape[s.axis].add(&Dim::c(s.start)),
                    None => Dim::c(s.start),
                };
                offset = offset.add(&start.mul(&st[s.axis]));
                strides[s.axis] = st[s.axis].mul(&Dim::c(s.step));
            }
            inj(Expr::Read(0, Box::new(Access::Strided { strides, offset })))
        }
        Op::Concat { axis } => {
            let mut end = Dim::c(0);
            let mut parts = Vec::new();
            for i in 0..ins.len() {
                let s = shape(i);
                let st = sym_strides(&s);
                let start = end.clone();
                end = end.add(&s[*axis]);
                let offset = Dim::c(0).sub(&start.mul(&st[*axis]));
                parts.push((
                    Expr::Read(i, Box::new(Access::Strided { strides: st, offset })),
                    end.clone(),
                ));
            }
            inj(Expr::Concat {
                coord: Box::new(Expr::Coord(*axis)),
                parts,
            })
        }
        Op::Gather { axis } => {
            let (ds, is) = (shape(0), shape(1));
            let dst = sym_strides(&ds);
            let ist = sym_strides(&is);
            let q = is.len();
            // Output coords: [0..axis) data, [axis..axis+q) indices, [axis+q..) data after axis.
            let mut data_strides = vec![Dim::c(0); out.rank()];
            let mut idx_strides = vec![Dim::c(0); out.rank()];
            data_strides[..*axis].clone_from_slice(&dst[..*axis]);
            idx_strides[*axis..axis + q].clone_from_slice(&ist);
            for a in axis + 1..ds.len() {
                data_strides[a + q - 1] = dst[a].clone();
            }
            let index = Expr::Read(
                1,
                Box::new(Access::Strided {
                    strides: idx_strides,
                    offset: Dim::c(0),
                }),
            );
            let index = if dt(1) == DType::I32 {
                index
            } else {
                Expr::Cast(Box::new(index), dt(1), DType::I32)
            };
            inj(Expr::Read(
                0,
                Box::new(Access::Gathered {
                    strides: data_strides,
                    index: Box::new(index),
                    axis_len: ds[*axis].clone(),
                    axis_stride: dst[*axis].clone(),
                }),
            ))
        }
        Op::Reduce { op, axes, .. } => KernelBody::Reduce {
            in_shape: shape(0),
            dtype: dt(0),
            axes: axes.clone(),
            kind: ReduceKind::Plain(*op),
        },
        Op::ArgReduce {
            max, axis, select_last, ..
        } => KernelBody::Reduce {
            in_shape: shape(0),
            dtype: dt(0),
            axes: vec![*axis],
            kind: ReduceKind::Arg {
                max: *max,
                select_last: *select_last,
            },
        },
        Op::Softmax { axis, log } => KernelBody::Softmax {
            shape: shape(0),
            axis: *axis,
            log: *log,
        },
        Op::LayerNorm { axis, epsilon } | Op::RmsNorm { axis, epsilon } => {
            let norm: Shape = out.shape[*axis..].to_vec();
            for i in 1..ins.len() {
                if shape(i) != norm {
                    return Err(CompileError::Unsupported {
                        node: n.name.clone(),
                        op: n.op.name(),
                        msg: format!(
                            "scale/bias must have the normalized shape [{}] (the optimizer expands them first)",
                            norm.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                        ),
                    });
                }
            }
            KernelBody::LayerNorm {
                shape: shape(0),
                axis: *axis,
                epsilon: *epsilon,
                rms: matches!(n.op, Op::RmsNorm { .. }),
            }
        }
        Op::MatMul => KernelBody::Gemm {
            a: shape(0),
            b: shape(1),
            dtype: dt(0),
        },
        Op::Conv {
            strides,
            pads,
            dilations,
            groups,
        } => KernelBody::Conv {
            x: shape(0),
            w: shape(1),
            out: out.shape.clone(),
            strides: strides.clone(),
            pads: pads.clone(),
            dilations: dilations.clone(),
            groups: *groups,
            bias: ins.len() == 3,
        },
        Op::TopK { k, axis, largest } => KernelBody::TopK {
            shape: shape(0),
            dtype: dt(0),
            axis: *axis,
            k: *k,
            largest: *largest,
        },
        Op::Sample => {
            let (l, r) = (shape(0), shape(2));
            KernelBody::Sample {
                rows: l[0].clone(),
                vocab: l[1].clone(),
                window: r[0].as_const().expect("inference made the window constant") as usize,
            }
        }
        Op::ScatterNd { reduction } => {
            if dt(1) != DType::I32 {
                return Err(CompileError::Unsupported {
                    node: n.name.clone(),
                    op: n.op.name(),
                    msg: format!("indices must be i32 (got {})", dt(1)),
                });
            }
            KernelBody::Scatter {
                data: shape(0),
                indices: shape(1),
                dtype: dt(0),
                reduction: *reduction,
            }
        }
        Op::Compute { expr, .. } => {
            let shapes: Vec<Shape> = (0..ins.len()).map(shape).collect();
            inj(bind_loads(expr, &shapes))
        }
        Op::QGather { block, n, k } => KernelBody::QGather {
            rows: Dim::product(&shape(0)),
            block: *block,
            n: *n,
            k: *k,
        },
        Op::QMatMul { block, n, k } => KernelBody::QGemm {
            x: shape(0),
            block: *block,
            n: *n,
            k: *k,
            norm: None,
            glu: false,
            xq8: q8_packed(g, ins[0]),
            q8_out: None,
            quantize_x: false,
            tail: Vec::new(),
        },
        Op::QuantizeQ8 => {
            let x = shape(0);
            let k = x.last().and_then(Dim::as_const).expect("inference checked K") as usize;
            KernelBody::QuantizeRows {
                rows: Dim::product(&x[..x.len() - 1]),
                k,
                norm: None,
                packed: q8_packed(g, id),
            }
        }
        Op::StateAppend {
            state_shape, offset, ..
        } => KernelBody::StateWrite {
            shape: shape(0),
            dtype: dt(0),
            offset: offset.mul(&Dim::c(state_shape[1..].iter().product::<usize>() as i64)),
        },
        Op::Input { .. } | Op::Constant(_) | Op::Reshape { .. } => {
            unreachable!("free nodes are not lowered to kernels")
        }
    };
    Ok(KernelDraft::plain(n.name.clone(), ins, id, body))
}

/// The expression of an elementwise op applied to operand expressions.
pub fn elementwise_expr(op: &Op, mut args: Vec<Expr>, dtypes: &[DType]) -> Expr {
    match op {
        Op::Unary(u) => Expr::Unary(*u, Box::new(args.remove(0)), dtypes[0]),
        Op::Binary(b) => {
            let rhs = args.remove(1);
            Expr::Binary(*b, Box::new(args.remove(0)), Box::new(rhs), dtypes[0])
        }
        Op::Where => {
            let b = args.remove(2);
            let a = args.remove(1);
            Expr::Select(Box::new(args.remove(0)), Box::new(a), Box::new(b))
        }
        Op::Cast(to) => Expr::Cast(Box::new(args.remove(0)), dtypes[0], *to),
        other => unreachable!("{} is not elementwise", other.name()),
    }
}

/// Turns a graph op's expression into a kernel expression over the op's inputs: each
/// graph-level load of input `i` becomes a load of kernel slot `i` with that input's shape.
pub fn bind_loads(e: &Expr, shapes: &[Shape]) -> Expr {
    e.rewrite(&mut |n| match n {
        Expr::Load { input, index } => Expr::LoadAt(input, index, shapes[input].clone()),
        n => n,
    })
}
