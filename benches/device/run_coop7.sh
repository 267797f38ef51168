# Seventh-session coop measurements (docs/performance.md): this branch's kiln_bench with its
# defaults on the f16 cooperative-matrix GEMMs and the prefill attention, PyTorch (fp16 matmul,
# SDPA fp32) in the same command, then sweeps of the attention key slices at 1x12x512x64 and of
# the larger cooperative tiles at 4096^3 (the 48 KiB tiles through benches/device/h200_48k.ron).
# Every f16 GEMM result is checked against f64 references, every attention result against an
# f64 reference at 64 sampled rows (kiln_bench). Run as `bash .dev-coop/run_coop7.sh` (device
# tool, carry .gl and .dev-coop) from a folder .dev-coop holding kiln_bench.xz (this build),
# benches/torch_ref.py, benches/device/h200_48k.ron and common.sh (benches/device/common.sh with
# `cd .dev-coop`, decompressing only kiln_bench).
source .dev-coop/common.sh
xz -d -k -f kiln_bench.xz; chmod +x kiln_bench
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*"; }
t defaults
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="gemm f16 2048x2048x2048|gemm f16 4096x4096x4096|attention f32 1x12x512x64 opt-level 2|attention f32 1x12x128x32 opt-level 3|attention f32 32x12x128x32 opt-level 3" \
  KILN_BENCH_JSON=$OUT/defaults.jsonl timeout 30 ./kiln_bench 2>&1 | tee $OUT/defaults.txt
t torch
PYTHONUNBUFFERED=1 timeout 25 python3 torch_ref.py --filter "gemm f16 2048|gemm f16 4096|attention" 2>&1 | tee $OUT/torch.txt
t attention sweep
KILN_BENCH_TARGET=h200 KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="attention f32 1x12x512x64 opt-level 2" \
  KILN_BENCH_SWEEP_FILTER="rows=64, bk=32, splits=4|rows=64, bk=16, splits=2|rows=32, bk=32, splits=4|rows=32, bk=64, splits=8|rows=32, bk=16, splits=2" \
  KILN_BENCH_JSON=$OUT/sweep_attn.jsonl timeout 22 ./kiln_bench 2>&1 | grep -v "^device\|^case\|^target" | tee $OUT/sweep_attn.txt
t gemm sweep
KILN_BENCH_TARGET=h200_48k.ron KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="gemm f16 4096x4096x4096" \
  KILN_BENCH_SWEEP_FILTER="bm=256, bn=128, bk=16, sm=64, sn=32, v4)|bm=128, bn=256, bk=32, sm=64, sn=32, v4)|bm=128, bn=256, bk=16, sm=64, sn=32, v4)|bm=128, bn=256, bk=16, sm=32, sn=64, v4)|bm=128, bn=128, bk=16, sm=32, sn=32, v4)" \
  KILN_BENCH_JSON=$OUT/sweep_gemm.jsonl timeout 25 ./kiln_bench 2>&1 | grep -v "^device\|^case" | tee $OUT/sweep_gemm.txt
t done
