# Seventh-session f32 kernel measurements (docs/performance.md, "seventh session, gemm"): this
# branch's kiln_bench and main's (.bench/kiln_bench.xz) on issue 7's f32 cases (GEMM 1024^3,
# 2048^3, 4096^3, both GEMVs, a copy, both conv3x3 shapes), PyTorch fp32 (TF32 off) on the same
# cases in the same command, then sweeps: the wide register tiles (8x16, 16x8) beside the
# 128x128x16 8x8 default at 2048^3 and 4096^3, and the GEMV space.
# Run as `bash .dev-gemm/run_gemm7.sh` (device tool, carry .gl and .dev-gemm) from a folder
# .dev-gemm holding kiln_bench.xz (this build), kiln_bench_main.xz (main's .bench/kiln_bench.xz),
# benches/torch_ref.py and common.sh (benches/device/common.sh with `cd .dev-gemm`, both
# benches decompressed).
source .dev-gemm/common.sh
export KILN_BENCH_TARGET=h200
K="gemm f32 1024x1024x1024|gemm f32 2048x2048x2048|gemm f32 4096x4096x4096|gemv f32|copy (neg) f32 16777216|conv3x3"
echo "== branch"
KILN_BENCH_FILTER="$K" KILN_BENCH_JSON=$OUT/new.jsonl timeout 45 ./kiln_bench 2>&1 | tee $OUT/new.txt
echo "== main (.bench/kiln_bench)"
for F in "gemm f32 4096x4096" "gemm f32 1024x1024" "gemv f32" "conv3x3"; do
  KILN_BENCH_FILTER="$F" timeout 15 ./kiln_bench_main 2>&1 | grep -v "^device\|^case\|^target"
done | tee $OUT/main.txt
echo "== torch"
PYTHONUNBUFFERED=1 timeout 40 python3 torch_ref.py --filter "$K" 2>&1 | tee $OUT/torch.txt
echo "== sweep: wide register tiles"
KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="tm=16|tn=16|bm=128, bn=128, bk=16, tm=8, tn=8" \
  KILN_BENCH_FILTER="gemm f32 4096x4096|gemm f32 2048x2048" KILN_BENCH_JSON=$OUT/sweep.jsonl \
  timeout 50 ./kiln_bench 2>&1 | grep -v "^device\|^case\|^target" | tee $OUT/sweep.txt
echo "== sweep: gemv"
KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="gemv f32" KILN_BENCH_JSON=$OUT/sweepv.jsonl \
  timeout 25 ./kiln_bench 2>&1 | grep -v "^device\|^case\|^target" | tee $OUT/sweepv.txt
