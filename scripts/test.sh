#!/usr/bin/env bash
# Runs Kiln's whole test suite: unit, property, snapshot, GPU (lavapipe) and end-to-end tests,
# then the ONNX conformance gate when its data can be generated.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --release --workspace
