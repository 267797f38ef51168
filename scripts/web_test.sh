#!/usr/bin/env bash
# Browser tests of the web package and demo (web/test/browser.test.mjs) in Debian's Chromium with
# WebGPU on SwiftShader: builds web/dist and the kiln CLI, compiles paraphrase-MiniLM-L3-v2 into
# a bundle with `kiln compile` (never committed), then runs the tokenizer test and the browser
# tests. Screenshots land in .cache/web/test-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
# Install only what is missing: a machine with Node.js from another source (e.g. NodeSource,
# whose nodejs conflicts with Debian's npm) still gets Debian's Chromium.
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
[ -f .cache/models/paraphrase-MiniLM-L3-v2.onnx ] && [ -f .cache/models/minilm-vocab.txt ] || bash scripts/fetch_models.sh
bash scripts/build_web.sh
cargo build --release -q --bin kiln
(cd web && npm ci --no-audit --no-fund --loglevel=error)
rm -rf .cache/web/minilm
./target/release/kiln compile .cache/models/paraphrase-MiniLM-L3-v2.onnx -o .cache/web/minilm/bundle
cp .cache/models/minilm-vocab.txt .cache/web/minilm/vocab.txt
# A decode step's split attention (key slices combined by their last workgroup), written as
# ONNX by an example and compiled like any model.
rm -rf .cache/web/attention
mkdir -p .cache/web/attention
cargo run --release -q --example decode_attention_onnx -- .cache/web/attention/decode_attention.onnx
./target/release/kiln compile .cache/web/attention/decode_attention.onnx -o .cache/web/attention/bundle
node web/test/tokenizer.test.mjs .cache/models/minilm-vocab.txt
node web/test/browser.test.mjs
