//! ONNX lowerings of NLP-family ops (attention, losses, gathers, composed math), each checked
//! through the reference interpreter against values from direct Rust references or by hand.

use kiln_compiler::frontend::onnx::builder::{d, DataType, ModelBuilder, NodeRef};
use kiln_compiler::frontend::onnx::load_onnx_bytes;
use kiln_ir::{interp, DType, DimBindings, Tensor};
use std::collections::HashMap;

/// A model importing `opset` whose graph inputs are declared from the given tensors.
fn model(opset: i64, inputs: &[(&str, &Tensor)]) -> ModelBuilder {
    let mut b = ModelBuilder::new("nlp");
    b.opset(opset);
    for (name, t) in inputs.iter().filter(|(n, _)| !n.is_empty()) {
        let dt = match t.dtype() {
            DType::F32 => DataType::Float,
            DType::F16 => DataType::Float16,
            DType::I32 => DataType::Int64,
            DType::Bool => DataType::Bool,
            DType::U32 => DataType::Uint32,
            DType::U8 => DataType::Uint8,
            DType::I8 => DataType::Int8,
        };
        let dims: Vec<_> = t.shape.iter().map(|&s| d(s)).collect();
        b.input(name, dt, &dims);
    }
    b
}

/// Builds a one-node model `op(inputs) -> outputs` (an empty input name is an absent optional
/// input; all outputs are declared with `out_dt`, `Undefined` for no check), runs
/// it through the interpreter and returns the outputs by name.
fn run_op(
    opset: i64,
    op: &str,
    inputs: &[(&str, &Tensor)],
    outputs: &[&str],
    out_dt: DataType,
    attrs: impl FnOnce(NodeRef<'_>),
) -> HashMap<String, Tensor> {
    let mut b = model(opset, inputs);
    let names: Vec<&str> = inputs.iter().map(|(n, _)| *n).collect();
    attrs(b.node(op, &names, outputs));
    for o in outputs.iter().filter(|o| !o.is_empty()) {
        b.output(o, out_dt);
    }
    let m = load_onnx_bytes(&b.encode(), "nlp", &DimBindings::new()).unwrap_or_else(|e| panic!("load: {e}"));
    let ins = inputs
        .iter()
        .filter(|(n, _)| !n.is_empty())
        .map(|(n, t)| (n.to_string(), (*t).clone()))
        .collect();
    interp::evaluate(&m.graph, &ins).unwrap_or_else(|e| panic!("evaluate: {e}"))
}

fn load_err(b: &ModelBuilder) -> String {
    match load_onnx_bytes(&b.encode(), "nlp", &DimBindings::new()) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "length: got {got:?}, want {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= tol * (1.0 + w.abs());
        assert!(ok, "element {i}: got {g}, want {w}\n got {got:?}\nwant {want:?}");
    }
}

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// Attention reference for 4-D `[B, H, S, D]` inputs with an optional additive `[S, T]` bias,
/// GQA by `h / (Hq / Hkv)`, causal offset `past`, optional softcap; rows with no attendable key
/// give zeros.
#[allow(clippy::too_many_arguments)]
fn attention_ref(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (b, hq, hkv, s, t, dh, dv): (usize, usize, usize, usize, usize, usize, usize),
    bias: Option<&[f32]>,
    causal_past: Option<usize>,
    scale: f32,
    softcap: f32,
) -> Vec<f32> {
    let mut y = vec![0.0; b * hq * s * dv];
    let rep = hq / hkv;
    for bi in 0..b {
        for h in 0..hq {
            let kh = h / rep;
            for i in 0..s {
                let mut logits = vec![0.0f32; t];
                let mut any = false;
                for (j, l) in logits.iter_mut().enumerate() {
                    let mut dot = 0.0;
                    for c in 0..dh {
                        dot += q[((bi * hq + h) * s + i) * dh + c] * k[((bi * hkv + kh) * t + j) * dh + c];
                    }
                    let mut x = dot * scale;
                    if softcap > 0.0 {
                        x = softcap * (x / softcap).tanh();
                    }
                    let mut m = bias.map_or(0.0, |bv| bv[i * t + j]);
                    if let Some(p) = causal_past {
                        if j > i + p {
                            m = f32::NEG_INFINITY;
                        }
                    }
                    any |= m != f32::NEG_INFINITY;
                    *l = x + m;
                }
                if !any {
                    continue;
                }
                let mx = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = logits.iter().map(|l| (l - mx).exp()).collect();
                let sum: f32 = e.iter().sum();
                for c in 0..dv {
                    let mut acc = 0.0;
                    for j in 0..t {
                        acc += e[j] / sum * v[((bi * hkv + kh) * t + j) * dv + c];
                    }
                    y[((bi * hq + h) * s + i) * dv + c] = acc;
                }
            }
        }
    }
    y
}

#[test]
fn attention_4d_gqa_causal_with_past() {
    let (b, hq, hkv, s, p, dh, dv) = (1, 4, 2, 2, 3, 4, 3);
    let t = p + s;
    let q = Tensor::f32(vec![b, hq, s, dh], values(b * hq * s * dh, 1));
    let k = Tensor::f32(vec![b, hkv, s, dh], values(b * hkv * s * dh, 2));
    let v = Tensor::f32(vec![b, hkv, s, dv], values(b * hkv * s * dv, 3));
    let pk = Tensor::f32(vec![b, hkv, p, dh], values(b * hkv * p * dh, 4));
    let pv = Tensor::f32(vec![b, hkv, p, dv], values(b * hkv * p * dv, 5));
    let out = run_op(
        23,
        "Attention",
        &[
            ("Q", &q),
            ("K", &k),
            ("V", &v),
            ("", &q),
            ("past_key", &pk),
            ("past_value", &pv),
        ],
        &["Y", "present_key", "present_value"],
        DataType::Float,
        |nd| {
            nd.attr_int("is_causal", 1);
        },
    );
    // Full K/V = concat(past, new) along the sequence axis.
    let cat = |past: &[f32], new: &[f32], w: usize| -> Vec<f32> {
        let mut o = Vec::new();
        for h in 0..hkv {
            o.extend_from_slice(&past[h * p * w..(h + 1) * p * w]);
            o.extend_from_slice(&new[h * s * w..(h + 1) * s * w]);
        }
        o
    };
    let kf = cat(&pk.to_f32(), &k.to_f32(), dh);
    let vf = cat(&pv.to_f32(), &v.to_f32(), dv);
    let want = attention_ref(
        &q.to_f32(),
        &kf,
        &vf,
        (b, hq, hkv, s, t, dh, dv),
        None,
        Some(p),
        1.0 / (dh as f32).sqrt(),
        0.0,
    );
    assert_eq!(out["Y"].shape, vec![b, hq, s, dv]);
    assert_close(&out["Y"].to_f32(), &want, 1e-5);
    assert_eq!(out["present_key"].shape, vec![b, hkv, t, dh]);
    assert_close(&out["present_key"].to_f32(), &kf, 0.0);
    assert_close(&out["present_value"].to_f32(), &vf, 0.0);
}

#[test]
fn attention_3d_bool_mask_padded_softcap_and_qk_output() {
    // 3-D inputs with 2 heads, a bool mask shorter than the keys (padded with "masked"), a
    // fully masked first row (zeros), softcap, explicit scale, and qk_matmul_output mode 2.
    let (b, h, s, t, dh) = (1, 2, 2, 3, 2);
    let q = Tensor::f32(vec![b, s, h * dh], values(b * s * h * dh, 7));
    let k = Tensor::f32(vec![b, t, h * dh], values(b * t * h * dh, 8));
    let v = Tensor::f32(vec![b, t, h * dh], values(b * t * h * dh, 9));
    let mask = Tensor::from_f64(DType::Bool, vec![s, 2], &[0.0, 0.0, 1.0, 0.0]);
    let out = run_op(
        23,
        "Attention",
        &[("Q", &q), ("K", &k), ("V", &v), ("attn_mask", &mask)],
        &["Y", "", "", "qk"],
        DataType::Float,
        |nd| {
            nd.attr_int("q_num_heads", h as i64)
                .attr_int("kv_num_heads", h as i64)
                .attr_float("scale", 0.7)
                .attr_float("softcap", 1.5)
                .attr_int("qk_matmul_output_mode", 2);
        },
    );
    // To [B, H, S, D].
    let heads = |x: &[f32], len: usize| -> Vec<f32> {
        let mut o = vec![0.0; x.len()];
        for i in 0..len {
            for hh in 0..h {
                for c in 0..dh {
                    o[(hh * len + i) * dh + c] = x[i * h * dh + hh * dh + c];
                }
            }
        }
        o
    };
    let (qh, kh, vh) = (heads(&q.to_f32(), s), heads(&k.to_f32(), t), heads(&v.to_f32(), t));
    let ninf = f32::NEG_INFINITY;
    let bias = [ninf, ninf, ninf, 0.0, ninf, ninf];
    let yh = attention_ref(&qh, &kh, &vh, (b, h, h, s, t, dh, dh), Some(&bias), None, 0.7, 1.5);
    let mut want = vec![0.0; yh.len()];
    for hh in 0..h {
        for i in 0..s {
            for c in 0..dh {
                want[i * h * dh + hh * dh + c] = yh[(hh * s + i) * dh + c];
            }
        }
    }
    assert_eq!(out["Y"].shape, vec![b, s, h * dh]);
    assert_close(&out["Y"].to_f32(), &want, 1e-5);
    // Row 0 is fully masked: zeros.
    assert_eq!(&out["Y"].to_f32()[..h * dh], &[0.0; 4]);
    // qk (mode 2) = softcapped scores + bias.
    let qk = out["qk"].to_f32();
    assert_eq!(out["qk"].shape, vec![b, h, s, t]);
    let dot: f32 = (0..dh).map(|c| qh[dh + c] * kh[c]).sum();
    assert_close(&[qk[t]], &[1.5 * (dot * 0.7 / 1.5).tanh()], 1e-5);
    assert_eq!(qk[0], ninf);
}

#[test]
fn attention_errors_name_the_problem() {
    let q = Tensor::f32(vec![1, 2, 6], vec![0.0; 12]);
    let mut b = model(23, &[("Q", &q), ("K", &q), ("V", &q)]);
    b.node("Attention", &["Q", "K", "V"], &["Y"]);
    b.output("Y", DataType::Float);
    assert!(load_err(&b).contains("q_num_heads"), "{}", load_err(&b));
}

/// Reference NLL loss over `[N, C, D]` log-probabilities.
fn nll_ref(
    x: &[f32],
    target: &[i32],
    (n, c, dd): (usize, usize, usize),
    weight: Option<&[f32]>,
    ignore: Option<i32>,
    reduction: &str,
) -> Vec<f32> {
    let mut loss = vec![0.0; n * dd];
    let mut w = vec![0.0; n * dd];
    for i in 0..n {
        for j in 0..dd {
            let t = target[i * dd + j];
            if Some(t) == ignore {
                continue;
            }
            let wt = weight.map_or(1.0, |ws| ws[t as usize]);
            w[i * dd + j] = wt;
            loss[i * dd + j] = -x[(i * c + t as usize) * dd + j] * wt;
        }
    }
    match reduction {
        "none" => loss,
        "sum" => vec![loss.iter().sum()],
        _ if weight.is_some() || ignore.is_some() => {
            vec![loss.iter().sum::<f32>() / w.iter().sum::<f32>()]
        }
        _ => vec![loss.iter().sum::<f32>() / loss.len() as f32],
    }
}

#[test]
fn nll_loss_reductions_weights_and_ignore_index() {
    let (n, c, dd) = (2, 3, 2);
    let x = Tensor::f32(vec![n, c, dd], values(n * c * dd, 11));
    let target = Tensor::i32(vec![n, dd], vec![0, 2, 1, 1]);
    let w = Tensor::f32(vec![c], vec![0.5, 2.0, 1.0]);
    for reduction in ["none", "sum", "mean"] {
        for ignore in [None, Some(1)] {
            for weighted in [false, true] {
                let mut ins = vec![("x", &x), ("t", &target)];
                if weighted {
                    ins.push(("w", &w));
                }
                let out = run_op(13, "NegativeLogLikelihoodLoss", &ins, &["y"], DataType::Float, |nd| {
                    let nd = nd.attr_str("reduction", reduction);
                    if let Some(i) = ignore {
                        nd.attr_int("ignore_index", i);
                    }
                });
                let want = nll_ref(
                    &x.to_f32(),
                    &target.to_f64().iter().map(|&v| v as i32).collect::<Vec<_>>(),
                    (n, c, dd),
                    weighted.then(|| w.to_f32()).as_deref(),
                    ignore.map(|i| i as i32),
                    reduction,
                );
                assert_close(&out["y"].to_f32(), &want, 1e-6);
            }
        }
    }
}

#[test]
fn softmax_cross_entropy_with_log_prob_output() {
    let (n, c) = (3, 4);
    let x = Tensor::f32(vec![n, c], values(n * c, 13));
    let target = Tensor::i32(vec![n], vec![3, -1, 0]);
    let out = run_op(
        13,
        "SoftmaxCrossEntropyLoss",
        &[("x", &x), ("t", &target)],
        &["loss", "log_prob"],
        DataType::Float,
        |nd| {
            nd.attr_int("ignore_index", -1);
        },
    );
    let xv = x.to_f32();
    let mut logp = vec![0.0; n * c];
    for i in 0..n {
        let row = &xv[i * c..(i + 1) * c];
        let mx = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let lse = row.iter().map(|v| (v - mx).exp()).sum::<f32>().ln() + mx;
        for j in 0..c {
            logp[i * c + j] = row[j] - lse;
        }
    }
    assert_close(&out["log_prob"].to_f32(), &logp, 1e-6);
    // Mean over the two kept rows.
    let want = -(logp[3] + logp[2 * c]) / 2.0;
    assert_close(&out["loss"].to_f32(), &[want], 1e-6);
    assert!(out["loss"].shape.is_empty());
}

#[test]
fn rotary_embedding_halves_interleaved_partial_and_3d() {
    // x: [B=1, H=2, S=2, D=4]; caches indexed by position ids.
    let (h, s, dh) = (2, 2, 4);
    let x = Tensor::f32(vec![1, h, s, dh], values(h * s * dh, 21));
    let pos = Tensor::i32(vec![1, s], vec![3, 1]);
    let xv = x.to_f32();
    for interleaved in [0, 1] {
        for rot in [0, 2] {
            let w = if rot == 0 { dh / 2 } else { 1 };
            let cos = Tensor::f32(vec![5, w], values(5 * w, 22));
            let sin = Tensor::f32(vec![5, w], values(5 * w, 23));
            let (cv, sv) = (cos.to_f32(), sin.to_f32());
            let out = run_op(
                23,
                "RotaryEmbedding",
                &[("x", &x), ("cos", &cos), ("sin", &sin), ("pos", &pos)],
                &["y"],
                DataType::Float,
                |nd| {
                    nd.attr_int("interleaved", interleaved)
                        .attr_int("rotary_embedding_dim", rot);
                },
            );
            let r = if rot == 0 { dh } else { rot as usize };
            let half = r / 2;
            let mut want = xv.clone();
            for hh in 0..h {
                for i in 0..s {
                    let p = pos.to_f64()[i] as usize;
                    let base = (hh * s + i) * dh;
                    for k in 0..half {
                        let (c, sn) = (cv[p * w + k], sv[p * w + k]);
                        let (a, b) = if interleaved == 1 {
                            (base + 2 * k, base + 2 * k + 1)
                        } else {
                            (base + k, base + k + half)
                        };
                        want[a] = c * xv[a] - sn * xv[b];
                        want[b] = sn * xv[a] + c * xv[b];
                    }
                }
            }
            assert_close(&out["y"].to_f32(), &want, 1e-6);
        }
    }
    // 3-D input [B, S, H*D] without position ids (caches [B, S, D/2]) equals the 4-D result.
    let x3 = Tensor::f32(vec![1, s, h * dh], values(s * h * dh, 24));
    let c3 = Tensor::f32(vec![1, s, 2], values(4, 25));
    let s3 = Tensor::f32(vec![1, s, 2], values(4, 26));
    let y3 = run_op(
        23,
        "RotaryEmbedding",
        &[("x", &x3), ("cos", &c3), ("sin", &s3)],
        &["y"],
        DataType::Float,
        |nd| {
            nd.attr_int("num_heads", h as i64);
        },
    )["y"]
        .to_f32();
    let (xv, cv, sv) = (x3.to_f32(), c3.to_f32(), s3.to_f32());
    for i in 0..s {
        for hh in 0..h {
            let base = i * h * dh + hh * dh;
            for k in 0..2 {
                let (c, sn) = (cv[i * 2 + k], sv[i * 2 + k]);
                let (a, b) = (base + k, base + k + 2);
                assert_close(&[y3[a], y3[b]], &[c * xv[a] - sn * xv[b], sn * xv[a] + c * xv[b]], 1e-6);
            }
        }
    }
}

#[test]
fn gather_nd_with_batch_dims_and_negative_indices() {
    let data = Tensor::f32(vec![2, 2, 2], (0..8).map(|v| v as f32).collect());
    let idx = Tensor::i32(vec![2, 1, 2], vec![0, 1, -1, 0]);
    let y = run_op(
        13,
        "GatherND",
        &[("data", &data), ("idx", &idx)],
        &["y"],
        DataType::Float,
        |_| {},
    );
    assert_eq!(y["y"].shape, vec![2, 1, 2]);
    assert_eq!(y["y"].to_f32(), vec![2.0, 3.0, 4.0, 5.0]);
    let idx = Tensor::i32(vec![2, 1], vec![1, 0]);
    let y = run_op(
        13,
        "GatherND",
        &[("data", &data), ("idx", &idx)],
        &["y"],
        DataType::Float,
        |nd| {
            nd.attr_int("batch_dims", 1);
        },
    );
    assert_eq!(y["y"].shape, vec![2, 2]);
    assert_eq!(y["y"].to_f32(), vec![2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn reverse_sequence_tensor_scatter_and_compress() {
    let x = Tensor::f32(vec![3, 4], (0..12).map(|v| v as f32).collect());
    let lens = Tensor::i32(vec![3], vec![4, 0, 2]);
    let y = run_op(
        10,
        "ReverseSequence",
        &[("x", &x), ("l", &lens)],
        &["y"],
        DataType::Float,
        |nd| {
            nd.attr_int("batch_axis", 0).attr_int("time_axis", 1);
        },
    );
    assert_eq!(
        y["y"].to_f32(),
        vec![3.0, 2.0, 1.0, 0.0, 4.0, 5.0, 6.0, 7.0, 9.0, 8.0, 10.0, 11.0]
    );
    // Cache [B=2, T=4, D=1]; updates of length 2 written at 1 (linear) and 3 (circular wraps).
    let cache = Tensor::f32(vec![2, 4, 1], vec![0.0; 8]);
    let upd = Tensor::f32(vec![2, 2, 1], vec![1.0, 2.0, 3.0, 4.0]);
    let wi = Tensor::i32(vec![2], vec![1, 3]);
    let y = run_op(
        23,
        "TensorScatter",
        &[("c", &cache), ("u", &upd), ("w", &wi)],
        &["y"],
        DataType::Float,
        |nd| {
            nd.attr_str("mode", "circular");
        },
    );
    assert_eq!(y["y"].to_f32(), vec![0.0, 1.0, 2.0, 0.0, 4.0, 0.0, 0.0, 3.0]);
    // Compress with a constant condition along axis 1, and flattened.
    let mut b = model(11, &[("x", &x)]);
    b.initializer(kiln_compiler::frontend::onnx::builder::tensor_raw(
        "cond",
        DataType::Bool,
        &[4],
        vec![1, 0, 0, 1],
    ));
    b.node("Compress", &["x", "cond"], &["y"]).attr_int("axis", 1);
    b.node("Compress", &["x", "cond"], &["z"]);
    b.output("y", DataType::Float).output("z", DataType::Float);
    let m = load_onnx_bytes(&b.encode(), "nlp", &DimBindings::new()).unwrap();
    let out = interp::evaluate(&m.graph, &HashMap::from([("x".to_string(), x.clone())])).unwrap();
    assert_eq!(out["y"].to_f32(), vec![0.0, 3.0, 4.0, 7.0, 8.0, 11.0]);
    assert_eq!(out["z"].to_f32(), vec![0.0, 3.0]);
}

#[test]
fn inverse_trig_and_hyperbolic_match_std() {
    type F = fn(f64) -> f64;
    let cases: [(&str, F, f32, f32); 6] = [
        ("Atan", f64::atan, -30.0, 30.0),
        ("Asin", f64::asin, -1.0, 1.0),
        ("Acos", f64::acos, -1.0, 1.0),
        ("Asinh", f64::asinh, -20.0, 20.0),
        ("Acosh", f64::acosh, 1.0, 50.0),
        ("Atanh", f64::atanh, -0.999, 0.999),
    ];
    for (op, f, lo, hi) in cases {
        let k = 401;
        let xs: Vec<f32> = (0..k).map(|i| lo + (hi - lo) * i as f32 / (k - 1) as f32).collect();
        let x = Tensor::f32(vec![k], xs.clone());
        let got = run_op(22, op, &[("x", &x)], &["y"], DataType::Float, |_| {})["y"].to_f32();
        for (g, &xv) in got.iter().zip(&xs) {
            let w = f(xv as f64);
            assert!(
                (*g as f64 - w).abs() <= 2e-6 * (1.0 + w.abs()),
                "{op}({xv}) = {g}, want {w}"
            );
        }
    }
}

#[test]
fn swish_and_swiglu() {
    let a = Tensor::f32(vec![2, 3], values(6, 31));
    let b = Tensor::f32(vec![2, 3], values(6, 32));
    let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
    let y = run_op(23, "Swish", &[("a", &a)], &["y"], DataType::Float, |nd| {
        nd.attr_float("alpha", 0.5);
    });
    let want: Vec<f32> = a.to_f32().iter().map(|&v| v * sig(0.5 * v)).collect();
    assert_close(&y["y"].to_f32(), &want, 1e-6);
    let y = run_op(23, "SwiGLU", &[("a", &a), ("b", &b)], &["y"], DataType::Float, |_| {});
    let want: Vec<f32> = a
        .to_f32()
        .iter()
        .zip(b.to_f32())
        .map(|(&v, w)| v * sig(v) * w)
        .collect();
    assert_close(&y["y"].to_f32(), &want, 1e-6);
}

#[test]
fn qlinear_matmul_requantizes_with_rounding_and_saturation() {
    let a = Tensor::from_f64(DType::U8, vec![2, 3], &[10.0, 200.0, 30.0, 0.0, 255.0, 128.0]);
    let b = Tensor::from_f64(DType::U8, vec![3, 2], &[1.0, 250.0, 100.0, 3.0, 128.0, 60.0]);
    let sc = |v: f32| Tensor::f32(vec![1], vec![v]);
    let zp = |v: f64| Tensor::from_f64(DType::U8, vec![1], &[v]);
    let (a_s, b_s, y_s) = (sc(0.02), sc(0.03), sc(0.1));
    let (a_z, b_z, y_z) = (zp(128.0), zp(100.0), zp(120.0));
    let y = run_op(
        21,
        "QLinearMatMul",
        &[
            ("a", &a),
            ("a_scale", &a_s),
            ("a_zp", &a_z),
            ("b", &b),
            ("b_scale", &b_s),
            ("b_zp", &b_z),
            ("y_scale", &y_s),
            ("y_zp", &y_z),
        ],
        &["y"],
        DataType::Uint8,
        |_| {},
    );
    let (av, bv) = (a.to_f64(), b.to_f64());
    let mult = (0.02f32 * 0.03f32 / 0.1f32) as f64;
    let mut want = Vec::new();
    for i in 0..2 {
        for j in 0..2 {
            let c: f64 = (0..3).map(|k| (av[i * 3 + k] - 128.0) * (bv[k * 2 + j] - 100.0)).sum();
            let r = c * mult + 120.0;
            // Round half to even, then saturate.
            let r = if (r - r.trunc()).abs() == 0.5 {
                2.0 * (r / 2.0).round()
            } else {
                r.round()
            };
            want.push(r.clamp(0.0, 255.0));
        }
    }
    assert_eq!(y["y"].dtype(), DType::U8);
    assert_eq!(y["y"].to_f64(), want);
}

#[test]
fn dynamic_quantize_linear_outputs() {
    let x = Tensor::f32(vec![6], vec![0.0, 2.0, -3.0, -2.5, 1.34, 0.5]);
    let out = run_op(
        11,
        "DynamicQuantizeLinear",
        &[("x", &x)],
        &["y", "y_scale", "y_zp"],
        DataType::Undefined,
        |_| {},
    );
    // The ONNX operator documentation example (values checked with the onnx reference).
    assert_close(&out["y_scale"].to_f32(), &[0.019_607_844], 1e-7);
    assert_eq!(out["y_zp"].to_f64(), vec![153.0]);
    assert_eq!(out["y"].to_f64(), vec![153.0, 255.0, 0.0, 26.0, 221.0, 179.0]);
}

#[test]
fn attention_external_cache_padding_and_sliding_window() {
    // Opset 25: keys padded to T = 5 with 4 valid (nonpad_kv_seqlen), 2 queries, causal with a
    // left window of 1: query i (absolute position i + 4 - 2) sees keys p - 1 ..= p.
    let (hq, s, t, dh) = (2, 2, 5, 3);
    let q = Tensor::f32(vec![1, hq, s, dh], values(hq * s * dh, 41));
    let k = Tensor::f32(vec![1, 1, t, dh], values(t * dh, 42));
    let v = Tensor::f32(vec![1, 1, t, dh], values(t * dh, 43));
    let nonpad = Tensor::i32(vec![1], vec![4]);
    let out = run_op(
        25,
        "Attention",
        &[
            ("Q", &q),
            ("K", &k),
            ("V", &v),
            ("", &q),
            ("", &q),
            ("", &q),
            ("nonpad", &nonpad),
        ],
        &["Y"],
        DataType::Float,
        |nd| {
            nd.attr_int("is_causal", 1).attr_int("left_window_size", 1);
        },
    );
    let ninf = f32::NEG_INFINITY;
    let mut bias = vec![ninf; s * t];
    for i in 0..s {
        let p = i + 4 - s;
        for j in 0..t {
            if j <= p && p - j <= 1 && j < 4 {
                bias[i * t + j] = 0.0;
            }
        }
    }
    let want = attention_ref(
        &q.to_f32(),
        &k.to_f32(),
        &v.to_f32(),
        (1, hq, 1, s, t, dh, dh),
        Some(&bias),
        None,
        1.0 / (dh as f32).sqrt(),
        0.0,
    );
    assert_close(&out["Y"].to_f32(), &want, 1e-5);
}

#[test]
fn linear_attention_gated_delta_gqa_with_past() {
    // B=1, T=3, Hq=4, Hkv=2 (groups of 2), dk=dv=2; per-head decay and beta.
    let (t, hq, hkv, dk, dv) = (3usize, 4usize, 2usize, 2usize, 2usize);
    let q = Tensor::f32(vec![1, t, hq * dk], values(t * hq * dk, 51));
    let k = Tensor::f32(vec![1, t, hkv * dk], values(t * hkv * dk, 52));
    let v = Tensor::f32(vec![1, t, hkv * dv], values(t * hkv * dv, 53));
    let past = Tensor::f32(vec![1, hkv, dk, dv], values(hkv * dk * dv, 54));
    let decay = Tensor::f32(vec![1, t, hkv], values(t * hkv, 55));
    let beta = Tensor::f32(vec![1, t, hkv], values(t * hkv, 56));
    let out = run_op(
        27,
        "LinearAttention",
        &[
            ("q", &q),
            ("k", &k),
            ("v", &v),
            ("past", &past),
            ("decay", &decay),
            ("beta", &beta),
        ],
        &["y", "state"],
        DataType::Float,
        |nd| {
            nd.attr_int("q_num_heads", hq as i64)
                .attr_int("kv_num_heads", hkv as i64);
        },
    );
    let (qv, kv, vv) = (q.to_f32(), k.to_f32(), v.to_f32());
    let (dv_, bv) = (decay.to_f32(), beta.to_f32());
    let mut s = past.to_f32(); // [h][d][m]
    let scale = 1.0 / (dk as f32).sqrt();
    let mut y = vec![0.0f32; t * hq * dv];
    for i in 0..t {
        for h in 0..hkv {
            let g = dv_[i * hkv + h].exp();
            let kt: Vec<f32> = (0..dk).map(|d| kv[i * hkv * dk + h * dk + d]).collect();
            for e in s[h * dk * dv..(h + 1) * dk * dv].iter_mut() {
                *e *= g;
            }
            let mut vt: Vec<f32> = (0..dv).map(|m| vv[i * hkv * dv + h * dv + m]).collect();
            for (m, vm) in vt.iter_mut().enumerate() {
                let r: f32 = (0..dk).map(|d| s[(h * dk + d) * dv + m] * kt[d]).sum();
                *vm = bv[i * hkv + h] * (*vm - r);
            }
            for d in 0..dk {
                for m in 0..dv {
                    s[(h * dk + d) * dv + m] += kt[d] * vt[m];
                }
            }
        }
        for hh in 0..hq {
            let h = hh / (hq / hkv);
            for m in 0..dv {
                let acc: f32 = (0..dk)
                    .map(|d| qv[i * hq * dk + hh * dk + d] * s[(h * dk + d) * dv + m])
                    .sum();
                y[i * hq * dv + hh * dv + m] = scale * acc;
            }
        }
    }
    assert_eq!(out["y"].shape, vec![1, t, hq * dv]);
    assert_close(&out["y"].to_f32(), &y, 1e-5);
    assert_close(&out["state"].to_f32(), &s, 1e-5);
}

#[test]
fn causal_conv_with_state_bias_past_and_silu() {
    let (b, c, t, k) = (1usize, 2usize, 3usize, 3usize);
    let x = Tensor::f32(vec![b, c, t], values(c * t, 61));
    let w = Tensor::f32(vec![c, 1, k], values(c * k, 62));
    let bias = Tensor::f32(vec![c], vec![0.25, -0.5]);
    let past = Tensor::f32(vec![b, c, k - 1], values(c * (k - 1), 63));
    let out = run_op(
        27,
        "CausalConvWithState",
        &[("x", &x), ("w", &w), ("bias", &bias), ("past", &past)],
        &["y", "state"],
        DataType::Float,
        |nd| {
            nd.attr_str("activation", "silu");
        },
    );
    let (xv, wv, pv) = (x.to_f32(), w.to_f32(), past.to_f32());
    let mut y = Vec::new();
    let mut st = Vec::new();
    for ch in 0..c {
        let mut padded: Vec<f32> = pv[ch * (k - 1)..(ch + 1) * (k - 1)].to_vec();
        padded.extend_from_slice(&xv[ch * t..(ch + 1) * t]);
        for i in 0..t {
            let z: f32 = bias.to_f32()[ch] + (0..k).map(|j| wv[ch * k + j] * padded[i + j]).sum::<f32>();
            y.push(z / (1.0 + (-z).exp()));
        }
        st.extend_from_slice(&padded[t..]);
    }
    assert_close(&out["y"].to_f32(), &y, 1e-6);
    assert_eq!(out["state"].shape, vec![b, c, k - 1]);
    assert_close(&out["state"].to_f32(), &st, 0.0);
}

/// A naive einsum over explicit labels (no ellipsis) for checking.
fn einsum_ref(eq: &str, ops: &[(&[usize], Vec<f32>)]) -> (Vec<usize>, Vec<f32>) {
    let (lhs, rhs) = eq.split_once("->").expect("explicit output");
    let terms: Vec<Vec<char>> = lhs.split(',').map(|t| t.chars().collect()).collect();
    let out: Vec<char> = rhs.chars().collect();
    let mut size = HashMap::new();
    for (t, (shape, _)) in terms.iter().zip(ops) {
        for (c, &s) in t.iter().zip(shape.iter()) {
            size.insert(*c, s);
        }
    }
    let all: Vec<char> = {
        let mut v: Vec<char> = size.keys().copied().collect();
        v.sort();
        v
    };
    let out_shape: Vec<usize> = out.iter().map(|c| size[c]).collect();
    let mut res = vec![0.0f32; out_shape.iter().product::<usize>().max(1)];
    let total: usize = all.iter().map(|c| size[c]).product();
    for flat in 0..total {
        let mut rem = flat;
        let mut val = HashMap::new();
        for c in all.iter().rev() {
            val.insert(*c, rem % size[c]);
            rem /= size[c];
        }
        let mut p = 1.0;
        for (t, (shape, data)) in terms.iter().zip(ops) {
            let mut off = 0;
            for (c, &s) in t.iter().zip(shape.iter()) {
                off = off * s + val[c];
            }
            p *= data[off];
        }
        let mut o = 0;
        for (c, &s) in out.iter().zip(&out_shape) {
            o = o * s + val[c];
        }
        res[o] += p;
    }
    (out_shape, res)
}

#[test]
fn einsum_equations_match_a_naive_reference() {
    let cases: Vec<(&str, Vec<Vec<usize>>)> = vec![
        ("bij,bjk->bik", vec![vec![2, 2, 3], vec![2, 3, 4]]),
        ("ij->ji", vec![vec![3, 4]]),
        ("ij->i", vec![vec![3, 4]]),
        ("i,i->", vec![vec![5], vec![5]]),
        ("i,j->ij", vec![vec![3], vec![2]]),
        ("ii->i", vec![vec![3, 3]]),
        ("ii->", vec![vec![3, 3]]),
        ("ijk,jl->li", vec![vec![2, 3, 2], vec![3, 4]]),
        ("ij,jk,kl->il", vec![vec![2, 3], vec![3, 2], vec![2, 2]]),
        ("bhqd,bhkd->bhqk", vec![vec![1, 2, 3, 4], vec![1, 2, 5, 4]]),
    ];
    for (eq, shapes) in cases {
        let tensors: Vec<Tensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| Tensor::f32(s.clone(), values(s.iter().product(), 70 + i as u32)))
            .collect();
        let names = ["a", "b", "c"];
        let ins: Vec<(&str, &Tensor)> = names.iter().copied().zip(tensors.iter()).collect();
        let out = run_op(12, "Einsum", &ins, &["y"], DataType::Float, |nd| {
            nd.attr_str("equation", eq);
        });
        let ops: Vec<(&[usize], Vec<f32>)> = shapes
            .iter()
            .zip(&tensors)
            .map(|(s, t)| (s.as_slice(), t.to_f32()))
            .collect();
        let (shape, want) = einsum_ref(eq, &ops);
        assert_eq!(out["y"].shape, shape, "{eq}");
        assert_close(&out["y"].to_f32(), &want, 1e-5);
    }
    // Ellipsis and the implicit output ("...ii->...i" batch diagonal; "i,i" inner product).
    let x = Tensor::f32(vec![2, 3, 3], values(18, 80));
    let y = run_op(12, "Einsum", &[("x", &x)], &["y"], DataType::Float, |nd| {
        nd.attr_str("equation", "...ii ->...i");
    });
    let xv = x.to_f32();
    let want: Vec<f32> = (0..2)
        .flat_map(|b| (0..3).map(move |i| (b, i)))
        .map(|(b, i)| xv[b * 9 + i * 4])
        .collect();
    assert_eq!(y["y"].to_f32(), want);
    let v = Tensor::f32(vec![4], values(4, 81));
    let y = run_op(12, "Einsum", &[("a", &v), ("b", &v)], &["y"], DataType::Float, |nd| {
        nd.attr_str("equation", "i,i");
    });
    let dot: f32 = v.to_f32().iter().map(|a| a * a).sum();
    assert!(y["y"].shape.is_empty());
    assert_close(&y["y"].to_f32(), &[dot], 1e-6);
}

#[test]
fn bitwise_ops_and_shifts_match_rust_integer_semantics() {
    let a32: Vec<i32> = vec![-356387803, 2135392491, -1, i32::MIN, 0, 12345, -8, 7];
    let b32: Vec<i32> = vec![946286476, -2146992385, 5, -1, i32::MAX, -12345, 3, 31];
    let a = Tensor::i32(vec![8], a32.clone());
    let b = Tensor::i32(vec![8], b32.clone());
    let run2 = |op: &str, x: &Tensor, y: &Tensor, dir: Option<&str>| {
        let mut bld = ModelBuilder::new("bits");
        bld.opset(18);
        let dt = match x.dtype() {
            DType::I32 => DataType::Int32,
            DType::I8 => DataType::Int8,
            _ => DataType::Uint8,
        };
        bld.input("a", dt, &[d(x.shape[0])]).input("b", dt, &[d(y.shape[0])]);
        let nd = bld.node(op, &["a", "b"], &["y"]);
        if let Some(dir) = dir {
            nd.attr_str("direction", dir);
        }
        bld.output("y", dt);
        let m = load_onnx_bytes(&bld.encode(), "bits", &DimBindings::new()).unwrap();
        let ins = HashMap::from([("a".to_string(), x.clone()), ("b".to_string(), y.clone())]);
        interp::evaluate(&m.graph, &ins).unwrap()["y"].to_f64()
    };
    let got = |v: Vec<f64>| v.into_iter().map(|x| x as i64).collect::<Vec<_>>();
    let want = |f: &dyn Fn(i32, i32) -> i32| a32.iter().zip(&b32).map(|(&x, &y)| f(x, y) as i64).collect::<Vec<_>>();
    assert_eq!(got(run2("BitwiseAnd", &a, &b, None)), want(&|x, y| x & y));
    assert_eq!(got(run2("BitwiseOr", &a, &b, None)), want(&|x, y| x | y));
    assert_eq!(got(run2("BitwiseXor", &a, &b, None)), want(&|x, y| x ^ y));
    // Shifts: counts outside [0, 32) give 0 (left) or the sign fill (right).
    let sh = Tensor::i32(vec![8], vec![1, 4, 31, 1, 0, -1, 32, 31]);
    let shv = sh.to_f64();
    let left: Vec<i64> = a32
        .iter()
        .zip(&shv)
        .map(|(&x, &s)| {
            if (0.0..32.0).contains(&s) {
                x.wrapping_shl(s as u32) as i64
            } else {
                0
            }
        })
        .collect();
    let right: Vec<i64> = a32
        .iter()
        .zip(&shv)
        .map(|(&x, &s)| {
            if (0.0..32.0).contains(&s) {
                (x >> s as u32) as i64
            } else if x < 0 {
                -1
            } else {
                0
            }
        })
        .collect();
    assert_eq!(got(run2("BitShift", &a, &sh, Some("LEFT"))), left);
    assert_eq!(got(run2("BitShift", &a, &sh, Some("RIGHT"))), right);
    // 8-bit types wrap at 8 bits.
    let x8 = Tensor::from_f64(DType::I8, vec![4], &[64.0, -1.0, -128.0, 5.0]);
    let s8 = Tensor::from_f64(DType::I8, vec![4], &[1.0, 7.0, 1.0, 8.0]);
    assert_eq!(got(run2("BitShift", &x8, &s8, Some("LEFT"))), vec![-128, -128, 0, 0]);
    assert_eq!(got(run2("BitShift", &x8, &s8, Some("RIGHT"))), vec![32, -1, -64, 0]);
    let u8a = Tensor::from_f64(DType::U8, vec![3], &[0b1010_1100 as f64, 255.0, 1.0]);
    let u8b = Tensor::from_f64(DType::U8, vec![3], &[0b0110_0101 as f64, 15.0, 0.0]);
    assert_eq!(got(run2("BitwiseXor", &u8a, &u8b, None)), vec![0b1100_1001, 240, 1]);
    let not = run_op(18, "BitwiseNot", &[("x", &u8a)], &["y"], DataType::Uint8, |_| {});
    assert_eq!(got(not["y"].to_f64()), vec![0b0101_0011, 0, 254]);
}
