#!/usr/bin/env python3
"""PyTorch eager baseline for paraphrase-MiniLM-L3-v2's shapes: `transformers.BertModel` with
its configuration (3 layers, hidden 384, 12 heads, intermediate 1536), random weights, fp32 with
TF32 off, on the GPU. Times one forward pass (CUDA events, median of 20 after warm-up) at each
`BATCHxSEQ` given, as `kiln bench` does for the Kiln bundle in the same device command.

    python3 benches/torch_minilm.py 1x128 32x128
"""
import statistics
import sys

import torch
from transformers import BertConfig, BertModel


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=3,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        hidden_act="gelu",
    )
    model = BertModel(cfg).cuda().eval()
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    for shape in sys.argv[1:] or ["1x128", "32x128"]:
        b, s = (int(v) for v in shape.split("x"))
        ids = torch.randint(0, 4096, (b, s), device="cuda")
        mask = torch.ones(b, s, dtype=torch.int64, device="cuda")
        with torch.no_grad():
            for _ in range(5):
                model(input_ids=ids, attention_mask=mask)
            torch.cuda.synchronize()
            times = []
            for _ in range(20):
                st, en = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                st.record()
                model(input_ids=ids, attention_mask=mask)
                en.record()
                torch.cuda.synchronize()
                times.append(st.elapsed_time(en))
        print(f"bert minilm-l3 {b}x{s}: median {statistics.median(times):.3f} ms, min {min(times):.3f} ms")


if __name__ == "__main__":
    main()
