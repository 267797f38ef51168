# Twelfth session, final: this session's main (kiln_final) against the session start (kiln,
# db7364c) on random Q4_1 GGUFs (Q8_0 embeddings) of the SmolLM2 135M, 360M and 1.7B shapes,
# `--context 1024 --target desktop`, `kiln bench --prompt-tokens 512 --gen-tokens 128 --iters 3`
# greedy (two rounds in alternation) and with --temperature 0.7 --top-k 40 --top-p 0.9, beside
# llama.cpp Vulkan `llama-bench -p 512 -n 128 -r 3` on the same files; then the final build's
# 1.7B decode profile with its floor. kiln_u8 is the final build with the argmax's 32 loads per
# step instead of kiln_final's 96.
#   bash .bench/run_final12.sh   (carry .gl and .bench)
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .bench
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
xz -d -k -f kiln.xz; xz -d -k -f kiln_final.xz; xz -d -k -f kiln_u8.xz; chmod +x kiln kiln_final kiln_u8
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
source ggufs.sh
for s in 135 360 1700; do
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q > /dev/null 2>&1 &
  ./kiln_final compile /tmp/s$s.gguf -o /tmp/f$s --context 1024 --target desktop -q > $OUT/compile-$s.txt 2>&1 &
  ./kiln_u8 compile /tmp/s$s.gguf -o /tmp/u$s --context 1024 --target desktop -q > /dev/null 2>&1 &
done
wait
for s in 135 360 1700; do
  for r in 1 2; do
    for b in kiln:k kiln_final:f kiln_u8:u; do
      echo "== $s ${b%%:*} round $r" | tee -a $OUT/final12.txt
      timeout 40 ./${b%%:*} bench /tmp/${b##*:}$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/final12.txt
    done
  done
  echo "== $s kiln_final sampled" | tee -a $OUT/final12.txt
  timeout 40 ./kiln_final bench /tmp/f$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q --temperature 0.7 --top-k 40 --top-p 0.9 2>&1 | grep -v memory | tee -a $OUT/final12.txt
  echo "== $s llama.cpp" | tee -a $OUT/final12.txt
  LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128" | tee -a $OUT/final12.txt
done
timeout 60 ./kiln_u8 bench /tmp/u1700 --profile --prompt-tokens 512 -q > $OUT/profile-u8-1700.txt 2>&1
grep -A40 "program 'decode'" $OUT/profile-u8-1700.txt | grep "  sample"
timeout 60 ./kiln_final bench /tmp/f1700 --profile --prompt-tokens 512 -q > $OUT/profile-final-1700.txt 2>&1
grep -A30 "program 'decode'" $OUT/profile-final-1700.txt | head -32
