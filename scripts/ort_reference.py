"""Makes reference inputs and outputs for a model with onnxruntime (CPU).

usage: ort_reference.py MODEL OUTDIR NAME=SHAPE:KIND [NAME=SHAPE:KIND ...]
  SHAPE is like 1x128; KIND is `ids:VOCAB` (int64 token ids below VOCAB), `ones` (int64 ones),
  `uniform` (float32 in [0, 1)) or `text_image` (NCHW float32: a synthetic page of dark glyph
  strokes on a light background, normalized with the ImageNet mean/std as OCR models expect). Writes OUTDIR/in_<NAME>.npy and OUTDIR/out_<k>.npy for the
  k-th model output, plus OUTDIR/outputs.txt listing the output names in order.
"""
import sys, os
import numpy as np
import onnxruntime as ort



def text_image(rng, shape):
    """Lines of glyph-like strokes: a detector's output then spans its whole range, unlike for
    noise, where every logit is far below zero and the sigmoid's far tail (in which
    onnxruntime's approximation has large relative error) decides the comparison."""
    n, c, h, w = shape
    img = np.full((n, h, w, c), 0.95, np.float32)
    for b in range(n):
        for y0 in range(h // 16, h - h // 8, max(h // 9, 40)):
            x = int(rng.integers(w // 20, w // 10))
            while x < w - 60:
                gw, gh = int(rng.integers(12, 30)), int(rng.integers(24, 36))
                for _ in range(3):
                    i, j = int(rng.integers(0, gh - 3)), int(rng.integers(0, gw - 3))
                    img[b, y0 + i : y0 + i + int(rng.integers(3, gh - i + 1)), x + j : x + j + 3] = 0.1
                    img[b, y0 + i : y0 + i + 3, x + j : x + j + int(rng.integers(3, gw - j + 1))] = 0.1
                x += gw + int(rng.integers(4, 10)) + (40 if rng.random() < 0.08 else 0)
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    mean = np.array([0.485, 0.456, 0.406][:c], np.float32)
    std = np.array([0.229, 0.224, 0.225][:c], np.float32)
    return ((img - mean) / std).transpose(0, 3, 1, 2).astype(np.float32)


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
    elif kind == "text_image":
        a = text_image(rng, shape)
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
