# GEMM kernels of the gemm helper (docs/performance.md, fifth session): f32 and f16 GEMMs and the
# quantized prefill GEMM (f32 and its --precision f16 cooperative-matrix variant), PyTorch in the same
# command, then the sweep of the quantized variant's space. Run as run_kernels.sh: bash .bench/run_gemm.sh
source .bench/common.sh
export KILN_BENCH_TARGET=h200
KILN_BENCH_FILTER="gemm f" KILN_BENCH_JSON=$OUT/gemm.jsonl timeout 70 ./kiln_bench 2>&1 | tee $OUT/gemm.txt
KILN_BENCH_FILTER="qgemm q4_1 512" KILN_BENCH_JSON=$OUT/qgemm.jsonl timeout 25 ./kiln_bench 2>&1 | grep -v "^device\|^case\|^target" | tee -a $OUT/gemm.txt
PYTHONUNBUFFERED=1 timeout 40 python3 torch_ref.py --filter "gemm f" 2>&1 | tee $OUT/torch.txt
KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="qgemm f16 q4_1 512x2048" KILN_BENCH_JSON=$OUT/sweep.jsonl timeout 30 ./kiln_bench 2>&1 | grep -v "^device\|^case\|^target" | tee $OUT/sweep.txt
