# Twenty-fourth session, second command: f16 inputs kept as f16 pairs (half_storage) and the
# cooperative GEMM's 8-value loads of them.
#  1. The GPU tests of the f16-pair operands and of the cooperative variant on the H200.
#  2. kiln_bench (h200), two rounds: the f16 GEMMs with f32 operands (`gemm f16`) and with f16
#     inputs (`hgemm f16`), the session-start build's `gemm f16 4096` beside them, PyTorch fp16.
#  3. A sweep of the cooperative tiles at hgemm 4096³.
#   bash benches/device/run_f16b24.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench_h kiln_bench_new kiln_main
cp ../benches/torch_ref.py .
timeout 120 ./kiln_main --test-threads 1 --nocapture coop_gemm_variant f16_operands_stay 2>&1 \
  | grep -E "coop gemm|f16 operands|test result|panicked" | head -30
export KILN_BENCH_TARGET=h200
for r in 1 2; do
  KILN_BENCH_FILTER="gemm f16 2048|gemm f16 4096" timeout 90 ./kiln_bench_h 2>&1 | grep -E "gemm" | sed "s/^/r$r  /"
  KILN_BENCH_FILTER="gemm f16 4096" timeout 60 ./kiln_bench_new 2>&1 | grep -E "^gemm" | sed "s/^/start r$r  /"
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "gemm f16 2048|gemm f16 4096" 2>&1 | grep gemm | sed "s/^/torch r$r  /"
done
KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="bn=256, bk=16, sm=64, sn=32, v4, db)|bn=256, bk=16, sm=64, sn=64, v4, db)|bn=256, bk=32, sm=64, sn=64, v4)|bn=128, bk=32, sm=64, sn=64, v4)|bn=256, bk=32, sm=64, sn=32, v4)|bn=256, bk=48, sm=64, sn=32, v4)|bn=128, bk=64, sm=64, sn=32, v4)" \
  KILN_BENCH_FILTER="hgemm f16 4096" timeout 200 ./kiln_bench_h 2>&1 | grep -E "gemm" | sed "s/^/sweep  /"
