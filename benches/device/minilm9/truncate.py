"""MiniLM-L3 with its word-embedding initializer cut to 4,096 rows (the device tree limit), and
int64 inputs ids_{1,32}x128.npy (ids < 4096) / mask_{1,32}x128.npy, written to the current
folder. Run from the folder that should hold them, with the repository's root as argv[1]
(after `bash scripts/fetch_models.sh`)."""
import sys

import numpy as np
import onnx
from onnx import numpy_helper

root = sys.argv[1] if len(sys.argv) > 1 else "."
m = onnx.load(f"{root}/.cache/models/paraphrase-MiniLM-L3-v2.onnx")
for i, t in enumerate(m.graph.initializer):
    if "word_embeddings" in t.name:
        a = numpy_helper.to_array(t)
        m.graph.initializer[i].CopyFrom(numpy_helper.from_array(a[:4096].copy(), t.name))
onnx.save(m, "minilm_v4096.onnx")
rng = np.random.default_rng(7)
for b in (1, 32):
    np.save(f"ids_{b}x128.npy", rng.integers(0, 4096, (b, 128), dtype=np.int64))
    np.save(f"mask_{b}x128.npy", np.ones((b, 128), dtype=np.int64))
