# Fifteenth session, final command: this tree's `kiln` (the rounding gate/up GEMV, default
# `--activations auto`) against `kiln_base` (e512730) and llama.cpp Vulkan on the random Q4_1
# GGUFs (Q8_0 embeddings) of the SmolLM2 135M / 360M / 1.7B shapes, `--context 1024 --target
# desktop`, `kiln bench --prompt-tokens 512 --gen-tokens 128 --iters 3`, two rounds in
# alternation, `llama-bench -p 512 -n 128 -r 3`; then the 1.7B decode profile.
#   bash .bench/run_final15.sh   (carry .gl and .bench)
source benches/device/prelude.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/final.txt
for b in kiln kiln_base; do xz -d -k -f $b.xz; chmod +x $b; done
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
source ggufs.sh
K="--context 1024 --target desktop -q"
B="--prompt-tokens 512 --gen-tokens 128 --iters 3 -q"
for s in 135 360 1700; do
  ./kiln_base compile /tmp/s$s.gguf -o /tmp/base$s $K > /dev/null 2>&1 &
  ./kiln compile /tmp/s$s.gguf -o /tmp/new$s $K > /dev/null 2>&1 &
done
wait
for s in 135 360 1700; do
  for r in 1 2; do
    echo "== $s base round $r" | tee -a $OUT/final.txt; timeout 40 ./kiln_base bench /tmp/base$s $B 2>&1 | tee -a $OUT/final.txt
    echo "== $s new round $r" | tee -a $OUT/final.txt; timeout 40 ./kiln bench /tmp/new$s $B 2>&1 | tee -a $OUT/final.txt
  done
  echo "== $s llama.cpp" | tee -a $OUT/final.txt
  LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128" | tee -a $OUT/final.txt
done
timeout 60 ./kiln bench /tmp/new1700 --profile --prompt-tokens 512 -q > $OUT/profile-new1700.txt 2>&1
grep -A30 "program 'decode'" $OUT/profile-new1700.txt | cut -c1-160 | head -31
