"""Makes reference inputs and outputs for a model with onnxruntime (CPU).

usage: ort_reference.py MODEL OUTDIR NAME=SHAPE:KIND [NAME=SHAPE:KIND ...]
  SHAPE is like 1x128; KIND is `ids:VOCAB` (int64 token ids below VOCAB), `ones` (int64 ones)
  or `uniform` (float32 in [0, 1)). Writes OUTDIR/in_<NAME>.npy and OUTDIR/out_<k>.npy for the
  k-th model output, plus OUTDIR/outputs.txt listing the output names in order.
"""
import sys, os
import numpy as np
import onnxruntime as ort

model, outdir, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(outdir, exist_ok=True)
rng = np.random.default_rng(1234)
feeds = {}
for spec in specs:
    name, rest = spec.split("=", 1)
    shape_s, kind = rest.split(":", 1)
    shape = [int(d) for d in shape_s.split("x")]
    if kind.startswith("ids"):
        vocab = int(kind.split(":")[1])
        a = rng.integers(0, vocab, size=shape, dtype=np.int64)
    elif kind == "ones":
        a = np.ones(shape, dtype=np.int64)
    elif kind == "uniform":
        a = rng.random(shape, dtype=np.float32)
    else:
        raise SystemExit(f"unknown input kind {kind}")
    feeds[name] = a
    np.save(os.path.join(outdir, f"in_{name}.npy"), a)
opts = ort.SessionOptions()
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
names = [o.name for o in sess.get_outputs()]
outs = sess.run(names, feeds)
for k, o in enumerate(outs):
    np.save(os.path.join(outdir, f"out_{k}.npy"), o)
with open(os.path.join(outdir, "outputs.txt"), "w") as f:
    f.write("\n".join(names) + "\n")
print(f"{model}: {len(outs)} outputs -> {outdir}")
