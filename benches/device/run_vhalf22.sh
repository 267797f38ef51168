# Twenty-second session: flash attention with 64-key blocks whose values are staged in two
# halves (vhalf). kiln_bench_vh sweeps the vhalf members (and the default) at issue 7's case
# and at MiniLM's batch-32 shape, two rounds, beside kiln_bench_new's default (3c7a998) and
# PyTorch SDPA.
#   bash benches/device/run_vhalf22.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench_new kiln_bench_vh
cp ../benches/torch_ref.py .
export KILN_BENCH_TARGET=h200
C="attention f32 1x12x512x64 opt-level 2|attention f32 32x12x128x32 opt-level 3"
for r in 1 2; do
  KILN_BENCH_FILTER="$C" timeout 90 ./kiln_bench_new 2>&1 | grep -E "^attention" | sed "s/^/new r$r  /" | tee -a $OUT/vh.txt
  KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="splits=16, slices=2, tm=4, vhalf|splits=16, slices=4, tm=4, vhalf|splits=16, tm=4, vhalf|splits=16, slices=8, tm=4, vhalf|bk=64, splits=8, slices=4, tm=4, vhalf" KILN_BENCH_FILTER="$C" timeout 200 ./kiln_bench_vh 2>&1 | grep -E "^attention" | sed "s/^/vh r$r  /" | tee -a $OUT/vh.txt
done
PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "attention f32 1x12x512|attention f32 32x12x128x32" 2>&1 | grep attention | sed "s/^/torch  /" | tee -a $OUT/vh.txt
