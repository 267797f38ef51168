# Memory and speed of two kiln builds side by side (kiln.xz = before, kiln_new.xz = after) on the
# SmolLM2 135M/360M/1.7B shapes (random Q4_1 weights, Q8_0 embeddings): run like run_llm.sh
# with kiln_new.xz beside kiln.xz in .bench/; results go to $OUT/mem.txt.
source .bench/common.sh
xz -d -k -f kiln_new.xz; chmod +x kiln_new
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/gg
python3 make_gguf.py make smollm2_tok.json /tmp/s135.gguf --qtype Q4_1 --embd-qtype Q8_0 2>&1 | tail -1
python3 make_gguf.py make smollm2_tok.json /tmp/s360.gguf --dim 960 --layers 32 --heads 15 --kv-heads 5 --ffn 2560 --qtype Q4_1 --embd-qtype Q8_0 2>&1 | tail -1
python3 make_gguf.py make smollm2_tok.json /tmp/s1700.gguf --dim 2048 --layers 24 --heads 32 --kv-heads 32 --ffn 8192 --rope-base 130000 --qtype Q4_1 --embd-qtype Q8_0 2>&1 | tail -1
for s in 135 360 1700; do for k in kiln kiln_new; do
  echo "== SmolLM2-$s shapes, Q4_1, $k" | tee -a $OUT/mem.txt
  ./$k compile /tmp/s$s.gguf -o /tmp/k$s-$k --context 1024 --target desktop -q 2>&1 | grep -v integrity | tee -a $OUT/mem.txt
  timeout 100 ./$k bench /tmp/k$s-$k --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/mem.txt
done; done
