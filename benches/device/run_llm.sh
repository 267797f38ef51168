source .bench/common.sh
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp && ls /tmp/llama | head -3
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/gg
G=python3
$G make_gguf.py make smollm2_tok.json /tmp/s135.gguf --qtype Q4_1 --embd-qtype Q8_0 2>&1 | tail -1
$G make_gguf.py make smollm2_tok.json /tmp/s360.gguf --dim 960 --layers 32 --heads 15 --kv-heads 5 --ffn 2560 --qtype Q4_1 --embd-qtype Q8_0 2>&1 | tail -1
$G make_gguf.py make smollm2_tok.json /tmp/s1700.gguf --dim 2048 --layers 24 --heads 32 --kv-heads 32 --ffn 8192 --rope-base 130000 --qtype Q4_1 --embd-qtype Q8_0 2>&1 | tail -1
ls -la /tmp/*.gguf
for s in 135 360 1700; do
  echo "== SmolLM2-$s shapes, Q4_1" | tee -a $OUT/llm.txt
  ( time ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q ) 2>&1 | grep -v integrity | tee -a $OUT/llm.txt
  timeout 120 ./kiln bench /tmp/k$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/llm.txt
  LD_LIBRARY_PATH=/tmp/llama timeout 120 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep -v "^ggml_vulkan: \|^load_backend" | tee -a $OUT/llm.txt
done
