# Nineteenth session, first command: (1) the cooperative-matrix GEMM with deeper K-steps
# (bk 48 at 128x256 / 256x128 and bk 48 / 64 at 128x128, whose stages fit 48 KiB only without
# the epilogue scratch) swept at 4096³ and 2048³ beside PyTorch fp16; (2) f32 GEMV forms that
# split K across workgroups with wide contiguous row chunks (benches/gemv_split.rs) beside
# Kiln's GEMV default and PyTorch's GEMV and copy, twice.
#   bash benches/device/run_k19.sh   (carry .gl and .bench; full logs in $OUT)
source benches/device/prelude.sh
unpack kiln_bench gemv_split
cp ../benches/torch_ref.py .
export KILN_BENCH_TARGET=h200
for r in 1 2; do
  KILN_BENCH_FILTER="gemm f16 4096|gemm f16 2048" timeout 60 ./kiln_bench 2>&1 | grep "^gemm" | sed "s/^/kiln r$r  /"
  PYTHONUNBUFFERED=1 timeout 90 python3 torch_ref.py --filter "gemm f16 4096|gemm f16 2048|gemv f32|copy (neg)" 2>&1 | grep "gemm\|gemv\|copy" | sed "s/^/torch r$r  /"
  KILN_BENCH_FILTER="gemv f32|copy (neg)" timeout 60 ./kiln_bench 2>&1 | grep "^gemv\|^copy" | sed "s/^/kiln r$r  /"
  timeout 150 ./gemv_split > $OUT/gemv_split_r$r.txt 2>&1
  grep "baseline\|ceiling" $OUT/gemv_split_r$r.txt | sed "s/^/split r$r  /"
  for n in 4096 11008; do grep "^| $n |" $OUT/gemv_split_r$r.txt | grep -v "baseline\|ceiling" | sort -t'|' -k4 -g | head -8 | sed "s/^/split r$r  /"; done
done
KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="bk=48|bk=64|bn=256, bk=32, sm=64, sn=32, v4)" KILN_BENCH_FILTER="gemm f16 4096|gemm f16 2048" timeout 240 ./kiln_bench > $OUT/coop_sweep.txt 2>&1
grep "^gemm" $OUT/coop_sweep.txt | awk '{print $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14}' | sed "s/^/sweep  /"
