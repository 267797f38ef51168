# Eighth session, quantized GEMV on the H200 in one command: every qgemv case's default for this
# build (`kiln_bench`) and the session start's (`kiln_bench_base`), the part-kernel space swept at
# the SmolLM2 1.7B shapes, then decode end to end (`kiln bench`) for `kiln` and `kiln_base` on
# random Q4_1 GGUFs (Q8_0 embeddings) of the 135M and 1.7B shapes, a 1.7B decode-step profile and
# a greedy 24-token generation of both builds on the 135M file (ids compared by eye).
#   bash .bench/run_qgemv8.sh     (carry .gl and .bench)
# Needs in .bench/: common.sh, ggufs.sh, make_gguf.py, smollm2_tok.json, whl/, kiln.xz,
# kiln_bench.xz, kiln_base.xz, kiln_bench_base.xz.
source .bench/common.sh
xz -d -k -f kiln_base.xz && xz -d -k -f kiln_bench_base.xz && chmod +x kiln_base kiln_bench_base
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
( source ggufs.sh
  for s in 135 1700; do
    ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q > $OUT/compile-$s.txt 2>&1 &
    ./kiln_base compile /tmp/s$s.gguf -o /tmp/b$s --context 1024 --target desktop -q > $OUT/compile-base-$s.txt 2>&1 &
  done
  wait ) &
PREP=$!
for b in kiln_bench kiln_bench_base; do
  echo "== $b" >> $OUT/kernels.txt
  KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="qgemv" timeout 60 ./$b >> $OUT/kernels.txt 2>&1
done
t kernels
SHAPES="q4_1 1x2048 . 8192|q4_1 1x8192 . 2048|q4_1 1x2048 . 2048"
KILN_BENCH_TARGET=h200 KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="$SHAPES" timeout 100 ./kiln_bench > $OUT/sweep.txt 2>&1
t sweep
wait $PREP; t prepared
for s in 135 1700; do
  for b in kiln kiln_base; do
    d=/tmp/k$s; [ $b = kiln_base ] && d=/tmp/b$s
    echo "== $s $b" | tee -a $OUT/llm.txt
    timeout 30 ./$b bench $d --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/llm.txt
  done
done
timeout 60 ./kiln bench /tmp/k1700 --profile --prompt-tokens 512 -q > $OUT/profile1700.txt 2>&1
for b in kiln kiln_base; do
  d=/tmp/k135; [ $b = kiln_base ] && d=/tmp/b135
  timeout 20 ./$b generate $d --prompt "The quick brown fox" --max-tokens 24 --ids 2>/dev/null | tee -a $OUT/llm.txt
done
t done
cat $OUT/kernels.txt; grep -v "^\s*$" $OUT/sweep.txt | sort -t'|' -k1,1 | head -150; head -60 $OUT/profile1700.txt
