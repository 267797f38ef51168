//! Kernel formation at opt-level 2: injective ops fuse into whatever consumes them, including
//! anchor kernels.
//!
//! Every injective op (elementwise, cast, where, broadcast, transpose, slice, gather, concat,
//! `Compute`, reshape) is an expression of its output's linear index. Inlining a producer into a
//! consumer substitutes the consumer's load index into the producer's expression
//! ([`Expr::Index`] becomes the load index, coordinates become [`Expr::CoordOf`] of it), so
//! chains of any injective ops, of any shapes, collapse into one expression. Kernels are formed
//! from the graph's consumers backwards:
//!
//! - an injective root absorbs its injective producers; when the result reads a MatMul whose only
//!   user it is, at the identity index and with the MatMul's shape, the MatMul becomes the
//!   kernel's *core* and the expression its *epilogue* (bias, activation, residual, scale, mask);
//! - a GEMM (MatMul, or the core of an epilogue) absorbs data-movement producers (reshape,
//!   transpose, slice, expand, gather, concat, cast) into its operand loads: the *prologues*;
//! - reductions, softmax and layer norm absorb any injective producers of their input.
//!
//! A producer is inlined when the consumer is its only user, or when it is cheap to recompute
//! (a few elementwise or data-movement ops over at most two intermediate tensors: the attention
//! mask, the pooling mask) and so may be duplicated into every user. It is materialized (gets its own kernel) when it is a graph
//! output or when some user did not inline it. A kernel that would bind more storage buffers
//! than the target allows is formed again with less fusion.

use super::{lower_node, sym_strides, Access, Expr, KernelBody, KernelDraft, Q8Storage};
use crate::CompileError;
use kiln_ir::{BinaryOp, DType, Dim, Graph, NodeId, Op};
use std::collections::{HashMap, HashSet};

/// Most injective ancestors a producer may have and still be duplicated into several users.
const MAX_DUPLICATED_CONE: usize = 8;

/// Most intermediate tensors (not constants) a duplicated producer may read. Each user that
/// recomputes the producer reads all of them, so they all stay live until its last user: a
/// residual stream's running sum duplicated into every norm would keep each layer's output
/// alive to the end of the model (and re-read it in every later layer).
const MAX_DUPLICATED_SOURCES: usize = 2;

/// Largest head dim the attention kernel holds in registers (one query row per thread).
pub const MAX_ATTENTION_HEAD_DIM: usize = 64;

/// Fewest keys (a constant count) for which prefill attention is one flash-attention kernel at
/// opt-level 2; a symbolic count (an LLM prefill over its context) always is, which also keeps
/// the scores (heads x rows x keys) out of memory. Below it the two GEMMs and the softmax stay
/// separate. On the H200 the flash kernel (one thread per row and key split) took 0.078 ms at
/// MiniLM-L3's 32 x 12 x 128 x 32 against 0.188 ms unfused, and 0.024 vs 0.041 ms at batch 1
/// (docs/performance.md, sixth session); shorter sequences were not measured.
pub const MIN_FLASH_KEYS: usize = 128;

/// Most query rows per batch for which attention takes the decode schedule (a decode step:
/// the query heads of one KV head for one new token, 1 to 8 in Llama-family models); with
/// `attention` off (opt-level 2), [`form_kernels`] fuses more rows only over at least
/// [`MIN_FLASH_KEYS`] keys or a symbolic key count. More rows take flash attention.
///
/// Such a kernel is rendered with the decode schedule (`templates/attention_decode.wgsl`): the
/// runtime keys are split over workgroups, each scores its slice with the whole workgroup and
/// keeps an online softmax per (row, channel), and a combine dispatch merges the slices. (The
/// one-thread-per-row kernel, which walks the whole context alone, took 654 us per layer at
/// SmolLM2-135M's decode step on the H200.)
pub const MAX_FEW_QUERY_ROWS: usize = 8;

/// Where a producer is being inlined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Into an injective expression, an epilogue, or a row-kernel prologue: any injective op.
    Any,
    /// Into a GEMM operand load, which runs once per tile that reads the element: data
    /// movement only.
    Operand,
}

/// True for ops that are a scalar expression of their inputs at computed indices.
pub fn is_injective(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary(_)
            | Op::Binary(_)
            | Op::Where
            | Op::Cast(_)
            | Op::Expand { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Concat { .. }
            | Op::Gather { .. }
            | Op::Compute { .. }
            | Op::Reshape { .. }
    )
}

/// True for injective ops that only move (or convert) elements.
fn is_data_movement(op: &Op) -> bool {
    matches!(
        op,
        Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Expand { .. }
            | Op::Gather { .. }
            | Op::Concat { .. }
            | Op::Cast(_)
    )
}

/// True for injective ops cheap enough to recompute in several kernels.
fn is_cheap(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary(_)
            | Op::Binary(_)
            | Op::Where
            | Op::Cast(_)
            | Op::Expand { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Reshape { .. }
    )
}

/// One kernel being formed: its external inputs (binding order) and what it inlined.
#[derive(Default)]
struct Build {
    inputs: Vec<NodeId>,
    /// (producer, consumer) pairs inlined.
    inlined: Vec<(NodeId, NodeId)>,
    /// Nodes computed in the kernel, for the label.
    members: Vec<NodeId>,
    /// The anchor whose value epilogue loads read as [`Expr::Core`].
    core: Option<NodeId>,
    /// False once the core was read at another index than the output's.
    core_ok: bool,
    /// Whether producers may be inlined at all.
    allow: bool,
    /// Most inputs the kernel may bind so far; an inlining that would exceed it is undone.
    limit: usize,
}

impl Build {
    fn new(allow: bool) -> Build {
        Build {
            allow,
            core_ok: true,
            limit: usize::MAX,
            ..Default::default()
        }
    }

    fn slot(&mut self, id: NodeId) -> usize {
        self.inputs.iter().position(|&i| i == id).unwrap_or_else(|| {
            self.inputs.push(id);
            self.inputs.len() - 1
        })
    }
}

struct Former<'g> {
    g: &'g Graph,
    /// A gated GEMV may take its input's norm and quantizer as prologue (GGUF's row layout).
    rounded_x_prologue: bool,
    outputs: HashSet<NodeId>,
    duplicable: HashMap<NodeId, bool>,
    max_inputs: usize,
    /// GEMM epilogues (see [`Former::is_epilogue`]) that a kernel may not recompute: some
    /// user reads them from memory, so the kernel of their GEMM stores them.
    kept_epilogues: HashSet<NodeId>,
    /// Epilogues the last committed kernel recomputed for only some of their users: the
    /// kernel is formed again with them kept (see [`Former::commit`]).
    split_epilogues: Vec<NodeId>,
}

/// The most W rows per value of x (`n / k`) for which a decode GEMV normalizes and rounds its
/// own x ([`Former::round_x_inside`]). Every workgroup repeats that prologue, so it pays where
/// the workgroups are few against the quantizer dispatch it saves: on the H200 the gate/up GEMV
/// (`n = 8k` at the SmolLM2 shapes) gained 1.1% of 1.7B decode and the merged q/k/v (`3k`) was
/// even (+0.3%), while the head (`24k` at 1.7B, `85k` at 135M) lost 1.4–1.6% at every size and
/// schedule tried (docs/performance.md, sixteenth session).
pub const ROUNDED_X_MAX_ROWS_PER_INPUT: usize = 8;

/// Forms kernels for the whole graph at opt-level 2, in an order that respects data
/// dependencies; attention becomes one kernel at any size when `attention` (opt-level 3), and
/// otherwise for a few query rows (decode) or many keys ([`MIN_FLASH_KEYS`], or symbolic).
///
/// `rounded_x_prologue`: a gated GEMV may normalize and round its own x (see
/// [`Former::round_x_inside`]).
pub fn form_kernels(
    g: &Graph,
    max_inputs: usize,
    attention: bool,
    rounded_x_prologue: bool,
) -> Result<Vec<KernelDraft>, CompileError> {
    let mut f = Former {
        g,
        rounded_x_prologue,
        outputs: g.outputs().iter().map(|o| o.1).collect(),
        duplicable: HashMap::new(),
        max_inputs,
        kept_epilogues: HashSet::new(),
        split_epilogues: Vec::new(),
    };
    let mut claimed: HashSet<NodeId> = HashSet::new();
    // Nodes some kernel reads from memory: they (or, for views, their bases) get stored.
    let mut needed: HashSet<NodeId> = HashSet::new();
    let mut kernels = Vec::new();
    for id in g.topo_order().into_iter().rev() {
        let op = &g.node(id).op;
        if matches!(op, Op::Input { .. } | Op::Constant(_)) {
            continue;
        }
        // Consumers come first (reverse topological order), so every kernel that reads this
        // node from memory exists by now; a node none reads and no output returns was inlined
        // everywhere it is used.
        let stored = f.outputs.contains(&id) || needed.contains(&id);
        if claimed.contains(&id) && !stored {
            continue;
        }
        if claimed.contains(&id) {
            // Fused as a core, yet another kernel reads it (a rare interplay of duplication
            // and the binding limit): it is computed twice, fused and stored, which is correct.
            log::debug!("fusion: {} is also stored for another reader", g.node(id).name);
        }
        if !stored {
            continue;
        }
        if matches!(op, Op::Reshape { .. }) {
            mark_needed(g, &mut needed, id);
            continue; // a view of its input's buffer
        }
        // A kernel that recomputed a GEMM epilogue for only some of its users is formed again
        // with that epilogue read from memory (each retry keeps one more; the cores it claims
        // count only once it is accepted).
        let draft = loop {
            let mut claims = HashSet::new();
            let draft = match op {
                _ if is_injective(op) => match f.gated_pair_root(id)? {
                    Some(d) => d,
                    None => f.injective_root(id, &mut claims)?,
                },
                Op::MatMul => match f.attention_root(id, &mut claims, attention)? {
                    Some(d) => d,
                    None => f.anchor_root(id, &[Mode::Operand, Mode::Operand])?,
                },
                Op::Reduce { .. } | Op::Softmax { .. } => f.anchor_root(id, &[Mode::Any])?,
                Op::LayerNorm { .. } => f.anchor_root(id, &[Mode::Any, Mode::Any, Mode::Any])?,
                Op::RmsNorm { .. } => f.anchor_root(id, &[Mode::Any, Mode::Any])?,
                Op::StateAppend { .. } => f.anchor_root(id, &[Mode::Any])?,
                Op::QMatMul { .. } => f.qmatmul_core(id)?,
                Op::QuantizeQ8 => match f.quantized_gated_pair(id)? {
                    Some(d) => d,
                    None => f.quantize_core(id)?,
                },
                _ => lower_node(g, id)?,
            };
            if f.split_epilogues.is_empty() {
                claimed.extend(claims);
                break draft;
            }
            let split = std::mem::take(&mut f.split_epilogues);
            f.kept_epilogues.extend(split);
        };
        for &i in &draft.inputs {
            mark_needed(g, &mut needed, i);
        }
        log::debug!("kernel {}: {}", kernels.len(), draft.label);
        kernels.push(draft);
    }
    kernels.reverse();
    Ok(kernels)
}

impl Former<'_> {
    /// Accepts the inlining of build `b`; notes the GEMM epilogues it recomputed for only some
    /// of their users (the others read them from memory, so the GEMM's kernel stores them: a
    /// recomputation would run the GEMM a second time for its raw product).
    fn commit(&mut self, b: &Build) {
        for &(p, c) in &b.inlined {
            log::trace!("inline {} into {}", self.g.node(p).name, self.g.node(c).name);
        }
        for &(p, _) in &b.inlined {
            let users = self.g.users_of(p);
            let inside = users.iter().all(|u| b.inlined.contains(&(p, *u)));
            if !inside && users.len() > 1 && self.is_epilogue(p) && !self.split_epilogues.contains(&p) {
                log::debug!(
                    "fusion: {} is kept in memory: a GEMM epilogue with users in other kernels",
                    self.g.node(p).name
                );
                self.split_epilogues.push(p);
            }
        }
    }

    /// Whether `p` is a GEMM's epilogue: an input of it is a GEMM, quantized GEMV or
    /// convolution that only `p` reads (and that is not an output), so recomputing `p`
    /// elsewhere needs the raw product stored too.
    fn is_epilogue(&self, p: NodeId) -> bool {
        self.g.inputs_of(p).into_iter().any(|i| {
            matches!(self.g.node(i).op, Op::MatMul | Op::QMatMul { .. } | Op::Conv { .. })
                && self.g.users_of(i) == [p]
                && !self.outputs.contains(&i)
        })
    }

    fn label(&self, b: &Build, root: NodeId) -> String {
        let mut names: Vec<&str> = b.members.iter().rev().map(|&m| self.g.node(m).name.as_str()).collect();
        names.retain(|n| *n != self.g.node(root).name);
        names.push(&self.g.node(root).name);
        names.dedup();
        names.join("+")
    }

    /// Whether producer `p` may be computed inside the kernel of consumer `c`.
    fn can_inline(&mut self, p: NodeId, c: NodeId, mode: Mode) -> bool {
        let op = &self.g.node(p).op;
        if self.outputs.contains(&p) || !is_injective(op) || (mode == Mode::Operand && !is_data_movement(op)) {
            return false;
        }
        let users = self.g.users_of(p);
        if users.len() == 1 && users[0] == c {
            return true;
        }
        // A GEMM epilogue some user reads from memory is stored by the GEMM's kernel;
        // recomputing it here would store the raw product too, a second GEMM: MiniLM's merged
        // QKV bias, which the attention's query read, or an LLM's attention residual (output
        // projection + residual), which the FFN norm reads and the FFN's down projection
        // recomputed (the output projection ran twice per layer).
        !self.kept_epilogues.contains(&p) && self.is_duplicable(p)
    }

    /// A cheap producer with few injective ancestors, all cheap: recomputing it in each user
    /// costs less than a dispatch and a round trip through memory.
    fn is_duplicable(&mut self, p: NodeId) -> bool {
        if let Some(&d) = self.duplicable.get(&p) {
            return d;
        }
        let mut seen = HashSet::new();
        let mut sources = HashSet::new();
        let mut stack = vec![p];
        let mut ok = true;
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            let op = &self.g.node(n).op;
            // A `Compute` that reads no tensor (the LLM builder's causal mask) is an expression
            // of its index alone: recomputing it costs less than storing and loading it.
            let sourceless = matches!(op, Op::Compute { .. }) && self.g.inputs_of(n).is_empty();
            if !(is_cheap(op) || sourceless)
                || seen.len() > MAX_DUPLICATED_CONE
                || sources.len() > MAX_DUPLICATED_SOURCES
            {
                ok = false;
                break;
            }
            for i in self.g.inputs_of(n) {
                match &self.g.node(i).op {
                    op if is_injective(op) => stack.push(i),
                    Op::Constant(_) => {}
                    _ => {
                        sources.insert(i);
                    }
                }
            }
        }
        ok &= sources.len() <= MAX_DUPLICATED_SOURCES;
        self.duplicable.insert(p, ok);
        ok
    }

    /// Value of node `p` (read by consumer `c`) at linear index `l`.
    fn value_at(&mut self, b: &mut Build, c: NodeId, p: NodeId, l: Expr, mode: Mode) -> Result<Expr, CompileError> {
        let n = self.g.node(p);
        if let Op::Constant(t) = &n.op {
            if t.numel() == 1 {
                return Ok(Expr::Lit(t.to_f64()[0], t.dtype()));
            }
            if mode == Mode::Any && b.allow {
                if let Some(e) = affine_constant(t, &l) {
                    return Ok(e);
                }
            }
        }
        if b.core == Some(p) {
            if l != Expr::Index {
                b.core_ok = false;
            }
            return Ok(Expr::Core(n.ty.dtype));
        }
        // MAX_FUSED_NODES bounds a kernel's members, and with them the depth of this recursion
        // and of the expression renderer (a 15,000-op chain overflowed the stack).
        if b.allow && b.members.len() < super::fuse::MAX_FUSED_NODES && self.can_inline(p, c, mode) {
            let mark = (b.inputs.len(), b.inlined.len(), b.members.len(), b.core_ok);
            b.inlined.push((p, c));
            if !b.members.contains(&p) {
                b.members.push(p);
            }
            let e = self.member_at(b, p, l.clone(), mode)?;
            if b.inputs.len() <= b.limit.max(mark.0) {
                return Ok(e);
            }
            // Too many bindings: undo, and read p from memory instead.
            b.inputs.truncate(mark.0);
            b.inlined.truncate(mark.1);
            b.members.truncate(mark.2);
            b.core_ok = mark.3;
        }
        let slot = b.slot(p);
        Ok(Expr::LoadIdx(slot, Box::new(l)))
    }

    /// The expression of injective node `p` at linear index `l`, its inputs read through
    /// [`Former::value_at`].
    fn member_at(&mut self, b: &mut Build, p: NodeId, l: Expr, mode: Mode) -> Result<Expr, CompileError> {
        let ins = self.g.inputs_of(p);
        if let Op::Reshape { .. } = self.g.node(p).op {
            return self.value_at(b, p, ins[0], l, mode);
        }
        let KernelBody::Injective { expr, shape, .. } = lower_node(self.g, p)?.body else {
            unreachable!("injective ops lower to injective kernels")
        };
        self.frame(b, p, &ins, &expr, &l, &shape, mode)
    }

    /// Rewrites `e` (node `p`'s expression in its own output coordinates) to the frame of
    /// linear index `l` into `p`'s shape.
    #[allow(clippy::too_many_arguments)]
    fn frame(
        &mut self,
        b: &mut Build,
        p: NodeId,
        ins: &[NodeId],
        e: &Expr,
        l: &Expr,
        shape: &[Dim],
        mode: Mode,
    ) -> Result<Expr, CompileError> {
        macro_rules! f {
            ($b:expr, $x:expr) => {
                self.frame($b, p, ins, $x, l, shape, mode)
            };
        }
        Ok(match e {
            Expr::Coord(a) => coord_of(l, shape, *a),
            Expr::Index => l.clone(),
            Expr::Lit(..) | Expr::Dim(_) | Expr::Core(_) => e.clone(),
            Expr::Load { input, .. } => {
                return Err(CompileError::Internal(format!(
                    "graph-level load of input {input} reached kernel formation unbound"
                )))
            }
            Expr::Unary(u, x, d) => Expr::Unary(*u, Box::new(f!(b, x)?), *d),
            Expr::Binary(o, x, y, d) => {
                let x = f!(b, x)?;
                Expr::Binary(*o, Box::new(x), Box::new(f!(b, y)?), *d)
            }
            Expr::Select(c, x, y) => {
                let c = f!(b, c)?;
                let x = f!(b, x)?;
                Expr::Select(Box::new(c), Box::new(x), Box::new(f!(b, y)?))
            }
            Expr::Cast(x, from, to) => Expr::Cast(Box::new(f!(b, x)?), *from, *to),
            Expr::Bitcast(x, from, to) => Expr::Bitcast(Box::new(f!(b, x)?), *from, *to),
            Expr::CoordOf { index, stride, dim } => super::affine::coord_of(f!(b, index)?, stride.clone(), dim.clone()),
            Expr::Concat { coord, parts } => {
                let coord = Box::new(f!(b, coord)?);
                let mut out = Vec::new();
                for (x, end) in parts {
                    out.push((f!(b, x)?, end.clone()));
                }
                Expr::Concat { coord, parts: out }
            }
            Expr::LoadIdx(slot, i) => {
                let i = f!(b, i)?;
                self.value_at(b, p, ins[*slot], i, mode)?
            }
            Expr::Read(slot, access) => {
                let index = match access.as_ref() {
                    Access::Linear => l.clone(),
                    Access::Strided { strides, offset } => linear(l, shape, strides, offset),
                    Access::Gathered {
                        strides,
                        index,
                        axis_len,
                        axis_stride,
                    } => {
                        let gi = f!(b, index)?;
                        let wrapped = Expr::Select(
                            Box::new(Expr::Binary(
                                BinaryOp::Less,
                                Box::new(gi.clone()),
                                Box::new(Expr::int(0)),
                                DType::I32,
                            )),
                            Box::new(add(gi.clone(), Expr::Dim(axis_len.clone()))),
                            Box::new(gi),
                        );
                        add(linear(l, shape, strides, &Dim::c(0)), mul(wrapped, axis_stride))
                    }
                };
                self.value_at(b, p, ins[*slot], index, mode)?
            }
            Expr::LoadAt(slot, coords, in_shape) => {
                let st = sym_strides(in_shape);
                let mut index = Expr::int(0);
                for (i, c) in coords.iter().enumerate() {
                    let c = f!(b, c)?;
                    let hi = Expr::Dim(in_shape[i].sub(&Dim::c(1)));
                    let clamped = Expr::Binary(
                        BinaryOp::Max,
                        Box::new(Expr::Binary(BinaryOp::Min, Box::new(c), Box::new(hi), DType::I32)),
                        Box::new(Expr::int(0)),
                        DType::I32,
                    );
                    index = add(index, mul(clamped, &st[i]));
                }
                self.value_at(b, p, ins[*slot], index, mode)?
            }
        })
    }

    /// An injective root: its producers inlined, and a MatMul core when one fits.
    fn injective_root(&mut self, r: NodeId, claimed: &mut HashSet<NodeId>) -> Result<KernelDraft, CompileError> {
        let g = self.g;
        let rn = g.node(r);
        let inj = |expr: Expr| KernelBody::Injective {
            shape: rn.ty.shape.clone(),
            dtype: rn.ty.dtype,
            expr,
        };
        let mut b = Build::new(true);
        b.limit = self.max_inputs;
        b.members.push(r);
        let e = self.member_at(&mut b, r, Expr::Index, Mode::Any)?;
        if let Some(m) = self.core_candidate(&b, r) {
            if matches!(g.node(m).op, Op::Conv { .. } | Op::QMatMul { .. }) {
                return self.conv_epilogue(r, m, &inj, claimed, b, e);
            }
            if matches!(g.node(m).op, Op::Reduce { .. }) {
                if let Some(d) = self.reduce_epilogue(r, m, claimed)? {
                    return Ok(d);
                }
                return self.plain_injective(r, b, e);
            }
            let mut bc = Build::new(true);
            bc.members.push(r);
            bc.core = Some(m);
            // Reserve a binding for each GEMM operand while the epilogue grows.
            bc.limit = self.max_inputs.saturating_sub(2);
            let epi = self.member_at(&mut bc, r, Expr::Index, Mode::Any)?;
            let ins = g.inputs_of(m);
            bc.limit = self.max_inputs.saturating_sub(1);
            let a = self.value_at(&mut bc, m, ins[0], Expr::Index, Mode::Operand)?;
            bc.limit = self.max_inputs;
            let bb = self.value_at(&mut bc, m, ins[1], Expr::Index, Mode::Operand)?;
            // Inlining undone for the binding limit may have left part of the path from the
            // core to the root outside this kernel; then the core must be stored instead.
            if bc.core_ok && bc.inputs.len() <= self.max_inputs && self.core_users_inside(m, r, &bc) {
                self.commit(&bc);
                claimed.insert(m);
                bc.members.push(m);
                let label = self.label(&bc, r);
                log::debug!("fusion: {label}: GEMM {} with epilogue", g.node(m).name);
                return Ok(KernelDraft {
                    label,
                    inputs: bc.inputs,
                    output: r,
                    body: KernelBody::Gemm {
                        a: g.node(ins[0]).ty.shape.clone(),
                        b: g.node(ins[1]).ty.shape.clone(),
                        dtype: g.node(m).ty.dtype,
                    },
                    operands: vec![a, bb],
                    epilogue: Some(epi),
                });
            }
        }
        self.plain_injective(r, b, e)
    }

    /// The injective kernel of root `r` with what `b` inlined (expression `e`), or with nothing
    /// inlined when that binds too many buffers.
    fn plain_injective(&mut self, r: NodeId, b: Build, e: Expr) -> Result<KernelDraft, CompileError> {
        let rn = self.g.node(r);
        let inj = |expr: Expr| KernelBody::Injective {
            shape: rn.ty.shape.clone(),
            dtype: rn.ty.dtype,
            expr,
        };
        if b.inputs.len() <= self.max_inputs {
            self.commit(&b);
            let label = self.label(&b, r);
            return Ok(KernelDraft::plain(label, b.inputs, r, inj(e)));
        }
        let mut b0 = Build::new(false);
        let e = self.member_at(&mut b0, r, Expr::Index, Mode::Any)?;
        Ok(KernelDraft::plain(rn.name.clone(), b0.inputs, r, inj(e)))
    }

    /// A reduction `m` with its input's producers as prologue and the root's expression as
    /// epilogue (mean pooling's division by the token count), or `None` when the bindings do
    /// not fit.
    fn reduce_epilogue(
        &mut self,
        r: NodeId,
        m: NodeId,
        claimed: &mut HashSet<NodeId>,
    ) -> Result<Option<KernelDraft>, CompileError> {
        let g = self.g;
        let mut bc = Build::new(true);
        bc.members.push(r);
        bc.core = Some(m);
        bc.limit = self.max_inputs.saturating_sub(1);
        let epi = self.member_at(&mut bc, r, Expr::Index, Mode::Any)?;
        bc.limit = self.max_inputs;
        let operand = self.value_at(&mut bc, m, g.inputs_of(m)[0], Expr::Index, Mode::Any)?;
        if !bc.core_ok || bc.inputs.len() > self.max_inputs || !self.core_users_inside(m, r, &bc) {
            return Ok(None);
        }
        self.commit(&bc);
        claimed.insert(m);
        bc.members.push(m);
        let label = self.label(&bc, r);
        log::debug!("fusion: {label}: reduction with epilogue");
        let plain = lower_node(g, m)?;
        Ok(Some(KernelDraft {
            label,
            inputs: bc.inputs,
            output: r,
            operands: vec![operand],
            epilogue: Some(epi),
            ..plain
        }))
    }

    /// A convolution (or quantized matmul) with the root's expression as epilogue (bias,
    /// activation, residual): the anchor's own inputs keep the first slots, as its template
    /// reads them directly. Falls back to the
    /// plain injective kernel `(b, e)` when the bindings do not fit.
    fn conv_epilogue(
        &mut self,
        r: NodeId,
        m: NodeId,
        inj: &dyn Fn(Expr) -> KernelBody,
        claimed: &mut HashSet<NodeId>,
        b: Build,
        e: Expr,
    ) -> Result<KernelDraft, CompileError> {
        let g = self.g;
        let conv = if matches!(g.node(m).op, Op::QMatMul { .. }) {
            self.qmatmul_core(m)?
        } else {
            lower_node(g, m)?
        };
        let mut bc = Build::new(true);
        bc.members.push(r);
        bc.core = Some(m);
        bc.inputs = conv.inputs.clone();
        bc.limit = self.max_inputs;
        let epi = self.member_at(&mut bc, r, Expr::Index, Mode::Any)?;
        if bc.core_ok && bc.inputs.len() <= self.max_inputs && self.core_users_inside(m, r, &bc) {
            self.commit(&bc);
            claimed.insert(m);
            bc.members.push(m);
            let mut label = self.label(&bc, r);
            if matches!(conv.body, KernelBody::QGemm { norm: Some(_), .. }) {
                label = format!("{}+{label}", g.node(g.inputs_of(m)[0]).name);
            }
            log::debug!("fusion: {label}: convolution with epilogue");
            return Ok(KernelDraft {
                label,
                inputs: bc.inputs,
                output: r,
                epilogue: Some(epi),
                ..conv
            });
        }
        if b.inputs.len() <= self.max_inputs {
            self.commit(&b);
            let label = self.label(&b, r);
            return Ok(KernelDraft::plain(label, b.inputs, r, inj(e)));
        }
        let mut b0 = Build::new(false);
        let e = self.member_at(&mut b0, r, Expr::Index, Mode::Any)?;
        Ok(KernelDraft::plain(g.node(r).name.clone(), b0.inputs, r, inj(e)))
    }

    /// The quantized matmul `m` as a kernel, with the RMS norm that produces its activation
    /// fused as prologue when that norm is needed nowhere else: a norm over the last axis of
    /// one row (a decode step), not an output, every user a quantized GEMV of it whose blocks
    /// hold 32 or more values (their dot products read the activation four values at a time,
    /// which the prologue scales; the row's sum of squares is accumulated from the same
    /// reads). Each such GEMV then reads the norm's input and scale itself, and the norm's
    /// own kernel (a dispatch and a round trip through memory) goes away.
    fn qmatmul_core(&self, m: NodeId) -> Result<KernelDraft, CompileError> {
        let g = self.g;
        let mut d = lower_node(g, m)?;
        let r = g.inputs_of(m)[0];
        if self.round_x_inside(&mut d, r) {
            return Ok(d);
        }
        let Some((epsilon, x, scale)) = self.prologue_rms_norm(r) else {
            return Ok(d);
        };
        let fusable_user = |u: NodeId| {
            let rank = g.node(u).ty.rank();
            matches!(g.node(u).op, Op::QMatMul { block, .. } if block.block_elems() >= 32)
                && g.inputs_of(u)[0] == r
                && g.inputs_of(u)[1] != r
                && rank >= 1
                && Dim::product(&g.node(u).ty.shape[..rank - 1]).as_const() == Some(1)
        };
        if g.node(scale).ty.shape.len() != 1 || !g.users_of(r).into_iter().all(fusable_user) {
            return Ok(d);
        }
        let KernelBody::QGemm { norm, .. } = &mut d.body else {
            unreachable!("a QMatMul lowers to a QGemm kernel")
        };
        *norm = Some(epsilon);
        d.inputs = vec![x, d.inputs[1], scale];
        d.label = format!("{}+{}", g.node(r).name, d.label);
        log::debug!("fusion: {}: RMS norm as the GEMV's prologue", d.label);
        Ok(d)
    }

    /// The activation quantizer `qin` ([`Op::QuantizeQ8`]) of GEMV draft `d`'s x fused as its
    /// prologue, with the RMS norm in front of it, when both feed nothing else and x is one
    /// row of an int8-dot block type in GGUF's row layout (`rounded_x_prologue`) with at most
    /// [`ROUNDED_X_MAX_ROWS_PER_INPUT`] W rows per value of x: each workgroup normalizes and
    /// rounds the row into workgroup memory itself (`QGemm::quantize_x`) and the quantizer's
    /// dispatch goes away. True when it did.
    fn round_x_inside(&self, d: &mut KernelDraft, qin: NodeId) -> bool {
        let g = self.g;
        let KernelBody::QGemm {
            block,
            x,
            n,
            k,
            norm,
            xq8,
            quantize_x,
            ..
        } = &mut d.body
        else {
            return false;
        };
        let one_row = Dim::product(&x[..x.len().saturating_sub(1)]).as_const() == Some(1);
        if !self.rounded_x_prologue
            || *n > ROUNDED_X_MAX_ROWS_PER_INPUT * *k
            || !matches!(g.node(qin).op, Op::QuantizeQ8)
            || !block.has_int8_dot()
            || !one_row
            || self.outputs.contains(&qin)
            || g.users_of(qin).len() != 1
        {
            return false;
        }
        let r = g.inputs_of(qin)[0];
        let Some((epsilon, xin, scale)) = self.prologue_rms_norm(r) else {
            return false;
        };
        let k = g.node(r).ty.shape.last().cloned();
        if g.node(scale).ty.shape != k.into_iter().collect::<Vec<_>>()
            || g.node(xin).ty.dtype != DType::F32
            || g.users_of(r) != [qin]
        {
            return false;
        }
        *norm = Some(epsilon);
        *xq8 = false;
        *quantize_x = true;
        d.inputs = vec![xin, d.inputs[1], scale];
        d.label = format!("{}+{}", g.node(qin).name, d.label);
        log::debug!("fusion: {}: x normalized and rounded inside the GEMV", d.label);
        true
    }

    /// `(epsilon, x, scale)` of `r` when it is an f32 RMS norm over its last axis that is not
    /// a graph output: what a kernel may compute as its prologue (each caller checks the
    /// scale's shape and the norm's users).
    fn prologue_rms_norm(&self, r: NodeId) -> Option<(f32, NodeId, NodeId)> {
        let g = self.g;
        let Op::RmsNorm { axis, epsilon } = g.node(r).op else {
            return None;
        };
        let ins = g.inputs_of(r);
        let rt = &g.node(r).ty;
        (!self.outputs.contains(&r) && ins.len() == 2 && rt.dtype == DType::F32 && axis + 1 == rt.rank())
            .then(|| (epsilon, ins[0], ins[1]))
    }

    /// An activation quantizer ([`Op::QuantizeQ8`]) with the RMS norm that produces its input
    /// fused as prologue when that norm is needed nowhere else: a norm over the last axis
    /// with a scale of exactly `[k]`, not an output. Each workgroup then takes its row's mean
    /// square, normalizes and rounds (a projection's input norm, in a prompt or a decode step),
    /// and the norm's own kernel goes away.
    fn quantize_core(&self, q: NodeId) -> Result<KernelDraft, CompileError> {
        let g = self.g;
        let mut d = lower_node(g, q)?;
        let r = g.inputs_of(q)[0];
        let Some((epsilon, x, scale)) = self.prologue_rms_norm(r) else {
            return Ok(d);
        };
        let k = g.node(r).ty.shape.last().cloned();
        if g.node(scale).ty.shape != k.into_iter().collect::<Vec<_>>()
            || g.node(x).ty.dtype != DType::F32
            || !g.users_of(r).into_iter().all(|u| u == q)
        {
            return Ok(d);
        }
        let KernelBody::QuantizeRows { norm, .. } = &mut d.body else {
            unreachable!("a QuantizeQ8 lowers to a QuantizeRows kernel")
        };
        *norm = Some(epsilon);
        d.inputs = vec![x, scale];
        d.label = format!("{}+{}", g.node(r).name, d.label);
        log::debug!("fusion: {}: RMS norm as the quantizer's prologue", d.label);
        Ok(d)
    }

    /// A decode step's SwiGLU over a merged gate/up quantized matmul as one GEMV: `act` is
    /// `silu(G) * U` ([`crate::passes::merge_matmuls::swiglu`]) where `G` and `U` are the
    /// first and second halves (slices of the last axis) of one [`Op::QMatMul`] `P` with at most
    /// 8 rows of x (the GEMV kind), read by nothing else. The kernel computes each output's
    /// gate and up rows in the same thread and writes `silu(gate) * up` (`glu`), with `P`'s
    /// norm prologue where [`Self::qmatmul_core`] fuses one: one dispatch, x read once.
    fn gated_pair_root(&self, act: NodeId) -> Result<Option<KernelDraft>, CompileError> {
        let g = self.g;
        let ins = g.inputs_of(act);
        if !matches!(g.node(act).op, Op::Binary(BinaryOp::Mul)) || ins.len() != 2 {
            return Ok(None);
        }
        let outputs: Vec<NodeId> = self.outputs.iter().copied().collect();
        // The halves: (P, start) of a unit-step slice of P's last axis.
        let half = |s: NodeId| match &g.node(s).op {
            Op::Slice { axes } if axes.len() == 1 && axes[0].step == 1 => {
                let p = g.inputs_of(s)[0];
                (axes[0].axis + 1 == g.node(p).ty.rank()).then_some((p, axes[0].start, axes[0].end))
            }
            _ => None,
        };
        for (a, b) in [(ins[0], ins[1]), (ins[1], ins[0])] {
            // `a` is silu(G): its gate is one of its Mul inputs.
            if !matches!(g.node(a).op, Op::Binary(BinaryOp::Mul)) {
                continue;
            }
            for gate in g.inputs_of(a) {
                let Some((gate, up, found)) = crate::passes::merge_matmuls::swiglu(g, gate, b, &outputs) else {
                    continue;
                };
                let (Some((p, gs, ge)), Some((pu, us, ue))) = (half(gate), half(up)) else {
                    continue;
                };
                let Op::QMatMul { n, .. } = g.node(p).op else { continue };
                let rank = g.node(p).ty.rank();
                let rows = Dim::product(&g.node(p).ty.shape[..rank - 1]).as_const();
                let h = (n / 2) as i64;
                let mut users = g.users_of(p);
                users.sort();
                let mut halves = vec![gate, up];
                halves.sort();
                if found != act
                    || p != pu
                    || n % 2 != 0
                    || (gs, ge, us, ue) != (0, h, h, 2 * h)
                    || users != halves
                    || self.outputs.contains(&p)
                    || !rows.is_some_and(|m| (1..=8).contains(&m))
                {
                    continue;
                }
                let mut d = self.qmatmul_core(p)?;
                let KernelBody::QGemm { glu, .. } = &mut d.body else {
                    unreachable!("a QMatMul lowers to a QGemm kernel")
                };
                *glu = true;
                d.output = act;
                d.label = format!("{}+{}", d.label, g.node(act).name);
                log::debug!("fusion: {}: gate and up in one GEMV", d.label);
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// An activation quantizer ([`Op::QuantizeQ8`]) of a decode step's SwiGLU, fused as the
    /// epilogue of the gate/up GEMV ([`Self::gated_pair_root`]) when the SwiGLU is read by
    /// nothing else: the GEMV rounds its outputs per block of 32 and stores them as the
    /// quantizer would (`q8_out`), so the down projection reads 8-bit x without a quantizer
    /// dispatch. Its schedule then gives each workgroup whole blocks of outputs.
    fn quantized_gated_pair(&self, q: NodeId) -> Result<Option<KernelDraft>, CompileError> {
        let g = self.g;
        let act = g.inputs_of(q)[0];
        if self.outputs.contains(&act) || g.users_of(act) != [q] {
            return Ok(None);
        }
        let Some(mut d) = self.gated_pair_root(act)? else {
            return Ok(None);
        };
        let KernelBody::QGemm { q8_out, .. } = &mut d.body else {
            unreachable!("a gated pair is a QGemm kernel")
        };
        *q8_out = Some(Q8Storage::of(g, q));
        d.output = q;
        d.label = format!("{}+{}", d.label, g.node(q).name);
        log::debug!("fusion: {}: the SwiGLU GEMV rounds its outputs to 8 bits", d.label);
        Ok(Some(d))
    }

    /// True when what `from` computes is used only inside this kernel on its way to `to`:
    /// every user of `from`, and of each of those users up to `to`, is a member of the
    /// kernel, no graph output, and not also read from memory by the kernel. An anchor read by `from` is then read by no other kernel,
    /// even where cheap nodes are duplicated into several kernels.
    fn exclusive_path(&self, from: NodeId, to: NodeId, b: &Build) -> bool {
        if from == to {
            return true;
        }
        let users = self.g.users_of(from);
        !self.outputs.contains(&from)
            && !b.inputs.contains(&from)
            && !users.is_empty()
            && users
                .iter()
                .all(|&u| b.members.contains(&u) && self.exclusive_path(u, to, b))
    }

    /// True when every user of the anchor `m` is a member of the kernel whose uses stay inside
    /// it up to the root `r` (e.g. a folded conv whose output a hard-swish reads twice).
    fn core_users_inside(&self, m: NodeId, r: NodeId, b: &Build) -> bool {
        let users = self.g.users_of(m);
        !users.is_empty()
            && users
                .iter()
                .all(|&u| b.members.contains(&u) && self.exclusive_path(u, r, b))
    }

    /// A MatMul read by the root's expression only, at the output's own index, with its shape
    /// and float dtype: it can compute in the same kernel with the expression as epilogue.
    fn core_candidate(&self, b: &Build, r: NodeId) -> Option<NodeId> {
        let g = self.g;
        let rt = &g.node(r).ty;
        b.inputs.iter().copied().find(|&m| {
            let n = g.node(m);
            let users = g.users_of(m);
            matches!(
                n.op,
                Op::MatMul | Op::Conv { .. } | Op::QMatMul { .. } | Op::Reduce { .. }
            ) && !self.outputs.contains(&m)
                && !users.is_empty()
                && self.core_users_inside(m, r, b)
                && n.ty.shape == rt.shape
                && n.ty.dtype == rt.dtype
                && rt.dtype.is_float()
        })
    }

    /// `MatMul(Softmax(score(MatMul(Q, K))), V)` with the softmax over the last axis, every
    /// intermediate used once, equal batch dims and constant head dims up to
    /// [`MAX_ATTENTION_HEAD_DIM`]: one attention kernel. `score` is any injective expression
    /// of the raw scores (scale, mask).
    ///
    /// Unless `all`, attention with more than [`MAX_FEW_QUERY_ROWS`] query rows per batch is
    /// fused only when its key count is symbolic or at least [`MIN_FLASH_KEYS`]: shorter
    /// constant sequences stay unfused (see [`MIN_FLASH_KEYS`]).
    fn attention_root(
        &mut self,
        av: NodeId,
        claimed: &mut HashSet<NodeId>,
        all: bool,
    ) -> Result<Option<KernelDraft>, CompileError> {
        let g = self.g;
        let av_ins = g.inputs_of(av);
        let rank = g.node(av).ty.rank();
        let outputs = self.outputs.clone();
        let single = |n: NodeId, u: NodeId| g.users_of(n) == [u] && !outputs.contains(&n);
        // The probabilities may reach the ·V product through reshapes (GQA's query groups
        // folded into rows): a reshape keeps the row-major order, so with the same last dim
        // the softmax rows are the product's rows.
        let mut sm = av_ins[0];
        let mut user = av;
        let mut views = Vec::new();
        while matches!(g.node(sm).op, Op::Reshape { .. }) && single(sm, user) {
            views.push(sm);
            user = sm;
            sm = g.inputs_of(sm)[0];
        }
        let sm_rank = g.node(sm).ty.rank();
        if rank < 2
            || !matches!(g.node(sm).op, Op::Softmax { axis, log: false } if axis + 1 == sm_rank)
            || !single(sm, user)
            || g.node(sm).ty.shape.last() != g.node(av_ins[0]).ty.shape.last()
        {
            return Ok(None);
        }
        let s = g.inputs_of(sm)[0];
        let qk = if matches!(g.node(s).op, Op::MatMul) {
            s
        } else {
            if !is_injective(&g.node(s).op) || !single(s, sm) || !self.can_inline(s, sm, Mode::Any) {
                return Ok(None);
            }
            let mut trial = Build::new(true);
            self.value_at(&mut trial, sm, s, Expr::Index, Mode::Any)?;
            let found = trial.inputs.iter().copied().find(|&m| {
                let users = g.users_of(m);
                matches!(g.node(m).op, Op::MatMul)
                    && users.len() == 1
                    && trial.members.contains(&users[0])
                    && self.exclusive_path(users[0], s, &trial)
                    && !self.outputs.contains(&m)
                    && same_rows(&g.node(m).ty.shape, &g.node(s).ty.shape)
            });
            match found {
                Some(m) => m,
                None => return Ok(None),
            }
        };
        if qk == s && !single(qk, sm) {
            return Ok(None);
        }
        let qk_ins = g.inputs_of(qk);
        let (qs, ks, vs) = (
            &g.node(qk_ins[0]).ty.shape,
            &g.node(qk_ins[1]).ty.shape,
            &g.node(av_ins[1]).ty.shape,
        );
        let batch_dims = &g.node(av).ty.shape[..rank - 2];
        let same_batch = [qs, ks, vs]
            .iter()
            .all(|x| x.len() == rank && x[..rank - 2] == *batch_dims);
        // Broadcast operands (a rank-2 K under a rank-3 Q) are not attention: checked before
        // their dims are indexed by `rank`.
        if !same_batch {
            return Ok(None);
        }
        let few_rows = qs[rank - 2]
            .as_const()
            .is_some_and(|r| r as usize <= MAX_FEW_QUERY_ROWS);
        let few_keys = ks[rank - 1].as_const().is_some_and(|k| (k as usize) < MIN_FLASH_KEYS);
        if !all && !few_rows && few_keys {
            return Ok(None);
        }
        let head = |d: &Dim| d.as_const().filter(|&v| v >= 1 && v as usize <= MAX_ATTENTION_HEAD_DIM);
        let (Some(d), Some(dv)) = (head(&qs[rank - 1]), head(&vs[rank - 1])) else {
            return Ok(None);
        };
        if g.node(av).ty.dtype != DType::F32 || g.node(qk).ty.dtype != DType::F32 {
            return Ok(None);
        }
        let mut b = Build::new(true);
        b.members.push(av);
        b.core = Some(qk);
        b.limit = self.max_inputs.saturating_sub(3);
        let score = if qk == s {
            None
        } else {
            Some(self.value_at(&mut b, sm, s, Expr::Index, Mode::Any)?)
        };
        b.limit = self.max_inputs.saturating_sub(2);
        // Each thread reads its query row once, into registers: unlike a GEMM tile load, the
        // query may carry any injective producer (RoPE).
        let [q, k, v] = self.attention_operands(&mut b, [qk, av], [qk_ins[0], qk_ins[1], av_ins[1]])?;
        let qk_user = g.users_of(qk)[0];
        if !b.core_ok || b.inputs.len() > self.max_inputs || (qk != s && !self.exclusive_path(qk_user, s, &b)) {
            return Ok(None);
        }
        self.commit(&b);
        claimed.insert(sm);
        claimed.insert(qk);
        b.members.extend(views);
        b.members.extend([sm, qk]);
        let label = self.label(&b, av);
        log::debug!("fusion: {label}: attention");
        Ok(Some(KernelDraft {
            label,
            inputs: b.inputs,
            output: av,
            body: KernelBody::Attention {
                batch: Dim::product(batch_dims),
                sq: qs[rank - 2].clone(),
                sk: ks[rank - 1].clone(),
                d: d as usize,
                dv: dv as usize,
            },
            operands: vec![q, k, v],
            epilogue: score,
        }))
    }

    /// The query, key and value operands of an attention kernel (`qk` reads the first two,
    /// `av` the last).
    fn attention_operands(
        &mut self,
        b: &mut Build,
        [qk, av]: [NodeId; 2],
        [q, k, v]: [NodeId; 3],
    ) -> Result<[Expr; 3], CompileError> {
        let q = self.value_at(b, qk, q, Expr::Index, Mode::Any)?;
        b.limit = self.max_inputs.saturating_sub(1);
        let k = self.value_at(b, qk, k, Expr::Index, Mode::Operand)?;
        b.limit = self.max_inputs;
        let v = self.value_at(b, av, v, Expr::Index, Mode::Operand)?;
        Ok([q, k, v])
    }

    /// An anchor (GEMM, reduction, softmax, layer norm) with its operands' producers inlined
    /// as prologues.
    fn anchor_root(&mut self, id: NodeId, modes: &[Mode]) -> Result<KernelDraft, CompileError> {
        let ins = self.g.inputs_of(id);
        let mut b = Build::new(true);
        b.members.push(id);
        let mut operands = Vec::new();
        for (i, &mode) in modes.iter().enumerate() {
            b.limit = self.max_inputs.saturating_sub(modes.len() - 1 - i);
            operands.push(self.value_at(&mut b, id, ins[i], Expr::Index, mode)?);
        }
        let plain = lower_node(self.g, id)?;
        if b.inlined.is_empty() || b.inputs.len() > self.max_inputs {
            return Ok(plain);
        }
        self.commit(&b);
        let label = self.label(&b, id);
        log::debug!("fusion: {label}: prologue into {}", self.g.node(id).op.name());
        Ok(KernelDraft {
            label,
            inputs: b.inputs,
            operands,
            ..plain
        })
    }
}

/// Marks `id` as read from memory, and through reshape views the node that holds the buffer.
fn mark_needed(g: &Graph, needed: &mut HashSet<NodeId>, mut id: NodeId) {
    loop {
        needed.insert(id);
        match g.node(id).op {
            Op::Reshape { .. } => id = g.inputs_of(id)[0],
            _ => return,
        }
    }
}

/// Most elements of an i32 constant that is checked for being a range or a fill.
const MAX_AFFINE_CONSTANT: usize = 1 << 16;

/// An i32 constant that is a fill (`c`) or a range over its linear index (`c + l`), as the
/// expression of its value at linear index `l`: position ids and token-type ids, which then
/// cost no load and no binding.
fn affine_constant(t: &kiln_ir::Tensor, l: &Expr) -> Option<Expr> {
    let kiln_ir::TensorData::I32(v) = &t.data else {
        return None;
    };
    if v.len() < 2 || v.len() > MAX_AFFINE_CONSTANT {
        return None;
    }
    let c = v[0];
    if v.iter().all(|&x| x == c) {
        return Some(Expr::int(c as i64));
    }
    let range = v
        .iter()
        .enumerate()
        .all(|(i, &x)| i64::from(x) == i64::from(c) + i as i64);
    range.then(|| add(l.clone(), Expr::int(c as i64)))
}

/// Two shapes with the same element count and the same last dim: one is a reshape of the
/// other that keeps its rows, so a linear index means the same element in both.
fn same_rows(a: &[Dim], b: &[Dim]) -> bool {
    a.last() == b.last() && Dim::product(a) == Dim::product(b)
}

fn add(a: Expr, b: Expr) -> Expr {
    match (&a, &b) {
        (Expr::Lit(x, _), _) if *x == 0.0 => b,
        (_, Expr::Lit(y, _)) if *y == 0.0 => a,
        _ => Expr::Binary(BinaryOp::Add, Box::new(a), Box::new(b), DType::I32),
    }
}

fn mul(a: Expr, d: &Dim) -> Expr {
    match d.as_const() {
        Some(1) => a,
        Some(0) => Expr::int(0),
        _ => Expr::Binary(BinaryOp::Mul, Box::new(a), Box::new(Expr::Dim(d.clone())), DType::I32),
    }
}

/// Coordinate `a` of linear index `l` into a row-major `shape`.
fn coord_of(l: &Expr, shape: &[Dim], a: usize) -> Expr {
    let stride = Dim::product(&shape[a + 1..]);
    let dim = if a == 0 { None } else { Some(shape[a].clone()) };
    // Simplified where `l` is itself a fused index whose terms line up with the shape.
    super::affine::coord_of(l.clone(), stride, dim)
}

/// `offset + sum_a coord_a(l) * strides[a]`.
fn linear(l: &Expr, shape: &[Dim], strides: &[Dim], offset: &Dim) -> Expr {
    let mut e = if *offset == Dim::c(0) {
        Expr::int(0)
    } else {
        Expr::Dim(offset.clone())
    };
    for (a, s) in strides.iter().enumerate() {
        if *s != Dim::c(0) && shape[a] != Dim::c(1) {
            e = add(e, mul(coord_of(l, shape, a), s));
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{Tensor, TensorType, UnaryOp};

    fn input(g: &mut Graph, name: &str, shape: &[usize]) -> NodeId {
        g.add_input(name, TensorType::new(DType::F32, shape))
    }

    fn konst(g: &mut Graph, name: &str, shape: &[usize]) -> NodeId {
        let n = shape.iter().product();
        g.add_const(
            name,
            Tensor::f32(shape.to_vec(), (0..n).map(|i| i as f32 * 0.01).collect()),
        )
    }

    fn scalar(g: &mut Graph, name: &str, v: f32) -> NodeId {
        g.add_const(name, Tensor::f32(vec![], vec![v]))
    }

    fn bin(g: &mut Graph, name: &str, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
        g.add(name, Op::Binary(op), &[a, b]).unwrap()
    }

    fn kinds(k: &[KernelDraft]) -> Vec<String> {
        k.iter()
            .map(|d| {
                let kind = format!("{:?}", d.body).split([' ', '{']).next().unwrap().to_string();
                format!(
                    "{kind}{}{}",
                    if d.operands.is_empty() { "" } else { "+pro" },
                    if d.epilogue.is_some() { "+epi" } else { "" }
                )
            })
            .collect()
    }

    #[test]
    fn bias_and_erf_gelu_become_a_gemm_epilogue() {
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[4, 8]);
        let w = konst(&mut g, "w", &[8, 16]);
        let b = konst(&mut g, "b", &[16]);
        let m = g.add("mm", Op::MatMul, &[x, w]).unwrap();
        let a = bin(&mut g, "bias", BinaryOp::Add, b, m);
        let s2 = scalar(&mut g, "sqrt2", 1.414);
        let d = bin(&mut g, "div", BinaryOp::Div, a, s2);
        let e = g.add("erf", Op::Unary(UnaryOp::Erf), &[d]).unwrap();
        let one = scalar(&mut g, "one", 1.0);
        let p = bin(&mut g, "add1", BinaryOp::Add, e, one);
        let y = bin(&mut g, "mul", BinaryOp::Mul, a, p);
        g.add_output("y", y);
        let k = form_kernels(&g, 7, true, true).unwrap();
        assert_eq!(kinds(&k), ["Gemm+pro+epi"]);
        assert_eq!(k[0].output, y);
        assert_eq!(k[0].inputs.len(), 3, "x, w and the bias");
    }

    #[test]
    fn transposes_and_reshapes_fold_into_gemm_operand_loads() {
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[2, 3, 8]);
        let t = g.add("t", Op::Transpose { perm: vec![1, 0, 2] }, &[x]).unwrap();
        let r = g
            .add(
                "r",
                Op::Reshape {
                    shape: vec![Dim::c(3), Dim::c(16)],
                },
                &[t],
            )
            .unwrap();
        let w = konst(&mut g, "w", &[16, 4]);
        let m = g.add("mm", Op::MatMul, &[r, w]).unwrap();
        g.add_output("y", m);
        let k = form_kernels(&g, 7, true, true).unwrap();
        assert_eq!(kinds(&k), ["Gemm+pro"]);
        assert_eq!(k[0].inputs, vec![x, w]);
    }

    #[test]
    fn elementwise_ops_are_not_gemm_operand_prologues() {
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[4, 8]);
        let e = g.add("exp", Op::Unary(UnaryOp::Exp), &[x]).unwrap();
        let w = konst(&mut g, "w", &[8, 4]);
        let m = g.add("mm", Op::MatMul, &[e, w]).unwrap();
        g.add_output("y", m);
        assert_eq!(kinds(&form_kernels(&g, 7, true, true).unwrap()), ["Injective", "Gemm"]);
    }

    #[test]
    fn attention_with_scale_and_mask_is_one_kernel() {
        let mut g = Graph::new();
        let q = input(&mut g, "q", &[2, 5, 4]);
        let k = input(&mut g, "k", &[2, 5, 4]);
        let v = input(&mut g, "v", &[2, 5, 4]);
        let mask = input(&mut g, "mask", &[2, 1, 5]);
        let kt = g.add("kt", Op::Transpose { perm: vec![0, 2, 1] }, &[k]).unwrap();
        let s = g.add("qk", Op::MatMul, &[q, kt]).unwrap();
        let c = scalar(&mut g, "scale", 2.0);
        let s = bin(&mut g, "div", BinaryOp::Div, s, c);
        let s = bin(&mut g, "mask_add", BinaryOp::Add, s, mask);
        let p = g.add("softmax", Op::Softmax { axis: 2, log: false }, &[s]).unwrap();
        let o = g.add("av", Op::MatMul, &[p, v]).unwrap();
        g.add_output("o", o);
        let kernels = form_kernels(&g, 7, true, true).unwrap();
        assert_eq!(kinds(&kernels), ["Attention+pro+epi"]);
        assert!(matches!(kernels[0].body, KernelBody::Attention { d: 4, dv: 4, .. }));
    }

    /// BERT's merged QKV projection: one GEMM with its bias as epilogue, whose output the
    /// attention reads through three slices. The query operand (which may carry injective
    /// producers) reads the biased output too: recomputing the bias there would store the raw
    /// product as well, a second GEMM kernel.
    #[test]
    fn attention_reads_a_merged_qkv_gemm_epilogue_from_memory() {
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[2, 5, 8]);
        let w = konst(&mut g, "w", &[8, 12]);
        let bias = konst(&mut g, "bias", &[12]);
        let m = g.add("qkv", Op::MatMul, &[x, w]).unwrap();
        let qkv = bin(&mut g, "qkv_bias", BinaryOp::Add, m, bias);
        let part = |g: &mut Graph, name: &str, i: i64| {
            let axes = vec![kiln_ir::SliceAxis {
                axis: 2,
                start: 4 * i,
                end: 4 * i + 4,
                step: 1,
            }];
            g.add(name, Op::Slice { axes }, &[qkv]).unwrap()
        };
        let (q, k, v) = (part(&mut g, "q", 0), part(&mut g, "k", 1), part(&mut g, "v", 2));
        let kt = g.add("kt", Op::Transpose { perm: vec![0, 2, 1] }, &[k]).unwrap();
        let s = g.add("qk", Op::MatMul, &[q, kt]).unwrap();
        let p = g.add("softmax", Op::Softmax { axis: 2, log: false }, &[s]).unwrap();
        let o = g.add("av", Op::MatMul, &[p, v]).unwrap();
        g.add_output("o", o);
        let kernels = form_kernels(&g, 7, true, true).unwrap();
        assert_eq!(kinds(&kernels), ["Gemm+pro+epi", "Attention+pro"], "one QKV GEMM");
        assert_eq!(kernels[1].inputs, vec![qkv], "the attention reads the biased product");
    }

    #[test]
    fn softmax_that_is_an_output_keeps_attention_apart() {
        let mut g = Graph::new();
        let q = input(&mut g, "q", &[5, 4]);
        let k = input(&mut g, "k", &[4, 5]);
        let v = input(&mut g, "v", &[5, 4]);
        let s = g.add("qk", Op::MatMul, &[q, k]).unwrap();
        let p = g.add("softmax", Op::Softmax { axis: 1, log: false }, &[s]).unwrap();
        let o = g.add("av", Op::MatMul, &[p, v]).unwrap();
        g.add_output("o", o);
        g.add_output("p", p);
        assert_eq!(
            kinds(&form_kernels(&g, 7, true, true).unwrap()),
            ["Gemm", "Softmax", "Gemm"]
        );
    }

    #[test]
    fn a_cheap_producer_is_duplicated_into_each_user_but_a_graph_output_is_kept() {
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[4, 8]);
        let m = input(&mut g, "m", &[4, 8]);
        let one = scalar(&mut g, "one", 1.0);
        let inv = bin(&mut g, "inv", BinaryOp::Sub, one, m);
        let a = bin(&mut g, "a", BinaryOp::Mul, x, inv);
        let red = g
            .add(
                "sum",
                Op::Reduce {
                    op: kiln_ir::ReduceOp::Sum,
                    axes: vec![1],
                    keep_dims: false,
                },
                &[inv],
            )
            .unwrap();
        g.add_output("a", a);
        g.add_output("s", red);
        let mut k = kinds(&form_kernels(&g, 7, true, true).unwrap());
        k.sort();
        assert_eq!(k, ["Injective", "Reduce+pro"], "inv is computed in both kernels");
        g.add_output("inv", inv);
        let k = form_kernels(&g, 7, true, true).unwrap();
        assert_eq!(k.len(), 3, "an output is materialized: {:?}", kinds(&k));
    }

    /// A pre-norm residual stream: `h(l+1) = h(l) + W(l) · norm(h(l))`. Each running sum is the
    /// epilogue of the GEMM that produces its last term and is stored once; it is not recomputed
    /// in the next norm from all earlier GEMM outputs (that would keep every layer's output live
    /// to the end of the model). The first sum, `x + W(0) · norm(x)`, reads few enough tensors to
    /// be recomputed, but its users are in two kernels, so it is stored too (a GEMM epilogue
    /// recomputed outside its GEMM's kernel needs the raw product stored: see
    /// [`Former::commit`]).
    #[test]
    fn a_residual_stream_sum_is_stored_by_its_gemm_not_duplicated_into_norms() {
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[4, 8]);
        let mut h = x;
        let layers = 4;
        for l in 0..layers {
            let gamma = konst(&mut g, &format!("gamma{l}"), &[8]);
            let n = g
                .add(&format!("norm{l}"), Op::RmsNorm { axis: 1, epsilon: 1e-5 }, &[h, gamma])
                .unwrap();
            let w = konst(&mut g, &format!("w{l}"), &[8, 8]);
            let o = g.add(&format!("mm{l}"), Op::MatMul, &[n, w]).unwrap();
            h = bin(&mut g, &format!("res{l}"), BinaryOp::Add, h, o);
        }
        g.add_output("y", h);
        let k = form_kernels(&g, 7, true, true).unwrap();
        let gemm_epilogues = kinds(&k)
            .iter()
            .filter(|s| s.starts_with("Gemm") && s.ends_with("+epi"))
            .count();
        assert_eq!(
            gemm_epilogues,
            layers,
            "later residual adds are GEMM epilogues: {:?}",
            kinds(&k)
        );
        let most_inputs = k.iter().map(|d| d.inputs.len()).max().unwrap();
        assert!(
            most_inputs <= 4,
            "no kernel re-reads the whole stream (operand, weight and at most two stream terms): {most_inputs} inputs"
        );
    }

    #[test]
    fn fusion_never_binds_more_inputs_than_the_target_allows() {
        let mut g = Graph::new();
        let xs: Vec<NodeId> = (0..10).map(|i| input(&mut g, &format!("x{i}"), &[3, 4])).collect();
        let mut acc = xs[0];
        for (i, &x) in xs.iter().enumerate().skip(1) {
            acc = bin(&mut g, &format!("add{i}"), BinaryOp::Add, acc, x);
        }
        g.add_output("y", acc);
        let k = form_kernels(&g, 7, true, true).unwrap();
        assert!(
            k.iter().all(|d| d.inputs.len() <= 7),
            "{:?}",
            k.iter().map(|d| d.inputs.len()).collect::<Vec<_>>()
        );
        assert!(k.len() < 9, "still fused where it fits: {} kernels", k.len());
    }

    #[test]
    fn a_transpose_feeding_an_elementwise_op_of_another_shape_fuses() {
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[2, 3]);
        let y = input(&mut g, "y", &[3, 2]);
        let t = g.add("t", Op::Transpose { perm: vec![1, 0] }, &[x]).unwrap();
        let s = bin(&mut g, "add", BinaryOp::Add, t, y);
        g.add_output("s", s);
        let k = form_kernels(&g, 7, true, true).unwrap();
        assert_eq!(kinds(&k), ["Injective"]);
        assert_eq!(k[0].inputs.len(), 2);
    }

    #[test]
    fn an_activation_after_a_convolution_is_its_epilogue() {
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[1, 2, 5, 5]);
        let w = konst(&mut g, "w", &[2, 2, 3, 3]);
        let b = konst(&mut g, "b", &[2]);
        let conv = Op::Conv {
            strides: vec![1, 1],
            pads: vec![(1, 1), (1, 1)],
            dilations: vec![1, 1],
            groups: 1,
        };
        let c = g.add("conv", conv, &[x, w, b]).unwrap();
        let r = g.add("relu", Op::Unary(UnaryOp::Relu), &[c]).unwrap();
        let y = bin(&mut g, "res", BinaryOp::Add, r, x);
        g.add_output("y", y);
        let k = form_kernels(&g, 7, true, true).unwrap();
        assert_eq!(kinds(&k), ["Conv+epi"]);
        assert_eq!(&k[0].inputs[..3], &[x, w, b], "the conv's own inputs keep their slots");
    }

    #[test]
    fn an_anchor_read_through_a_duplicated_node_is_not_an_epilogue_core() {
        // conv -> mul -> add, and add feeds both a reduction and a multiply: the cheap chain
        // is duplicated into both kernels, so the conv must be stored, not fused as a core.
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[1, 2, 4, 4]);
        let w = konst(&mut g, "w", &[2, 1, 3, 3]);
        let conv = Op::Conv {
            strides: vec![1, 1],
            pads: vec![(1, 1), (1, 1)],
            dilations: vec![1, 1],
            groups: 2,
        };
        let c = g.add("conv", conv, &[x, w]).unwrap();
        let k = scalar(&mut g, "k", 0.5);
        let m = bin(&mut g, "mul", BinaryOp::Mul, c, k);
        let a = bin(&mut g, "add", BinaryOp::Add, m, k);
        let r = g
            .add(
                "mean",
                Op::Reduce {
                    op: kiln_ir::ReduceOp::Mean,
                    axes: vec![2, 3],
                    keep_dims: true,
                },
                &[a],
            )
            .unwrap();
        let y = bin(&mut g, "scale", BinaryOp::Mul, a, r);
        g.add_output("y", y);
        let kernels = form_kernels(&g, 7, true, true).unwrap();
        let outputs: Vec<NodeId> = kernels.iter().map(|d| d.output).collect();
        for d in &kernels {
            for i in &d.inputs {
                let op = &g.node(*i).op;
                assert!(
                    matches!(op, Op::Input { .. } | Op::Constant(_)) || outputs.contains(i),
                    "{} reads {}, which no kernel stores",
                    d.label,
                    g.node(*i).name
                );
            }
        }
        assert!(outputs.contains(&c), "the conv is stored: {:?}", kinds(&kernels));
    }

    /// Llama's grouped-query attention for `n` new tokens: queries `[KVH, G*n, hd]`, scores
    /// reshaped to `[KVH, G, n, T]` for the `[n, T]` causal mask, softmax, reshaped back
    /// for the ·V product.
    fn gqa_attention(n: usize) -> Graph {
        let (kvh, grp, hd, t) = (2usize, 3usize, 8usize, 5usize);
        let mut g = Graph::new();
        let q = input(&mut g, "q", &[kvh, grp * n, hd]);
        let keys = input(&mut g, "keys", &[t, kvh, hd]);
        let values = input(&mut g, "values", &[t, kvh, hd]);
        let mask = input(&mut g, "mask", &[n, t]);
        let kt = g.add("keys_t", Op::Transpose { perm: vec![1, 2, 0] }, &[keys]).unwrap();
        let s = g.add("scores", Op::MatMul, &[q, kt]).unwrap();
        let c = scalar(&mut g, "scale", 0.35);
        let s = bin(&mut g, "scaled", BinaryOp::Mul, s, c);
        let d = |v: usize| Dim::c(v as i64);
        let s = g
            .add(
                "grouped",
                Op::Reshape {
                    shape: vec![d(kvh), d(grp), d(n), d(t)],
                },
                &[s],
            )
            .unwrap();
        let s = bin(&mut g, "masked", BinaryOp::Add, s, mask);
        let p = g.add("probs", Op::Softmax { axis: 3, log: false }, &[s]).unwrap();
        let p = g
            .add(
                "probs_rows",
                Op::Reshape {
                    shape: vec![d(kvh), d(grp * n), d(t)],
                },
                &[p],
            )
            .unwrap();
        let vt = g
            .add("values_by_head", Op::Transpose { perm: vec![1, 0, 2] }, &[values])
            .unwrap();
        let o = g.add("attn", Op::MatMul, &[p, vt]).unwrap();
        g.add_output("o", o);
        g
    }

    #[test]
    fn grouped_query_attention_is_recognized_as_one_kernel() {
        // A decode step (one new token) and a prompt: one attention kernel at level 3.
        for n in [1, 8] {
            let g = gqa_attention(n);
            let kernels = form_kernels(&g, 7, true, true).unwrap();
            assert_eq!(kinds(&kernels), ["Attention+pro+epi"]);
            assert!(matches!(kernels[0].body, KernelBody::Attention { d: 8, dv: 8, .. }));
        }
        // At level 2 only up to MAX_FEW_QUERY_ROWS query rows per batch fuse: the decode step.
        for n in [1, 8] {
            let fused = form_kernels(&gqa_attention(n), 7, false, true).unwrap().len() == 1;
            assert_eq!(fused, 3 * n <= MAX_FEW_QUERY_ROWS, "{n} new tokens");
        }
        assert!(form_kernels(&gqa_attention(1), 7, false, true).unwrap().len() == 1);
    }

    /// A causal mask computed from indices alone (a `Compute` reading no tensor, as the LLM
    /// builder writes it) and read by two attention blocks is recomputed in each one's score
    /// expression: two kernels, no stored mask.
    #[test]
    fn a_computed_causal_mask_is_inlined_into_every_attention() {
        let (n, t, hd) = (12usize, 12usize, 8usize);
        let mut g = Graph::new();
        let q = input(&mut g, "q", &[2, n, hd]);
        let kt = input(&mut g, "kt", &[2, hd, t]);
        let v = input(&mut g, "v", &[2, t, hd]);
        let visible = kiln_ir::Expr::Coord(1).cmp(BinaryOp::LessEqual, kiln_ir::Expr::Coord(0), DType::I32);
        let mask = g
            .add(
                "mask",
                Op::Compute {
                    shape: vec![Dim::c(n as i64), Dim::c(t as i64)],
                    dtype: DType::F32,
                    expr: kiln_ir::Expr::select(
                        visible,
                        kiln_ir::Expr::Lit(0.0, DType::F32),
                        kiln_ir::Expr::Lit(-1e30, DType::F32),
                    ),
                    name: "CausalMask".into(),
                },
                &[],
            )
            .unwrap();
        for l in 0..2 {
            let s = g.add(&format!("s{l}"), Op::MatMul, &[q, kt]).unwrap();
            let s = bin(&mut g, &format!("m{l}"), BinaryOp::Add, s, mask);
            let p = g
                .add(&format!("p{l}"), Op::Softmax { axis: 2, log: false }, &[s])
                .unwrap();
            let o = g.add(&format!("o{l}"), Op::MatMul, &[p, v]).unwrap();
            g.add_output(&format!("o{l}"), o);
        }
        let k = form_kernels(&g, 7, true, true).unwrap();
        assert_eq!(kinds(&k), ["Attention+pro+epi", "Attention+pro+epi"]);
        assert!(k.iter().all(|d| !d.inputs.contains(&mask)), "the mask is never loaded");
    }

    /// At opt-level 2 (`attention` off) prefill attention is fused over a symbolic key count or
    /// at least [`MIN_FLASH_KEYS`] keys, not over a short constant sequence.
    #[test]
    fn prefill_attention_fuses_at_level_2_over_many_or_symbolic_keys() {
        let build = |t: Dim| {
            let mut g = Graph::new();
            let q = input(&mut g, "q", &[2, 12, 8]);
            let kt = g.add_input(
                "kt",
                TensorType {
                    dtype: DType::F32,
                    shape: vec![Dim::c(2), Dim::c(8), t.clone()],
                },
            );
            let v = g.add_input(
                "v",
                TensorType {
                    dtype: DType::F32,
                    shape: vec![Dim::c(2), t, Dim::c(8)],
                },
            );
            let s = g.add("s", Op::MatMul, &[q, kt]).unwrap();
            let p = g.add("p", Op::Softmax { axis: 2, log: false }, &[s]).unwrap();
            let o = g.add("o", Op::MatMul, &[p, v]).unwrap();
            g.add_output("o", o);
            g
        };
        let fused = |t: Dim| form_kernels(&build(t), 7, false, true).unwrap().len() == 1;
        assert!(!fused(Dim::c(64)));
        assert!(!fused(Dim::c(MIN_FLASH_KEYS as i64 - 1)));
        assert!(fused(Dim::c(MIN_FLASH_KEYS as i64)));
        assert!(fused(Dim::sym("t")));
        assert!(form_kernels(&build(Dim::c(64)), 7, true, true).unwrap().len() == 1);
    }

    #[test]
    fn a_division_of_a_reduction_is_its_epilogue() {
        // Mean pooling: sum(x * mask) / max(sum(mask), eps).
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[2, 5, 4]);
        let m = input(&mut g, "m", &[2, 5, 1]);
        let xm = bin(&mut g, "xm", BinaryOp::Mul, x, m);
        let sum = |g: &mut Graph, name: &str, v: NodeId| {
            g.add(
                name,
                Op::Reduce {
                    op: kiln_ir::ReduceOp::Sum,
                    axes: vec![1],
                    keep_dims: false,
                },
                &[v],
            )
            .unwrap()
        };
        let s = sum(&mut g, "s", xm);
        let c = sum(&mut g, "c", m);
        let eps = scalar(&mut g, "eps", 1e-9);
        let cl = bin(&mut g, "clip", BinaryOp::Max, c, eps);
        let y = bin(&mut g, "div", BinaryOp::Div, s, cl);
        g.add_output("y", y);
        let k = form_kernels(&g, 7, false, true).unwrap();
        assert_eq!(kinds(&k), ["Reduce", "Reduce+pro+epi"]);
        assert_eq!(k[1].output, y);
        assert_eq!(k[1].inputs, vec![c, x, m]);
    }

    #[test]
    fn range_and_fill_index_constants_are_computed_not_loaded() {
        let mut g = Graph::new();
        let table = konst(&mut g, "table", &[6, 4]);
        let types = konst(&mut g, "types", &[2, 4]);
        let pos = g.add_const("pos", Tensor::from_f64(DType::I32, vec![1, 3], &[2.0, 3.0, 4.0]));
        let zeros = g.add_const("zeros", Tensor::from_f64(DType::I32, vec![1, 3], &[0.0; 3]));
        let a = g.add("pos_emb", Op::Gather { axis: 0 }, &[table, pos]).unwrap();
        let b = g.add("type_emb", Op::Gather { axis: 0 }, &[types, zeros]).unwrap();
        let y = bin(&mut g, "sum", BinaryOp::Add, a, b);
        g.add_output("y", y);
        let k = form_kernels(&g, 7, false, true).unwrap();
        assert_eq!(kinds(&k), ["Injective"]);
        assert_eq!(k[0].inputs, vec![table, types], "the index constants are expressions");
    }
}
