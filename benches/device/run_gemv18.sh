# Eighteenth session, third command: the f32 GEMV space with wider K splits
# (space::gemv_wide_k: 2 lanes split 32-128 ways, 4 lanes split 128 ways) swept at issue 7's
# GEMV shapes, beside PyTorch's GEMV and copy (torch_ref.py) and Kiln's defaults, twice.
#   bash benches/device/run_gemv18.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench
cp ../benches/torch_ref.py .
export KILN_BENCH_TARGET=h200
CASES="gemv f32|copy (neg)"
for r in 1 2; do
  KILN_BENCH_FILTER="$CASES" timeout 60 ./kiln_bench 2>&1 | grep "^gemv\|^copy" | sed "s/^/kiln r$r  /"
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "gemv f32|copy (neg)" 2>&1 | grep "gemv\|copy" | sed "s/^/torch r$r  /"
  KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="gemv f32" timeout 200 ./kiln_bench 2>&1 | grep "^gemv" | sed "s/^/sweep r$r  /"
done
