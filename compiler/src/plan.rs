//! Static memory planning: every value gets a buffer; intermediates share buffers when their
//! lifetimes (first write .. last read, in dispatch order) do not overlap. Reshapes are views
//! of their input's buffer. Graph outputs live until the end of the program.

use crate::lower::KernelDraft;
use kiln_abi::{BufferKind, BufferSpec, SizeExpr};
use kiln_ir::{DType, Graph, NodeId, Op};
use std::collections::{HashMap, HashSet};

/// Result of planning.
#[derive(Clone, Debug, Default)]
pub struct MemoryPlan {
    /// Buffers in manifest order.
    pub buffers: Vec<BufferSpec>,
    /// Buffer of every value that lives in one (views map to their base's buffer).
    pub buffer_of: HashMap<NodeId, usize>,
    /// Constant nodes that need a weight buffer, in buffer order.
    pub weights: Vec<NodeId>,
    /// Persistent states written by `StateAppend` kernels: (name, shape, dtype, buffer).
    pub states: Vec<(String, Vec<usize>, DType, usize)>,
}

/// Bytes per element in GPU storage (v1 stores every dtype in 32-bit words).
pub const STORAGE_ELEM_BYTES: i64 = 4;

/// Bytes of a state's buffer: f16 states hold two values per 32-bit word (rounded up to a
/// whole word), every other dtype one value per word.
pub fn state_bytes(numel: usize, dtype: DType) -> u64 {
    if dtype == DType::F16 {
        numel.div_ceil(2) as u64 * 4
    } else {
        numel as u64 * STORAGE_ELEM_BYTES as u64
    }
}

/// The value whose buffer holds `id` (follows reshape views).
pub fn root(g: &Graph, mut id: NodeId) -> NodeId {
    while let Op::Reshape { .. } = g.node(id).op {
        id = g.inputs_of(id)[0];
    }
    id
}

fn size_of(g: &Graph, id: NodeId) -> SizeExpr {
    crate::codegen::params::dim_expr(&g.node(id).ty.numel()).times(STORAGE_ELEM_BYTES)
}

/// Bytes of the buffer of input or weight `id`: f16 pairs in whole 32-bit words for a value of
/// `half` ([`crate::half_storage::half_values`]), else one 32-bit word per element.
fn read_only_size(g: &Graph, id: NodeId, half: &HashSet<NodeId>) -> SizeExpr {
    if !half.contains(&id) {
        return size_of(g, id);
    }
    let numel = g.node(id).ty.numel();
    match numel.as_const() {
        Some(n) => SizeExpr::c(crate::half_storage::half_bytes(n as usize) as i64),
        None => crate::codegen::params::dim_expr(&numel).cdiv(2).times(4),
    }
}

/// Plans buffers for the kernels (in dispatch order) of graph `g`; the values of `half` are
/// stored as f16 pairs.
pub fn plan(g: &Graph, kernels: &[KernelDraft], half: &HashSet<NodeId>) -> MemoryPlan {
    let mut p = MemoryPlan::default();
    for &i in g.inputs() {
        p.buffer_of.insert(i, p.buffers.len());
        p.buffers.push(BufferSpec {
            kind: BufferKind::Input,
            size: read_only_size(g, i, half),
            label: g.node(i).name.clone(),
        });
    }
    // Weights: constants read by a kernel or returned as an output.
    let mut needed: Vec<NodeId> = kernels
        .iter()
        .flat_map(|k| k.inputs.iter().map(|&i| root(g, i)))
        .collect();
    needed.extend(g.outputs().iter().map(|o| root(g, o.1)));
    for id in needed {
        if matches!(g.node(id).op, Op::Constant(_)) && !p.buffer_of.contains_key(&id) {
            p.buffer_of.insert(id, p.buffers.len());
            p.weights.push(id);
            p.buffers.push(BufferSpec {
                kind: BufferKind::Weight,
                size: read_only_size(g, id, half),
                label: g.node(id).name.clone(),
            });
        }
    }
    // States: a `StateAppend` value lives in its state's buffer, allocated at its full size.
    for o in kernels.iter().flat_map(KernelDraft::outputs) {
        if let Op::StateAppend { state, state_shape, .. } = &g.node(o).op {
            let dtype = g.node(o).ty.dtype;
            p.buffer_of.insert(o, p.buffers.len());
            p.states
                .push((state.clone(), state_shape.clone(), dtype, p.buffers.len()));
            p.buffers.push(BufferSpec {
                kind: BufferKind::State,
                size: SizeExpr::c(state_bytes(state_shape.iter().product::<usize>(), dtype) as i64),
                label: state.clone(),
            });
        }
    }
    // Lifetimes of intermediates.
    let end = kernels.len();
    let mut last_use: HashMap<NodeId, usize> = HashMap::new();
    for (i, k) in kernels.iter().enumerate() {
        for &v in &k.inputs {
            last_use.insert(root(g, v), i);
        }
    }
    for o in g.outputs() {
        last_use.insert(root(g, o.1), end);
    }
    // Free intermediate buffers with their current size and label.
    let mut free: Vec<usize> = Vec::new();
    let mut holds: Vec<(usize, NodeId)> = Vec::new();
    for (i, k) in kernels.iter().enumerate() {
        // All outputs of a kernel are allocated before any buffer it reads last is released
        // (a kernel never writes a buffer it reads).
        for o in k.outputs() {
            if !p.buffer_of.contains_key(&o) {
                allocate(g, &mut p, &mut free, &mut holds, o);
            }
        }
        // Release buffers whose value was read for the last time by this kernel. A value that
        // is never read (dead output of a kernel) is released right away.
        holds.retain(|&(buf, v)| {
            let last = last_use.get(&v).copied().unwrap_or(i);
            if last <= i {
                free.push(buf);
                false
            } else {
                true
            }
        });
    }
    // Views share their base's buffer.
    for id in g.topo_order() {
        let r = root(g, id);
        if r != id {
            if let Some(&b) = p.buffer_of.get(&r) {
                p.buffer_of.insert(id, b);
            }
        }
    }
    p
}

/// Gives value `o` an intermediate buffer: a free one (grown to fit) or a new one.
fn allocate(g: &Graph, p: &mut MemoryPlan, free: &mut Vec<usize>, holds: &mut Vec<(usize, NodeId)>, o: NodeId) {
    let need = size_of(g, o);
    let pick = pick_slot(&p.buffers, free, &need);
    let b = match pick {
        Some(pos) => {
            let b = free.remove(pos);
            let spec = &mut p.buffers[b];
            let mut sizes = max_leaves(&spec.size);
            sizes.push(need);
            spec.size = max_of(sizes).expect("at least one size");
            spec.label.push_str(&format!(", {}", g.node(o).name));
            b
        }
        None => {
            p.buffers.push(BufferSpec {
                kind: BufferKind::Intermediate,
                size: need,
                label: g.node(o).name.clone(),
            });
            p.buffers.len() - 1
        }
    };
    p.buffer_of.insert(o, b);
    holds.push((b, o));
}

/// The largest of `sizes` as one expression: equal ones counted once, combined pairwise so the
/// nesting depth grows with the logarithm of the count (a language model has hundreds of
/// split-K GEMMs; the manifest parser refuses expressions nested more than 64 deep).
fn max_of(sizes: Vec<SizeExpr>) -> Option<SizeExpr> {
    let mut seen = std::collections::HashSet::new();
    let mut largest_const: Option<i64> = None;
    let mut sizes: Vec<SizeExpr> = sizes
        .into_iter()
        .flat_map(|s| max_leaves(&s))
        .filter(|s| match s {
            SizeExpr::Const(c) => {
                largest_const = Some(largest_const.map_or(*c, |l| l.max(*c)));
                false
            }
            _ => seen.insert(s.to_string()),
        })
        .collect();
    sizes.extend(largest_const.map(SizeExpr::Const));
    while sizes.len() > 1 {
        let mut next = Vec::with_capacity(sizes.len().div_ceil(2));
        let mut it = sizes.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => a.max(b),
                None => a,
            });
        }
        sizes = next;
    }
    sizes.pop()
}

/// The operands of a (nested) `max`, or the expression itself.
fn max_leaves(e: &SizeExpr) -> Vec<SizeExpr> {
    match e {
        SizeExpr::Bin(kiln_abi::expr::BinOp::Max, a, b) => {
            let mut v = max_leaves(a);
            v.extend(max_leaves(b));
            v
        }
        other => vec![other.clone()],
    }
}

/// Adds the partial-sum buffer of split-K GEMMs (`None` when no kernel needs one): one buffer
/// sized for the largest need, shared by all of them. It is never aliased with a value: each
/// split-K kernel writes it and its combine kernel, the next dispatch, reads it, so the uses of
/// different kernels never overlap.
pub fn add_partial_sums(p: &mut MemoryPlan, needs: impl IntoIterator<Item = SizeExpr>) -> Option<usize> {
    let size = max_of(needs.into_iter().collect())?;
    p.buffers.push(BufferSpec {
        kind: BufferKind::Intermediate,
        size,
        label: "split-K partial sums".into(),
    });
    Some(p.buffers.len() - 1)
}

/// Adds the scratch buffer that kernels combining their own partial results bind
/// ([`crate::codegen::RenderedKernel::scratch`]), sized for the largest need (none when no
/// kernel has one). It is a buffer of its own, never given to other values: its arrival
/// counters must read zero whenever such a kernel starts.
pub fn add_scratch(p: &mut MemoryPlan, needs: impl IntoIterator<Item = SizeExpr>) -> Option<usize> {
    let size = max_of(needs.into_iter().collect())?;
    p.buffers.push(BufferSpec {
        kind: BufferKind::Scratch,
        size,
        label: "arrival counters and partial results".into(),
    });
    Some(p.buffers.len() - 1)
}

/// Value every symbol takes when the planner compares symbolic sizes (a prompt of a few hundred
/// tokens; sizes linear in a symbol order the same way for any value this large).
pub const PLAN_SYMBOL_ESTIMATE: i64 = 512;

/// `e` with every symbol at [`PLAN_SYMBOL_ESTIMATE`] (`i64::MAX` where that overflows).
fn estimate(e: &SizeExpr) -> i64 {
    fn syms(e: &SizeExpr, out: &mut kiln_abi::expr::Bindings) {
        match e {
            SizeExpr::Sym(s) => {
                out.insert(s.clone(), PLAN_SYMBOL_ESTIMATE);
            }
            SizeExpr::Bin(_, a, b) => {
                syms(a, out);
                syms(b, out);
            }
            SizeExpr::Const(_) => {}
        }
    }
    let mut b = kiln_abi::expr::Bindings::new();
    syms(e, &mut b);
    e.eval(&b).unwrap_or(i64::MAX)
}

/// Picks the free buffer that best fits `need`: an equal size, else the smallest that is large
/// enough, else the largest (which grows the least). Symbolic sizes are compared at
/// [`PLAN_SYMBOL_ESTIMATE`], so a prompt's small values (the hidden state) stay in small
/// buffers and its large ones (the FFN's) in large ones, instead of every buffer growing to
/// the largest value that ever passes through it.
fn pick_slot(buffers: &[BufferSpec], free: &[usize], need: &SizeExpr) -> Option<usize> {
    if free.is_empty() {
        return None;
    }
    if let Some(pos) = free.iter().position(|&b| buffers[b].size == *need) {
        return Some(pos);
    }
    let n = estimate(need);
    let sized: Vec<(i64, usize)> = free
        .iter()
        .enumerate()
        .map(|(pos, &b)| (estimate(&buffers[b].size), pos))
        .collect();
    sized
        .iter()
        .filter(|&&(s, _)| s >= n)
        .min()
        .or_else(|| sized.iter().max())
        .map(|&(_, pos)| pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::lower_node;
    use kiln_ir::{DType, Dim, SliceAxis, TensorType, UnaryOp};

    /// `a = x[:, :4]` (4n elements) and `b = relu(x)` (16n) are read by `y = concat(a, b)`
    /// (20n); then `z = y[:, :12]` (12n, the output) takes a freed buffer. Both free buffers
    /// are smaller than a fresh one, neither equals `z`'s size: the first free one (`a`'s, 4n)
    /// used to be taken and grown to 12n; comparing the symbolic sizes at
    /// [`PLAN_SYMBOL_ESTIMATE`] takes `b`'s (16n), which fits without growing.
    #[test]
    fn symbolic_values_take_the_free_buffer_that_fits() {
        let n = Dim::sym("n");
        let mut g = Graph::new();
        let x = g.add_input(
            "x",
            TensorType {
                dtype: DType::F32,
                shape: vec![n, Dim::c(16)],
            },
        );
        let cols = |end| Op::Slice {
            axes: vec![SliceAxis {
                axis: 1,
                start: 0,
                end,
                step: 1,
            }],
        };
        let a = g.add("a", cols(4), &[x]).unwrap();
        let b = g.add("b", Op::Unary(UnaryOp::Relu), &[x]).unwrap();
        let y = g.add("y", Op::Concat { axis: 1 }, &[a, b]).unwrap();
        let z = g.add("z", cols(12), &[y]).unwrap();
        g.add_output("z", z);
        let kernels: Vec<KernelDraft> = [a, b, y, z].iter().map(|&k| lower_node(&g, k).unwrap()).collect();
        let p = plan(&g, &kernels, &HashSet::new());
        assert_eq!(p.buffer_of[&z], p.buffer_of[&b], "{:#?}", p.buffers);
        let total: i64 = p
            .buffers
            .iter()
            .filter(|b| b.kind == BufferKind::Intermediate)
            .map(|b| estimate(&b.size))
            .sum();
        assert_eq!(total, (4 + 16 + 20) * PLAN_SYMBOL_ESTIMATE * STORAGE_ELEM_BYTES);
    }
}
