//! Symbolic dimensions.
//!
//! A [`Dim`] is a polynomial with integer coefficients over named symbols (`batch`, `seq`, ...).
//! Keeping it in canonical form makes `batch*4*8 == 32*batch` decidable, which broadcasting and
//! reshape inference need. Division is allowed only where it is exact.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Values for named symbolic dims.
pub type DimBindings = HashMap<String, i64>;

/// A symbolic dimension: a sum of `coefficient * product(symbols)` terms in canonical form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Dim {
    /// Monomial (sorted symbol names, repeated for powers) -> non-zero coefficient.
    terms: BTreeMap<Vec<String>, i64>,
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
        let mut terms = BTreeMap::new();
        terms.insert(vec![name.to_string()], 1);
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

    /// The symbols this dim mentions, sorted and without repeats.
    pub fn symbols(&self) -> Vec<String> {
        let mut s: Vec<String> = self.terms.keys().flatten().cloned().collect();
        s.sort();
        s.dedup();
        s
    }

    /// Evaluates with the given bindings; `None` names a symbol without a value.
    pub fn eval(&self, b: &DimBindings) -> Result<i64, String> {
        let mut total = 0i64;
        for (mono, coef) in &self.terms {
            let mut v = *coef;
            for s in mono {
                v *= *b.get(s).ok_or_else(|| s.clone())?;
            }
            total += v;
        }
        Ok(total)
    }

    /// Replaces bound symbols by their values.
    pub fn substitute(&self, b: &DimBindings) -> Dim {
        let mut out = Dim::c(0);
        for (mono, coef) in &self.terms {
            let mut term = Dim::c(*coef);
            for s in mono {
                term = term.mul(&b.get(s).map(|v| Dim::c(*v)).unwrap_or_else(|| Dim::sym(s)));
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
            *e += c;
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
                let mut m: Vec<String> = m1.iter().chain(m2.iter()).cloned().collect();
                m.sort();
                out = out.add(&Dim {
                    terms: BTreeMap::from([(m, c1 * c2)]),
                });
            }
        }
        out
    }

    /// Exact division by a monomial divisor (`c * symbols`); `None` if not exact.
    pub fn exact_div(&self, d: &Dim) -> Option<Dim> {
        if d.terms.len() != 1 {
            return if self == d { Some(Dim::c(1)) } else { None };
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

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("0");
        }
        // Highest-degree terms first reads naturally: "4*batch + 2".
        let mut terms: Vec<_> = self.terms.iter().collect();
        terms.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
        for (i, (mono, coef)) in terms.into_iter().enumerate() {
            let (sign, mag) = if *coef < 0 { ("-", -coef) } else { ("+", *coef) };
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
            parts.extend(mono.iter().cloned());
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

/// Parses the [`fmt::Display`] form: `+`/`-` separated terms of `*`-joined integers and names.
pub fn parse_dim(s: &str) -> Result<Dim, String> {
    let mut out = Dim::c(0);
    let normalized = s.replace('-', "+-");
    for term in normalized.split('+').map(str::trim).filter(|t| !t.is_empty()) {
        let (neg, body) = match term.strip_prefix('-') {
            Some(b) => (true, b.trim()),
            None => (false, term),
        };
        let mut t = Dim::c(if neg { -1 } else { 1 });
        for factor in body.split('*').map(str::trim) {
            let f = if let Ok(v) = factor.parse::<i64>() {
                Dim::c(v)
            } else if !factor.is_empty()
                && factor
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == ':')
            {
                Dim::sym(factor)
            } else {
                return Err(format!("bad dim expression '{s}' (at '{factor}')"));
            };
            t = t.mul(&f);
        }
        out = out.add(&t);
    }
    Ok(out)
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
}
