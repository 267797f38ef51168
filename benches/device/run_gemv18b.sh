# Eighteenth session, seventh command: the f32 GEMV adding its partial sums in two steps (two
# barriers) instead of a log2(ksplit)-barrier tree. kiln_bench_main (the tree) and kiln_bench
# (two steps) in alternation on issue 7's GEMV cases and Kiln's copy, four rounds, PyTorch's
# GEMV and copy beside them.
#   bash benches/device/run_gemv18b.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench kiln_bench_main
cp ../benches/torch_ref.py .
export KILN_BENCH_TARGET=h200
for r in 1 2 3 4; do
  for b in kiln_bench_main kiln_bench; do
    KILN_BENCH_FILTER="gemv f32|copy (neg)" timeout 60 ./$b 2>&1 | grep "^gemv\|^copy" | sed "s/^/$b r$r  /"
  done
done
PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "gemv f32|copy (neg)" 2>&1 | grep "gemv\|copy" | sed "s/^/torch  /"
