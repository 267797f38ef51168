# Twenty-first session, fifth command: the f16 cooperative-matrix GEMM with unsigned load and
# store indices, and operand loads without bounds checks where every block and K-step is whole
# (coop_ceiling's bare 128x256 kernel read 227 TFLOP/s against Kiln's 143-155).
#  1. The test binary's coop_gemm_variant and coop_attention tests on the H200 (the variant
#     must run and match the f64 reference of f16-rounded operands; whole, epilogue, partial).
#  2. kiln_bench (h200): f16 GEMMs 1024³ / 2048³ / 4096³ and the f32 4096³ GEMM, two rounds;
#     then a sweep of the main cooperative tiles at 2048³ and 4096³; PyTorch beside them.
#   bash benches/device/run_whole21.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench kiln_main
cp ../benches/torch_ref.py .
timeout 120 ./kiln_main --test-threads 1 --nocapture coop_gemm_variant coop_attention_variant 2>&1 \
  | grep -E "coop gemm|coop attention|test result|panicked" | head -20
export KILN_BENCH_TARGET=h200
for r in 1 2; do
  KILN_BENCH_FILTER="gemm f16|gemm f32 4096x4096" timeout 90 ./kiln_bench 2>&1 | grep -E "^gemm" | sed "s/^/r$r  /"
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "gemm f16|gemm f32 4096x4096" 2>&1 | grep gemm | sed "s/^/torch r$r  /"
done
KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="bn=256, bk=32, sm=64, sn=32, v4)|bm=256, bn=128, bk=32, sm=64, sn=32, v4)|bn=256, bk=48, sm=64, sn=32, v4)|bm=128, bn=128, bk=32, sm=64, sn=32, v4)|bm=128, bn=128, bk=64, sm=64, sn=32, v4)|bn=256, bk=16, sm=64, sn=32, v4, db)|bn=256, bk=32, sm=64, sn=64, v4)" \
  KILN_BENCH_FILTER="gemm f16 2048|gemm f16 4096" timeout 200 ./kiln_bench 2>&1 | grep -E "^gemm" | sed "s/^/sweep  /"
