# Nineteenth session, third command: kernel timing without the CPU's encoding of the repeats
# (Session::bench_repeated now starts its timer at the submit, as CUDA-event timing of
# back-to-back launches does). Three builds of kiln_bench side by side with PyTorch, three
# rounds in alternation: base (unsplit GEMV default, encoding timed), enc (split GEMV
# default, encoding timed), new (split GEMV default, timer from the submit); then the new
# build's unsplit GEMVs; and the GEMV GPU tests on the H200 with their failure messages.
#   bash benches/device/run_time19.sh   (carry .gl and .bench; full logs in $OUT)
source benches/device/prelude.sh
unpack kiln_bench kiln_bench_base kiln_bench_enc kiln_tests
cp ../benches/torch_ref.py .
export KILN_BENCH_TARGET=h200
(cd .. && timeout 150 .bench/kiln_tests --test-threads 1 gpu_schedules::gemv > $OUT/tests.txt 2>&1; grep "^test \|test result\|panicked\|error\|schedule\|run " $OUT/tests.txt | cut -c1-400 | head -20 | sed "s/^/tests  /")
CASES="gemv f32|copy (neg)|softmax f32 4096|layernorm f32 4096"
for r in 1 2 3; do
  for b in base enc; do KILN_BENCH_FILTER="$CASES" timeout 60 ./kiln_bench_$b 2>&1 | grep "^gemv\|^copy\|^soft\|^layer" | cut -c1-120 | sed "s/  */ /g; s/^/$b r$r  /"; done
  KILN_BENCH_FILTER="$CASES" timeout 60 ./kiln_bench 2>&1 | grep "^gemv\|^copy\|^soft\|^layer" | cut -c1-120 | sed "s/  */ /g; s/^/new r$r  /"
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "$CASES" 2>&1 | grep "gemv\|copy\|soft\|layer" | sed "s/  */ /g; s/^/torch r$r  /"
done
KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="lanes=4, ksplit=64, rows=1)|lanes=8, ksplit=32, rows=1)|ksplit=8, rows=1, slices=|ksplit=4, rows=1, slices=16" KILN_BENCH_FILTER="gemv f32" timeout 200 ./kiln_bench > $OUT/gemv_sweep.txt 2>&1
grep "^gemv" $OUT/gemv_sweep.txt | cut -c17-125 | sed "s/  */ /g; s/^/sweep /"
