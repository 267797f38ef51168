# Tenth session: quantized kernels without int-to-float conversions (quant.wgsl's kiln_u2f4) on
# the H200 in one command: every qgemv/qgemm case of this build's kiln_bench and the session
# start's, then prefill and decode end to end (`kiln bench`, f16 KV cache) for `kiln` and
# `kiln_base` on random Q4_1 GGUFs (Q8_0 embeddings) of the 135M and 1.7B shapes, twice each
# in alternation, and greedy 24-token ids of both on the 135M file.
#   bash .bench/run_i2f10.sh     (carry .gl and .bench)
# Needs in .bench/: common.sh, ggufs.sh, make_gguf.py, smollm2_tok.json, whl/, kiln.xz,
# kiln_bench.xz, kiln_base.xz, kiln_bench_base.xz.
source .bench/common.sh
xz -d -k -f kiln_base.xz && xz -d -k -f kiln_bench_base.xz && chmod +x kiln_base kiln_bench_base
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
( source ggufs.sh
  for s in 135 1700; do
    ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q > $OUT/compile-$s.txt 2>&1 &
    ./kiln_base compile /tmp/s$s.gguf -o /tmp/b$s --context 1024 --target desktop -q > /dev/null 2>&1 &
  done
  wait ) &
PREP=$!
for b in kiln_bench kiln_bench_base; do
  echo "== $b" >> $OUT/kernels.txt
  KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="qgemv|qgemm" timeout 90 ./$b >> $OUT/kernels.txt 2>&1
done
t kernels
wait $PREP; t prepared
for s in 135 1700; do
  for r in 1 2; do
    for b in kiln kiln_base; do
      d=/tmp/k$s; [ $b = kiln_base ] && d=/tmp/b$s
      echo "== $s $b round $r" | tee -a $OUT/llm.txt
      timeout 40 ./$b bench $d --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/llm.txt
    done
  done
done
for b in kiln kiln_base; do
  d=/tmp/k135; [ $b = kiln_base ] && d=/tmp/b135
  timeout 20 ./$b generate $d --prompt "The quick brown fox" --max-tokens 24 --ids 2>/dev/null | tee -a $OUT/llm.txt
done
t done
cat $OUT/kernels.txt
