# Sourced by run_final6.sh and run_final7.sh from inside the bench folder (after common.sh):
# Kiln (f32 and --precision f16) and the previous binary (kiln_base) against llama.cpp Vulkan
# on random Q4_1 GGUFs of the SmolLM2 135M / 360M / 1.7B shapes, prefill 512 and decode 128;
# defines t() (elapsed-time marks in $OUT/llm.txt).
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
