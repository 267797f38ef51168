#!/usr/bin/env python3
"""Writes reference dequantizations of a few tensors of a GGUF file, made by the `gguf` PyPI
package (gguf.quants.dequantize), for Kiln's cross-check test (compiler/tests/gguf_real.rs).

Usage: scripts/gguf_reference.py MODEL.gguf OUT_DIR [TENSOR ...]
Needs: pip install gguf numpy (scripts/fetch_models.sh sets up .venv with them).

OUT_DIR/index.txt gets one line per tensor: `name type numel file`; each file holds the
dequantized values as little-endian f32 in GGUF's storage order (row-major, ne[0] fastest).
Without TENSOR arguments the first tensor of each type is taken.
"""
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, out = sys.argv[1], sys.argv[2]
    wanted = sys.argv[3:]
    reader = GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    if not wanted:
        seen = set()
        for t in reader.tensors:
            if t.tensor_type.name not in seen:
                seen.add(t.tensor_type.name)
                wanted.append(t.name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "index.txt"), "w") as index:
        for name in wanted:
            t = tensors[name]
            values = dequantize(t.data, t.tensor_type).astype("<f4").reshape(-1)
            file = name.replace("/", "_") + ".f32"
            values.tofile(os.path.join(out, file))
            index.write(f"{name} {t.tensor_type.name} {values.size} {file}\n")
            print(f"{name}: {t.tensor_type.name}, {values.size} values")


if __name__ == "__main__":
    main()
