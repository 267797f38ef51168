//! Size expressions: integers over symbolic dims, evaluated by the runtime once input shapes
//! are known.
//!
//! Syntax: integers, dim names (`[A-Za-z_][A-Za-z0-9_.:]*`), `+ - * / %` (floor division and
//! modulo), parentheses and the functions `cdiv(a, b)` (ceiling division), `max(a, b)`,
//! `min(a, b)`. Example: `cdiv(batch*seq*384, 256)`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::fmt;

/// Values of symbolic dims.
pub type Bindings = HashMap<String, i64>;

/// Deepest nesting of parentheses and function calls [`SizeExpr::parse`] accepts. The
/// compiler writes expressions a few levels deep; the limit keeps a hostile manifest from
/// overflowing the stack in the parser or in the recursive `eval`, `Display` and `Drop` of
/// the tree it would build.
pub const MAX_DEPTH: usize = 64;

/// Longest chain of binary operators [`SizeExpr::parse`] accepts in one expression (each
/// operator adds a level to the tree, like a parenthesis).
pub const MAX_OPERATORS: usize = 1024;

/// A parsed size expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SizeExpr {
    /// Integer literal.
    Const(i64),
    /// Symbolic dim.
    Sym(String),
    /// Binary operation.
    Bin(BinOp, Box<SizeExpr>, Box<SizeExpr>),
}

/// Why a size expression could not be parsed or evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeExprError {
    /// A symbol without a value.
    #[error("dim '{0}' has no value")]
    Unbound(String),
    /// A division or modulo by zero.
    #[error("division by zero in '{expr}'")]
    DivisionByZero {
        /// The expression divided.
        expr: String,
    },
    /// 64-bit overflow.
    #[error("'{expr}' overflows 64-bit integers ({lhs} and {rhs})")]
    Overflow {
        /// The overflowing expression.
        expr: String,
        /// Its left operand's value.
        lhs: i64,
        /// Its right operand's value.
        rhs: i64,
    },
    /// A character outside the language.
    #[error("unexpected character '{ch}' in size expression '{src}'")]
    BadChar {
        /// The character.
        ch: char,
        /// The expression text.
        src: String,
    },
    /// A token where another was needed.
    #[error("unexpected '{token}' in size expression '{src}'")]
    Unexpected {
        /// The token.
        token: String,
        /// The expression text.
        src: String,
    },
    /// A missing token.
    #[error("expected '{token}' in size expression '{src}'")]
    Expected {
        /// The token that was needed.
        token: String,
        /// The expression text.
        src: String,
    },
    /// The text ends inside an expression.
    #[error("size expression '{0}' ends early")]
    EndsEarly(String),
    /// More operators than [`MAX_OPERATORS`].
    #[error("size expression has {count} operators, more than the {MAX_OPERATORS} allowed (it starts '{start}')")]
    TooManyOperators {
        /// The number of operators.
        count: usize,
        /// The first characters of the text.
        start: String,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("size expression nests deeper than {MAX_DEPTH} levels (it starts '{0}')")]
    TooDeep(String),
}

/// Operators of [`SizeExpr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// floor(a / b)
    Div,
    /// a mod b (floor)
    Mod,
    /// ceil(a / b)
    CeilDiv,
    /// max(a, b)
    Max,
    /// min(a, b)
    Min,
}

impl SizeExpr {
    /// A literal.
    pub fn c(v: i64) -> SizeExpr {
        SizeExpr::Const(v)
    }

    /// `ceil(self / d)`, folded when both are constants.
    pub fn cdiv(self, d: i64) -> SizeExpr {
        match self {
            SizeExpr::Const(v) => SizeExpr::Const((v + d - 1).div_euclid(d)),
            e => SizeExpr::Bin(BinOp::CeilDiv, Box::new(e), Box::new(SizeExpr::Const(d))),
        }
    }

    /// `self * k`, folded when constant.
    pub fn times(self, k: i64) -> SizeExpr {
        match self {
            SizeExpr::Const(v) => SizeExpr::Const(v * k),
            e if k == 1 => e,
            e => SizeExpr::Bin(BinOp::Mul, Box::new(e), Box::new(SizeExpr::Const(k))),
        }
    }

    /// `max(self, o)`, folded when both are constants or equal.
    pub fn max(self, o: SizeExpr) -> SizeExpr {
        match (self, o) {
            (SizeExpr::Const(a), SizeExpr::Const(b)) => SizeExpr::Const(a.max(b)),
            (a, b) if a == b => a,
            (a, b) => SizeExpr::Bin(BinOp::Max, Box::new(a), Box::new(b)),
        }
    }

    /// The value if the expression has no symbols.
    pub fn as_const(&self) -> Option<i64> {
        self.eval(&Bindings::new()).ok()
    }

    /// Evaluates; the error names an unbound symbol, a division by zero or an overflow of
    /// 64-bit arithmetic.
    pub fn eval(&self, b: &Bindings) -> Result<i64, SizeExprError> {
        Ok(match self {
            SizeExpr::Const(v) => *v,
            SizeExpr::Sym(s) => *b.get(s).ok_or_else(|| SizeExprError::Unbound(s.clone()))?,
            SizeExpr::Bin(op, l, r) => {
                let (l, r) = (l.eval(b)?, r.eval(b)?);
                let v = match op {
                    BinOp::Add => l.checked_add(r),
                    BinOp::Sub => l.checked_sub(r),
                    BinOp::Mul => l.checked_mul(r),
                    BinOp::Div | BinOp::Mod | BinOp::CeilDiv if r == 0 => {
                        return Err(SizeExprError::DivisionByZero { expr: self.to_string() })
                    }
                    BinOp::Div => l.checked_div_euclid(r),
                    BinOp::Mod => l.checked_rem_euclid(r),
                    BinOp::CeilDiv => ceil_div(l, r),
                    BinOp::Max => Some(l.max(r)),
                    BinOp::Min => Some(l.min(r)),
                };
                v.ok_or_else(|| SizeExprError::Overflow {
                    expr: self.to_string(),
                    lhs: l,
                    rhs: r,
                })?
            }
        })
    }

    /// Parses the syntax described in the module docs. Nesting deeper than [`MAX_DEPTH`] or
    /// more than [`MAX_OPERATORS`] operators is an error (never a stack overflow).
    pub fn parse(s: &str) -> Result<SizeExpr, SizeExprError> {
        let toks = tokenize(s)?;
        let operators = toks
            .iter()
            .filter(|t| matches!(t.as_str(), "+" | "-" | "*" | "/" | "%" | ","))
            .count();
        if operators > MAX_OPERATORS {
            return Err(SizeExprError::TooManyOperators {
                count: operators,
                start: preview(s),
            });
        }
        let mut p = Parser {
            toks: &toks,
            pos: 0,
            src: s,
            depth: 0,
        };
        let e = p.sum()?;
        if p.pos != toks.len() {
            return Err(SizeExprError::Unexpected {
                token: toks[p.pos].clone(),
                src: s.to_string(),
            });
        }
        Ok(e)
    }
}

/// `ceil(l / r)` for `r != 0` (floor-based, like `div_euclid` for positive `r`); `None` on
/// overflow.
fn ceil_div(l: i64, r: i64) -> Option<i64> {
    l.checked_add(r)?.checked_sub(1)?.checked_div_euclid(r)
}

/// The first characters of a long expression, for messages.
fn preview(s: &str) -> String {
    let head: String = s.chars().take(40).collect();
    if head.len() < s.len() {
        format!("{head}...")
    } else {
        head
    }
}

impl From<i64> for SizeExpr {
    fn from(v: i64) -> Self {
        SizeExpr::Const(v)
    }
}

fn tokenize(s: &str) -> Result<Vec<String>, SizeExprError> {
    let mut out = Vec::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let st = i;
            while i < cs.len() && cs[i].is_ascii_digit() {
                i += 1;
            }
            out.push(cs[st..i].iter().collect());
        } else if c.is_alphabetic() || c == '_' {
            let st = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || matches!(cs[i], '_' | '.' | ':')) {
                i += 1;
            }
            out.push(cs[st..i].iter().collect());
        } else if "+-*/%(),".contains(c) {
            out.push(c.to_string());
            i += 1;
        } else {
            return Err(SizeExprError::BadChar {
                ch: c,
                src: s.to_string(),
            });
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: &'a [String],
    pos: usize,
    src: &'a str,
    /// Current nesting of parentheses, function calls and unary minus.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.pos).map(String::as_str)
    }

    fn eat(&mut self, t: &str) -> Result<(), SizeExprError> {
        if self.peek() == Some(t) {
            self.pos += 1;
            Ok(())
        } else {
            Err(SizeExprError::Expected {
                token: t.to_string(),
                src: self.src.to_string(),
            })
        }
    }

    fn sum(&mut self) -> Result<SizeExpr, SizeExprError> {
        let mut l = self.product()?;
        while let Some(op) = self.peek().and_then(|t| match t {
            "+" => Some(BinOp::Add),
            "-" => Some(BinOp::Sub),
            _ => None,
        }) {
            self.pos += 1;
            l = SizeExpr::Bin(op, Box::new(l), Box::new(self.product()?));
        }
        Ok(l)
    }

    fn product(&mut self) -> Result<SizeExpr, SizeExprError> {
        let mut l = self.atom()?;
        while let Some(op) = self.peek().and_then(|t| match t {
            "*" => Some(BinOp::Mul),
            "/" => Some(BinOp::Div),
            "%" => Some(BinOp::Mod),
            _ => None,
        }) {
            self.pos += 1;
            l = SizeExpr::Bin(op, Box::new(l), Box::new(self.atom()?));
        }
        Ok(l)
    }

    /// Enters one level of nesting; refuses to go deeper than [`MAX_DEPTH`].
    fn nest(&mut self) -> Result<(), SizeExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SizeExprError::TooDeep(preview(self.src)));
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<SizeExpr, SizeExprError> {
        self.nest()?;
        let e = self.atom_inner();
        self.depth -= 1;
        e
    }

    fn atom_inner(&mut self) -> Result<SizeExpr, SizeExprError> {
        let t = self
            .peek()
            .ok_or_else(|| SizeExprError::EndsEarly(self.src.to_string()))?
            .to_string();
        self.pos += 1;
        if t == "(" {
            let e = self.sum()?;
            self.eat(")")?;
            return Ok(e);
        }
        if t == "-" {
            let e = self.atom()?;
            return Ok(SizeExpr::Bin(BinOp::Sub, Box::new(SizeExpr::Const(0)), Box::new(e)));
        }
        if let Ok(v) = t.parse::<i64>() {
            return Ok(SizeExpr::Const(v));
        }
        let func = match t.as_str() {
            "cdiv" => Some(BinOp::CeilDiv),
            "max" => Some(BinOp::Max),
            "min" => Some(BinOp::Min),
            _ => None,
        };
        if let (Some(op), Some("(")) = (func, self.peek()) {
            self.pos += 1;
            let a = self.sum()?;
            self.eat(",")?;
            let b = self.sum()?;
            self.eat(")")?;
            return Ok(SizeExpr::Bin(op, Box::new(a), Box::new(b)));
        }
        if t.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_') {
            return Ok(SizeExpr::Sym(t));
        }
        Err(SizeExprError::Unexpected {
            token: t,
            src: self.src.to_string(),
        })
    }
}

impl fmt::Display for SizeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeExpr::Const(v) if *v < 0 => write!(f, "(0 - {})", -v),
            SizeExpr::Const(v) => write!(f, "{v}"),
            SizeExpr::Sym(s) => f.write_str(s),
            SizeExpr::Bin(op, l, r) => match op {
                BinOp::CeilDiv => write!(f, "cdiv({l}, {r})"),
                BinOp::Max => write!(f, "max({l}, {r})"),
                BinOp::Min => write!(f, "min({l}, {r})"),
                _ => {
                    let sym = match op {
                        BinOp::Add => "+",
                        BinOp::Sub => "-",
                        BinOp::Mul => "*",
                        BinOp::Div => "/",
                        _ => "%",
                    };
                    write!(f, "({l} {sym} {r})")
                }
            },
        }
    }
}

impl Serialize for SizeExpr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SizeExpr::Const(v) => s.serialize_i64(*v),
            e => s.serialize_str(&e.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for SizeExpr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SizeExpr, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(v) => Ok(SizeExpr::Const(v)),
            Raw::Str(s) => SizeExpr::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_eval_display() {
        let e = SizeExpr::parse("cdiv(batch*seq*384, 256) + max(2, n) - 1").unwrap();
        let b: Bindings = [("batch".into(), 2), ("seq".into(), 3), ("n".into(), 7)]
            .into_iter()
            .collect();
        assert_eq!(e.eval(&b).unwrap(), 9 + 7 - 1);
        let again = SizeExpr::parse(&e.to_string()).unwrap();
        assert_eq!(again.eval(&b).unwrap(), 15);
        assert_eq!(
            e.eval(&Bindings::new()).unwrap_err(),
            SizeExprError::Unbound("batch".into())
        );
        assert!(SizeExpr::parse("2 +").is_err());
        assert!(SizeExpr::parse("a $ b").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}1{}", "(".repeat(30_000), ")".repeat(30_000));
        let err = SizeExpr::parse(&deep).unwrap_err().to_string();
        assert!(err.contains("nests deeper than"), "{err}");
        let minus = format!("{}1", "-".repeat(30_000));
        assert!(SizeExpr::parse(&minus).is_err());
        let calls = format!("{}1{}", "max(1, ".repeat(500), ")".repeat(500));
        assert!(matches!(SizeExpr::parse(&calls), Err(SizeExprError::TooDeep(_))));
        // A long flat chain builds a deep left-leaning tree: bounded by the operator count.
        let chain = vec!["a"; 100_000].join(" + ");
        let err = SizeExpr::parse(&chain).unwrap_err().to_string();
        assert!(err.contains("operators"), "{err}");
        // What the compiler writes still parses.
        let ok = format!("{}n{}", "(".repeat(MAX_DEPTH - 1), ")".repeat(MAX_DEPTH - 1));
        assert_eq!(SizeExpr::parse(&ok).unwrap(), SizeExpr::Sym("n".into()));
    }

    #[test]
    fn overflow_is_an_error() {
        let b: Bindings = [("n".into(), i64::MAX / 2)].into_iter().collect();
        let err = SizeExpr::parse("n * 4").unwrap().eval(&b).unwrap_err().to_string();
        assert!(err.contains("overflows"), "{err}");
        assert!(SizeExpr::parse("cdiv(n, 1) + n + n").unwrap().eval(&b).is_err());
        assert_eq!(
            SizeExpr::parse("cdiv(n, 2)").unwrap().eval(&b).unwrap(),
            i64::MAX / 4 + 1
        );
    }
}
