# Twelfth session: the qgemv_layouts bench's subgroup-row, x-in-registers and int8-x GEMVs.
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .bench && xz -d -k -f qgemv_layouts.xz && chmod +x qgemv_layouts
timeout 200 ./qgemv_layouts 2>&1 | tee $OUT/layouts12.txt
# Part 2: the sampling kernel's argmax with 16 logits in flight per thread (kiln_sample) against
# main (kiln, db7364c), 1.7B and 135M, two rounds in alternation; the 135M decode profile.
xz -d -k -f kiln.xz; xz -d -k -f kiln_sample.xz; chmod +x kiln kiln_sample
source ggufs.sh
for s in 1700 135; do
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q > /dev/null 2>&1 &
  ./kiln_sample compile /tmp/s$s.gguf -o /tmp/n$s --context 1024 --target desktop -q > /dev/null 2>&1 &
done
wait
for s in 1700 135; do for r in 1 2; do
  for b in kiln:k kiln_sample:n; do
    echo "== $s ${b%%:*} round $r" | tee -a $OUT/llm12.txt
    timeout 40 ./${b%%:*} bench /tmp/${b##*:}$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/llm12.txt
  done
done; done
timeout 60 ./kiln_sample bench /tmp/n1700 --profile --prompt-tokens 512 -q 2>&1 | grep -A12 "program 'decode'" | grep -i "sample\|decode\|floor"
