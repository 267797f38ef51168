import os, onnx
from onnx import numpy_helper
from onnx.backend.test.case.node import collect_testcases
out = "/tmp/onnxnode"
cases = collect_testcases()
n = 0
for c in cases:
    d = os.path.join(out, c.name)
    os.makedirs(d, exist_ok=True)
    onnx.save(c.model, os.path.join(d, "model.onnx"))
    if not c.data_sets:
        continue
    ins, outs = c.data_sets[0]
    ds = os.path.join(d, "test_data_set_0")
    os.makedirs(ds, exist_ok=True)
    ok = True
    for i, a in enumerate(ins):
        try:
            t = numpy_helper.from_array(a)
        except Exception:
            ok = False; break
        open(os.path.join(ds, f"input_{i}.pb"), "wb").write(t.SerializeToString())
    for i, a in enumerate(outs):
        try:
            t = numpy_helper.from_array(a)
        except Exception:
            ok = False; break
        open(os.path.join(ds, f"output_{i}.pb"), "wb").write(t.SerializeToString())
    n += 1
print(len(cases), n)
