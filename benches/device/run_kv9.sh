# Ninth session: the f16 KV cache on the H200. Kiln with `--kv-cache f16` (the new default) and
# `--kv-cache f32` (the cache as before) from one binary, the session start's binary (kiln_base),
# and llama.cpp Vulkan (f16 cache, its default) on random Q4_1 GGUFs of the SmolLM2 135M / 360M /
# 1.7B shapes: prefill 512, decode 128, memory; then decode at a 960-token prompt (context 1024).
# Needs in .bench/: kiln.xz, kiln_base.xz, llama.tar.xz, make_gguf.py, whl/, smollm2_tok.json,
# common.sh, ggufs.sh (carry ".gl" and ".bench").
source .bench/common.sh
xz -d -k -f kiln_base.xz && chmod +x kiln_base
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
source ggufs.sh; t ggufs
for s in 135 360 1700; do
  for K in f16 f32; do
    ./kiln compile /tmp/s$s.gguf -o /tmp/k$s$K --context 1024 --target desktop --kv-cache $K -q > $OUT/compile-$s$K.txt 2>&1 &
  done
  ./kiln_base compile /tmp/s$s.gguf -o /tmp/b$s --context 1024 --target desktop -q > $OUT/compile-base-$s.txt 2>&1 &
done
wait; t compiled
for s in 135 360 1700; do
  for b in k${s}f16 k${s}f32 b$s; do
    echo "== $s $b" | tee -a $OUT/llm.txt
    bin=./kiln; [ $b = b$s ] && bin=./kiln_base
    timeout 60 $bin bench /tmp/$b --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/llm.txt
  done
  LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128" | tee -a $OUT/llm.txt
  t size $s
done
for s in 135 1700; do
  for b in k${s}f16 k${s}f32; do
    echo "== $s $b long (prompt 896)" | tee -a $OUT/llm.txt
    timeout 60 ./kiln bench /tmp/$b --prompt-tokens 896 --gen-tokens 128 --iters 2 -q 2>&1 | grep -i "decode\|memory" | tee -a $OUT/llm.txt
  done
done
t done
