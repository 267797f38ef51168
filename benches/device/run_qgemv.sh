# qgemv helper, sixth session: this branch's kiln/kiln_bench beside main's (kiln_base, built
# 01:15 from the fifth session's merge) on the H200, in one command:
#   bash .dev-qgemv/run_qgemv.sh
# 1. quantized GEMV kernels at the new defaults (KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER=gemv),
# 2. decode tok/s at SmolLM2-135M and 1.7B shapes (random Q4_1 GGUFs, Q8_0 embeddings),
#    kiln vs kiln_base, then the 1.7B decode profile of kiln,
# 3. sweeps of the quantized GEMV space (lane_rows 1/2/4) at the 1.7B shapes, while time is left.
# .dev-qgemv/common.sh is benches/device/common.sh with `cd .dev-qgemv` and kiln_base.xz unpacked too.
source .dev-qgemv/common.sh
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/gg
(python3 make_gguf.py make smollm2_tok.json /tmp/s135.gguf --qtype Q4_1 --embd-qtype Q8_0 > /tmp/g135.log 2>&1) &
(python3 make_gguf.py make smollm2_tok.json /tmp/s1700.gguf --dim 2048 --layers 24 --heads 32 --kv-heads 32 --ffn 8192 --rope-base 130000 --qtype Q4_1 --embd-qtype Q8_0 > /tmp/g1700.log 2>&1) &
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="gemv" timeout 40 ./kiln_bench 2>&1 | grep -v "^\[" | tee $OUT/kernels.txt
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="copy" timeout 15 ./kiln_bench 2>&1 | grep copy | tee -a $OUT/kernels.txt
t kernels
wait; t ggufs
for s in 135 1700; do
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q 2>&1 | grep -v integrity | tee -a $OUT/llm.txt &
  ./kiln_base compile /tmp/s$s.gguf -o /tmp/b$s --context 1024 --target desktop -q 2>&1 | grep -v integrity | tee -a $OUT/llm.txt &
done
wait; t compiled
for s in 135 1700; do
  echo "== SmolLM2-$s shapes, Q4_1" | tee -a $OUT/llm.txt
  echo "-- kiln (qgemv branch)" | tee -a $OUT/llm.txt
  timeout 40 ./kiln bench /tmp/k$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/llm.txt
  echo "-- kiln_base (main)" | tee -a $OUT/llm.txt
  timeout 40 ./kiln_base bench /tmp/b$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/llm.txt
  t bench $s
done
echo "== profile 1700 kiln (one decode step after 512 tokens)" | tee -a $OUT/profile.txt
timeout 30 ./kiln bench /tmp/k1700 --prompt-tokens 512 --profile -q 2>&1 | tee -a $OUT/profile.txt
t profile
for F in "q4_1 1x2048 . 8192x2048" "q4_1 1x8192 . 2048x8192" "q4_1 1x2048 . 2048x2048"; do
  left=$(( 165 - $(date +%s) + T0 )); [ $left -lt 8 ] && break
  J="$OUT/sweep-${F//[^A-Za-z0-9]/_}.jsonl"
  KILN_BENCH_TARGET=h200 KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="qgemv $F" KILN_BENCH_JSON="$J" \
    timeout $left ./kiln_bench > "${J%.jsonl}.txt" 2>&1
  t sweep "$F"
done
