//! Compiling a model through Kiln's library API (no CLI involved).
//!
//! ```text
//! cargo run --release --example compile_model -- [MODEL.onnx] OUT_DIR
//! ```
//!
//! With a model path, that ONNX file is compiled. Without one, the example builds a small
//! ONNX model in memory with the frontend's `ModelBuilder` (a two-layer MLP over a symbolic
//! `batch`), so it runs anywhere. Either way the bundle is written atomically to `OUT_DIR`, and
//! the example prints what the manifest says: symbols, inputs, outputs, kernels, and the
//! bundle's integrity digest (the value `kiln run --integrity` and `Bundle::load_with_integrity`
//! check).

use kiln::compiler::frontend::onnx::builder::{d, DataType, ModelBuilder};
use kiln::compiler::frontend::onnx::{load_onnx, load_onnx_bytes};
use kiln::compiler::{compile, write_bundle, CompileOptions};
use kiln::ir::DimBindings;
use std::path::PathBuf;

/// A two-layer MLP `x[batch, 8] -> MatMul -> Add -> Relu -> MatMul -> y[batch, 4]` as ONNX bytes.
fn mlp_onnx() -> Vec<u8> {
    let w1: Vec<f32> = (0..8 * 16).map(|i| ((i * 37 % 17) as f32 - 8.0) / 16.0).collect();
    let b1: Vec<f32> = (0..16).map(|i| i as f32 / 32.0).collect();
    let w2: Vec<f32> = (0..16 * 4).map(|i| ((i * 11 % 13) as f32 - 6.0) / 12.0).collect();
    let mut b = ModelBuilder::new("example_mlp");
    b.input("x", DataType::Float, &[d("batch"), d(8)]);
    b.init_f32("w1", &[8, 16], &w1);
    b.init_f32("b1", &[16], &b1);
    b.init_f32("w2", &[16, 4], &w2);
    b.node("MatMul", &["x", "w1"], &["h0"]).name("fc1");
    b.node("Add", &["h0", "b1"], &["h1"]).name("fc1_bias");
    b.node("Relu", &["h1"], &["h2"]).name("relu");
    b.node("MatMul", &["h2", "w2"], &["y"]).name("fc2");
    b.output("y", DataType::Float);
    b.encode()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model_path, out) = match args.as_slice() {
        [out] => (None, PathBuf::from(out)),
        [model, out] => (Some(PathBuf::from(model)), PathBuf::from(out)),
        _ => return Err("usage: compile_model [MODEL.onnx] OUT_DIR".into()),
    };

    // 1. Load the model into Kiln's IR. Dims may be fixed here (`--dim` on the CLI); leaving
    //    them open keeps them symbolic, so one bundle serves every batch size.
    let no_dims = DimBindings::new();
    let model = match &model_path {
        Some(p) => load_onnx(p, &no_dims)?,
        None => load_onnx_bytes(&mlp_onnx(), "example_mlp", &no_dims)?,
    };
    println!("loaded '{}': {} IR nodes", model.name, model.graph.len());

    // 2. Compile in memory: kernel formation, schedules, WGSL (validated by naga), memory plan.
    let opts = CompileOptions::default(); // opt-level 2, the `webgpu-default` limits
    let bundle = compile(&model, &opts)?;

    // 3. Write it (a temporary sibling directory renamed into place only when complete).
    let manifest = write_bundle(&bundle, &out)?;
    let shape = |s: &[kiln::abi::SizeExpr]| s.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ");
    println!("wrote {}", out.display());
    println!("symbols: {:?}", manifest.symbols);
    for i in &manifest.inputs {
        println!("input  {}: {}[{}]", i.name, i.dtype.name(), shape(&i.shape));
    }
    for o in &manifest.outputs {
        println!("output {}: {}[{}]", o.name, o.dtype.name(), shape(&o.shape));
    }
    println!(
        "{} kernels, {} dispatches, {} weights",
        manifest.kernels.len(),
        manifest.programs.iter().map(|p| p.dispatches.len()).sum::<usize>(),
        manifest.weights.len()
    );
    println!("integrity: {}", manifest.integrity());
    Ok(())
}
