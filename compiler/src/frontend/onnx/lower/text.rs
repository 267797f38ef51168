//! `TfIdfVectorizer` over integer tokens: n-gram (and skip-gram) counts against the constant
//! pool, unrolled into one tensor expression per output column.
//!
//! As in the ONNX reference, pool n-grams of size `s` in `[min_gram_length, max_gram_length]`
//! are counted at every skip distance `1..=max_skip_count + 1`, except unigrams, which count
//! only contiguously; each count goes to column `ngram_indexes[id]`, then TF, IDF or TFIDF
//! weighting applies.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Dim, Expr, NodeId, Op};

/// Most token comparisons the unrolled count expressions may hold.
const MAX_COMPARISONS: usize = 1 << 16;

/// `TfIdfVectorizer`.
pub(crate) fn tfidf_vectorizer(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let xt = cx.ty(x).clone();
    if xt.dtype != DType::I32 {
        return Err(n.unsupported(format!(
            "input {} must be integer tokens (strings are not supported)",
            xt.describe()
        )));
    }
    if n.has_attr("pool_strings") {
        return Err(n.unsupported("attribute 'pool_strings' is not supported (integer pools only)"));
    }
    let (batch, len) = match xt.rank() {
        1 => (None, xt.shape[0].clone()),
        2 => (Some(xt.shape[0].clone()), xt.shape[1].clone()),
        r => return Err(n.err(format!("input must be [C] or [B, C], got rank {r}"))),
    };
    let c = len
        .as_const()
        .ok_or_else(|| n.err(format!("the token axis {len} must be concrete (use --dim)")))? as usize;
    let min_g = n.attr_i("min_gram_length", 1)?;
    let max_g = n.attr_i("max_gram_length", 1)?;
    let max_skip = n.attr_i("max_skip_count", 0)?;
    if min_g < 1 || max_g < min_g || max_skip < 0 {
        return Err(n.err(format!(
            "min_gram_length {min_g}, max_gram_length {max_g} and max_skip_count {max_skip} are inconsistent"
        )));
    }
    let mode = n.attr_s("mode")?.ok_or_else(|| n.err("attribute 'mode' is required"))?;
    let counts = n
        .attr_ints("ngram_counts")?
        .ok_or_else(|| n.err("attribute 'ngram_counts' is required"))?;
    let indexes = n
        .attr_ints("ngram_indexes")?
        .ok_or_else(|| n.err("attribute 'ngram_indexes' is required"))?;
    let pool = n
        .attr_ints("pool_int64s")?
        .ok_or_else(|| n.err("attribute 'pool_int64s' is required"))?;
    let weights = n.attr_floats("weights")?.unwrap_or_default();
    let out_size = indexes.iter().copied().max().map_or(0, |m| m + 1);
    if out_size <= 0 || indexes.iter().any(|&i| i < 0) {
        return Err(n.err(format!(
            "attribute 'ngram_indexes' {indexes:?} must be non-negative and non-empty"
        )));
    }
    let out_size = out_size as usize;
    if !weights.is_empty() && weights.len() < out_size {
        return Err(n.err(format!(
            "attribute 'weights' has {} values for {out_size} outputs",
            weights.len()
        )));
    }
    // The pool's n-grams: (id - 1, tokens), for the sizes that are counted.
    let mut grams: Vec<(usize, Vec<i64>)> = Vec::new();
    let mut id = 0usize;
    for (k, &start) in counts.iter().enumerate() {
        let size = k + 1;
        let end = counts.get(k + 1).copied().unwrap_or(pool.len() as i64);
        if start < 0 || end < start || end as usize > pool.len() {
            return Err(n.err(format!(
                "attribute 'ngram_counts' {counts:?} does not fit the pool of {}",
                pool.len()
            )));
        }
        let items = (end - start) as usize;
        let count = items / size;
        for g in 0..count {
            if (size as i64) >= min_g && (size as i64) <= max_g {
                let s = start as usize + g * size;
                grams.push((id, pool[s..s + size].to_vec()));
            }
            id += 1;
        }
    }
    let mut per_column: Vec<Vec<&Vec<i64>>> = vec![Vec::new(); out_size];
    for (gid, tokens) in &grams {
        let col = *indexes.get(*gid).ok_or_else(|| {
            n.err(format!(
                "n-gram {gid} has no entry in 'ngram_indexes' ({} entries)",
                indexes.len()
            ))
        })? as usize;
        per_column[col].push(tokens);
    }
    let token = |i: usize| Expr::Load {
        input: 0,
        index: match batch {
            Some(_) => vec![Expr::Coord(0), Expr::int(i as i64)],
            None => vec![Expr::int(i as i64)],
        },
    };
    let f = DType::F32;
    let mut comparisons = 0usize;
    let mut columns: Vec<NodeId> = Vec::with_capacity(out_size);
    let col_shape = match &batch {
        Some(b) => vec![b.clone(), Dim::c(1)],
        None => vec![Dim::c(1)],
    };
    for (j, col) in per_column.iter().enumerate() {
        let mut sum: Option<Expr> = None;
        for tokens in col {
            let s = tokens.len();
            let skips = if s == 1 { 1 } else { max_skip as usize + 1 };
            for d in 1..=skips {
                let span = (s - 1) * d;
                for i in 0..c.saturating_sub(span) {
                    let mut hit: Option<Expr> = None;
                    for (k, &t) in tokens.iter().enumerate() {
                        comparisons += 1;
                        let eq = token(i + k * d).cmp(BinaryOp::Equal, Expr::Lit(t as f64, DType::I32), DType::I32);
                        hit = Some(match hit {
                            None => eq,
                            Some(h) => Expr::Binary(BinaryOp::And, Box::new(h), Box::new(eq), DType::Bool),
                        });
                    }
                    let term = Expr::Cast(Box::new(hit.expect("s >= 1")), DType::Bool, f);
                    sum = Some(match sum {
                        None => term,
                        Some(a) => Expr::Binary(BinaryOp::Add, Box::new(a), Box::new(term), f),
                    });
                }
            }
        }
        if comparisons > MAX_COMPARISONS {
            return Err(n.unsupported(format!(
                "the n-gram counts need more than {MAX_COMPARISONS} token comparisons when unrolled"
            )));
        }
        let count = sum.unwrap_or(Expr::Lit(0.0, f));
        let w = weights.get(j).map(|&w| w as f64);
        let value = match (mode.as_str(), w) {
            ("TF", _) | ("TFIDF", None) => count,
            ("TFIDF", Some(w)) => Expr::Binary(BinaryOp::Mul, Box::new(Expr::Lit(w, f)), Box::new(count), f),
            ("IDF", w) => Expr::select(
                count.cmp(BinaryOp::Greater, Expr::Lit(0.0, f), f),
                Expr::Lit(w.unwrap_or(1.0), f),
                Expr::Lit(0.0, f),
            ),
            (m, _) => return Err(n.err(format!("attribute 'mode' '{m}' is not one of TF, IDF, TFIDF"))),
        };
        let op = Op::Compute {
            shape: col_shape.clone(),
            dtype: f,
            expr: value,
            name: "TfIdfColumn".into(),
        };
        columns.push(cx.add(n, &format!("column{j}"), op, &[x])?);
    }
    let axis = col_shape.len() - 1;
    let y = if columns.len() == 1 {
        columns[0]
    } else {
        cx.add(n, "", Op::Concat { axis }, &columns)?
    };
    Ok(one(y))
}
