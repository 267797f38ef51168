//! Symbolic dimensions.
//!
//! A [`Dim`] is a polynomial with integer coefficients over *atoms*: named symbols (`batch`,
//! `seq`, ...) and floor quotients `floor(P / d)` of another dim `P` by a positive constant `d`
//! (what the output size of a strided convolution, a pooling window or a resize is). Keeping it
//! in canonical form makes `batch*4*8 == 32*batch` and `ceil(ceil(h / 2) / 2) == ceil(h / 4)`
//! decidable, which broadcasting and reshape inference need.
//!
//! Canonical form of `floor(P / d)`: terms of `P` whose coefficient `d` divides move out of the
//! quotient, the constant left inside is reduced to `0..d`, and a quotient of a quotient becomes
//! one quotient (`floor(floor(x / a) / b) = floor(x / (a * b))` for positive `a`, `b`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Values for named symbolic dims.
pub type DimBindings = HashMap<String, i64>;

/// Deepest nesting of parentheses [`parse_dim`] accepts (the display form of a dim nests a
/// level per floor quotient; real models need a few).
pub const MAX_PARSE_DEPTH: usize = 64;

/// A dim names a symbol that has no value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("dim '{symbol}' has no value")]
pub struct UnboundDim {
    /// The symbol.
    pub symbol: String,
}

/// Text that is not a dim expression ([`parse_dim`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad dim expression '{text}' ({why})")]
pub struct DimParseError {
    /// The text.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

/// A factor of a monomial.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Atom {
    /// A named symbolic dim.
    Sym(String),
    /// `floor(P / d)` with `d >= 2` and `P` in canonical form (not constant, not divisible).
    Floor(Box<Dim>, i64),
}

/// A symbolic dimension: a sum of `coefficient * product(atoms)` terms in canonical form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Dim {
    /// Monomial (sorted atoms, repeated for powers) -> non-zero coefficient.
    terms: BTreeMap<Vec<Atom>, i64>,
}

impl Dim {
    /// A constant dim.
    pub fn c(v: i64) -> Dim {
        let mut terms = BTreeMap::new();
        if v != 0 {
            terms.insert(Vec::new(), v);
        }
        Dim { terms }
    }

    /// A named symbolic dim.
    pub fn sym(name: &str) -> Dim {
        Dim::atom(Atom::Sym(name.to_string()))
    }

    fn atom(a: Atom) -> Dim {
        let mut terms = BTreeMap::new();
        terms.insert(vec![a], 1);
        Dim { terms }
    }

    /// The value if the dim has no symbols.
    pub fn as_const(&self) -> Option<i64> {
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&Vec::new()).copied(),
            _ => None,
        }
    }

    /// True if the dim mentions no symbol.
    pub fn is_const(&self) -> bool {
        self.as_const().is_some()
    }

    /// The symbols this dim mentions (inside quotients too), sorted and without repeats.
    pub fn symbols(&self) -> Vec<String> {
        let mut s = Vec::new();
        self.collect_symbols(&mut s);
        s.sort();
        s.dedup();
        s
    }

    fn collect_symbols(&self, out: &mut Vec<String>) {
        for a in self.terms.keys().flatten() {
            match a {
                Atom::Sym(name) => out.push(name.clone()),
                Atom::Floor(p, _) => p.collect_symbols(out),
            }
        }
    }

    /// True if the dim contains a floor quotient (so it is not a plain polynomial).
    pub fn has_quotient(&self) -> bool {
        self.terms.keys().flatten().any(|a| matches!(a, Atom::Floor(..)))
    }

    /// Evaluates with the given bindings; the error names a symbol without a value. Arithmetic
    /// wraps on overflow (callers check sizes against limits far below `i64::MAX`).
    pub fn eval(&self, b: &DimBindings) -> Result<i64, UnboundDim> {
        let mut total = 0i64;
        for (mono, coef) in &self.terms {
            let mut v = *coef;
            for a in mono {
                let x = match a {
                    Atom::Sym(s) => *b.get(s).ok_or_else(|| UnboundDim { symbol: s.clone() })?,
                    Atom::Floor(p, d) => p.eval(b)?.div_euclid(*d),
                };
                v = v.wrapping_mul(x);
            }
            total = total.wrapping_add(v);
        }
        Ok(total)
    }

    /// Replaces bound symbols by their values.
    pub fn substitute(&self, b: &DimBindings) -> Dim {
        let mut out = Dim::c(0);
        for (mono, coef) in &self.terms {
            let mut term = Dim::c(*coef);
            for a in mono {
                let f = match a {
                    Atom::Sym(s) => b.get(s).map(|v| Dim::c(*v)).unwrap_or_else(|| Dim::sym(s)),
                    Atom::Floor(p, d) => p.substitute(b).floor_div(*d).expect("stored divisors are positive"),
                };
                term = term.mul(&f);
            }
            out = out.add(&term);
        }
        out
    }

    /// Sum.
    pub fn add(&self, o: &Dim) -> Dim {
        let mut terms = self.terms.clone();
        for (m, c) in &o.terms {
            let e = terms.entry(m.clone()).or_insert(0);
            *e = e.wrapping_add(*c);
            if *e == 0 {
                terms.remove(m);
            }
        }
        Dim { terms }
    }

    /// Difference.
    pub fn sub(&self, o: &Dim) -> Dim {
        self.add(&o.mul(&Dim::c(-1)))
    }

    /// Product.
    pub fn mul(&self, o: &Dim) -> Dim {
        let mut out = Dim::c(0);
        for (m1, c1) in &self.terms {
            for (m2, c2) in &o.terms {
                let mut m: Vec<Atom> = m1.iter().chain(m2.iter()).cloned().collect();
                m.sort();
                out = out.add(&Dim {
                    terms: BTreeMap::from([(m, c1.wrapping_mul(*c2))]),
                });
            }
        }
        out
    }

    /// `floor(self / d)` in canonical form; `None` unless `d > 0`.
    pub fn floor_div(&self, d: i64) -> Option<Dim> {
        if d <= 0 {
            return None;
        }
        if d == 1 {
            return Some(self.clone());
        }
        // Terms whose coefficient d divides leave the quotient; so do multiples of d in the
        // constant, which is left in 0..d.
        let mut whole = Dim::c(0);
        let mut rest = BTreeMap::new();
        for (m, c) in &self.terms {
            if m.is_empty() {
                whole = whole.add(&Dim::c(c.div_euclid(d)));
                if c.rem_euclid(d) != 0 {
                    rest.insert(Vec::new(), c.rem_euclid(d));
                }
            } else if c % d == 0 {
                whole = whole.add(&Dim {
                    terms: BTreeMap::from([(m.clone(), c / d)]),
                });
            } else {
                rest.insert(m.clone(), *c);
            }
        }
        let rest = Dim { terms: rest };
        if rest.is_const() {
            // 0 <= constant < d: its quotient is 0.
            return Some(whole);
        }
        // floor((floor(p / e) + c) / d) = floor((p + c*e) / (e*d)).
        let konst = rest.terms.get(&Vec::new()).copied().unwrap_or(0);
        let non_const: Vec<_> = rest.terms.iter().filter(|(m, _)| !m.is_empty()).collect();
        if let [(m, 1)] = non_const.as_slice() {
            if let [Atom::Floor(p, e)] = m.as_slice() {
                if let (Some(ce), Some(ed)) = (konst.checked_mul(*e), e.checked_mul(d)) {
                    let inner = p.add(&Dim::c(ce)).floor_div(ed)?;
                    return Some(whole.add(&inner));
                }
            }
        }
        Some(whole.add(&Dim::atom(Atom::Floor(Box::new(rest), d))))
    }

    /// `ceil(self / d)` in canonical form (`floor((self + d - 1) / d)`); `None` unless `d > 0`.
    pub fn ceil_div(&self, d: i64) -> Option<Dim> {
        if d <= 0 {
            return None;
        }
        self.add(&Dim::c(d - 1)).floor_div(d)
    }

    /// Exact division: by a monomial divisor (`c * symbols`) any exact quotient; by a sum
    /// (`64 * (past + 1) / (past + 1)`) a monomial quotient. `None` if not exact.
    pub fn exact_div(&self, d: &Dim) -> Option<Dim> {
        if d.terms.len() != 1 {
            if self == d {
                return Some(Dim::c(1));
            }
            // A monomial quotient q maps d's first term to one of self's: try each and check.
            let one = |m: &Vec<Atom>, c: i64| Dim {
                terms: BTreeMap::from([(m.clone(), c)]),
            };
            let (dm, dc) = d.terms.iter().next()?;
            return self.terms.iter().find_map(|(m, c)| {
                let q = one(m, *c).exact_div(&one(dm, *dc))?;
                (q.terms.len() == 1 && d.mul(&q) == *self).then_some(q)
            });
        }
        let (dm, dc) = d.terms.iter().next()?;
        let mut out = BTreeMap::new();
        for (m, c) in &self.terms {
            if c % dc != 0 {
                return None;
            }
            let mut rest = m.clone();
            for s in dm {
                let pos = rest.iter().position(|x| x == s)?;
                rest.remove(pos);
            }
            out.insert(rest, c / dc);
        }
        Some(Dim { terms: out })
    }

    /// Product of a list of dims.
    pub fn product<'a>(dims: impl IntoIterator<Item = &'a Dim>) -> Dim {
        dims.into_iter().fold(Dim::c(1), |acc, d| acc.mul(d))
    }
}

impl From<i64> for Dim {
    fn from(v: i64) -> Dim {
        Dim::c(v)
    }
}

impl From<usize> for Dim {
    fn from(v: usize) -> Dim {
        Dim::c(v as i64)
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Sym(s) => f.write_str(s),
            Atom::Floor(p, d) => write!(f, "(({p}) / {d})"),
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("0");
        }
        // Highest-degree terms first reads naturally: "4*batch + 2".
        let mut terms: Vec<_> = self.terms.iter().collect();
        terms.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
        for (i, (mono, coef)) in terms.into_iter().enumerate() {
            let (sign, mag) = if *coef < 0 {
                ("-", coef.unsigned_abs())
            } else {
                ("+", *coef as u64)
            };
            if i == 0 {
                if sign == "-" {
                    f.write_str("-")?;
                }
            } else {
                write!(f, " {sign} ")?;
            }
            let mut parts: Vec<String> = Vec::new();
            if mag != 1 || mono.is_empty() {
                parts.push(mag.to_string());
            }
            parts.extend(mono.iter().map(Atom::to_string));
            f.write_str(&parts.join("*"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl Serialize for Dim {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Dim {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dim, D::Error> {
        let s = String::deserialize(d)?;
        parse_dim(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses the [`fmt::Display`] form: sums and differences of products of integers, names and
/// parenthesized dims, where `/` (floor division) takes a positive integer divisor. Nesting
/// deeper than [`MAX_PARSE_DEPTH`] is an error, never a stack overflow.
pub fn parse_dim(s: &str) -> Result<Dim, DimParseError> {
    let toks = dim_tokens(s)?;
    let mut p = DimParser {
        toks: &toks,
        pos: 0,
        src: s,
        depth: 0,
    };
    let d = p.sum()?;
    match toks.get(p.pos) {
        None => Ok(d),
        Some(t) => Err(DimParseError {
            text: s.to_string(),
            why: format!("unexpected '{t}'"),
        }),
    }
}

fn dim_tokens(s: &str) -> Result<Vec<String>, DimParseError> {
    let mut out = Vec::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || matches!(c, '_' | '.' | ':') {
            let st = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || matches!(cs[i], '_' | '.' | ':')) {
                i += 1;
            }
            out.push(cs[st..i].iter().collect());
        } else if "+-*/()".contains(c) {
            out.push(c.to_string());
            i += 1;
        } else {
            return Err(DimParseError {
                text: s.to_string(),
                why: format!("at '{c}'"),
            });
        }
    }
    Ok(out)
}

struct DimParser<'a> {
    toks: &'a [String],
    pos: usize,
    src: &'a str,
    depth: usize,
}

impl DimParser<'_> {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.pos).map(String::as_str)
    }

    fn bad(&self, what: &str) -> DimParseError {
        DimParseError {
            text: self.src.to_string(),
            why: what.to_string(),
        }
    }

    fn sum(&mut self) -> Result<Dim, DimParseError> {
        let mut d = self.product()?;
        while let Some(op) = self.peek().filter(|t| *t == "+" || *t == "-") {
            let neg = op == "-";
            self.pos += 1;
            let r = self.product()?;
            d = if neg { d.sub(&r) } else { d.add(&r) };
        }
        Ok(d)
    }

    fn product(&mut self) -> Result<Dim, DimParseError> {
        let mut d = self.factor()?;
        while let Some(op) = self.peek().filter(|t| *t == "*" || *t == "/") {
            let div = op == "/";
            self.pos += 1;
            let r = self.factor()?;
            d = if div {
                let k = r
                    .as_const()
                    .filter(|&k| k > 0)
                    .ok_or_else(|| self.bad("divisor must be a positive integer"))?;
                d.floor_div(k)
                    .ok_or_else(|| self.bad("divisor must be a positive integer"))?
            } else {
                d.mul(&r)
            };
        }
        Ok(d)
    }

    fn factor(&mut self) -> Result<Dim, DimParseError> {
        self.depth += 1;
        if self.depth > MAX_PARSE_DEPTH {
            return Err(self.bad(&format!("nests deeper than {MAX_PARSE_DEPTH} levels")));
        }
        let r = self.factor_inner();
        self.depth -= 1;
        r
    }

    fn factor_inner(&mut self) -> Result<Dim, DimParseError> {
        let t = self.peek().ok_or_else(|| self.bad("ends early"))?.to_string();
        self.pos += 1;
        match t.as_str() {
            "(" => {
                let d = self.sum()?;
                if self.peek() != Some(")") {
                    return Err(self.bad("missing ')'"));
                }
                self.pos += 1;
                Ok(d)
            }
            "-" => Ok(self.factor()?.mul(&Dim::c(-1))),
            _ if t.chars().all(|c| c.is_ascii_digit()) => t
                .parse::<i64>()
                .map(Dim::c)
                .map_err(|_| self.bad(&format!("'{t}' does not fit 64 bits"))),
            _ if t.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_') => Ok(Dim::sym(&t)),
            _ => Err(self.bad(&format!("at '{t}'"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_products_compare_equal() {
        let a = Dim::sym("batch").mul(&Dim::c(4)).mul(&Dim::c(8));
        let b = Dim::c(32).mul(&Dim::sym("batch"));
        assert_eq!(a, b);
        assert_eq!(a.exact_div(&Dim::c(8)).unwrap(), Dim::sym("batch").mul(&Dim::c(4)));
        assert!(a.exact_div(&Dim::c(3)).is_none());
    }

    /// A KV cache's key count `past + 1` divides the strides built from it (so index
    /// coordinates over it simplify), and only where the quotient is exact.
    #[test]
    fn sums_divide_their_multiples() {
        let keys = Dim::sym("past").add(&Dim::c(1));
        let heads = Dim::sym("heads");
        assert_eq!(keys.mul(&Dim::c(64)).exact_div(&keys), Some(Dim::c(64)));
        assert_eq!(
            keys.mul(&heads).mul(&Dim::c(64)).exact_div(&keys),
            Some(heads.mul(&Dim::c(64)))
        );
        assert_eq!(keys.exact_div(&keys), Some(Dim::c(1)));
        assert!(keys.mul(&Dim::c(64)).add(&Dim::c(1)).exact_div(&keys).is_none());
        assert!(Dim::sym("past").mul(&Dim::c(64)).exact_div(&keys).is_none());
        assert!(
            keys.mul(&keys).exact_div(&keys).is_none(),
            "the quotient is not a monomial"
        );
    }

    #[test]
    fn display_parse_round_trip() {
        let d = Dim::sym("seq").mul(&Dim::sym("batch")).mul(&Dim::c(3)).add(&Dim::c(-2));
        let s = d.to_string();
        assert_eq!(s, "3*batch*seq - 2");
        assert_eq!(parse_dim(&s).unwrap(), d);
        let mut b = DimBindings::new();
        b.insert("batch".into(), 2);
        b.insert("seq".into(), 5);
        assert_eq!(d.eval(&b).unwrap(), 28);
    }

    fn h() -> Dim {
        Dim::sym("h")
    }

    #[test]
    fn floor_quotients_are_canonical() {
        // A stride-2, kernel-3, pad-1 convolution: floor((h + 2 - 3) / 2) + 1 = floor((h + 1) / 2).
        let once = h().add(&Dim::c(-1)).floor_div(2).unwrap().add(&Dim::c(1));
        assert_eq!(once, h().ceil_div(2).unwrap());
        // Twice is the ceiling of h / 4.
        let twice = once.add(&Dim::c(-1)).floor_div(2).unwrap().add(&Dim::c(1));
        assert_eq!(twice, h().ceil_div(4).unwrap());
        // Divisible terms leave the quotient; constants reduce.
        assert_eq!(
            h().mul(&Dim::c(4)).add(&Dim::c(6)).floor_div(2).unwrap(),
            h().mul(&Dim::c(2)).add(&Dim::c(3))
        );
        assert_eq!(h().mul(&Dim::c(2)).add(&Dim::c(1)).floor_div(2).unwrap(), h());
        assert_eq!(Dim::c(-7).floor_div(2).unwrap(), Dim::c(-4));
        assert!(h().floor_div(0).is_none());
        assert_ne!(h().ceil_div(2).unwrap().mul(&Dim::c(2)), h());
    }

    #[test]
    fn floor_quotients_evaluate_display_parse_and_substitute() {
        let d = h()
            .add(&Dim::c(-1))
            .floor_div(2)
            .unwrap()
            .mul(&Dim::sym("w").ceil_div(4).unwrap());
        let s = d.to_string();
        let back = parse_dim(&s).unwrap();
        assert_eq!(back, d, "{s}");
        for hv in [1i64, 2, 7, 640, 641] {
            for wv in [1i64, 5, 960] {
                let b: DimBindings = [("h".to_string(), hv), ("w".to_string(), wv)].into_iter().collect();
                let want = (hv - 1).div_euclid(2) * (wv + 3).div_euclid(4);
                assert_eq!(d.eval(&b).unwrap(), want);
                assert_eq!(d.substitute(&b), Dim::c(want));
            }
        }
        assert_eq!(d.symbols(), vec!["h".to_string(), "w".to_string()]);
        assert!(d.has_quotient());
        // Partial substitution keeps the rest symbolic.
        let b: DimBindings = [("h".to_string(), 9)].into_iter().collect();
        assert_eq!(d.substitute(&b), Dim::sym("w").ceil_div(4).unwrap().mul(&Dim::c(4)));
    }

    #[test]
    fn bad_dim_text_is_an_error() {
        for s in ["h / 0", "h / w", "(h", "h $ 2", "h / -2", "99999999999999999999"] {
            assert!(parse_dim(s).is_err(), "{s}");
        }
        let deep = format!("{}h{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse_dim(&deep).unwrap_err().why.contains("deeper"));
        assert_eq!(parse_dim("2*h - 3").unwrap(), h().mul(&Dim::c(2)).add(&Dim::c(-3)));
    }
}
