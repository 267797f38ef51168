//! Interpreter-level checks of the Llama graph: the KV cache, positions and the mask agree
//! between one prefill and token-by-token decoding.

use super::*;
use kiln_abi::BufferKind;

pub(crate) fn tiny(style: RopeStyle, tied: bool, qkv_bias: bool) -> LlamaConfig {
    LlamaConfig {
        name: "tiny-llama".into(),
        dim: 32,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        head_dim: 8,
        ffn: 48,
        vocab: 50,
        rope_base: 10000.0,
        rope_dims: 8,
        rope_style: style,
        rms_eps: 1e-5,
        tied_output: tied,
        qkv_bias,
        context: 32,
        kv_cache: super::DEFAULT_KV_CACHE,
        activations: super::DEFAULT_ACTIVATIONS,
    }
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let scale = a.iter().map(|v| v.abs() as f64).fold(1e-6, f64::max);
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs() / scale)
        .fold(0.0, f64::max)
}

#[test]
fn prefill_equals_token_by_token_decoding() {
    for (style, tied, bias) in [(RopeStyle::Normal, true, false), (RopeStyle::Neox, false, true)] {
        let c = tiny(style, tied, bias);
        let model = build(&c, &mut RandomWeights::new(&c, 7)).unwrap();
        let prompt = [3, 14, 15, 9, 2, 6];
        let mut whole = Reference::new(&model.graph);
        let a = whole.step(&prompt).unwrap();
        let mut one = Reference::new(&model.graph);
        let mut b = None;
        for &t in &prompt {
            b = Some(one.step(&[t]).unwrap());
        }
        let b = b.unwrap();
        // Same math in another order (f64 accumulation, f32 rounding per op): tiny differences.
        let d = max_rel_diff(&a.logits, &b.logits);
        assert!(d < 1e-5, "{style:?}: prefill vs decode logits differ by {d}");
        assert_eq!(a.next_token, b.next_token);
        // A chunked prefill continues from the cache too.
        let mut chunks = Reference::new(&model.graph);
        chunks.step(&prompt[..4]).unwrap();
        let c2 = chunks.step(&prompt[4..]).unwrap();
        assert!(max_rel_diff(&a.logits, &c2.logits) < 1e-5);
        assert_eq!(chunks.past(), prompt.len());
    }
}

#[test]
fn the_cache_changes_the_result_and_position_matters() {
    let c = tiny(RopeStyle::Normal, true, false);
    let model = build(&c, &mut RandomWeights::new(&c, 1)).unwrap();
    let mut r1 = Reference::new(&model.graph);
    r1.step(&[1, 2, 3]).unwrap();
    let with_context = r1.step(&[4]).unwrap();
    let mut r2 = Reference::new(&model.graph);
    let alone = r2.step(&[4]).unwrap();
    assert!(max_rel_diff(&with_context.logits, &alone.logits) > 1e-3);
    // Swapping two earlier tokens changes the result (RoPE makes attention order-aware).
    let mut r3 = Reference::new(&model.graph);
    r3.step(&[2, 1, 3]).unwrap();
    let swapped = r3.step(&[4]).unwrap();
    assert!(max_rel_diff(&with_context.logits, &swapped.logits) > 1e-4);
}

#[test]
fn rope_normal_rotates_adjacent_pairs_by_position() {
    // One head of 4 dims, all rotated, at position past + i; check against the formula.
    let c = LlamaConfig {
        heads: 1,
        kv_heads: 1,
        head_dim: 4,
        rope_dims: 4,
        rope_base: 100.0,
        ..tiny(RopeStyle::Normal, true, false)
    };
    for (style, pairs) in [
        (RopeStyle::Normal, [(0usize, 1usize), (2, 3)]),
        (RopeStyle::Neox, [(0, 2), (1, 3)]),
    ] {
        let c = LlamaConfig {
            rope_style: style,
            ..c.clone()
        };
        let mut b = graph_builder_for_test(&c);
        let x = b.graph_mut().add_input(
            "x",
            kiln_ir::TensorType {
                dtype: kiln_ir::DType::F32,
                shape: vec![Dim::sym(N), Dim::c(1), Dim::c(4)],
            },
        );
        let (cos, sin) = graph::rope_tables_for_test(&c);
        let cos = b.graph_mut().add_const("cos", cos);
        let sin = b.graph_mut().add_const("sin", sin);
        let y = b.rope_for_test(x, cos, sin);
        b.graph_mut().add_output("y", y);
        let xs = [0.5f32, -1.0, 2.0, 0.25, 1.5, 0.75, -0.5, 1.0];
        let inputs = [("x".to_string(), kiln_ir::Tensor::f32(vec![2, 1, 4], xs.to_vec()))].into();
        let past = 3;
        let scalars = [(PAST.to_string(), past)].into_iter().collect();
        let out = kiln_ir::interp::evaluate_with(b.graph_mut(), &inputs, &scalars, &mut Default::default()).unwrap();
        let y = out["y"].to_f32();
        for i in 0..2 {
            for (j, &(a, bb)) in pairs.iter().enumerate() {
                let theta = (past as f64 + i as f64) * 100f64.powf(-2.0 * j as f64 / 4.0);
                let (xa, xb) = (xs[i * 4 + a] as f64, xs[i * 4 + bb] as f64);
                let ya = xa * theta.cos() - xb * theta.sin();
                let yb = xa * theta.sin() + xb * theta.cos();
                assert!((y[i * 4 + a] as f64 - ya).abs() < 1e-5, "{style:?} row {i} dim {a}");
                assert!((y[i * 4 + bb] as f64 - yb).abs() < 1e-5, "{style:?} row {i} dim {bb}");
            }
        }
    }
}

use kiln_ir::Dim;

fn graph_builder_for_test(c: &LlamaConfig) -> graph::TestBuilder<'_> {
    graph::TestBuilder::new(c)
}

#[test]
fn running_past_the_context_is_refused() {
    let c = tiny(RopeStyle::Normal, true, false);
    let model = build(&c, &mut RandomWeights::new(&c, 1)).unwrap();
    let mut r = Reference::new(&model.graph);
    r.step(&[1; 30]).unwrap();
    let e = r.step(&[1, 2, 3]).unwrap_err().to_string();
    assert!(e.contains("exceeds") && e.contains("32"), "{e}");
}

#[test]
fn a_missing_tensor_and_a_bad_config_are_named() {
    let c = tiny(RopeStyle::Normal, false, false);
    let mut w = RandomWeights::new(&c, 1);
    w.remove("blk.1.ffn_up.weight");
    let e = build(&c, &mut w).unwrap_err().to_string();
    assert!(e.contains("missing tensor 'blk.1.ffn_up.weight'"), "{e}");
    let bad = LlamaConfig { kv_heads: 3, ..c };
    let e = build(&bad, &mut RandomWeights::new(&tiny(RopeStyle::Normal, false, false), 1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("kv_heads"), "{e}");
}

#[test]
fn the_bundle_has_two_programs_sharing_weights_and_the_kv_cache() {
    let c = tiny(RopeStyle::Normal, true, false);
    let model = build(&c, &mut RandomWeights::new(&c, 1)).unwrap();
    let b = compile_llm(&model, &CompileOptions::default()).unwrap();
    let m = &b.manifest;
    let names: Vec<&str> = m.programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, [PREFILL, DECODE]);
    assert_eq!(m.states.len(), 2 * c.layers);
    for st in &m.states {
        assert_eq!(st.shape, [32, 2, 8]);
        assert_eq!(m.buffers[st.buffer].kind, BufferKind::State);
    }
    // Every weight once, although both programs read them.
    let single = crate::compile(
        &model,
        &CompileOptions {
            dims: [(N.to_string(), 1)].into_iter().collect(),
            ..Default::default()
        },
    )
    .unwrap();
    let names = |m: &kiln_abi::Manifest| {
        m.weights
            .iter()
            .map(|w| format!("{}{:?}", w.name, w.shape))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        m.weights.len(),
        single.manifest.weights.len(),
        "{:?} vs {:?}",
        names(m),
        names(&single.manifest)
    );
    for p in &m.programs {
        assert_eq!(p.scalars, [PAST]);
        let ins = p.inputs.as_ref().unwrap();
        let in_names: Vec<&str> = ins.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(in_names, [TOKENS, super::SAMPLING, super::RECENT_TOKENS]);
        assert!(
            ins[0].index_bound.is_some(),
            "token ids are checked against the vocabulary"
        );
    }
    // Each layer's K and V appends are one dispatch writing both states (lower::siblings).
    for p in &m.programs {
        let writes: Vec<usize> = p
            .dispatches
            .iter()
            .map(|d| {
                let k = &m.kernels[d.kernel];
                d.buffers
                    .iter()
                    .zip(&k.bindings[1..])
                    .filter(|(&b, kind)| {
                        **kind == kiln_abi::BindingKind::Storage && m.buffers[b].kind == BufferKind::State
                    })
                    .count()
            })
            .filter(|&n| n > 0)
            .collect();
        assert_eq!(
            writes,
            vec![2; c.layers],
            "program {}: state writes per dispatch",
            p.name
        );
    }
    let decode = m.programs[1].inputs.as_ref().unwrap();
    assert_eq!(decode[0].shape, [kiln_abi::SizeExpr::c(1)]);
    assert!(m.assumptions.iter().any(|a| a.max == kiln_abi::SizeExpr::c(32)));
}

fn load(bytes: Vec<u8>, context: Option<usize>) -> Result<crate::Model, LlmError> {
    let g = crate::frontend::gguf::Gguf::from_bytes(bytes)?;
    gguf::model_from_gguf(&g, "tiny", context)
}

#[test]
fn a_tied_packed_embedding_is_one_packed_constant_for_the_gather_and_the_head() {
    use kiln_ir::{BlockType, DType, Op};
    let c = LlamaConfig {
        dim: 64,
        ffn: 96,
        ..tiny(RopeStyle::Normal, true, false)
    };
    let f = load(gguf::random_gguf(&c, "llama", 3, BlockType::F32).unwrap(), None).unwrap();
    let f32_logits = Reference::new(&f.graph).step(&[1, 2, 3]).unwrap().logits;
    for block in [BlockType::Q8_0, BlockType::Q4_1] {
        let m = load(gguf::random_gguf(&c, "llama", 3, block).unwrap(), None).unwrap();
        let g = &m.graph;
        let tables: Vec<_> = g
            .topo_order()
            .into_iter()
            .filter(|&id| g.node(id).name == "token_embd.weight")
            .collect();
        assert_eq!(tables.len(), 1, "{block}: one copy of the table");
        assert_eq!(
            g.node(tables[0]).ty.dtype,
            DType::U32,
            "{block}: the table stays packed"
        );
        let users: Vec<_> = g.users_of(tables[0]).into_iter().map(|u| g.node(u).op.name()).collect();
        assert!(
            users.contains(&"QGather".to_string()) && users.contains(&"QMatMul".to_string()),
            "{block}: {users:?}"
        );
        // No f32 constant of the table's size exists anywhere in the graph.
        let f32_table = g.topo_order().into_iter().any(
            |id| matches!(&g.node(id).op, Op::Constant(t) if t.dtype() == DType::F32 && t.shape == [c.vocab, c.dim]),
        );
        assert!(!f32_table, "{block}: an f32 copy of the table");
        // The packed gather and head give logits close to the f32 file's (quantization error).
        let s = Reference::new(g).step(&[1, 2, 3]).unwrap();
        let d = max_rel_diff(&s.logits, &f32_logits);
        assert!(d < 0.1, "{block}: logits differ from f32 by {d}");
    }
}

#[test]
fn a_gguf_model_builds_the_same_graph_as_its_weights() {
    use kiln_ir::BlockType;
    for (arch, style, bias) in [("llama", RopeStyle::Normal, false), ("qwen2", RopeStyle::Neox, true)] {
        let c = LlamaConfig {
            dim: 64,
            ffn: 96,
            ..tiny(style, false, bias)
        };
        let from_file = load(gguf::random_gguf(&c, arch, 5, BlockType::F32).unwrap(), None).unwrap();
        let direct = build(&c, &mut RandomWeights::new(&c, 5)).unwrap();
        let a = Reference::new(&from_file.graph).greedy(&[1, 2, 3], 3).unwrap();
        let b = Reference::new(&direct.graph).greedy(&[1, 2, 3], 3).unwrap();
        assert_eq!(a, b, "{arch}: f32 GGUF weights give exactly the builder's model");
        // Q8_0 weights dequantize close to the f32 ones.
        let q = load(gguf::random_gguf(&c, arch, 5, BlockType::Q8_0).unwrap(), Some(16)).unwrap();
        let s = Reference::new(&q.graph).step(&[1, 2, 3]).unwrap();
        let d = max_rel_diff(&s.logits, &b[0].logits);
        assert!(d < 0.05, "{arch}: Q8_0 logits differ from f32 by {d}");
    }
}

#[test]
fn bad_gguf_models_are_clear_errors() {
    use crate::frontend::gguf::{Gguf, GgufWriter};
    let c = LlamaConfig {
        dim: 64,
        ffn: 96,
        ..tiny(RopeStyle::Normal, true, false)
    };
    let good = gguf::random_gguf(&c, "llama", 1, kiln_ir::BlockType::F32).unwrap();
    let e = load(good.clone(), Some(33)).unwrap_err().to_string();
    assert!(
        e.contains("--context 33 is longer than the model's context length 32"),
        "{e}"
    );
    let e = load(gguf::random_gguf(&c, "gpt2", 1, kiln_ir::BlockType::F32).unwrap(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unsupported architecture 'gpt2'"), "{e}");
    // Drop one tensor: rebuild the file without blk.1.ffn_down.weight.
    let g = Gguf::from_bytes(good).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata() {
        w = w.meta(k, v.clone());
    }
    for info in g.tensor_infos() {
        if info.name != "blk.1.ffn_down.weight" {
            w = w.tensor_raw(&info.name, &info.dims, info.type_id, g.tensor_bytes(info).to_vec());
        }
    }
    let e = load(w.to_bytes(), None).unwrap_err().to_string();
    assert_eq!(e, "missing tensor 'blk.1.ffn_down.weight'");
}

#[test]
fn an_f16_cache_needs_rows_of_even_length() {
    let c = LlamaConfig {
        head_dim: 15,
        rope_dims: 14,
        kv_heads: 1,
        heads: 1,
        kv_cache: kiln_ir::DType::F16,
        ..tiny(RopeStyle::Normal, true, false)
    };
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("an f16 KV cache needs an even row"), "{e}");
    let c = LlamaConfig {
        kv_cache: kiln_ir::DType::F32,
        ..c
    };
    c.validate().unwrap();
    let c = LlamaConfig {
        kv_cache: kiln_ir::DType::I32,
        ..c
    };
    assert!(c.validate().unwrap_err().to_string().contains("KV cache type i32"));
}

#[test]
fn auto_activations_round_only_inputs_of_heavy_projections() {
    use super::{Activations, AUTO_Q8_MIN_BYTES};
    assert!(!Activations::Auto.quantizes(AUTO_Q8_MIN_BYTES - 1));
    assert!(Activations::Auto.quantizes(AUTO_Q8_MIN_BYTES));
    assert!(Activations::Q8.quantizes(1));
    assert!(
        !Activations::Q8.quantizes(0),
        "no integer-dot weight, nothing to round for"
    );
    assert!(!Activations::F32.quantizes(u64::MAX));
    for (name, a) in [
        ("auto", Activations::Auto),
        ("q8", Activations::Q8),
        ("f32", Activations::F32),
    ] {
        assert_eq!(Activations::from_name(name), Some(a));
    }
    assert_eq!(Activations::from_name("q4"), None);
}
