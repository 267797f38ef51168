# Chained decoding (sixth session): decode tok/s of main's binary (kiln_main), this branch step by
# step (KILN_DECODE_BATCH=0) and chained (batches of 8, the default) on the same random Q4_1
# GGUFs of the SmolLM2 shapes, then llama.cpp tg128 (`kiln bench` prints the chain's host encode time per token).
# Run from the folder of common.sh (`.bench`, or BENCH_DIR) holding kiln.xz, kiln_main.xz,
# make_gguf.py, whl/, smollm2_tok.json and llama.tar.xz: `bash .bench/run_chain.sh` (carry .gl and
# the folder). The sixth session ran it from `.dev-chain/` (its common.sh decompressed kiln_main).
source "${BENCH_DIR:-.bench}/common.sh"
xz -d -k -f kiln_main.xz && chmod +x kiln_main
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
source ggufs.sh  # the three GGUFs (benches/device/ggufs.sh, copied beside this script)
for s in 135 360 1700; do
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q > $OUT/compile-$s.txt 2>&1 &
  ./kiln_main compile /tmp/s$s.gguf -o /tmp/m$s --context 1024 --target desktop -q > $OUT/compile-main-$s.txt 2>&1 &
done
wait
B="--prompt-tokens 512 --gen-tokens 128 --iters 3 -q"
for s in 135 360 1700; do
  echo "== $s main" | tee -a $OUT/llm.txt
  timeout 40 ./kiln_main bench /tmp/m$s $B 2>&1 | head -1 | tee -a $OUT/llm.txt
  echo "== $s chain, step by step" | tee -a $OUT/llm.txt
  KILN_DECODE_BATCH=0 timeout 40 ./kiln bench /tmp/k$s $B 2>&1 | head -1 | tee -a $OUT/llm.txt
  echo "== $s chain, chained" | tee -a $OUT/llm.txt
  timeout 40 ./kiln bench /tmp/k$s $B 2>&1 | head -1 | tee -a $OUT/llm.txt
  LD_LIBRARY_PATH=/tmp/llama timeout 40 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 2 -p 0 -n 128 2>&1 | grep "tg128" | tee -a $OUT/llm.txt
done
