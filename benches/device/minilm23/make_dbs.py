#!/usr/bin/env python3
"""Writes tuning databases that force one GEMM tile on all four of MiniLM-L3's 32x128 products
(QKV, FFN up and down, output projection), with K split `ks` ways on the two N = 384 products:
`db_BMxBN_TMxTN_ksKS.ron` in the directory given. Used by run_gtile23.sh to read each product's
time per tile in the model (`kiln bench --profile`)."""
import sys

KEYS = {
    "gemm:b=32,m=128,n=1152,k=384": False,
    "gemm:b=32,m=128,n=1536,k=384": False,
    "gemm:b=32,m=128,n=384,k=1536": True,
    "gemm:b=32,m=128,n=384,k=384": True,
}
TILES = [(128, 64, 8, 8), (64, 128, 8, 8), (64, 128, 8, 4), (128, 64, 4, 8), (64, 64, 8, 8), (128, 128, 8, 8)]

out = sys.argv[1]
for bm, bn, tm, tn in TILES:
    for ks in (1, 2):
        lines = []
        for key, split in KEYS.items():
            k = f", ksplit: {ks}" if split and ks > 1 else ""
            lines.append(
                f'        "{key}": (schedule: Gemm((bm: {bm}, bn: {bn}, bk: 16, tm: {tm}, tn: {tn}{k})), micros: 0.0, device: "forced"),'
            )
        name = f"{out}/db_{bm}x{bn}_{tm}x{tn}_ks{ks}.ron"
        open(name, "w").write("(\n    records: {\n" + "\n".join(lines) + "\n    },\n)\n")
        print(name)
