//! Schedule autotuning on the device at hand (`kiln tune`).
//!
//! For every distinct tunable kernel of a model (matrix products and convolutions, identified
//! by their tuning key), the tuner builds a one-op model of that kernel, enumerates candidate
//! schedules from `kiln_schedules::space` (the analytic default first), and for each candidate:
//!
//! 1. compiles it (every WGSL module is validated by naga; schedules that break a limit or do
//!    not apply are rejected here),
//! 2. runs it at a *check size* on random inputs and compares the result with the CPU reference
//!    interpreter (relative L2 < 1e-4); a candidate that disagrees is rejected and never timed,
//! 3. times it at the real size with `Session::bench_repeated` (median; repeats per submit so
//!    microsecond kernels are not swamped by the submit round trip).
//!
//! The fastest candidate becomes the key's record in the [`TuningDb`], with its time and the
//! default's. The check size equals the real size when the interpreter can evaluate it quickly;
//! larger problems are checked at a smaller size that keeps every dim's remainder modulo 4 (which
//! decides the vector paths of the templates) and still spans several tiles and K-steps.
//! Keys already in the database are skipped, so an interrupted run resumes. For an ONNX model,
//! `kiln tune` then checks the run's new records in the whole model ([`crate::tune_check`]):
//! a kernel timed alone can rank schedules differently from the same kernel in the model.
//!
//! With `precision` f16 (as `kiln compile --precision f16`, and a GGUF model's default) every
//! kernel that ships a cooperative-matrix variant (tiled GEMMs, a prefill's quantized GEMMs,
//! prefill attention) is a second job, keyed `coop <key>` as the compiler looks its record up,
//! over the variant kind's space: each candidate is compiled with f16 precision and forced as
//! the variant's record, must run as the variant (an adapter without f16 cooperative matrices
//! skips these jobs), is checked against the interpreter within [`COOP_CHECK_TOLERANCE`] (its
//! operands are rounded to f16) and timed as the variant's own dispatches.

use crate::convert::{rel_l2, to_host};
use kiln_compiler::lower::{KernelBody, KernelDraft};
use kiln_compiler::programs::ProgramSpec;
use kiln_compiler::CompileError;
use kiln_compiler::{compile, tuning_key, write_bundle, CompileOptions, CompiledBundle, Model, Precision};
use kiln_ir::{DType, Dim, DimBindings, Graph, IrError, NodeId, Op, Tensor, TensorType, UnboundDim};
use kiln_runtime::abi::VariantRequirements;
use kiln_runtime::{Bundle, HostTensor, Runtime, Session};
use kiln_schedules::tuning::{TuningDb, TuningError, TuningRecord};
use kiln_schedules::{space, CoopAttentionParams, DeviceLimits, Schedule};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Relative L2 error a candidate may have against the interpreter (f32 kernels whose
/// accumulation order differs from the f64 reference).
pub const CHECK_TOLERANCE: f64 = 1e-4;

/// Relative L2 error a cooperative-matrix variant may have against the interpreter: it rounds
/// both operands (and attention's probabilities) to f16, a relative error of 2^-11 each, and
/// adds in f32; a wrong fragment or K-step is off by far more. An f16 product's kernels are
/// held to it too (their f16 result may round one step apart from the interpreter's).
pub const COOP_CHECK_TOLERANCE: f64 = 5e-3;

/// Multiply-adds up to which the interpreter checks a kernel at its real size.
const CHECK_FULL_SIZE_MACS: u64 = 50_000_000;

/// Why tuning could not go on (a candidate that fails is a [`Rejection`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// The model could not be prepared for kernel formation.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// A kernel's size is symbolic and `--dim` (or the default size) does not bind it.
    #[error("dim {dim}: {source}")]
    Dim {
        /// The dim as written in the graph.
        dim: String,
        /// The unbound symbol.
        source: UnboundDim,
    },
    /// The reference interpreter could not evaluate a kernel's check model.
    #[error("{key}: interpreter: {source}")]
    Interpreter {
        /// Tuning key of the kernel.
        key: String,
        /// What the interpreter reported.
        source: IrError,
    },
    /// The tuning database could not be written.
    #[error(transparent)]
    Database(#[from] TuningError),
    /// The check of the tuned records in the whole model could not run.
    #[error("checking the records in the model: {0}")]
    Check(String),
}

/// The default budget: 110 s, so a whole `kiln tune` run (model load, adapter, the last
/// candidate past the deadline, the database write) stays within two minutes.
pub const DEFAULT_BUDGET_SECS: u64 = 110;

/// What the tuner is asked to do.
#[derive(Clone, Debug)]
pub struct TuneOptions {
    /// Limits profile the candidates must fit (as for `kiln compile --target`).
    pub target: DeviceLimits,
    /// Wall-clock budget for the whole run, counted from `started` (so loading the model and
    /// the adapter count too); keys not reached are left untuned.
    pub budget: Duration,
    /// When the run began (the command's start).
    pub started: Instant,
    /// Sizes for symbolic dims while timing (each record still applies to every size).
    pub dims: DimBindings,
    /// Size for symbolic dims not in `dims`.
    pub default_dim: i64,
    /// Timed iterations per candidate.
    pub iters: usize,
    /// Re-tune keys that already have a record.
    pub force: bool,
    /// The precision the bundle will be compiled with: f16 adds the cooperative-matrix
    /// variants' jobs.
    pub precision: Precision,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            target: DeviceLimits::webgpu_default(),
            budget: Duration::from_secs(DEFAULT_BUDGET_SECS),
            started: Instant::now(),
            dims: DimBindings::new(),
            default_dim: 128,
            iters: 10,
            force: false,
            precision: Precision::F32,
        }
    }
}

/// Why a candidate was not timed.
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// It did not compile (limits, naga validation, or a schedule that does not apply).
    Compile(String),
    /// It ran but disagreed with the interpreter.
    Mismatch {
        /// Relative L2 error against the reference.
        error: f64,
    },
    /// It failed on the device.
    Run(String),
}

/// The outcome of one candidate.
#[derive(Clone, Debug)]
pub struct CandidateResult {
    /// The schedule tried.
    pub schedule: Schedule,
    /// Median time per run, or why it was not timed.
    pub outcome: Result<Duration, Rejection>,
}

/// One tuned kernel.
#[derive(Clone, Debug)]
pub struct KernelReport {
    /// Its tuning key.
    pub key: String,
    /// Every candidate tried, in order.
    pub candidates: Vec<CandidateResult>,
    /// The record written, if any candidate was timed.
    pub record: Option<TuningRecord>,
}

/// A test hook: changes a compiled candidate before it runs (to prove that a miscompiled
/// candidate is rejected, not timed).
pub type CandidateHook<'a> = &'a dyn Fn(&Schedule, &mut CompiledBundle);

/// A tunable kernel: its key and the one-op model that reproduces it.
#[derive(Clone, Debug)]
pub struct TuneJob {
    /// Tuning key (as `kiln compile --tuning` looks it up).
    pub key: String,
    /// The one-op model at its real (timing) size.
    pub model: Model,
    /// The tuning key of the timing model's kernel, under which the candidate is forced there
    /// (the job's key with its symbolic dims bound to the timing sizes).
    pub model_key: String,
    /// The same op at the check size.
    pub check_model: Model,
    /// The tuning key of the check model's kernel, under which the candidate is forced there
    /// (found by forming the check model's kernels; the job's key where the check model keeps
    /// the timing size).
    pub check_key: String,
    /// Candidate schedules, the analytic default first.
    pub candidates: Vec<Schedule>,
    /// Opt-level the kernel was formed at; the candidates are compiled at it too (at level 2 a
    /// short constant attention is not one kernel, at level 3 it is).
    pub opt_level: u8,
    /// For a cooperative-matrix variant's job (`coop <key>`): what the adapter must offer to
    /// run it. `None` for the kernel itself.
    pub variant: Option<VariantRequirements>,
}

/// Finds the distinct tunable kernels of a model as `kiln compile` forms them at `opt_level`
/// with `opts.dims` (the same passes: specialize, optimize, rewrite, weight split), so each
/// job's key is the one compile looks up with the same `--dim` values. Symbols left unbound
/// are timed at `opts.default_dim`.
pub fn jobs(model: &Model, opts: &TuneOptions, opt_level: u8) -> Result<Vec<TuneJob>, TuneError> {
    let copts = CompileOptions {
        opt_level,
        target: opts.target.clone(),
        dims: opts.dims.clone(),
        ..Default::default()
    };
    let (g, drafts) = kernels_of(model, &copts)?;
    // Every symbol of any value's shape (a language model's `past` is a run-time scalar, not
    // an input's dim).
    let mut bind = opts.dims.clone();
    for id in g.topo_order() {
        for s in g.node(id).ty.shape.iter().flat_map(Dim::symbols) {
            bind.entry(s).or_insert(opts.default_dim);
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for d in &drafts {
        let key = tuning_key(&d.body);
        if !seen.insert(key.clone()) {
            continue;
        }
        if let Some(mut job) = job_for(d, &g, key, &bind, &opts.target)? {
            job.opt_level = opt_level;
            job.check_key = key_in(&job.check_model, &job, &opts.target)?;
            job.model_key = key_in(&job.model, &job, &opts.target)?;
            if kind(&job.model_key) != kind(&job.key) {
                // The one-op model does not reproduce the kernel: timing it would not time
                // the candidates, so the kernel keeps its default.
                log::warn!("{}: not tuned (its timing model forms {})", job.key, job.model_key);
                continue;
            }
            let variant = match opts.precision {
                Precision::F16 => variant_job(&job, &opts.target)?,
                Precision::F32 => None,
            };
            out.push(job);
            out.extend(variant);
        }
    }
    Ok(out)
}

/// Whether a variant compiled from record `b` is `a`: the same schedule, except that a flash
/// attention's variant always walks its base kernel's key slices (whatever the record says), so
/// those are not compared.
fn same_variant(a: &Schedule, b: &Schedule) -> bool {
    match (a, b) {
        (Schedule::CoopAttention(x), Schedule::CoopAttention(y)) => (x.subgroups, x.bk) == (y.subgroups, y.bk),
        _ => a == b,
    }
}

/// The job of `job`'s cooperative-matrix variant, if its timing model ships one when compiled
/// with f16 precision: keys prefixed `coop ` (the compiler's record key for the variant), the
/// variant's default first, then its kind's space.
fn variant_job(job: &TuneJob, target: &DeviceLimits) -> Result<Option<TuneJob>, TuneError> {
    let copts = CompileOptions {
        opt_level: job.opt_level,
        target: target.clone(),
        precision: Precision::F16,
        ..Default::default()
    };
    let compiled = compile(&job.model, &copts)?;
    let Some(v) = compiled
        .manifest
        .kernels
        .iter()
        .flat_map(|k| &k.variants)
        .find(|v| v.schedule.starts_with("coop_"))
    else {
        return Ok(None);
    };
    let Ok(default) = Schedule::from_ron(&v.schedule_params) else {
        return Ok(None);
    };
    let mut candidates = vec![default];
    candidates.extend(match default {
        // The key slices are the base kernel's: one candidate per block shape.
        Schedule::CoopAttention(d) => space::coop_attention(target)
            .into_iter()
            .map(|s| match s {
                Schedule::CoopAttention(p) => Schedule::CoopAttention(CoopAttentionParams { slices: d.slices, ..p }),
                other => other,
            })
            .collect(),
        Schedule::CoopGemm(_) if job.key.starts_with("qgemm") => space::quant_coop_gemm(target),
        _ => space::coop_gemm(target),
    });
    dedup(&mut candidates);
    let coop = |k: &str| format!("coop {k}");
    Ok(Some(TuneJob {
        key: coop(&job.key),
        model: job.model.clone(),
        model_key: coop(&job.model_key),
        check_model: job.check_model.clone(),
        check_key: coop(&job.check_key),
        candidates,
        opt_level: job.opt_level,
        variant: Some(v.requires.clone()),
    }))
}

/// The graph and kernel drafts `kiln compile` forms for `model` with `copts`.
pub(crate) fn kernels_of(model: &Model, copts: &CompileOptions) -> Result<(Graph, Vec<KernelDraft>), TuneError> {
    let g = kiln_compiler::prepare_graph(model, copts, |_, _| Ok(()))?;
    let drafts = kiln_compiler::form_kernels(&g, copts)?;
    Ok((g, drafts))
}

/// The distinct tunable kernels of a model compiled as several programs (a language model's
/// `prefill` and `decode`): [`jobs`] of each program's specialization, each key once.
pub fn jobs_for_programs(
    model: &Model,
    programs: &[ProgramSpec],
    opts: &TuneOptions,
    opt_level: u8,
) -> Result<Vec<TuneJob>, TuneError> {
    let mut out: Vec<TuneJob> = Vec::new();
    for p in programs {
        let program = Model {
            graph: model.graph.specialize(&p.dims).map_err(CompileError::from)?,
            ..model.clone()
        };
        for job in jobs(&program, opts, opt_level)? {
            if out.iter().all(|j| j.key != job.key) {
                out.push(job);
            }
        }
    }
    Ok(out)
}

/// A tuning key's kind (the part before the first `:`).
fn kind(key: &str) -> &str {
    key.split(':').next().unwrap_or_default()
}

/// The tuning key under which a candidate must be recorded so that compiling `model` (the
/// job's check or timing model) forces it there: the key of that model's one kernel of the
/// job's kind (a shrunk GEMM, or one whose symbolic dims are bound, has another key than the
/// job's). Falls back to the job's key when the model does not form exactly one such kernel.
fn key_in(model: &Model, job: &TuneJob, target: &DeviceLimits) -> Result<String, TuneError> {
    let copts = CompileOptions {
        opt_level: job.opt_level,
        target: target.clone(),
        ..Default::default()
    };
    let (_, drafts) = kernels_of(model, &copts)?;
    let same_kind: Vec<String> = drafts
        .iter()
        .map(|d| tuning_key(&d.body))
        .filter(|k| kind(k) == kind(&job.key))
        .collect();
    Ok(match same_kind.as_slice() {
        [one] => one.clone(),
        _ => job.key.clone(),
    })
}

fn concrete(shape: &[Dim], b: &DimBindings) -> Result<Vec<usize>, TuneError> {
    shape
        .iter()
        .map(|d| {
            d.eval(b).map(|v| v as usize).map_err(|source| TuneError::Dim {
                dim: d.to_string(),
                source,
            })
        })
        .collect()
}

/// Shrinks a size for the check model: sizes up to `cap` stay; larger ones become
/// `cap - 4 + size % 4`, keeping the remainder modulo 4.
fn shrink(size: usize, cap: usize) -> usize {
    if size <= cap {
        size
    } else {
        cap - 4 + size % 4
    }
}

fn job_for(
    d: &KernelDraft,
    g: &Graph,
    key: String,
    bind: &DimBindings,
    limits: &DeviceLimits,
) -> Result<Option<TuneJob>, TuneError> {
    let default = kiln_compiler::default_schedule(d, limits);
    match &d.body {
        KernelBody::Gemm { a, b, dtype } if dtype.is_float() => {
            let (a, b) = (concrete(a, bind)?, concrete(b, bind)?);
            let (ra, rb) = (a.len(), b.len());
            if ra < 2 || rb < 2 {
                return Ok(None); // rank-1 operands: left to the default
            }
            let (m, k, n) = (a[ra - 2], a[ra - 1], b[rb - 1]);
            let batch: usize = a[..ra - 2].iter().chain(&b[..rb - 2]).product::<usize>().max(1);
            let mut candidates = vec![default];
            // The GEMV reads its operands directly (no fused prologue). An f16 product (f16
            // operands in the graph) takes only the tiled kernel: no GEMV, no split over K.
            let f32 = *dtype == DType::F32;
            if f32 && m <= 8 && d.operands.is_empty() {
                candidates.extend(space::gemv(limits, m.min(8) as u32));
            }
            candidates.extend(space::gemm(limits));
            if f32 {
                candidates.extend(space::gemm_split_k(limits));
            }
            dedup(&mut candidates);
            let model = matmul_model(&a, &b, *dtype);
            let check_model = if (batch * m * n * k) as u64 <= CHECK_FULL_SIZE_MACS {
                model.clone()
            } else {
                let mut ca = a.clone();
                let mut cb = b.clone();
                for s in ca[..ra - 2].iter_mut().chain(cb[..rb - 2].iter_mut()) {
                    *s = (*s).min(2);
                }
                ca[ra - 2] = shrink(m, 200);
                ca[ra - 1] = shrink(k, 100);
                cb[rb - 2] = ca[ra - 1];
                cb[rb - 1] = shrink(n, 260);
                matmul_model(&ca, &cb, *dtype)
            };
            Ok(Some(TuneJob {
                check_key: key.clone(),
                model_key: key.clone(),
                key,
                model,
                check_model,
                candidates,
                opt_level: 2,
                variant: None,
            }))
        }
        KernelBody::Attention { batch, sq, sk, d, dv } if kiln_compiler::codegen::decode_rows(sq).is_none() => {
            let c = |x: &Dim| concrete(std::slice::from_ref(x), bind).map(|v| v[0]);
            let (batch, sq, sk) = (c(batch)?, c(sq)?, c(sk)?);
            let model = attention_model(batch, sq, sk, *d, *dv);
            // The interpreter checks at most 2 batches (heads): each is computed alike.
            let cb = batch.min(2);
            let check_model = attention_model(cb, sq, sk, *d, *dv);
            let check_key = tuning_key(&KernelBody::Attention {
                batch: Dim::c(cb as i64),
                sq: Dim::c(sq as i64),
                sk: Dim::c(sk as i64),
                d: *d,
                dv: *dv,
            });
            let mut candidates = vec![default];
            candidates.extend(space::attention(limits));
            dedup(&mut candidates);
            Ok(Some(TuneJob {
                model_key: key.clone(),
                key,
                model,
                check_model,
                check_key,
                candidates,
                opt_level: 2,
                variant: None,
            }))
        }
        KernelBody::Conv { .. } => {
            let node = g.node(d.output);
            let Op::Conv { .. } = &node.op else {
                return Ok(None);
            };
            let ins = g.inputs_of(d.output);
            let x = concrete(&g.node(ins[0]).ty.shape, bind)?;
            let w = concrete(&g.node(ins[1]).ty.shape, bind)?;
            let bias = ins.len() > 2;
            let model = conv_model(node.op.clone(), &x, &w, bias);
            let mut cx = x.clone();
            cx[0] = 1;
            let check_model = conv_model(node.op.clone(), &cx, &w, bias);
            let mut candidates = vec![default];
            candidates.extend(space::gemm(limits));
            dedup(&mut candidates);
            Ok(Some(TuneJob {
                check_key: key.clone(),
                model_key: key.clone(),
                key,
                model,
                check_model,
                candidates,
                opt_level: 2,
                variant: None,
            }))
        }
        KernelBody::QGemm { x, n, k, glu, .. } => {
            // The kernel with its fused norm and gating, cut out of the model as it is.
            let sub = kernel_subgraph(g, d)?;
            let rows: usize = concrete(&x[..x.len() - 1], bind)?.iter().product();
            let model = one_op_model(sub.specialize(bind).map_err(CompileError::from)?);
            let mut candidates = vec![default];
            if rows <= 8 {
                let max_rows = rows.max(1) as u32;
                let mut gemvs = space::quant_gemv(limits, max_rows);
                if matches!(d.body, KernelBody::QGemm { q8_out: Some(_), .. }) {
                    // Whole blocks of outputs per workgroup: the wider workgroups too.
                    gemvs.extend(space::quant_gemv_wide(limits, max_rows));
                }
                let nout = if *glu { n / 2 } else { *n };
                let floor = gemv_threads(&default, nout, rows);
                candidates.extend(gemvs.into_iter().filter(|s| match s {
                    Schedule::Gemv(p) => kiln_compiler::gemv_fits(&d.body, p) && gemv_threads(s, nout, rows) >= floor,
                    _ => true,
                }));
            } else {
                candidates.extend(space::quant_gemm(limits));
            }
            dedup(&mut candidates);
            // A prefill's product is checked with fewer rows (still more than 8, so the same
            // tiled kind): its symbolic row count bound smaller.
            let macs = rows * n * k;
            let symbols: Vec<String> = x[..x.len() - 1].iter().flat_map(|d| d.symbols()).collect();
            let check_model = if rows <= 8 || macs as u64 <= CHECK_FULL_SIZE_MACS || symbols.len() != 1 {
                model.clone()
            } else {
                let small = (CHECK_FULL_SIZE_MACS as usize / (n * k).max(1)).clamp(9, rows);
                let mut b = bind.clone();
                b.insert(symbols[0].clone(), small as i64);
                one_op_model(sub.specialize(&b).map_err(CompileError::from)?)
            };
            Ok(Some(TuneJob {
                check_key: key.clone(),
                model_key: key.clone(),
                key,
                model,
                check_model,
                candidates,
                opt_level: 2,
                variant: None,
            }))
        }
        _ => Ok(None),
    }
}

/// Threads a GEMV schedule launches for `nout` outputs and `rows` rows of x (0 for other
/// kinds). The tuner tries no quantized GEMV that launches fewer than the default does: on the
/// H200 such candidates timed as fast as the default alone (cold caches, one kernel) but ran
/// 2.5 to 3 times slower inside a decode step (1.7B: the down GEMV at 8 lanes x 8 threads
/// 39.4 us against the default's 12.5, the gated one at 16 x 8 37.6 against 15.7;
/// docs/performance.md, fifteenth session), and a tuned bundle decoded at half the speed.
fn gemv_threads(s: &Schedule, nout: usize, rows: usize) -> usize {
    match s {
        Schedule::Gemv(p) => {
            let per_group = (p.lanes * p.lane_rows) as usize;
            nout.div_ceil(per_group) * rows.max(1).div_ceil(p.rows as usize) * p.threads() as usize
        }
        _ => 0,
    }
}

/// The part of `g` that draft `d` computes, as a graph of its own: the kernel's inputs become
/// graph inputs (weights and other constants stay constants), the nodes between them and its
/// output are copied, and the output is `y`. Compiled, it forms the same kernel (the fused
/// prologue and epilogue included), with the model's real weights. An input that another
/// kernel stores as 8-bit blocks (a GEMV's x rounded by [`Op::QuantizeQ8`], read with integer
/// dot products: `KernelBody::QGemm::xq8`) comes with its rounding, from the f32 values
/// before it: a graph input is f32, and the GEMV reading it would form another kernel. The
/// rounding is a kernel of its own there, which the timing leaves out (see [`time_cold`]).
fn kernel_subgraph(g: &Graph, d: &KernelDraft) -> Result<Graph, CompileError> {
    let mut inputs: HashSet<NodeId> = HashSet::new();
    let mut body = HashSet::new();
    for &i in &d.inputs {
        if kiln_compiler::lower::q8_packed(g, i) {
            body.insert(i);
            inputs.extend(g.inputs_of(i));
        } else {
            inputs.insert(i);
        }
    }
    let mut stack = vec![d.output];
    while let Some(id) = stack.pop() {
        if !inputs.contains(&id) && !body.contains(&id) {
            body.insert(id);
            stack.extend(g.inputs_of(id));
        }
    }
    let mut out = Graph::new();
    let mut map: HashMap<NodeId, NodeId> = HashMap::new();
    for id in g.topo_order() {
        let n = g.node(id);
        let new = match &n.op {
            Op::Constant(t) if inputs.contains(&id) || body.contains(&id) => out.add_const(&n.name, t.clone()),
            _ if inputs.contains(&id) => out.add_input(&format!("in{}", out.inputs().len()), n.ty.clone()),
            op if body.contains(&id) => {
                let ins: Vec<NodeId> = g.inputs_of(id).iter().map(|i| map[i]).collect();
                out.add(&n.name, op.clone(), &ins)?
            }
            _ => continue,
        };
        map.insert(id, new);
    }
    out.add_output("y", map[&d.output]);
    Ok(out)
}

fn dedup(v: &mut Vec<Schedule>) {
    let mut seen = HashSet::new();
    v.retain(|s| seen.insert(*s));
}

fn one_op_model(g: Graph) -> Model {
    Model {
        name: "tune".into(),
        graph: g,
        io_dtypes: BTreeMap::new(),
    }
}

/// `a x b` with both operands graph inputs of `dtype` (f16 ones are then stored as f16 pairs,
/// as an f16 model's inputs and weights are: `compiler::half_storage`).
fn matmul_model(a: &[usize], b: &[usize], dtype: DType) -> Model {
    let mut g = Graph::new();
    let x = g.add_input("a", TensorType::new(dtype, a));
    let y = g.add_input("b", TensorType::new(dtype, b));
    let c = g
        .add("c", Op::MatMul, &[x, y])
        .expect("shapes come from a valid matmul");
    g.add_output("y", c);
    one_op_model(g)
}

/// `softmax(q · kt · 0.125) · v` over `q: [batch, sq, d]`, `kt: [batch, d, sk]`,
/// `v: [batch, sk, dv]`: one flash-attention kernel whose key is the draft's (for constant dims).
fn attention_model(batch: usize, sq: usize, sk: usize, d: usize, dv: usize) -> Model {
    let mut g = Graph::new();
    let q = g.add_input("a", TensorType::new(DType::F32, &[batch, sq, d]));
    let k = g.add_input("b", TensorType::new(DType::F32, &[batch, d, sk]));
    let v = g.add_input("v", TensorType::new(DType::F32, &[batch, sk, dv]));
    let scale = g.add_const("scale", Tensor::f32(vec![], vec![0.125]));
    let s = g.add("s", Op::MatMul, &[q, k]).expect("shapes from a valid attention");
    let s = g
        .add("scaled", Op::Binary(kiln_ir::BinaryOp::Mul), &[s, scale])
        .expect("scalar scale");
    let p = g
        .add("p", Op::Softmax { axis: 2, log: false }, &[s])
        .expect("valid axis");
    let o = g.add("o", Op::MatMul, &[p, v]).expect("shapes from a valid attention");
    g.add_output("y", o);
    one_op_model(g)
}

fn conv_model(op: Op, x: &[usize], w: &[usize], bias: bool) -> Model {
    let mut g = Graph::new();
    let xi = g.add_input("a", TensorType::new(DType::F32, x));
    let mut ins = vec![xi, g.add_const("w", random(w, 21))];
    if bias {
        ins.push(g.add_const("bias", random(&w[..1], 22)));
    }
    let c = g.add("conv", op, &ins).expect("shapes come from a valid convolution");
    g.add_output("y", c);
    one_op_model(g)
}

fn random(shape: &[usize], seed: u64) -> Tensor {
    Tensor::f32(
        shape.to_vec(),
        crate::demo::pseudo_random(shape.iter().product(), seed, 1.0),
    )
}

/// Random inputs for every graph input of a one-op model.
fn inputs_of(model: &Model) -> Result<HashMap<String, Tensor>, TuneError> {
    let mut out = HashMap::new();
    for (i, &id) in model.graph.inputs().iter().enumerate() {
        let n = model.graph.node(id);
        let shape = concrete(&n.ty.shape, &DimBindings::new())?;
        let mut t = random(&shape, 31 + i as u64);
        if n.ty.dtype == DType::F16 {
            t = Tensor::from_f64(DType::F16, shape, &t.to_f64());
        }
        out.insert(n.name.clone(), t);
    }
    Ok(out)
}

/// The inputs as host tensors: f16 ones as f16, every other as f32 (the runtime converts).
fn host(inputs: &HashMap<String, Tensor>) -> HashMap<String, HostTensor> {
    let elem = |t: &Tensor| match t.dtype() {
        DType::F16 => kiln_abi::ElemType::F16,
        _ => kiln_abi::ElemType::F32,
    };
    inputs.iter().map(|(k, v)| (k.clone(), to_host(v, elem(v)))).collect()
}

/// Which of a job's one-op models a session is for.
#[derive(Clone, Copy)]
enum Size {
    /// The check model, compared with the interpreter.
    Check,
    /// The model at its real size, timed.
    Timing,
}

/// A compiled candidate, ready to run: its session, the names of the kernels whose time is the
/// candidate's (the tuned kernel, a split-K GEMM's combine) and the bundle's folder.
struct CandidateSession {
    session: Session,
    timed: HashSet<String>,
    _dir: tempfile::TempDir,
}

/// Compiles the job's model of `size` with `schedule` forced for its key, applies the hook and
/// opens a session. A variant's job compiles with f16 precision and its candidate must run as
/// the variant.
fn session_for(
    runtime: &Runtime,
    job: &TuneJob,
    size: Size,
    schedule: Schedule,
    target: &DeviceLimits,
    hook: Option<CandidateHook>,
) -> Result<CandidateSession, Rejection> {
    let (model, key) = match size {
        Size::Check => (&job.check_model, &job.check_key),
        Size::Timing => (&job.model, &job.model_key),
    };
    let opt_level = job.opt_level;
    let mut db = TuningDb::default();
    db.records.insert(
        key.to_string(),
        TuningRecord {
            schedule,
            micros: 0.0,
            device: String::new(),
        },
    );
    let opts = CompileOptions {
        target: target.clone(),
        tuning: Some(db),
        opt_level,
        precision: if job.variant.is_some() {
            Precision::F16
        } else {
            Precision::F32
        },
        ..Default::default()
    };
    let mut compiled = compile(model, &opts).map_err(|e| Rejection::Compile(e.to_string()))?;
    // A record the kernel cannot take falls back to the default in the compiler; checking or
    // timing that would credit the default's result to the candidate.
    let applied = compiled.manifest.kernels.iter().any(|k| match job.variant {
        Some(_) => k
            .variants
            .first()
            .is_some_and(|v| Schedule::from_ron(&v.schedule_params).is_ok_and(|s| same_variant(&s, &schedule))),
        None => k.schedule_source == "tuning",
    });
    if !applied {
        return Err(Rejection::Compile(format!(
            "{schedule} does not apply to this kernel at this size (the compiler fell back to its default)"
        )));
    }
    if let Some(h) = hook {
        h(&schedule, &mut compiled);
    }
    let dir = tempfile::tempdir().map_err(|e| Rejection::Run(e.to_string()))?;
    write_bundle(&compiled, &dir.path().join("b")).map_err(|e| Rejection::Compile(e.to_string()))?;
    let bundle = Bundle::load(dir.path().join("b")).map_err(|e| Rejection::Run(e.to_string()))?;
    let session = Session::with_runtime(runtime.clone(), &bundle).map_err(|e| Rejection::Run(e.to_string()))?;
    let timed: HashSet<String> = session
        .manifest()
        .kernels
        .iter()
        .filter(|k| match job.variant {
            Some(_) => Schedule::from_ron(&k.schedule_params).is_ok_and(|s| same_variant(&s, &schedule)),
            None => k.schedule_source == "tuning",
        })
        .map(|k| k.name.clone())
        .collect();
    if timed.is_empty() {
        // A variant the adapter does not run: the f32 kernel would be checked and timed.
        return Err(Rejection::Run(format!(
            "the adapter does not run {schedule} as the kernel's variant"
        )));
    }
    Ok(CandidateSession {
        session,
        timed,
        _dir: dir,
    })
}

/// Tunes one kernel: checks every candidate against the interpreter, times those that pass
/// (until `deadline`), and returns the report with the fastest as the record.
pub fn tune_job(
    job: &TuneJob,
    runtime: &Runtime,
    opts: &TuneOptions,
    deadline: Instant,
    hook: Option<CandidateHook>,
    mut on_candidate: impl FnMut(&CandidateResult),
) -> Result<KernelReport, TuneError> {
    let check_inputs = inputs_of(&job.check_model)?;
    let reference =
        kiln_ir::interp::evaluate(&job.check_model.graph, &check_inputs).map_err(|source| TuneError::Interpreter {
            key: job.key.clone(),
            source,
        })?;
    // An f16 result is rounded to f16 by both sides, which may round a value apart by one
    // step (2^-11 relative): checked with the variants' f16 tolerance.
    let f16_result = reference["y"].dtype() == DType::F16;
    let reference = reference["y"].to_f32();
    let inputs = host(&inputs_of(&job.model)?);
    let check_host = host(&check_inputs);
    let mut results = Vec::new();
    for (i, &schedule) in job.candidates.iter().enumerate() {
        // The default is always measured, so every record can be compared with it.
        if i > 0 && Instant::now() >= deadline {
            break;
        }
        let tolerance = if job.variant.is_some() || f16_result {
            COOP_CHECK_TOLERANCE
        } else {
            CHECK_TOLERANCE
        };
        let outcome = (|| {
            let mut c = session_for(runtime, job, Size::Check, schedule, &opts.target, hook)?;
            let out = c
                .session
                .run("run", &check_host)
                .map_err(|e| Rejection::Run(e.to_string()))?;
            let got = out[0].1.to_f32();
            let error = rel_l2(&got, &reference);
            if error.is_nan() || error >= tolerance {
                return Err(Rejection::Mismatch { error });
            }
            let mut c = session_for(runtime, job, Size::Timing, schedule, &opts.target, hook)?;
            let s = &mut c.session;
            if s.can_profile() {
                return time_cold(s, &c.timed, &inputs, opts.iters).map_err(|e| Rejection::Run(e.to_string()));
            }
            let probe = s.bench("run", &inputs, 2).map_err(|e| Rejection::Run(e.to_string()))?;
            let repeats = ((5e-3 / probe.median().as_secs_f64().max(1e-6)).ceil() as usize).clamp(1, 200);
            let t = s
                .bench_repeated("run", &inputs, opts.iters, repeats)
                .map_err(|e| Rejection::Run(e.to_string()))?;
            Ok(t.median())
        })();
        let r = CandidateResult { schedule, outcome };
        on_candidate(&r);
        results.push(r);
    }
    let default_time = results.first().and_then(|r| r.outcome.clone().ok());
    let best = results
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok().map(|t| (r.schedule, *t)))
        .min_by_key(|(_, t)| *t);
    let record = best.map(|(schedule, t)| TuningRecord {
        schedule,
        micros: t.as_secs_f64() * 1e6,
        device: runtime.adapter_info().name.clone(),
    });
    if let (Some(r), Some(d)) = (&record, default_time) {
        log::info!(
            "{}: {} at {:.1} us (default {:.1} us)",
            job.key,
            r.schedule,
            r.micros,
            d.as_secs_f64() * 1e6
        );
    }
    Ok(KernelReport {
        key: job.key.clone(),
        candidates: results,
        record,
    })
}

/// Bytes read between timed runs ([`Session::evict_caches`]), several times the
/// last-level cache of current GPUs (50 MB on an H200).
pub const CACHE_SCRUB_BYTES: u64 = 256 << 20;

/// The median GPU time of `iters` runs of a one-kernel model, each started with cold caches
/// and timed by timestamp queries around each of its dispatches (the eviction is not timed),
/// counting the dispatches of the `timed` kernels, those the record applies to (a split-K
/// GEMM's combine included), and not those of other kernels the cut-out needs (an 8-bit x's
/// rounding).
/// Repeating one kernel back to back instead would find a weight of up to tens of MB in the
/// GPU's L2: a decode step's GEMV then looks several times faster than it runs inside the
/// model, whose weights stream from memory. A timestamped pass costs a few microseconds more
/// than a dispatch inside one pass; every candidate pays it alike per dispatch.
fn time_cold(
    s: &mut Session,
    tuned: &HashSet<String>,
    inputs: &HashMap<String, HostTensor>,
    iters: usize,
) -> Result<Duration, kiln_runtime::RuntimeError> {
    s.run("run", inputs)?; // warm-up: pipelines, bind groups and the uploads in place
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters.max(1) {
        s.evict_caches(CACHE_SCRUB_BYTES);
        let p = s.profile("run", inputs, &[], Some(&[]))?;
        times.push(
            p.dispatches
                .iter()
                .filter(|d| tuned.contains(&d.kernel))
                .map(|d| d.gpu)
                .sum::<Duration>(),
        );
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Why the adapter cannot run `job`'s candidates: a cooperative-matrix variant's job on an
/// adapter without what the variant needs. `None` for every other job.
pub fn unrunnable(job: &TuneJob, runtime: &Runtime) -> Option<String> {
    job.variant.as_ref().and_then(|r| runtime.variant_unsupported(r))
}

/// Tunes every job not yet in `db` (or all with `force`) within the budget, writing records
/// into `db`. `on_candidate` sees every candidate (for progress bars); `after_kernel` sees the
/// database after each kernel (to save it, so an interrupted run resumes).
pub fn tune(
    jobs: &[TuneJob],
    db: &mut TuningDb,
    runtime: &Runtime,
    opts: &TuneOptions,
    mut on_candidate: impl FnMut(&TuneJob, &CandidateResult),
    mut after_kernel: impl FnMut(&KernelReport, &TuningDb) -> Result<(), TuneError>,
) -> Result<Vec<KernelReport>, TuneError> {
    let start = opts.started;
    let todo: Vec<&TuneJob> = jobs
        .iter()
        .filter(|j| opts.force || !db.records.contains_key(&j.key))
        .collect();
    // A variant the adapter cannot run is not tuned here (its kernel runs as itself).
    let (todo, skipped): (Vec<&TuneJob>, Vec<&TuneJob>) =
        todo.into_iter().partition(|j| unrunnable(j, runtime).is_none());
    for j in skipped {
        let why = unrunnable(j, runtime).unwrap_or_default();
        log::warn!("{}: not tuned on this adapter: {why}", j.key);
    }
    let mut reports = Vec::new();
    for (i, job) in todo.iter().enumerate() {
        // Each remaining kernel gets an equal share of what is left of the budget.
        let left = opts.budget.saturating_sub(start.elapsed());
        let share = left / (todo.len() - i) as u32;
        let report = tune_job(job, runtime, opts, Instant::now() + share, None, |r| {
            on_candidate(job, r)
        })?;
        if let Some(r) = &report.record {
            db.records.insert(job.key.clone(), r.clone());
        }
        after_kernel(&report, db)?;
        reports.push(report);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GEMM too large for the interpreter is checked at a shrunk size whose kernel has another
    /// key; the job's `check_key` is that key, so the candidate (not the default) is what the
    /// check compiles.
    #[test]
    fn a_shrunk_gemm_job_forces_its_candidate_on_the_check_model() {
        let model = matmul_model(&[400, 320], &[320, 400], DType::F32);
        let opts = TuneOptions::default();
        let js = jobs(&model, &opts, 2).expect("jobs");
        assert_eq!(js.len(), 1);
        let job = &js[0];
        assert_eq!(job.key, "gemm:b=1,m=400,n=400,k=320");
        assert_eq!(job.check_key, "gemm:b=1,m=196,n=256,k=96");
        let candidate = *job.candidates.last().unwrap();
        assert_ne!(candidate, job.candidates[0], "the last candidate is not the default");
        let mut db = TuningDb::default();
        db.records.insert(
            job.check_key.clone(),
            TuningRecord {
                schedule: candidate,
                micros: 0.0,
                device: String::new(),
            },
        );
        let copts = CompileOptions {
            target: opts.target.clone(),
            tuning: Some(db),
            opt_level: job.opt_level,
            ..Default::default()
        };
        let b = compile(&job.check_model, &copts).expect("compiles");
        let gemm = b
            .manifest
            .kernels
            .iter()
            .find(|k| k.schedule_source == "tuning")
            .expect("the check model's GEMM took the record");
        assert_eq!(gemm.schedule, candidate.to_string());
    }

    /// With f16 precision a GEMM that ships a cooperative-matrix variant is a second job,
    /// keyed as the compiler looks the variant's record up (`coop <key>`), whose first
    /// candidate is the variant's default and whose candidates reach the check model's
    /// variant when forced there.
    #[test]
    fn f16_precision_adds_a_job_for_the_cooperative_variant() {
        let model = matmul_model(&[256, 128], &[128, 256], DType::F32);
        let opts = TuneOptions {
            target: DeviceLimits::h200(),
            precision: Precision::F16,
            ..TuneOptions::default()
        };
        let js = jobs(&model, &opts, 2).expect("jobs");
        let keys: Vec<&str> = js.iter().map(|j| j.key.as_str()).collect();
        assert_eq!(keys, ["gemm:b=1,m=256,n=256,k=128", "coop gemm:b=1,m=256,n=256,k=128"]);
        let (base, coop) = (&js[0], &js[1]);
        assert!(base.variant.is_none());
        let req = coop.variant.as_ref().expect("the variant's requirements");
        assert!(req.features.iter().any(|f| f == "wgpu-cooperative-matrix"), "{req:?}");
        assert_eq!(
            coop.candidates[0],
            kiln_schedules::defaults::coop_gemm(1, 256, 256, &opts.target)
        );
        assert!(coop.candidates.iter().all(|c| matches!(c, Schedule::CoopGemm(_))));
        assert_eq!(coop.candidates.len(), space::coop_gemm(&opts.target).len());
        let last = *coop.candidates.last().unwrap();
        let copts = CompileOptions {
            target: opts.target.clone(),
            tuning: Some(TuningDb::forcing(coop.check_key.clone(), last)),
            precision: Precision::F16,
            ..Default::default()
        };
        let b = compile(&coop.check_model, &copts).expect("compiles");
        assert_eq!(b.manifest.kernels[0].variants[0].schedule, last.to_string());
        // f32 precision: no variant job.
        let f32_jobs = jobs(
            &model,
            &TuneOptions {
                precision: Precision::F32,
                ..opts
            },
            2,
        )
        .unwrap();
        assert_eq!(f32_jobs.len(), 1);
    }

    /// A prefill attention's variant job: one candidate per block shape (the variant walks its
    /// base kernel's key slices, which differ between the check model's few heads and the
    /// timing model's), each reaching the check model's variant when forced there.
    #[test]
    fn an_attention_variant_job_reaches_the_check_model() {
        let model = attention_model(32, 512, 512, 64, 64);
        let opts = TuneOptions {
            target: DeviceLimits::h200(),
            precision: Precision::F16,
            ..TuneOptions::default()
        };
        let js = jobs(&model, &opts, 2).expect("jobs");
        let coop = js
            .iter()
            .find(|j| j.key.starts_with("coop attention:"))
            .expect("a variant job");
        let Schedule::CoopAttention(d) = coop.candidates[0] else {
            panic!("{}", coop.candidates[0])
        };
        assert!(coop.candidates.len() > 1);
        for c in &coop.candidates {
            assert!(matches!(c, Schedule::CoopAttention(p) if p.slices == d.slices), "{c}");
        }
        for &c in &coop.candidates {
            let copts = CompileOptions {
                target: opts.target.clone(),
                tuning: Some(TuningDb::forcing(coop.check_key.clone(), c)),
                precision: Precision::F16,
                opt_level: coop.opt_level,
                ..Default::default()
            };
            let b = compile(&coop.check_model, &copts).expect("compiles");
            let v = Schedule::from_ron(&b.manifest.kernels[0].variants[0].schedule_params).unwrap();
            assert!(same_variant(&v, &c), "{v} for {c}");
        }
    }

    /// A decode GEMV's candidates launch at least as many threads as its default (fewer ran
    /// far slower inside a decode step than timed alone).
    #[test]
    fn quantized_gemv_candidates_launch_at_least_the_default_s_threads() {
        use kiln_ir::quant::packed_tensor;
        use kiln_ir::BlockType;
        let (n, k) = (2048, 1024);
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, &[1, k]));
        let bytes = BlockType::Q4_1.bytes_for((n * k) as u64).unwrap() as usize;
        let w = packed_tensor(BlockType::Q4_1, n, k, &vec![0x11u8; bytes]).unwrap();
        let w = g.add_const("w", w);
        let y = g
            .add(
                "y",
                Op::QMatMul {
                    block: BlockType::Q4_1,
                    n,
                    k,
                },
                &[x, w],
            )
            .unwrap();
        g.add_output("y", y);
        let opts = TuneOptions {
            target: DeviceLimits::desktop(),
            ..TuneOptions::default()
        };
        let js = jobs(&one_op_model(g), &opts, 2).unwrap();
        let job = js.iter().find(|j| j.key.starts_with("qgemm:")).expect("a GEMV job");
        let floor = gemv_threads(&job.candidates[0], n, 1);
        assert!(floor > 0);
        for c in &job.candidates {
            assert!(
                gemv_threads(c, n, 1) >= floor,
                "{c} launches fewer threads than the default"
            );
        }
        // The floor removes candidates the space has (e.g. 4 lanes of 4 rows with 4 threads).
        assert!(space::quant_gemv(&opts.target, 1)
            .iter()
            .any(|c| gemv_threads(c, n, 1) < floor));
    }

    /// A prefill attention becomes a tuning job over the attention kind's space, and the check
    /// model (fewer heads) is compiled with the candidate actually forced: its kernel's key is
    /// the job's `check_key`.
    #[test]
    fn attention_is_a_job_whose_candidates_reach_the_check_model() {
        // 40 keys: one kernel at opt-level 3 (level 2 fuses from 128 keys).
        let model = attention_model(12, 40, 40, 64, 64);
        let opts = TuneOptions::default();
        assert!(jobs(&model, &opts, 2)
            .expect("jobs")
            .iter()
            .all(|j| !j.key.starts_with("attention")));
        let js = jobs(&model, &opts, 3).expect("jobs");
        assert_eq!(js.len(), 1, "{:?}", js.iter().map(|j| &j.key).collect::<Vec<_>>());
        let job = &js[0];
        assert!(job.key.starts_with("attention:b=12,"), "{}", job.key);
        assert_eq!(job.candidates.len(), space::attention(&opts.target).len());
        let last = *job.candidates.last().unwrap();
        let mut db = TuningDb::default();
        db.records.insert(
            job.check_key.clone(),
            TuningRecord {
                schedule: last,
                micros: 0.0,
                device: String::new(),
            },
        );
        let copts = CompileOptions {
            target: opts.target.clone(),
            tuning: Some(db),
            opt_level: job.opt_level,
            ..Default::default()
        };
        let b = compile(&job.check_model, &copts).expect("compiles");
        // A candidate split over key slices adds its combine kernel.
        let sliced = matches!(last, Schedule::Attention(p) if p.slices > 1);
        assert_eq!(b.manifest.kernels.len(), if sliced { 2 } else { 1 });
        assert_eq!(b.manifest.kernels[0].schedule, last.to_string());
        assert_eq!(b.manifest.kernels[0].schedule_source, "tuning");
    }
}
