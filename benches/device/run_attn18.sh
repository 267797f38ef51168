# Eighteenth session, second command: flash attention split over keys with the last slice of
# each row tile combining the slices (no combine dispatch). main's kiln_bench
# (kiln_bench_main, 388d251 + snapshot) and this tree's (kiln_bench) in alternation on the
# issue-7 prefill case, PyTorch SDPA fp32 (torch_ref.py) in between, then KILN_BENCH_SWEEP=1
# over the 64-row register-tiled members (1-8 key slices, with and without pbuf / sg) with
# both builds. Every Kiln result is checked against an f64 reference (64 rows).
#   bash benches/device/run_attn18.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench kiln_bench_main
cp ../benches/torch_ref.py .
export KILN_BENCH_TARGET=h200
CASE="attention f32 1x12x512x64 opt-level 2"
for r in 1 2 3; do
  for b in kiln_bench_main kiln_bench; do
    KILN_BENCH_FILTER="$CASE" timeout 40 ./$b 2>&1 | grep "^attention" | sed "s/^/$b r$r  /"
  done
  PYTHONUNBUFFERED=1 timeout 30 python3 torch_ref.py --filter "attention f32 1x12x512x64" 2>&1 | grep attention | sed "s/^/torch r$r  /"
done
for b in kiln_bench_main kiln_bench; do
  KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="$CASE" KILN_BENCH_SWEEP_FILTER="rows=64, bk=32, splits=8" \
    timeout 150 ./$b 2>&1 | grep -v "^device\|^case\|^target" | sed "s/^/$b sweep  /"
done
