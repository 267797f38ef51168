//! Writes a decode step's attention as an ONNX file: `softmax(q · k * 0.125 + mask) · v` with
//! 3 query rows per batch of 2 and a symbolic key count `t`.
//!
//! ```text
//! cargo run --release --example decode_attention_onnx -- OUT.onnx
//! ```
//!
//! Compiled by `kiln compile`, this becomes one attention kernel with the decode schedule: the
//! runtime keys are split over workgroups and the last slice of each batch combines the slices
//! through atomic arrival counters in the bundle's scratch buffer (docs/llm.md, "What the
//! decode attention costs"). The browser tests (`scripts/web_test.sh`) run such a bundle in
//! Chromium against the native runtime, so that path is checked on a second WebGPU
//! implementation.

use kiln::compiler::frontend::onnx::builder::{d, DataType, ModelBuilder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).ok_or("usage: decode_attention_onnx OUT.onnx")?;
    let (b, r, dh) = (2, 3, 64);
    let mut m = ModelBuilder::new("decode_attention");
    m.input("q", DataType::Float, &[d(b), d(r), d(dh)]);
    m.input("k", DataType::Float, &[d(b), d(dh), d("t")]);
    m.input("v", DataType::Float, &[d(b), d("t"), d(dh)]);
    m.input("mask", DataType::Float, &[d(r), d("t")]);
    m.init_f32("scale", &[], &[0.125]);
    m.node("MatMul", &["q", "k"], &["s"]).name("scores");
    m.node("Mul", &["s", "scale"], &["scaled"]).name("scaled");
    m.node("Add", &["scaled", "mask"], &["masked"]).name("masked");
    m.node("Softmax", &["masked"], &["p"]).name("probs").attr_int("axis", 2);
    m.node("MatMul", &["p", "v"], &["o"]).name("values");
    m.output("o", DataType::Float);
    std::fs::write(&out, m.encode())?;
    println!("wrote {out}");
    Ok(())
}
