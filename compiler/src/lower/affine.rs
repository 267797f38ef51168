//! Algebraic simplification of fused index expressions.
//!
//! Fusing data movement substitutes one op's linear index into the next op's coordinate
//! decomposition, so a transposed, reshaped, sliced operand reads through `(l / s) % d` of a
//! sum of `(l / s') % d'` terms: integer divisions on every element although the layouts line
//! up. [`coord_of`] builds the coordinate `(index / stride) % dim` and, when `index` is an
//! affine sum of terms with known ranges that splits cleanly at `stride` (every term's
//! multiplier is a multiple of `stride`, or the terms below it sum to less than `stride`), it
//! returns the sum of the high terms' quotients instead: a reshape of a contiguous tensor
//! becomes the identity on the linear index and a transpose keeps its inner runs contiguous.
//! Every rewrite is exact for non-negative terms, which coordinates of in-range elements are;
//! a sum that does not split cleanly keeps its division.

use super::Expr;
use kiln_ir::{BinaryOp, DType, Dim};

/// One term of an affine index: `expr * mult`, with `expr` in `0..extent` when the extent is
/// known.
#[derive(Clone, Debug)]
struct Term {
    expr: Expr,
    mult: Dim,
    extent: Option<Dim>,
}

/// `(index / stride) % dim` (no modulo when `dim` is `None`), simplified where the index's
/// affine terms allow.
pub fn coord_of(index: Expr, stride: Dim, dim: Option<Dim>) -> Expr {
    simplify(&index, &stride, dim.as_ref()).unwrap_or(Expr::CoordOf {
        index: Box::new(index),
        stride,
        dim,
    })
}

fn simplify(index: &Expr, stride: &Dim, dim: Option<&Dim>) -> Option<Expr> {
    let mut terms = Vec::new();
    split(index, &Dim::c(1), &mut terms);
    simplify_terms(terms.clone(), stride, dim).or_else(|| factored(&terms, stride, dim))
}

/// `index / stride` where the stride is `g * s` for a term multiplier `g`: if the terms that
/// are not multiples of `g` stay below `g` (the index is `g * h + l`, `0 <= l < g`), the
/// quotient is `h / s` (non-negative terms, floor division). A batch-of-heads coordinate `b`
/// read as `(b * sq * sk + row * sk + key) / (heads * sq * sk)` becomes `b / heads`: the same
/// for every score of a workgroup instead of a division per score.
fn factored(terms: &[Term], stride: &Dim, dim: Option<&Dim>) -> Option<Expr> {
    terms.iter().find_map(|g| {
        let g = &g.mult;
        let s = stride.exact_div(g)?;
        if *g == Dim::c(1) || s == Dim::c(1) {
            return None;
        }
        let mut high = Vec::new();
        let mut low_max = Dim::c(0);
        for t in terms {
            match t.mult.exact_div(g) {
                Some(q) => high.push(Term {
                    mult: q,
                    expr: t.expr.clone(),
                    extent: t.extent.clone(),
                }),
                None => low_max = low_max.add(&max_value(t)?),
            }
        }
        below(&low_max, g).then(|| coord_of(rebuild(high), s, dim.cloned()))
    })
}

/// [`simplify`] over an index's affine terms.
fn simplify_terms(terms: Vec<Term>, stride: &Dim, dim: Option<&Dim>) -> Option<Expr> {
    // index / stride: high terms contribute their quotient; the low ones must stay below it.
    let mut high = Vec::new();
    let mut low_max = Dim::c(0);
    for t in terms {
        match t.mult.exact_div(stride) {
            Some(q) => high.push(Term { mult: q, ..t }),
            None => low_max = low_max.add(&max_value(&t)?),
        }
    }
    if !below(&low_max, stride) {
        return None;
    }
    // ... % dim: terms whose quotient is a multiple of dim vanish; the rest must stay below it.
    if let Some(d) = dim {
        high.retain(|t| t.mult.exact_div(d).is_none());
        let mut max = Dim::c(0);
        for t in &high {
            max = max.add(&max_value(t)?);
        }
        if !below(&max, d) {
            // The division is gone; the modulo stays.
            return Some(Expr::CoordOf {
                index: Box::new(rebuild(high)),
                stride: Dim::c(1),
                dim: Some(d.clone()),
            });
        }
    }
    Some(rebuild(high))
}

/// Whether `index` (an expression of the linear index [`Expr::Index`]) maps every aligned run
/// `4q, 4q+1, 4q+2, 4q+3` to an aligned run of 4 consecutive elements: one term is the index
/// itself or its innermost coordinate `index % d` with `4 | d`, unscaled, and every other term
/// is a multiple of 4 that is constant over the run (a constant, or a coordinate
/// `(index / s) % d` with `4 | s`). An operand read through such an index may be loaded as
/// vec4s at `index / 4`.
pub fn runs_of_four(index: &Expr) -> bool {
    let mut terms = Vec::new();
    split(index, &Dim::c(1), &mut terms);
    let by4 = |d: &Dim| d.exact_div(&Dim::c(4)).is_some();
    let mut fine = 0;
    for t in &terms {
        let unit = t.mult == Dim::c(1);
        match &t.expr {
            Expr::Index if unit => fine += 1,
            Expr::CoordOf { index, stride, dim } if **index == Expr::Index => {
                if unit && *stride == Dim::c(1) && dim.as_ref().is_some_and(by4) {
                    fine += 1;
                } else if !(by4(stride) && by4(&t.mult)) {
                    return false;
                }
            }
            Expr::Lit(..) if by4(&t.mult) => {}
            _ => return false,
        }
    }
    fine == 1
}

/// Largest value of a term (`(extent - 1) * mult`), if its range is known.
fn max_value(t: &Term) -> Option<Dim> {
    Some(t.extent.as_ref()?.sub(&Dim::c(1)).mul(&t.mult))
}

/// Whether `x < bound` for every value of the symbols: decided only where the difference is
/// a constant (layouts that line up cancel their symbolic parts exactly).
fn below(x: &Dim, bound: &Dim) -> bool {
    bound.sub(x).as_const().is_some_and(|v| v >= 1)
}

/// Splits an i32 index expression into affine terms, each multiplied by `mult`.
fn split(e: &Expr, mult: &Dim, out: &mut Vec<Term>) {
    match e {
        Expr::Binary(BinaryOp::Add, x, y, DType::I32) => {
            split(x, mult, out);
            split(y, mult, out);
        }
        Expr::Binary(BinaryOp::Mul, x, y, DType::I32) => match (factor(x), factor(y)) {
            (_, Some(f)) => split(x, &mult.mul(&f), out),
            (Some(f), _) => split(y, &mult.mul(&f), out),
            _ => out.push(opaque(e, mult)),
        },
        Expr::Lit(v, DType::I32) if *v == 0.0 => {}
        Expr::Lit(..) | Expr::Dim(_) if factor(e).is_some() => out.push(Term {
            expr: Expr::Lit(1.0, DType::I32),
            mult: mult.mul(&factor(e).expect("checked")),
            extent: Some(Dim::c(2)),
        }),
        Expr::CoordOf { dim: Some(d), .. } => out.push(Term {
            expr: e.clone(),
            mult: mult.clone(),
            extent: Some(d.clone()),
        }),
        _ => out.push(opaque(e, mult)),
    }
}

/// A term whose range is unknown.
fn opaque(e: &Expr, mult: &Dim) -> Term {
    Term {
        expr: e.clone(),
        mult: mult.clone(),
        extent: None,
    }
}

/// The value of a constant factor (an i32 literal or a dim).
fn factor(e: &Expr) -> Option<Dim> {
    match e {
        Expr::Lit(v, DType::I32) if v.fract() == 0.0 && *v >= 0.0 => Some(Dim::c(*v as i64)),
        Expr::Dim(d) => Some(d.clone()),
        _ => None,
    }
}

/// `sum(expr * mult)`, written as the fusion code writes sums and products.
fn rebuild(terms: Vec<Term>) -> Expr {
    let mut out: Option<Expr> = None;
    for t in terms {
        let e = match (&t.expr, t.mult.as_const()) {
            (_, Some(0)) => continue,
            (Expr::Lit(v, DType::I32), _) if *v == 1.0 => match t.mult.as_const() {
                Some(c) => Expr::Lit(c as f64, DType::I32),
                None => Expr::Dim(t.mult),
            },
            (_, Some(1)) => t.expr,
            _ => Expr::Binary(BinaryOp::Mul, Box::new(t.expr), Box::new(Expr::Dim(t.mult)), DType::I32),
        };
        out = Some(match out {
            None => e,
            Some(acc) => Expr::Binary(BinaryOp::Add, Box::new(acc), Box::new(e), DType::I32),
        });
    }
    out.unwrap_or(Expr::Lit(0.0, DType::I32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(l: &Expr, stride: i64, dim: Option<i64>) -> Expr {
        Expr::CoordOf {
            index: Box::new(l.clone()),
            stride: Dim::c(stride),
            dim: dim.map(Dim::c),
        }
    }

    fn mul(e: Expr, d: Dim) -> Expr {
        Expr::Binary(BinaryOp::Mul, Box::new(e), Box::new(Expr::Dim(d)), DType::I32)
    }

    fn add(a: Expr, b: Expr) -> Expr {
        Expr::Binary(BinaryOp::Add, Box::new(a), Box::new(b), DType::I32)
    }

    /// Evaluates an i32 index expression over `l` with truncating division, as WGSL does.
    fn eval(e: &Expr, l: i64, seq: i64) -> i64 {
        let dim = |d: &Dim| d.eval(&[("seq".to_string(), seq)].into_iter().collect()).unwrap();
        match e {
            Expr::Index => l,
            Expr::Lit(v, _) => *v as i64,
            Expr::Dim(d) => dim(d),
            Expr::Binary(BinaryOp::Add, x, y, _) => eval(x, l, seq) + eval(y, l, seq),
            Expr::Binary(BinaryOp::Mul, x, y, _) => eval(x, l, seq) * eval(y, l, seq),
            Expr::CoordOf { index, stride, dim: d } => {
                let q = eval(index, l, seq) / dim(stride);
                d.as_ref().map_or(q, |d| q % dim(d))
            }
            e => panic!("unexpected {e:?}"),
        }
    }

    fn divisions(e: &Expr) -> usize {
        match e {
            Expr::CoordOf { index, .. } => 1 + divisions(index),
            Expr::Binary(_, x, y, _) => divisions(x) + divisions(y),
            _ => 0,
        }
    }

    /// The batch of a BERT attention mask read at a score's coordinates: `(b * sq * sk + row *
    /// sk + key) / (heads * sq * sk)` over `b` in `0..batch * heads` is `b / heads`, one
    /// division of a coordinate instead of one of the whole index; checked by value, also where
    /// the low terms reach the factor (no simplification then).
    #[test]
    fn a_quotient_by_a_multiple_of_a_term_factors_out() {
        let (bh, heads, sq, sk) = (384i64, 12i64, 128i64, 128i64);
        let l = Expr::Index;
        let b_ = c(&l, sq * sk, Some(bh));
        let r_ = c(&l, sk, Some(sq));
        let k_ = c(&l, 1, Some(sk));
        let index = add(add(mul(b_, Dim::c(sq * sk)), mul(r_, Dim::c(sk))), k_.clone());
        let q = coord_of(index.clone(), Dim::c(heads * sq * sk), None);
        assert_eq!(divisions(&q), 2, "{q:?}");
        let masked = add(mul(q, Dim::c(sk)), k_);
        for l in (0..bh * sq * sk).step_by(997).chain([bh * sq * sk - 1]) {
            assert_eq!(eval(&masked, l, 0), (l / (heads * sq * sk)) * sk + l % sk, "l = {l}");
        }
        // A key range past the row stride: the low terms reach the factor, so the division of
        // the whole index stays (and stays right).
        let wide = add(
            mul(c(&l, sq * sk, Some(bh)), Dim::c(sq * sk)),
            c(&l, 1, Some(2 * sq * sk)),
        );
        let w = coord_of(wide.clone(), Dim::c(heads * sq * sk), None);
        for l in (0..bh * sq * sk).step_by(1009) {
            assert_eq!(eval(&w, l, 0), eval(&wide, l, 0) / (heads * sq * sk), "l = {l}");
        }
    }

    /// A BERT head split: `[B, S, H*D]` viewed as `[B, H, S, D]` (transpose of a reshape), and
    /// the slice of Q out of the merged `[B, S, 3*H*D]` QKV product. The slice's coordinates of
    /// the transpose's index reduce to the transpose's own coordinates: three divisions left
    /// instead of eight, and the same value for every element.
    #[test]
    fn a_sliced_head_split_keeps_only_the_outer_decomposition() {
        let (h, d) = (3i64, 4i64);
        let s = Dim::sym("seq");
        let hd = Dim::c(h * d);
        let l = Expr::Index;
        // Coordinates of l in [B, H, S, D].
        let sd = s.mul(&Dim::c(d));
        let b_ = coord_of(l.clone(), sd.mul(&Dim::c(h)), None);
        let h_ = coord_of(l.clone(), sd.clone(), Some(Dim::c(h)));
        let s_ = coord_of(l.clone(), Dim::c(d), Some(s.clone()));
        let d_ = coord_of(l.clone(), Dim::c(1), Some(Dim::c(d)));
        // Linear index into [B, S, H, D] (= [B, S, H*D]).
        let t = add(
            add(add(mul(b_, s.mul(&hd)), mul(h_, Dim::c(d))), mul(s_, hd.clone())),
            d_,
        );
        // The slice: [B, S, H*D] at offset H*D (the K part) into [B, S, 3*H*D].
        let full = Dim::c(3 * h * d);
        let sliced = add(
            add(
                add(
                    Expr::Dim(hd.clone()),
                    mul(coord_of(t.clone(), s.mul(&hd), None), s.mul(&full)),
                ),
                mul(coord_of(t.clone(), hd.clone(), Some(s.clone())), full.clone()),
            ),
            coord_of(t.clone(), Dim::c(1), Some(hd.clone())),
        );
        assert!(divisions(&sliced) <= 4, "{} divisions: {sliced:?}", divisions(&sliced));
        let unsimplified = |l: i64, seq: i64| {
            let (b, r) = (l / (h * seq * d), l % (h * seq * d));
            let (hh, r) = (r / (seq * d), r % (seq * d));
            let (ss, dd) = (r / d, r % d);
            let t = b * seq * h * d + ss * h * d + hh * d + dd;
            h * d + (t / (seq * h * d)) * seq * 3 * h * d + ((t / (h * d)) % seq) * 3 * h * d + t % (h * d)
        };
        for seq in [1, 5, 8] {
            for l in 0..2 * h * seq * d {
                assert_eq!(eval(&sliced, l, seq), unsimplified(l, seq), "l = {l}, seq = {seq}");
            }
        }
    }

    /// The head split above reads runs of 4 when the head dim is a multiple of 4; an odd
    /// offset, a scaled inner coordinate or a head dim of 6 does not.
    #[test]
    fn runs_of_four_need_an_unscaled_inner_coordinate_and_aligned_terms() {
        let l = Expr::Index;
        let inner = |d| coord_of(l.clone(), Dim::c(1), Some(Dim::c(d)));
        let outer = |s| coord_of(l.clone(), Dim::c(s), None);
        let s = Dim::sym("seq");
        let head = add(mul(outer(8), s.mul(&Dim::c(24))), inner(8));
        assert!(runs_of_four(&head));
        assert!(runs_of_four(&add(Expr::Dim(Dim::c(384)), head.clone())));
        assert!(!runs_of_four(&add(Expr::Dim(Dim::c(2)), head.clone())));
        assert!(!runs_of_four(&add(mul(outer(6), Dim::c(24)), inner(6))));
        assert!(!runs_of_four(&mul(inner(8), Dim::c(2))));
        assert!(!runs_of_four(&add(mul(outer(2), Dim::c(24)), inner(8))));
        assert!(runs_of_four(&l));
        // Checked by value: every aligned run of the head index is 4 consecutive elements.
        for q in 0..40 {
            let v: Vec<i64> = (0..4).map(|j| eval(&head, 4 * q + j, 3)).collect();
            assert!(v[0] % 4 == 0 && v.windows(2).all(|w| w[1] == w[0] + 1), "{v:?}");
        }
    }

    /// Where a split is not clean (an outer coordinate of unknown range under a modulo, a
    /// stride that cuts a coordinate) the division stays and the value is unchanged.
    #[test]
    fn unclean_splits_keep_their_division() {
        let l = Expr::Index;
        let rows = coord_of(l.clone(), Dim::c(4), None);
        let cols = coord_of(l.clone(), Dim::c(1), Some(Dim::c(4)));
        let lin = add(mul(rows, Dim::c(4)), cols);
        let e = coord_of(lin.clone(), Dim::c(8), None);
        let f = coord_of(lin.clone(), Dim::c(1), Some(Dim::c(8)));
        let g = coord_of(lin.clone(), Dim::c(3), Some(Dim::c(8)));
        for l in 0..24 {
            assert_eq!(eval(&e, l, 1), l / 8);
            assert_eq!(eval(&f, l, 1), l % 8);
            assert_eq!(eval(&g, l, 1), (l / 3) % 8);
        }
        // The inner coordinate of [*, 4] by 2: (l % 4) / 2 stays a division of the column.
        let h = coord_of(c(&l, 1, Some(4)), Dim::c(2), Some(Dim::c(2)));
        assert!(matches!(&h, Expr::CoordOf { stride, .. } if *stride == Dim::c(2)));
        for l in 0..24 {
            assert_eq!(eval(&h, l, 1), (l % 4) / 2);
        }
        // ... while a modulo by a multiple of the inner range drops: (l % 4) % 8 = l % 4.
        let k = coord_of(c(&l, 1, Some(4)), Dim::c(1), Some(Dim::c(8)));
        assert_eq!(divisions(&k), 1);
        for l in 0..24 {
            assert_eq!(eval(&k, l, 1), l % 4);
        }
    }
}
