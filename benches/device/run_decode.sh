# Decode side by side: `kiln` and a previous binary `kiln_base` (both xz in .bench/) with
# llama.cpp Vulkan on the same random Q4_1 GGUFs (Q8_0 embeddings), then the 135M and 1.7B
# decode profiles of `kiln`. Results in $OUT/llm.txt and $OUT/profile.txt.
source .bench/common.sh
xz -d -k -f kiln_base.xz && chmod +x kiln_base
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/gg
python3 make_gguf.py make smollm2_tok.json /tmp/s135.gguf --qtype Q4_1 --embd-qtype Q8_0 2>&1 | tail -1 &
python3 make_gguf.py make smollm2_tok.json /tmp/s360.gguf --dim 960 --layers 32 --heads 15 --kv-heads 5 --ffn 2560 --qtype Q4_1 --embd-qtype Q8_0 2>&1 | tail -1 &
python3 make_gguf.py make smollm2_tok.json /tmp/s1700.gguf --dim 2048 --layers 24 --heads 32 --kv-heads 32 --ffn 8192 --rope-base 130000 --qtype Q4_1 --embd-qtype Q8_0 2>&1 | tail -1 &
wait; t ggufs
for s in 135 360 1700; do
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q 2>&1 | grep -v integrity | tee -a $OUT/llm.txt &
  ./kiln_base compile /tmp/s$s.gguf -o /tmp/b$s --context 1024 --target desktop -q 2>&1 | grep -v integrity | tee -a $OUT/llm.txt &
done
wait; t compiled
for s in 135 360 1700; do
  echo "== SmolLM2-$s shapes, Q4_1" | tee -a $OUT/llm.txt
  echo "-- kiln (this branch)" | tee -a $OUT/llm.txt
  timeout 60 ./kiln bench /tmp/k$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/llm.txt
  echo "-- kiln_base (main before)" | tee -a $OUT/llm.txt
  timeout 60 ./kiln_base bench /tmp/b$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/llm.txt
  echo "-- llama.cpp" | tee -a $OUT/llm.txt
  LD_LIBRARY_PATH=/tmp/llama timeout 60 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 0 -n 128 2>&1 | grep -v "^ggml_vulkan: \|^load_backend" | tee -a $OUT/llm.txt
  t bench $s
done
for s in 135 1700; do
  echo "== profile $s (one decode step after 512 tokens)" | tee -a $OUT/profile.txt
  timeout 60 ./kiln bench /tmp/k$s --prompt-tokens 512 --profile -q 2>&1 | tee -a $OUT/profile.txt
  RUST_LOG=kiln_runtime::session=debug timeout 60 ./kiln bench /tmp/k$s --prompt-tokens 512 --gen-tokens 4 --iters 1 -q 2>&1 \
    | grep -o "program '[a-z]*': [0-9]* dispatches, prepare.*" | tail -2 | tee -a $OUT/profile.txt
  t profile $s
done
