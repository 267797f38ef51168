//! ONNX bytes -> frontend -> compile (opt-level 2, `webgpu-default`): must return Ok or an
//! error, never panic, abort or hang. Seeds: the test models (`scripts/fuzz.sh` writes them).
#![no_main]

use kiln_compiler::frontend::onnx::builder::{d, DataType, ModelBuilder};
use kiln_compiler::frontend::onnx::load_onnx_bytes;
use kiln_compiler::{compile, CompileOptions};
use libfuzzer_sys::fuzz_target;

/// Compiles one small model before fuzzing starts, so that the one-time work of the first
/// compile (parsing every WGSL template) is not charged to the first input's time limit:
/// on a loaded machine it made a one-op seed model look like a hang.
fn warm_up() {
    let mut b = ModelBuilder::new("warm_up");
    b.input("x", DataType::Float, &[d(2), d(3)]);
    b.node("Relu", &["x"], &["y"]).name("relu");
    b.output("y", DataType::Float);
    let model = load_onnx_bytes(&b.encode(), "warm_up", &Default::default()).expect("warm-up model loads");
    compile(&model, &CompileOptions::default()).expect("warm-up model compiles");
}

fuzz_target!(init: warm_up(), |data: &[u8]| {
    if let Ok(model) = load_onnx_bytes(data, "fuzz", &Default::default()) {
        let _ = compile(&model, &CompileOptions::default());
    }
});
