#!/usr/bin/env python3
"""Writes the fp16 ONNX MLP of `benches/device/run_mlp24*.sh` and an input for it:
y = relu(x·W1 + b1)·W2 with x f16 [rows, d], W1 [d, h], b1 [h], W2 [h, d] (random f16
weights, fixed seed), and x as an f16 .npy. Needs numpy and onnx.

    python3 benches/device/make_mlp16.py OUT.onnx X.npy [--rows 4096] [--d 1024] [--h 4096]
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("x")
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--h", type=int, default=4096)
    a = ap.parse_args()
    r = np.random.RandomState(0)
    f16 = lambda v: v.astype(np.float16)
    w1 = numpy_helper.from_array(f16(r.randn(a.d, a.h) / np.sqrt(a.d)), "w1")
    b1 = numpy_helper.from_array(f16(r.randn(a.h) * 0.1), "b1")
    w2 = numpy_helper.from_array(f16(r.randn(a.h, a.d) / np.sqrt(a.h)), "w2")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, [a.rows, a.d])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, [a.rows, a.d])
    graph = helper.make_graph(nodes, "mlp16", [x], [y], initializer=[w1, b1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, a.model)
    np.save(a.x, f16(r.randn(a.rows, a.d)))


if __name__ == "__main__":
    main()
