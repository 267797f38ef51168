# Prefill of 512 tokens, Kiln f32 and --precision f16 (the quantized GEMM's cooperative-matrix variant)
# vs llama.cpp Vulkan pp512 on the same random Q4_1 GGUFs (after the kernel cases of the 135M shapes), then a
# profile of the 135M f16 prefill. Run as run_llm.sh: bash .bench/run_prefill_f16.sh
source .bench/common.sh
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/gg
python3 make_gguf.py make smollm2_tok.json /tmp/s135.gguf --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1 &
python3 make_gguf.py make smollm2_tok.json /tmp/s360.gguf --dim 960 --layers 32 --heads 15 --kv-heads 5 --ffn 2560 --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1 &
python3 make_gguf.py make smollm2_tok.json /tmp/s1700.gguf --dim 2048 --layers 24 --heads 32 --kv-heads 32 --ffn 8192 --rope-base 130000 --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1 &
export KILN_BENCH_TARGET=h200
KILN_BENCH_FILTER="576" KILN_BENCH_JSON=$OUT/k576.jsonl timeout 25 ./kiln_bench 2>&1 | grep -v "^device\|^case\|^target" | tee $OUT/kernels.txt
wait
for s in 135 360 1700; do for P in f32 f16; do
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s$P --context 1024 --target desktop --precision $P -q > /dev/null 2>&1 &
done; done
wait
for s in 135 360 1700; do
  for P in f32 f16; do
    echo "== $s $P" | tee -a $OUT/llm.txt
    timeout 30 ./kiln bench /tmp/k$s$P --prompt-tokens 512 --gen-tokens 2 --iters 3 -q 2>&1 | grep prefill | tee -a $OUT/llm.txt
  done
  LD_LIBRARY_PATH=/tmp/llama timeout 30 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 0 2>&1 | grep "pp512" | tee -a $OUT/llm.txt
done
timeout 20 ./kiln bench /tmp/k135f16 --profile --prompt-tokens 512 -q 2>&1 | head -24 | tee $OUT/profile.txt
