# Nineteenth session, fourth command: cooperative-matrix tiles of 8 subgroups with 64x64
# sub-blocks (16 accumulators each) and bk 32 at 128x256 and 256x128, beside the default and
# PyTorch fp16, at 4096³ and 2048³, two rounds; then the final build's kernel table for issue 7's
# memory-bound cases beside PyTorch.
#   bash benches/device/run_coop19.sh   (carry .gl and .bench; full logs in $OUT)
source benches/device/prelude.sh
unpack kiln_bench
cp ../benches/torch_ref.py .
export KILN_BENCH_TARGET=h200
for r in 1 2; do
  KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="bk=32, sm=64, sn=64, v4)|bn=256, bk=32, sm=64, sn=32, v4)" KILN_BENCH_FILTER="gemm f16 4096|gemm f16 2048" timeout 200 ./kiln_bench > $OUT/coop_r$r.txt 2>&1
  grep "^gemm" $OUT/coop_r$r.txt | cut -c1-150 | sed "s/  */ /g; s/^/sweep r$r  /"
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "gemm f16 4096|gemm f16 2048" 2>&1 | grep "gemm" | sed "s/  */ /g; s/^/torch r$r  /"
done
CASES="gemv f32|copy (neg)|softmax f32 4096|layernorm f32 4096"
for r in 1 2; do
  KILN_BENCH_FILTER="$CASES" timeout 60 ./kiln_bench 2>&1 | grep "^gemv\|^copy\|^soft\|^layer" | cut -c1-120 | sed "s/  */ /g; s/^/kiln r$r  /"
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "$CASES" 2>&1 | grep "gemv\|copy\|soft\|layer" | sed "s/  */ /g; s/^/torch r$r  /"
done
