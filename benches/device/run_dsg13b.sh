# Thirteenth session, second command: the decode attention with its query rows (and the
# appended key's K/V rows) staged once per workgroup in workgroup memory (kiln_sq), the same with
# the subgroup form as a variant (kiln_sqsg), and with 8 key slices per compute unit instead of 4
# (kiln_sq32: 32 slices at the 1.7B shape), one slice (no combine; kiln_s1: the plain kernel,
# kiln_s1g: the subgroup form of 512 threads as a variant), against main (kiln_pen); random Q4_1 GGUFs of the
# 135M / 360M / 1.7B shapes, decode at a 512-token prompt, two rounds in alternation; decode
# profiles at 135M and 1.7B.
#   bash .bench/run_dsg13b.sh   (carry .gl and .bench)
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .bench
B="kiln_pen:p kiln_sq:q kiln_sqsg:g kiln_sq32:w kiln_s1:o kiln_s1g:n"
for b in $B; do xz -d -k -f ${b%%:*}.xz; chmod +x ${b%%:*}; done
source ggufs.sh
for s in 135 360 1700; do for b in $B; do
  ./${b%%:*} compile /tmp/s$s.gguf -o /tmp/${b##*:}$s --context 1024 --target desktop -q > /dev/null 2>&1 &
done; done
wait
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/dsg13b.txt
for s in 135 360 1700; do for r in 1 2; do
  for b in $B; do
    echo "== $s ${b%%:*} round $r" | tee -a $OUT/dsg13b.txt
    timeout 40 ./${b%%:*} bench /tmp/${b##*:}$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/dsg13b.txt
  done
done; done
for s in 135 1700; do for b in $B; do
  echo "== profile $s ${b%%:*}" | tee -a $OUT/dsg13b.txt
  timeout 60 ./${b%%:*} bench /tmp/${b##*:}$s --profile --prompt-tokens 512 -q > $OUT/profile-$s-${b%%:*}.txt 2>&1
  grep -A60 "program 'decode'" $OUT/profile-$s-${b%%:*}.txt | grep -i "attention\|program 'decode'\|floor" | tee -a $OUT/dsg13b.txt
done; done
