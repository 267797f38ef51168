# Final merged-main LLM comparison: Kiln f32 and --precision f16 vs llama.cpp Vulkan on the same
# random Q4_1 GGUFs, prefill 512 and decode 128, plus 135M profiles of f32 and f16 prefill.
source .bench/common.sh
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
source ggufs.sh  # the three GGUFs (benches/device/ggufs.sh, copied beside this script)
for s in 135 360 1700; do for P in f32 f16; do
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s$P --context 1024 --target desktop --precision $P -q > $OUT/compile-$s$P.txt 2>&1 &
done; done
wait
for s in 135 360 1700; do
  for P in f32 f16; do
    echo "== $s $P" | tee -a $OUT/llm.txt
    timeout 60 ./kiln bench /tmp/k$s$P --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/llm.txt
  done
  LD_LIBRARY_PATH=/tmp/llama timeout 60 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128" | tee -a $OUT/llm.txt
done
for P in f32 f16; do
  echo "== profile 135M $P prefill" | tee -a $OUT/profile.txt
  timeout 30 ./kiln bench /tmp/k135$P --profile --prompt-tokens 512 -q 2>&1 | head -16 | tee -a $OUT/profile.txt
done
