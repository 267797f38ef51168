# Twentieth session, first command: the cooperative-matrix flash attention (`--precision f16`).
# The test binary's coop_attention test on the H200 (the variant must run there and match an
# f64 attention of f16-rounded operands), then kiln_bench's attention cases (f32 default and
# f16 variant, each checked against an f64 reference) beside PyTorch SDPA fp32 and fp16
# (torch_ref.py) in two rounds, then KILN_BENCH_SWEEP=1 over space::coop_attention at issue
# 7's prefill case.
#   bash benches/device/run_cattn20.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench kiln_main
cp ../benches/torch_ref.py .
timeout 120 ./kiln_main --test-threads 1 --nocapture coop_attention 2>&1 | grep -E "coop attention|test result|panicked|error" | head -20
export KILN_BENCH_TARGET=h200
CASES="attention f16|attention f32 1x12x512x64 opt-level 2|attention f32 1x12x128x32 opt-level 3|attention f32 32x12x128x32 opt-level 3"
for r in 1 2; do
  KILN_BENCH_FILTER="$CASES" timeout 90 ./kiln_bench 2>&1 | grep "^attention" | sed "s/^/kiln r$r  /"
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "attention" 2>&1 | grep attention | sed "s/^/torch r$r  /"
done
KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="attention f16 1x12x512x64" timeout 200 ./kiln_bench 2>&1 \
  | grep "^attention" | sed "s/^/sweep  /" | tee $OUT/sweep.txt
