# Seventh session, decode (issue 8): this branch's kiln beside main's (`kiln_base.xz`) and
# llama.cpp Vulkan (decode only) on random Q4_1 GGUFs (Q8_0 embeddings) of the SmolLM2 135M and
# 1.7B shapes; prefill 512, decode 128, three iterations; decode dispatches per step from the
# manifests. Trimmed for a 4-minute device grant: two sizes, llama.cpp tg128 only.
# Needs in .dev-decode/: kiln.xz, kiln_base.xz, llama.tar.xz, make_gguf.py, whl/,
# smollm2_tok.json, common.sh (its `cd` line naming the folder); carry ".gl" and ".dev-decode".
source .dev-decode/common.sh
xz -d -k -f kiln_base.xz && chmod +x kiln_base
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp &
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/gg
python3 make_gguf.py make smollm2_tok.json /tmp/s135.gguf --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1 &
python3 make_gguf.py make smollm2_tok.json /tmp/s1700.gguf --dim 2048 --layers 24 --heads 32 --kv-heads 32 --ffn 8192 --rope-base 130000 --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1 &
wait; t ggufs
for s in 135 1700; do
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q > $OUT/compile-$s.txt 2>&1 &
  ./kiln_base compile /tmp/s$s.gguf -o /tmp/b$s --context 1024 --target desktop -q > $OUT/compile-base-$s.txt 2>&1 &
done
wait; t compiled
for s in 135 1700; do
  for k in k b; do
    python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[1], 'decode dispatches', [len(p['dispatches']) for p in m['programs'] if p['name']=='decode'])" /tmp/$k$s/manifest.json | tee -a $OUT/llm.txt
  done
  echo "== $s this branch" | tee -a $OUT/llm.txt
  timeout 40 ./kiln bench /tmp/k$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/llm.txt
  echo "== $s main (kiln_base)" | tee -a $OUT/llm.txt
  timeout 40 ./kiln_base bench /tmp/b$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/llm.txt
  t size $s
done
for s in 135 1700; do
  LD_LIBRARY_PATH=/tmp/llama timeout 30 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 0 -n 128 2>&1 | grep "tg128" | tee -a $OUT/llm.txt
done
t llama
