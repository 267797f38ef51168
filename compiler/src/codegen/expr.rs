//! Renders scalar expressions ([`crate::lower::Expr`]) into WGSL statements.
//!
//! Values live in registers as `f32` (f32, and f16 rounded after every op), `i32` (i32, i8),
//! `u32` (u32, u8) or `bool`; storage holds bools as u32 0/1.

use super::params::{i32_literal, ParamSet};
use crate::lower::{Access, Expr};
use kiln_ir::{BinaryOp, DType, Dim, UnaryOp};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// WGSL register type of a dtype.
pub fn reg_ty(d: DType) -> &'static str {
    match d {
        DType::F32 | DType::F16 => "f32",
        DType::I32 | DType::I8 => "i32",
        DType::U32 | DType::U8 => "u32",
        DType::Bool => "bool",
    }
}

/// WGSL storage element type of a dtype.
pub fn storage_ty(d: DType) -> &'static str {
    match d {
        DType::Bool => "u32",
        other => reg_ty(other),
    }
}

/// Converts a loaded storage value to its register form.
pub fn from_storage(d: DType, v: &str) -> String {
    if d == DType::Bool {
        format!("({v} != 0u)")
    } else {
        v.to_string()
    }
}

/// Converts a register value to its storage form.
pub fn to_storage(d: DType, v: &str) -> String {
    if d == DType::Bool {
        format!("select(0u, 1u, {v})")
    } else {
        v.to_string()
    }
}

/// Helper through which non-finite f32 constants are written. A WGSL const-expression must
/// have a finite value (Tint, in Chrome, rejects `bitcast<f32>(0x7f800000u)`, naga accepts
/// it); a call to a user function is never a const-expression, so the value is made at run time.
pub const NONFINITE_HELPER: &str = "kiln_f32_bits";

/// A WGSL literal for a value of a dtype. A non-finite float calls [`NONFINITE_HELPER`], which
/// the module must then include.
pub fn literal(v: f64, d: DType) -> String {
    let v = d.round(v);
    match d {
        DType::F32 | DType::F16 => {
            let f = v as f32;
            if f.is_finite() {
                let mut s = format!("{f:?}f");
                // The shortest decimal that rounds to f32::MAX (3.4028235e38) is itself above
                // f32::MAX, and WGSL compilers that check the literal's exact value (Tint, in
                // Chrome) reject it; print the f32's exact value instead.
                if s.trim_end_matches('f')
                    .parse::<f64>()
                    .is_ok_and(|x| x.abs() > f32::MAX as f64)
                {
                    s = format!("{:?}f", f as f64);
                }
                if f < 0.0 || s.starts_with('-') {
                    format!("({s})")
                } else {
                    s
                }
            } else {
                // Needs the helper NONFINITE_HELPER (see there).
                format!("{NONFINITE_HELPER}({:#010x}u)", f.to_bits())
            }
        }
        DType::I32 | DType::I8 => i32_literal(v as i64),
        DType::U32 | DType::U8 => format!("{}u", v as u64),
        DType::Bool => (v != 0.0).to_string(),
    }
}

/// WGSL helper functions that expressions may call; emitted once per module when used.
pub fn helper_source(name: &str) -> &'static str {
    match name {
        "kiln_erf" => {
            "fn kiln_erf(x: f32) -> f32 {\n    // erfc Chebyshev fit (fractional error < 1.2e-7).\n    let z = abs(x);\n    let t = 1.0 / (1.0 + 0.5 * z);\n    let p = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));\n    let r = 1.0 - t * exp(p);\n    return select(-r, r, x >= 0.0);\n}"
        }
        "kiln_pow" => {
            "fn kiln_pow(x: f32, y: f32) -> f32 {\n    if (y == 2.0) { return x * x; }\n    if (y == 1.0) { return x; }\n    if (y == 0.0) { return 1.0; }\n    let r = pow(abs(x), y);\n    if (x < 0.0) {\n        if (floor(y) != y) { let nan = 0x7fc00000u; return bitcast<f32>(nan); }\n        let odd = (i32(clamp(y, -16777216.0, 16777216.0)) & 1) != 0;\n        return select(r, -r, odd);\n    }\n    if (x == 0.0 && y < 0.0) { let inf = 0x7f800000u; return bitcast<f32>(inf); }\n    return r;\n}"
        }
        // tanh(x) saturates to +-1 in f32 well before |x| = 20; clamping avoids inf/inf. Drivers
        // may derive tanh from exp, which loses the relative precision of small results
        // (e^2x - 1 cancels), so |x| < 2^-6 uses the odd series x - x^3/3 + 2x^5/15 (relative
        // truncation error < 17/315 x^6 < 1e-12).
        "kiln_tanh" => {
            "fn kiln_tanh(x: f32) -> f32 {\n    let x2 = x * x;\n    let small = x * (1.0 - x2 * (0.33333333 - x2 * 0.13333333));\n    return select(tanh(clamp(x, -20.0, 20.0)), small, abs(x) < 0.015625);\n}"
        }
        // softplus(x) = max(x, 0) + log1p(exp(-|x|)): no overflow for large x, and log1p keeps
        // the precision of tiny results (log(1 + u) rounds 1 + u and loses u's low bits, a
        // relative error of 1e-3 at x = -10). WGSL has no log1p: u < 2^-5 uses the series
        // u - u^2/2 + u^3/3 - u^4/4 (relative truncation error < u^4/5 < 2e-7), larger u log(1 + u),
        // whose absolute error (2^-21 at most by the Vulkan spec) is small against log(1 + u) >= 0.03.
        "kiln_softplus" => {
            "fn kiln_softplus(x: f32) -> f32 {\n    let u = exp(-abs(x));\n    let series = u * (1.0 - u * (0.5 - u * (0.33333333 - u * 0.25)));\n    return max(x, 0.0) + select(log(1.0 + u), series, u < 0.03125);\n}"
        }
        "kiln_f32_bits" => "fn kiln_f32_bits(b: u32) -> f32 {\n    return bitcast<f32>(b);\n}",
        "kiln_is_nan" => "fn kiln_is_nan(x: f32) -> bool {\n    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;\n}",
        // quantizeToF16 (SPIR-V OpQuantizeToF16) flushes f16 subnormals to zero; round those
        // onto the subnormal grid (multiples of 2^-24, ties to even) as the interpreter does.
        // Subnormal f16 values are rounded by hand (quantizeToF16 may flush them); a select, not
        // a branch, so the lanes of a subgroup never diverge on it.
        "kiln_f16" => "fn kiln_f16(x: f32) -> f32 {\n    return select(quantizeToF16(x), round(x * 16777216.0) / 16777216.0, abs(x) < 6.103515625e-5);\n}",
        "kiln_imod" => {
            "fn kiln_imod(a: i32, b: i32) -> i32 {\n    if (b == 0) { return 0; }\n    let r = a % b;\n    return select(r, r + b, r != 0 && ((r < 0) != (b < 0)));\n}"
        }
        "kiln_idiv" => "fn kiln_idiv(a: i32, b: i32) -> i32 {\n    if (b == 0) { return 0; }\n    return a / b;\n}",
        "kiln_f2i" => {
            "fn kiln_f2i(x: f32, lo: f32, hi: f32) -> i32 {\n    if ((bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u) { return 0; }\n    return i32(clamp(trunc(x), lo, hi));\n}"
        }
        "kiln_f2u" => {
            "fn kiln_f2u(x: f32, hi: f32) -> u32 {\n    if ((bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u) { return 0u; }\n    return u32(clamp(trunc(x), 0.0, hi));\n}"
        }
        other => unreachable!("unknown helper {other}"),
    }
}

/// Common-subexpression elimination by value numbering: a fused tree that uses a value twice
/// computes and loads it once.
///
/// A `let` is keyed by its WGSL right-hand side. That text names only earlier `let`s (each the
/// one value of its own key), coordinates, parameters, literals and reads of read-only inputs,
/// so equal text in one scope is the same value, and the key costs the size of one operation,
/// not of the whole subtree below it (keying by the subtree made emitting a deep tree, such as
/// an unrolled 3-D pooling window, quadratic).
#[derive(Clone, Debug, Default)]
pub struct Memo {
    /// Right-hand side of a `let` -> the name it is bound to.
    lets: HashMap<String, String>,
    /// A concatenation (a `var` set in branches, not a `let`), by its structure -> its
    /// variable and dtype.
    concats: HashMap<String, (String, DType)>,
}

/// The kernel's input slots: each one's dtype (`slots[s]`, through `Deref`), and which are
/// f16 states stored two values per 32-bit word ([`Slots::packed`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slots {
    /// Dtype of each input slot.
    pub dtypes: Vec<DType>,
    /// Slots bound as `array<u32>` words of two f16 values (element `2w` in the low half),
    /// read through `unpack2x16float`: the f16 KV cache (see docs/bundle-format.md, states).
    pub packed: Vec<bool>,
    /// Slots holding a packed quantized weight stored block-column-major
    /// (`QuantLayout::BlockColumns`); absent means GGUF's row order.
    pub block_columns: Vec<bool>,
}

impl Slots {
    /// Slots of these dtypes, none packed.
    pub fn plain(dtypes: &[DType]) -> Slots {
        Slots {
            dtypes: dtypes.to_vec(),
            packed: vec![false; dtypes.len()],
            block_columns: vec![false; dtypes.len()],
        }
    }

    /// Whether slot `s` holds a quantized weight stored block-column-major.
    pub fn is_block_columns(&self, s: usize) -> bool {
        self.block_columns.get(s).copied().unwrap_or(false)
    }

    /// Whether slot `s` holds packed f16 pairs.
    pub fn is_packed(&self, s: usize) -> bool {
        self.packed.get(s).copied().unwrap_or(false)
    }
}

impl std::ops::Deref for Slots {
    type Target = [DType];

    fn deref(&self) -> &[DType] {
        &self.dtypes
    }
}

/// WGSL that reads element `index` (an `i32` name or literal) of a packed f16 slot.
pub fn packed_load(slot: usize, index: &str) -> String {
    format!("unpack2x16float(in{slot}[u32({index}) >> 1u])[u32({index}) & 1u]")
}

/// Emits WGSL `let` statements for expressions of one injective kernel.
pub struct ExprWriter<'a> {
    /// Parameters of the kernel (dims become literals or fields).
    pub params: &'a mut ParamSet,
    /// Helper functions used so far.
    pub helpers: &'a mut BTreeSet<&'static str>,
    /// Dtype (and storage) of each kernel input slot.
    pub in_dtypes: &'a Slots,
    /// Statements emitted so far (indented by the caller).
    pub lines: Vec<String>,
    /// Counter for fresh names.
    pub next: usize,
    /// Values emitted so far, for common-subexpression elimination (see [`Memo`]).
    pub memo: Memo,
    /// Name of the linear output index variable.
    pub idx: String,
    /// Names of the output coordinate variables.
    pub coords: Vec<String>,
    /// Name of the value an anchor computed ([`Expr::Core`]), in epilogues.
    pub core: String,
    /// Inputs already loaded as part of a 4-vector (the vec4 injective kernel): a read of
    /// slot `s` at the output's own index (a linear read, or a load at [`Expr::Index`]) is the
    /// given component text instead of a load.
    pub lanes: BTreeMap<usize, String>,
}

impl ExprWriter<'_> {
    fn fresh(&mut self, prefix: &str) -> String {
        loop {
            self.next += 1;
            let name = format!("{prefix}{}", self.next);
            // `i32`, `u32`, `f32`, `f16` would shadow the WGSL types of the same name.
            if !matches!(name.as_str(), "i32" | "u32" | "f32" | "f16") {
                return name;
            }
        }
    }

    /// Binds `value` to a fresh name, or returns the name it is already bound to in scope.
    fn let_(&mut self, prefix: &str, value: String) -> String {
        if let Some(n) = self.memo.lets.get(&value) {
            return n.clone();
        }
        let n = self.fresh(prefix);
        self.lines.push(format!("let {n} = {value};"));
        self.memo.lets.insert(value, n.clone());
        n
    }

    /// The value of slot `slot` (dtype `d`) at `index`, in register form.
    fn load(&mut self, slot: usize, d: DType, index: String) -> String {
        if self.in_dtypes.is_packed(slot) {
            let i = self.let_("i", index);
            return packed_load(slot, &i);
        }
        from_storage(d, &format!("in{slot}[{index}]"))
    }

    /// Renders an index expression `offset + sum coord_i * stride_i`.
    pub fn strided_index(&mut self, strides: &[Dim], offset: &Dim) -> String {
        let mut terms = Vec::new();
        if *offset != Dim::c(0) {
            terms.push(self.params.dim(offset, "off"));
        }
        for (i, s) in strides.iter().enumerate() {
            if *s == Dim::c(0) {
                continue;
            }
            let c = self.coords[i].clone();
            if *s == Dim::c(1) {
                terms.push(c);
            } else {
                let st = self.params.dim(s, "stride");
                terms.push(format!("{c} * {st}"));
            }
        }
        if terms.is_empty() {
            "0i".into()
        } else {
            terms.join(" + ")
        }
    }

    /// Emits the expression; returns the WGSL value (a name or literal) and its dtype.
    pub fn emit(&mut self, e: &Expr) -> (String, DType) {
        let (v, d) = self.emit_raw(e);
        // Loads, literals and casts are already on their dtype's grid, and so is a choice among
        // such values: a sign change, an absolute value, a ReLU, a maximum or minimum, a
        // selection (operands are rounded when they are computed). An f16 MLP's bias and ReLU
        // epilogue then rounds twice per element, not three times.
        let exact = matches!(
            e,
            Expr::Read(..)
                | Expr::LoadIdx(..)
                | Expr::Lit(..)
                | Expr::Cast(..)
                | Expr::Bitcast(..)
                | Expr::Unary(UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Relu, ..)
                | Expr::Binary(BinaryOp::Max | BinaryOp::Min, ..)
                | Expr::Select(..)
        );
        // Results are rounded to their dtype after every operation, as the interpreter does:
        // f16 to the f16 grid, i8/u8 wrapped to 8 bits.
        let out = match d {
            DType::F16 if !exact => {
                self.helpers.insert("kiln_f16");
                (self.let_("h", format!("kiln_f16({v})")), d)
            }
            DType::I8 if !exact => (self.let_("w", format!("(({v} << 24u) >> 24u)")), d),
            DType::U8 if !exact => (self.let_("w", format!("({v} & 255u)")), d),
            _ => (v, d),
        };
        out
    }

    fn emit_raw(&mut self, e: &Expr) -> (String, DType) {
        match e {
            // Kernel formation binds every graph-level load to a kernel slot (`lower::bind_loads`).
            Expr::Load { input, .. } => unreachable!("graph-level load of input {input} in a kernel"),
            Expr::Read(slot, access) => {
                let d = self.in_dtypes[*slot];
                if let (Access::Linear, Some(lane)) = (access.as_ref(), self.lanes.get(slot)) {
                    return (from_storage(d, lane), d);
                }
                let index = match access.as_ref() {
                    Access::Linear => self.idx.clone(),
                    Access::Strided { strides, offset } => self.strided_index(strides, offset),
                    Access::Gathered {
                        strides,
                        index,
                        axis_len,
                        axis_stride,
                    } => {
                        let (g, _) = self.emit(index);
                        let len = self.params.dim(axis_len, "len");
                        let g = self.let_("g", format!("select({g}, {g} + {len}, {g} < 0i)"));
                        let base = self.strided_index(strides, &Dim::c(0));
                        let st = self.params.dim(axis_stride, "stride");
                        format!("{base} + {g} * {st}")
                    }
                };
                let v = self.load(*slot, d, dead_read_index(index));
                (self.let_("v", v), d)
            }
            Expr::Lit(v, d) => {
                let lit = literal(*v, *d);
                if lit.starts_with(NONFINITE_HELPER) {
                    self.helpers.insert(NONFINITE_HELPER);
                }
                (lit, *d)
            }
            Expr::Coord(a) => (self.coords[*a].clone(), DType::I32),
            Expr::Dim(d) => (self.params.dim(d, "dim"), DType::I32),
            Expr::LoadAt(slot, index, shape) => {
                let d = self.in_dtypes[*slot];
                let strides = crate::lower::sym_strides(shape);
                let mut terms = Vec::new();
                for (i, ix) in index.iter().enumerate() {
                    let (v, _) = self.emit(ix);
                    let hi = self.params.dim(&shape[i].sub(&Dim::c(1)), "max");
                    let c = self.let_("i", format!("clamp({v}, 0i, max({hi}, 0i))"));
                    if strides[i] == Dim::c(1) {
                        terms.push(c);
                    } else {
                        let st = self.params.dim(&strides[i], "stride");
                        terms.push(format!("{c} * {st}"));
                    }
                }
                let at = if terms.is_empty() {
                    "0i".to_string()
                } else {
                    terms.join(" + ")
                };
                let v = self.load(*slot, d, at);
                (self.let_("v", v), d)
            }
            Expr::Unary(u, x, d) => {
                let (x, _) = self.emit(x);
                let out = match u {
                    UnaryOp::IsNan | UnaryOp::Not => DType::Bool,
                    _ => *d,
                };
                let v = self.unary(*u, &x, *d);
                (self.let_("u", v), out)
            }
            Expr::Binary(b, x, y, d) => {
                let (x, _) = self.emit(x);
                let (y, _) = self.emit(y);
                let out = if b.is_comparison() { DType::Bool } else { *d };
                let v = self.binary(*b, &x, &y, *d);
                (self.let_("b", v), out)
            }
            Expr::Select(c, a, b) => {
                let (c, _) = self.emit(c);
                let (a, d) = self.emit(a);
                let (b, _) = self.emit(b);
                (self.let_("s", format!("select({b}, {a}, {c})")), d)
            }
            Expr::Cast(x, from, to) => {
                let (x, _) = self.emit(x);
                let v = self.cast(&x, *from, *to);
                (self.let_("k", v), *to)
            }
            Expr::Bitcast(x, _, to) => {
                let (x, _) = self.emit(x);
                (self.let_("k", format!("bitcast<{}>({x})", reg_ty(*to))), *to)
            }
            Expr::Concat { coord, parts } => {
                let key = format!("{e:?}");
                if let Some(hit) = self.memo.concats.get(&key) {
                    return hit.clone();
                }
                let (c, _) = self.emit(coord);
                // A coordinate that folded to a constant picks its part here: the other
                // parts' reads would sit at constant out-of-range (negative) indices, which
                // naga rejects even in a branch that never runs.
                if let Some(at) = constant_int(&c) {
                    let mut chosen = parts.last().map(|(p, _)| p);
                    for (part, end) in parts {
                        match end.as_const() {
                            Some(e) if at < e => {
                                chosen = Some(part);
                                break;
                            }
                            Some(_) => {}
                            None => {
                                chosen = None;
                                break;
                            }
                        }
                    }
                    if let Some(part) = chosen {
                        let hit = self.emit(part);
                        self.memo.concats.insert(key, hit.clone());
                        return hit;
                    }
                }
                let name = self.fresh("cat");
                let decl = self.lines.len();
                let mut d = DType::F32;
                let n = parts.len();
                for (k, (part, end)) in parts.iter().enumerate() {
                    // Values defined inside a branch are not visible after it.
                    let saved = std::mem::take(&mut self.lines);
                    let saved_memo = self.memo.clone();
                    let (v, dv) = self.emit(part);
                    d = dv;
                    let body = std::mem::replace(&mut self.lines, saved);
                    self.memo = saved_memo;
                    let head = if k == 0 {
                        let e = self.params.dim(end, "end");
                        format!("if ({c} < {e}) {{")
                    } else if k + 1 < n {
                        let e = self.params.dim(end, "end");
                        format!("}} else if ({c} < {e}) {{")
                    } else {
                        "} else {".to_string()
                    };
                    self.lines.push(head);
                    for l in body {
                        self.lines.push(format!("    {l}"));
                    }
                    self.lines.push(format!("    {name} = {v};"));
                }
                self.lines.push("}".into());
                self.lines.insert(decl, format!("var {name}: {};", reg_ty(d)));
                self.memo.concats.insert(key, (name.clone(), d));
                (name, d)
            }
            Expr::Index => (self.idx.clone(), DType::I32),
            Expr::CoordOf { index, stride, dim } => {
                let (i, _) = self.emit(index);
                let mut v = i;
                if *stride != Dim::c(1) {
                    let st = self.params.divisor(stride, "stride");
                    v = format!("({v} / {st})");
                }
                if let Some(d) = dim {
                    let d = self.params.divisor(d, "dim");
                    v = format!("({v} % {d})");
                }
                (self.let_("c", v), DType::I32)
            }
            Expr::LoadIdx(slot, index) => {
                let d = self.in_dtypes[*slot];
                if let (Expr::Index, Some(lane)) = (index.as_ref(), self.lanes.get(slot)) {
                    return (from_storage(d, lane), d);
                }
                let (i, _) = self.emit(index);
                let v = self.load(*slot, d, dead_read_index(i));
                (self.let_("v", v), d)
            }
            Expr::Core(d) => (self.core.clone(), *d),
        }
    }

    fn unary(&mut self, u: UnaryOp, x: &str, d: DType) -> String {
        let float = d.is_float();
        let zero = if float {
            "0.0f"
        } else if d == DType::U32 || d == DType::U8 {
            "0u"
        } else {
            "0i"
        };
        match u {
            UnaryOp::Neg => format!("-{x}"),
            UnaryOp::Abs => format!("abs({x})"),
            UnaryOp::Exp => format!("exp({x})"),
            UnaryOp::Log => format!("log({x})"),
            UnaryOp::Sqrt => format!("sqrt({x})"),
            UnaryOp::Rsqrt => format!("inverseSqrt({x})"),
            UnaryOp::Reciprocal => format!("(1.0f / {x})"),
            UnaryOp::Sin => format!("sin({x})"),
            UnaryOp::Cos => format!("cos({x})"),
            UnaryOp::Tanh => {
                self.helpers.insert("kiln_tanh");
                format!("kiln_tanh({x})")
            }
            UnaryOp::Sigmoid => format!("(1.0f / (1.0f + exp(-{x})))"),
            UnaryOp::Relu => format!("max({x}, {zero})"),
            UnaryOp::Erf => {
                self.helpers.insert("kiln_erf");
                format!("kiln_erf({x})")
            }
            UnaryOp::Floor => format!("floor({x})"),
            UnaryOp::Ceil => format!("ceil({x})"),
            UnaryOp::Round => format!("round({x})"),
            UnaryOp::Sign => format!("sign({x})"),
            UnaryOp::Not => format!("!{x}"),
            UnaryOp::LeakyRelu(a) => format!("select({} * {x}, {x}, {x} >= 0.0f)", literal(a as f64, d)),
            UnaryOp::Elu(a) => format!("select({} * (exp({x}) - 1.0f), {x}, {x} > 0.0f)", literal(a as f64, d)),
            UnaryOp::Softplus => {
                self.helpers.insert("kiln_softplus");
                format!("kiln_softplus({x})")
            }
            UnaryOp::IsNan => {
                self.helpers.insert("kiln_is_nan");
                format!("kiln_is_nan({x})")
            }
        }
    }

    fn binary(&mut self, b: BinaryOp, x: &str, y: &str, d: DType) -> String {
        let float = d.is_float();
        let signed = matches!(d, DType::I32 | DType::I8);
        match b {
            BinaryOp::Add => format!("({x} + {y})"),
            BinaryOp::Sub => format!("({x} - {y})"),
            BinaryOp::Mul => format!("({x} * {y})"),
            BinaryOp::Div if signed => {
                self.helpers.insert("kiln_idiv");
                format!("kiln_idiv({x}, {y})")
            }
            BinaryOp::Div if !float => format!("select({x} / {y}, 0u, {y} == 0u)"),
            BinaryOp::Div => format!("({x} / {y})"),
            BinaryOp::Pow => {
                self.helpers.insert("kiln_pow");
                if float {
                    format!("kiln_pow({x}, {y})")
                } else {
                    format!("{}(kiln_pow(f32({x}), f32({y})))", reg_ty(d))
                }
            }
            BinaryOp::Max => format!("max({x}, {y})"),
            BinaryOp::Min => format!("min({x}, {y})"),
            BinaryOp::Mod if float => format!("({x} - {y} * trunc({x} / {y}))"),
            BinaryOp::Mod if signed => {
                self.helpers.insert("kiln_imod");
                format!("kiln_imod({x}, {y})")
            }
            BinaryOp::Mod => format!("select({x} % {y}, 0u, {y} == 0u)"),
            BinaryOp::Equal => format!("({x} == {y})"),
            BinaryOp::Less => format!("({x} < {y})"),
            BinaryOp::LessEqual => format!("({x} <= {y})"),
            BinaryOp::Greater => format!("({x} > {y})"),
            BinaryOp::GreaterEqual => format!("({x} >= {y})"),
            BinaryOp::And => format!("({x} && {y})"),
            BinaryOp::Or => format!("({x} || {y})"),
            BinaryOp::Xor => format!("({x} != {y})"),
        }
    }

    fn cast(&mut self, x: &str, from: DType, to: DType) -> String {
        let wrap8 = |v: String, to: DType| match to {
            DType::I8 => format!("(({v} << 24u) >> 24u)"),
            DType::U8 => format!("({v} & 255u)"),
            _ => v,
        };
        match (from, to) {
            (f, t) if f == t => x.to_string(),
            (DType::Bool, t) => format!("select({}, {}, {x})", literal(0.0, t), literal(1.0, t)),
            (_, DType::Bool) => format!("({x} != {})", literal(0.0, from)),
            (f, DType::F16) if f.is_float() => {
                self.helpers.insert("kiln_f16");
                format!("kiln_f16({x})")
            }
            (_, DType::F32) | (_, DType::F16) => format!("f32({x})"),
            (f, t) if f.is_float() => match t {
                DType::I32 => {
                    self.helpers.insert("kiln_f2i");
                    format!("kiln_f2i({x}, -2147483648.0f, 2147483520.0f)")
                }
                DType::I8 => {
                    self.helpers.insert("kiln_f2i");
                    format!("kiln_f2i({x}, -128.0f, 127.0f)")
                }
                DType::U32 => {
                    self.helpers.insert("kiln_f2u");
                    format!("kiln_f2u({x}, 4294967040.0f)")
                }
                _ => {
                    self.helpers.insert("kiln_f2u");
                    format!("kiln_f2u({x}, 255.0f)")
                }
            },
            (_, t) => wrap8(format!("{}({x})", reg_ty(t)), t),
        }
    }
}

/// The value of WGSL integer `v` when it is a literal (`3i`, `(-3i)`).
fn constant_int(v: &str) -> Option<i64> {
    let t = v.trim_start_matches('(').trim_end_matches(')');
    t.strip_suffix('i')?.parse().ok()
}

/// A read's index as WGSL, with a constant negative index replaced by 0. Kiln's indices are in
/// range wherever a read executes, so a constant negative one can only sit in a branch whose
/// guard never holds (a concat's other input once the output index folded to a constant), and
/// naga rejects a constant negative index even there.
fn dead_read_index(index: String) -> String {
    let t = index.trim_start_matches('(').trim_end_matches(')');
    let negative_literal = t
        .strip_prefix('-')
        .and_then(|r| r.strip_suffix('i'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if negative_literal {
        "0i".to_string()
    } else {
        index
    }
}

#[cfg(test)]
mod literal_tests {
    use super::*;

    #[test]
    fn integer_literals_are_recognized() {
        assert_eq!(constant_int("3i"), Some(3));
        assert_eq!(constant_int("(-3i)"), Some(-3));
        assert_eq!(constant_int("idx"), None);
        assert_eq!(constant_int("(idx + 1i)"), None);
    }

    #[test]
    fn constant_negative_read_indices_become_zero_and_others_stay() {
        assert_eq!(dead_read_index("(-3i)".into()), "0i");
        assert_eq!(dead_read_index("-12i".into()), "0i");
        for kept in ["0i", "(idx - 3i)", "(-i0)", "-i", "v3", "(-3i + idx)"] {
            assert_eq!(dead_read_index(kept.into()), kept);
        }
    }

    #[test]
    fn f32_literals_never_exceed_the_f32_range() {
        // Tint rejects "3.4028235e38f" (the shortest round-trip form of f32::MAX) as out of range.
        for v in [f32::MAX, f32::MIN, 3.0e38, -1.5, 0.1] {
            let s = literal(v as f64, DType::F32);
            let digits = s.trim_matches(|c| c == '(' || c == ')').trim_end_matches('f');
            let exact: f64 = digits.parse().unwrap();
            assert!(exact.abs() <= f32::MAX as f64, "{s} is outside f32's range");
            assert_eq!(exact as f32, v, "{s} does not round to {v}");
        }
    }
}
