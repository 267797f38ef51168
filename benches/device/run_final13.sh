# Thirteenth session, final: this session's main (kiln_new: the decode attention's query rows
# and new K/V row staged once per workgroup, the first step's loads overlapping them) and the
# same with 2 key slices per compute unit instead of 4 (kiln_s8: 8 slices at the 1.7B shape)
# against the session start (kiln_pen, 815a3e9) on random Q4_1 GGUFs (Q8_0 embeddings) of the
# SmolLM2 135M, 360M and 1.7B shapes, `--context 1024 --target desktop`, `kiln bench
# --prompt-tokens 512 --gen-tokens 128 --iters 3` greedy (two rounds in alternation) and
# kiln_new with --temperature 0.7 --top-k 40 --top-p 0.9, beside llama.cpp Vulkan
# `llama-bench -p 512 -n 128 -r 3` on the same files; then kiln_new's decode profiles.
#   bash .bench/run_final13.sh   (carry .gl and .bench)
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .bench
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/final13.txt
B="kiln_pen:p kiln_new:n kiln_s8:e"
for b in $B; do xz -d -k -f ${b%%:*}.xz; chmod +x ${b%%:*}; done
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
source ggufs.sh
for s in 135 360 1700; do for b in $B; do
  ./${b%%:*} compile /tmp/s$s.gguf -o /tmp/${b##*:}$s --context 1024 --target desktop -q > /dev/null 2>&1 &
done; done
wait
for s in 135 360 1700; do
  for r in 1 2; do for b in $B; do
    echo "== $s ${b%%:*} round $r" | tee -a $OUT/final13.txt
    timeout 40 ./${b%%:*} bench /tmp/${b##*:}$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/final13.txt
  done; done
  echo "== $s kiln_new sampled" | tee -a $OUT/final13.txt
  timeout 40 ./kiln_new bench /tmp/n$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q --temperature 0.7 --top-k 40 --top-p 0.9 2>&1 | grep -v memory | tee -a $OUT/final13.txt
  echo "== $s llama.cpp" | tee -a $OUT/final13.txt
  LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128" | tee -a $OUT/final13.txt
done
for s in 135 1700; do
  timeout 60 ./kiln_new bench /tmp/n$s --profile --prompt-tokens 512 -q > $OUT/profile-new-$s.txt 2>&1
  grep -A30 "program 'decode'" $OUT/profile-new-$s.txt | head -32
done
