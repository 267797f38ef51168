# GPU profile of the SmolLM2 135M and 1.7B shapes (random Q4_1 weights, Q8_0 embeddings): the
# prefill of 512 tokens and one decode step after it, per dispatch from timestamp queries
# (`kiln bench --profile`), plus the wall-time bench of the same bundle for comparison.
# Run from a `.bench/` folder holding the files common.sh and run_llm.sh name (kiln.xz,
# make_gguf.py, smollm2_tok.json, whl/gguf-*.whl); results go to $OUT/profile.txt.
source .bench/common.sh
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/gg
python3 make_gguf.py make smollm2_tok.json /tmp/s135.gguf --qtype Q4_1 --embd-qtype Q8_0 2>&1 | tail -1
python3 make_gguf.py make smollm2_tok.json /tmp/s1700.gguf --dim 2048 --layers 24 --heads 32 --kv-heads 32 --ffn 8192 --rope-base 130000 --qtype Q4_1 --embd-qtype Q8_0 2>&1 | tail -1
for s in 135 1700; do
  echo "== SmolLM2-$s shapes, Q4_1: profile (prefill 512 tokens, then one decode step)" | tee -a $OUT/profile.txt
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q 2>&1 | grep -v integrity | tee -a $OUT/profile.txt
  timeout 180 ./kiln bench /tmp/k$s --prompt-tokens 512 --profile -q 2>&1 | tee -a $OUT/profile.txt
  RUST_LOG=kiln_runtime::session=debug timeout 180 ./kiln bench /tmp/k$s --prompt-tokens 512 --gen-tokens 16 --iters 1 -q 2>&1 \
    | grep -o "program '[a-z]*': [0-9]* dispatches, prepare.*" | tail -3 | tee -a $OUT/profile.txt
  timeout 180 ./kiln bench /tmp/k$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/profile.txt
done
