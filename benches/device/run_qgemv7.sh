# qgemv helper, seventh session: the whole-block quantized GEMV (qgemv_blocks.wgsl) on the H200,
# in one command: every decode GEMV case's default (`kiln_bench`, h200 profile), the
# whole-block space swept at the SmolLM2 1.7B / 135M shapes beside the part kernel's default,
# then decode end to end for this branch's `kiln` and main's (`kiln_base`) on random Q4_1 GGUFs
# (Q8_0 embeddings), and a greedy 24-token generation of both on the 135M file (same ids expected).
#   bash .dev-qgemv/run_qgemv7.sh        (carry .gl and .dev-qgemv)
# Needs in .dev-qgemv/: common.sh (benches/device/common.sh with `cd .dev-qgemv`), ggufs.sh,
# make_gguf.py, smollm2_tok.json, whl/, kiln.xz and kiln_bench.xz (this branch), kiln_base.xz.
# Ran at commit db753ba (the whole-block GEMV experiment, reverted in the next commit): the
# sweep filter `blocks` matches no candidate since.
source .dev-qgemv/common.sh
xz -d -k -f kiln_base.xz && chmod +x kiln_base
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
( source ggufs.sh
  for s in 135 1700; do
    ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q > $OUT/compile-$s.txt 2>&1 &
    ./kiln_base compile /tmp/s$s.gguf -o /tmp/b$s --context 1024 --target desktop -q > $OUT/compile-base-$s.txt 2>&1 &
  done
  wait ) &
PREP=$!
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="qgemv" timeout 60 ./kiln_bench 2>&1 | tee $OUT/kernels.txt
t kernels
SHAPES="q4_1 1x2048 . 8192|q4_1 1x8192 . 2048|q4_1 1x2048 . 2048|q8_0 1x2048 . 49152|q4_1 1x576 . 1536|q4_1 1x1536 . 576"
KILN_BENCH_TARGET=h200 KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="$SHAPES" \
  KILN_BENCH_SWEEP_FILTER="blocks|lanes=4, ksplit=64, rows=1, lane_rows=2)|lanes=8, ksplit=32, rows=1, lane_rows=2)|lanes=8, ksplit=32, rows=1)" \
  timeout 100 ./kiln_bench > $OUT/sweep.txt 2>&1
t sweep
wait $PREP; t prepared
for s in 135 1700; do
  for b in kiln kiln_base; do
    d=/tmp/k$s; [ $b = kiln_base ] && d=/tmp/b$s
    echo "== $s $b" | tee -a $OUT/llm.txt
    timeout 30 ./$b bench $d --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/llm.txt
  done
done
for b in kiln kiln_base; do
  d=/tmp/k135; [ $b = kiln_base ] && d=/tmp/b135
  timeout 20 ./$b generate $d --prompt "The quick brown fox" --max-tokens 24 --ids 2>/dev/null | tee -a $OUT/llm.txt
done
t done
