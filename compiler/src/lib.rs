//! Kiln's compiler: frontends, passes, WGSL codegen with naga validation, memory planning and
//! the bundle writer.
//!
//! [`compile`] runs the pass pipeline ([`passes`]) on a loaded [`Model`]: specialize dims →
//! graph rewrites → form kernels (fusion per opt-level) → select schedules (tuning record or
//! analytic default, in `kiln_schedules::select`) → render WGSL from templates and validate it
//! with naga → plan memory → build the manifest. [`bundle::write_bundle`] then writes it
//! atomically.

pub mod bundle;
pub mod codegen;
pub mod error;
pub mod frontend;
pub mod half_storage;
pub mod index_inputs;
pub mod llm;
pub mod lower;
pub mod model;
pub mod opt;
pub mod options;
pub mod passes;
pub mod plan;
pub mod programs;
pub mod quant_layout;
pub mod split_weights;

pub use bundle::{write_bundle, CompiledBundle};
pub use error::CompileError;
pub use model::Model;
pub use options::{CompileOptions, Precision, QuantLayout};

use codegen::RenderedKernel;
use kiln_abi::{Dispatch, ElemType, IoSpec, KernelSpec, Manifest, Program, Requirements, WeightSpec};
use kiln_ir::{DType, Dim, Graph, NodeId, Op, Tensor};
use kiln_schedules::{Schedule, Workload};
use lower::{KernelBody, KernelDraft};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Compiler version recorded in manifests.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Caller-facing element type of an IR dtype.
pub fn elem_type(d: DType) -> ElemType {
    match d {
        DType::F32 => ElemType::F32,
        DType::F16 => ElemType::F16,
        DType::I32 => ElemType::I32,
        DType::U32 => ElemType::U32,
        DType::I8 => ElemType::I8,
        DType::U8 => ElemType::U8,
        DType::Bool => ElemType::Bool,
    }
}

/// GPU storage element type of an IR dtype (v1: 32-bit words for everything).
pub fn storage_type(d: DType) -> ElemType {
    match d {
        DType::F32 | DType::F16 => ElemType::F32,
        DType::I32 | DType::I8 => ElemType::I32,
        DType::U32 | DType::U8 | DType::Bool => ElemType::U32,
    }
}

/// Whether `id` lives in an f16 state's buffer (two values per 32-bit word).
fn is_packed_state(g: &Graph, id: NodeId) -> bool {
    let r = plan::root(g, id);
    matches!(g.node(r).op, Op::StateAppend { .. }) && g.node(r).ty.dtype == DType::F16
}

/// The input slots of a kernel for the renderer: their dtypes and which hold f16 pairs (an f16
/// state, or a value of `half`: [`half_storage::half_values`]).
fn input_slots(g: &Graph, d: &KernelDraft, layout: QuantLayout, half: &HashSet<NodeId>) -> codegen::Slots {
    codegen::Slots {
        dtypes: d.inputs.iter().map(|&i| g.node(i).ty.dtype).collect(),
        // u32 words: an f16 state's pairs, or an integer-dot GEMV's 8-bit x blocks.
        packed: d
            .inputs
            .iter()
            .enumerate()
            .map(|(s, &i)| {
                is_packed_state(g, i)
                    || half.contains(&plan::root(g, i))
                    || (s == 0 && matches!(d.body, KernelBody::QGemm { xq8: true, .. }))
            })
            .collect(),
        block_columns: d
            .inputs
            .iter()
            .map(|&i| quant_layout::block_column_weight(g, i, layout).is_some())
            .collect(),
    }
}

fn storage_dtype(d: DType) -> DType {
    match d {
        DType::F32 | DType::F16 => DType::F32,
        DType::I32 | DType::I8 => DType::I32,
        DType::U32 | DType::U8 | DType::Bool => DType::U32,
    }
}

/// Applies `--dim` values and checks that each names a symbol of the model.
pub fn specialize(model: &Model, opts: &CompileOptions) -> Result<Graph, CompileError> {
    let symbols = model.graph.symbols();
    for name in opts.dims.keys() {
        if !symbols.contains(name) {
            return Err(CompileError::Usage(format!(
                "--dim {name}: the model has no symbolic dim '{name}' (its symbolic dims: {})",
                if symbols.is_empty() {
                    "none".to_string()
                } else {
                    symbols.join(", ")
                }
            )));
        }
    }
    let mut g = if opts.dims.is_empty() {
        model.graph.clone()
    } else {
        model.graph.specialize(&opts.dims)?
    };
    g.remove_dead();
    Ok(g)
}

/// The graph kernel formation sees: the model specialized (`--dim`), optimized, rewritten
/// (e.g. sibling matmuls merged) and its oversized weights split for the target. `after` sees
/// each pass's name and result in order (`compile` times and dumps through it); the tuner
/// forms its kernels from the same graph, so its keys are the ones `compile` looks up.
pub fn prepare_graph(
    model: &Model,
    opts: &CompileOptions,
    mut after: impl FnMut(&'static str, &Graph) -> Result<(), CompileError>,
) -> Result<Graph, CompileError> {
    let g = specialize(model, opts)?;
    after("specialize", &g)?;
    let g = opt::optimize(g, opts)?;
    after("optimize", &g)?;
    let mut g = passes::rewrite(g, opts)?;
    // After the rewrites, which may merge weights: split what exceeds the binding limit.
    split_weights::split_for_target(&mut g, &opts.target)?;
    after("rewrite", &g)?;
    Ok(g)
}

/// The `form-kernels` pass ([`lower::fuse::form_kernels`]) for `opts`' target and weight
/// layout. Block-column-major weights are read by the row-parallel GEMV, which has no
/// integer-dot form, so there every 8-bit activation is stored as f32 (the same values) and no
/// gated GEMV rounds its own x.
pub fn form_kernels(g: &Graph, opts: &CompileOptions) -> Result<Vec<KernelDraft>, CompileError> {
    let max_inputs = opts.target.max_storage_buffers_per_shader_stage.saturating_sub(1) as usize;
    let block_columns = opts.quant_layout == QuantLayout::BlockColumns;
    let mut drafts = lower::fuse::form_kernels_with(g, opts.opt_level, max_inputs, !block_columns)?;
    if block_columns {
        for d in &mut drafts {
            match &mut d.body {
                KernelBody::QuantizeRows { packed, .. } => *packed = false,
                KernelBody::QGemm { xq8, q8_out, .. } => {
                    *xq8 = false;
                    if q8_out.is_some() {
                        *q8_out = Some(lower::Q8Storage::F32);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(drafts)
}

/// The K a GEMM's schedule is chosen for when K alone is symbolic (M, N and the batch are
/// constant): a language model's context in a decode step, whose `probs · V` product has a few
/// query rows and one head's columns, so only splitting K gives the GPU work. A typical
/// compiled context; the split count is then fixed and each slice walks its share of the
/// runtime K (`cdiv(K, ksplit)`, in whole K-steps), so a shorter context leaves the last slices
/// empty and a longer one lengthens every slice.
pub const SYMBOLIC_K_ESTIMATE: u64 = 1024;

/// Estimated value of a dim for the analytic schedule model (symbols count as 64).
fn estimate(d: &Dim) -> u64 {
    let b: kiln_ir::DimBindings = d.symbols().into_iter().map(|s| (s, 64)).collect();
    d.eval(&b).unwrap_or(64).max(1) as u64
}

/// Suffix of the label of a split-K kernel's partial-sum dispatch (after its kernel's label).
pub const SPLIT_K_PARTIAL_LABEL: &str = " (split-K partial sums)";

/// Suffix of the label of a split-K kernel's combine dispatch.
pub const SPLIT_K_COMBINE_LABEL: &str = " (split-K combine)";

/// The label of the kernel a dispatch labelled `label` belongs to: a split-K's partial-sum and
/// combine dispatches belong to their GEMM.
pub fn kernel_label(label: &str) -> &str {
    label
        .strip_suffix(SPLIT_K_PARTIAL_LABEL)
        .or_else(|| label.strip_suffix(SPLIT_K_COMBINE_LABEL))
        .unwrap_or(label)
}

/// Tuning key of a kernel draft: its kind and problem shape.
pub fn tuning_key(body: &KernelBody) -> String {
    let dims = |s: &[Dim]| s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x");
    match body {
        KernelBody::Gemm { a, b, .. } => {
            let (m, k, n, batch, ..) = codegen::gemm_dims(a, b);
            format!("gemm:b={},m={m},n={n},k={k}", Dim::product(&batch))
        }
        KernelBody::Injective { shape, .. } => format!("injective:{}", dims(shape)),
        KernelBody::Attention { batch, sq, sk, d, dv } => format!("attention:b={batch},sq={sq},sk={sk},d={d},dv={dv}"),
        KernelBody::TopK { shape, axis, k, .. } => format!("topk:{}:{axis}:{k}", dims(shape)),
        KernelBody::Scatter { data, indices, .. } => format!("scatter:{}:{}", dims(data), dims(indices)),
        KernelBody::Sample { rows, vocab, window } => format!("sample:{rows}x{vocab}:{window}"),
        KernelBody::Conv {
            x, w, strides, groups, ..
        } => {
            format!("conv:x={},w={},s={strides:?},g={groups}", dims(x), dims(w))
        }
        KernelBody::Reduce { in_shape, axes, .. } => format!("reduce:{}:{axes:?}", dims(in_shape)),
        KernelBody::Softmax { shape, axis, .. } => format!("softmax:{}:{axis}", dims(shape)),
        KernelBody::LayerNorm { shape, axis, rms, .. } => {
            format!("{}:{}:{axis}", if *rms { "rmsnorm" } else { "layernorm" }, dims(shape))
        }
        KernelBody::QGemm {
            x,
            block,
            n,
            k,
            norm,
            glu,
            xq8,
            q8_out,
            quantize_x,
            ..
        } => {
            let m = Dim::product(&x[..x.len() - 1]);
            let kind = match (norm.is_some(), glu) {
                (false, false) => "qgemm",
                (true, false) => "qgemm_rmsnorm",
                (false, true) => "qgemm_glu",
                (true, true) => "qgemm_rmsnorm_glu",
            };
            // 8-bit x is another kernel (integer dot products); its records are its own.
            let x8 = match (xq8, quantize_x) {
                (true, _) => "_x8",
                // x rounded inside the GEMV, after its norm prologue.
                (false, true) => "_xq8",
                _ => "",
            };
            // So is a GEMV that rounds its outputs (whole blocks of outputs per workgroup); how
            // it stores them changes only the stores, so both storages share its records.
            let y8 = if q8_out.is_some() { "_y8" } else { "" };
            format!("{kind}{x8}{y8}:{block}:m={m},n={n},k={k}")
        }
        KernelBody::QuantizeRows { rows, k, norm, packed } => format!(
            "quantize{}{}:rows={rows},k={k}",
            if norm.is_some() { "_rmsnorm" } else { "" },
            if *packed { "_packed" } else { "" }
        ),
        KernelBody::StateWrite { shape, .. } => format!("statewrite:{}", dims(shape)),
        KernelBody::Parts(parts) => {
            let keys: Vec<String> = parts.iter().map(|p| tuning_key(&p.body)).collect();
            format!("parts[{}]", keys.join(";"))
        }
        KernelBody::QGather { rows, block, n, k } => format!("qgather:{block}:rows={rows},n={n},k={k}"),
    }
}

/// The scheduling problem a kernel draft poses (symbolic dims estimated as 64, a quantized
/// matmul's symbolic rows as [`kiln_schedules::defaults::QUANT_PROMPT_ROWS`]).
pub fn workload(body: &KernelBody) -> Workload {
    match body {
        KernelBody::Injective { shape, dtype, expr } => Workload::Injective {
            numel: estimate(&Dim::product(shape)),
            vec4: codegen::injective_vec4_pays(shape, *dtype, expr),
        },
        KernelBody::StateWrite { shape, .. } => Workload::Injective {
            numel: estimate(&Dim::product(shape)),
            vec4: false,
        },
        // Several outputs: the scalar injective template over the largest part.
        KernelBody::Parts(parts) => parts
            .iter()
            .map(|p| workload(&p.body))
            .reduce(|a, b| match (a, b) {
                (Workload::Injective { numel: x, .. }, Workload::Injective { numel: y, .. }) => Workload::Injective {
                    numel: x.max(y),
                    vec4: false,
                },
                (a, _) => a,
            })
            .map(|w| match w {
                Workload::Injective { numel, .. } => Workload::Injective { numel, vec4: false },
                other => other,
            })
            .expect("a kernel of parts has parts"),
        KernelBody::QGather { rows, k, .. } => Workload::Injective {
            numel: estimate(rows) * *k as u64,
            vec4: false,
        },
        KernelBody::TopK { shape, axis, .. } => Workload::PerRow {
            rows: estimate(&Dim::product(shape)) / estimate(&shape[*axis]),
        },
        KernelBody::Sample { rows, .. } => Workload::PerRow { rows: estimate(rows) },
        KernelBody::Scatter { data, .. } => Workload::PerRow {
            rows: estimate(&Dim::product(data)),
        },
        // The decode schedule (split over keys): an injective workgroup of 256 threads, a few
        // threads per key of a step (codegen::DecodeTile).
        KernelBody::Attention { batch, sq, dv, .. } if codegen::decode_rows(sq).is_some() => Workload::Injective {
            numel: estimate(&batch.mul(sq)) * *dv as u64,
            vec4: false,
        },
        // Prefill: the flash-attention kind, tiled over query rows and key blocks.
        KernelBody::Attention { batch, sq, .. } => Workload::Attention {
            batch: estimate(batch),
            rows: estimate(sq),
        },
        KernelBody::Reduce { in_shape, axes, .. } => {
            let len = estimate(&Dim::product(axes.iter().map(|&a| &in_shape[a])));
            Workload::RowReduce {
                rows: estimate(&Dim::product(in_shape)) / len.max(1),
                len,
            }
        }
        KernelBody::Softmax { shape, axis, .. } => {
            let len = estimate(&shape[*axis]);
            Workload::RowReduce {
                rows: estimate(&Dim::product(shape)) / len.max(1),
                len,
            }
        }
        KernelBody::QuantizeRows { rows, k, .. } => Workload::Norm {
            rows: estimate(rows),
            len: *k as u64,
        },
        KernelBody::LayerNorm { shape, axis, .. } => Workload::Norm {
            rows: estimate(&Dim::product(&shape[..*axis])),
            len: estimate(&Dim::product(&shape[*axis..])),
        },
        KernelBody::Gemm { a, b, dtype } => {
            let (m, k, n, batch, ..) = codegen::gemm_dims(a, b);
            let batch = Dim::product(&batch);
            // Split-K needs a fixed count of partial sums: M, N and the batch constant. K may be
            // symbolic (a decode step's `probs · V` over the context): each slice then walks its
            // share of the runtime K, and the split is chosen for [`SYMBOLIC_K_ESTIMATE`].
            let fixed = [&m, &n, &batch].iter().all(|d| d.as_const().is_some());
            let k_est = if fixed && k.as_const().is_none() {
                SYMBOLIC_K_ESTIMATE
            } else {
                estimate(&k)
            };
            Workload::Gemm {
                m: estimate(&m),
                n: estimate(&n),
                k: k_est,
                batch: estimate(&batch),
                gemv: *dtype == DType::F32,
                split_k: *dtype == DType::F32 && fixed,
            }
        }
        KernelBody::QGemm { x, n, k, glu, norm, .. } => Workload::QuantGemm {
            // A symbolic row count is a prefill's prompt length: planned for a typical prompt.
            m: match Dim::product(&x[..x.len() - 1]) {
                m if m.as_const().is_some() => estimate(&m),
                _ => kiln_schedules::defaults::QUANT_PROMPT_ROWS,
            },
            // A gated pair's workgroups each compute lanes x lane rows of its outputs (and the
            // same number of rows of each half of W).
            n: if *glu { *n as u64 / 2 } else { *n as u64 },
            k: *k as u64,
            norm: norm.is_some(),
            glu: *glu,
        },
        // One input channel per group (depthwise): the direct kernel, an element per thread.
        KernelBody::Conv { w, out, .. } if codegen::conv::direct_applies(w) => Workload::Injective {
            numel: estimate(&Dim::product(out)),
            vec4: false,
        },
        KernelBody::Conv { w, out, groups, .. } => Workload::Gemm {
            m: estimate(&w[0]) / *groups as u64,
            n: estimate(&Dim::product(&out[2..])),
            k: estimate(&Dim::product(&w[1..])),
            batch: estimate(&out[0]) * *groups as u64,
            gemv: false,
            split_k: false,
        },
    }
}

/// The scheduling problem of a draft on a target: [`workload`], with the GEMV kind ruled out
/// when the GEMM's operands come through fused prologues (the GEMV template reads them
/// directly), and split-K ruled out when its combine kernel (the draft's inputs, the partial
/// sums and the output) would exceed the target's storage buffers per stage.
pub fn draft_workload(d: &KernelDraft, limits: &kiln_schedules::DeviceLimits) -> Workload {
    match workload(&d.body) {
        Workload::Gemm {
            m,
            n,
            k,
            batch,
            gemv,
            split_k,
        } => Workload::Gemm {
            m,
            n,
            k,
            batch,
            gemv: gemv && d.operands.is_empty(),
            split_k: split_k && d.inputs.len() as u32 + 2 <= limits.max_storage_buffers_per_shader_stage,
        },
        w => w,
    }
}

/// The analytic default schedule of a kernel draft for a limits profile: what `compile` gives
/// it without a tuning record (the draft's fused prologues and inputs rule out some kinds,
/// [`draft_workload`]).
///
/// A quantized GEMV keeps several rows of W per lane only for the block types whose lanes
/// share their x reads between rows (q4_0, q4_1, q8_0: `qgemv.wgsl`'s `xshare`); for the
/// others it would only launch fewer workgroups (measured slower on the H200 for f16 and
/// q8_0 at 4 rows per lane).
pub fn default_schedule(d: &KernelDraft, limits: &kiln_schedules::DeviceLimits) -> Schedule {
    body_default(
        &d.body,
        kiln_schedules::select::default_for(&draft_workload(d, limits), limits),
        limits,
    )
}

/// The row-parallel GEMV's default for a block-column-major weight (`QuantLayout`): 64
/// consecutive outputs per workgroup, 4 threads splitting each one's blocks (the shape
/// `benches/qgemv_layouts.rs` calls `blockcols 4`; not yet measured against the others on a
/// GPU). Other drafts keep `s`.
fn block_columns_default(g: &Graph, d: &KernelDraft, s: Schedule, layout: QuantLayout) -> Schedule {
    match (&d.body, s) {
        (KernelBody::QGemm { .. }, Schedule::Gemv(p))
            if d.inputs
                .get(1)
                .is_some_and(|&w| quant_layout::block_column_weight(g, w, layout).is_some()) =>
        {
            Schedule::Gemv(kiln_schedules::GemvParams::new(64, 4, p.rows))
        }
        _ => s,
    }
}

/// The workload's default `s` adjusted for what only the body tells (see [`default_schedule`]).
///
/// A GEMV that rounds its outputs to 8 bits owns whole blocks of 32 outputs per workgroup.
/// Where `limits` allow 1024 threads, 32 lanes of one row with 32 threads each (the K split
/// of the gated GEMV's default, so as many threads in flight): on the H200 at the 1.7B shape
/// this ran 740.7 tok/s decode against 721.5 for 8 lanes of 4 rows, the best 256-thread form
/// (docs/performance.md, fifteenth session). Else 8 lanes of 4 rows (rows sharing their x
/// reads) for one row of x where the block type allows, or 32 lanes of one row.
fn body_default(body: &KernelBody, s: Schedule, limits: &kiln_schedules::DeviceLimits) -> Schedule {
    match (body, s) {
        (
            KernelBody::QGemm {
                block, q8_out: Some(_), ..
            },
            Schedule::Gemv(p),
        ) if !(p.lanes * p.lane_rows).is_multiple_of(32) => {
            let wide = kiln_schedules::GemvParams {
                lanes: 32,
                lane_rows: 1,
                ksplit: 32,
                ..p
            };
            if Schedule::Gemv(wide).validate(limits).is_ok() {
                return Schedule::Gemv(wide);
            }
            let (lanes, lane_rows, ksplit) = if block.has_int8_dot() && p.rows == 1 {
                (8, 4, 32)
            } else {
                (32, 1, 8)
            };
            Schedule::Gemv(kiln_schedules::GemvParams {
                lanes,
                lane_rows,
                ksplit,
                ..p
            })
        }
        // x normalized and rounded in every workgroup: few wide workgroups, so the prologue
        // is repeated less.
        (KernelBody::QGemm { quantize_x: true, .. }, Schedule::Gemv(p)) => {
            let wide = kiln_schedules::GemvParams {
                lanes: 32,
                lane_rows: 1,
                ksplit: 32,
                ..p
            };
            if Schedule::Gemv(wide).validate(limits).is_ok() {
                Schedule::Gemv(wide)
            } else {
                s
            }
        }
        (KernelBody::QGemm { block, .. }, Schedule::Gemv(p)) if p.lane_rows > 1 && !block.has_int8_dot() => {
            Schedule::Gemv(kiln_schedules::GemvParams { lane_rows: 1, ..p })
        }
        _ => s,
    }
}

/// Renders a draft with its default schedule `chosen.0`. A default GEMV split over K
/// ([`kiln_schedules::GemvParams::slices`]) that the kernel cannot take (symbolic shapes, not
/// f32, no storage binding left for the scratch buffer) runs unsplit instead, and `chosen`
/// records that.
fn render_default(
    d: &KernelDraft,
    in_dtypes: &codegen::Slots,
    out_dtype: DType,
    chosen: &mut (Schedule, kiln_schedules::select::Source),
    limits: &kiln_schedules::DeviceLimits,
) -> Result<RenderedKernel, CompileError> {
    let r = codegen::render(d, in_dtypes, out_dtype, without_subgroups(chosen.0), limits);
    match (r, chosen.0) {
        (Err(CompileError::Unsupported { msg, .. }), Schedule::Gemv(p)) if p.slices > 1 => {
            let s = Schedule::Gemv(p.with_slices(1));
            log::debug!("{}: {msg}; {s} instead", d.label);
            chosen.0 = s;
            codegen::render(d, in_dtypes, out_dtype, s, limits)
        }
        (r, _) => r,
    }
}

/// Whether GEMV schedule `p` suits a quantized matmul draft: one that rounds its outputs to 8
/// bits needs whole blocks of 32 outputs per workgroup (the tuner skips the others).
pub fn gemv_fits(body: &KernelBody, p: &kiln_schedules::GemvParams) -> bool {
    !matches!(body, KernelBody::QGemm { q8_out: Some(_), .. }) || (p.lanes * p.lane_rows).is_multiple_of(32)
}

/// `--precision f16`: the cooperative-matrix variant of a kernel. An f32 or f16 GEMM gets one when it
/// has constant dims (constant parameters and grid), no split-K, and operands the variant can
/// read as vec4s; a quantized GEMM (a prefill's tiled product, more than 8 rows planned) gets
/// one whatever its row count, whose grid then follows the rows as the base kernel's does. Its
/// schedule is the tuning record under `coop <key>` when there is one, else the analytic
/// default. The variant must bind the same parameters as the base kernel.
fn coop_variant(
    d: &KernelDraft,
    base: &RenderedKernel,
    g: &Graph,
    half: &HashSet<NodeId>,
    opts: &CompileOptions,
) -> Result<Option<RenderedKernel>, CompileError> {
    if opts.precision != Precision::F16 {
        return Ok(None);
    }
    // A split flash attention keeps its combine: the variant writes the same partial rows.
    let base_slices = match base.schedule {
        Schedule::Attention(p) => p.slices,
        _ if base.split.is_some() => return Ok(None),
        _ => 1,
    };
    let in_dtypes = input_slots(g, d, opts.quant_layout, half);
    let default = match (&d.body, workload(&d.body), base.schedule) {
        (
            KernelBody::Gemm {
                dtype: DType::F32 | DType::F16,
                ..
            },
            Workload::Gemm { m, n, batch, .. },
            _,
        ) => {
            if !base.param_values.iter().all(|v| v.as_const().is_some()) {
                return Ok(None);
            }
            // An operand held as f16 pairs (only a GEMM's operands can be: `half_storage`),
            // and no epilogue: with one (a bias and ReLU, f16 MLP on the H200) the 64x64
            // subgroup tiles took 323 against 251 us for 64x32 (twenty-fourth session).
            let pairs = (0..d.inputs.len()).any(|s| in_dtypes.is_packed(s)) && d.epilogue.is_none();
            Some(if pairs {
                kiln_schedules::defaults::coop_gemm_pairs(batch, m, n, &opts.target)
            } else {
                kiln_schedules::defaults::coop_gemm(batch, m, n, &opts.target)
            })
        }
        // Only the tiled quantized GEMM: few rows take the GEMV kind, which stays.
        (KernelBody::QGemm { .. }, Workload::QuantGemm { m, n, .. }, Schedule::Gemm(_)) => {
            Some(kiln_schedules::defaults::quant_coop_gemm(m, n, &opts.target))
        }
        // No default where only the forms measured slower than the f32 kernel fit; a record
        // may still ask for one.
        (KernelBody::Attention { d: dq, dv, .. }, _, Schedule::Attention(_)) => {
            kiln_schedules::defaults::coop_attention(base_slices, *dq as u32, *dv as u32, &opts.target)
        }
        _ => return Ok(None),
    };
    let attention = matches!(d.body, KernelBody::Attention { .. });
    let key = format!("coop {}", tuning_key(&d.body));
    let record = opts
        .tuning
        .as_ref()
        .and_then(|db| db.records.get(&key))
        .and_then(|r| match r.schedule {
            s @ Schedule::CoopGemm(_) if !attention => Some(s),
            // The base kernel's slices: its combine adds the variant's partial rows.
            Schedule::CoopAttention(p) if attention => {
                Some(Schedule::CoopAttention(kiln_schedules::CoopAttentionParams {
                    slices: base_slices,
                    ..p
                }))
            }
            _ => None,
        });
    let Some(schedule) = record.or(default) else {
        return Ok(None);
    };
    let constant_grid = matches!(d.body, KernelBody::Gemm { .. });
    match codegen::render_variant(d, &in_dtypes, g.node(d.output).ty.dtype, schedule, &opts.target, base) {
        Ok(v)
            if v.param_names == base.param_names
                && (!constant_grid || v.grid.iter().all(|g| g.as_const().is_some()))
                && v.split.as_ref().map(|s| &s.partial_bytes) == base.split.as_ref().map(|s| &s.partial_bytes) =>
        {
            Ok(Some(v))
        }
        Ok(v) => {
            log::debug!(
                "no f16 variant for {}: its parameters {:?}, grid {:?} or partial rows do not match the kernel's ({:?}, {:?})",
                d.label,
                v.param_names,
                v.grid,
                base.param_names,
                base.grid
            );
            Ok(None)
        }
        Err(CompileError::Unsupported { msg, .. }) => {
            log::debug!("no f16 variant for {}: {msg}", d.label);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `--precision f16`: a default flash attention whose cooperative-matrix variant the target
/// can take is split over the key slices the variant prefers
/// ([`kiln_schedules::defaults::coop_attention_slices`]): the variant keeps the base kernel's
/// slices, whose combine adds its partial rows.
fn f16_attention_default(body: &KernelBody, w: &Workload, s: Schedule, opts: &CompileOptions) -> Schedule {
    let coop = |d: usize, dv: usize| kiln_schedules::defaults::coop_attention(1, d as u32, dv as u32, &opts.target);
    match (body, w, s) {
        (KernelBody::Attention { d, dv, .. }, Workload::Attention { batch, rows }, Schedule::Attention(p))
            if opts.precision == Precision::F16 && p.is_tiled() && coop(*d, *dv).is_some() =>
        {
            let slices = kiln_schedules::defaults::coop_attention_slices(*batch, *rows, &opts.target);
            kiln_schedules::defaults::attention_sliced(*batch, *rows, slices, &opts.target)
        }
        _ => s,
    }
}

/// Whether `--precision f16` may give the draft a cooperative-matrix variant that replaces a
/// split-K GEMM: an f32 or f16 GEMM with constant operand shapes ([`coop_variant`] decides).
fn may_have_coop_variant(d: &KernelDraft, opts: &CompileOptions) -> bool {
    let KernelBody::Gemm {
        a,
        b,
        dtype: DType::F32 | DType::F16,
    } = &d.body
    else {
        return false;
    };
    opts.precision == Precision::F16 && a.iter().chain(b).all(|x| x.as_const().is_some())
}

/// A schedule's form without subgroup operations: a register-tiled flash attention's or a
/// quantized GEMV's `sg` schedule runs as this where the adapter has no (wide enough)
/// subgroups, and as itself in the kernel's subgroup variant ([`subgroup_variant`]).
fn without_subgroups(s: Schedule) -> Schedule {
    match s {
        Schedule::Attention(p) if p.sg => Schedule::Attention(kiln_schedules::AttentionParams { sg: false, ..p }),
        Schedule::Gemv(p) if p.sg => Schedule::Gemv(p.without_subgroups()),
        s => s,
    }
}

/// The subgroup variant of a kernel whose schedule asks for one (`AttentionParams::sg`,
/// `GemvParams::sg`), rendered with the same parameters and grid as the base kernel.
fn subgroup_variant(
    d: &KernelDraft,
    base: &RenderedKernel,
    schedule: Schedule,
    g: &Graph,
    half: &HashSet<NodeId>,
    opts: &CompileOptions,
) -> Result<Option<RenderedKernel>, CompileError> {
    if without_subgroups(schedule) == schedule {
        return Ok(None);
    }
    let in_dtypes = input_slots(g, d, opts.quant_layout, half);
    let v = codegen::render_variant(d, &in_dtypes, g.node(d.output).ty.dtype, schedule, &opts.target, base)?;
    Ok((v.param_names == base.param_names && v.grid == base.grid).then_some(v))
}

/// The manifest entry of a kernel variant rendered into `file`: a cooperative-matrix GEMM
/// (f16 and cooperative matrices, 32-lane subgroups), a subgroup flash attention (subgroups
/// of at least a row group's threads) or a subgroup quantized GEMV (subgroups of at least a
/// lane's threads). Its workgroup-memory requirement is what its module declares.
fn variant_spec(v: &RenderedKernel, file: &str) -> kiln_abi::KernelVariant {
    if let Schedule::Gemv(p) = v.schedule {
        return kiln_abi::KernelVariant {
            file: file.to_string(),
            workgroup_size: v.workgroup_size,
            grid: v.grid.clone(),
            schedule: v.schedule.to_string(),
            schedule_params: ron::to_string(&v.schedule).unwrap_or_default(),
            requires: kiln_abi::VariantRequirements {
                features: vec!["subgroups".into()],
                min_subgroup_size: Some(p.ksplit),
                ..Default::default()
            },
        };
    }
    if let Schedule::Attention(p) = v.schedule {
        let bytes = v.workgroup_bytes;
        return kiln_abi::KernelVariant {
            file: file.to_string(),
            workgroup_size: v.workgroup_size,
            grid: v.grid.clone(),
            schedule: v.schedule.to_string(),
            schedule_params: ron::to_string(&v.schedule).unwrap_or_default(),
            requires: kiln_abi::VariantRequirements {
                features: vec!["subgroups".into()],
                min_subgroup_size: Some(p.splits),
                limits: [("maxComputeWorkgroupStorageSize".to_string(), bytes)].into(),
                ..Default::default()
            },
        };
    }
    let mut limits = BTreeMap::new();
    let mut features = vec!["shader-f16".to_string(), "wgpu-cooperative-matrix".to_string()];
    if let Schedule::CoopGemm(_) | Schedule::CoopAttention(_) = v.schedule {
        let threads = v.schedule.threads() as u64;
        limits.insert("maxComputeWorkgroupStorageSize".to_string(), v.workgroup_bytes);
        limits.insert("maxComputeInvocationsPerWorkgroup".to_string(), threads);
        limits.insert("maxComputeWorkgroupSizeX".to_string(), threads);
    }
    if let Schedule::CoopAttention(_) = v.schedule {
        // The online softmax's row maximum and sum go by subgroup shuffles.
        features.push("subgroups".into());
    }
    kiln_abi::KernelVariant {
        file: file.to_string(),
        workgroup_size: v.workgroup_size,
        grid: v.grid.clone(),
        schedule: v.schedule.to_string(),
        schedule_params: ron::to_string(&v.schedule).unwrap_or_default(),
        requires: kiln_abi::VariantRequirements {
            features,
            cooperative_matrix: vec![kiln_abi::CoopMatrixConfig {
                m: 16,
                n: 16,
                k: 16,
                ab: ElemType::F16,
                cr: ElemType::F32,
            }],
            subgroup_size: Some(kiln_schedules::COOP_SUBGROUP),
            min_subgroup_size: None,
            limits,
        },
    }
}

/// Runs the whole pipeline on a model and returns the bundle in memory (the passes are
/// listed in [`passes`]).
pub fn compile(model: &Model, opts: &CompileOptions) -> Result<CompiledBundle, CompileError> {
    if let Some(d) = &opts.dump {
        d.check()?;
    }
    let dump_at = |pass: &str| {
        opts.dump.as_ref().filter(|d| d.wants(pass)).map(|d| {
            (
                d.dir.clone(),
                passes::PASSES.iter().position(|p| *p == pass).unwrap_or(0),
            )
        })
    };
    let mut times = passes::PassTimes::start();

    let g = prepare_graph(model, opts, |pass, g| {
        times.done(pass);
        if let Some((dir, i)) = dump_at(pass) {
            passes::dump::dump_graph(&dir, i, pass, g)?;
        }
        Ok(())
    })?;

    let drafts = form_kernels(&g, opts)?;
    times.done("form-kernels");
    log::info!(
        "{}: {} nodes -> {} kernels (opt-level {})",
        model.name,
        g.len(),
        drafts.len(),
        opts.opt_level
    );
    if let Some((dir, i)) = dump_at("form-kernels") {
        passes::dump::dump_kernels(&dir, i, "form-kernels", &g, &drafts, None)?;
    }

    let workloads: Vec<Workload> = drafts
        .iter()
        .map(|d| {
            let mut w = draft_workload(d, &opts.target);
            if let Workload::Gemm { split_k, .. } = &mut w {
                // A kernel with an f16 variant must be one dispatch, as the variant is.
                *split_k &= !may_have_coop_variant(d, opts);
            }
            w
        })
        .collect();
    let mut selected: Vec<(Schedule, kiln_schedules::select::Source)> = drafts
        .iter()
        .zip(&workloads)
        .map(|(d, w)| {
            let key = tuning_key(&d.body);
            let (mut s, source) = kiln_schedules::select(w, &key, opts.tuning.as_ref(), &opts.target);
            if source == kiln_schedules::select::Source::Default {
                s = body_default(&d.body, s, &opts.target);
                s = block_columns_default(&g, d, s, opts.quant_layout);
                s = f16_attention_default(&d.body, w, s, opts);
            }
            log::debug!("schedule: {} ({w}): {s} [{source:?}]", d.label);
            (s, source)
        })
        .collect();
    // f16 inputs and weights read only as plain operands of tiled GEMMs stay f16 pairs.
    let half = {
        let chosen: Vec<Schedule> = selected.iter().map(|(s, _)| *s).collect();
        let fallbacks: Vec<Schedule> = drafts
            .iter()
            .zip(&workloads)
            .map(|(d, w)| {
                body_default(
                    &d.body,
                    kiln_schedules::select::default_for(w, &opts.target),
                    &opts.target,
                )
            })
            .collect();
        half_storage::half_values(&g, &drafts, &chosen, &fallbacks)
    };
    times.done("schedule");
    if let Some((dir, i)) = dump_at("schedule") {
        let schedules: Vec<Schedule> = selected.iter().map(|(s, _)| *s).collect();
        passes::dump::dump_kernels(&dir, i, "schedule", &g, &drafts, Some(&schedules))?;
    }

    let mut rendered = Vec::with_capacity(drafts.len());
    for ((d, w), chosen) in drafts.iter().zip(&workloads).zip(&mut selected) {
        let in_dtypes = input_slots(&g, d, opts.quant_layout, &half);
        let out_dtype = g.node(d.output).ty.dtype;
        let r = match chosen.1 {
            kiln_schedules::select::Source::Default => render_default(d, &in_dtypes, out_dtype, chosen, &opts.target),
            _ => codegen::render(d, &in_dtypes, out_dtype, without_subgroups(chosen.0), &opts.target),
        };
        let r = match r {
            // A record of another kernel with the same key (e.g. tuned on a plain product,
            // while this one reads a fused prologue) falls back to the default.
            Err(CompileError::Unsupported { msg, .. }) if chosen.1 == kiln_schedules::select::Source::Tuned => {
                let s = body_default(
                    &d.body,
                    kiln_schedules::select::default_for(w, &opts.target),
                    &opts.target,
                );
                let s = block_columns_default(&g, d, s, opts.quant_layout);
                log::warn!("{}: tuning record not used ({msg}); default {s}", d.label);
                *chosen = (s, kiln_schedules::select::Source::Default);
                render_default(d, &in_dtypes, out_dtype, chosen, &opts.target)?
            }
            r => r?,
        };
        rendered.push(r);
    }
    let schedules: Vec<Schedule> = selected.iter().map(|(s, _)| *s).collect();
    let variants = drafts
        .iter()
        .zip(&rendered)
        .zip(&schedules)
        .map(|((d, r), &s)| {
            // The tensor-core form first: the runtime runs the first variant the adapter
            // supports.
            let mut v: Vec<RenderedKernel> = coop_variant(d, r, &g, &half, opts)?.into_iter().collect();
            v.extend(subgroup_variant(d, r, s, &g, &half, opts)?);
            Ok::<_, CompileError>(v)
        })
        .collect::<Result<Vec<_>, _>>()?;
    times.done("codegen");

    let mut plan = plan::plan(&g, &drafts, &half);
    let partial = plan::add_partial_sums(
        &mut plan,
        rendered
            .iter()
            .filter_map(|r| r.split.as_ref())
            .map(|s| s.partial_bytes.clone()),
    );
    let scratch = plan::add_scratch(&mut plan, rendered.iter().filter_map(|r| r.scratch.clone()));
    times.done("plan");

    let mut kernels: Vec<KernelSpec> = Vec::new();
    let mut sources: Vec<(String, String)> = Vec::new();
    let mut by_source: HashMap<String, usize> = HashMap::new();
    // Per kernel, the grid of its first dispatch (see the variants below).
    let mut variant_base_grid: HashMap<usize, [kiln_abi::SizeExpr; 3]> = HashMap::new();
    let mut dispatches = Vec::new();
    let mut limits: BTreeMap<String, u64> = BTreeMap::new();
    let mut need = |name: &str, v: u64| {
        let e = limits.entry(name.to_string()).or_insert(0);
        *e = (*e).max(v);
    };
    for (((d, r), &(schedule, source)), variant) in drafts.iter().zip(rendered).zip(&selected).zip(variants) {
        let tuned = source == kiln_schedules::select::Source::Tuned;
        need("maxComputeInvocationsPerWorkgroup", schedule.threads() as u64);
        need("maxComputeWorkgroupSizeX", r.workgroup_size[0] as u64);
        need("maxComputeWorkgroupSizeY", r.workgroup_size[1] as u64);
        need("maxComputeWorkgroupStorageSize", r.workgroup_bytes);
        let outputs = d.outputs();
        need(
            "maxStorageBuffersPerShaderStage",
            (d.inputs.len() + outputs.len() + usize::from(r.scratch.is_some())) as u64,
        );
        let mut register = |r: &RenderedKernel, kind: &str| {
            *by_source.entry(codegen::kernel_identity(&r.wgsl)).or_insert_with(|| {
                let idx = kernels.len();
                let file = format!("kernels/k{idx:03}_{kind}.wgsl");
                kernels.push(KernelSpec {
                    name: format!("k{idx:03}_{kind}"),
                    file: file.clone(),
                    entry_point: "main".into(),
                    workgroup_size: r.workgroup_size,
                    bindings: r.bindings.clone(),
                    params: r.param_names.clone(),
                    schedule: r.schedule.to_string(),
                    schedule_params: ron::to_string(&r.schedule).unwrap_or_default(),
                    schedule_source: if tuned { "tuning" } else { "default" }.into(),
                    grid_splittable: r.grid_splittable,
                    variants: Vec::new(),
                });
                sources.push((file, r.wgsl.clone()));
                idx
            })
        };
        let k = register(&r, r.schedule.kind());
        // A split kernel's combine (registered before the variant below touches `kernels`).
        let combine = match (&r.split, partial) {
            (Some(split), Some(_)) => Some(register(
                &split.combine,
                match d.body {
                    KernelBody::Attention { .. } => "attention_combine",
                    _ => "gemm_combine",
                },
            )),
            _ => None,
        };
        // A chosen variant replaces the grid of every dispatch of its kernel, so a kernel
        // keeps its variant only while all its dispatches share the base grid.
        match variant_base_grid.get(&k) {
            Some(g) if *g != r.grid => {
                let file = kernels[k].variants.drain(..).map(|v| v.file).collect::<Vec<_>>();
                sources.retain(|(f, _)| !file.contains(f));
            }
            Some(_) => {}
            None => {
                if kernels[k].variants.is_empty() {
                    for v in variant {
                        // Named apart from the kernel's own file (a GEMV variant's kind is the
                        // kernel's).
                        let file = match v.schedule {
                            Schedule::Attention(_) => format!("kernels/k{k:03}_attention_sg.wgsl"),
                            Schedule::Gemv(_) => format!("kernels/k{k:03}_gemv_sg.wgsl"),
                            s => format!("kernels/k{k:03}_{}.wgsl", s.kind()),
                        };
                        kernels[k].variants.push(variant_spec(&v, &file));
                        sources.push((file, v.wgsl));
                    }
                }
                variant_base_grid.insert(k, r.grid.clone());
            }
        }
        let mut buffers: Vec<usize> = d.inputs.iter().map(|i| plan.buffer_of[i]).collect();
        let output = plan.buffer_of[&d.output];
        match (&r.split, partial) {
            // Split-K: partial sums into the shared partial-sum buffer, then the combine kernel.
            (Some(split), Some(partial)) => {
                let c = combine.expect("registered above");
                let mut first = buffers.clone();
                first.push(partial);
                dispatches.push(Dispatch {
                    kernel: k,
                    buffers: first,
                    params: r.param_values.clone(),
                    grid: r.grid.clone(),
                    label: format!("{}{SPLIT_K_PARTIAL_LABEL}", d.label),
                });
                if split.binds_inputs {
                    need("maxStorageBuffersPerShaderStage", d.inputs.len() as u64 + 2);
                    buffers.extend([partial, output]);
                } else {
                    buffers = vec![partial, output];
                }
                dispatches.push(Dispatch {
                    kernel: c,
                    buffers,
                    params: split.combine.param_values.clone(),
                    grid: split.combine.grid.clone(),
                    label: format!("{}{SPLIT_K_COMBINE_LABEL}", d.label),
                });
            }
            _ => {
                buffers.extend(outputs.iter().map(|o| plan.buffer_of[o]));
                if r.scratch.is_some() {
                    buffers.push(scratch.expect("added for every kernel with a scratch need"));
                }
                dispatches.push(Dispatch {
                    kernel: k,
                    buffers,
                    params: r.param_values,
                    grid: r.grid,
                    label: d.label.clone(),
                });
            }
        }
    }

    // Weights, converted to their storage dtype.
    let mut weights = Vec::new();
    let mut weight_specs = Vec::new();
    let mut used_names: HashMap<String, usize> = HashMap::new();
    for &id in &plan.weights {
        let n = g.node(id);
        let Op::Constant(t) = &n.op else {
            unreachable!("planned weights are constants")
        };
        let sd = if half.contains(&id) {
            DType::F16
        } else {
            storage_dtype(t.dtype())
        };
        let stored = if let Some((block, n, k)) = quant_layout::block_column_weight(&g, id, opts.quant_layout) {
            quant_layout::to_block_columns(t, block, n, k)
        } else if sd == t.dtype() {
            t.clone()
        } else {
            Tensor::from_f64(sd, t.shape.clone(), &t.to_f64())
        };
        let count = used_names.entry(n.name.clone()).or_insert(0);
        let name = if *count == 0 {
            n.name.clone()
        } else {
            format!("{}#{}", n.name, count)
        };
        *count += 1;
        weight_specs.push(WeightSpec {
            name,
            file: String::new(),
            dtype: elem_type(sd),
            shape: t.shape.iter().map(|&d| d as u64).collect(),
            buffer: plan.buffer_of[&id],
        });
        weights.push(stored);
    }
    // Buffer sizes that are constant are checked now; symbolic ones again at run time.
    for b in &plan.buffers {
        if let Some(s) = b.size.as_const() {
            if s as u64 > opts.target.max_storage_buffer_binding_size {
                return Err(CompileError::Limits {
                    node: b.label.clone(),
                    target: opts.target.name.clone(),
                    msg: format!(
                        "buffer of {s} bytes exceeds maxStorageBufferBindingSize = {} (weight splitting covers constant MatMul weights and Gather tables)",
                        opts.target.max_storage_buffer_binding_size
                    ),
                });
            }
            need("maxStorageBufferBindingSize", s as u64);
            need("maxBufferSize", s as u64);
        }
    }

    let io = |name: &str, id: kiln_ir::NodeId| {
        let ty = &g.node(id).ty;
        IoSpec {
            name: name.to_string(),
            dtype: model.io_dtypes.get(name).copied().unwrap_or(elem_type(ty.dtype)),
            storage: if half.contains(&id) {
                ElemType::F16
            } else {
                storage_type(ty.dtype)
            },
            shape: ty.shape.iter().map(codegen::params::dim_expr).collect(),
            buffer: plan.buffer_of[&plan::root(&g, id)],
            index_bound: None,
        }
    };
    let inputs = g
        .inputs()
        .iter()
        .map(|&i| IoSpec {
            index_bound: index_inputs::index_bound(&g, i),
            ..io(&g.node(i).name, i)
        })
        .collect();
    let outputs = g.outputs().iter().map(|(n, i)| io(n, *i)).collect();
    let mut symbols: Vec<String> = g.symbols();
    symbols.sort();
    let scalars: Vec<String> = g.all_symbols().into_iter().filter(|s| !symbols.contains(s)).collect();
    let states = plan
        .states
        .iter()
        .map(|(name, shape, dtype, buffer)| kiln_abi::StateSpec {
            name: name.clone(),
            storage: if *dtype == DType::F16 {
                ElemType::F16
            } else {
                ElemType::F32
            },
            shape: shape.iter().map(|&d| d as u64).collect(),
            buffer: *buffer,
        })
        .collect();
    let manifest = Manifest {
        format_version: kiln_abi::FORMAT_VERSION,
        compiler_version: format!("kiln {VERSION}"),
        model: model.name.clone(),
        requirements: Requirements {
            target: opts.target.name.clone(),
            // v1 computes f16 in f32 storage, so no bundle needs `shader-f16` yet.
            features: vec![],
            limits,
        },
        symbols,
        inputs,
        outputs,
        buffers: plan.buffers,
        weights: weight_specs,
        kernels,
        programs: vec![Program {
            scalars,
            ..Program::new("run", dispatches)
        }],
        states,
        files: BTreeMap::new(),
        assumptions: g
            .assumptions()
            .iter()
            .map(|a| kiln_abi::SizeAssumption {
                value: codegen::params::dim_expr(&a.dim),
                max: codegen::params::dim_expr(&a.max),
                why: a.why.clone(),
            })
            .collect(),
    };
    manifest
        .check_indices()
        .map_err(|e| CompileError::Internal(e.to_string()))?;
    manifest.validate().map_err(|e| CompileError::Internal(e.to_string()))?;
    manifest
        .check_sources(|f| sources.iter().find(|(file, _)| file == f).map(|(_, s)| s.as_str()))
        .map_err(|e| CompileError::Internal(e.to_string()))?;
    times.done("manifest");
    log::info!("{}: pass times: {}", model.name, times.summary());
    Ok(CompiledBundle {
        assets: Vec::new(),
        manifest,
        kernel_sources: sources,
        weights,
    })
}

/// Compiles and writes in one step.
pub fn compile_to_dir(model: &Model, opts: &CompileOptions, dir: &std::path::Path) -> Result<Manifest, CompileError> {
    let b = compile(model, opts)?;
    write_bundle(&b, dir)
}
