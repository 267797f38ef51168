# Nineteenth session, second command: the f32 GEMV whose K is split over workgroups
# (GemvParams::slices; the new default for one row of A) against the unsplit default of the
# previous build (kiln_bench_base), PyTorch's GEMV and copy, three rounds in alternation; the
# GEMV space's split members swept at issue 7's shapes; and the GPU tests of the split GEMV
# (and the other schedule tests) run on the H200 itself.
#   bash benches/device/run_gemv19.sh   (carry .gl and .bench; full logs in $OUT)
source benches/device/prelude.sh
unpack kiln_bench kiln_bench_base kiln_tests
cp ../benches/torch_ref.py .
export KILN_BENCH_TARGET=h200
(cd .. && timeout 150 .bench/kiln_tests --test-threads 1 gpu_schedules::gemv 2>&1 | grep "^test \|test result" | sed "s/^/tests  /")
CASES="gemv f32|copy (neg)"
for r in 1 2 3; do
  KILN_BENCH_FILTER="$CASES" timeout 60 ./kiln_bench_base 2>&1 | grep "^gemv\|^copy" | sed "s/^/base r$r  /"
  KILN_BENCH_FILTER="$CASES" timeout 60 ./kiln_bench 2>&1 | grep "^gemv\|^copy" | sed "s/^/new r$r   /"
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "$CASES" 2>&1 | grep "gemv\|copy" | sed "s/^/torch r$r  /"
done
KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="slices=|lanes=4, ksplit=64, rows=1)|lanes=8, ksplit=32, rows=1)" KILN_BENCH_FILTER="gemv f32" timeout 240 ./kiln_bench > $OUT/gemv_sweep.txt 2>&1
grep "^gemv" $OUT/gemv_sweep.txt | cut -c17-125 | sed "s/  */ /g; s/^/sweep /"
