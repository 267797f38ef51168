//! `Attention` (opsets 23-25): scaled dot-product attention decomposed into IR primitives; also
//! the attention-family ops `RotaryEmbedding`, `LinearAttention` and `CausalConvWithState`.
//!
//! The decomposition follows the ONNX reference implementation step by step:
//!
//! 1. 3-D inputs `[B, S, H*D]` are split into heads: `[B, H, S, D]`.
//! 2. `past_key`/`past_value` are concatenated in front of `K`/`V` along the sequence axis
//!    (these are the `present_key`/`present_value` outputs).
//! 3. The additive bias `[.., S, T]` is built from the optional mask (a bool mask becomes
//!    `0 / -inf`; a mask shorter than the key sequence is padded with `-inf`) and one tensor
//!    expression for the structural masks: causal (`j <= i + offset`), the opset-25 sliding
//!    window, and the opset-24 key padding `j < nonpad_kv_seqlen[b]` (whose external cache also
//!    sets the per-batch offset). Symbolic lengths work.
//! 4. Scores are `(Q * scale) @ K^T` (for f16 the reference's `sqrt(scale)` on both operands is
//!    kept, so rounding matches), optionally soft-capped (`c * tanh(x / c)`), plus the bias.
//! 5. Softmax over the keys (in `softmax_precision` if given). Rows whose bias is all `-inf`
//!    (no attendable key) are zeroed, as the reference does.
//! 6. `Y = P @ V`, merged back to `[B, S, H*Dv]` for 3-D inputs.
//!
//! Grouped-query attention (`q_num_heads = r * kv_num_heads`) needs no copy of `K`/`V`: query
//! head `h` uses kv head `h / r`, so `Q [B, Hq, S, D]` reshaped to `[B, Hkv, r*S, D]` (a free,
//! contiguous reshape) multiplies `K [B, Hkv, T, D]` directly.

use super::math::{bin, reshape, transpose, unary};
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::data;
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{BinaryOp, DType, Dim, Expr, NodeId, Op, ReduceOp, SliceAxis, UnaryOp};

/// Splits `[B, S, H*D]` into heads `[B, H, S, D]`.
fn split_heads(cx: &mut Ctx, n: &N, what: &str, x: NodeId, heads: i64) -> Result<NodeId, OnnxError> {
    let s = cx.ty(x).shape.clone();
    let hd = s[2].exact_div(&Dim::c(heads)).ok_or_else(|| {
        n.err(format!(
            "the hidden size {} of {what} is not a multiple of the head count {heads}",
            s[2]
        ))
    })?;
    let r = reshape(
        cx,
        n,
        &format!("{what}_heads"),
        x,
        vec![s[0].clone(), s[1].clone(), Dim::c(heads), hd],
    )?;
    transpose(cx, n, &format!("{what}_bhsd"), r, vec![0, 2, 1, 3])
}

/// The float dtype of the optional `softmax_precision` attribute.
fn softmax_dtype(n: &N, dt: DType) -> Result<DType, OnnxError> {
    match n.attr_i_opt("softmax_precision")? {
        None => Ok(dt),
        Some(p) => {
            let d = data::ir_dtype(p as i32).map_err(|m| n.err(format!("attribute 'softmax_precision': {m}")))?;
            if !d.is_float() {
                return Err(n.err(format!(
                    "attribute 'softmax_precision' must be a float type, got {}",
                    data::type_name(p as i32)
                )));
            }
            Ok(d)
        }
    }
}

/// `Attention`: outputs `Y`, `present_key`, `present_value`, `qk_matmul_output`.
pub(crate) fn attention(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let mut q = cx.input(n, 0)?;
    let mut k = cx.input(n, 1)?;
    let mut v = cx.input(n, 2)?;
    let mask = cx.opt_input(n, 3)?;
    let past_k = cx.opt_input(n, 4)?;
    let past_v = cx.opt_input(n, 5)?;
    let nonpad = match cx.opt_input(n, 6)? {
        Some(v) if cx.ty(v).dtype == DType::I32 => Some(v),
        Some(v) => Some(cx.add(n, "nonpad_i32", Op::Cast(DType::I32), &[v])?),
        None => None,
    };
    if past_k.is_some() != past_v.is_some() {
        return Err(n.err("past_key and past_value must be given together"));
    }
    if nonpad.is_some() && past_k.is_some() {
        return Err(n.err("nonpad_kv_seqlen cannot be combined with past_key/past_value"));
    }
    let left = n.attr_i("left_window_size", -1)?;
    let right = n.attr_i("right_window_size", -1)?;
    if left < -1 || right < -1 {
        return Err(n.err(format!(
            "window sizes must be -1 or non-negative, got left={left}, right={right}"
        )));
    }
    let qt = cx.ty(q).clone();
    let dt = qt.dtype;
    if !dt.is_float() {
        return Err(n.err(format!("Q must be floating point, got {}", qt.describe())));
    }
    let rank = qt.rank();
    for (id, what) in [(k, "K"), (v, "V")] {
        if cx.ty(id).rank() != rank {
            return Err(n.err(format!(
                "Q {} and {what} {} must have the same rank",
                qt.describe(),
                cx.ty(id).describe()
            )));
        }
    }
    let is_causal = n.attr_i("is_causal", 0)? != 0;
    let softcap = n.attr_f("softcap", 0.0)? as f64;
    let mode = n.attr_i("qk_matmul_output_mode", 0)?;
    if !(0..=3).contains(&mode) {
        return Err(n.err(format!("attribute 'qk_matmul_output_mode' must be 0..=3, got {mode}")));
    }
    let sm_dt = softmax_dtype(n, dt)?;

    // 1. Heads.
    match rank {
        3 => {
            let qh = n.attr_i_opt("q_num_heads")?;
            let kvh = n.attr_i_opt("kv_num_heads")?;
            let (Some(qh), Some(kvh)) = (qh, kvh) else {
                return Err(n.err("3-D inputs need the attributes 'q_num_heads' and 'kv_num_heads'"));
            };
            if qh <= 0 || kvh <= 0 {
                return Err(n.err(format!(
                    "head counts must be positive, got q_num_heads={qh}, kv_num_heads={kvh}"
                )));
            }
            q = split_heads(cx, n, "q", q, qh)?;
            k = split_heads(cx, n, "k", k, kvh)?;
            v = split_heads(cx, n, "v", v, kvh)?;
        }
        4 => {}
        _ => {
            return Err(n.err(format!(
                "Q must be 3-D [B, S, H*D] or 4-D [B, H, S, D], got {}",
                qt.describe()
            )))
        }
    }
    let qs = cx.ty(q).shape.clone();
    let (q_heads, s_len, head_size) = (qs[1].clone(), qs[2].clone(), qs[3].clone());
    let batch = qs[0].clone();
    let kv_heads = cx.ty(k).shape[1].clone();

    // 2. KV cache.
    let mut past_len = Dim::c(0);
    let mut present_k = k;
    let mut present_v = v;
    if let (Some(pk), Some(pv)) = (past_k, past_v) {
        past_len = cx
            .ty(pk)
            .shape
            .get(2)
            .cloned()
            .ok_or_else(|| n.err(format!("past_key must be 4-D, got {}", cx.ty(pk).describe())))?;
        present_k = cx.add(n, "present_key", Op::Concat { axis: 2 }, &[pk, k])?;
        present_v = cx.add(n, "present_value", Op::Concat { axis: 2 }, &[pv, v])?;
    }
    let t_len = cx.ty(present_k).shape[2].clone();

    // 3. Additive bias.
    let neg_inf = f64::NEG_INFINITY;
    let mut bias: Option<NodeId> = None;
    if let Some(m) = mask {
        let mt = cx.ty(m).clone();
        if mt.rank() == 0 {
            return Err(n.err("attn_mask must have rank >= 1"));
        }
        let mut m = if mt.dtype == DType::Bool {
            let zero = cx.scalar(n, "mask_zero", dt, 0.0);
            let ninf = cx.scalar(n, "mask_neg_inf", dt, neg_inf);
            cx.add(n, "mask_bias", Op::Where, &[m, zero, ninf])?
        } else if mt.dtype != dt {
            cx.add(n, "mask_cast", Op::Cast(dt), &[m])?
        } else {
            m
        };
        let last = mt.rank() - 1;
        if mt.shape[last] != t_len {
            // Pad the key axis with -inf up to the total sequence length.
            let mut shape = mt.shape.clone();
            shape[last] = t_len.clone();
            let index: Vec<Expr> = (0..mt.rank()).map(Expr::Coord).collect();
            let expr = Expr::select(
                Expr::Coord(last).cmp(BinaryOp::Less, Expr::Dim(mt.shape[last].clone()), DType::I32),
                Expr::Load { input: 0, index },
                Expr::Lit(neg_inf, dt),
            );
            m = cx.add(
                n,
                "mask_padded",
                Op::Compute {
                    shape,
                    dtype: dt,
                    expr,
                    name: "AttentionMaskPad".into(),
                },
                &[m],
            )?;
        }
        bias = Some(m);
    }
    // Structural masks in one expression: causal (`j <= i + offset`), sliding window
    // (`-right <= i + offset - j <= left`) and key padding (`j < nonpad_kv_seqlen[b]`). The
    // offset is the number of valid keys before this query block: past_len for the internal
    // cache, `nonpad_kv_seqlen[b] - S` for the external one. With nonpad_kv_seqlen the mask is
    // per batch, `[B, 1, S, T]`, else `[S, T]`.
    let per_batch = nonpad.is_some();
    let (qi, kj) = if per_batch {
        (Expr::Coord(2), Expr::Coord(3))
    } else {
        (Expr::Coord(0), Expr::Coord(1))
    };
    let valid = Expr::Load {
        input: 0,
        index: vec![Expr::Coord(0)],
    };
    let offset = if per_batch {
        valid.clone().sub(Expr::Dim(s_len.clone()))
    } else {
        Expr::Dim(past_len.clone())
    };
    let pos = qi.add(offset);
    let mut conds = Vec::new();
    if is_causal {
        conds.push(kj.clone().cmp(BinaryOp::LessEqual, pos.clone(), DType::I32));
    }
    if left >= 0 {
        conds.push(
            pos.clone()
                .sub(kj.clone())
                .cmp(BinaryOp::LessEqual, Expr::int(left), DType::I32),
        );
    }
    if right >= 0 {
        conds.push(
            kj.clone()
                .sub(pos.clone())
                .cmp(BinaryOp::LessEqual, Expr::int(right), DType::I32),
        );
    }
    if per_batch {
        conds.push(kj.clone().cmp(BinaryOp::Less, valid, DType::I32));
    }
    if let Some(allowed) = conds
        .into_iter()
        .reduce(|a, b| Expr::Binary(BinaryOp::And, Box::new(a), Box::new(b), DType::Bool))
    {
        let expr = Expr::select(allowed, Expr::Lit(0.0, dt), Expr::Lit(neg_inf, dt));
        let (shape, ins) = match nonpad {
            Some(v) => (vec![batch.clone(), Dim::c(1), s_len.clone(), t_len.clone()], vec![v]),
            None => (vec![s_len.clone(), t_len.clone()], vec![]),
        };
        let structural = cx.add(
            n,
            "structural_bias",
            Op::Compute {
                shape,
                dtype: dt,
                expr,
                name: "AttentionMask".into(),
            },
            &ins,
        )?;
        bias = Some(match bias {
            Some(b) => bin(cx, n, "bias", BinaryOp::Add, b, structural)?,
            None => structural,
        });
    }

    // 4. Scores.
    let scale = match n.attr_f_opt("scale")? {
        Some(s) => s as f64,
        None => {
            let d = head_size.as_const().ok_or_else(|| {
                n.err(format!(
                    "the head size {head_size} must be concrete when 'scale' is not given"
                ))
            })?;
            1.0 / (d as f64).sqrt()
        }
    };
    let mut kk = present_k;
    if dt == DType::F32 {
        if scale != 1.0 {
            let s = cx.scalar(n, "scale", dt, scale);
            q = bin(cx, n, "q_scaled", BinaryOp::Mul, q, s)?;
        }
    } else {
        // Reduced precision: scale both operands by sqrt(scale), rounded, as the reference does.
        let s = cx.scalar(n, "scale_sqrt", dt, scale.sqrt());
        q = bin(cx, n, "q_scaled", BinaryOp::Mul, q, s)?;
        kk = bin(cx, n, "k_scaled", BinaryOp::Mul, kk, s)?;
    }
    let kt = transpose(cx, n, "k_t", kk, vec![0, 1, 3, 2])?;
    let gqa = q_heads != kv_heads;
    let rep = if gqa {
        let r = q_heads.exact_div(&kv_heads).ok_or_else(|| {
            n.err(format!(
                "q_num_heads {q_heads} is not a multiple of kv_num_heads {kv_heads}"
            ))
        })?;
        let q_g = reshape(
            cx,
            n,
            "q_grouped",
            q,
            vec![batch.clone(), kv_heads.clone(), r.mul(&s_len), head_size.clone()],
        )?;
        q = q_g;
        Some(r)
    } else {
        None
    };
    let mut scores = cx.add(n, "qk", Op::MatMul, &[q, kt])?;
    if gqa {
        scores = reshape(
            cx,
            n,
            "qk_heads",
            scores,
            vec![batch.clone(), q_heads.clone(), s_len.clone(), t_len.clone()],
        )?;
    }
    if softcap > 0.0 {
        let c = cx.scalar(n, "softcap", dt, softcap);
        let x = bin(cx, n, "softcap_div", BinaryOp::Div, scores, c)?;
        let t = unary(cx, n, "softcap_tanh", UnaryOp::Tanh, x)?;
        scores = bin(cx, n, "softcap_mul", BinaryOp::Mul, t, c)?;
    }
    let qk_out_raw = scores;
    let mut logits = match bias {
        Some(b) => bin(cx, n, "qk_bias", BinaryOp::Add, scores, b)?,
        None => scores,
    };
    let qk_with_bias = logits;

    // 5. Softmax.
    if sm_dt != dt {
        logits = cx.add(n, "softmax_in", Op::Cast(sm_dt), &[logits])?;
    }
    let mut probs = cx.add(n, "softmax", Op::Softmax { axis: 3, log: false }, &[logits])?;
    let may_mask_rows = mask.is_some() || nonpad.is_some() || left >= 0 || right >= 0;
    if let Some(b) = bias.filter(|_| may_mask_rows) {
        // Rows with no attendable key (bias all -inf) become zero.
        let rank_b = cx.ty(b).rank();
        let mx = cx.add(
            n,
            "bias_row_max",
            Op::Reduce {
                op: ReduceOp::Max,
                axes: vec![rank_b - 1],
                keep_dims: true,
            },
            &[b],
        )?;
        let ninf = cx.scalar(n, "neg_inf", dt, neg_inf);
        let dead = bin(cx, n, "row_masked", BinaryOp::Equal, mx, ninf)?;
        let zero = cx.scalar(n, "zero", sm_dt, 0.0);
        probs = cx.add(n, "softmax_guarded", Op::Where, &[dead, zero, probs])?;
    }
    if sm_dt != dt {
        probs = cx.add(n, "softmax_out", Op::Cast(dt), &[probs])?;
    }
    let qk_out = match mode {
        0 | 1 => qk_out_raw,
        2 => qk_with_bias,
        _ => probs,
    };

    // 6. Output.
    let mut p = probs;
    if let Some(r) = &rep {
        p = reshape(
            cx,
            n,
            "probs_grouped",
            p,
            vec![batch.clone(), kv_heads.clone(), r.mul(&s_len), t_len.clone()],
        )?;
    }
    let mut y = cx.add(n, "pv", Op::MatMul, &[p, present_v])?;
    let dv = cx.ty(present_v).shape[3].clone();
    if rep.is_some() {
        y = reshape(
            cx,
            n,
            "y_heads",
            y,
            vec![batch.clone(), q_heads.clone(), s_len.clone(), dv.clone()],
        )?;
    }
    if rank == 3 {
        let yt = transpose(cx, n, "y_bshd", y, vec![0, 2, 1, 3])?;
        y = reshape(cx, n, "y", yt, vec![batch, s_len, q_heads.mul(&dv)])?;
    }
    Ok(vec![
        Value::Node(y),
        Value::Node(present_k),
        Value::Node(present_v),
        Value::Node(qk_out),
    ])
}

/// `RotaryEmbedding` (opset 23) as one tensor expression over the input's own layout.
///
/// For an element at head offset `d` inside the rotated part (`d < R`, `R` = the rotary dim),
/// `y = cos[i] * x[d] -+ sin[i] * x[p]`: with halves (`interleaved = 0`) the first half pairs
/// `d` with `p = d + R/2` (minus) and the second with `p = d - R/2` (plus), `i = d mod R/2`;
/// interleaved pairs are `(2i, 2i + 1)`. Elements past `R` pass through. The caches are indexed
/// by `position_ids[b, s]` when given, else they are `[B, S, R/2]`.
pub(crate) fn rotary_embedding(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let cos = cx.input(n, 1)?;
    let sin = cx.input(n, 2)?;
    let pos = cx.opt_input(n, 3)?;
    let xt = cx.ty(x).clone();
    let dt = xt.dtype;
    if !dt.is_float() {
        return Err(n.err(format!("input must be floating point, got {}", xt.describe())));
    }
    let interleaved = n.attr_i("interleaved", 0)? != 0;
    // (batch, seq) coordinates and the head size.
    let (seq_axis, head_size) = match xt.rank() {
        4 => (2, xt.shape[3].clone()),
        3 => {
            let heads = n.attr_i("num_heads", 0)?;
            if heads <= 0 {
                return Err(n.err("3-D input needs the attribute 'num_heads'"));
            }
            let hd = xt.shape[2].exact_div(&Dim::c(heads)).ok_or_else(|| {
                n.err(format!(
                    "hidden size {} is not a multiple of num_heads {heads}",
                    xt.shape[2]
                ))
            })?;
            (1, hd)
        }
        _ => {
            return Err(n.err(format!(
                "input must be [B, H, S, D] or [B, S, H*D], got {}",
                xt.describe()
            )))
        }
    };
    let hs = head_size
        .as_const()
        .ok_or_else(|| n.err(format!("the head size {head_size} must be concrete")))?;
    let rot = match n.attr_i("rotary_embedding_dim", 0)? {
        0 => hs,
        r => r,
    };
    if rot <= 0 || rot > hs || rot % 2 != 0 {
        return Err(n.err(format!(
            "rotary_embedding_dim {rot} must be even and at most the head size {hs}"
        )));
    }
    let half = rot / 2;
    for (id, what) in [(cos, "cos_cache"), (sin, "sin_cache")] {
        let t = cx.ty(id);
        if t.shape.last().and_then(Dim::as_const) != Some(half) {
            return Err(n.err(format!(
                "{what} {} must end in rotary_embedding_dim / 2 = {half}",
                t.describe()
            )));
        }
        let want_rank = if pos.is_some() { 2 } else { 3 };
        if t.rank() != want_rank {
            return Err(n.err(format!(
                "{what} must be {} , got {}",
                if pos.is_some() {
                    "[max_position, R/2] with position_ids"
                } else {
                    "[B, S, R/2] without position_ids"
                },
                t.describe()
            )));
        }
    }
    let rank = xt.rank();
    let last = rank - 1;
    // Head offset d of the output element, and the index of x's last axis for offset `e`.
    let (d, at): (Expr, Box<dyn Fn(Expr) -> Expr>) = if rank == 4 {
        (Expr::Coord(3), Box::new(|e| e))
    } else {
        let c = Expr::Coord(2);
        let base = c.clone().sub(c.clone().rem(Expr::int(hs)));
        (c.rem(Expr::int(hs)), Box::new(move |e| base.clone().add(e)))
    };
    let x_at = |e: Expr| {
        let mut index: Vec<Expr> = (0..rank).map(Expr::Coord).collect();
        index[last] = at(e);
        Expr::Load { input: 0, index }
    };
    let i32c = |v: i64| Expr::int(v);
    let first = if interleaved {
        d.clone().rem(i32c(2)).cmp(BinaryOp::Equal, i32c(0), DType::I32)
    } else {
        d.clone().cmp(BinaryOp::Less, i32c(half), DType::I32)
    };
    let i = if interleaved {
        d.clone().div(i32c(2))
    } else {
        d.clone().rem(i32c(half))
    };
    let step = if interleaved { 1 } else { half };
    let p = Expr::select(first.clone(), d.clone().add(i32c(step)), d.clone().sub(i32c(step)));
    let b = Expr::Coord(0);
    let s = Expr::Coord(seq_axis);
    let cache = |slot: usize| {
        let index = if pos.is_some() {
            vec![
                Expr::Load {
                    input: 3,
                    index: vec![b.clone(), s.clone()],
                },
                i.clone(),
            ]
        } else {
            vec![b.clone(), s.clone(), i.clone()]
        };
        Expr::Load { input: slot, index }
    };
    let fb = |op, a: Expr, c: Expr| Expr::Binary(op, Box::new(a), Box::new(c), dt);
    let signed_sin = Expr::select(first, Expr::Unary(UnaryOp::Neg, Box::new(cache(2)), dt), cache(2));
    let rotated = fb(
        BinaryOp::Add,
        fb(BinaryOp::Mul, cache(1), x_at(d.clone())),
        fb(BinaryOp::Mul, signed_sin, x_at(p)),
    );
    let expr = if rot < hs {
        Expr::select(d.clone().cmp(BinaryOp::Less, i32c(rot), DType::I32), rotated, x_at(d))
    } else {
        rotated
    };
    let mut ins = vec![x, cos, sin];
    if let Some(p) = pos {
        let p = if cx.ty(p).dtype == DType::I32 {
            p
        } else {
            cx.add(n, "position_ids_i32", Op::Cast(DType::I32), &[p])?
        };
        ins.push(p);
    }
    for (k, what) in [(1, "cos_cache"), (2, "sin_cache")] {
        if cx.ty(ins[k]).dtype != dt {
            ins[k] = cx.add(n, &format!("{what}_cast"), Op::Cast(dt), &[ins[k]])?;
        }
    }
    Ok(vec![Value::Node(cx.add(
        n,
        "",
        Op::Compute {
            shape: xt.shape.clone(),
            dtype: dt,
            expr,
            name: "RotaryEmbedding".into(),
        },
        &ins,
    )?)])
}

/// Longest sequence `LinearAttention` unrolls (one group of IR ops per step).
const LINEAR_ATTENTION_MAX_STEPS: i64 = 256;

/// `LinearAttention` (opset 27): the recurrent state update `S <- S * exp(g_t)` (gated),
/// `v_t <- beta_t (v_t - k_t S)` (delta rule), `S <- S + k_t^T v_t`, read out as
/// `y_t = scale * q_t S`, unrolled over the (concrete) sequence length in f32. Query heads
/// share kv heads in groups (`q_t` reshaped to `[B, Hkv, group, dk]`, no state copies).
pub(crate) fn linear_attention(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let rule = n.attr_s("update_rule")?.unwrap_or_else(|| "gated_delta".into());
    let (gating, delta) = match rule.as_str() {
        "linear" => (false, false),
        "gated" => (true, false),
        "delta" => (false, true),
        "gated_delta" => (true, true),
        other => {
            return Err(n.err(format!(
                "update_rule must be linear, gated, delta or gated_delta, got '{other}'"
            )))
        }
    };
    let (Some(hq), Some(hkv)) = (n.attr_i_opt("q_num_heads")?, n.attr_i_opt("kv_num_heads")?) else {
        return Err(n.err("the attributes 'q_num_heads' and 'kv_num_heads' are required"));
    };
    if hq <= 0 || hkv <= 0 || hq % hkv != 0 {
        return Err(n.err(format!(
            "q_num_heads {hq} must be a positive multiple of kv_num_heads {hkv}"
        )));
    }
    let q = cx.input(n, 0)?;
    let k = cx.input(n, 1)?;
    let v = cx.input(n, 2)?;
    let past = cx.opt_input(n, 3)?;
    let decay = cx.opt_input(n, 4)?;
    let beta = cx.opt_input(n, 5)?;
    if gating != decay.is_some() {
        return Err(n.err(format!(
            "update_rule '{rule}' {} the decay input",
            if gating { "requires" } else { "forbids" }
        )));
    }
    if delta != beta.is_some() {
        return Err(n.err(format!(
            "update_rule '{rule}' {} the beta input",
            if delta { "requires" } else { "forbids" }
        )));
    }
    let qt = cx.ty(q).clone();
    let out_dt = qt.dtype;
    for id in [q, k, v] {
        if cx.ty(id).rank() != 3 || !cx.ty(id).dtype.is_float() {
            return Err(n.err(format!(
                "query, key and value must be float [B, T, H*D], got {}",
                cx.ty(id).describe()
            )));
        }
    }
    let steps = qt.shape[1].as_const().ok_or_else(|| {
        n.err(format!(
            "the sequence length {} must be concrete (the recurrence is unrolled)",
            qt.shape[1]
        ))
    })?;
    if steps > LINEAR_ATTENTION_MAX_STEPS {
        return Err(n.err(format!(
            "sequence length {steps} is above the {LINEAR_ATTENTION_MAX_STEPS} steps Kiln unrolls"
        )));
    }
    let f32_ = |cx: &mut Ctx, s: &str, x: NodeId| -> Result<NodeId, OnnxError> {
        if cx.ty(x).dtype == DType::F32 {
            Ok(x)
        } else {
            cx.add(n, s, Op::Cast(DType::F32), &[x])
        }
    };
    let q = f32_(cx, "q_f32", q)?;
    let k = f32_(cx, "k_f32", k)?;
    let v = f32_(cx, "v_f32", v)?;
    let q4 = split_heads(cx, n, "q", q, hq)?;
    let k4 = split_heads(cx, n, "k", k, hkv)?;
    let v4 = split_heads(cx, n, "v", v, hkv)?;
    let batch = qt.shape[0].clone();
    let dk = cx.ty(q4).shape[3].clone();
    let dv = cx.ty(v4).shape[3].clone();
    let group = hq / hkv;
    // Per-head (or per-key-dim) decay and per-head (or shared) beta, as [B, H, T, X].
    let per_step = |cx: &mut Ctx, what: &str, x: NodeId, allowed: &[i64]| {
        let t = cx.ty(x).clone();
        let last = t.shape.get(2).and_then(Dim::as_const);
        match last {
            Some(l) if t.rank() == 3 && allowed.contains(&l) => {}
            _ => {
                return Err(n.err(format!(
                    "{what} must be [B, T, X] with X in {allowed:?}, got {}",
                    t.describe()
                )))
            }
        }
        let l = last.expect("checked");
        let x = f32_(cx, &format!("{what}_f32"), x)?;
        let heads = if l == hkv * dk.as_const().unwrap_or(-1) { hkv } else { l };
        split_heads(cx, n, what, x, heads)
    };
    let dk_c = dk.as_const().unwrap_or(-1);
    let decay4 = match decay {
        Some(d) => Some(per_step(cx, "decay", d, &[hkv, hkv * dk_c])?),
        None => None,
    };
    let beta4 = match beta {
        Some(b) => Some(per_step(cx, "beta", b, &[hkv, 1])?),
        None => None,
    };
    let state_dt = match past {
        Some(p) => cx.ty(p).dtype,
        None => out_dt,
    };
    let mut state = match past {
        Some(p) => {
            let want = vec![batch.clone(), Dim::c(hkv), dk.clone(), dv.clone()];
            if cx.ty(p).shape != want {
                return Err(n.err(format!(
                    "past_state {} must be [B, kv_num_heads, dk, dv] = {want:?}",
                    cx.ty(p).describe()
                )));
            }
            Some(f32_(cx, "state_f32", p)?)
        }
        None => None,
    };
    let scale = match n.attr_f("scale", 0.0)? {
        s if s != 0.0 => s as f64,
        _ => {
            let d = dk
                .as_const()
                .ok_or_else(|| n.err("the key head size must be concrete"))?;
            1.0 / (d as f64).sqrt()
        }
    };
    let step = |cx: &mut Ctx, what: &str, x: NodeId, t: i64| {
        cx.add(
            n,
            &format!("{what}_{t}"),
            Op::Slice {
                axes: vec![SliceAxis {
                    axis: 2,
                    start: t,
                    end: t + 1,
                    step: 1,
                }],
            },
            &[x],
        )
    };
    let mut outs = Vec::new();
    for t in 0..steps {
        let q_t = step(cx, "q", q4, t)?;
        let k_t = step(cx, "k", k4, t)?;
        let mut v_t = step(cx, "v", v4, t)?;
        let k_col = transpose(cx, n, &format!("k_col_{t}"), k_t, vec![0, 1, 3, 2])?;
        if let (Some(d4), Some(s)) = (decay4, state) {
            let g = step(cx, "decay", d4, t)?;
            let g = cx.add(n, &format!("decay_exp_{t}"), Op::Unary(UnaryOp::Exp), &[g])?;
            let g = transpose(cx, n, &format!("decay_col_{t}"), g, vec![0, 1, 3, 2])?;
            state = Some(bin(cx, n, &format!("state_decayed_{t}"), BinaryOp::Mul, s, g)?);
        }
        if let Some(b4) = beta4 {
            if let Some(s) = state {
                let r = cx.add(n, &format!("retrieved_{t}"), Op::MatMul, &[k_t, s])?;
                v_t = bin(cx, n, &format!("v_err_{t}"), BinaryOp::Sub, v_t, r)?;
            }
            let b = step(cx, "beta", b4, t)?;
            v_t = bin(cx, n, &format!("v_beta_{t}"), BinaryOp::Mul, v_t, b)?;
        }
        let upd = bin(cx, n, &format!("outer_{t}"), BinaryOp::Mul, k_col, v_t)?;
        let s = match state {
            Some(s) => bin(cx, n, &format!("state_{t}"), BinaryOp::Add, s, upd)?,
            None => upd,
        };
        state = Some(s);
        let qg = reshape(
            cx,
            n,
            &format!("q_grouped_{t}"),
            q_t,
            vec![batch.clone(), Dim::c(hkv), Dim::c(group), dk.clone()],
        )?;
        let y = cx.add(n, &format!("y_{t}"), Op::MatMul, &[qg, s])?;
        outs.push(reshape(
            cx,
            n,
            &format!("y_heads_{t}"),
            y,
            vec![batch.clone(), Dim::c(hq), Dim::c(1), dv.clone()],
        )?);
    }
    let y = if outs.len() == 1 {
        outs[0]
    } else {
        cx.add(n, "outputs", Op::Concat { axis: 2 }, &outs)?
    };
    let sc = cx.scalar(n, "scale", DType::F32, scale);
    let y = bin(cx, n, "scaled", BinaryOp::Mul, y, sc)?;
    let y = transpose(cx, n, "y_bthd", y, vec![0, 2, 1, 3])?;
    let mut y = reshape(
        cx,
        n,
        "y_merged",
        y,
        vec![batch.clone(), qt.shape[1].clone(), Dim::c(hq).mul(&dv)],
    )?;
    if out_dt != DType::F32 {
        y = cx.add(n, "output", Op::Cast(out_dt), &[y])?;
    }
    let mut s = state.ok_or_else(|| n.err("the sequence is empty"))?;
    if state_dt != DType::F32 {
        s = cx.add(n, "present_state", Op::Cast(state_dt), &[s])?;
    }
    Ok(vec![Value::Node(y), Value::Node(s)])
}

/// `CausalConvWithState` (opset 27): a depthwise causal 1-D convolution over
/// `[past_state (or zeros), input]` as one tensor expression (unrolled over the kernel, summed
/// in f32), optional bias and SiLU; `present_state` is the last `k - 1` padded steps.
pub(crate) fn causal_conv_with_state(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let x = cx.input(n, 0)?;
    let w = cx.input(n, 1)?;
    let bias = cx.opt_input(n, 2)?;
    let past = cx.opt_input(n, 3)?;
    let act = n.attr_s("activation")?.unwrap_or_else(|| "none".into());
    let silu = match act.as_str() {
        "none" => false,
        "silu" | "swish" => true,
        other => return Err(n.err(format!("activation must be none, silu or swish, got '{other}'"))),
    };
    let xt = cx.ty(x).clone();
    let wt = cx.ty(w).clone();
    let dt = xt.dtype;
    if xt.rank() != 3 || wt.rank() != 3 || !dt.is_float() {
        return Err(n.err(format!(
            "input must be float [B, C, T] and weight [C, 1, k], got {} and {}",
            xt.describe(),
            wt.describe()
        )));
    }
    let k = wt.shape[2]
        .as_const()
        .ok_or_else(|| n.err("the kernel size must be concrete"))?;
    let pad = k - 1;
    let (b, c, t) = (xt.shape[0].clone(), xt.shape[1].clone(), xt.shape[2].clone());
    let mut ins = vec![x, w];
    let past_slot = past.map(|p| {
        ins.push(p);
        ins.len() - 1
    });
    let bias_slot = bias.map(|p| {
        ins.push(p);
        ins.len() - 1
    });
    let f = |e: Expr, from: DType| {
        if from == DType::F32 {
            e
        } else {
            Expr::Cast(Box::new(e), from, DType::F32)
        }
    };
    let dts: Vec<DType> = ins.iter().map(|&i| cx.ty(i).dtype).collect();
    // Element j of the padded sequence of (b, c), in f32.
    let padded = |j: Expr| -> Expr {
        let from_x = f(
            Expr::Load {
                input: 0,
                index: vec![Expr::Coord(0), Expr::Coord(1), j.clone().sub(Expr::int(pad))],
            },
            dt,
        );
        let from_past = match past_slot {
            Some(s) => f(
                Expr::Load {
                    input: s,
                    index: vec![Expr::Coord(0), Expr::Coord(1), j.clone()],
                },
                dts[s],
            ),
            None => Expr::Lit(0.0, DType::F32),
        };
        Expr::select(j.cmp(BinaryOp::Less, Expr::int(pad), DType::I32), from_past, from_x)
    };
    let fb = |op, a: Expr, c: Expr| Expr::Binary(op, Box::new(a), Box::new(c), DType::F32);
    let mut acc = match bias_slot {
        Some(s) => f(
            Expr::Load {
                input: s,
                index: vec![Expr::Coord(1)],
            },
            dts[s],
        ),
        None => Expr::Lit(0.0, DType::F32),
    };
    for i in 0..k {
        let wv = f(
            Expr::Load {
                input: 1,
                index: vec![Expr::Coord(1), Expr::int(0), Expr::int(i)],
            },
            wt.dtype,
        );
        acc = fb(
            BinaryOp::Add,
            acc,
            fb(BinaryOp::Mul, wv, padded(Expr::Coord(2).add(Expr::int(i)))),
        );
    }
    if dt != DType::F32 {
        // The reference rounds the convolution to the input type before the activation.
        acc = Expr::Cast(Box::new(Expr::Cast(Box::new(acc), DType::F32, dt)), dt, DType::F32);
    }
    if silu {
        let s = Expr::Unary(UnaryOp::Sigmoid, Box::new(acc.clone()), DType::F32);
        acc = fb(BinaryOp::Mul, acc, s);
    }
    let out = if dt == DType::F32 {
        acc
    } else {
        Expr::Cast(Box::new(acc), DType::F32, dt)
    };
    let y = cx.add(
        n,
        "output",
        Op::Compute {
            shape: vec![b.clone(), c.clone(), t.clone()],
            dtype: dt,
            expr: out,
            name: "CausalConv".into(),
        },
        &ins,
    )?;
    // present_state[.., j] = padded[.., T + j].
    let mut st = padded(Expr::Coord(2).add(Expr::Dim(t.clone())));
    if dt != DType::F32 {
        st = Expr::Cast(Box::new(st), DType::F32, dt);
    }
    let state = cx.add(
        n,
        "present_state",
        Op::Compute {
            shape: vec![b, c, Dim::c(pad)],
            dtype: dt,
            expr: st,
            name: "CausalConvState".into(),
        },
        &ins,
    )?;
    Ok(vec![Value::Node(y), Value::Node(state)])
}
