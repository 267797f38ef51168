# Kernel benchmarks of issue 7, side by side with PyTorch in one device command. Run like
# run_minilm.sh, from the folder holding .bench/ (kiln_bench.xz, torch_ref.py, this file) and
# .gl/ (common.sh changes into .bench):
#   bash .bench/run_kernels.sh               defaults for the `h200` and `desktop` profiles (GEMM
#                                            1024^3/2048^3/4096^3 in f32 and with --precision f16,
#                                            the cooperative-matrix variant, checked against an f64
#                                            reference; MiniLM's GEMMs at M = 128 and
#                                            4096, GEMV 1x4096x4096 and 1x4096x11008, softmax and
#                                            layer norm 4096x4096, add, copy), then PyTorch
#   bash .bench/run_kernels.sh FILTER...     the schedule sweep of the cases whose name contains
#                                            each FILTER (every candidate of the GEMM/GEMV spaces,
#                                            split-K and double-buffered ones included), best 5
# One sweep filter per command keeps within the 10-minute limit, e.g. "gemm f32 4096x4096",
# "gemm f32 128x1152", "gemm f32 4096x384", "gemv f32 1x4096 . 4096x4096", "gemm f16 4096x4096"
# (the cooperative-matrix schedule space).
#   bash .bench/run_kernels.sh --f16         only the f16 GEMMs, Kiln and PyTorch fp16 side by side
source .bench/common.sh
if [ "${1:-}" = "--f16" ]; then
  KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="gemm f16" KILN_BENCH_JSON=$OUT/kernels-f16.jsonl \
    timeout 200 ./kiln_bench 2>&1 | tee $OUT/kernels-f16.txt
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "gemm f16" 2>&1 | tee $OUT/torch_ref-f16.txt
  exit 0
fi
if [ $# -eq 0 ]; then
  for T in h200 desktop; do
    echo "== defaults, target $T" | tee -a $OUT/kernels.txt
    KILN_BENCH_TARGET=$T KILN_BENCH_JSON=$OUT/kernels-$T.jsonl timeout 240 ./kiln_bench 2>&1 \
      | grep -v "attention\|conv3x3\|demo" | tee -a $OUT/kernels.txt
  done
  PYTHONUNBUFFERED=1 timeout 120 python3 torch_ref.py 2>&1 | tee $OUT/torch_ref.txt
  exit 0
fi
for F in "$@"; do
  J="$OUT/sweep-${F//[^A-Za-z0-9]/_}.jsonl"
  KILN_BENCH_TARGET=h200 KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="$F" KILN_BENCH_JSON="$J" \
    timeout 560 ./kiln_bench > "${J%.jsonl}.txt" 2>&1
  python3 -c "
import json, sys, collections
rows = collections.defaultdict(list)
for l in open(sys.argv[1]):
    r = json.loads(l); rows[r['case']].append(r)
for case, rs in rows.items():
    d = [r for r in rs if r['default']]
    print(case, '| default:', d[0]['schedule'] if d else '-', d[0]['median_ms'] if d else '-', '| of', len(rs))
    for r in sorted(rs, key=lambda r: r['median_ms'])[:5]:
        print('   ', r['median_ms'], r['schedule'])
" "$J" | tee -a $OUT/sweep-best.txt
done
