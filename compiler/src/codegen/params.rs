//! Kernel parameters: dims that are constant become WGSL literals; symbolic ones become i32
//! fields of the kernel's uniform `Params` struct, whose values the runtime computes from the
//! bound symbols (the manifest carries the size expressions).

use kiln_abi::SizeExpr;
use kiln_ir::Dim;
use std::collections::HashMap;

/// The parameters one kernel uses, in field order.
#[derive(Clone, Debug, Default)]
pub struct ParamSet {
    /// Field names.
    pub names: Vec<String>,
    /// Field values as size expressions over symbols.
    pub values: Vec<SizeExpr>,
    by_dim: HashMap<Dim, usize>,
    /// Fields given up front ([`ParamSet::seeded`]): a dim whose value is one of theirs takes
    /// that field.
    seeded: usize,
}

impl ParamSet {
    /// A set that starts with another kernel's fields (names and values, in order): a variant
    /// rendered with it declares the same `Params` struct, so it binds that kernel's values,
    /// as long as every dim it adds is one of them.
    pub fn seeded(names: &[String], values: &[SizeExpr]) -> ParamSet {
        ParamSet {
            names: names.to_vec(),
            values: values.to_vec(),
            by_dim: HashMap::new(),
            seeded: values.len(),
        }
    }

    /// A WGSL i32 expression for `d`: a literal when constant, else a `params.` field (shared by
    /// equal dims). `hint` names the field.
    pub fn dim(&mut self, d: &Dim, hint: &str) -> String {
        if let Some(v) = d.as_const() {
            return i32_literal(v);
        }
        if !self.by_dim.contains_key(d) {
            let e = dim_expr(d);
            if let Some(i) = self.values[..self.seeded].iter().position(|v| *v == e) {
                self.by_dim.insert(d.clone(), i);
            }
        }
        let idx = *self.by_dim.entry(d.clone()).or_insert_with(|| {
            self.names.push(format!("{hint}_{}", self.names.len()));
            self.values.push(dim_expr(d));
            self.names.len() - 1
        });
        format!("params.{}", self.names[idx])
    }

    /// Like [`ParamSet::dim`] for a dim used as a divisor in index decomposition: a constant 0
    /// (an empty tensor, whose kernel never runs an element) renders as 1, since WGSL rejects a
    /// constant division by zero.
    pub fn divisor(&mut self, d: &Dim, hint: &str) -> String {
        match d.as_const() {
            Some(0) => i32_literal(1),
            _ => self.dim(d, hint),
        }
    }

    /// The `struct Params` declaration (at least one field: WGSL structs cannot be empty).
    pub fn struct_decl(&self) -> String {
        let mut s = String::from("struct Params {\n");
        if self.names.is_empty() {
            s.push_str("    unused: i32,\n");
        }
        for n in &self.names {
            s.push_str(&format!("    {n}: i32,\n"));
        }
        s.push('}');
        s
    }

    /// Field names as the manifest lists them (`unused` when there are none).
    pub fn manifest_names(&self) -> Vec<String> {
        if self.names.is_empty() {
            vec!["unused".into()]
        } else {
            self.names.clone()
        }
    }

    /// Field values as the manifest lists them.
    pub fn manifest_values(&self) -> Vec<SizeExpr> {
        if self.values.is_empty() {
            vec![SizeExpr::c(0)]
        } else {
            self.values.clone()
        }
    }
}

/// An i32 literal (parenthesized when negative; i32::MIN spelled so WGSL accepts it).
pub fn i32_literal(v: i64) -> String {
    if v == i32::MIN as i64 {
        "(-2147483647i - 1i)".into()
    } else if v < 0 {
        format!("({v}i)")
    } else {
        format!("{v}i")
    }
}

/// Converts a symbolic dim to the manifest's size-expression language.
pub fn dim_expr(d: &Dim) -> SizeExpr {
    SizeExpr::parse(&d.to_string()).expect("dim display form is a valid size expression")
}
