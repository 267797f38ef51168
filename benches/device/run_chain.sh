# Chained decoding (sixth session): decode tok/s of main's binary (kiln_main), this branch step by
# step (KILN_DECODE_BATCH=0) and chained (batches of 8, the default) on the same random Q4_1
# GGUFs of the SmolLM2 shapes, then llama.cpp tg128 (`kiln bench` prints the chain's host encode time per token).
# Run from the folder of common.sh (`.bench`, or BENCH_DIR) holding kiln.xz, kiln_main.xz,
# make_gguf.py, whl/, smollm2_tok.json and llama.tar.xz: `bash .bench/run_chain.sh` (carry .gl and
# the folder). The sixth session ran it from `.dev-chain/` (its common.sh decompressed kiln_main).
source "${BENCH_DIR:-.bench}/common.sh"
xz -d -k -f kiln_main.xz && chmod +x kiln_main
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/gg
python3 make_gguf.py make smollm2_tok.json /tmp/s135.gguf --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1 &
python3 make_gguf.py make smollm2_tok.json /tmp/s360.gguf --dim 960 --layers 32 --heads 15 --kv-heads 5 --ffn 2560 --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1 &
python3 make_gguf.py make smollm2_tok.json /tmp/s1700.gguf --dim 2048 --layers 24 --heads 32 --kv-heads 32 --ffn 8192 --rope-base 130000 --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1 &
wait
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
