//! `kiln compile MODEL.gguf`, `kiln generate` and `kiln bench` on a tiny random-weight GGUF
//! written by the test itself; greedy tokens equal the interpreter's; bad input is refused
//! with a clear error.

mod common;

use common::kiln;
use kiln::compiler::llm::{self, gguf::random_gguf, LlamaConfig, Reference, RopeStyle};
use kiln::ir::BlockType;

fn config() -> LlamaConfig {
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

    let out = kiln(["bench", b, "--prompt-tokens", "8", "--gen-tokens", "4", "--iters", "1"]);
    out.ok();
    assert!(out.stdout.contains("ms/token"), "{}", out.describe());

    // Bad input.
    kiln(["generate", b, "--prompt-ids", "1,x"]).fails_with(&["'x' is not a token id"]);
    kiln(["generate", b, "--prompt-ids", "1,2", "--temperature", "0.8"]).fails_with(&["only greedy"]);
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
