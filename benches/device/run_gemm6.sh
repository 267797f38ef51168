# Sixth-session GEMM measurements (docs/performance.md): this branch's kiln_bench and main's
# .bench/kiln_bench on the GEMM cases, PyTorch (fp32 TF32 off, fp16)
# in the same command, then sweeps of the f16 cooperative-matrix spaces (vec4-staged candidates).
# Run as `bash .dev-gemm/run_gemm6.sh` (device tool, carry .gl and .dev-gemm) from a folder
# .dev-gemm holding kiln_bench.xz (this build), kiln_bench_main.xz (main's .bench/kiln_bench.xz),
# benches/torch_ref.py, and common.sh: benches/device/common.sh with `cd .dev-gemm` and both
# benches decompressed.
source .dev-gemm/common.sh
export KILN_BENCH_TARGET=h200
KILN_BENCH_FILTER="gemm f" KILN_BENCH_JSON=$OUT/new.jsonl timeout 40 ./kiln_bench 2>&1 | tee $OUT/new.txt
echo "== main (.bench/kiln_bench)"
KILN_BENCH_FILTER="gemm f" timeout 35 ./kiln_bench_main 2>&1 | grep -v "^device\|^case" | tee $OUT/main.txt
echo "== torch"
PYTHONUNBUFFERED=1 timeout 40 python3 torch_ref.py --filter "gemm f" 2>&1 | tee $OUT/torch.txt
echo "== sweep f16 4096"
KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER=v4 KILN_BENCH_FILTER="gemm f16 4096" KILN_BENCH_JSON=$OUT/sweep16.jsonl timeout 45 ./kiln_bench 2>&1 | grep -v "^device\|^case\|^target" | tee $OUT/sweep16.txt
echo "== sweep qgemm f16"
KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER=v4 KILN_BENCH_FILTER="qgemm f16 q4_1 512x2048" timeout 25 ./kiln_bench 2>&1 | grep -v "^device\|^case\|^target" | tee $OUT/sweepq.txt
