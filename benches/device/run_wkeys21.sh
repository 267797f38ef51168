# Twenty-first session, last command: flash attention's K and V loads without key bounds
# checks where every block of every slice is whole (a constant key count, a multiple of the
# block). The test binary's coop_attention and flash-attention tests on the H200, then
# kiln_bench (h200) attention cases, the build before (kiln_bench_base, 4d64546) and after,
# two rounds in alternation, beside PyTorch SDPA.
#   bash benches/device/run_wkeys21.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench kiln_bench_base kiln_main
cp ../benches/torch_ref.py .
timeout 100 ./kiln_main --test-threads 1 --nocapture coop_attention_variant 2>&1 | grep -E "coop attention|test result|panicked" | head
export KILN_BENCH_TARGET=h200
C="attention f32 1x12x512x64 opt-level 2|attention f16|attention f32 32x12x128x32 opt-level 3|attention f32 1x12x128x32 opt-level 3"
for r in 1 2; do
  for b in kiln_bench_base kiln_bench; do
    KILN_BENCH_FILTER="$C" timeout 90 ./$b 2>&1 | grep -E "^attention" | sed "s/^/$b r$r  /"
  done
done
PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "attention" 2>&1 | grep attention | sed "s/^/torch  /"
