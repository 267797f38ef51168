//! A tiny random-weight Llama on the GPU against the interpreter: prefill and ten decode
//! steps with the KV cache carried in GPU state buffers, logits within tolerance and greedy
//! tokens equal, at opt-levels 0 and 2, for both RoPE styles, GQA, tied and separate heads
//! and Qwen2-style q/k/v biases.

use kiln::compiler::llm::{self, LlamaConfig, RandomWeights, Reference, RopeStyle};
use kiln::compiler::{write_bundle, CompileOptions};
use kiln::convert::rel_l2;
use kiln::runtime::llm::Generator;
use kiln::runtime::{Bundle, Session, SessionOptions};

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
    }
}

/// f32 kernels against the interpreter's f64-accumulated, per-op-rounded f32 values: the
/// logits of this well-conditioned model agree to relative L2 error 1e-4 (the design
/// guide's f32 tolerance). Greedy tokens must be equal; a near tie is reported, not skipped.
const TOL: f64 = 1e-4;

fn check(c: &LlamaConfig, opt_level: u8) {
    let model = llm::build(c, &mut RandomWeights::new(c, 42)).unwrap();
    let opts = CompileOptions {
        opt_level,
        ..Default::default()
    };
    let compiled = llm::compile_llm(&model, &opts).unwrap();
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
        let what = format!("{:?} opt-level {opt_level} step {step}", c.rope_style);
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
    let toks =
        std::collections::HashMap::from([("tokens".to_string(), kiln::runtime::HostTensor::from_i32(&[2], &[1, 2]))]);
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
