//! `kiln compile MODEL.gguf`, `kiln generate` and `kiln bench` on a tiny random-weight GGUF
//! written by the test itself; greedy tokens equal the interpreter's; bad input is refused
//! with a clear error.

use crate::common;

use common::kiln;
use kiln::compiler::llm::{self, gguf::random_gguf, LlamaConfig, Reference, RopeStyle};
use kiln::ir::sample::SampleParams;
use kiln::ir::BlockType;
use kiln::runtime::text::{ChatTemplate, Message, Tokenizer, TokenizerSpec};

/// The tiny Llama configuration of the GGUF command-line tests (also tuned in `tune.rs`).
pub(crate) fn config() -> LlamaConfig {
    LlamaConfig {
        name: "tiny".into(),
        dim: 64,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        head_dim: 16,
        ffn: 96,
        vocab: 80,
        rope_base: 10000.0,
        rope_dims: 16,
        rope_style: RopeStyle::Normal,
        rms_eps: 1e-5,
        tied_output: true,
        qkv_bias: false,
        context: 64,
        kv_cache: kiln::compiler::llm::DEFAULT_KV_CACHE,
        activations: kiln::compiler::llm::DEFAULT_ACTIVATIONS,
    }
}

#[test]
fn compile_generate_and_bench_a_gguf_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    let bytes = random_gguf(&config(), "llama", 9, BlockType::Q8_0).unwrap();
    std::fs::write(&model, &bytes).unwrap();
    let bundle = dir.path().join("tiny.kiln");
    let b = bundle.to_str().unwrap();
    let out = kiln(["compile", model.to_str().unwrap(), "-o", b, "--context", "32"]);
    out.ok();
    assert!(
        out.stdout.contains("prefill") && out.stdout.contains("decode"),
        "{}",
        out.describe()
    );
    // The default precision for a GGUF model is f16: the prefill's tiled quantized products
    // ship their cooperative-matrix variant (run where the adapter has tensor cores; here the
    // f32 kernels run, so the tokens below are still the interpreter's). `--precision f32`
    // ships none.
    let coop_kernels = |bundle: &std::path::Path| {
        common::manifest(bundle)
            .kernels
            .iter()
            .filter(|k| {
                k.variants
                    .iter()
                    .any(|v| v.requires.features.iter().any(|f| f == "wgpu-cooperative-matrix"))
            })
            .count()
    };
    assert!(coop_kernels(&bundle) > 0, "no f16 prefill variant by default");
    let f32_bundle = dir.path().join("tiny-f32.kiln");
    let f32_arg = f32_bundle.to_str().unwrap();
    kiln([
        "compile",
        model.to_str().unwrap(),
        "-o",
        f32_arg,
        "--context",
        "32",
        "--precision",
        "f32",
    ])
    .ok();
    assert_eq!(coop_kernels(&f32_bundle), 0, "--precision f32 ships no variant");

    let out = kiln(["generate", b, "--prompt-ids", "3,1,4,1,5", "--max-tokens", "6", "--ids"]);
    out.ok();
    let got: Vec<i32> = out.stdout.trim().split(',').map(|t| t.parse().unwrap()).collect();
    let g = kiln::compiler::frontend::gguf::Gguf::from_bytes(bytes).unwrap();
    let m = llm::gguf::model_from_gguf(&g, "tiny", Some(32)).unwrap();
    let expected: Vec<i32> = Reference::new(&m.graph)
        .greedy(&[3, 1, 4, 1, 5], 6)
        .unwrap()
        .iter()
        .map(|s| s.next_token)
        .collect();
    assert_eq!(got, expected, "{}", out.describe());
    assert!(out.stderr.contains("tokens/s"), "{}", out.describe());

    // `--activations q8`: every norm-fed projection input rounded to 8 bits (a quantizer
    // dispatch per norm in decode) and the down projection's (rounded by the gate/up GEMV);
    // generation equals the interpreter's on that graph.
    let q8_bundle = dir.path().join("tiny-q8.kiln");
    let q8_arg = q8_bundle.to_str().unwrap();
    kiln([
        "compile",
        model.to_str().unwrap(),
        "-o",
        q8_arg,
        "--context",
        "32",
        "--activations",
        "q8",
    ])
    .ok();
    let quantizers = |bundle: &std::path::Path| {
        let m = common::manifest(bundle);
        let decode = m.programs.iter().find(|p| p.name == "decode").unwrap();
        decode.dispatches.iter().filter(|d| d.label.contains(".q8")).count()
    };
    let c = config();
    assert_eq!(
        quantizers(&q8_bundle),
        2 * c.layers + 1,
        "per layer the q/k/v GEMV (rounding its x) and the gate/up GEMV (rounding its x and the SwiGLU), and the head (rounding its x)"
    );
    assert_eq!(quantizers(&bundle), 0, "auto keeps a model this small in f32");
    let out = kiln([
        "generate",
        q8_arg,
        "--prompt-ids",
        "3,1,4,1,5",
        "--max-tokens",
        "6",
        "--ids",
    ]);
    out.ok();
    let got: Vec<i32> = out.stdout.trim().split(',').map(|t| t.parse().unwrap()).collect();
    let c8 = LlamaConfig {
        activations: llm::Activations::Q8,
        ..llm::gguf::config_from_gguf(&g, "tiny", Some(32)).unwrap()
    };
    let m8 = llm::build(&c8, &mut llm::gguf::GgufWeights::new(&g)).unwrap();
    let expected: Vec<i32> = Reference::new(&m8.graph)
        .greedy(&[3, 1, 4, 1, 5], 6)
        .unwrap()
        .iter()
        .map(|s| s.next_token)
        .collect();
    assert_eq!(got, expected, "--activations q8: {}", out.describe());

    // Sampled on the GPU: the interpreter draws the same tokens for the same seed.
    // This tied-head model repeats its last token greedily; a strong penalty moves it on.
    let args = [
        "--temperature",
        "2",
        "--top-k",
        "20",
        "--top-p",
        "0.95",
        "--repeat-penalty",
        "100",
    ];
    let sampled = |seed: &str| -> Vec<i32> {
        let mut a = vec![
            "generate",
            b,
            "--prompt-ids",
            "3,1,4,1,5",
            "--max-tokens",
            "8",
            "--ids",
            "--seed",
            seed,
        ];
        a.extend(args);
        let out = kiln(a);
        out.ok();
        out.stdout.trim().split(',').map(|t| t.parse().unwrap()).collect()
    };
    let params = |seed| SampleParams {
        temperature: 2.0,
        top_k: 20,
        top_p: 0.95,
        repeat_penalty: 100.0,
        seed,
    };
    let reference = |seed| -> Vec<i32> {
        Reference::with_sampling(&m.graph, params(seed))
            .generate(&[3, 1, 4, 1, 5], 8)
            .unwrap()
            .iter()
            .map(|s| s.next_token)
            .collect()
    };
    let s5 = sampled("5");
    assert_eq!(s5, reference(5));
    assert_eq!(sampled("6"), reference(6));
    assert_ne!(s5, reference(6), "seeds 5 and 6 drew the same 8 tokens");

    let out = kiln(["bench", b, "--prompt-tokens", "8", "--gen-tokens", "4", "--iters", "1"]);
    out.ok();
    assert!(out.stdout.contains("ms/token"), "{}", out.describe());
    assert!(
        out.stdout.contains("memory: weights") && out.stdout.contains("peak"),
        "{}",
        out.describe()
    );

    // Timed decoding with sampling, which the summary line names.
    let out = kiln([
        "bench",
        b,
        "--prompt-tokens",
        "8",
        "--gen-tokens",
        "4",
        "--iters",
        "1",
        "--temperature",
        "0.8",
        "--top-k",
        "5",
        "--top-p",
        "0.9",
    ]);
    out.ok();
    assert!(
        out.stdout.contains("sampling: temperature 0.8, top-k 5, top-p 0.9"),
        "{}",
        out.describe()
    );

    // The profile: prefill and one decode step, each dispatch timed, and the decode step
    // against its floor (the probed read rate and per-dispatch cost). Every adapter the tests
    // run on has timestamp queries (lavapipe does).
    let out = kiln(["bench", b, "--profile", "--prompt-tokens", "8"]);
    out.ok();
    for want in [
        "program 'prefill'",
        "program 'decode'",
        "floor of 'decode'",
        "x the floor",
    ] {
        assert!(out.stdout.contains(want), "no '{want}': {}", out.describe());
    }

    // Profiled with sampling: the sampling kernel's top-k/top-p path runs in the profile.
    let out = kiln([
        "bench",
        b,
        "--profile",
        "--prompt-tokens",
        "8",
        "--temperature",
        "0.8",
        "--top-k",
        "5",
    ]);
    out.ok();
    assert!(out.stdout.contains("program 'decode'"), "{}", out.describe());

    // Bad input.
    kiln(["bench", b, "--top-p", "0"]).fails_with(&["top-p 0"]);
    kiln(["generate", b, "--prompt-ids", "1,x"]).fails_with(&["'x' is not a token id"]);
    kiln(["generate", b, "--prompt-ids", "1,2", "--top-p", "0"]).fails_with(&["top-p 0"]);
    kiln(["generate", b, "--prompt-ids", "1,2", "--temperature=-1"]).fails_with(&["temperature -1"]);
    kiln(["generate", b, "--prompt-ids", "1,99"]).fails_with(&["99", "0..80"]);
    let long: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    kiln(["generate", b, "--prompt-ids", &long.join(",")]).fails_with(&["KV cache holds 32"]);
    kiln(["bench", b, "--prompt-tokens", "30", "--gen-tokens", "8"]).fails_with(&["exceed", "32"]);
    let other = dir.path().join("x.kiln");
    kiln([
        "compile",
        model.to_str().unwrap(),
        "-o",
        other.to_str().unwrap(),
        "--context",
        "100",
    ])
    .fails_with(&["--context 100 is longer than the model's context length 64"]);
    assert!(!other.exists(), "nothing is written on error");
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, random_gguf(&config(), "falcon", 1, BlockType::F32).unwrap()).unwrap();
    kiln(["compile", bad.to_str().unwrap(), "-o", other.to_str().unwrap()])
        .fails_with(&["unsupported architecture 'falcon'"]);
    let truncated = dir.path().join("trunc.gguf");
    std::fs::write(&truncated, &std::fs::read(&model).unwrap()[..200]).unwrap();
    kiln(["compile", truncated.to_str().unwrap(), "-o", other.to_str().unwrap()]).fails_with(&["trunc"]);
}

/// A SentencePiece-style tokenizer for the tiny model: `<unk>`, `<s>`, `</s>`, the 256
/// `<0xNN>` byte-fallback tokens and a few pieces of "hello", plus a small chat template.
fn tiny_tokenizer() -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    for p in ["▁", "▁h", "el", "lo", "▁hel", "▁hello", "!", "▁hi"] {
        tokens.push(p.into());
        types.push(1);
    }
    let scores = (0..tokens.len()).map(|i| -(i as f32)).collect();
    (tokens, scores, types)
}

const TEMPLATE: &str = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

/// Runs `kiln` with `input` on stdin.
fn kiln_stdin(args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A command that rejects its arguments exits without reading stdin: the write may then
    // meet a closed pipe (it did under load), which is not the test's failure.
    if let Err(e) = child.stdin.take().unwrap().write_all(input.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "writing kiln's stdin: {e}");
    }
    child.wait_with_output().unwrap()
}

/// `kiln generate --prompt TEXT` and `kiln chat` (fed through stdin) on a tiny GGUF that
/// carries a tokenizer and a chat template: the streamed text is the tokenizer's decoding of
/// the interpreter's greedy tokens for the tokenized (and, for chat, templated) prompt.
#[test]
fn generate_from_text_and_chat_through_stdin() {
    let (tokens, scores, types) = tiny_tokenizer();
    let c = LlamaConfig {
        vocab: tokens.len(),
        ..config()
    };
    let bytes = llm::gguf::random_gguf_writer(&c, "llama", 21, BlockType::Q8_0)
        .unwrap()
        .meta_str("tokenizer.ggml.model", "llama")
        .meta_array_str("tokenizer.ggml.tokens", &tokens)
        .meta_array_f32("tokenizer.ggml.scores", &scores)
        .meta_array_i32("tokenizer.ggml.token_type", &types)
        .meta_u32("tokenizer.ggml.bos_token_id", 1)
        .meta_u32("tokenizer.ggml.eos_token_id", 2)
        .meta_u32("tokenizer.ggml.unknown_token_id", 0)
        .meta_bool("tokenizer.ggml.add_bos_token", true)
        .meta_str("tokenizer.chat_template", TEMPLATE)
        .to_bytes();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("talk.gguf");
    std::fs::write(&model, &bytes).unwrap();
    let bundle = dir.path().join("talk.kiln");
    let b = bundle.to_str().unwrap();
    kiln(["compile", model.to_str().unwrap(), "-o", b, "--context", "64"]).ok();

    let bundle_files = kiln::runtime::Bundle::load(&bundle).unwrap();
    let spec =
        TokenizerSpec::from_json(std::str::from_utf8(bundle_files.asset("tokenizer.json").unwrap()).unwrap()).unwrap();
    let tok = Tokenizer::from_spec(&spec).unwrap();
    let g = kiln::compiler::frontend::gguf::Gguf::from_bytes(bytes).unwrap();
    let m = llm::gguf::model_from_gguf(&g, "talk", Some(64)).unwrap();
    // The interpreter's greedy reply to `text`, cut at end-of-text.
    let reply = |text: &str, n: usize| -> Vec<u32> {
        let ids: Vec<i32> = tok
            .encode(text, tok.add_bos())
            .unwrap()
            .iter()
            .map(|&t| t as i32)
            .collect();
        Reference::new(&m.graph)
            .greedy(&ids, n)
            .unwrap()
            .iter()
            .map(|s| s.next_token as u32)
            .take_while(|&t| t != 2)
            .collect()
    };

    let out = kiln(["generate", b, "--prompt", "hello", "--max-tokens", "10", "--ids"]);
    out.ok();
    let want = reply("hello", 10);
    assert!(!want.is_empty(), "the model ended at once; pick another seed");
    let got: Vec<u32> = out.stdout.trim().split(',').map(|t| t.parse().unwrap()).collect();
    assert_eq!(got, want, "{}", out.describe());
    let out = kiln(["generate", b, "--prompt", "hello", "--max-tokens", "10"]);
    out.ok();
    let text = tok.decode(&want, true).unwrap();
    assert_eq!(out.stdout.strip_suffix('\n'), Some(text.as_str()), "{}", out.describe());
    assert!(out.stderr.contains("tokens/s"), "{}", out.describe());

    // Chat: two turns, then an empty line ends it. Each turn renders the whole conversation.
    let out = kiln_stdin(&["chat", b, "--max-tokens", "6"], "hello\nhi!\n\n");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let template = ChatTemplate::new(&spec).unwrap();
    let mut messages = vec![Message::new("user", "hello")];
    let first = tok
        .decode(&reply(&template.render(&messages, true).unwrap(), 6), true)
        .unwrap();
    messages.push(Message::new("assistant", first.clone()));
    messages.push(Message::new("user", "hi!"));
    let second = tok
        .decode(&reply(&template.render(&messages, true).unwrap(), 6), true)
        .unwrap();
    assert_eq!(stdout, format!("{first}\n{second}\n"), "{stderr}");
    assert_eq!(stderr.matches("> ").count(), 3, "{stderr}");

    // Sampling options apply to chat too (and are checked).
    let out = kiln_stdin(
        &["chat", b, "--temperature", "0.7", "--seed", "4", "--max-tokens", "4"],
        "hello\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = kiln_stdin(&["chat", b, "--repeat-penalty", "0"], "hello\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("repeat penalty 0"));
}
