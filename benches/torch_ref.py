#!/usr/bin/env python3
"""PyTorch (cuBLAS / cuDNN) baselines for the cases of `kiln_bench`, run on the same GPU in the
same device command so that ratios are side by side.

fp32 with TF32 disabled, so GEMMs are cuBLAS SGEMM; the `gemm f16` cases are fp16 matmuls
(cuBLAS HGEMM on tensor cores), beside Kiln's `--precision f16` GEMMs. Each case is timed with CUDA events around
`repeats` back-to-back launches (enough for ~5 ms per timed iteration), median of 20 iterations
after warm-up, reported per launch. Work units match kiln_bench: GFLOP/s for GEMM and conv,
GB/s (bytes read + written) for memory-bound kernels.

    python3 benches/torch_ref.py [--json out.jsonl] [--filter TEXT[|TEXT...]]
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F


def timed(fn, work, unit):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(3):
        fn()
    end.record()
    torch.cuda.synchronize()
    once = start.elapsed_time(end) / 3 / 1e3
    repeats = max(1, min(500, int(5e-3 / max(once, 1e-6)) + 1))
    times = []
    for _ in range(20):
        start.record()
        for _ in range(repeats):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / repeats)
    med = statistics.median(times)
    return med, min(times), repeats, work / med / 1e9, unit


def cases():
    dev = "cuda"
    r = lambda *s: torch.rand(*s, device=dev) * 2 - 1
    out = []
    for n in (1024, 2048, 4096):
        a, b = r(n, n), r(n, n)
        out.append((f"gemm f32 {n}x{n}x{n}", lambda a=a, b=b: a @ b, 2.0 * n**3, "GFLOP/s"))
    # fp16 matmul (cuBLAS HGEMM on tensor cores), beside Kiln's `--precision f16` GEMMs.
    for n in (1024, 2048, 4096):
        a, b = r(n, n).half(), r(n, n).half()
        out.append((f"gemm f16 {n}x{n}x{n}", lambda a=a, b=b: a @ b, 2.0 * n**3, "GFLOP/s"))
    # paraphrase-MiniLM-L3-v2's GEMMs at batch 1 x 128 and 32 x 128 (as in kiln_bench).
    for m, n, k in ((128, 384, 1536), (128, 1152, 384), (128, 1536, 384), (128, 384, 384),
                    (4096, 384, 1536), (4096, 1152, 384), (4096, 1536, 384)):
        a, b = r(m, k), r(k, n)
        out.append((f"gemm f32 {m}x{n}x{k}", lambda a=a, b=b: a @ b, 2.0 * m * n * k, "GFLOP/s"))
    for k, n in ((4096, 4096), (4096, 11008)):
        x, w = r(1, k), r(k, n)
        out.append((f"gemv f32 1x{k} . {k}x{n}", lambda x=x, w=w: x @ w, 4.0 * (k * n + k + n), "GB/s"))
    for n, c, hw, oc in ((1, 64, 112, 64), (8, 128, 56, 128)):
        x, w, bias = r(n, c, hw, hw), r(oc, c, 3, 3), r(oc)
        out.append(
            (
                f"conv3x3 f32 {n}x{c}x{hw}x{hw} -> {oc}",
                lambda x=x, w=w, bias=bias: F.conv2d(x, w, bias, padding=1),
                2.0 * n * oc * hw * hw * c * 9,
                "GFLOP/s",
            )
        )
    # Depthwise 3x3 convolutions (groups = channels), measured as bytes moved as in kiln_bench.
    for n, c, hw in ((8, 128, 56), (1, 64, 112)):
        x, w, bias = r(n, c, hw, hw), r(c, 1, 3, 3), r(c)
        out.append(
            (
                f"dwconv3x3 f32 {n}x{c}x{hw}x{hw}",
                lambda x=x, w=w, bias=bias, c=c: F.conv2d(x, w, bias, padding=1, groups=c),
                4.0 * (2 * n * c * hw * hw + c * 10),
                "GB/s",
            )
        )
    # Attention (PyTorch's scaled_dot_product_attention, fp32): issue 7's prefill target and
    # MiniLM-L3's shapes, as kiln_bench's `attention` cases (work: the two products' flops).
    for b, h, s, d in ((1, 12, 512, 64), (1, 12, 128, 32), (32, 12, 128, 32)):
        q, k, v = r(b, h, s, d), r(b, h, s, d), r(b, h, s, d)
        out.append(
            (
                f"attention f32 {b}x{h}x{s}x{d}",
                lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v),
                4.0 * b * h * s * s * d,
                "GFLOP/s",
            )
        )
        # fp16 (flash attention on tensor cores), beside Kiln's `--precision f16` variant.
        qh, kh, vh = q.half(), k.half(), v.half()
        out.append(
            (
                f"attention f16 {b}x{h}x{s}x{d}",
                lambda q=qh, k=kh, v=vh: F.scaled_dot_product_attention(q, k, v),
                4.0 * b * h * s * s * d,
                "GFLOP/s",
            )
        )
    n = 1 << 24
    a, b = r(n), r(n)
    out.append((f"add f32 {n}", lambda a=a, b=b: a + b, 12.0 * n, "GB/s"))
    out.append((f"copy (neg) f32 {n}", lambda a=a: torch.neg(a), 8.0 * n, "GB/s"))
    x = r(4096, 4096)
    out.append(("softmax f32 4096x4096", lambda x=x: torch.softmax(x, 1), 8.0 * 4096 * 4096, "GB/s"))
    s, bb = r(4096), r(4096)
    out.append(
        (
            "layernorm f32 4096x4096",
            lambda x=x, s=s, bb=bb: F.layer_norm(x, (4096,), s, bb, 1e-5),
            8.0 * 4096 * 4096,
            "GB/s",
        )
    )
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--filter", default="", help="keep cases containing it; alternatives separated by |")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name()
    print(f"device: {name}, torch {torch.__version__}")
    sink = open(args.json, "w") if args.json else None
    for case, fn, work, unit in cases():
        if not any(f in case for f in args.filter.split("|")):
            continue
        with torch.no_grad():
            med, mn, reps, rate, unit = timed(fn, work, unit)
        print(f"{case:<40} {med * 1e3:>10.4f} {mn * 1e3:>10.4f} {rate:>12.1f} {unit}")
        if sink:
            sink.write(json.dumps(dict(case=case, median_ms=med * 1e3, min_ms=mn * 1e3, repeats=reps, work=work, unit=unit, device=name)) + "\n")


if __name__ == "__main__":
    main()
