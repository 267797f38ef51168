//! A tiny random-weight Llama on the GPU against the interpreter: prefill and ten decode
//! steps with the KV cache carried in GPU state buffers, logits within tolerance and greedy
//! tokens equal, at opt-levels 0 and 2, for both RoPE styles, GQA, tied and separate heads
//! and Qwen2-style q/k/v biases.

use kiln::abi::{BufferKind, ElemType};
use kiln::compiler::llm::{self, Activations, LlamaConfig, RandomWeights, Reference, RopeStyle};
use kiln::compiler::{write_bundle, CompileOptions};
use kiln::convert::rel_l2;
use kiln::ir::sample::SampleParams;
use kiln::ir::DType;
use kiln::runtime::llm::{Generator, Sampling};
use kiln::runtime::{Bundle, Session, SessionOptions};
use std::collections::HashMap;

fn config(style: RopeStyle, tied: bool, qkv_bias: bool) -> LlamaConfig {
    LlamaConfig {
        name: "tiny-llama".into(),
        dim: 64,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        head_dim: 16,
        ffn: 96,
        vocab: 97,
        rope_base: 10000.0,
        rope_dims: 16,
        rope_style: style,
        rms_eps: 1e-5,
        tied_output: tied,
        qkv_bias,
        context: 64,
        kv_cache: kiln::compiler::llm::DEFAULT_KV_CACHE,
        activations: kiln::compiler::llm::DEFAULT_ACTIVATIONS,
    }
}

/// f32 kernels against the interpreter's f64-accumulated, per-op-rounded f32 values: the
/// logits of this well-conditioned model agree to relative L2 error 1e-4 (the design
/// guide's f32 tolerance). Greedy tokens must be equal; a near tie is reported, not skipped.
const TOL: f64 = 1e-4;

fn check(c: &LlamaConfig, opt_level: u8) {
    let model = llm::build(c, &mut RandomWeights::new(c, 42)).unwrap();
    check_model(&model, &format!("{:?}", c.rope_style), opt_level);
}

/// [`check`] for a built model, `what` naming it in failures.
fn check_model(model: &kiln::compiler::Model, what: &str, opt_level: u8) {
    check_compiled(
        model,
        what,
        &CompileOptions {
            opt_level,
            ..Default::default()
        },
    );
}

/// [`check_model`] compiled with `opts`.
fn check_compiled(model: &kiln::compiler::Model, what: &str, opts: &CompileOptions) {
    let opt_level = opts.opt_level;
    let compiled = llm::compile_llm(model, opts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.kiln");
    write_bundle(&compiled, &path).unwrap();
    let bundle = Bundle::load(&path).unwrap();
    let mut session = Session::new(&bundle, &SessionOptions::default()).unwrap();
    let mut gen = Generator::new(&mut session).unwrap();
    let mut reference = Reference::new(&model.graph);

    let prompt = [5, 17, 42, 8, 91, 3, 60];
    let mut tokens = prompt.to_vec();
    for step in 0..11 {
        let gpu = gen.step(&tokens, true).unwrap();
        let cpu = reference.step(&tokens).unwrap();
        let logits = gpu.logits.unwrap();
        let err = rel_l2(&logits, &cpu.logits);
        let what = format!("{what} opt-level {opt_level} step {step}");
        assert!(err < TOL, "{what}: logits differ, relative L2 error {err}");
        assert_eq!(gpu.next_token, cpu.next_token, "{what}: greedy tokens differ");
        tokens = vec![gpu.next_token];
    }
    assert_eq!(gen.past(), prompt.len() + 10);
}

#[test]
fn tiny_llama_gpu_matches_the_interpreter_over_prefill_and_ten_decode_steps() {
    check(&config(RopeStyle::Normal, true, false), 2);
    check(&config(RopeStyle::Neox, false, true), 2);
    check(&config(RopeStyle::Normal, false, false), 0);
}

/// A quantized tiny Llama (GGUF blocks of several types, tied and untied head) with every
/// packed weight stored block-column-major (`--weight-layout block-columns`): the merged QKV
/// and gate/up weights, the row-parallel decode GEMVs and the prefill tiles reading them, and
/// a tied embedding read both by the gather and by the output head, against the interpreter.
#[test]
fn block_column_weights_generate_the_interpreter_s_tokens() {
    use kiln::ir::BlockType;
    for (tied, block) in [
        (true, BlockType::Q4_1),
        (false, BlockType::Q8_0),
        (true, BlockType::Q4_0),
    ] {
        let c = config(RopeStyle::Normal, tied, false);
        let bytes = llm::gguf::random_gguf(&c, "llama", 7, block).unwrap();
        let g = kiln::compiler::frontend::gguf::Gguf::from_bytes(bytes).unwrap();
        // 8-bit activations too: a row-parallel GEMV has no integer-dot form, so the
        // quantizers store f32 values for it.
        let c = LlamaConfig {
            activations: Activations::Q8,
            ..llm::gguf::config_from_gguf(&g, "tiny", Some(c.context)).unwrap()
        };
        let model = llm::build(&c, &mut llm::gguf::GgufWeights::new(&g)).unwrap();
        let opts = CompileOptions {
            quant_layout: kiln::compiler::QuantLayout::BlockColumns,
            ..Default::default()
        };
        let compiled = llm::compile_llm(&model, &opts).unwrap();
        let row_parallel = compiled
            .kernel_sources
            .iter()
            .filter(|(_, src)| src.contains("GEMV kernel, row-parallel"))
            .count();
        assert!(
            row_parallel >= 3,
            "{block} tied {tied}: {row_parallel} row-parallel GEMVs"
        );
        check_compiled(&model, &format!("block columns, {block}, tied {tied}"), &opts);
    }
}

/// Projection inputs rounded to 8 bits (`--activations q8`) for q4_0, q4_1 and q8_0 weights
/// (tied and untied heads): in the decode program the q/k/v, gate/up and head GEMVs normalize
/// and round their own x (no quantizer dispatch), the gate/up GEMV rounds the SwiGLU for the
/// down projection as it stores it, and the GEMVs take integer dot products;
/// the prompt's quantizers store f32 values for the tiled GEMMs. Against the
/// interpreter, which rounds the same activations, over prefill and ten decode steps; with
/// `auto` a model this small keeps f32 activations (no quantizer at all).
#[test]
fn eight_bit_activations_generate_the_interpreter_s_tokens() {
    use kiln::ir::BlockType;
    for (tied, block) in [
        (false, BlockType::Q4_1),
        (true, BlockType::Q8_0),
        (false, BlockType::Q4_0),
    ] {
        let c = config(RopeStyle::Neox, tied, true);
        let bytes = llm::gguf::random_gguf(&c, "llama", 13, block).unwrap();
        let g = kiln::compiler::frontend::gguf::Gguf::from_bytes(bytes).unwrap();
        let from_file = llm::gguf::config_from_gguf(&g, "tiny", Some(c.context)).unwrap();
        assert_eq!(from_file.activations, Activations::Auto);
        // (quantizer dispatches, GEMVs that round their outputs, integer-dot GEMVs, GEMVs
        // that round their own x) of the decode program.
        let quantizers = |c: &LlamaConfig| -> (usize, usize, usize, usize) {
            let model = llm::build(c, &mut llm::gguf::GgufWeights::new(&g)).unwrap();
            let compiled = llm::compile_llm(&model, &CompileOptions::default()).unwrap();
            let m = &compiled.manifest;
            let decode = m.programs.iter().find(|p| p.name == "decode").unwrap();
            let source = |d: &kiln::abi::Dispatch| {
                let file = &m.kernels[d.kernel].file;
                compiled
                    .kernel_sources
                    .iter()
                    .find(|(f, _)| f == file)
                    .map(|(_, src)| src.as_str())
                    .unwrap_or_default()
            };
            let rounding = |d: &&kiln::abi::Dispatch| d.label.ends_with(".q8");
            let gemv = |d: &&kiln::abi::Dispatch| m.kernels[d.kernel].schedule.starts_with("gemv");
            let q = decode.dispatches.iter().filter(|d| rounding(d) && !gemv(d)).count();
            let rounding_gemvs = decode
                .dispatches
                .iter()
                .filter(|d| rounding(d) && gemv(d) && source(d).contains("pack4xI8("))
                .count();
            let int_dots = decode
                .dispatches
                .iter()
                .filter(|d| source(d).contains("dot4I8Packed("))
                .count();
            let rounding_x = decode
                .dispatches
                .iter()
                .filter(|d| gemv(d) && source(d).contains("kiln_xs"))
                .count();
            (q, rounding_gemvs, int_dots, rounding_x)
        };
        assert_eq!(quantizers(&from_file), (0, 0, 0, 0), "{block}: auto at this size");
        let c = LlamaConfig {
            activations: Activations::Q8,
            ..from_file
        };
        // No quantizer dispatch: the q/k/v, gate/up and head GEMVs normalize and round their
        // own x (each norm's quantizer fused as the GEMV's prologue), the gate/up GEMV also
        // rounds down's input; the q/k/v, gate/up and down GEMVs and the head dot integers.
        let l = c.layers;
        assert_eq!(
            quantizers(&c),
            (0, l, 3 * l + 1, 2 * l + 1),
            "{block}: decode quantizers, rounding GEMVs, integer-dot GEMVs and GEMVs rounding their x"
        );
        let model = llm::build(&c, &mut llm::gguf::GgufWeights::new(&g)).unwrap();
        check_model(&model, &format!("8-bit activations, {block}, tied {tied}"), 2);
    }
}

/// Both KV cache types, each against the interpreter on the same graph: the f16 cache (the
/// default, two values per 32-bit word on the GPU) and the exact f32 one; the f16 bundle's
/// cache buffers are half the f32 one's.
#[test]
fn f16_and_f32_kv_caches_match_the_interpreter() {
    let mut sizes = Vec::new();
    for kv_cache in [DType::F16, DType::F32] {
        let c = LlamaConfig {
            kv_cache,
            ..config(RopeStyle::Normal, false, true)
        };
        check(&c, 2);
        let model = llm::build(&c, &mut RandomWeights::new(&c, 42)).unwrap();
        let m = llm::compile_llm(&model, &CompileOptions::default()).unwrap().manifest;
        let storage: Vec<_> = m.states.iter().map(|s| s.storage).collect();
        let want = if kv_cache == DType::F16 {
            ElemType::F16
        } else {
            ElemType::F32
        };
        assert!(
            storage.iter().all(|&s| s == want),
            "{kv_cache}: states stored as {storage:?}"
        );
        sizes.push(
            m.states
                .iter()
                .map(|s| m.buffers[s.buffer].size.as_const().unwrap())
                .sum::<i64>(),
        );
    }
    assert_eq!(2 * sizes[0], sizes[1], "f16 vs f32 cache bytes");
}

#[test]
fn greedy_generation_streams_tokens_and_stops_at_the_context() {
    let c = LlamaConfig {
        context: 12,
        ..config(RopeStyle::Normal, true, false)
    };
    let model = llm::build(&c, &mut RandomWeights::new(&c, 3)).unwrap();
    let compiled = llm::compile_llm(&model, &CompileOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.kiln");
    write_bundle(&compiled, &path).unwrap();
    let bundle = Bundle::load(&path).unwrap();
    let mut session = Session::new(&bundle, &SessionOptions::default()).unwrap();
    let prompt = [1, 2, 3, 4];
    let expected: Vec<i32> = Reference::new(&model.graph)
        .greedy(&prompt, 9)
        .unwrap()
        .iter()
        .map(|s| s.next_token)
        .collect();
    let mut got = Vec::new();
    {
        let mut gen = Generator::new(&mut session).unwrap();
        let stats = gen
            .generate_greedy(&prompt, 100, &mut |t: i32| {
                got.push(t);
                true
            })
            .unwrap();
        assert_eq!(stats.prompt_tokens, 4);
        // 4 prompt tokens + 8 decoded fill the 12-token cache; the 9th token is the last.
        assert_eq!(stats.decode_tokens, 8);
        let e = gen.step(&[1], false).unwrap_err().to_string();
        assert!(e.contains("context of 12"), "{e}");
    }
    assert_eq!(got, expected);
    // A new generator starts over (the cache is reset) and repeats the same tokens.
    let mut again = Vec::new();
    let mut gen = Generator::new(&mut session).unwrap();
    gen.generate_greedy(&prompt, 3, &mut |t: i32| {
        again.push(t);
        true
    })
    .unwrap();
    assert_eq!(again, expected[..3]);
    // The runtime itself refuses a step past the context (the manifest's assumption), and an
    // unknown scalar or output is named.
    let toks = HashMap::from([
        ("tokens".to_string(), kiln::runtime::HostTensor::from_i32(&[2], &[1, 2])),
        (
            "sampling".to_string(),
            kiln::runtime::HostTensor::from_i32(&[8], &Sampling::greedy().encode(0)),
        ),
        (
            "recent_tokens".to_string(),
            kiln::runtime::HostTensor::from_i32(&[64], &[-1; 64]),
        ),
    ]);
    let e = session
        .run_with("prefill", &toks, &[("past", 11)], Some(&["next_token"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("12"), "{e}");
    let e = session
        .run_with("prefill", &toks, &[("pos", 0)], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("'pos' is not a scalar"), "{e}");
    let e = session
        .run_with("prefill", &toks, &[("past", 0)], Some(&["probs"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no output 'probs'"), "{e}");
}

fn sample_params(s: Sampling) -> SampleParams {
    SampleParams {
        temperature: s.temperature,
        top_k: s.top_k,
        top_p: s.top_p,
        repeat_penalty: s.repeat_penalty,
        seed: s.seed,
    }
}

/// Generates `n` tokens after `prompt` with `s` on the GPU and on the interpreter, asserts
/// they are equal and returns them.
fn sampled(model: &kiln::compiler::Model, session: &mut Session, prompt: &[i32], n: usize, s: Sampling) -> Vec<i32> {
    let mut gpu = Vec::new();
    let mut gen = Generator::new(session).unwrap();
    gen.set_sampling(s).unwrap();
    gen.generate(prompt, n, &mut |t: i32| {
        gpu.push(t);
        true
    })
    .unwrap();
    let cpu: Vec<i32> = Reference::with_sampling(&model.graph, sample_params(s))
        .generate(prompt, n)
        .unwrap()
        .iter()
        .map(|s| s.next_token)
        .collect();
    assert_eq!(gpu, cpu, "{s:?}: GPU and interpreter drew different tokens");
    gpu
}

fn tiny_session(c: &LlamaConfig, seed: u64) -> (kiln::compiler::Model, Session) {
    let model = llm::build(c, &mut RandomWeights::new(c, seed)).unwrap();
    let compiled = llm::compile_llm(&model, &CompileOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.kiln");
    write_bundle(&compiled, &path).unwrap();
    let bundle = Bundle::load(&path).unwrap();
    let session = Session::new(&bundle, &SessionOptions::default()).unwrap();
    (model, session)
}

/// Sampling on the GPU (the bundle's `Sample` kernel) against the interpreter's reference
/// sampler: the same tokens for the same settings and seed. The two compute the same
/// penalized logits, keys, thresholds and sums in the same order; only `exp` may round
/// differently, which changes a token only if the draw lands within that rounding (~1e-6)
/// of a boundary between two tokens' cumulative weights, so a mismatch here is a bug.
#[test]
fn sampled_generation_on_the_gpu_matches_the_interpreter() {
    // A vocabulary over the kernel's 256 threads, so each thread scans several entries.
    let c = LlamaConfig {
        vocab: 613,
        context: 40,
        ..config(RopeStyle::Normal, false, false)
    };
    let (model, mut session) = tiny_session(&c, 11);
    let prompt = [5, 17, 42, 8, 91, 3, 60, 5, 17];
    let n = 16;
    let mut run = |s: Sampling| sampled(&model, &mut session, &prompt, n, s);
    let base = Sampling {
        temperature: 1.0,
        seed: 1,
        ..Sampling::greedy()
    };
    let greedy = run(Sampling::greedy());
    let t1 = run(base);
    let t1_seed2 = run(Sampling { seed: 2, ..base });
    let t3 = run(Sampling {
        temperature: 3.0,
        ..base
    });
    let top1 = run(Sampling { top_k: 1, ..base });
    let filtered = run(Sampling {
        temperature: 0.8,
        top_k: 40,
        top_p: 0.9,
        repeat_penalty: 1.3,
        seed: 7,
    });
    let nucleus = run(Sampling { top_p: 0.5, ..base });
    assert_eq!(run(base), t1, "the same seed repeats the sequence");
    assert_eq!(top1, greedy, "top-k 1 is greedy");
    assert_ne!(t1, t1_seed2, "another seed, another sequence");
    assert_ne!(t1, t3, "another temperature, another sequence");
    assert_ne!(t1, greedy, "sampling at temperature 1 is not greedy");
    assert_ne!(filtered, t1);
    assert_ne!(nucleus, t1);

    // The repetition penalty: this tied-head model greedily repeats the prompt's last token;
    // penalized strongly (its logit divided by 1000), it must move on (and the GPU still
    // agrees with the interpreter).
    let c = LlamaConfig {
        context: 40,
        ..config(RopeStyle::Normal, true, false)
    };
    let (model, mut session) = tiny_session(&c, 11);
    let greedy = sampled(&model, &mut session, &prompt, 8, Sampling::greedy());
    assert!(greedy.iter().all(|&t| t == 17), "{greedy:?}");
    let penalized = Sampling {
        repeat_penalty: 1000.0,
        ..Sampling::greedy()
    };
    let moved = sampled(&model, &mut session, &prompt, 8, penalized);
    assert_ne!(moved[0], 17, "{moved:?}");
    let warm = sampled(
        &model,
        &mut session,
        &prompt,
        8,
        Sampling {
            temperature: 0.9,
            top_k: 5,
            seed: 3,
            ..penalized
        },
    );
    assert!(warm.iter().all(|&t| t != 17), "{warm:?}");

    // The runtime's copy of the parameter layout is the compiler's.
    let s = Sampling {
        temperature: 0.7,
        top_k: 40,
        top_p: 0.95,
        repeat_penalty: 1.1,
        seed: 0x1234_5678_9abc_def0,
    };
    assert_eq!(s.encode(77).to_vec(), sample_params(s).encode(77).to_vec());
}

/// What the runtime allocates for a buffer of `bytes` (runtime `alloc_size`): whole words, at
/// least one 4-vector.
fn alloc(bytes: i64) -> u64 {
    ((bytes.max(0) as u64).div_ceil(4) * 4).max(16)
}

/// The session's memory report is exactly what the manifest says it allocates: every weight
/// and state buffer at its size, and each program's input and intermediate buffers at the
/// largest sizes the run bound (sizes grow with `past`), plus one 4-byte staging buffer per
/// program for the token id; the peak is at least what is held.
#[test]
fn the_memory_report_accounts_for_every_buffer() {
    let c = config(RopeStyle::Neox, false, true);
    let model = llm::build(&c, &mut RandomWeights::new(&c, 5)).unwrap();
    let compiled = llm::compile_llm(&model, &CompileOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.kiln");
    write_bundle(&compiled, &path).unwrap();
    let bundle = Bundle::load(&path).unwrap();
    let mut session = Session::new(&bundle, &SessionOptions::default()).unwrap();
    let m = bundle.manifest().clone();
    let before = session.memory_report();
    assert_eq!(before.intermediates + before.inputs + before.staging, 0, "{before:?}");
    let prompt = [1, 2, 3, 4, 5, 6, 7];
    let n = 6;
    let mut gen = Generator::new(&mut session).unwrap();
    gen.set_decode_batch(3);
    gen.generate_greedy(&prompt, n, &mut |_| true).unwrap();
    let r = session.memory_report();
    let sum = |kind: BufferKind, p: Option<(usize, HashMap<String, i64>)>| -> u64 {
        let ids: Vec<usize> = match &p {
            Some((pi, _)) => m.program_buffers(*pi),
            None => (0..m.buffers.len()).collect(),
        };
        ids.into_iter()
            .filter(|&b| m.buffers[b].kind == kind)
            .map(|b| {
                let bind = p.as_ref().map(|x| x.1.clone()).unwrap_or_default();
                alloc(m.buffers[b].size.eval(&bind).unwrap())
            })
            .sum()
    };
    assert_eq!(r.weights, sum(BufferKind::Weight, None));
    assert_eq!(r.states, sum(BufferKind::State, None));
    let bytes = if c.kv_cache == DType::F16 { 2 } else { 4 };
    let kv: u64 = (c.layers * 2 * c.context * c.kv_heads * c.head_dim * bytes) as u64;
    assert_eq!(r.states, kv, "the KV cache, {}", c.kv_cache);
    let prefill = (
        0,
        HashMap::from([("n".to_string(), prompt.len() as i64), ("past".to_string(), 0)]),
    );
    // The last decode step runs at past = prompt + n - 2.
    let decode = (1, HashMap::from([("past".to_string(), (prompt.len() + n - 2) as i64)]));
    for kind in [BufferKind::Input, BufferKind::Intermediate] {
        let mut want = sum(kind, Some(prefill.clone())) + sum(kind, Some(decode.clone()));
        if kind == BufferKind::Intermediate {
            // The report counts the attention's scratch with the intermediates.
            want += sum(BufferKind::Scratch, Some(prefill.clone())) + sum(BufferKind::Scratch, Some(decode.clone()));
        }
        let got = if kind == BufferKind::Input {
            r.inputs
        } else {
            r.intermediates
        };
        assert_eq!(got, want, "{kind:?}");
    }
    // The prefill's 4-byte token readback, and the chained decode's readback buffers of
    // 3 tokens each.
    assert_eq!(
        r.staging,
        4 + (kiln::runtime::llm::CHAIN_DEPTH * 12) as u64,
        "token readbacks"
    );
    assert!(r.uniforms > 0);
    assert_eq!(
        r.total(),
        r.weights + r.states + r.inputs + r.intermediates + r.uniforms + r.staging
    );
    assert!(r.peak >= r.total() && r.peak >= before.total());
    let text = r.to_string();
    assert!(text.contains("weights") && text.contains("peak"), "{text}");
}

/// `Op::Sample` alone at SmolLM2's vocabulary size (49152: ids above the recent-token
/// bitmap's 32768 bits alias, and each thread scans 192 entries) on two rows, GPU against the
/// interpreter over 40 draws for each setting.
#[test]
fn the_sample_op_at_a_large_vocabulary_matches_the_interpreter() {
    use kiln::ir::{DType, Dim, Graph, Op, Tensor, TensorType};
    let (rows, vocab, window) = (2usize, 49152usize, 64usize);
    let mut g = Graph::new();
    let ty = |dtype, shape: &[usize]| TensorType {
        dtype,
        shape: shape.iter().map(|&d| Dim::c(d as i64)).collect(),
    };
    let l = g.add_input("logits", ty(DType::F32, &[rows, vocab]));
    let p = g.add_input("sampling", ty(DType::I32, &[8]));
    let r = g.add_input("recent", ty(DType::I32, &[window]));
    let y = g.add("sample", Op::Sample, &[l, p, r]).unwrap();
    g.add_output("y", y);
    let model = kiln::compiler::Model {
        name: "sample".into(),
        graph: g,
        io_dtypes: Default::default(),
    };
    let dir = tempfile::tempdir().unwrap();
    kiln::compiler::compile_to_dir(&model, &CompileOptions::default(), &dir.path().join("b")).unwrap();
    let bundle = Bundle::load(dir.path().join("b")).unwrap();
    let mut session = Session::new(&bundle, &SessionOptions::default()).unwrap();
    // Logits like a language model's: a few strong candidates over a flat tail.
    let logits: Vec<f32> = kiln::demo::pseudo_random(rows * vocab, 3, 4.0)
        .iter()
        .enumerate()
        .map(|(i, &v)| if i % 997 == 5 { v.abs() + 8.0 } else { v })
        .collect();
    // Recent ids on both sides of the bitmap's wrap (33000 aliases 232) and padding.
    let mut recent: Vec<i32> = (0..40).map(|i| (i * 1229 % vocab) as i32).collect();
    recent.extend([5, 33_000, 232, 49_151, 997 + 5]);
    recent.resize(window, -1);
    let settings = [
        SampleParams::greedy(),
        SampleParams {
            repeat_penalty: 3.0,
            ..SampleParams::greedy()
        },
        SampleParams {
            temperature: 1.0,
            ..SampleParams::greedy()
        },
        SampleParams {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.9,
            repeat_penalty: 1.3,
            seed: 99,
        },
        SampleParams {
            temperature: 1.5,
            top_p: 0.5,
            seed: 5,
            ..SampleParams::greedy()
        },
    ];
    // Logits of few distinct values: the largest is tied at hundreds of indices spread over
    // every thread, so the argmax must keep the first.
    let tied: Vec<f32> = logits.iter().map(|v| v.round().min(3.0)).collect();
    // Peaked logits (one entry in 163 above a low floor): the sampling kernel's cuts (top-k
    // from the threads' maxima, top-p from the tail's weight) leave each thread a few
    // candidates, so its bisections read those alone.
    let peaked: Vec<f32> = logits
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 163 == 7 { 0.25 * v.abs() } else { -20.0 })
        .collect();
    // The largest entries all in one thread's stride (indices 256 j): under top-k or top-p that
    // thread has more candidates than it can keep, so every pass reads the whole row.
    let crowded: Vec<f32> = logits
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 256 == 0 { 6.0 + 0.25 * v.abs() } else { *v })
        .collect();
    let cases = settings
        .iter()
        .map(|s| (s, &logits))
        .chain(settings[..2].iter().map(|s| (s, &tied)))
        .chain(settings[2..].iter().map(|s| (s, &peaked)))
        .chain(settings[3..].iter().map(|s| (s, &crowded)));
    for (&s, logits) in cases {
        let mut seen = std::collections::HashSet::new();
        for step in 0..40u32 {
            let params = s.encode(step);
            let inputs = HashMap::from([
                ("logits".to_string(), Tensor::f32(vec![rows, vocab], logits.clone())),
                ("sampling".to_string(), Tensor::i32(vec![8], params.to_vec())),
                ("recent".to_string(), Tensor::i32(vec![window], recent.clone())),
            ]);
            let want = kiln::ir::interp::evaluate(&model.graph, &inputs).unwrap()["y"].to_f64();
            let host: HashMap<String, kiln::runtime::HostTensor> = inputs
                .iter()
                .map(|(k, t)| {
                    let e = if t.dtype() == DType::F32 {
                        kiln::abi::ElemType::F32
                    } else {
                        kiln::abi::ElemType::I32
                    };
                    (k.clone(), kiln::convert::to_host(t, e))
                })
                .collect();
            let got = session.run("run", &host).unwrap()[0].1.to_i64();
            let want: Vec<i64> = want.iter().map(|&v| v as i64).collect();
            assert_eq!(got, want, "{s:?} step {step}");
            seen.insert(got[0]);
            if s.temperature == 0.0 {
                assert!(!recent.contains(&(got[0] as i32)) || s.repeat_penalty == 1.0);
            }
        }
        if s.temperature > 0.0 {
            assert!(seen.len() > 1, "{s:?}: 40 draws gave one token");
        } else if std::ptr::eq(logits, &tied) && s.repeat_penalty == 1.0 {
            let first = tied.iter().position(|&v| v == 3.0).unwrap() as i64;
            assert!(
                seen.contains(&first),
                "{s:?}: the first of the tied largest logits is {first}, got {seen:?}"
            );
        }
    }
}

/// Generates with decode steps chained in batches of `batch` (0: the step-by-step loop),
/// stopping at the first `eos` token (not handed on, like the CLI's end of text). Returns the
/// tokens, the position after the generation, and the logits of one more step fed token 7
/// where the cache has room (they show that the KV cache holds the same rows in both modes).
fn generate_with_batch(
    session: &mut Session,
    prompt: &[i32],
    max_tokens: usize,
    s: Sampling,
    eos: Option<i32>,
    batch: usize,
) -> (Vec<i32>, usize, Option<Vec<f32>>) {
    let mut gen = Generator::new(session).unwrap();
    gen.set_sampling(s).unwrap();
    gen.set_decode_batch(batch);
    assert_eq!(gen.decode_batch(), batch, "the tiny bundle can chain");
    let mut got = Vec::new();
    let mut calls = 0;
    let stats = gen
        .generate(prompt, max_tokens, &mut |t: i32| {
            calls += 1;
            if Some(t) == eos {
                return false;
            }
            got.push(t);
            true
        })
        .unwrap();
    assert_eq!(
        stats.decode_tokens + 1,
        calls,
        "every decoded token went to the sink once"
    );
    let past = gen.past();
    let probe = (past < gen.context()).then(|| gen.step(&[7], true).unwrap().logits.unwrap());
    (got, past, probe)
}

/// Chained decoding (steps queued ahead, each token fed to the next step on the GPU, ids read
/// back in batches) draws exactly the tokens of the step-by-step loop, greedy and seeded with
/// a repetition penalty whose 64-token window wraps around, with max-tokens not a multiple of
/// the batch, with an end-of-text token in the middle of a batch, and at the end of the
/// context; afterwards the position and the KV cache are the same (one more step gives the
/// same logits bit for bit).
#[test]
fn chained_decoding_draws_the_tokens_of_the_step_by_step_loop() {
    let c = LlamaConfig {
        context: 96,
        ..config(RopeStyle::Normal, true, false)
    };
    let bytes = llm::gguf::random_gguf(&c, "llama", 11, kiln::ir::BlockType::Q4_1).unwrap();
    let g = kiln::compiler::frontend::gguf::Gguf::from_bytes(bytes).unwrap();
    let model = llm::gguf::model_from_gguf(&g, "tiny", Some(96)).unwrap();
    let compiled = llm::compile_llm(&model, &CompileOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.kiln");
    write_bundle(&compiled, &path).unwrap();
    let bundle = Bundle::load(&path).unwrap();
    let mut session = Session::new(&bundle, &SessionOptions::default()).unwrap();
    let prompt = [5, 17, 42, 8, 91, 3];
    let seeded = Sampling {
        temperature: 0.9,
        top_k: 40,
        top_p: 0.95,
        repeat_penalty: 1.3,
        seed: 1234,
    };
    for (what, s, max_tokens, batches) in [
        ("greedy", Sampling::greedy(), 23, &[1, 8][..]),
        ("seeded", seeded, 75, &[3, 8][..]),
        ("to the end of the context", seeded, 1000, &[8][..]),
    ] {
        let (plain, past, probe) = generate_with_batch(&mut session, &prompt, max_tokens, s, None, 0);
        let want = max_tokens.min(c.context - prompt.len() + 1);
        assert_eq!(plain.len(), want, "{what}");
        for &batch in batches {
            let (chained, cpast, cprobe) = generate_with_batch(&mut session, &prompt, max_tokens, s, None, batch);
            assert_eq!(chained, plain, "{what}, batch {batch}: tokens");
            assert_eq!(cpast, past, "{what}, batch {batch}: position");
            assert_eq!(cprobe, probe, "{what}, batch {batch}: logits of the next step");
        }
        // An end-of-text token in the middle of a batch: the first occurrence of the 12th
        // token (drawn by decode step 10: the middle of the second batch of 8 and of the
        // fourth of 3, unless it occurred earlier).
        let eos = plain[11];
        let cut = plain.iter().position(|&t| t == eos).unwrap();
        let (plain_eos, past_eos, probe_eos) = generate_with_batch(&mut session, &prompt, max_tokens, s, Some(eos), 0);
        assert_eq!(plain_eos, plain[..cut], "{what}: the loop stops at the end of text");
        for &batch in batches {
            let (chained, cpast, cprobe) = generate_with_batch(&mut session, &prompt, max_tokens, s, Some(eos), batch);
            assert_eq!(chained, plain_eos, "{what}, batch {batch}, end of text: tokens");
            assert_eq!(cpast, past_eos, "{what}, batch {batch}, end of text: position");
            assert_eq!(cprobe, probe_eos, "{what}, batch {batch}, end of text: next step");
        }
    }
    // Impossible queued runs are refused with errors that name what is wrong.
    let inputs = kiln::runtime::llm::step_inputs(&[1], &[1], Some(64), &Sampling::greedy(), 1);
    let rb = session.readback(0, 4);
    let forward = |output, input, offset| kiln::runtime::Forward::ToInput { output, input, offset };
    for (resident, forwards, want) in [
        (&[][..], vec![forward("probs", "tokens", 0)], "'probs' is not an output"),
        (&[][..], vec![forward("next_token", "tokens", 2)], "not a multiple of 4"),
        (&[][..], vec![forward("next_token", "tokens", 1 << 20)], "overflows"),
        (&["past"][..], vec![], "'past' is not an input"),
        (
            &[][..],
            vec![kiln::runtime::Forward::ToReadback {
                output: "logits",
                readback: rb,
                offset: 0,
            }],
            "overflows",
        ),
    ] {
        let e = session
            .submit_queued("decode", &inputs, &[("past", 1)], resident, &forwards)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
}

/// A decode step's cache appends leave their own dispatches (compiler::lower::defer): each
/// layer's decode attention reads its new K/V row through and its append runs as extra parts of
/// a later injective or append kernel; the prompt's appends (many rows) keep their own
/// dispatch. With f32 weights the host is the layer's own SwiGLU kernel, so a decode step has
/// one dispatch per layer less (8 per layer instead of 9). With quantized weights (SmolLM2's
/// kind: the SwiGLU is part of the gate/up GEMV) the host is the next layer's append kernel, so
/// a pair of layers has one append dispatch instead of two (5.5 dispatches per layer instead
/// of 6), and an odd last layer's append goes into the step's last injective kernel (the
/// final residual add). Where the target has the storage buffers for it (`desktop`), each
/// layer's append runs in workgroups after its O projection's GEMV instead (5 per layer).
/// (The decode attention combines its key slices in its own last workgroups: no combine
/// dispatch in any of these counts.)
/// GPU logits still match the interpreter over prefill and ten decode steps with both cache
/// types (the 2-layer f32 case is `f16_and_f32_kv_caches_match_the_interpreter`).
#[test]
fn decode_cache_appends_are_deferred_into_later_kernels() {
    // (dispatches, dispatches that only append, dispatches that append among other work)
    let count = |m: &kiln::abi::Manifest, name: &str| -> (usize, usize, usize) {
        let p = m.programs.iter().find(|p| p.name == name).unwrap();
        let appends = |d: &&kiln::abi::Dispatch| d.label.contains("cache_append");
        let only = p
            .dispatches
            .iter()
            .filter(appends)
            .filter(|d| d.label.split(" | ").all(|part| part.contains("cache_append")))
            .count();
        let all = p.dispatches.iter().filter(appends).count();
        (p.dispatches.len(), only, all - only)
    };
    for kv_cache in [DType::F16, DType::F32] {
        let mut per_layer = Vec::new();
        for layers in [2, 3] {
            let c = LlamaConfig {
                kv_cache,
                layers,
                ..config(RopeStyle::Normal, false, true)
            };
            let model = llm::build(&c, &mut RandomWeights::new(&c, 42)).unwrap();
            let m = llm::compile_llm(&model, &CompileOptions::default()).unwrap().manifest;
            let (n, only, hosted) = count(&m, "decode");
            assert_eq!(
                (only, hosted),
                (0, layers),
                "{kv_cache}, {layers} layers: decode appends"
            );
            assert_eq!(
                count(&m, "prefill").1,
                layers,
                "{kv_cache}: one prefill append per layer"
            );
            per_layer.push(n);
            if layers == 3 {
                check(&c, 2);
            }
        }
        assert_eq!(
            per_layer[1] - per_layer[0],
            8,
            "{kv_cache}: decode dispatches per layer"
        );

        // Q8_0 weights: a third layer adds 5 dispatches (its append hosted by the final
        // residual add), a third and fourth 11 (6 per layer before).
        let mut n = Vec::new();
        for layers in [2, 3, 4] {
            let c = LlamaConfig {
                layers,
                ..config(RopeStyle::Neox, true, false)
            };
            let bytes = llm::gguf::random_gguf(&c, "llama", 9, kiln::ir::BlockType::Q8_0).unwrap();
            let g = kiln::compiler::frontend::gguf::Gguf::from_bytes(bytes).unwrap();
            let c = LlamaConfig {
                kv_cache,
                ..llm::gguf::config_from_gguf(&g, "tiny-q8", Some(64)).unwrap()
            };
            let model = llm::build(&c, &mut llm::gguf::GgufWeights::new(&g)).unwrap();
            let m = llm::compile_llm(&model, &CompileOptions::default()).unwrap().manifest;
            let (d, only, hosted) = count(&m, "decode");
            assert_eq!(
                (only, hosted),
                (layers / 2, layers % 2),
                "q8_0 {kv_cache}, {layers} layers: decode appends"
            );
            n.push(d);
            if layers == 3 {
                check_model(&model, &format!("q8_0 {kv_cache} 3 layers"), 2);
            }
        }
        assert_eq!(
            (n[1] - n[0], n[2] - n[0]),
            (5, 11),
            "q8_0 {kv_cache}: decode dispatches {n:?}"
        );

        // The desktop profile's 10 storage buffers: each layer's append becomes the tail of
        // its own O projection's GEMV (workgroups after the GEMV's), so no append dispatch is
        // left and a layer adds 5 dispatches.
        let desktop = CompileOptions {
            target: kiln::schedules::DeviceLimits::desktop(),
            ..CompileOptions::default()
        };
        let mut n = Vec::new();
        for layers in [2, 3] {
            let c = LlamaConfig {
                layers,
                ..config(RopeStyle::Neox, true, false)
            };
            let bytes = llm::gguf::random_gguf(&c, "llama", 9, kiln::ir::BlockType::Q4_1).unwrap();
            let g = kiln::compiler::frontend::gguf::Gguf::from_bytes(bytes).unwrap();
            let c = LlamaConfig {
                kv_cache,
                ..llm::gguf::config_from_gguf(&g, "tiny-q4_1", Some(64)).unwrap()
            };
            let model = llm::build(&c, &mut llm::gguf::GgufWeights::new(&g)).unwrap();
            let m = llm::compile_llm(&model, &desktop).unwrap().manifest;
            let (d, only, hosted) = count(&m, "decode");
            assert_eq!(
                (only, hosted),
                (0, layers),
                "q4_1 {kv_cache}, {layers} layers, desktop: decode appends"
            );
            let decode = m.programs.iter().find(|p| p.name == "decode").unwrap();
            for host in decode.dispatches.iter().filter(|d| d.label.contains("cache_append")) {
                let schedule = &m.kernels[host.kernel].schedule;
                assert!(
                    schedule.starts_with("gemv") && host.label.starts_with("blk."),
                    "{kv_cache}: {} ({schedule})",
                    host.label
                );
                assert!(host.label.contains("attn_output"), "{kv_cache}: {}", host.label);
            }
            n.push(d);
            check_compiled(
                &model,
                &format!("q4_1 {kv_cache} {layers} layers, appends in GEMVs"),
                &desktop,
            );
        }
        assert_eq!(n[1] - n[0], 5, "q4_1 {kv_cache}, desktop: decode dispatches {n:?}");
    }
}

/// `--precision f16` gives the prefill's flash attention (GQA groups, the causal mask, keys
/// read from the f16 cache) a cooperative-matrix variant where the target grants the 48 KiB
/// of workgroup memory its default needs (the `h200` profile). On an adapter with as much
/// (the H200, with the test binary carried there) the bundle is compiled for `h200` and the
/// variant must run; its logits over a 40-token prompt and three decode steps match the
/// interpreter within relative L2 5e-3 (the variant rounds the queries, keys, values and
/// probabilities to f16: relative 2^-11 each, against 1e-4 for f32 kernels). Elsewhere
/// (lavapipe, `desktop`) no variant ships and the f32 kernels run within the same bound.
#[test]
fn f16_prefill_attention_matches_the_interpreter() {
    let c = config(RopeStyle::Normal, false, false);
    let model = llm::build(&c, &mut RandomWeights::new(&c, 42)).unwrap();
    let runtime = kiln::runtime::Runtime::new().unwrap();
    let big = runtime.adapter_limits().max_compute_workgroup_storage_size >= 48 * 1024;
    let opts = CompileOptions {
        precision: kiln::compiler::Precision::F16,
        target: if big {
            kiln::schedules::DeviceLimits::h200()
        } else {
            kiln::schedules::DeviceLimits::desktop()
        },
        ..Default::default()
    };
    let compiled = llm::compile_llm(&model, &opts).unwrap();
    let variant = compiled
        .manifest
        .kernels
        .iter()
        .flat_map(|k| &k.variants)
        .find(|v| v.schedule.starts_with("coop_attention("));
    assert_eq!(variant.is_some(), big, "{:?}", compiled.manifest.kernels);
    let supported = variant.is_some_and(|v| runtime.variant_unsupported(&v.requires).is_none());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.kiln");
    write_bundle(&compiled, &path).unwrap();
    let bundle = Bundle::load(&path).unwrap();
    let mut session = Session::new(&bundle, &SessionOptions::default()).unwrap();
    let ran = session
        .manifest()
        .kernels
        .iter()
        .any(|k| k.schedule.starts_with("coop_attention("));
    assert_eq!(ran, supported, "the variant runs exactly where the adapter supports it");
    let mut gen = Generator::new(&mut session).unwrap();
    let mut reference = Reference::new(&model.graph);
    let mut tokens: Vec<i32> = (0..40).map(|i| (i * 37 + 5) % 97).collect();
    for step in 0..4 {
        let gpu = gen.step(&tokens, true).unwrap();
        let cpu = reference.step(&tokens).unwrap();
        let err = rel_l2(&gpu.logits.unwrap(), &cpu.logits);
        eprintln!("f16 attention (variant ran: {supported}) step {step}: relative L2 {err:.2e}");
        assert!(err < 5e-3, "step {step}: logits differ, relative L2 error {err}");
        tokens = vec![cpu.next_token];
    }
}
