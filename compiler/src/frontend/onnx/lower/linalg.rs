//! Linear algebra on small matrices: `Det`, as the permutation (Leibniz) expansion in one
//! tensor expression per batch of matrices.

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, Expr, Op};

/// Largest matrix order `Det` expands (n! products of n elements).
const MAX_DET_ORDER: usize = 5;

/// Every permutation of `0..k` with its sign.
fn permutations(k: usize) -> Vec<(Vec<usize>, bool)> {
    if k == 0 {
        return vec![(vec![], true)];
    }
    let mut out = Vec::new();
    for (p, even) in permutations(k - 1) {
        // Insert k-1 at every position; moving it left past j elements flips the sign j times.
        for pos in (0..=p.len()).rev() {
            let mut q = p.clone();
            q.insert(pos, k - 1);
            let flips = p.len() - pos;
            out.push((q, even == (flips % 2 == 0)));
        }
    }
    out
}

/// `Det`: the determinant of every square matrix in the last two axes.
pub(crate) fn det(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let ty = cx.ty(x).clone();
    if !ty.dtype.is_float() {
        return Err(n.err(format!("input must be floating point, got {}", ty.describe())));
    }
    let rank = ty.rank();
    if rank < 2 || ty.shape[rank - 1] != ty.shape[rank - 2] {
        return Err(n.err(format!("input {} must end in a square matrix", ty.describe())));
    }
    let k = ty.shape[rank - 1].as_const().ok_or_else(|| {
        n.err(format!(
            "the matrix order of {} must be concrete (use --dim)",
            ty.describe()
        ))
    })? as usize;
    if k > MAX_DET_ORDER {
        return Err(n.unsupported(format!(
            "matrices of order {k} are not supported (Det expands orders up to {MAX_DET_ORDER})"
        )));
    }
    let dt = ty.dtype;
    let batch = rank - 2;
    let elem = |i: usize, j: usize| {
        let mut index: Vec<Expr> = (0..batch).map(Expr::Coord).collect();
        index.push(Expr::int(i as i64));
        index.push(Expr::int(j as i64));
        Expr::Load { input: 0, index }
    };
    let mut sum: Option<Expr> = None;
    for (p, even) in permutations(k) {
        let mut term: Option<Expr> = None;
        for (i, &j) in p.iter().enumerate() {
            let e = elem(i, j);
            term = Some(match term {
                None => e,
                Some(t) => Expr::Binary(BinaryOp::Mul, Box::new(t), Box::new(e), dt),
            });
        }
        let term = term.unwrap_or(Expr::Lit(1.0, dt));
        sum = Some(match sum {
            None if even => term,
            None => Expr::Binary(BinaryOp::Sub, Box::new(Expr::Lit(0.0, dt)), Box::new(term), dt),
            Some(s) => Expr::Binary(
                if even { BinaryOp::Add } else { BinaryOp::Sub },
                Box::new(s),
                Box::new(term),
                dt,
            ),
        });
    }
    let op = Op::Compute {
        shape: ty.shape[..batch].to_vec(),
        dtype: dt,
        expr: sum.expect("at least one permutation"),
        name: "Det".into(),
    };
    Ok(one(cx.add(n, "", op, &[x])?))
}
