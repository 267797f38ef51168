# Sixth-session merged main on the H200, in one command: Kiln (f32 and --precision f16) against
# llama.cpp Vulkan on the same random Q4_1 GGUFs (Q8_0 embeddings) of the SmolLM2 135M / 360M /
# 1.7B shapes, prefill 512 and decode 128; the session's starting binary (`kiln_base.xz`) beside
# it for decode; a 1.7B decode-step profile; then the issue-7 kernels beside PyTorch.
# Needs in .bench/: kiln.xz, kiln_bench.xz, kiln_base.xz, llama.tar.xz, make_gguf.py, whl/,
# smollm2_tok.json, torch_ref.py, common.sh, ggufs.sh (carry ".gl" and ".bench").
source .bench/common.sh
xz -d -k -f kiln_base.xz && chmod +x kiln_base
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
source ggufs.sh; t ggufs
for s in 135 360 1700; do
  for P in f32 f16; do
    ./kiln compile /tmp/s$s.gguf -o /tmp/k$s$P --context 1024 --target desktop --precision $P -q > $OUT/compile-$s$P.txt 2>&1 &
  done
  ./kiln_base compile /tmp/s$s.gguf -o /tmp/b$s --context 1024 --target desktop -q > $OUT/compile-base-$s.txt 2>&1 &
done
wait; t compiled
for s in 135 360 1700; do
  for P in f32 f16; do
    echo "== $s $P" | tee -a $OUT/llm.txt
    timeout 60 ./kiln bench /tmp/k$s$P --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/llm.txt
  done
  echo "== $s base (session start, f32)" | tee -a $OUT/llm.txt
  timeout 60 ./kiln_base bench /tmp/b$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/llm.txt
  LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128" | tee -a $OUT/llm.txt
  t size $s
done
echo "== profile 1.7B f32 (prefill 512, one decode step)" | tee -a $OUT/profile.txt
timeout 60 ./kiln bench /tmp/k1700f32 --profile --prompt-tokens 512 -q > $OUT/profile1700.txt 2>&1
t profile
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER=4096x4096x4096 timeout 90 ./kiln_bench 2>&1 | tee $OUT/kernels.txt
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="attention f32 1x12x512" timeout 40 ./kiln_bench 2>&1 | tee -a $OUT/kernels.txt
t kernels
timeout 60 python3 torch_ref.py --filter 4096x4096x4096 2>&1 | tee $OUT/torch.txt
timeout 30 python3 torch_ref.py --filter attention 2>&1 | tee -a $OUT/torch.txt
t torch
