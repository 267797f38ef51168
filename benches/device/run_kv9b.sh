# Ninth session, second f16-cache command: after the decode attention reads a packed word (two
# adjacent channels) per thread and load. `--kv-cache f16` vs `--kv-cache f32` from one binary
# at the 135M and 1.7B shapes, prompts of 512 and 896 tokens, 128 decoded.
source .bench/common.sh
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
source ggufs.sh; t ggufs
for s in 135 1700; do
  for K in f16 f32; do
    ./kiln compile /tmp/s$s.gguf -o /tmp/k$s$K --context 1024 --target desktop --kv-cache $K -q > $OUT/compile-$s$K.txt 2>&1 &
  done
done
wait; t compiled
for P in 512 896; do
  for s in 135 1700; do
    for K in f16 f32 f16 f32; do
      echo "== $s $K prompt $P" | tee -a $OUT/llm.txt
      timeout 60 ./kiln bench /tmp/k$s$K --prompt-tokens $P --gen-tokens 128 --iters 2 -q 2>&1 | grep -i "decode" | tee -a $OUT/llm.txt
    done
  done
done
t done
