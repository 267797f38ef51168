"""PyTorch eager baseline for the f16 MLP of `benches/device/run_mlp24.sh`: y = relu(x·W1 + b1)·W2
with x [rows, d], W1 [d, h], W2 [h, d], all fp16 on the GPU (the shapes of the ONNX model that
script compiles). Prints the median and minimum of CUDA-event timings.

    python3 benches/torch_mlp16.py [--rows 4096] [--d 1024] [--h 4096] [--iters 50]
"""
import argparse

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--h", type=int, default=4096)
    ap.add_argument("--iters", type=int, default=50)
    a = ap.parse_args()
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    half = dict(device=dev, dtype=torch.float16, generator=g)
    x = torch.randn(a.rows, a.d, **half)
    w1 = torch.randn(a.d, a.h, **half) / a.d**0.5
    b1 = torch.randn(a.h, **half) * 0.1
    w2 = torch.randn(a.h, a.d, **half) / a.h**0.5

    def step():
        return torch.relu(x @ w1 + b1) @ w2

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(a.iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        step()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    times.sort()
    flops = 2 * 2 * a.rows * a.d * a.h
    med = times[len(times) // 2]
    print(f"torch fp16 mlp {a.rows}x{a.d}x{a.h}: median {med:.4f} ms, min {times[0]:.4f} ms, "
          f"{flops / med / 1e9:.1f} TFLOP/s ({torch.cuda.get_device_name()}, torch {torch.__version__})")


if __name__ == "__main__":
    main()
