# Fourteenth session: 8-bit activations. One binary (kiln_q8, this session's tree) compiled
# with `--activations q8` (default: the norm before q/k/v, gate/up and the head quantizes to
# 8-bit blocks; the GEMVs take dot4I8Packed) and `--activations f32` (as before), on random
# Q4_1 GGUFs (Q8_0 embeddings) of the SmolLM2 135M, 360M and 1.7B shapes, `--context 1024
# --target desktop`, `kiln bench --prompt-tokens 512 --gen-tokens 128 --iters 3` greedy, two
# rounds in alternation, beside llama.cpp Vulkan `llama-bench -p 512 -n 128 -r 3` on the same
# files; then decode profiles of both at 1.7B.
#   bash .bench/run_q8_14.sh   (carry .gl and .bench)
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .bench
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/q8.txt
xz -d -k -f kiln_q8.xz; chmod +x kiln_q8
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
source ggufs.sh
for s in 135 360 1700; do for a in q8 f32; do
  ./kiln_q8 compile /tmp/s$s.gguf -o /tmp/$a$s --context 1024 --target desktop --activations $a -q > /dev/null 2>&1 &
done; done
wait
for s in 135 360 1700; do
  for r in 1 2; do for a in q8 f32; do
    echo "== $s $a round $r" | tee -a $OUT/q8.txt
    timeout 40 ./kiln_q8 bench /tmp/$a$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/q8.txt
  done; done
  echo "== $s llama.cpp" | tee -a $OUT/q8.txt
  LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128" | tee -a $OUT/q8.txt
done
for a in q8 f32; do
  timeout 60 ./kiln_q8 bench /tmp/${a}1700 --profile --prompt-tokens 512 -q > $OUT/profile-$a-1700.txt 2>&1
  grep -A40 "program 'decode'" $OUT/profile-$a-1700.txt | head -42
done
