# Flash attention beside PyTorch SDPA, MiniLM beside PyTorch eager, and the SmolLM2-135M-shaped
# prefill with this build's kiln and a previous one (kiln_main.xz), in one device command (the
# sixth session's pattn measurement, docs/performance.md). Run from the folder holding .bench/
# (kiln.xz, kiln_bench.xz, kiln_main.xz, torch_ref.py, torch_minilm.py, minilm_v4096.onnx,
# ids_/mask_{1,32}x128.npy, make_gguf.py, smollm2_tok.json, whl/) and .gl/:
#   bash .bench/run_attn_minilm.sh
source .bench/common.sh
xz -d -k -f kiln_main.xz; chmod +x kiln_main
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/log.txt; }
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl > /dev/null 2>&1
( for B in 1 32; do ./kiln compile minilm_v4096.onnx -o /tmp/m$B --target h200 --dim batch_size=$B --dim sequence_length=128 -q > /tmp/cm$B.txt 2>&1 & done
  PYTHONPATH=/tmp/gg python3 make_gguf.py make smollm2_tok.json /tmp/s135.gguf --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1
  ./kiln compile /tmp/s135.gguf -o /tmp/kn --context 1024 --target desktop -q > /tmp/c1.txt 2>&1 &
  ./kiln_main compile /tmp/s135.gguf -o /tmp/ko --context 1024 --target desktop -q > /tmp/c2.txt 2>&1 &
  wait ) &
PREP=$!
t kernels
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER=attention timeout 20 ./kiln_bench 2>&1 | tee -a $OUT/attn.txt
PYTHONUNBUFFERED=1 timeout 15 python3 torch_ref.py --filter attention 2>&1 | tee -a $OUT/attn.txt
wait $PREP; t minilm; cat /tmp/cm*.txt /tmp/c1.txt /tmp/c2.txt | grep -v integrity
for B in 1 32; do echo "== minilm ${B}x128 opt-level 2" | tee -a $OUT/minilm.txt
  timeout 10 ./kiln bench /tmp/m$B --input input_ids=ids_${B}x128.npy --input attention_mask=mask_${B}x128.npy --iters 20 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/minilm.txt; done
PYTHONUNBUFFERED=1 timeout 20 python3 torch_minilm.py 1x128 32x128 2>&1 | tee -a $OUT/minilm.txt
t llm
for k in kn ko; do echo "== 135M prefill $k" | tee -a $OUT/llm.txt
  timeout 10 ./kiln bench /tmp/$k --prompt-tokens 512 --gen-tokens 4 --iters 3 -q 2>&1 | tee -a $OUT/llm.txt; done
t sweep
KILN_BENCH_TARGET=h200 KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="attention f32 1x12x512x64 opt-level 2" KILN_BENCH_JSON=$OUT/sweep512.jsonl timeout 20 ./kiln_bench 2>&1 | tee $OUT/sweep512.txt | sort -k6 -n | head -8
t done
