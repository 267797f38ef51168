//! ONNX bytes -> frontend -> compile (opt-level 2, `webgpu-default`): must return Ok or an
//! error, never panic, abort or hang. Seeds: the test models (`scripts/fuzz.sh` writes them).
#![no_main]

use kiln_compiler::frontend::onnx::load_onnx_bytes;
use kiln_compiler::{compile, CompileOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = load_onnx_bytes(data, "fuzz", &Default::default()) {
        let _ = compile(&model, &CompileOptions::default());
    }
});
