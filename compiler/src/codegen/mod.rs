//! WGSL code generation: a scheduled kernel draft is rendered from a tera template and the
//! result is parsed and validated by naga before anything is written.

pub(crate) mod conv;
pub mod expr;
pub mod params;
pub mod validate;

use crate::lower::{Access, Expr, KernelBody, KernelDraft, ReduceKind};
use crate::CompileError;
pub use expr::Slots;
use expr::{from_storage, literal, reg_ty, storage_ty, to_storage, ExprWriter};
use kiln_abi::{BindingKind, SizeExpr};
use kiln_ir::{DType, Dim, ReduceOp};
use kiln_schedules::{DeviceLimits, Schedule};
use params::{dim_expr, ParamSet};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// A rendered, validated kernel plus the values its dispatch needs.
#[derive(Clone, Debug)]
pub struct RenderedKernel {
    /// WGSL source.
    pub wgsl: String,
    /// `@workgroup_size`.
    pub workgroup_size: [u32; 3],
    /// Binding kinds of group 0.
    pub bindings: Vec<BindingKind>,
    /// Parameter field names.
    pub param_names: Vec<String>,
    /// Parameter values for this dispatch.
    pub param_values: Vec<SizeExpr>,
    /// Workgroup counts.
    pub grid: [SizeExpr; 3],
    /// Schedule used.
    pub schedule: Schedule,
    /// Whether the runtime may split a large X grid into X*Y.
    pub grid_splittable: bool,
    /// A split-K GEMM (or a decode attention kernel split over keys): this kernel writes
    /// partial results, and this second kernel combines them.
    pub split: Option<SplitK>,
    /// Bytes of the scratch buffer the kernel binds after its outputs, where its last
    /// workgroup combines the others' partial results in the same dispatch (the decode
    /// attention split over keys): arrival counters that every dispatch leaves at zero, and
    /// the partial results (`kiln_abi::BufferKind::Scratch`).
    pub scratch: Option<SizeExpr>,
    /// Workgroup memory the WGSL declares, in bytes (measured on the validated module, as
    /// WebGPU counts it: [`validate::workgroup_storage_bytes`]).
    pub workgroup_bytes: u64,
}

/// What makes two kernels the same kernel: the WGSL without its header comment (which names
/// the graph nodes of the dispatch it was rendered for), so the layers of a model that render
/// the same code share one kernel entry, file and pipeline.
pub fn kernel_identity(wgsl: &str) -> String {
    let mut out = String::with_capacity(wgsl.len());
    for line in wgsl.lines() {
        if !line.starts_with("// Kiln ") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The second half of a split-K GEMM (or of the decode attention split over keys). The first
/// kernel binds the draft's inputs and writes the partial-sum buffer in place of the output;
/// the combine kernel binds the draft's inputs (when [`SplitK::binds_inputs`]), then the
/// partial-sum buffer, then the output.
#[derive(Clone, Debug)]
pub struct SplitK {
    /// Bytes of the partial-sum buffer (`ksplit x batch x M x N` f32).
    pub partial_bytes: SizeExpr,
    /// Whether the combine kernel binds the draft's inputs before the partial sums (a GEMM's
    /// epilogue reads them); the decode attention's combine binds only the partial results
    /// and the output.
    pub binds_inputs: bool,
    /// The combine kernel.
    pub combine: Box<RenderedKernel>,
}

fn templates() -> &'static tera::Tera {
    static T: OnceLock<tera::Tera> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = tera::Tera::default();
        t.autoescape_on(vec![]);
        t.add_raw_template("macros", include_str!("../../templates/macros.wgsl"))
            .expect("built-in macros parse");
        for (name, src) in [
            ("injective", include_str!("../../templates/injective.wgsl")),
            ("injective_vec4", include_str!("../../templates/injective_vec4.wgsl")),
            ("reduce", include_str!("../../templates/reduce.wgsl")),
            ("softmax", include_str!("../../templates/softmax.wgsl")),
            ("layernorm", include_str!("../../templates/layernorm.wgsl")),
            ("topk", include_str!("../../templates/topk.wgsl")),
            ("sample", include_str!("../../templates/sample.wgsl")),
            ("scatter", include_str!("../../templates/scatter.wgsl")),
            ("gemm", include_str!("../../templates/gemm.wgsl")),
            ("gemm_vec4", include_str!("../../templates/gemm_vec4.wgsl")),
            ("gemm_coop", include_str!("../../templates/gemm_coop.wgsl")),
            ("gemv", include_str!("../../templates/gemv.wgsl")),
            ("gemm_combine", include_str!("../../templates/gemm_combine.wgsl")),
            ("attention", include_str!("../../templates/attention.wgsl")),
            ("attention_tiled", include_str!("../../templates/attention_tiled.wgsl")),
            ("attention_coop", include_str!("../../templates/attention_coop.wgsl")),
            (
                "attention_decode",
                include_str!("../../templates/attention_decode.wgsl"),
            ),
            (
                "attention_combine",
                include_str!("../../templates/attention_combine.wgsl"),
            ),
            (
                "attention_slices_combine",
                include_str!("../../templates/attention_slices_combine.wgsl"),
            ),
        ] {
            t.add_raw_template(name, src).expect("built-in template parses");
        }
        // The quantized kernels import the block decoders, which must be added first.
        t.add_raw_template("quant", include_str!("../../templates/quant.wgsl"))
            .expect("built-in quant macros parse");
        for (name, src) in [
            ("qgemv", include_str!("../../templates/qgemv.wgsl")),
            ("quantize_rows", include_str!("../../templates/quantize_rows.wgsl")),
            ("qgemv_rows", include_str!("../../templates/qgemv_rows.wgsl")),
            ("qgemm", include_str!("../../templates/qgemm.wgsl")),
            ("qgemm_vec4", include_str!("../../templates/qgemm_vec4.wgsl")),
            ("qgemm_coop", include_str!("../../templates/qgemm_coop.wgsl")),
            ("qgather", include_str!("../../templates/qgather.wgsl")),
        ] {
            t.add_raw_template(name, src).expect("built-in template parses");
        }
        t
    })
}

fn render_template(name: &str, ctx: &tera::Context) -> Result<String, CompileError> {
    templates().render(name, ctx).map_err(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        CompileError::Template {
            template: name.into(),
            msg,
        }
    })
}

/// The module header: params struct, bindings and helper functions. Inputs listed in
/// `vec4_inputs` are bound as arrays of 4-vectors of their storage type; a packed slot (f16
/// pairs) as `array<u32>`, or `array<vec4<u32>>` (8 values per element) when also listed.
fn header(
    params: &ParamSet,
    in_dtypes: &Slots,
    vec4_inputs: &[usize],
    out_dtype: DType,
    helpers: &BTreeSet<&'static str>,
    fns: &[String],
) -> String {
    header_outputs(params, in_dtypes, vec4_inputs, &[out_dtype], false, helpers, fns)
}

/// The name of output binding `j` of a kernel: `out`, then `out1`, `out2`, ...
fn output_name(j: usize) -> String {
    if j == 0 {
        "out".into()
    } else {
        format!("out{j}")
    }
}

/// [`header`] of a kernel with one output binding per entry of `out_dtypes` (after the
/// inputs; named by [`output_name`]), bound as 4-vectors with `vec4_output`.
fn header_outputs(
    params: &ParamSet,
    in_dtypes: &Slots,
    vec4_inputs: &[usize],
    out_dtypes: &[DType],
    vec4_output: bool,
    helpers: &BTreeSet<&'static str>,
    fns: &[String],
) -> String {
    let mut h = params.struct_decl();
    h.push_str("\n\n@group(0) @binding(0) var<uniform> params: Params;\n");
    for (k, d) in in_dtypes.iter().enumerate() {
        let elem = if in_dtypes.is_packed(k) {
            if vec4_inputs.contains(&k) { "vec4<u32>" } else { "u32" }.to_string()
        } else if vec4_inputs.contains(&k) {
            format!("vec4<{}>", storage_ty(*d))
        } else {
            storage_ty(*d).to_string()
        };
        h.push_str(&format!(
            "@group(0) @binding({}) var<storage, read> in{k}: array<{elem}>;\n",
            k + 1,
        ));
    }
    for (j, d) in out_dtypes.iter().enumerate() {
        if j > 0 {
            h.push('\n');
        }
        let elem = if vec4_output {
            format!("vec4<{}>", storage_ty(*d))
        } else {
            storage_ty(*d).to_string()
        };
        h.push_str(&format!(
            "@group(0) @binding({}) var<storage, read_write> {}: array<{elem}>;",
            in_dtypes.len() + 1 + j,
            output_name(j),
        ));
    }
    for name in helpers {
        h.push_str("\n\n");
        h.push_str(expr::helper_source(name));
    }
    for f in fns {
        h.push_str("\n\n");
        h.push_str(f);
    }
    h
}

/// The input slot operand `i` of `draft` reads directly at the kernel's own index, if it is
/// an f32 buffer read that way (no computation, gather or packing in between).
fn direct_f32_slot(draft: &KernelDraft, i: usize, in_dtypes: &Slots) -> Option<usize> {
    match draft.operand(i) {
        Expr::LoadIdx(s, ix) if *ix == Expr::Index && in_dtypes[s] == DType::F32 && !in_dtypes.is_packed(s) => Some(s),
        _ => None,
    }
}

/// Renders operand `i` of a draft as a load: `(open, close)` such that `open + index + close`
/// reads the operand's element at a linear index. A plain input reads its binding
/// (`in{s}[index]`); a fused prologue becomes a function `kiln_x{i}(index)` added to `fns`.
fn operand_access(
    draft: &KernelDraft,
    i: usize,
    params: &mut ParamSet,
    helpers: &mut BTreeSet<&'static str>,
    in_dtypes: &Slots,
    fns: &mut Vec<String>,
) -> (String, String) {
    let e = draft.operand(i);
    if let Expr::LoadIdx(s, ix) = &e {
        if **ix == Expr::Index && in_dtypes[*s] != DType::Bool && !in_dtypes.is_packed(*s) {
            return (format!("in{s}["), "]".into());
        }
    }
    let mut w = index_writer(params, helpers, in_dtypes, "");
    let (v, d) = w.emit(&e);
    let name = format!("kiln_x{i}");
    let mut f = format!("fn {name}(i: i32) -> {} {{\n", reg_ty(d));
    for l in &w.lines {
        f.push_str(&format!("    {l}\n"));
    }
    f.push_str(&format!("    return {v};\n}}"));
    fns.push(f);
    (format!("{name}("), ")".into())
}

/// Operand `i` of `draft` (logically a row-major tensor of `shape`) as a function of its
/// coordinates, `kiln_x{i}(at0, at1, ..)`, added to `fns`; returns the function's name.
///
/// The linear index the operand's expression reads through is rebuilt from the coordinates
/// (`sum at_a * stride_a`, each coordinate a term in `0..shape[a]`) and every coordinate
/// decomposition `(index / s) % d` in it is simplified again ([`crate::lower::affine`]): a
/// transposed or sliced view of a buffer then reads at a sum of coordinate multiples, with no
/// integer division by a runtime size per element (the decode attention's K and V operands
/// read the KV cache over the symbolic key count this way). The caller passes in-range
/// coordinates only.
fn operand_at(
    draft: &KernelDraft,
    i: usize,
    shape: &[Dim],
    params: &mut ParamSet,
    helpers: &mut BTreeSet<&'static str>,
    in_dtypes: &Slots,
    fns: &mut Vec<String>,
) -> String {
    let e = operand_coords(draft, i, shape);
    coord_fn(&format!("kiln_x{i}"), &e, shape, params, helpers, in_dtypes, fns)
}

/// Operand `i` of `draft` (logically a row-major tensor of `shape`) as an expression of its
/// coordinates ([`Expr::Coord`]), simplified as [`operand_at`] says.
fn operand_coords(draft: &KernelDraft, i: usize, shape: &[Dim]) -> Expr {
    at_coords(draft.operand(i), shape)
}

/// Expression `e` of the linear index of a tensor of `shape`, rewritten over its coordinates
/// (`Expr::Coord(a)`, each with its range): see [`operand_coords`].
fn at_coords(e: Expr, shape: &[Dim]) -> Expr {
    use kiln_ir::BinaryOp;
    let strides = crate::lower::sym_strides(shape);
    let mut index: Option<Expr> = None;
    for (a, (extent, stride)) in shape.iter().zip(&strides).enumerate() {
        // A coordinate with its range, so the simplifier can bound the terms below a stride.
        let coord = Expr::CoordOf {
            index: Box::new(Expr::Coord(a)),
            stride: Dim::c(1),
            dim: Some(extent.clone()),
        };
        let term = if *stride == Dim::c(1) {
            coord
        } else {
            Expr::Binary(
                BinaryOp::Mul,
                Box::new(coord),
                Box::new(Expr::Dim(stride.clone())),
                DType::I32,
            )
        };
        index = Some(match index {
            None => term,
            Some(acc) => Expr::Binary(BinaryOp::Add, Box::new(acc), Box::new(term), DType::I32),
        });
    }
    let index = index.unwrap_or(Expr::Lit(0.0, DType::I32));
    let e = e.rewrite(&mut |x| match x {
        Expr::Index => index.clone(),
        Expr::CoordOf { index, stride, dim } => crate::lower::affine::coord_of(*index, stride, dim),
        x => x,
    });
    // Coordinates are in range, so `at % d` is the coordinate itself for `d` at least its
    // extent. A smaller `d` stays: the head of a flattened (batch x heads) coordinate is
    // `at % heads` (dropping every modulo of a bare coordinate, as the rewrite did before,
    // read a BERT-style K of 12 heads at batch x heads instead of its head).
    e.rewrite(&mut |x| match x {
        Expr::CoordOf {
            index,
            stride,
            dim: Some(d),
        } if stride == Dim::c(1)
            && matches!(*index, Expr::Coord(a) if d.sub(&shape[a]).as_const().is_some_and(|v| v >= 0)) =>
        {
            *index
        }
        x => x,
    })
}

/// An expression of the coordinates of `shape` (see [`operand_coords`]) as a function
/// `name(at0, at1, ..)` added to `fns`; returns its name.
fn coord_fn(
    name: &str,
    e: &Expr,
    shape: &[Dim],
    params: &mut ParamSet,
    helpers: &mut BTreeSet<&'static str>,
    in_dtypes: &Slots,
    fns: &mut Vec<String>,
) -> String {
    let strides = crate::lower::sym_strides(shape);
    let names: Vec<String> = (0..shape.len()).map(|a| format!("at{a}")).collect();
    // The linear index too where a linear read of the operand's own index is left.
    let flat = reads_linearly(e).then(|| linear_index(&names, &strides, params));
    let mut w = index_writer(params, helpers, in_dtypes, "");
    w.coords = names.clone();
    if let Some(flat) = flat {
        w.idx = flat;
    }
    let (v, d) = w.emit(e);
    let args: Vec<String> = names.iter().map(|n| format!("{n}: i32")).collect();
    let mut f = format!("fn {name}({}) -> {} {{\n", args.join(", "), reg_ty(d));
    for l in &w.lines {
        f.push_str(&format!("    {l}\n"));
    }
    f.push_str(&format!("    return {v};\n}}"));
    fns.push(f);
    name.to_string()
}

/// Whether `e` still reads an input at the linear index (`Expr::Read`).
fn reads_linearly(e: &Expr) -> bool {
    matches!(e, Expr::Read(..)) || e.children().into_iter().any(reads_linearly)
}

/// Inserts `score_lines`, the body of an attention kernel's `kiln_score(v: f32, at0: i32, at1:
/// i32, at2: i32)`: the draft's score expression (its epilogue, whose core `v` is the score) at
/// coordinates (batch, query row, key) of the score tensor `[batch, sq, sk]` rather than at its
/// linear index, so a mask that takes the row and key apart costs no division per score. Empty
/// without an epilogue.
fn insert_score_fn(
    ctx: &mut tera::Context,
    draft: &KernelDraft,
    [batch, sq, sk]: [&Dim; 3],
    params: &mut ParamSet,
    helpers: &mut BTreeSet<&'static str>,
    in_dtypes: &Slots,
) {
    let lines = match &draft.epilogue {
        Some(e) => {
            let shape = [batch.clone(), sq.clone(), sk.clone()];
            epilogue_at_coords(e, &shape, &["at0", "at1", "at2"], params, helpers, in_dtypes)
        }
        None => Vec::new(),
    };
    ctx.insert("score_lines", &lines);
}

/// The body lines of an epilogue function whose arguments are the core value `v` and the
/// output element's coordinates `names` over `shape` (row-major), not its linear index: the
/// expression is rewritten over the coordinates ([`at_coords`]), so an operand broadcast along
/// some axes reads at the other coordinates, without the division or modulo of the linear index
/// per element (a bias read at `i % n` becomes a read at column `gn`).
fn epilogue_at_coords(
    e: &Expr,
    shape: &[Dim],
    names: &[&str],
    params: &mut ParamSet,
    helpers: &mut BTreeSet<&'static str>,
    in_dtypes: &Slots,
) -> Vec<String> {
    let e = at_coords(e.clone(), shape);
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let flat = reads_linearly(&e).then(|| linear_index(&names, &crate::lower::sym_strides(shape), params));
    let mut w = index_writer(params, helpers, in_dtypes, "v");
    w.coords = names;
    if let Some(flat) = flat {
        w.idx = flat;
    }
    let (v, _) = w.emit(&e);
    let mut lines = std::mem::take(&mut w.lines);
    lines.push(format!("return {v};"));
    lines
}

/// A decode attention's K or V operand `e` (an expression of coordinates, the keys on axis
/// `axis`, `sk` of them) that reads an appended state through (`crate::lower::defer`), split
/// into the value below the last key and the value at it: every `select(at_axis >= p, new,
/// old)` in it with `p = sk - 1` is `old` for the keys before `p` and `new` at key `p`, so `e`
/// is `(e with old, e with new)` chosen by `at_axis >= p`. The second is the same for every
/// key a thread reads, so the kernel computes it once. `None` when `e` has no such select, or
/// one over another bound.
fn split_read_through(e: &Expr, axis: usize, sk: &Dim) -> Option<(Expr, Expr)> {
    use kiln_ir::BinaryOp;
    let last = sk.sub(&Dim::c(1));
    let (mut found, mut other) = (false, false);
    let mut pick = |x: Expr, new: bool| match x {
        Expr::Select(c, a, b) => match *c {
            Expr::Binary(BinaryOp::GreaterEqual, l, r, DType::I32)
                if matches!(*l, Expr::Coord(a) if a == axis) && matches!(&*r, Expr::Dim(_)) =>
            {
                if matches!(&*r, Expr::Dim(p) if *p == last) {
                    found = true;
                } else {
                    other = true;
                }
                if new {
                    *a
                } else {
                    *b
                }
            }
            c => Expr::Select(Box::new(c), a, b),
        },
        x => x,
    };
    let old = e.rewrite(&mut |x| pick(x, false));
    let new = e.rewrite(&mut |x| pick(x, true));
    (found && !other).then_some((old, new))
}

/// The row-major linear index `(at0 * stride0 + ..)` of coordinates `names` over `strides`.
fn linear_index(names: &[String], strides: &[Dim], params: &mut ParamSet) -> String {
    let terms: Vec<String> = names
        .iter()
        .zip(strides)
        .map(|(n, s)| match s.as_const() {
            Some(1) => n.clone(),
            _ => format!("{n} * {}", params.dim(s, "stride")),
        })
        .collect();
    format!("({})", terms.join(" + "))
}

/// How GEMM operand `i` can be read as vec4s: `(slot, None)` when it is input `slot` read
/// directly, `(slot, Some(index))` when a fused prologue reads f32 input `slot` at an index
/// that maps aligned runs of 4 to aligned runs of 4 ([`crate::lower::affine::runs_of_four`]);
/// `None` otherwise (any computation or gather in the prologue, bool inputs).
fn vec_operand(draft: &KernelDraft, i: usize, dtype: DType, in_dtypes: &Slots) -> Option<(usize, Option<Expr>)> {
    let Expr::LoadIdx(s, ix) = draft.operand(i) else {
        return None;
    };
    if *ix == Expr::Index {
        return (in_dtypes[s] != DType::Bool).then_some((s, None));
    }
    (dtype == DType::F32 && in_dtypes[s] == DType::F32 && crate::lower::affine::runs_of_four(&ix))
        .then_some((s, Some(*ix)))
}

/// An expression writer over the linear index `i` (prologue and epilogue functions), with the
/// anchor's computed value named `core`.
fn index_writer<'a>(
    params: &'a mut ParamSet,
    helpers: &'a mut BTreeSet<&'static str>,
    in_dtypes: &'a Slots,
    core: &str,
) -> ExprWriter<'a> {
    ExprWriter {
        params,
        helpers,
        in_dtypes,
        lines: Vec::new(),
        next: 0,
        memo: Default::default(),
        idx: "i".into(),
        coords: Vec::new(),
        core: core.into(),
        lanes: Default::default(),
    }
}

/// The body lines of a GEMM epilogue function `(v, gm, gn, batch)`: the output element's
/// linear index, the epilogue expression over it, and the return.
fn epilogue_lines(
    e: &Expr,
    index: String,
    params: &mut ParamSet,
    helpers: &mut BTreeSet<&'static str>,
    in_dtypes: &Slots,
) -> Vec<String> {
    epilogue_lines_with(e, index, "v", params, helpers, in_dtypes)
}

/// Like [`epilogue_lines`], with the computed value named `core`.
fn epilogue_lines_with(
    e: &Expr,
    index: String,
    core: &str,
    params: &mut ParamSet,
    helpers: &mut BTreeSet<&'static str>,
    in_dtypes: &Slots,
) -> Vec<String> {
    let mut w = index_writer(params, helpers, in_dtypes, core);
    let (v, _) = w.emit(e);
    let mut lines = vec![format!("let i = {index};")];
    lines.append(&mut w.lines);
    lines.push(format!("return {v};"));
    lines
}

fn bindings(n_inputs: usize, n_outputs: usize) -> Vec<BindingKind> {
    let mut b = vec![BindingKind::Uniform];
    b.extend(std::iter::repeat_n(BindingKind::ReadOnlyStorage, n_inputs));
    b.extend(std::iter::repeat_n(BindingKind::Storage, n_outputs));
    b
}

/// Fills the GEMM template's tile parameters, element type, problem dims (M, N, K as WGSL
/// expressions) and batch-offset statements.
fn gemm_context(
    ctx: &mut tera::Context,
    p: &kiln_schedules::GemmParams,
    dtype: DType,
    mnk: [&String; 3],
    batch_lines: &[String],
) {
    ctx.insert("ty", reg_ty(dtype));
    ctx.insert("zero", &literal(0.0, dtype));
    ctx.insert("float", &dtype.is_float());
    ctx.insert("bm", &p.bm);
    ctx.insert("bn", &p.bn);
    ctx.insert("bk", &p.bk);
    ctx.insert("tm", &p.tm);
    ctx.insert("tn", &p.tn);
    ctx.insert("threads", &p.threads());
    ctx.insert("m", mnk[0]);
    ctx.insert("n", mnk[1]);
    ctx.insert("k", mnk[2]);
    ctx.insert("batch_lines", batch_lines);
    // The vec4 register-tile variant's derived sizes (tera has no integer division).
    ctx.insert("tx_n", &(p.bn / p.tn));
    ctx.insert("ty_n", &(p.bm / p.tm));
    ctx.insert("rg", &(p.tm / 4));
    ctx.insert("cg", &(p.tn / 4));
    // A's k-rows are padded by one vec4 in the single stage; the double-buffered stages are not
    // (the pad does not change the store's bank pattern, and dropping it fits 2 x 128x128x16 in
    // 32 KiB).
    let a_row = p.bm / 4 + u32::from(!p.double_buffer);
    let stages = 1 + u32::from(p.double_buffer);
    ctx.insert("a_row", &a_row);
    ctx.insert("b_row", &(p.bn / 4));
    ctx.insert("db", &p.double_buffer);
    ctx.insert("a_stage", &(p.bk * a_row));
    ctx.insert("b_stage", &(p.bk * p.bn / 4));
    ctx.insert("a_tile_len", &(stages * p.bk * a_row));
    ctx.insert("b_tile_len", &(stages * p.bk * p.bn / 4));
    // gemm_vec4's tiles are arrays of k-rows (both stages' rows when double-buffered).
    ctx.insert("k_rows", &(stages * p.bk));
    let threads = p.threads();
    let (a_vecs, b_vecs) = (p.bm * p.bk / 4, p.bk * p.bn / 4);
    ctx.insert("bk4", &(p.bk / 4));
    ctx.insert("bn4", &(p.bn / 4));
    ctx.insert("a_vecs", &a_vecs);
    ctx.insert("b_vecs", &b_vecs);
    ctx.insert("a_loads", &a_vecs.div_ceil(threads));
    ctx.insert("b_loads", &b_vecs.div_ceil(threads));
    // Scalars per thread of the scalar-read path's register prefetch.
    ctx.insert("a_sloads", &(p.bm * p.bk).div_ceil(threads));
    ctx.insert("b_sloads", &(p.bk * p.bn).div_ceil(threads));
    ctx.insert("vec_loads", &false);
    ctx.insert("cb", &false);
    ctx.insert("vec_store", &false);
    for (name, slot) in [("a_vec", 0), ("b_vec", 1)] {
        ctx.insert(name, &format!("in{slot}[("));
        ctx.insert(format!("{name}_e"), ") / 4i]");
    }
    // K range of the workgroup: all of K, or (split-K) a slice computed in the template.
    ctx.insert("ksplit", &p.ksplit);
    let split = p.ksplit > 1;
    ctx.insert("k_beg", if split { "k_beg" } else { "0i" });
    ctx.insert("k_lim", if split { "k_end" } else { mnk[2].as_str() });
}

/// How many rows of B a GEMV thread loads before it uses them: 16 once each thread walks at
/// least 64 rows of a known K (e.g. 1x4096x4096 with 64 K-slices: four rounds of 16 loads),
/// 8 from 32 rows, else 4. The H200 streams B at full bandwidth only with several MB in flight
/// (bandwidth x latency, about 4 TB/s x 1 us), and each round of a thread waits one memory
/// latency: fewer, larger rounds shorten the chain of latencies a workgroup walks.
fn gemv_unroll(k: &Dim, ksplit: u32) -> u32 {
    match k.as_const() {
        Some(k) if k >= 64 * ksplit as i64 => 16,
        Some(k) if k >= 32 * ksplit as i64 => 8,
        _ => 4,
    }
}

/// The quantized GEMV's unit of work: a block splits into this many parts of 8 to 64 values
/// (quant.wgsl's `kiln_qdot`).
fn block_parts(block: kiln_ir::BlockType) -> u32 {
    match block {
        kiln_ir::BlockType::F32 | kiln_ir::BlockType::F16 | kiln_ir::BlockType::BF16 => 1,
        kiln_ir::BlockType::Q6K => 8,
        _ => 4,
    }
}

/// Parts of a W row each thread of the quantized GEMV decodes per loop step (their loads in
/// flight together): up to 8 of the 4-word parts of the small blocks, up to 2 of the K-quant
/// parts (each already 8 words), never more than a thread has.
fn qgemv_unroll(block: kiln_ir::BlockType, k: usize, ksplit: u32) -> u32 {
    use kiln_ir::BlockType as B;
    let per_thread = (k / block.block_elems()) as u32 * block_parts(block) / ksplit.max(1);
    let most = match block {
        B::Q4K | B::Q6K => 2,
        _ => 8,
    };
    per_thread.clamp(1, most)
}

/// Longest K slice (K, or K / ksplit) for which the vec4 GEMM tile stores C as 4-vectors. The
/// store phase is about 1/K-steps of a workgroup's time: on the H200 (docs/performance.md,
/// ninth session) 4-vector stores took MiniLM-L3's 4096x1152x384 from 0.191 to 0.136 ms,
/// 4096x1536x384 from 0.196 to 0.149 and 1024^3 (ksplit 4) from 0.089 to 0.076, left
/// 4096x384x1536 (ksplit 2, 768 per slice) even, and measured 4096^3 (4096 per workgroup) at
/// 3.66 ms against 3.30 with scalar stores (one sample each), so long-K products keep them.
pub const VEC4_STORE_MAX_K: u64 = 1024;

/// The GEMM template a schedule renders with: the vec4 register tile when the thread tile is
/// made of whole vec4s, else the scalar one.
fn gemm_template(p: &kiln_schedules::GemmParams) -> &'static str {
    if p.is_vec4() {
        "gemm_vec4"
    } else {
        "gemm"
    }
}

/// Inserts `a_vec`/`b_vec` (and their `_e` closers) for GEMM operands read as vec4s: the
/// input's vec4 array directly, or a prologue function `kiln_x{i}_v4(i)` added to `fns`. An
/// operand given as `None` is left to the caller (a cooperative GEMM's 8-value loads).
fn vec_operand_loads(
    vec_ops: [Option<(usize, Option<Expr>)>; 2],
    dtype: DType,
    ctx: &mut tera::Context,
    params: &mut ParamSet,
    helpers: &mut BTreeSet<&'static str>,
    in_dtypes: &Slots,
    fns: &mut Vec<String>,
) {
    for (i, (name, op)) in ["a_vec", "b_vec"].iter().zip(vec_ops).enumerate() {
        let Some((slot, index)) = op else {
            continue;
        };
        if in_dtypes.is_packed(slot) {
            // f16 pairs (read only at the operand's own index: `vec_operand`): the 4 values
            // at a multiple of 4 are two words, unpacked to f32.
            let f = format!("kiln_h4_{slot}");
            if !fns.iter().any(|x| x.starts_with(&format!("fn {f}("))) {
                fns.push(format!(
                    "fn {f}(i: u32) -> vec4<f32> {{\n    let w = i >> 1u;\n    \
                     return vec4<f32>(unpack2x16float(in{slot}[w]), unpack2x16float(in{slot}[w + 1u]));\n}}"
                ));
            }
            for key in [name.to_string(), format!("{name}_u")] {
                ctx.insert(&key, &format!("{f}(u32("));
                ctx.insert(format!("{key}_e"), "))");
            }
            continue;
        }
        // The unsigned form (`{name}_u`): the element index is never negative, and an unsigned
        // division by 4 is one shift where a signed one needs a sign fix-up.
        let (open_u, close_u) = match index {
            None => (format!("in{slot}[u32("), ") / 4u]".to_string()),
            Some(_) => (format!("kiln_x{i}_v4("), ")".to_string()),
        };
        ctx.insert(format!("{name}_u"), &open_u);
        ctx.insert(format!("{name}_u_e"), &close_u);
        let (open, close) = match index {
            None => (format!("in{slot}[("), ") / 4i]".to_string()),
            Some(ix) => {
                let mut w = index_writer(params, helpers, in_dtypes, "");
                let (v, _) = w.emit(&ix);
                let mut f = format!("fn kiln_x{i}_v4(i: i32) -> vec4<{}> {{\n", reg_ty(dtype));
                for l in &w.lines {
                    f.push_str(&format!("    {l}\n"));
                }
                f.push_str(&format!("    return in{slot}[{v} / 4i];\n}}"));
                fns.push(f);
                (format!("kiln_x{i}_v4("), ")".to_string())
            }
        };
        ctx.insert(*name, &open);
        ctx.insert(format!("{name}_e"), &close);
    }
}

/// A cooperative-matrix kernel that stores C through the epilogue scratch must fit the limits
/// with it; the schedule's own rule checks only the stages. Unsupported (not a limits error),
/// so that `--precision f16` keeps the f32 kernel instead of failing the compile.
fn coop_scratch_fits(
    draft: &KernelDraft,
    op: &str,
    p: &kiln_schedules::CoopGemmParams,
    schedule: Schedule,
    limits: &DeviceLimits,
) -> Result<(), CompileError> {
    if p.fits_with_scratch(limits) {
        return Ok(());
    }
    Err(CompileError::Unsupported {
        node: draft.label.clone(),
        op: op.into(),
        msg: format!(
            "{schedule} needs {} bytes of workgroup memory with its epilogue scratch (maxComputeWorkgroupStorageSize = {}); \
             only whole blocks without an epilogue store straight to C without it",
            p.workgroup_bytes(),
            limits.max_compute_workgroup_storage_size
        ),
    })
}

/// The tile sizes both cooperative-matrix templates (`gemm_coop.wgsl`, `qgemm_coop.wgsl`) read:
/// block, subgroup tile, fragments per subgroup and the K steps of one block. Returns the
/// workgroup's thread count.
fn coop_tile_context(ctx: &mut tera::Context, p: &kiln_schedules::CoopGemmParams) -> u32 {
    use kiln_schedules::{COOP_FRAGMENT, COOP_PAD};
    let threads = p.threads();
    for (name, v) in [
        ("bm", p.bm),
        ("bn", p.bn),
        ("bk", p.bk),
        ("sm", p.sm),
        ("sn", p.sn),
        ("threads", threads),
        ("subgroups", p.subgroups()),
        ("sg_cols", p.bn / p.sn),
        ("fm", p.sm / COOP_FRAGMENT),
        ("fn", p.sn / COOP_FRAGMENT),
        ("pad", COOP_PAD),
    ] {
        ctx.insert(name, &v);
    }
    let ksteps: Vec<u32> = (0..p.bk / COOP_FRAGMENT).map(|i| i * COOP_FRAGMENT).collect();
    ctx.insert("ksteps", &ksteps);
    ctx.insert("db", &p.double_buffer);
    threads
}

/// Values per global load of each operand of a cooperative-matrix GEMM: 8 for an operand held
/// as f16 pairs (read as `vec4<u32>`, one 16-byte load; the template's `{x}_vec_u` is set to
/// it) where its runs (K for A, N for B) and the block's row are multiples of 8 and the block's
/// loads divide evenly among the threads, and it is not also the other operand; else 4 (f32
/// vec4s, or two words of pairs unpacked to f32 by `vec_operand_loads`).
fn coop_packed_loads(
    p: &kiln_schedules::CoopGemmParams,
    [k, n]: [&Dim; 2],
    slots: &[usize],
    in_dtypes: &Slots,
    ctx: &mut tera::Context,
) -> [u32; 2] {
    let threads = p.threads();
    let mut widths = [4; 2];
    for (i, (name, run, row, tile)) in [("a_vec", k, p.bk, p.bm * p.bk), ("b_vec", n, p.bn, p.bk * p.bn)]
        .into_iter()
        .enumerate()
    {
        let s = slots[i];
        let by8 = run.as_const().is_some_and(|c| c % 8 == 0) && row % 8 == 0 && (tile / 8) % threads == 0;
        if in_dtypes.is_packed(s) && by8 && slots[1 - i] != s {
            widths[i] = 8;
            ctx.insert(format!("{name}_u"), &format!("in{s}[u32("));
            ctx.insert(format!("{name}_u_e"), ") / 8u]");
        }
    }
    widths
}

/// The cooperative-matrix GEMM template's sizes (tera has no integer division).
fn coop_gemm_context(
    ctx: &mut tera::Context,
    p: &kiln_schedules::CoopGemmParams,
    mnk: [&String; 3],
    [a_w, b_w]: [u32; 2],
    batch_lines: &[String],
) {
    use kiln_schedules::COOP_PAD;
    let threads = coop_tile_context(ctx, p);
    for (name, v) in [
        ("a_row", p.bk + COOP_PAD),
        ("b_row", p.bn + COOP_PAD),
        ("a_len", p.bm * (p.bk + COOP_PAD)),
        ("b_len", p.bk * (p.bn + COOP_PAD)),
        ("a_w", a_w),
        ("b_w", b_w),
        ("a_units", p.bk / a_w),
        ("b_units", p.bn / b_w),
        ("a_loads", p.bm * p.bk / a_w / threads),
        ("b_loads", p.bk * p.bn / b_w / threads),
    ] {
        ctx.insert(name, &v);
    }
    // A load of 8 f16 (a `vec4<u32>` of pairs) fills two vec4<f16> of the stage.
    for (x, w) in [("a", a_w), ("b", b_w)] {
        let (ty, vecs, stage) = if w == 8 {
            let half =
                |lo: &str, hi: &str| format!("vec4<f16>(vec4<f32>(unpack2x16float(v.{lo}), unpack2x16float(v.{hi})))");
            (
                "vec4<u32>",
                " * 2u",
                vec![
                    format!("{x}_sh[at] = {};", half("x", "y")),
                    format!("{x}_sh[at + 1u] = {};", half("z", "w")),
                ],
            )
        } else {
            ("vec4<f32>", "", vec![format!("{x}_sh[at] = vec4<f16>(v);")])
        };
        ctx.insert(format!("{x}_ty"), ty);
        ctx.insert(format!("{x}_vecs"), vecs);
        ctx.insert(format!("{x}_stage"), &stage);
    }
    // Staged as vec4<f16>, every index and stride into the stages counts vec4s.
    let unit = if p.vec_stage { 4 } else { 1 };
    ctx.insert("vec_stage", &p.vec_stage);
    ctx.insert("unit", &unit);
    // K-steps per loop iteration: one per stage, so a double-buffered step's offsets are constants.
    let halves: Vec<u32> = if p.double_buffer { vec![0, 1] } else { vec![0] };
    ctx.insert("halves", &halves);
    ctx.insert("a_row_s", &((p.bk + COOP_PAD) / unit));
    ctx.insert("b_row_s", &((p.bn + COOP_PAD) / unit));
    ctx.insert("a_len_s", &(p.bm * (p.bk + COOP_PAD) / unit));
    ctx.insert("b_len_s", &(p.bk * (p.bn + COOP_PAD) / unit));
    ctx.insert("m", mnk[0]);
    ctx.insert("n", mnk[1]);
    ctx.insert("k", mnk[2]);
    ctx.insert("batch_lines", batch_lines);
}

/// The body of a matmul's `kiln_epilogue(v, gm, gn, batch)` for the draft's fused epilogue
/// (empty without one), over C's coordinates `[batch, M, N]` with `batches` batches
/// ([`epilogue_at_coords`]): a bias is read at `gn`, with no integer modulo per element (which
/// cost MiniLM-L3's FFN-up GEMM 48 of its 192 us on the H200).
fn gemm_epilogue(
    draft: &KernelDraft,
    [batches, m, n]: [&Dim; 3],
    params: &mut ParamSet,
    helpers: &mut BTreeSet<&'static str>,
    in_dtypes: &Slots,
) -> Vec<String> {
    match &draft.epilogue {
        Some(e) => {
            let shape = [batches.clone(), m.clone(), n.clone()];
            epilogue_at_coords(e, &shape, &["batch", "gm", "gn"], params, helpers, in_dtypes)
        }
        None => Vec::new(),
    }
}

/// [`gemm_epilogue`] of a quantized product: one batch of `m` rows of `n` outputs.
fn quant_epilogue(
    draft: &KernelDraft,
    m: &Dim,
    n: usize,
    params: &mut ParamSet,
    helpers: &mut BTreeSet<&'static str>,
    in_dtypes: &Slots,
) -> Vec<String> {
    gemm_epilogue(draft, [&Dim::c(1), m, &Dim::from(n)], params, helpers, in_dtypes)
}

/// Whether the draft's epilogue loads any of the input `slots` (conservatively, from the
/// expression's structure as printed): such slots must stay scalar arrays.
fn epilogue_reads(draft: &KernelDraft, slots: &[usize]) -> bool {
    let Some(e) = &draft.epilogue else {
        return false;
    };
    let text = format!("{e:?}");
    slots.iter().any(|s| {
        ["Load(", "LoadIdx(", "LoadAt("]
            .iter()
            .any(|v| text.contains(&format!("{v}{s},")))
    })
}

/// Statements that compute a batched matmul's element offsets `a_off`, `b_off` and `c_off`
/// from the workgroup's `batch` index (numpy broadcasting of the batch dims).
fn matmul_batch_lines(params: &mut ParamSet, a: &[Dim], b: &[Dim]) -> Vec<String> {
    let (m, k, n, batch_dims, a_batch, b_batch) = gemm_dims(a, b);
    let mut lines = Vec::new();
    let nb = batch_dims.len();
    let mut a_terms = Vec::new();
    let mut b_terms = Vec::new();
    if nb > 0 {
        let names: Vec<String> = (0..nb).map(|i| format!("bc{i}")).collect();
        lines = decompose(params, "batch", "bz", &names, &batch_dims);
        let sa = crate::lower::broadcast_strides(&a_batch, nb);
        let sb = crate::lower::broadcast_strides(&b_batch, nb);
        for i in (0..nb).rev() {
            if sa[i] != Dim::c(0) {
                a_terms.push(format!("bc{i} * {}", params.dim(&sa[i].mul(&m).mul(&k), "a_stride")));
            }
            if sb[i] != Dim::c(0) {
                b_terms.push(format!("bc{i} * {}", params.dim(&sb[i].mul(&k).mul(&n), "b_stride")));
            }
        }
    }
    let sum = |t: Vec<String>| if t.is_empty() { "0i".to_string() } else { t.join(" + ") };
    lines.push(format!("let a_off = {};", sum(a_terms)));
    lines.push(format!("let b_off = {};", sum(b_terms)));
    lines.push(format!("let c_off = batch * {};", params.dim(&m.mul(&n), "mn")));
    lines
}

/// WGSL statements splitting the i32 `linear` into row-major coordinates `names[i]` over
/// `dims` (last axis fastest), using the scratch variable `scratch`.
fn decompose(params: &mut ParamSet, linear: &str, scratch: &str, names: &[String], dims: &[Dim]) -> Vec<String> {
    if names.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![format!("var {scratch} = {linear};")];
    for i in (1..names.len()).rev() {
        let d = params.divisor(&dims[i], "dim");
        lines.push(format!("let {} = {scratch} % {d};", names[i]));
        lines.push(format!("{scratch} = {scratch} / {d};"));
    }
    lines.push(format!("let {} = {scratch};", names[0]));
    lines
}

/// Most registers per thread a row-wise kernel spends caching its row.
const ROW_CACHE_MAX: u32 = 16;

/// Registers per thread that hold a whole row of `len` elements for a workgroup of `wg`
/// threads, so a row-wise kernel reads its input once; 0 (three passes over global memory)
/// when the length is symbolic or a row needs more than 16 registers per thread.
fn row_cache(len: &Dim, wg: u32) -> u32 {
    match len.as_const() {
        Some(l) if l > 0 && l <= ROW_CACHE_MAX as i64 * wg as i64 => (l as u32).div_ceil(wg),
        _ => 0,
    }
}

/// The block-format values the quantized templates share: the block's name, its element and
/// byte counts, the bytes of one weight row, the blocks per row, and N and K (constants).
fn quant_context(ctx: &mut tera::Context, block: kiln_ir::BlockType, n: usize, k: usize, in_dtypes: &Slots) {
    let (be, bb) = (block.block_elems(), block.block_bytes());
    ctx.insert("block", block.name());
    ctx.insert("be", &be);
    ctx.insert("bb", &bb);
    ctx.insert("row_bytes", &(k / be * bb));
    // Bytes from a block to the same block of the next row, and to the next block of the same
    // row: GGUF's row order, or block-column-major (the weight is always slot 1).
    let (row_stride, block_stride) = if in_dtypes.is_block_columns(1) {
        (bb, n * bb)
    } else {
        (k / be * bb, bb)
    };
    ctx.insert("row_stride", &row_stride);
    ctx.insert("block_stride", &block_stride);
    ctx.insert("nblocks", &(k / be));
    ctx.insert("parts", &block_parts(block));
    ctx.insert("n", &n);
    ctx.insert("k", &k);
}

/// Halving steps of a tree reduction over `wg` lanes: wg/2, wg/4, ..., 1.
fn halves(wg: u32) -> Vec<u32> {
    let mut v = Vec::new();
    let mut s = wg / 2;
    while s > 0 {
        v.push(s);
        s /= 2;
    }
    v
}

/// Renders a kernel draft with a schedule; the result is validated by naga.
pub fn render(
    draft: &KernelDraft,
    in_dtypes: &Slots,
    out_dtype: DType,
    schedule: Schedule,
    limits: &DeviceLimits,
) -> Result<RenderedKernel, CompileError> {
    render_with_params(draft, in_dtypes, out_dtype, schedule, limits, ParamSet::default())
}

/// [`render`] for a variant of `base`: its parameters start as `base`'s fields, so the variant
/// binds the same values wherever its dims are among them (compare the result's
/// `param_names` with `base`'s).
pub fn render_variant(
    draft: &KernelDraft,
    in_dtypes: &Slots,
    out_dtype: DType,
    schedule: Schedule,
    limits: &DeviceLimits,
    base: &RenderedKernel,
) -> Result<RenderedKernel, CompileError> {
    // A kernel without parameters lists one placeholder field (`unused`).
    let params = if base.param_names == ["unused"] {
        ParamSet::default()
    } else {
        ParamSet::seeded(&base.param_names, &base.param_values)
    };
    render_with_params(draft, in_dtypes, out_dtype, schedule, limits, params)
}

fn render_with_params(
    draft: &KernelDraft,
    in_dtypes: &Slots,
    out_dtype: DType,
    schedule: Schedule,
    limits: &DeviceLimits,
    mut params: ParamSet,
) -> Result<RenderedKernel, CompileError> {
    let limit_err = |msg: String| CompileError::Limits {
        node: draft.label.clone(),
        target: limits.name.clone(),
        msg,
    };
    schedule.validate(limits).map_err(|e| limit_err(e.to_string()))?;
    // Output bindings' element types: an f16 state's words are u32.
    let out_dtypes: Vec<DType> = match &draft.body {
        KernelBody::Parts(parts) => parts.iter().map(part_dtype).collect(),
        // Blocks of bytes and scales (lower::Q8_BLOCK_WORDS).
        KernelBody::QuantizeRows { packed: true, .. }
        | KernelBody::QGemm {
            q8_out: Some(crate::lower::Q8Storage::Packed),
            ..
        } => vec![DType::U32],
        _ => vec![out_dtype],
    };
    let packed_outputs: Vec<bool> = match &draft.body {
        KernelBody::Parts(parts) => parts.iter().map(writes_packed_state).collect(),
        _ => vec![writes_packed_state(draft)],
    };
    // A GEMV's tail parts write their own outputs after the GEMV's.
    let (out_dtypes, packed_outputs) = match &draft.body {
        KernelBody::QGemm { tail, .. } => (
            out_dtypes.into_iter().chain(tail.iter().map(part_dtype)).collect(),
            packed_outputs
                .into_iter()
                .chain(tail.iter().map(writes_packed_state))
                .collect(),
        ),
        _ => (out_dtypes, packed_outputs),
    };
    let out_dtypes: Vec<DType> = out_dtypes
        .iter()
        .zip(&packed_outputs)
        .map(|(&d, &packed)| if packed { DType::U32 } else { d })
        .collect();
    let buffers = (draft.inputs.len() + out_dtypes.len()) as u32;
    if buffers > limits.max_storage_buffers_per_shader_stage {
        return Err(limit_err(format!(
            "needs {buffers} storage buffers, maxStorageBuffersPerShaderStage = {}",
            limits.max_storage_buffers_per_shader_stage
        )));
    }
    let mut helpers = BTreeSet::new();
    let mut vec4_inputs: Vec<usize> = Vec::new();
    let mut vec4_output = false;
    let mut fns: Vec<String> = Vec::new();
    let mut split_k = None;
    let mut scratch = None;
    let mut ctx = tera::Context::new();
    ctx.insert("label", &draft.label.replace('\n', " "));
    if let (Schedule::Injective(p), body) = (schedule, &draft.body) {
        if p.vector != 1 && !matches!(body, KernelBody::Injective { .. }) {
            return Err(CompileError::Unsupported {
                node: draft.label.clone(),
                op: "Injective".into(),
                msg: format!("schedule {schedule}: only single-output elementwise kernels take 4-vectors"),
            });
        }
    }
    let (template, workgroup_size, grid, splittable) = match (&draft.body, schedule) {
        (KernelBody::Injective { shape, dtype, expr }, Schedule::Injective(p)) if p.vector == 4 => {
            if !injective_vec4_ok(shape, *dtype) {
                return Err(CompileError::Unsupported {
                    node: draft.label.clone(),
                    op: "Injective".into(),
                    msg: format!(
                        "schedule {schedule}: 4-vector loads and stores need an f32 output with a multiple of 4 elements"
                    ),
                });
            }
            // Each thread computes 4-vectors of consecutive elements: inputs read at the
            // output's own index are loaded once per 4-vector, the rest element by element.
            let n = Dim::product(shape);
            let n4 = params.dim(&n.exact_div(&Dim::c(4)).expect("checked above"), "n4");
            let slots = vec4_slots(expr, in_dtypes);
            vec4_inputs.extend(&slots);
            vec4_output = true;
            let loads: Vec<String> = slots.iter().map(|s| format!("let xv{s} = in{s}[i4];")).collect();
            let mut lanes = Vec::new();
            for (k, c) in ["x", "y", "z", "w"].iter().enumerate() {
                let map = slots.iter().map(|s| (*s, format!("xv{s}.{c}"))).collect();
                let (mut lines, v, d) = element_lines(draft, &mut params, &mut helpers, in_dtypes, map);
                lines.insert(0, format!("let idx = i4 * 4i + {k}i;"));
                lines.push(format!("r.{c} = {};", to_storage(d, &v)));
                lanes.push(lines);
            }
            ctx.insert("wg", &p.workgroup_size);
            ctx.insert("ept", &p.elems_per_thread);
            ctx.insert("n4", &n4);
            ctx.insert("loads", &loads);
            ctx.insert("lanes", &lanes);
            let per_group = (p.workgroup_size * p.elems_per_thread * 4) as i64;
            let grid = [dim_expr(&n).cdiv(per_group), SizeExpr::c(1), SizeExpr::c(1)];
            ("injective_vec4", [p.workgroup_size, 1, 1], grid, true)
        }
        (KernelBody::Injective { shape, .. }, Schedule::Injective(p)) => {
            let n = Dim::product(shape);
            let n_s = params.dim(&n, "n");
            let body = part_lines(draft, "out", &mut params, &mut helpers, in_dtypes);
            injective_launch(&mut ctx, &p, &n, &n_s, &body)
        }
        (
            KernelBody::Reduce {
                in_shape,
                dtype,
                axes,
                kind,
            },
            Schedule::RowReduce(p),
        ) => {
            let st = crate::lower::sym_strides(in_shape);
            let kept: Vec<usize> = (0..in_shape.len()).filter(|i| !axes.contains(i)).collect();
            let rows = Dim::product(kept.iter().map(|&i| &in_shape[i]));
            let len = Dim::product(axes.iter().map(|&i| &in_shape[i]));
            let trailing = axes.iter().copied().eq(kept.len()..in_shape.len());
            let mut row_lines = Vec::new();
            let mut elem_lines = Vec::new();
            let len_s = params.dim(&len, "len");
            let (x0, x0e) = operand_access(draft, 0, &mut params, &mut helpers, in_dtypes, &mut fns);
            if trailing {
                row_lines.push(format!("let base = row * {len_s};"));
                elem_lines.push(format!(
                    "let v = {};",
                    from_storage(*dtype, &format!("{x0}base + r{x0e}"))
                ));
            } else {
                let names: Vec<String> = kept.iter().map(|a| format!("k{a}")).collect();
                let dims: Vec<Dim> = kept.iter().map(|&a| in_shape[a].clone()).collect();
                row_lines = decompose(&mut params, "row", "rr", &names, &dims);
                let terms: Vec<String> = kept
                    .iter()
                    .map(|&a| format!("k{a} * {}", params.dim(&st[a], "stride")))
                    .collect();
                row_lines.push(format!(
                    "let base = {};",
                    if terms.is_empty() {
                        "0i".into()
                    } else {
                        terms.join(" + ")
                    }
                ));
                let names: Vec<String> = axes.iter().map(|a| format!("j{a}")).collect();
                let dims: Vec<Dim> = axes.iter().map(|&a| in_shape[a].clone()).collect();
                elem_lines = decompose(&mut params, "r", "q", &names, &dims);
                let terms: Vec<String> = axes
                    .iter()
                    .map(|&a| format!("j{a} * {}", params.dim(&st[a], "stride")))
                    .collect();
                elem_lines.push(format!(
                    "let v = {};",
                    from_storage(*dtype, &format!("{x0}base + {}{x0e}", terms.join(" + ")))
                ));
            }
            let acc_ty = reg_ty(*dtype);
            ctx.insert("acc_ty", acc_ty);
            ctx.insert("wg", &p.workgroup_size);
            ctx.insert("rows", &params.dim(&rows, "rows"));
            ctx.insert("len", &len_s);
            ctx.insert("row_lines", &row_lines);
            ctx.insert("elem_lines", &elem_lines);
            ctx.insert("halves", &halves(p.workgroup_size));
            let (lo, hi) = match dtype {
                DType::F32 | DType::F16 => (
                    literal(f64::NEG_INFINITY, DType::F32),
                    literal(f64::INFINITY, DType::F32),
                ),
                DType::U32 | DType::U8 => ("0u".into(), "4294967295u".into()),
                _ => (
                    literal(i32::MIN as f64, DType::I32),
                    literal(i32::MAX as f64, DType::I32),
                ),
            };
            match kind {
                ReduceKind::Plain(op) => {
                    let (init, combine, combine_s) = match op {
                        ReduceOp::Sum | ReduceOp::Mean => (literal(0.0, *dtype), "acc + v", "acc2 + v"),
                        ReduceOp::Prod => (literal(1.0, *dtype), "acc * v", "acc2 * v"),
                        ReduceOp::Max => (lo, "max(acc, v)", "max(acc2, v)"),
                        ReduceOp::Min => (hi, "min(acc, v)", "min(acc2, v)"),
                    };
                    let mut finish = "scratch[0]".to_string();
                    if *op == ReduceOp::Mean {
                        finish = format!("scratch[0] / f32({len_s})");
                    }
                    if *dtype == DType::F16 {
                        helpers.insert("kiln_f16");
                        finish = format!("kiln_f16({finish})");
                    }
                    // A fused epilogue (the elementwise ops that read the reduced value, e.g.
                    // mean pooling's division by the token count) over the output index.
                    let epilogue = match &draft.epilogue {
                        Some(e) => {
                            finish = format!("kiln_epilogue({finish}, row)");
                            epilogue_lines(e, "row".into(), &mut params, &mut helpers, in_dtypes)
                        }
                        None => Vec::new(),
                    };
                    ctx.insert("epilogue", &epilogue);
                    ctx.insert("out_ty", reg_ty(out_dtype));
                    ctx.insert("arg", &false);
                    ctx.insert("init", &init);
                    ctx.insert("combine", combine);
                    ctx.insert("combine_scratch", combine_s);
                    ctx.insert("finish", &finish);
                }
                ReduceKind::Arg { max, select_last } => {
                    ctx.insert("epilogue", &Vec::<String>::new());
                    ctx.insert("arg", &true);
                    ctx.insert("max", max);
                    ctx.insert("select_last", select_last);
                    ctx.insert("better", "kiln_better");
                    ctx.insert("init", &if *max { lo } else { hi });
                }
            }
            let init = ctx.get("init").and_then(|v| v.as_str()).unwrap_or_default();
            if init.starts_with(expr::NONFINITE_HELPER) {
                helpers.insert(expr::NONFINITE_HELPER);
            }
            let grid = [dim_expr(&rows), SizeExpr::c(1), SizeExpr::c(1)];
            ("reduce", [p.workgroup_size, 1, 1], grid, true)
        }
        (KernelBody::Softmax { shape, axis, log }, Schedule::RowReduce(p)) => {
            let inner = Dim::product(&shape[axis + 1..]);
            let len = shape[*axis].clone();
            let rows = Dim::product(&shape[..*axis]).mul(&inner);
            ctx.insert("wg", &p.workgroup_size);
            ctx.insert("rows", &params.dim(&rows, "rows"));
            ctx.insert("len", &params.dim(&len, "len"));
            ctx.insert("inner", &params.divisor(&inner, "inner"));
            ctx.insert("log", log);
            ctx.insert("cache", &row_cache(&len, p.workgroup_size));
            ctx.insert("halves", &halves(p.workgroup_size));
            let (x0, x0e) = operand_access(draft, 0, &mut params, &mut helpers, in_dtypes, &mut fns);
            ctx.insert("x0", &x0);
            ctx.insert("x0e", &x0e);
            let grid = [dim_expr(&rows), SizeExpr::c(1), SizeExpr::c(1)];
            ("softmax", [p.workgroup_size, 1, 1], grid, true)
        }
        (KernelBody::QuantizeRows { rows, k, norm, packed }, Schedule::RowReduce(p)) => {
            // 8 values per thread, a block's 4 threads adjacent (so the workgroup size is a
            // multiple of 4; the row-reduce schedules are powers of two from 32).
            let wg = p.workgroup_size;
            if k % 32 != 0 || wg % 4 != 0 {
                return Err(CompileError::Internal(format!(
                    "{}: quantizing needs rows of whole 32-value blocks and a workgroup of 4n threads",
                    draft.label
                )));
            }
            ctx.insert("wg", &wg);
            ctx.insert("rows", &params.dim(rows, "rows"));
            ctx.insert("k", k);
            ctx.insert("k4", &(k / 4));
            ctx.insert("k8", &(k / 8));
            ctx.insert("nb", &(k / 32));
            ctx.insert("words", &crate::lower::Q8_BLOCK_WORDS);
            ctx.insert("chunks", &(k / 8).div_ceil(wg as usize));
            ctx.insert("norm", &norm.is_some());
            ctx.insert("eps", &literal(f64::from(norm.unwrap_or(0.0)), DType::F32));
            ctx.insert("packed", packed);
            ctx.insert("halves", &halves(wg));
            vec4_inputs.push(0);
            if norm.is_some() {
                vec4_inputs.push(1);
            }
            vec4_output = !*packed;
            let grid = [dim_expr(rows), SizeExpr::c(1), SizeExpr::c(1)];
            ("quantize_rows", [wg, 1, 1], grid, true)
        }
        (
            KernelBody::LayerNorm {
                shape,
                axis,
                epsilon,
                rms,
            },
            Schedule::RowReduce(p),
        ) => {
            let rows = Dim::product(&shape[..*axis]);
            let len = Dim::product(&shape[*axis..]);
            ctx.insert("wg", &p.workgroup_size);
            ctx.insert("rows", &params.dim(&rows, "rows"));
            ctx.insert("len", &params.dim(&len, "len"));
            ctx.insert("epsilon", &literal(*epsilon as f64, DType::F32));
            ctx.insert("cache", &row_cache(&len, p.workgroup_size));
            ctx.insert("halves", &halves(p.workgroup_size));
            ctx.insert("rms", rms);
            let operands = if *rms { 2 } else { 3 };
            // Rows of a multiple of 4 whose operands are read directly (f32): the row is cached
            // as 4-vectors and x, scale, bias and the output move as vec4s (a quarter of the
            // load and store instructions of the scalar path).
            let direct: Vec<Option<usize>> = (0..operands).map(|i| direct_f32_slot(draft, i, in_dtypes)).collect();
            // Every thread holds at least one 4-vector (shorter rows keep more threads busy
            // element by element).
            let vec_cache = len
                .as_const()
                .filter(|l| l % 4 == 0 && l / 4 >= p.workgroup_size as i64)
                .map_or(0, |l| {
                    let per_thread = (l as u64 / 4).div_ceil(p.workgroup_size as u64);
                    if per_thread * 4 <= ROW_CACHE_MAX as u64 {
                        per_thread as u32
                    } else {
                        0
                    }
                });
            let vec4 = vec_cache > 0 && out_dtype == DType::F32 && direct.iter().all(Option::is_some);
            ctx.insert("vec4", &vec4);
            if vec4 {
                let slots: Vec<usize> = direct.into_iter().flatten().collect();
                ctx.insert(
                    "len4",
                    &params.dim(&len.exact_div(&Dim::c(4)).expect("checked"), "len4"),
                );
                ctx.insert("cache4", &vec_cache);
                ctx.insert("s", &slots);
                for s in slots {
                    if !vec4_inputs.contains(&s) {
                        vec4_inputs.push(s);
                    }
                }
                vec4_output = true;
            } else {
                for i in 0..operands {
                    let (x, xe) = operand_access(draft, i, &mut params, &mut helpers, in_dtypes, &mut fns);
                    ctx.insert(format!("x{i}"), &x);
                    ctx.insert(format!("x{i}e"), &xe);
                }
            }
            let grid = [dim_expr(&rows), SizeExpr::c(1), SizeExpr::c(1)];
            ("layernorm", [p.workgroup_size, 1, 1], grid, true)
        }
        (KernelBody::Gemm { a, b, dtype }, Schedule::Gemm(p)) => {
            let (m, k, n, batch_dims, ..) = gemm_dims(a, b);
            let batch = Dim::product(&batch_dims);
            let split = p.ksplit > 1;
            if split && *dtype != DType::F32 {
                return Err(CompileError::Unsupported {
                    node: draft.label.clone(),
                    op: "MatMul".into(),
                    msg: format!("split-K ({schedule}) needs f32 operands, not {dtype:?}"),
                });
            }
            let m_s = params.dim(&m, "m");
            let k_s = params.dim(&k, "k");
            let n_s = params.dim(&n, "n");
            let mut lines = matmul_batch_lines(&mut params, a, b);
            if split {
                // Partial sums of slice s go to [batch][s][M][N]: workgroup z's own M x N block.
                let mn = params.dim(&m.mul(&n), "mn");
                if let Some(c) = lines.iter_mut().find(|l| l.starts_with("let c_off")) {
                    *c = format!("let c_off = i32(wid.z) * {mn};");
                }
            }
            gemm_context(&mut ctx, &p, *dtype, [&m_s, &n_s, &k_s], &lines);
            // vec4 operand reads need every row of A and B (and every batch) to start on a vec4,
            // and each operand read directly or through a prologue that maps runs of 4 to runs
            // of 4 (a head split, a transpose that keeps the inner axis); the slots they read
            // become vec4 arrays, so nothing else (the epilogue) may read them element-wise.
            let by4 = |d: &Dim| d.as_const().is_some_and(|c| c % 4 == 0);
            let vec_ops = [0, 1].map(|i| vec_operand(draft, i, *dtype, in_dtypes));
            let vec_slots: Vec<usize> = vec_ops.iter().flatten().map(|(s, _)| *s).collect();
            let vec_path = p.is_vec4()
                && p.bk % 4 == 0
                && by4(&k)
                && by4(&n)
                && vec_slots.len() == 2
                && (split || !epilogue_reads(draft, &vec_slots));
            if vec_path {
                vec_operand_loads(
                    vec_ops,
                    *dtype,
                    &mut ctx,
                    &mut params,
                    &mut helpers,
                    in_dtypes,
                    &mut fns,
                );
                ctx.insert("vec_loads", &true);
                ctx.insert("a_load", &Vec::<String>::new());
                ctx.insert("b_load", &Vec::<String>::new());
                for s in vec_slots.into_iter().filter(|s| !in_dtypes.is_packed(*s)) {
                    if !vec4_inputs.contains(&s) {
                        vec4_inputs.push(s);
                    }
                }
            } else {
                let (xa, xae) = operand_access(draft, 0, &mut params, &mut helpers, in_dtypes, &mut fns);
                let (xb, xbe) = operand_access(draft, 1, &mut params, &mut helpers, in_dtypes, &mut fns);
                ctx.insert("a_load", &[format!("v = {xa}a_off + gm * {k_s} + gk{xae};")]);
                ctx.insert("b_load", &[format!("v = {xb}b_off + gk * {n_s} + gn{xbe};")]);
            }
            // The vec4 tile stores each accumulator's 4 columns as one vec4 where every row of C
            // (and every batch and split-K slice) starts on a vec4 and a workgroup walks at most
            // VEC4_STORE_MAX_K of K: out becomes a vec4 array.
            let short_k = k
                .as_const()
                .is_some_and(|k| (k as u64).div_ceil(p.ksplit.max(1) as u64) <= VEC4_STORE_MAX_K);
            if p.is_vec4() && by4(&n) && short_k && *dtype == DType::F32 {
                ctx.insert("vec_store", &true);
                vec4_output = true;
            }
            // Split-K applies the epilogue in the combine kernel, after the slices are added.
            let epilogue = if split {
                Vec::new()
            } else {
                gemm_epilogue(draft, [&batch, &m, &n], &mut params, &mut helpers, in_dtypes)
            };
            ctx.insert("epilogue", &epilogue);
            let grid = [
                dim_expr(&n).cdiv(p.bn as i64),
                dim_expr(&m).cdiv(p.bm as i64),
                dim_expr(&batch).times(p.ksplit as i64),
            ];
            if split {
                split_k = Some(render_combine(
                    draft,
                    in_dtypes,
                    &p,
                    schedule,
                    [&m, &n, &batch],
                    limits,
                )?);
            }
            (gemm_template(&p), [p.bn / p.tn, p.bm / p.tm, 1], grid, false)
        }
        (KernelBody::Gemm { a, b, dtype }, Schedule::CoopGemm(p)) if dtype.is_float() => {
            let (m, k, n, batch_dims, ..) = gemm_dims(a, b);
            let batch = Dim::product(&batch_dims);
            // Both operands must be vec4-readable (as for the vec4 register tile), and the
            // epilogue may not read them element-wise.
            let by4 = |d: &Dim| d.as_const().is_some_and(|c| c % 4 == 0);
            let vec_ops = [0, 1].map(|i| vec_operand(draft, i, *dtype, in_dtypes));
            let vec_slots: Vec<usize> = vec_ops.iter().flatten().map(|(s, _)| *s).collect();
            if !(by4(&k) && by4(&n) && vec_slots.len() == 2 && !epilogue_reads(draft, &vec_slots)) {
                return Err(CompileError::Unsupported {
                    node: draft.label.clone(),
                    op: "MatMul".into(),
                    msg: format!(
                        "{schedule} needs K and N multiples of 4 and both operands read as vec4s \
                         (directly or through a layout-only prologue)"
                    ),
                });
            }
            let m_s = params.dim(&m, "m");
            let k_s = params.dim(&k, "k");
            let n_s = params.dim(&n, "n");
            let lines = matmul_batch_lines(&mut params, a, b);
            if !p.vec_stage && vec_slots.iter().any(|s| in_dtypes.is_packed(*s)) {
                return Err(CompileError::Unsupported {
                    node: draft.label.clone(),
                    op: "MatMul".into(),
                    msg: format!("{schedule}: f16-pair operands need vec4 stages"),
                });
            }
            // 8-value loads of f16 pairs first; the other operands load as the tiled GEMM's.
            let widths = coop_packed_loads(&p, [&k, &n], &vec_slots, in_dtypes, &mut ctx);
            let [a_op, b_op] = vec_ops;
            let four = |op, w| if w == 8 { None } else { op };
            vec_operand_loads(
                [four(a_op, widths[0]), four(b_op, widths[1])],
                *dtype,
                &mut ctx,
                &mut params,
                &mut helpers,
                in_dtypes,
                &mut fns,
            );
            for (s, w) in vec_slots.iter().zip(widths) {
                // f32 operands and 8-wide f16 pairs are vec4 arrays (`header`).
                if (w == 8 || !in_dtypes.is_packed(*s)) && !vec4_inputs.contains(s) {
                    vec4_inputs.push(*s);
                }
            }
            let epilogue = gemm_epilogue(draft, [&batch, &m, &n], &mut params, &mut helpers, in_dtypes);
            // Fragments store straight to C when every block is whole and nothing follows.
            let whole = |d: &Dim, t: u32| d.as_const().is_some_and(|c| c % t as i64 == 0);
            let direct = epilogue.is_empty() && whole(&m, p.bm) && whole(&n, p.bn);
            // Operand loads skip their bounds checks when no block or K-step is partial.
            ctx.insert("whole_loads", &(whole(&m, p.bm) && whole(&n, p.bn) && whole(&k, p.bk)));
            if !direct {
                coop_scratch_fits(draft, "MatMul", &p, schedule, limits)?;
            }
            coop_gemm_context(&mut ctx, &p, [&m_s, &n_s, &k_s], widths, &lines);
            ctx.insert("n_u", &n.as_const().unwrap_or(0));
            ctx.insert("epilogue", &epilogue);
            ctx.insert("direct_store", &direct);
            let grid = [
                dim_expr(&n).cdiv(p.bn as i64),
                dim_expr(&m).cdiv(p.bm as i64),
                dim_expr(&batch),
            ];
            ("gemm_coop", [p.threads(), 1, 1], grid, false)
        }
        (KernelBody::Gemm { a, b, dtype }, Schedule::Gemv(p)) if dtype.is_float() && draft.operands.is_empty() => {
            if p.lane_rows != 1 || p.sg {
                return Err(CompileError::Unsupported {
                    node: draft.label.clone(),
                    op: "MatMul".into(),
                    msg: format!("schedule {schedule}: lane rows and subgroup sums are quantized GEMV parameters"),
                });
            }
            if in_dtypes.is_packed(0) || in_dtypes.is_packed(1) {
                return Err(CompileError::Unsupported {
                    node: draft.label.clone(),
                    op: "MatMul".into(),
                    msg: format!("schedule {schedule} reads no f16-pair operands"),
                });
            }
            let (m, k, n, batch_dims, ..) = gemm_dims(a, b);
            let batch = Dim::product(&batch_dims);
            // vec4 reads of B need every row of B (and every batch of B) to start on a vec4, and
            // an epilogue that does not read B element by element.
            let by4 = n.as_const().is_some_and(|c| c % 4 == 0);
            let w: u32 = if by4 && !epilogue_reads(draft, &[1]) { 4 } else { 1 };
            if w == 4 {
                vec4_inputs.push(1);
            }
            let m_s = params.dim(&m, "m");
            let k_s = params.dim(&k, "k");
            let n_s = params.dim(&n, "n");
            let ncols = match n.as_const() {
                Some(c) => Dim::c(c / w as i64),
                None => n.clone(),
            };
            let lines = matmul_batch_lines(&mut params, a, b);
            ctx.insert("ty", reg_ty(*dtype));
            ctx.insert(
                "vty",
                &if w == 4 {
                    format!("vec4<{}>", reg_ty(*dtype))
                } else {
                    reg_ty(*dtype).to_string()
                },
            );
            ctx.insert("w", &w);
            ctx.insert("zero", &literal(0.0, *dtype));
            ctx.insert("lanes", &p.lanes);
            ctx.insert("ksplit", &p.ksplit);
            ctx.insert("rows", &p.rows);
            ctx.insert("halves", &halves(p.ksplit));
            ctx.insert("slices", &p.slices);
            let mut k_slice = k.clone();
            let mut grid_z = dim_expr(&batch);
            if p.slices > 1 {
                let sliced = GemvSlices::new(
                    draft,
                    &p,
                    schedule,
                    [&batch, &m, &n, &ncols, &k],
                    *dtype,
                    buffers,
                    limits,
                )?;
                k_slice = Dim::c(sliced.k_slice as i64);
                grid_z = grid_z.times(p.slices as i64);
                ctx.insert("kslice", &sliced.k_slice);
                ctx.insert("k_lo", "k_begin + ");
                ctx.insert("k_hi", "k_end");
                ctx.insert("counters", &(ARRIVAL_COUNTERS * ARRIVAL_COUNTER_STRIDE));
                ctx.insert("counter_stride", &ARRIVAL_COUNTER_STRIDE);
                ctx.insert("row_groups", &sliced.row_groups);
                ctx.insert("col_groups", &sliced.col_groups);
                ctx.insert("scratch_binding", &(buffers + 1));
                scratch = Some(SizeExpr::c(sliced.scratch_bytes));
            } else {
                ctx.insert("k_lo", "");
                ctx.insert("k_hi", &k_s);
            }
            ctx.insert("unroll", &gemv_unroll(&k_slice, p.ksplit));
            ctx.insert("m", &m_s);
            ctx.insert("n", &n_s);
            ctx.insert("k", &k_s);
            ctx.insert("ncols", &params.dim(&ncols, "ncols"));
            ctx.insert("batch_lines", &lines);
            let epilogue = gemm_epilogue(draft, [&batch, &m, &n], &mut params, &mut helpers, in_dtypes);
            ctx.insert("epilogue", &epilogue);
            let grid = [
                dim_expr(&ncols).cdiv(p.lanes as i64),
                dim_expr(&m).cdiv(p.rows as i64),
                grid_z,
            ];
            ("gemv", [p.lanes, p.ksplit, 1], grid, false)
        }
        (
            KernelBody::Conv {
                x,
                w,
                out,
                strides,
                pads,
                dilations,
                groups,
                bias,
            },
            Schedule::Injective(p),
        ) if conv::direct_applies(w) => {
            // One input channel per group (depthwise): a thread per output element walks the
            // window (templates/injective.wgsl); a fused epilogue reads the biased value.
            let n = Dim::product(out);
            let n_s = params.dim(&n, "n");
            if let Some(e) = &draft.epilogue {
                let lines = epilogue_lines_with(e, "idx".into(), "v", &mut params, &mut helpers, in_dtypes);
                let mut f = "fn kiln_epilogue(v: f32, idx: i32) -> f32 {\n".to_string();
                for l in &lines {
                    f.push_str(&format!("    {l}\n"));
                }
                f.push('}');
                fns.push(f);
            }
            let geo = conv::ConvGeometry {
                x,
                w,
                out,
                strides,
                pads,
                dilations,
            };
            let fused = draft.epilogue.is_some();
            let store = |v: &str| {
                if fused {
                    format!("out[idx] = kiln_epilogue({v}, idx);")
                } else {
                    format!("out[idx] = {v};")
                }
            };
            let body = conv::direct_lines(&geo, *groups, *bias, &mut params, &store);
            injective_launch(&mut ctx, &p, &n, &n_s, &body)
        }
        (
            KernelBody::Conv {
                x,
                w,
                out,
                strides,
                pads,
                dilations,
                groups,
                bias,
            },
            Schedule::Gemm(p),
        ) => {
            if p.ksplit > 1 {
                return Err(CompileError::Unsupported {
                    node: draft.label.clone(),
                    op: "Conv".into(),
                    msg: format!("split-K ({schedule}) applies to matmuls, not convolutions"),
                });
            }
            let sp = x.len() - 2;
            let g = *groups as i64;
            let oc = w[0].as_const().expect("inference made OC concrete");
            let ocg = Dim::c(oc / g);
            let cg = w[1].clone();
            let kk: i64 = w[2..].iter().map(|d| d.as_const().expect("concrete kernel")).product();
            let k = cg.mul(&Dim::c(kk));
            let pp = Dim::product(&out[2..]);
            let in_sz = Dim::product(&x[2..]);
            let (m_s, k_s, n_s) = (params.dim(&ocg, "m"), params.dim(&k, "k"), params.dim(&pp, "n"));
            let lines = vec![
                format!("let g = batch % {g}i;"),
                format!("let img = batch / {g}i;"),
                format!("let a_off = g * {};", params.dim(&ocg.mul(&k), "a_stride")),
                format!(
                    "let x_off = (img * {} + g * {}) * {};",
                    params.dim(&x[1], "c"),
                    params.dim(&cg, "cg"),
                    params.dim(&in_sz, "insz")
                ),
                format!("let c_off = batch * {};", params.dim(&ocg.mul(&pp), "mn")),
            ];
            // B = im2col(x): gk -> (ci, kernel position), gn -> output position.
            let mut b = vec![
                format!("let ci = gk / {kk}i;"),
                format!("var kr = gk % {kk}i;"),
                "var pr = gn;".to_string(),
            ];
            let mut cond = Vec::new();
            let mut off = Vec::new();
            for a in (0..sp).rev() {
                let kd = w[2 + a].as_const().expect("concrete kernel");
                let od = params.divisor(&out[2 + a], "odim");
                let id = params.dim(&x[2 + a], "idim");
                b.push(format!("let kp{a} = kr % {kd}i;"));
                b.push(format!("kr = kr / {kd}i;"));
                b.push(format!("let op{a} = pr % {od};"));
                b.push(format!("pr = pr / {od};"));
                b.push(format!(
                    "let ip{a} = op{a} * {}i + kp{a} * {}i - {}i;",
                    strides[a], dilations[a], pads[a].0
                ));
                cond.push(format!("ip{a} >= 0i && ip{a} < {id}"));
            }
            for a in 0..sp {
                let stride: Dim = Dim::product(&x[3 + a..]);
                off.push(if stride == Dim::c(1) {
                    format!("ip{a}")
                } else {
                    format!("ip{a} * {}", params.dim(&stride, "istride"))
                });
            }
            b.push(format!("if ({}) {{", cond.join(" && ")));
            b.push(format!(
                "    v = in0[x_off + ci * {} + {}];",
                params.dim(&in_sz, "insz"),
                off.join(" + ")
            ));
            b.push("}".into());
            // The bias of output channel gm of group (batch % groups).
            let bias_term = |params: &mut ParamSet| format!("v + in2[(batch % {g}i) * {} + gm]", params.dim(&ocg, "m"));
            let epilogue: Vec<String> = match &draft.epilogue {
                // A fused epilogue reads the biased value as its core.
                Some(e) => {
                    let mn = params.dim(&ocg.mul(&pp), "mn");
                    let mut lines = Vec::new();
                    if *bias {
                        lines.push(format!("let vb = {};", bias_term(&mut params)));
                    }
                    let mut body = epilogue_lines_with(
                        e,
                        format!("batch * {mn} + gm * {n_s} + gn"),
                        if *bias { "vb" } else { "v" },
                        &mut params,
                        &mut helpers,
                        in_dtypes,
                    );
                    lines.append(&mut body);
                    lines
                }
                None if *bias => vec![format!("return {};", bias_term(&mut params))],
                None => vec![],
            };
            ctx.insert("a_load", &[format!("v = in1[a_off + gm * {k_s} + gk];")]);
            ctx.insert("b_load", &b);
            ctx.insert("epilogue", &epilogue);
            gemm_context(&mut ctx, &p, DType::F32, [&m_s, &n_s, &k_s], &lines);
            if p.is_vec4() && conv::channel_blocked_applies(w, p.bk) {
                let geo = conv::ConvGeometry {
                    x,
                    w,
                    out,
                    strides,
                    pads,
                    dilations,
                };
                let tile = conv::LoadTile {
                    bm: p.bm,
                    bn: p.bn,
                    bk: p.bk,
                    threads: p.threads(),
                };
                let loads = conv::channel_blocked_loads(&geo, &tile, [&m_s, &n_s, &k_s], &mut params);
                ctx.insert("cb", &true);
                ctx.insert("cb_pre", &loads.pre);
                ctx.insert("cb_step", &loads.step);
            }
            let grid = [
                dim_expr(&pp).cdiv(p.bn as i64),
                dim_expr(&ocg).cdiv(p.bm as i64),
                dim_expr(&x[0]).times(g),
            ];
            (gemm_template(&p), [p.bn / p.tn, p.bm / p.tm, 1], grid, false)
        }
        (KernelBody::Attention { batch, sq, sk, d, dv }, Schedule::Injective(p)) if decode_rows(sq).is_some() => {
            let rows = decode_rows(sq).expect("checked by the guard");
            // -inf made at run time (see expr::NONFINITE_HELPER: Tint rejects a non-finite constant).
            helpers.insert(expr::NONFINITE_HELPER);
            let wg = p.workgroup_size;
            let tile = DecodeTile::new(wg, *d as u32, *dv as u32);
            let splits = attention_splits(batch, sk, limits);
            ctx.insert("wg", &wg);
            ctx.insert("sq", &rows);
            ctx.insert("sk", &params.dim(sk, "sk"));
            ctx.insert("d", d);
            ctx.insert("dv", dv);
            ctx.insert("splits", &splits);
            ctx.insert("lanes", &tile.lanes);
            ctx.insert("bk", &tile.keys);
            // A packed f16 cache is read a word (two adjacent channels) per thread and load.
            let pairs = (0..draft.inputs.len()).any(|s| in_dtypes.is_packed(s));
            for (name, n, width) in [("k", tile.k_channels, *d as u32), ("v", tile.v_channels, *dv as u32)] {
                let (first, past) = decode_channels(tile.lanes, n, width, pairs);
                ctx.insert(format!("n{name}"), &first.len());
                ctx.insert(format!("{name}_first"), &first);
                ctx.insert(format!("{name}_past"), &past);
            }
            ctx.insert("pairs", &pairs);
            ctx.insert("idle", &(tile.lanes * tile.keys < wg));
            ctx.insert("part_len", &tile.part_len(rows));
            let (xq, xqe) = operand_access(draft, 0, &mut params, &mut helpers, in_dtypes, &mut fns);
            ctx.insert("xq", &xq);
            ctx.insert("xqe", &xqe);
            // K is [batch, d, sk] and V [batch, sk, dv]; read at coordinates (a cache slice's
            // index needs no division by the runtime key count).
            // A K or V operand that reads the step's appended row through (lower::defer): the
            // cache below the last key, and the new row's values computed once per thread.
            let bsk = [batch.clone(), Dim::c(*d as i64), sk.clone()];
            let bsv = [batch.clone(), sk.clone(), Dim::c(*dv as i64)];
            let mut fresh = false;
            for (name, i, shape, axis) in [("k", 1, &bsk, 2), ("v", 2, &bsv, 1)] {
                let e = operand_coords(draft, i, shape);
                let (old, new) = match split_read_through(&e, axis, sk) {
                    Some((old, new)) => (old, Some(new)),
                    None => (e, None),
                };
                let x = coord_fn(
                    &format!("kiln_x{i}"),
                    &old,
                    shape,
                    &mut params,
                    &mut helpers,
                    in_dtypes,
                    &mut fns,
                );
                ctx.insert(format!("x{name}"), &x);
                let xn = match new {
                    Some(new) => {
                        fresh = true;
                        coord_fn(
                            &format!("kiln_x{i}_new"),
                            &new,
                            shape,
                            &mut params,
                            &mut helpers,
                            in_dtypes,
                            &mut fns,
                        )
                    }
                    None => String::new(),
                };
                ctx.insert(format!("x{name}_new"), &xn);
            }
            ctx.insert("fresh", &fresh);
            insert_score_fn(&mut ctx, draft, [batch, sq, sk], &mut params, &mut helpers, in_dtypes);
            // Split over keys, the last slice of each batch combines the slices where one
            // more storage buffer fits and the batches' counters fit their region of the
            // scratch buffer; else a combine dispatch follows.
            let fused = splits > 1
                && buffers < limits.max_storage_buffers_per_shader_stage
                && batch.as_const().is_some_and(|b| b as u64 <= ARRIVAL_COUNTERS);
            ctx.insert("fused", &fused);
            if fused {
                let block = splits * rows * (*dv as u32 + 2);
                ctx.insert("counters", &(ARRIVAL_COUNTERS * ARRIVAL_COUNTER_STRIDE));
                ctx.insert("counter_stride", &ARRIVAL_COUNTER_STRIDE);
                ctx.insert("block", &block);
                ctx.insert("scratch_binding", &(buffers + 1));
                scratch = Some(SizeExpr::c(
                    ((ARRIVAL_COUNTERS * ARRIVAL_COUNTER_STRIDE) as i64
                        + batch.as_const().expect("checked") * block as i64)
                        * 4,
                ));
            } else if splits > 1 {
                split_k = Some(render_attention_combine(
                    draft,
                    schedule,
                    [rows, *dv as u32, splits],
                    batch,
                    limits,
                )?);
            }
            // x: the flattened batch; y: the key slices.
            let grid = [dim_expr(batch), SizeExpr::c(splits as i64), SizeExpr::c(1)];
            ("attention_decode", [wg, 1, 1], grid, false)
        }
        (KernelBody::Attention { batch, sq, sk, d, dv }, Schedule::CoopAttention(p)) => {
            // The cooperative-matrix kernel (templates/attention_coop.wgsl): whole fragments
            // of head dims (no padding channels), within the workgroup memory.
            let (d, dv) = (*d as u32, *dv as u32);
            let f = kiln_schedules::COOP_FRAGMENT;
            let unsupported = |msg: String| CompileError::Unsupported {
                node: draft.label.clone(),
                op: "Attention".into(),
                msg,
            };
            let most = kiln_schedules::MAX_COOP_ATTENTION_HEAD_DIM;
            if !d.is_multiple_of(f) || !dv.is_multiple_of(f) || d > most || dv > most {
                return Err(unsupported(format!(
                    "{schedule}: head dims {d} and {dv} must be multiples of {f} up to {most}"
                )));
            }
            if p.workgroup_bytes(d, dv) > limits.max_compute_workgroup_storage_size {
                return Err(unsupported(format!(
                    "{schedule} needs {} bytes of workgroup memory at head dims {d} and {dv} (maxComputeWorkgroupStorageSize = {})",
                    p.workgroup_bytes(d, dv),
                    limits.max_compute_workgroup_storage_size
                )));
            }
            helpers.insert(expr::NONFINITE_HELPER);
            use kiln_schedules::{COOP_PAD, COOP_PAD_F32};
            let rows = p.rows();
            // Row strides: the f16 blocks in vec4s, the f32 scratch in f32s.
            let (ks, vs) = ((p.bk + COOP_PAD) / 4, (dv + COOP_PAD) / 4);
            let ps = (p.bk.max(d) + COOP_PAD) / 4;
            let ss = p.bk.max(dv) + COOP_PAD_F32;
            let stage = TiledStaging {
                threads: p.threads(),
                d,
                dv,
                bk: p.bk,
                dvs: dv / 4,
                ksw: 0,
                k_keys_fast: false,
                coop_rows: Some((ks, vs)),
                whole_keys: whole_key_blocks(sk, p.bk, p.slices),
                k_rows: false,
                v_halves: false,
            };
            let sk_s = stage.insert(
                &mut ctx,
                draft,
                [batch, sk],
                &mut params,
                &mut helpers,
                in_dtypes,
                &mut fns,
            );
            ctx.insert("sq", &params.divisor(sq, "sq"));
            let (x, xe) = operand_access(draft, 0, &mut params, &mut helpers, in_dtypes, &mut fns);
            ctx.insert("xq", &x);
            ctx.insert("xqe", &xe);
            insert_score_fn(&mut ctx, draft, [batch, sq, sk], &mut params, &mut helpers, in_dtypes);
            for (name, v) in [
                ("wg", p.threads()),
                ("subgroups", p.subgroups),
                ("br", rows),
                ("bk", p.bk),
                ("slices", p.slices),
                ("d", d),
                ("dv", dv),
                ("d4", d / 4),
                ("ks", ks),
                ("vs", vs),
                ("ps", ps),
                ("ss", ss),
                ("nq", (rows * d / 4).div_ceil(p.threads())),
                // Each lane: half of its row's keys of a block, half of its output channels.
                ("hk", p.bk / 2),
                ("hk4", p.bk / 8),
                ("hv4", dv / 8),
                ("ss4", ss / 4),
                ("hv", dv / 2),
            ] {
                ctx.insert(name, &v);
            }
            ctx.insert("kfrags", &(0..p.bk / f).collect::<Vec<_>>());
            ctx.insert("dfrags", &(0..d / f).collect::<Vec<_>>());
            ctx.insert("vfrags", &(0..dv / f).collect::<Vec<_>>());
            ctx.insert("sk", &sk_s);
            if p.slices > 1 {
                split_k = Some(render_attention_slices_combine(
                    draft,
                    schedule,
                    [sq, batch],
                    [dv, p.slices],
                    limits,
                )?);
            }
            let grid = [
                dim_expr(batch),
                dim_expr(sq).cdiv(rows as i64),
                SizeExpr::c(p.slices as i64),
            ];
            ("attention_coop", [p.threads(), 1, 1], grid, false)
        }
        (KernelBody::Attention { batch, sq, sk, d, dv }, Schedule::Attention(p)) => {
            // -inf made at run time (see expr::NONFINITE_HELPER: Tint rejects a non-finite constant).
            helpers.insert(expr::NONFINITE_HELPER);
            let (d4, dv4) = (d.div_ceil(4) as u32, dv.div_ceil(4) as u32);
            if p.is_tiled() {
                // The register-tiled kernel (templates/attention_tiled.wgsl).
                let (br4, bk4) = (p.rows / 4, p.bk / 4);
                let og = p.tiled_out_groups(*dv as u32);
                ctx.insert("br4", &br4);
                ctx.insert("bk4", &bk4);
                ctx.insert("tc", &p.splits);
                ctx.insert("kg", &(p.keys_per_thread() / 4));
                ctx.insert("og", &og);
                ctx.insert("dvs", &(og * p.splits));
                ctx.insert("kp_len", &(*d as u32 * bk4).max(p.bk * br4));
                // Two-dimensional K (and probability) blocks: with their own probability
                // block, or where the probabilities over K have rows as long as K's (as many
                // keys as rows).
                let k2d = p.pbuf || p.bk == p.rows;
                ctx.insert("k2d", &k2d);
                ctx.insert("k2d_rows", &(*d as u32).max(p.bk));
                // XOR swizzles: the key group by the channel (K block), the row group by the key
                // group (probabilities), each within the smaller of the row and 8 vec4s.
                let ksw = bk4.min(8) - 1;
                let psw = br4.min(8) - 1;
                ctx.insert("ksw", &ksw);
                ctx.insert("psw", &psw);
                ctx.insert("kswz", &(0..*d as u32).map(|c| c & ksw).collect::<Vec<_>>());
                ctx.insert("pswz", &(0..p.bk).map(|j| (j / 4) & psw).collect::<Vec<_>>());
                // K and V read at coordinates (no division per element).
                let stage = TiledStaging {
                    threads: p.threads(),
                    d: *d as u32,
                    dv: *dv as u32,
                    bk: p.bk,
                    dvs: og * p.splits,
                    ksw,
                    k_keys_fast: false,
                    coop_rows: None,
                    whole_keys: whole_key_blocks(sk, p.bk, p.slices),
                    k_rows: k2d,
                    v_halves: p.vhalf,
                };
                if p.vhalf && !stage.halves_whole() {
                    return Err(CompileError::Unsupported {
                        node: draft.label.clone(),
                        op: "Attention".into(),
                        msg: format!(
                            "{schedule}: each half of the value block ({} keys x {} channel groups) must be whole loads of the {} threads",
                            p.bk / 2,
                            stage.dvs,
                            p.threads()
                        ),
                    });
                }
                stage.insert(
                    &mut ctx,
                    draft,
                    [batch, sk],
                    &mut params,
                    &mut helpers,
                    in_dtypes,
                    &mut fns,
                );
                // The query block's staging steps, all loaded before the first store.
                ctx.insert("nq", &((*d as u32) * br4).div_ceil(p.threads()));
                // The probabilities in their own block, or over the key block.
                ctx.insert("pbuf", &p.pbuf);
                ctx.insert("pb", if p.pbuf { "pp" } else { "kp" });
                // The value block in two halves: the key where the second half starts.
                ctx.insert("vhalf", &p.vhalf);
                ctx.insert("hb", &(p.bk / 2));
                // The subgroup variant: butterfly shuffles over a row group's lanes.
                ctx.insert("sg", &p.sg);
                let xors: Vec<u32> = (0..p.splits.trailing_zeros()).map(|i| 1 << i).collect();
                ctx.insert("xors", &xors);
            }
            ctx.insert("wg", &p.threads());
            ctx.insert("br", &p.rows);
            ctx.insert("bk", &p.bk);
            ctx.insert("splits", &p.splits);
            ctx.insert("slices", &p.slices);
            ctx.insert("g", &p.keys_per_thread());
            ctx.insert("d4", &d4);
            ctx.insert("dv4", &dv4);
            // Rows of the K and V blocks in vec4s, each padded by one.
            ctx.insert("ks", &(d4 + 1));
            ctx.insert("vs", &(dv4 + 1));
            ctx.insert("v_off", &(p.bk * (d4 + 1)));
            ctx.insert("tile", &p.tile_vec4s(*d as u32, *dv as u32));
            ctx.insert("sq", &params.divisor(sq, "sq"));
            ctx.insert("sk", &params.dim(sk, "sk"));
            ctx.insert("d", d);
            ctx.insert("dv", dv);
            // K^T read directly is [batch, d, sk] (keys contiguous); through a prologue it is
            // almost always a transposed [.., sk, d] tensor (channels contiguous): consecutive
            // threads load along the contiguous axis.
            let k_direct = matches!(draft.operand(1), Expr::LoadIdx(_, ix) if *ix == Expr::Index);
            ctx.insert("k_keys_fast", &k_direct);
            // (The tiled kernel reads K and V at coordinates, above.)
            let linear = if p.is_tiled() { 1 } else { 3 };
            for (i, n) in ["xq", "xk", "xv"].iter().enumerate().take(linear) {
                let (x, xe) = operand_access(draft, i, &mut params, &mut helpers, in_dtypes, &mut fns);
                ctx.insert(*n, &x);
                ctx.insert(format!("{n}e"), &xe);
            }
            insert_score_fn(&mut ctx, draft, [batch, sq, sk], &mut params, &mut helpers, in_dtypes);
            if p.slices > 1 {
                split_k = Some(render_attention_slices_combine(
                    draft,
                    schedule,
                    [sq, batch],
                    [*dv as u32, p.slices],
                    limits,
                )?);
            }
            // x: the flattened batch; y: tiles of `rows` query rows; z: the key slices.
            let grid = [
                dim_expr(batch),
                dim_expr(sq).cdiv(p.rows as i64),
                SizeExpr::c(p.slices as i64),
            ];
            let template = if p.is_tiled() { "attention_tiled" } else { "attention" };
            (template, [p.threads(), 1, 1], grid, false)
        }
        (
            KernelBody::TopK {
                shape,
                dtype,
                axis,
                k,
                largest,
            },
            Schedule::Injective(p),
        ) => {
            let inner = Dim::product(&shape[axis + 1..]);
            let rows = Dim::product(&shape[..*axis]).mul(&inner);
            ctx.insert("wg", &p.workgroup_size);
            ctx.insert("rows", &params.dim(&rows, "rows"));
            ctx.insert("inner", &params.divisor(&inner, "inner"));
            ctx.insert("n", &params.dim(&shape[*axis], "len"));
            ctx.insert("k", &expr::literal(*k as f64, DType::I32));
            ctx.insert("ty", reg_ty(*dtype));
            ctx.insert("zero", &literal(0.0, *dtype));
            ctx.insert("better", if *largest { ">" } else { "<" });
            ctx.insert("worse", if *largest { "<" } else { ">" });
            let grid = [
                dim_expr(&rows).cdiv(p.workgroup_size as i64),
                SizeExpr::c(1),
                SizeExpr::c(1),
            ];
            ("topk", [p.workgroup_size, 1, 1], grid, true)
        }
        (KernelBody::Sample { rows, vocab, window }, Schedule::Injective(_)) => {
            // The workgroup size is fixed: the reference (kiln_ir::sample) sums in its order.
            let wg = kiln_ir::sample::WORKGROUP as u32;
            let halves: Vec<u32> = std::iter::successors(Some(wg / 2), |h| (*h > 1).then_some(h / 2)).collect();
            ctx.insert("wg", &wg);
            ctx.insert("halves", &halves);
            ctx.insert("vocab", &params.dim(vocab, "vocab"));
            ctx.insert("window", window);
            ctx.insert("steps", &kiln_ir::sample::BISECTION_STEPS);
            // Runs of 4 logits each thread loads at once in the argmax (32 loads in flight; on
            // the H200 96 made the 1.7B decode step's sample dispatch slower, 57.8 vs 34.6 us).
            ctx.insert("argmax_unroll", &8u32);
            // Logits each thread loads at once in the top-k and top-p bisections' passes.
            ctx.insert("pass_unroll", &8u32);
            // Entries per thread the sampling passes may keep in registers.
            ctx.insert("cands", &16u32);
            (
                "sample",
                [wg, 1, 1],
                [dim_expr(rows), SizeExpr::c(1), SizeExpr::c(1)],
                false,
            )
        }
        (
            KernelBody::Scatter {
                data,
                indices,
                dtype,
                reduction,
            },
            Schedule::Injective(p),
        ) => {
            use kiln_ir::ScatterReduction as R;
            let r = data.len();
            let m = indices
                .last()
                .and_then(Dim::as_const)
                .expect("inference made m concrete") as usize;
            let n = Dim::product(data);
            let urows = Dim::product(&indices[..indices.len() - 1]);
            let slice = Dim::product(&data[m..]);
            let names: Vec<String> = (0..r).map(|a| format!("c{a}")).collect();
            let mut coord_lines = decompose(&mut params, "idx", "rem", &names, data);
            let rest_strides = crate::lower::sym_strides(&data[m..]);
            let rest: Vec<String> = (m..r)
                .map(|a| {
                    let st = &rest_strides[a - m];
                    if *st == Dim::c(1) {
                        format!("c{a}")
                    } else {
                        format!("c{a} * {}", params.dim(st, "stride"))
                    }
                })
                .collect();
            coord_lines.push(format!(
                "let rest = {};",
                if rest.is_empty() {
                    "0i".to_string()
                } else {
                    rest.join(" + ")
                }
            ));
            let mut match_lines = Vec::new();
            for (a, dim) in data.iter().enumerate().take(m) {
                let d = params.dim(dim, "dim");
                match_lines.push(format!("let x{a} = in1[u * {m}i + {a}i];"));
                match_lines.push(format!("hit = hit && select(x{a}, x{a} + {d}, x{a} < 0i) == c{a};"));
            }
            let combine = match reduction {
                R::None => "w",
                R::Add => "v + w",
                R::Mul => "v * w",
                R::Max => "max(v, w)",
                R::Min => "min(v, w)",
            };
            let combine = if *dtype == DType::F16 && *reduction != R::None {
                helpers.insert("kiln_f16");
                format!("kiln_f16({combine})")
            } else {
                combine.to_string()
            };
            ctx.insert("wg", &p.workgroup_size);
            ctx.insert("n", &params.dim(&n, "n"));
            ctx.insert("rows", &params.dim(&urows, "rows"));
            ctx.insert("slice", &params.dim(&slice, "slice"));
            ctx.insert("coord_lines", &coord_lines);
            ctx.insert("match_lines", &match_lines);
            ctx.insert("combine", &combine);
            let grid = [
                dim_expr(&n).cdiv(p.workgroup_size as i64),
                SizeExpr::c(1),
                SizeExpr::c(1),
            ];
            ("scatter", [p.workgroup_size, 1, 1], grid, true)
        }
        (
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
                tail,
            },
            Schedule::Gemv(p),
        ) => {
            let m = Dim::product(&x[..x.len() - 1]);
            if *glu && (n % 2 != 0 || draft.epilogue.is_some()) {
                return Err(CompileError::Internal(format!(
                    "{}: a gated pair needs an even row count and no epilogue",
                    draft.label
                )));
            }
            // A gated pair's outputs: the first half of W's rows (gate) with the second (up).
            let nout = if *glu { n / 2 } else { *n };
            if norm.is_some() && (p.rows != 1 || block.block_elems() < 32) {
                return Err(CompileError::Unsupported {
                    node: draft.label.clone(),
                    op: "QMatMul".into(),
                    msg: format!(
                        "schedule {schedule}: a GEMV with an RMS norm prologue takes one row of x per \
                         workgroup and blocks of 32 or more values"
                    ),
                });
            }
            // A block-column-major W is read row-parallel (qgemv_rows.wgsl): a thread per output
            // (and K slice), whole blocks per step.
            let row_parallel = in_dtypes.is_block_columns(1);
            if row_parallel && (p.lane_rows != 1 || p.sg) {
                return Err(CompileError::Unsupported {
                    node: draft.label.clone(),
                    op: "QMatMul".into(),
                    msg: format!(
                        "schedule {schedule}: the row-parallel GEMV of a block-column-major weight has one output per lane and no subgroup sums"
                    ),
                });
            }
            let int8_block = block.has_int8_dot();
            if *xq8 && (!int8_block || norm.is_some() || row_parallel || epilogue_reads(draft, &[0])) {
                return Err(CompileError::Internal(format!(
                    "{}: an integer-dot GEMV needs a q4_0, q4_1 or q8_0 weight in GGUF's row layout, \
                     no norm prologue and no epilogue reading x",
                    draft.label
                )));
            }
            // Rounded outputs: each workgroup quantizes whole blocks of 32 of its own outputs.
            let wout = p.lanes * if row_parallel { 1 } else { p.lane_rows };
            // One thread per word of the rounded outputs (`macros::q8_round_outputs`).
            let words_fit = p.rows * wout / 4 <= p.lanes * p.ksplit;
            if q8_out.is_some() && (wout % 32 != 0 || nout % 32 != 0 || !words_fit || draft.epilogue.is_some()) {
                return Err(CompileError::Unsupported {
                    node: draft.label.clone(),
                    op: "QMatMul".into(),
                    msg: format!(
                        "schedule {schedule}: a GEMV that rounds its outputs to 8 bits needs whole blocks of 32 \
                         outputs per workgroup ({wout} here, of {nout}), a thread per 4 of them and no epilogue"
                    ),
                });
            }
            // x normalized and rounded inside each workgroup (`qx`): one row, integer dots.
            if *quantize_x
                && (norm.is_none()
                    || !int8_block
                    || row_parallel
                    || p.rows != 1
                    || m.as_const() != Some(1)
                    || k % 32 != 0)
            {
                return Err(CompileError::Unsupported {
                    node: draft.label.clone(),
                    op: "QMatMul".into(),
                    msg: format!(
                        "schedule {schedule}: x rounded inside the GEMV needs its norm prologue, one row of x, \
                         a q4_0, q4_1 or q8_0 weight in GGUF's row layout and K a multiple of 32"
                    ),
                });
            }
            quant_context(&mut ctx, *block, *n, *k, in_dtypes);
            ctx.insert("m", &params.dim(&m, "m"));
            ctx.insert("xq8", &(*xq8 || *quantize_x));
            ctx.insert("qx", quantize_x);
            ctx.insert("xsrc", if *quantize_x { "kiln_xs" } else { "in0" });
            ctx.insert("threads", &(p.lanes * p.ksplit));
            ctx.insert("qx_halves", &halves(p.lanes * p.ksplit));
            ctx.insert("qx_chunks", &((*k / 8).div_ceil((p.lanes * p.ksplit) as usize)));
            ctx.insert("qx_words", &(*k / 32 * crate::lower::Q8_BLOCK_WORDS));
            ctx.insert("qx_k4", &(*k / 4));
            ctx.insert("qx_k8", &(*k / 8));
            ctx.insert("qout", &q8_out.is_some());
            ctx.insert("qpacked", &(*q8_out == Some(crate::lower::Q8Storage::Packed)));
            ctx.insert("wout", &wout);
            ctx.insert("q8_words", &crate::lower::Q8_BLOCK_WORDS);
            ctx.insert("lanes", &p.lanes);
            ctx.insert("ksplit", &p.ksplit);
            ctx.insert("rows", &p.rows);
            // The partial sums of a row are added in two steps when there are more than 8:
            // 8 threads each add `step` of them, then one thread adds the `count` = 8 results.
            let (step, count) = if p.ksplit > 8 { (p.ksplit / 8, 8) } else { (1, p.ksplit) };
            ctx.insert("step", &step);
            ctx.insert("count", &count);
            // Or, with subgroup sums, a butterfly of shuffles over the lane's threads.
            ctx.insert("sg", &p.sg);
            let shuffles: Vec<u32> = (0..p.ksplit.trailing_zeros()).map(|i| 1 << i).collect();
            ctx.insert("shuffles", &shuffles);
            ctx.insert("unroll", &qgemv_unroll(*block, *k, p.ksplit));
            ctx.insert("lane_rows", &p.lane_rows);
            ctx.insert("glu", glu);
            ctx.insert("nout", &nout);
            // The W row each of a lane's accumulators reads, from the lane's first output `gn`
            // (< nout): its lane rows, then for a gated pair the same rows of the up half. Rows
            // past the end re-read the last one (their sums are never written).
            let lrows = p.lane_rows * if *glu { 2 } else { 1 };
            let w_rows: Vec<String> = (0..lrows)
                .map(|i| {
                    let (half, j) = (i / p.lane_rows, i % p.lane_rows);
                    let row = if j == 0 {
                        "gn".to_string()
                    } else {
                        format!("min(gn + {j}u, {}u)", nout - 1)
                    };
                    if half == 0 {
                        row
                    } else {
                        format!("({nout}u + {row})")
                    }
                })
                .collect();
            ctx.insert("lrows", &lrows);
            ctx.insert("w_rows", &w_rows);
            // A lane's rows share the x values of a part where the block type splits its dot
            // product into x reads and weight decoding (quant.wgsl `kiln_qx`, `kiln_qdotx`);
            // other types re-read x per row (from cache).
            // An integer-dot GEMV always reads x this way.
            let xshare = (p.lane_rows > 1 && int8_block) || *xq8 || *quantize_x;
            ctx.insert("xshare", &xshare);
            // x as vec4s: blocks of 32 or more values read it only 4 at a time, at multiples
            // of 4 (quant.wgsl), unless the epilogue reads it element by element.
            // (With the norm, slot 2 is its scale, read like x.)
            let slots: &[usize] = if norm.is_some() { &[0, 2] } else { &[0] };
            let xvec =
                !*xq8 && !*quantize_x && block.block_elems() >= 32 && k % 4 == 0 && !epilogue_reads(draft, slots);
            if xvec {
                vec4_inputs.push(0);
                if norm.is_some() {
                    vec4_inputs.push(2);
                }
            }
            ctx.insert("xvec", &xvec);
            // The fused RMS norm: x scaled by the scale `in2` as it is read, the row's sum of
            // squares gathered from the same reads, the dot product scaled once at the end.
            // With `qx` the norm is applied before rounding, not to the sums.
            ctx.insert("norm", &(norm.is_some() && !*quantize_x));
            ctx.insert("eps", &literal(f64::from(norm.unwrap_or(0.0)), DType::F32));
            let epilogue = quant_epilogue(draft, &m, nout, &mut params, &mut helpers, in_dtypes);
            ctx.insert("epilogue", &epilogue);
            let wgs = nout.div_ceil(wout as usize) as i64;
            // Tail parts: workgroups after the GEMV's own, for one row of x (one row of
            // workgroups) and a constant thread count.
            let tail_wgs = if tail.is_empty() {
                0
            } else {
                let (lines, n) = parts_lines(draft, tail, 1, &mut params, &mut helpers, in_dtypes)?;
                let (Some(n), Some(1)) = (n.as_const(), m.as_const()) else {
                    return Err(CompileError::Internal(format!(
                        "{}: a GEMV's tail parts need one row of x and a constant element count",
                        draft.label
                    )));
                };
                ctx.insert("tail", &lines);
                ctx.insert("tail_n", &n);
                ctx.insert("tail_from", &wgs);
                (n as u64).div_ceil(u64::from(p.lanes * p.ksplit)) as i64
            };
            if tail.is_empty() {
                ctx.insert("tail", &Vec::<String>::new());
            }
            let grid = [
                SizeExpr::c(wgs + tail_wgs),
                dim_expr(&m).cdiv(p.rows as i64),
                SizeExpr::c(1),
            ];
            if row_parallel {
                ("qgemv_rows", [p.lanes, p.ksplit, 1], grid, false)
            } else {
                ("qgemv", [p.ksplit, p.lanes, 1], grid, false)
            }
        }
        (
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
                tail,
            },
            Schedule::CoopGemm(p),
        ) => {
            // The cooperative-matrix variant (qgemm_coop.wgsl): x and the dequantized W staged
            // as vec4<f16>, so K must be a multiple of 4.
            if k % 4 != 0
                || !p.vec_stage
                || norm.is_some()
                || *glu
                || *xq8
                || q8_out.is_some()
                || *quantize_x
                || !tail.is_empty()
            {
                return Err(CompileError::Unsupported {
                    node: draft.label.clone(),
                    op: "QMatMul".into(),
                    msg: format!(
                        "{schedule} needs K a multiple of 4, vec4 staging, no fused RMS norm prologue, no gated pair and f32 x"
                    ),
                });
            }
            coop_scratch_fits(draft, "QMatMul", &p, schedule, limits)?;
            let m = Dim::product(&x[..x.len() - 1]);
            quant_context(&mut ctx, *block, *n, *k, in_dtypes);
            // Parameters in the order of the `Gemm` arm, so the variant binds the same ones.
            ctx.insert("m", &params.dim(&m, "m"));
            let epilogue = quant_epilogue(draft, &m, *n, &mut params, &mut helpers, in_dtypes);
            ctx.insert("epilogue", &epilogue);
            let threads = coop_tile_context(&mut ctx, &p);
            let (a_vecs, b_units) = (p.bm * p.bk / 4, p.bn * p.bk / 16);
            let (row_a, row_b) = (
                (p.bk + kiln_schedules::COOP_PAD) / 4,
                (p.bn + kiln_schedules::COOP_PAD) / 4,
            );
            for (name, v) in [
                ("row_a", row_a),
                ("row_b", row_b),
                ("a_len_s", p.bm * row_a),
                ("b_len_s", p.bk * row_b),
                ("bk4", p.bk / 4),
                ("a_vecs", a_vecs),
                ("b_units", b_units),
                ("a_loads", a_vecs.div_ceil(threads)),
                ("b_loads", b_units.div_ceil(threads)),
            ] {
                ctx.insert(name, &v);
            }
            // W's loads skip their bounds checks when its blocks and K-steps are all whole.
            ctx.insert("whole_w", &(*n % p.bn as usize == 0 && *k % p.bk as usize == 0));
            let grid = [
                SizeExpr::c(n.div_ceil(p.bn as usize) as i64),
                dim_expr(&m).cdiv(p.bm as i64),
                SizeExpr::c(1),
            ];
            ("qgemm_coop", [threads, 1, 1], grid, false)
        }
        (
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
                tail,
            },
            Schedule::Gemm(p),
        ) => {
            let m = Dim::product(&x[..x.len() - 1]);
            if norm.is_some() || *glu || *xq8 || q8_out.is_some() || *quantize_x || !tail.is_empty() {
                return Err(CompileError::Unsupported {
                    node: draft.label.clone(),
                    op: "QMatMul".into(),
                    msg: format!(
                        "schedule {schedule}: the RMS norm prologue, gated pairs, 8-bit x or y and tail parts are GEMV schedules only"
                    ),
                });
            }
            quant_context(&mut ctx, *block, *n, *k, in_dtypes);
            ctx.insert("m", &params.dim(&m, "m"));
            for (name, v) in [("bm", p.bm), ("bn", p.bn), ("bk", p.bk), ("tm", p.tm), ("tn", p.tn)] {
                ctx.insert(name, &v);
            }
            if p.ksplit > 1 {
                return Err(CompileError::Unsupported {
                    node: draft.label.clone(),
                    op: "QMatMul".into(),
                    msg: format!("schedule {schedule}: the quantized GEMM does not split K"),
                });
            }
            let threads = p.threads();
            ctx.insert("threads", &threads);
            ctx.insert("tx_n", &(p.bn / p.tn));
            ctx.insert("ty_n", &(p.bm / p.tm));
            // W tiles load four values of a row per step (one word of quants) when K and bk allow.
            ctx.insert("wvec4", &(p.bk % 4 == 0 && k % 4 == 0));
            ctx.insert("bk4", &(p.bk / 4));
            let template = if p.is_vec4() && p.bk % 4 == 0 {
                // The vec4 register tile (qgemm_vec4.wgsl): stage sizes as gemm_vec4's, so
                // `GemmParams::workgroup_bytes` holds for both; a W unit is 4 rows x 4 k.
                let a_row = p.bm / 4 + u32::from(!p.double_buffer);
                let stages = 1 + u32::from(p.double_buffer);
                let (a_vecs, b_units) = (p.bm * p.bk / 4, p.bn * p.bk / 16);
                ctx.insert("k4", &(k % 4 == 0));
                ctx.insert("rg", &(p.tm / 4));
                ctx.insert("cg", &(p.tn / 4));
                ctx.insert("db", &p.double_buffer);
                ctx.insert("a_row", &a_row);
                ctx.insert("b_row", &(p.bn / 4));
                ctx.insert("a_stage", &(p.bk * a_row));
                ctx.insert("b_stage", &(p.bk * p.bn / 4));
                ctx.insert("a_tile_len", &(stages * p.bk * a_row));
                ctx.insert("b_tile_len", &(stages * p.bk * p.bn / 4));
                ctx.insert("a_vecs", &a_vecs);
                ctx.insert("b_units", &b_units);
                ctx.insert("a_loads", &a_vecs.div_ceil(threads));
                ctx.insert("b_loads", &b_units.div_ceil(threads));
                "qgemm_vec4"
            } else {
                "qgemm"
            };
            let epilogue = quant_epilogue(draft, &m, *n, &mut params, &mut helpers, in_dtypes);
            ctx.insert("epilogue", &epilogue);
            let grid = [
                SizeExpr::c(n.div_ceil(p.bn as usize) as i64),
                dim_expr(&m).cdiv(p.bm as i64),
                SizeExpr::c(1),
            ];
            (template, [p.bn / p.tn, p.bm / p.tm, 1], grid, false)
        }
        (KernelBody::QGather { rows, block, n, k }, Schedule::Injective(p)) => {
            quant_context(&mut ctx, *block, *n, *k, in_dtypes);
            // Four values per thread (one word of quants) when rows are whole vec4s.
            let ept = if k % 4 == 0 && block.block_elems() >= 4 { 4 } else { 1 };
            ctx.insert("wg", &p.workgroup_size);
            ctx.insert("ept", &ept);
            ctx.insert("per_row", &(k / ept));
            ctx.insert("rows", &params.dim(rows, "rows"));
            let threads = dim_expr(rows).times((k / ept) as i64);
            let grid = [threads.cdiv(p.workgroup_size as i64), SizeExpr::c(1), SizeExpr::c(1)];
            ("qgather", [p.workgroup_size, 1, 1], grid, true)
        }
        (KernelBody::StateWrite { shape, .. }, Schedule::Injective(p)) if packed_outputs[0] => {
            // The injective template over pairs of the update's elements (f16 words).
            let pairs = Dim::product(shape)
                .exact_div(&Dim::c(2))
                .ok_or_else(|| odd_f16_state(draft))?;
            let n_s = params.dim(&pairs, "n");
            let body = packed_part_lines(draft, "out", &mut params, &mut helpers, in_dtypes)?;
            injective_launch(&mut ctx, &p, &pairs, &n_s, &body)
        }
        (KernelBody::StateWrite { shape, dtype, offset }, Schedule::Injective(p)) => {
            // The injective template over the update's elements, storing at `offset + idx` of
            // the state buffer (the output binding).
            let n = Dim::product(shape);
            let n_s = params.dim(&n, "n");
            let off_s = params.dim(offset, "off");
            let (x0, x0e) = operand_access(draft, 0, &mut params, &mut helpers, in_dtypes, &mut fns);
            let body = vec![format!(
                "out[{off_s} + idx] = {};",
                to_storage(*dtype, &format!("{x0}idx{x0e}"))
            )];
            injective_launch(&mut ctx, &p, &n, &n_s, &body)
        }
        (KernelBody::Parts(parts), Schedule::Injective(p)) => {
            let (body, n) = parts_lines(draft, parts, 0, &mut params, &mut helpers, in_dtypes)?;
            let n_s = params.dim(&n, "n");
            injective_launch(&mut ctx, &p, &n, &n_s, &body)
        }
        (body, s) => {
            return Err(CompileError::Unsupported {
                node: draft.label.clone(),
                op: format!("{body:?}").split([' ', '{']).next().unwrap_or("?").to_string(),
                msg: format!("schedule {s} does not apply to this kernel"),
            })
        }
    };
    // Bool storage is u32 words that only the expression renderer converts: an anchor kernel
    // may read bool inputs through fused prologue or epilogue expressions (e.g. an attention
    // mask), but not as its own operands or result.
    let reads_bool_directly = draft.operands.is_empty() && in_dtypes.contains(&DType::Bool);
    let expression_only = matches!(&draft.body, KernelBody::Injective { .. } | KernelBody::Parts(_));
    if !expression_only && (out_dtype == DType::Bool || reads_bool_directly) {
        return Err(CompileError::Unsupported {
            node: draft.label.clone(),
            op: template.into(),
            msg: "bool tensors are only supported in elementwise kernels".into(),
        });
    }
    ctx.insert(
        "header",
        &header_outputs(
            &params,
            in_dtypes,
            &vec4_inputs,
            &out_dtypes,
            vec4_output,
            &helpers,
            &fns,
        ),
    );
    let wgsl = render_template(template, &ctx)?;
    let caps = match schedule {
        // A variant kernel: validated with what its variant requires, not the target's features.
        Schedule::CoopGemm(_) => validate::COOP_GEMM_CAPS,
        Schedule::CoopAttention(_) => validate::COOP_GEMM_CAPS | validate::SUBGROUP_CAPS,
        Schedule::Attention(kiln_schedules::AttentionParams { sg: true, .. })
        | Schedule::Gemv(kiln_schedules::GemvParams { sg: true, .. }) => {
            validate::target_caps(limits) | validate::SUBGROUP_CAPS
        }
        _ => validate::target_caps(limits),
    };
    let module = validate::validate_wgsl_with(&draft.label, &wgsl, caps)?;
    // The schedule's own check estimates its memory; the module says what it declares.
    let workgroup_bytes = validate::workgroup_storage_bytes(&module);
    if workgroup_bytes > limits.max_compute_workgroup_storage_size as u64 {
        return Err(limit_err(format!(
            "schedule {schedule} declares {workgroup_bytes} bytes of workgroup memory, maxComputeWorkgroupStorageSize = {}",
            limits.max_compute_workgroup_storage_size
        )));
    }
    let mut bindings = bindings(draft.inputs.len(), out_dtypes.len());
    if scratch.is_some() {
        bindings.push(BindingKind::Storage);
    }
    Ok(RenderedKernel {
        wgsl,
        workgroup_size,
        bindings,
        param_names: params.manifest_names(),
        param_values: params.manifest_values(),
        grid,
        schedule,
        grid_splittable: splittable,
        split: split_k,
        scratch,
        workgroup_bytes,
    })
}

/// The statements of kernel parts at element `idx` and their common thread count: each part's
/// statements in a block of their own (their temporaries may share names), behind a bounds
/// check of its own where its count is smaller than the largest; part `j` stores into output
/// binding `first_output + j`. Parts that write f16 states go over pairs of elements (a thread
/// per word).
fn parts_lines(
    draft: &KernelDraft,
    parts: &[KernelDraft],
    first_output: usize,
    params: &mut ParamSet,
    helpers: &mut BTreeSet<&'static str>,
    in_dtypes: &Slots,
) -> Result<(Vec<String>, Dim), CompileError> {
    let counts = parts
        .iter()
        .map(part_threads)
        .collect::<Option<Vec<Dim>>>()
        .ok_or_else(|| odd_f16_state(draft))?;
    let n = launch_threads(&counts).ok_or_else(|| CompileError::Unsupported {
        node: draft.label.clone(),
        op: "Parts".into(),
        msg: "parts of different symbolic element counts in one kernel".into(),
    })?;
    let mut body = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let out = output_name(first_output + j);
        let lines = if writes_packed_state(part) {
            packed_part_lines(part, &out, params, helpers, in_dtypes)?
        } else {
            part_lines(part, &out, params, helpers, in_dtypes)
        };
        if counts[j] == n {
            body.push("{".to_string());
        } else {
            body.push(format!("if (idx < {}) {{", params.dim(&counts[j], "n")));
        }
        body.extend(lines.into_iter().map(|l| format!("    {l}")));
        body.push("}".to_string());
    }
    Ok((body, n))
}

/// The stored dtype of a part of a [`KernelBody::Parts`] kernel.
fn part_dtype(part: &KernelDraft) -> DType {
    match &part.body {
        KernelBody::Injective { dtype, .. } | KernelBody::StateWrite { dtype, .. } => *dtype,
        other => unreachable!("a kernel part is injective or a state write, not {other:?}"),
    }
}

/// The threads a part of a [`KernelBody::Parts`] kernel needs: one per element, or one per
/// pair of elements for an f16 state write (`None` for an odd count).
pub fn part_threads(part: &KernelDraft) -> Option<Dim> {
    let n = match &part.body {
        KernelBody::Injective { shape, .. } | KernelBody::StateWrite { shape, .. } => Dim::product(shape),
        other => unreachable!("a kernel part is injective or a state write, not {other:?}"),
    };
    if writes_packed_state(part) {
        n.exact_div(&Dim::c(2))
    } else {
        Some(n)
    }
}

/// The threads of a kernel of parts of `counts` threads: their common count, or the largest
/// where all are constants (`None`: different symbolic counts, which have no known maximum).
pub fn launch_threads(counts: &[Dim]) -> Option<Dim> {
    if counts.iter().all(|c| *c == counts[0]) {
        return counts.first().cloned();
    }
    counts
        .iter()
        .map(Dim::as_const)
        .collect::<Option<Vec<i64>>>()?
        .into_iter()
        .max()
        .map(Dim::c)
}

/// The statements that compute element `idx` of an injective or state-write draft and store
/// it into the output binding `out`: an injective expression at `out[idx]` (coordinates
/// decomposed from `idx` where the expression needs them), an update's operand at
/// `out[offset + idx]`.
fn part_lines(
    draft: &KernelDraft,
    out: &str,
    params: &mut ParamSet,
    helpers: &mut BTreeSet<&'static str>,
    in_dtypes: &Slots,
) -> Vec<String> {
    let offset = match &draft.body {
        KernelBody::StateWrite { offset, .. } => Some(offset),
        _ => None,
    };
    let at = match offset {
        Some(o) => format!("{} + idx", params.dim(o, "off")),
        None => "idx".into(),
    };
    let (mut body, v, dtype) = element_lines(draft, params, helpers, in_dtypes, BTreeMap::new());
    body.push(format!("{out}[{at}] = {};", to_storage(dtype, &v)));
    body
}

/// The head-dim channels one thread of the decode attention reads (`n` of them per row of
/// `width`, with `lanes` threads sharing a row): channel `i` of lane `g` is `first[i] + g`, or
/// with `pairs` (a packed f16 cache) `first[i] + 2 g`, so a lane's channels come in adjacent
/// pairs, one word each (their count rounded up to even). `past[i]` marks channels some lane
/// would place past the row's end (clamped for loads, skipped for stores).
fn decode_channels(lanes: u32, n: u32, width: u32, pairs: bool) -> (Vec<u32>, Vec<bool>) {
    let (n, step) = if pairs { (n.next_multiple_of(2), 2) } else { (n, 1) };
    let first: Vec<u32> = (0..n)
        .map(|i| if pairs { (i / 2) * 2 * lanes + i % 2 } else { i * lanes })
        .collect();
    let past = first.iter().map(|&f| f + step * (lanes - 1) >= width).collect();
    (first, past)
}

/// Sets up `templates/injective.wgsl` for `body` (the statements of element `idx`) over `n`
/// elements (`n_s` its WGSL text) under schedule `p`: the template, workgroup size, grid and
/// splittability of the kernel.
fn injective_launch(
    ctx: &mut tera::Context,
    p: &kiln_schedules::InjectiveParams,
    n: &Dim,
    n_s: &str,
    body: &[String],
) -> (&'static str, [u32; 3], [SizeExpr; 3], bool) {
    ctx.insert("wg", &p.workgroup_size);
    ctx.insert("ept", &p.elems_per_thread);
    ctx.insert("n", n_s);
    ctx.insert("body", body);
    let per_group = (p.workgroup_size * p.elems_per_thread) as i64;
    let grid = [dim_expr(n).cdiv(per_group), SizeExpr::c(1), SizeExpr::c(1)];
    ("injective", [p.workgroup_size, 1, 1], grid, true)
}

/// Whether a kernel (or part) writes an f16 state, whose buffer holds two values per u32 word.
fn writes_packed_state(d: &KernelDraft) -> bool {
    matches!(d.body, KernelBody::StateWrite { dtype: DType::F16, .. })
}

/// The error for an f16 state write of an odd element count or offset (its words would be
/// shared with rows the kernel does not write).
fn odd_f16_state(draft: &KernelDraft) -> CompileError {
    CompileError::Unsupported {
        node: draft.label.clone(),
        op: "StateAppend".into(),
        msg: "an f16 state needs rows of an even number of elements (two per 32-bit word)".into(),
    }
}

/// The statements of an f16 state write for the pair `idx`: elements `2 idx` and `2 idx + 1`
/// of the update (each in a block of its own, where `idx` is the element index), stored as
/// one word at `out[offset / 2 + idx]`. The update's values are already on the f16 grid (an
/// f16 value), so `pack2x16float` stores them exactly.
fn packed_part_lines(
    draft: &KernelDraft,
    out: &str,
    params: &mut ParamSet,
    helpers: &mut BTreeSet<&'static str>,
    in_dtypes: &Slots,
) -> Result<Vec<String>, CompileError> {
    let KernelBody::StateWrite { offset, .. } = &draft.body else {
        unreachable!("only state writes are packed")
    };
    let half = offset.exact_div(&Dim::c(2)).ok_or_else(|| odd_f16_state(draft))?;
    let mut body = vec![
        "let kiln_pair = idx;".to_string(),
        "var kiln_lo = 0.0f;".to_string(),
        "var kiln_hi = 0.0f;".to_string(),
    ];
    for (name, lane) in [("kiln_lo", 0), ("kiln_hi", 1)] {
        let (lines, v, _) = element_lines(draft, params, helpers, in_dtypes, BTreeMap::new());
        body.push("{".into());
        body.push(format!("    let idx = kiln_pair * 2i + {lane}i;"));
        body.extend(lines.into_iter().map(|l| format!("    {l}")));
        body.push(format!("    {name} = {v};"));
        body.push("}".into());
    }
    body.push(format!(
        "{out}[{} + kiln_pair] = pack2x16float(vec2<f32>(kiln_lo, kiln_hi));",
        params.dim(&half, "off")
    ));
    Ok(body)
}

/// The statements that compute element `idx` of an injective or state-write draft, the
/// value's text and its dtype. Inputs in `lanes` are already loaded (see [`ExprWriter::lanes`]).
fn element_lines(
    draft: &KernelDraft,
    params: &mut ParamSet,
    helpers: &mut BTreeSet<&'static str>,
    in_dtypes: &Slots,
    lanes: BTreeMap<usize, String>,
) -> (Vec<String>, String, DType) {
    let (value, shape, dtype) = match &draft.body {
        KernelBody::Injective { shape, dtype, expr } => (expr.clone(), shape, *dtype),
        KernelBody::StateWrite { shape, dtype, .. } => (draft.operand(0), shape, *dtype),
        other => unreachable!("not an injective or state-write kernel: {other:?}"),
    };
    let mut body = Vec::new();
    let names: Vec<String> = (0..shape.len()).map(|i| format!("c{i}")).collect();
    if coords_needed(&value) {
        body = decompose(params, "idx", "rem", &names, shape);
    }
    let mut w = ExprWriter {
        params,
        helpers,
        in_dtypes,
        lines: Vec::new(),
        next: 0,
        memo: Default::default(),
        idx: "idx".into(),
        coords: names,
        core: String::new(),
        lanes,
    };
    let (v, _) = w.emit(&value);
    body.append(&mut w.lines);
    (body, v, dtype)
}

/// Whether an injective kernel can load and store 4-vectors (`InjectiveParams::vector` 4): an
/// f32 output whose element count is a multiple of 4 for every value of its symbols.
pub fn injective_vec4_ok(shape: &[Dim], dtype: DType) -> bool {
    dtype == DType::F32 && Dim::product(shape).exact_div(&Dim::c(4)).is_some()
}

/// Whether the default schedule of an injective kernel takes 4-vectors: where it can
/// ([`injective_vec4_ok`]) and some input is read at the output's own index, so that loads
/// become 4-vectors too. Without such an input only the store widens, while each thread's 4
/// consecutive elements spread a warp's scalar loads over 4 times the span: PP-OCRv4's concat
/// and transposed-convolution kernels ran 12–15% slower that way on the H200.
pub fn injective_vec4_pays(shape: &[Dim], dtype: DType, expr: &Expr) -> bool {
    injective_vec4_ok(shape, dtype) && !linear_slots(expr).is_empty()
}

/// The inputs of an injective expression that the vec4 kernel loads as 4-vectors: f32 inputs
/// read only at the output's own linear index ([`linear_slots`]).
fn vec4_slots(expr: &Expr, in_dtypes: &Slots) -> Vec<usize> {
    linear_slots(expr)
        .into_iter()
        .filter(|s| in_dtypes.get(*s) == Some(&DType::F32))
        .collect()
}

/// The inputs an injective expression reads only at the output's own linear index
/// (elementwise operands of the output's shape). A read inside a concatenation's part is at
/// the part's index, into an input smaller than the output, so such inputs are left out.
fn linear_slots(expr: &Expr) -> Vec<usize> {
    fn walk(e: &Expr, in_part: bool, linear: &mut BTreeSet<usize>, other: &mut BTreeSet<usize>) {
        match e {
            Expr::Read(s, access) if !in_part && matches!(access.as_ref(), Access::Linear) => {
                linear.insert(*s);
            }
            Expr::LoadIdx(s, index) if !in_part && matches!(index.as_ref(), Expr::Index) => {
                linear.insert(*s);
            }
            Expr::Read(s, _) | Expr::LoadAt(s, ..) | Expr::LoadIdx(s, _) => {
                other.insert(*s);
            }
            _ => {}
        }
        let in_part = in_part || matches!(e, Expr::Concat { .. });
        for c in e.children() {
            walk(c, in_part, linear, other);
        }
    }
    let (mut linear, mut other) = (BTreeSet::new(), BTreeSet::new());
    walk(expr, false, &mut linear, &mut other);
    linear.into_iter().filter(|s| !other.contains(s)).collect()
}

/// Threads per workgroup of a split-K combine kernel.
const COMBINE_WORKGROUP: u32 = 256;

/// Fewest keys a slice of the decode attention kernel keeps when the key count is a constant
/// (a short encoder sequence gets one slice and no combine dispatch).
pub const DECODE_KEY_TILE: u32 = 32;

/// Most keys of one step of the decode attention kernel (see [`DecodeTile::new`]).
pub const MAX_DECODE_STEP_KEYS: u32 = 32;

/// Most key slices of the decode attention kernel (each writes a partial result per row and
/// channel that the combine kernel reads).
pub const MAX_ATTENTION_SPLITS: u32 = 32;

/// Key slices the decode attention aims at per compute unit of the target: its workgroups
/// are short (a few steps of keys each), so several per unit keep the memory system busy.
pub const ATTENTION_SLICES_PER_UNIT: u64 = 4;

/// How the decode attention kernel's workgroup covers a step of keys: `lanes` consecutive
/// threads share one key, each taking channels `lane, lane + lanes, ..` of its K row (and of
/// its V row), so a warp reads whole rows of the cache with consecutive addresses; the
/// workgroup takes `keys` keys per step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeTile {
    /// Threads per key: the smallest power of two with at most 4 channels per thread and at
    /// most [`MAX_DECODE_STEP_KEYS`] keys per step, at most the workgroup.
    pub lanes: u32,
    /// Keys per step (`workgroup / lanes`).
    pub keys: u32,
    /// Channels of a K row per thread.
    pub k_channels: u32,
    /// Channels of a V row per thread.
    pub v_channels: u32,
}

impl DecodeTile {
    /// The tile of a workgroup of `wg` threads over head dims `d` (keys) and `dv` (values).
    /// Small head dims still take at least `wg / MAX_DECODE_STEP_KEYS` lanes per key (lanes
    /// past the head dim add zeros): the kernel unrolls its per-step max and its final sum over
    /// the step's keys, and a 256-key step made a shader that lavapipe compiled for over a
    /// minute.
    pub fn new(wg: u32, d: u32, dv: u32) -> Self {
        let wg = wg.max(1);
        let lanes = d
            .max(dv)
            .div_ceil(4)
            .max(1)
            .next_power_of_two()
            .max(wg.div_ceil(MAX_DECODE_STEP_KEYS).next_power_of_two())
            .min(wg);
        DecodeTile {
            lanes,
            keys: wg / lanes,
            k_channels: d.div_ceil(lanes),
            v_channels: dv.div_ceil(lanes),
        }
    }

    /// f32 elements of the kernel's shared scratch: the per-lane shares of each (row, key)
    /// score (rows padded by one against bank conflicts), reused at the end for the key
    /// slots' weighted values and sums of one row.
    pub fn part_len(&self, rows: u32) -> u32 {
        (rows * self.lanes * (self.keys + 1)).max(self.keys * (self.v_channels * self.lanes) + self.keys)
    }
}

/// How the register-tiled flash-attention kernel (`templates/attention_tiled.wgsl`) stages
/// each block of K and V: every thread loads a fixed set of vec4s (4 keys of one channel of K,
/// 4 channels of one key of V) whose coordinates it computes once; the loads of the next block
/// are issued into registers right after the current block is in workgroup memory, so their
/// latency overlaps the block's arithmetic instead of stalling the few warps of a workgroup.
struct TiledStaging {
    threads: u32,
    d: u32,
    dv: u32,
    bk: u32,
    /// Channel groups per key row of the V block (whole groups per thread, zero past `dv`).
    dvs: u32,
    /// XOR swizzle mask of the K block's key groups.
    ksw: u32,
    /// K read directly as [batch, d, sk] (keys contiguous): consecutive threads on keys.
    k_keys_fast: bool,
    /// The cooperative-matrix kernel's staging (`templates/attention_coop.wgsl`): the row
    /// strides, in vec4s, of its f16 blocks `k_sh` (`[channel][key / 4]`, no swizzle) and
    /// `v_sh` (`[key][channel / 4]`), into which the registers are stored converted to f16.
    coop_rows: Option<(u32, u32)>,
    /// Every key block of every slice is whole ([`whole_key_blocks`]): the loads skip their
    /// key bounds checks.
    whole_keys: bool,
    /// The register-tiled kernel's K block is two-dimensional (`kp[channel][key group]`: with
    /// `pbuf`, or where the probabilities over it have rows as long as K's); otherwise
    /// flattened.
    k_rows: bool,
    /// The V block is stored in two halves of `bk / 2` keys ([`kiln_schedules::AttentionParams::vhalf`]):
    /// `stage_vstore` stores the first, `stage_vstore1` the second (at rows `vj - bk / 2`).
    /// Needs each half to be whole loads of every thread (see [`Self::halves_whole`]).
    v_halves: bool,
}

/// Whether every `bk`-key block that a flash-attention workgroup walks lies inside the keys:
/// a constant key count that is a multiple of `bk`, and (split over `slices`, as
/// `macros::key_slice` cuts them) a last slice that starts before the end, so that no
/// workgroup loads a first block past it.
fn whole_key_blocks(sk: &Dim, bk: u32, slices: u32) -> bool {
    let Some(sk) = sk.as_const() else {
        return false;
    };
    let (bk, slices) = (bk as i64, slices.max(1) as i64);
    let chunk = (sk + slices - 1) / slices;
    let chunk = (chunk + bk - 1) / bk * bk;
    sk > 0 && sk % bk == 0 && (slices - 1) * chunk < sk
}

impl TiledStaging {
    /// Reads K^T (`[batch, d, sk]`) and V (`[batch, sk, dv]`) of `draft` at coordinates,
    /// registers the key count `sk` (after the operands' parameters, as both kernels declare
    /// them) and inserts the staging lines ([`Self::lines`]) as `stage_setup`, `stage_load`,
    /// `stage_kstore` and `stage_vstore`. `k_keys_fast` is set from how K is read. Returns the
    /// key count's WGSL expression.
    #[allow(clippy::too_many_arguments)]
    fn insert(
        mut self,
        ctx: &mut tera::Context,
        draft: &KernelDraft,
        [batch, sk]: [&Dim; 2],
        params: &mut ParamSet,
        helpers: &mut BTreeSet<&'static str>,
        in_dtypes: &Slots,
        fns: &mut Vec<String>,
    ) -> String {
        let bsk = [batch.clone(), Dim::c(self.d as i64), sk.clone()];
        let bsv = [batch.clone(), sk.clone(), Dim::c(self.dv as i64)];
        let xk = operand_at(draft, 1, &bsk, params, helpers, in_dtypes, fns);
        let xv = operand_at(draft, 2, &bsv, params, helpers, in_dtypes, fns);
        self.k_keys_fast = matches!(draft.operand(1), Expr::LoadIdx(_, ix) if *ix == Expr::Index);
        let sk_s = params.dim(sk, "sk");
        let (setup, [kload, vload], kstore, [vstore, vstore1]) = self.lines(&xk, &xv, &sk_s);
        ctx.insert("stage_setup", &setup);
        ctx.insert("stage_load", &[kload.clone(), vload.clone()].concat());
        ctx.insert("stage_kload", &kload);
        ctx.insert("stage_vload", &vload);
        ctx.insert("stage_kstore", &kstore);
        ctx.insert("stage_vstore", &vstore);
        ctx.insert("stage_vstore1", &vstore1);
        sk_s
    }

    /// Whether each half of the V block is a whole number of every thread's loads (so that
    /// [`Self::v_halves`] can store the halves by load).
    fn halves_whole(&self) -> bool {
        (self.bk / 2 * self.dvs).is_multiple_of(self.threads)
    }

    /// (setup, [K loads, V loads], K stores, [V stores, second-half V stores]) lines: the
    /// thread's coordinates and registers; the loads of the block starting at key `jn` into the
    /// registers; their stores into `kp` and into `vs` (the second list empty unless
    /// [`Self::v_halves`]). `xk` and `xv` read K^T and V at coordinates (`operand_at`), `sk` is
    /// the key count.
    #[allow(clippy::type_complexity)]
    fn lines(&self, xk: &str, xv: &str, sk: &str) -> (Vec<String>, [Vec<String>; 2], Vec<String>, [Vec<String>; 2]) {
        let (mut setup, mut load, mut store) = (Vec::new(), Vec::new(), Vec::new());
        let wg = self.threads;
        let bk4 = self.bk / 4;
        let dv4 = self.dv.div_ceil(4);
        let nk = self.d * bk4;
        for it in 0..nk.div_ceil(wg) {
            let e = format!("i32(lid) + {}i", it * wg);
            let (c, g) = if self.k_keys_fast {
                (format!("({e}) / {bk4}i"), format!("({e}) % {bk4}i"))
            } else {
                (format!("({e}) % {}i", self.d), format!("({e}) / {}i", self.d))
            };
            let partial = (it + 1) * wg > nk;
            setup.push(format!("let kc{it} = {c};"));
            setup.push(format!("let kg{it} = {g};"));
            setup.push(format!("var kr{it} = vec4<f32>(0.0f);"));
            let ok = if partial {
                format!(" && {e} < {nk}i")
            } else {
                String::new()
            };
            load.push(format!("kr{it} = vec4<f32>(0.0f);"));
            for k in 0..4 {
                let read = format!("kr{it}[{k}] = {xk}(b, kc{it}, jn + 4i * kg{it} + {k}i);");
                load.push(match (self.whole_keys, partial) {
                    (true, false) => read,
                    (true, true) => format!("if ({e} < {nk}i) {{ {read} }}"),
                    (false, _) => format!("if (jn + 4i * kg{it} + {k}i < {sk}{ok}) {{ {read} }}"),
                });
            }
            let st = match self.coop_rows {
                Some((ks, _)) => format!("k_sh[kc{it} * {ks}i + kg{it}] = vec4<f16>(kr{it});"),
                None if self.k_rows => format!("kp[kc{it}][kg{it} ^ (kc{it} & {}i)] = kr{it};", self.ksw),
                None => format!(
                    "kp[kc{it} * {}i + (kg{it} ^ (kc{it} & {}i))] = kr{it};",
                    self.bk / 4,
                    self.ksw
                ),
            };
            store.push(if partial {
                format!("if ({e} < {nk}i) {{ {st} }}")
            } else {
                st
            });
        }
        let kstore = std::mem::take(&mut store);
        let kload = std::mem::take(&mut load);
        let mut store1 = Vec::new();
        let nv = self.bk * self.dvs;
        for it in 0..nv.div_ceil(wg) {
            let e = format!("i32(lid) + {}i", it * wg);
            let partial = (it + 1) * wg > nv;
            setup.push(format!("let vj{it} = ({e}) / {}i;", self.dvs));
            setup.push(format!("let vg{it} = ({e}) % {}i;", self.dvs));
            setup.push(format!("var vr{it} = vec4<f32>(0.0f);"));
            let mut conds = Vec::new();
            if !self.whole_keys {
                conds.push(format!("jn + vj{it} < {sk}"));
            }
            if partial {
                conds.push(format!("{e} < {nv}i"));
            }
            if self.dvs > dv4 {
                conds.push(format!("vg{it} < {dv4}i"));
            }
            load.push(format!("vr{it} = vec4<f32>(0.0f);"));
            load.push(if conds.is_empty() {
                "{".to_string()
            } else {
                format!("if ({}) {{", conds.join(" && "))
            });
            for k in 0..4 {
                let read = format!("vr{it}[{k}] = {xv}(b, jn + vj{it}, 4i * vg{it} + {k}i);");
                load.push(if self.dv.is_multiple_of(4) {
                    format!("    {read}")
                } else {
                    format!("    if (4i * vg{it} + {k}i < {}i) {{ {read} }}", self.dv)
                });
            }
            load.push("}".into());
            let second = self.v_halves && it * wg >= nv / 2;
            let st = match self.coop_rows {
                Some((_, vs)) => format!("v_sh[vj{it} * {vs}i + vg{it}] = vec4<f16>(vr{it});"),
                None if second => format!("vs[vj{it} - {}i][vg{it}] = vr{it};", self.bk / 2),
                None => format!("vs[vj{it}][vg{it}] = vr{it};"),
            };
            let st = if partial {
                format!("if ({e} < {nv}i) {{ {st} }}")
            } else {
                st
            };
            if second {
                store1.push(st);
            } else {
                store.push(st);
            }
        }
        (setup, [kload, load], kstore, [store, store1])
    }
}

/// The query rows per batch of an attention kernel rendered with the decode schedule (split
/// over keys, then combined): a constant count up to
/// [`MAX_FEW_QUERY_ROWS`](crate::lower::anchor::MAX_FEW_QUERY_ROWS), a decode step's query
/// heads per KV head. More rows (a prompt) take flash attention (`Schedule::Attention`).
pub fn decode_rows(sq: &Dim) -> Option<u32> {
    sq.as_const()
        .filter(|&r| r >= 1 && r as usize <= crate::lower::anchor::MAX_FEW_QUERY_ROWS)
        .map(|r| r as u32)
}

/// Key slices of the decode attention kernel: the largest power of two up to
/// [`MAX_ATTENTION_SPLITS`] that keeps `batch x slices` within
/// [`ATTENTION_SLICES_PER_UNIT`] workgroups per compute unit of the target (a symbolic batch
/// counts as 64), so a few KV heads still fill the GPU while the combine's reads stay small.
/// The runtime key count is divided among them in whole steps of the kernel's key tile.
///
/// A constant key count keeps at least [`DECODE_KEY_TILE`] keys per slice (a short encoder
/// sequence gets one slice, which writes the output directly with no combine dispatch).
pub fn attention_splits(batch: &Dim, sk: &Dim, limits: &DeviceLimits) -> u32 {
    let b: kiln_ir::DimBindings = batch.symbols().into_iter().map(|s| (s, 64)).collect();
    let batch = batch.eval(&b).unwrap_or(64).max(1) as u64;
    let mut room = (ATTENTION_SLICES_PER_UNIT * limits.compute_units.max(1) as u64 / batch).max(1);
    if let Some(keys) = sk.as_const() {
        room = room.min((keys.max(1) as u64).div_ceil(DECODE_KEY_TILE as u64));
    }
    let mut s = 1u32;
    while s * 2 <= MAX_ATTENTION_SPLITS && (s * 2) as u64 <= room {
        s *= 2;
    }
    s
}

/// The shape of a GEMV that splits K over workgroups ([`kiln_schedules::GemvParams::slices`]):
/// its counters (one per batch, row group and column group) in the scratch buffer's counter
/// region and its partial sums after it.
struct GemvSlices {
    /// Rows of B each slice walks (the last may have fewer).
    k_slice: u32,
    /// Workgroups along the rows of A.
    row_groups: u32,
    /// Workgroups along the columns.
    col_groups: u32,
    /// Bytes of scratch: the counter region and `[batch][slice][row][column]` f32 sums.
    scratch_bytes: i64,
}

impl GemvSlices {
    /// Checks that the split applies: an f32 product of constant shape whose counters fit the
    /// counter region, with a storage binding left for the scratch buffer. Unsupported
    /// otherwise, so that the tuner and the defaults pass over the schedule.
    #[allow(clippy::too_many_arguments)]
    fn new(
        draft: &KernelDraft,
        p: &kiln_schedules::GemvParams,
        schedule: Schedule,
        [batch, m, n, ncols, k]: [&Dim; 5],
        dtype: DType,
        buffers: u32,
        limits: &DeviceLimits,
    ) -> Result<GemvSlices, CompileError> {
        let unsupported = |why: String| CompileError::Unsupported {
            node: draft.label.clone(),
            op: "MatMul".into(),
            msg: format!("schedule {schedule}: {why}"),
        };
        let dims = [batch, m, n, ncols, k].map(|d| d.as_const().and_then(|c| u64::try_from(c).ok()));
        let [Some(batch), Some(m), Some(n), Some(ncols), Some(k)] = dims else {
            return Err(unsupported(
                "K slices need constant shapes (the scratch buffer is sized by them)".into(),
            ));
        };
        if dtype != DType::F32 {
            return Err(unsupported("K slices add f32 partial sums".into()));
        }
        if buffers >= limits.max_storage_buffers_per_shader_stage {
            return Err(unsupported("no storage binding is left for the scratch buffer".into()));
        }
        let row_groups = m.div_ceil(p.rows as u64);
        let col_groups = ncols.div_ceil(p.lanes as u64);
        let counters = batch * row_groups * col_groups;
        if counters > ARRIVAL_COUNTERS {
            return Err(unsupported(format!(
                "{counters} column groups need more than the {ARRIVAL_COUNTERS} arrival counters"
            )));
        }
        let k_slice = k.div_ceil(p.slices as u64);
        if k_slice < p.ksplit as u64 {
            return Err(unsupported(format!(
                "{k_slice} rows of B per slice are fewer than the {} thread rows",
                p.ksplit
            )));
        }
        Ok(GemvSlices {
            k_slice: k_slice as u32,
            row_groups: row_groups as u32,
            col_groups: col_groups as u32,
            scratch_bytes: ((ARRIVAL_COUNTERS * ARRIVAL_COUNTER_STRIDE + batch * p.slices as u64 * m * n) * 4) as i64,
        })
    }
}

/// Arrival counters at the start of the scratch buffer (the decode attention: one per batch;
/// a GEMV split over K: one per column group), each [`ARRIVAL_COUNTER_STRIDE`] words apart.
/// Every kernel that binds the buffer keeps its counters in this region and its partial
/// results after it, so a kernel never finds another's partial results where its counters are
/// (each leaves its own counters at zero; partial results are left behind). Defined beside the
/// schedules, whose defaults respect it.
pub use kiln_schedules::ARRIVAL_COUNTERS;

/// Words between two arrival counters: 128 bytes, a cache line on the GPUs Kiln targets, so
/// the heads' atomics do not queue on one line (the layout measured on the H200 had each
/// counter in a line of its own).
pub const ARRIVAL_COUNTER_STRIDE: u64 = 32;

/// The combine kernel of the decode attention schedule: one thread per output element rescales
/// the slices' partial results (`[batch][slice][row][o.., max, sum]`, f32) to their common max
/// and divides by the total sum. It binds only the partial results and the output.
fn render_attention_combine(
    draft: &KernelDraft,
    schedule: Schedule,
    [rows, dv, splits]: [u32; 3],
    batch: &Dim,
    limits: &DeviceLimits,
) -> Result<SplitK, CompileError> {
    let mut params = ParamSet::default();
    let total = batch.mul(&Dim::c((rows * dv) as i64));
    let mut ctx = tera::Context::new();
    ctx.insert("label", &draft.label.replace('\n', " "));
    ctx.insert("schedule", &format!("combine of {splits} key slices"));
    ctx.insert("splits", &splits);
    ctx.insert("sq", &rows);
    ctx.insert("dv", &dv);
    ctx.insert("partial", &0);
    ctx.insert("wg", &COMBINE_WORKGROUP);
    ctx.insert("total", &params.dim(&total, "total"));
    let partial = dim_expr(batch).times((splits * rows * (dv + 2)) as i64);
    combine_split(
        draft,
        "attention_combine",
        ctx,
        params,
        &total,
        partial,
        schedule,
        limits,
    )
}

/// Renders, validates and wraps an attention combine kernel (f32 partial results in, one
/// thread per output element): `partial` is the element count of the partial results.
#[allow(clippy::too_many_arguments)]
fn combine_split(
    draft: &KernelDraft,
    template: &str,
    mut ctx: tera::Context,
    params: ParamSet,
    total: &Dim,
    partial: SizeExpr,
    schedule: Schedule,
    limits: &DeviceLimits,
) -> Result<SplitK, CompileError> {
    let dtypes = Slots::plain(&[DType::F32]);
    ctx.insert(
        "header",
        &header(
            &params,
            &dtypes,
            &[],
            DType::F32,
            &BTreeSet::from([expr::NONFINITE_HELPER]),
            &[],
        ),
    );
    let wgsl = render_template(template, &ctx)?;
    validate::validate_wgsl(&draft.label, &wgsl, limits)?;
    let combine = combine_kernel(wgsl, dtypes.len(), &params, total, schedule);
    Ok(SplitK {
        binds_inputs: false,
        partial_bytes: partial.times(crate::plan::STORAGE_ELEM_BYTES),
        combine: Box::new(combine),
    })
}

/// The combine kernel of flash attention split over keys (`AttentionParams::slices`): one
/// thread per output element rescales the slices' unnormalized rows (`[batch][slice][row][o..,
/// max, sum]`, f32) to their common maximum and divides by the total sum. It binds only the
/// partial results and the output.
fn render_attention_slices_combine(
    draft: &KernelDraft,
    schedule: Schedule,
    [sq, batch]: [&Dim; 2],
    [dv, slices]: [u32; 2],
    limits: &DeviceLimits,
) -> Result<SplitK, CompileError> {
    let mut params = ParamSet::default();
    let rows = batch.mul(sq);
    let total = rows.mul(&Dim::c(dv as i64));
    let mut ctx = tera::Context::new();
    ctx.insert("label", &draft.label.replace('\n', " "));
    ctx.insert("schedule", &format!("combine of {slices} key slices"));
    ctx.insert("slices", &slices);
    ctx.insert("sq", &params.divisor(sq, "sq"));
    ctx.insert("dv", &dv);
    ctx.insert("wg", &COMBINE_WORKGROUP);
    ctx.insert("total", &params.dim(&total, "total"));
    let partial = dim_expr(&rows).times((slices * (dv + 2)) as i64);
    combine_split(
        draft,
        "attention_slices_combine",
        ctx,
        params,
        &total,
        partial,
        schedule,
        limits,
    )
}

/// The combine kernel of a split-K GEMM: one thread per element of C adds the `ksplit` partial
/// sums and applies the draft's epilogue. It binds the draft's inputs (for the epilogue), then
/// the partial-sum buffer.
fn render_combine(
    draft: &KernelDraft,
    in_dtypes: &Slots,
    p: &kiln_schedules::GemmParams,
    schedule: Schedule,
    [m, n, batch]: [&Dim; 3],
    limits: &DeviceLimits,
) -> Result<SplitK, CompileError> {
    let buffers = draft.inputs.len() as u32 + 2;
    if buffers > limits.max_storage_buffers_per_shader_stage {
        return Err(CompileError::Limits {
            node: draft.label.clone(),
            target: limits.name.clone(),
            msg: format!(
                "split-K ({schedule}) needs {buffers} storage buffers in its combine kernel, maxStorageBuffersPerShaderStage = {}",
                limits.max_storage_buffers_per_shader_stage
            ),
        });
    }
    let mut params = ParamSet::default();
    let mut helpers = BTreeSet::new();
    let mut dtypes = in_dtypes.clone();
    dtypes.dtypes.push(DType::F32);
    dtypes.packed.push(false);
    let mn = m.mul(n);
    let total = mn.mul(batch);
    let epilogue = gemm_epilogue(draft, [batch, m, n], &mut params, &mut helpers, in_dtypes);
    let mut ctx = tera::Context::new();
    ctx.insert("label", &draft.label.replace('\n', " "));
    ctx.insert("schedule", &schedule.to_string());
    ctx.insert("ty", reg_ty(DType::F32));
    ctx.insert("ksplit", &p.ksplit);
    ctx.insert("partial", &in_dtypes.len());
    ctx.insert("wg", &COMBINE_WORKGROUP);
    ctx.insert("total", &params.dim(&total, "total"));
    ctx.insert("mn", &params.divisor(&mn, "mn"));
    ctx.insert("n", &params.divisor(n, "n"));
    ctx.insert("epilogue", &epilogue);
    ctx.insert("header", &header(&params, &dtypes, &[], DType::F32, &helpers, &[]));
    let wgsl = render_template("gemm_combine", &ctx)?;
    validate::validate_wgsl(&draft.label, &wgsl, limits)?;
    let combine = combine_kernel(wgsl, dtypes.len(), &params, &total, schedule);
    Ok(SplitK {
        binds_inputs: true,
        partial_bytes: dim_expr(&total)
            .times(p.ksplit as i64)
            .times(crate::plan::STORAGE_ELEM_BYTES),
        combine: Box::new(combine),
    })
}

/// (M, K, N, output batch dims, A's batch dims, B's batch dims) of a numpy matmul.
pub fn gemm_dims(a: &[Dim], b: &[Dim]) -> (Dim, Dim, Dim, Vec<Dim>, Vec<Dim>, Vec<Dim>) {
    let mut sa = a.to_vec();
    let mut sb = b.to_vec();
    if sa.len() == 1 {
        sa.insert(0, Dim::c(1));
    }
    if sb.len() == 1 {
        sb.push(Dim::c(1));
    }
    let (m, k, n) = (
        sa[sa.len() - 2].clone(),
        sa[sa.len() - 1].clone(),
        sb[sb.len() - 1].clone(),
    );
    let ab = sa[..sa.len() - 2].to_vec();
    let bb = sb[..sb.len() - 2].to_vec();
    let batch = kiln_ir::infer::broadcast(&ab, &bb).expect("inference checked the batch dims");
    (m, k, n, batch, ab, bb)
}

fn coords_needed(e: &Expr) -> bool {
    match e {
        Expr::Coord(_) => true,
        Expr::Read(_, a) if !matches!(a.as_ref(), Access::Linear) => true,
        e => e.children().into_iter().any(coords_needed),
    }
}

/// A combine dispatch of a split kernel: one thread per output element (`total` of them) in
/// workgroups of [`COMBINE_WORKGROUP`], binding `binding_count` buffers (the combine templates
/// declare no workgroup memory).
fn combine_kernel(
    wgsl: String,
    binding_count: usize,
    params: &ParamSet,
    total: &Dim,
    schedule: Schedule,
) -> RenderedKernel {
    RenderedKernel {
        wgsl,
        workgroup_size: [COMBINE_WORKGROUP, 1, 1],
        bindings: bindings(binding_count, 1),
        param_names: params.manifest_names(),
        param_values: params.manifest_values(),
        grid: [
            dim_expr(total).cdiv(COMBINE_WORKGROUP as i64),
            SizeExpr::c(1),
            SizeExpr::c(1),
        ],
        schedule,
        grid_splittable: true,
        split: None,
        scratch: None,
        workgroup_bytes: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key loads drop their bounds checks only where every block of every slice is inside the
    /// keys: a constant multiple of the block, and no slice starting past the end (160 keys in
    /// 4 slices of 64: the last would start at 192).
    #[test]
    fn whole_key_blocks_only_where_no_block_leaves_the_keys() {
        assert!(whole_key_blocks(&Dim::c(512), 32, 4));
        assert!(whole_key_blocks(&Dim::c(512), 64, 1));
        assert!(whole_key_blocks(&Dim::c(256), 32, 8));
        assert!(!whole_key_blocks(&Dim::c(500), 32, 1));
        assert!(!whole_key_blocks(&Dim::c(160), 32, 4));
        assert!(!whole_key_blocks(&Dim::c(0), 32, 1));
        assert!(!whole_key_blocks(&Dim::sym("n"), 32, 1));
        // Brute force against macros::key_slice's cut for small cases.
        for sk in (16..=320).step_by(16) {
            for bk in [16u32, 32, 64] {
                for slices in [1u32, 2, 4, 8] {
                    let chunk = (sk + slices as i64 - 1) / slices as i64;
                    let chunk = (chunk + bk as i64 - 1) / bk as i64 * bk as i64;
                    let inside = (0..slices as i64).all(|z| {
                        let (beg, end) = (z * chunk, (z * chunk + chunk).min(sk));
                        // The first block is loaded from `beg` whatever the slice holds; every
                        // block walked must end by `sk`.
                        beg + bk as i64 <= sk && (beg..end).step_by(bk as usize).all(|j| j + bk as i64 <= sk)
                    });
                    assert_eq!(
                        whole_key_blocks(&Dim::c(sk), bk, slices),
                        inside,
                        "{sk} keys, bk {bk}, {slices} slices"
                    );
                }
            }
        }
    }

    /// Every channel of a row is some lane's, once, with or without pairs; pairs are adjacent
    /// channels of one lane; `past` marks exactly the channels some lane places past the row.
    #[test]
    fn decode_channels_cover_each_channel_once() {
        for (lanes, width) in [(16u32, 64u32), (8, 64), (16, 48), (4, 6), (32, 64)] {
            for pairs in [false, true] {
                let n = width.div_ceil(lanes);
                let (first, past) = decode_channels(lanes, n, width, pairs);
                let step = if pairs { 2 } else { 1 };
                let mut seen = vec![0; width as usize];
                for (i, &f) in first.iter().enumerate() {
                    let chans: Vec<u32> = (0..lanes).map(|g| f + step * g).collect();
                    assert_eq!(
                        past[i],
                        chans.iter().any(|&c| c >= width),
                        "{lanes} {width} {pairs} {i}"
                    );
                    for c in chans.into_iter().filter(|&c| c < width) {
                        seen[c as usize] += 1;
                    }
                }
                assert!(seen.iter().all(|&s| s == 1), "{lanes} {width} {pairs}: {seen:?}");
                if pairs {
                    assert!(first.len() % 2 == 0 && first.chunks(2).all(|p| p[1] == p[0] + 1));
                }
            }
        }
    }

    /// Every head dim fills the workgroup exactly with at most `MAX_DECODE_STEP_KEYS` keys per
    /// step, and head dims of 64 and 128 keep 4 channels per thread.
    #[test]
    fn decode_tile_caps_the_step_keys_and_fills_the_workgroup() {
        for wg in [64u32, 128, 256] {
            for d in [1u32, 4, 6, 16, 32, 64, 80, 128, 256] {
                let t = DecodeTile::new(wg, d, d);
                assert!(t.keys >= 1 && t.keys <= MAX_DECODE_STEP_KEYS, "{wg} {d}: {t:?}");
                assert_eq!(t.lanes * t.keys, wg, "{wg} {d}: {t:?}");
                assert!(t.k_channels * t.lanes >= d, "{wg} {d}: {t:?}");
            }
        }
        assert_eq!(
            DecodeTile::new(256, 64, 64),
            DecodeTile {
                lanes: 16,
                keys: 16,
                k_channels: 4,
                v_channels: 4
            }
        );
        assert_eq!(
            DecodeTile::new(256, 128, 128),
            DecodeTile {
                lanes: 32,
                keys: 8,
                k_channels: 4,
                v_channels: 4
            }
        );
        assert_eq!(
            DecodeTile::new(256, 4, 4),
            DecodeTile {
                lanes: 8,
                keys: 32,
                k_channels: 1,
                v_channels: 1
            }
        );
    }
}
