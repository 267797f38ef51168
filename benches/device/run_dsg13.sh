# Thirteenth session: the decode attention's subgroup form (kiln_sg: 8 lanes per key, 16 lane
# groups, 2 keys per group per step; kiln_sg4: 4 keys per step) against main (kiln_pen), random
# Q4_1 GGUFs of the 135M / 360M / 1.7B shapes: decode at a 512-token prompt, two rounds in
# alternation; the 1.7B decode at an 896-token prompt; the 1.7B decode profiles.
#   bash .bench/run_dsg13.sh   (carry .gl and .bench)
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .bench
B="kiln_pen:p kiln_sg:s kiln_sg4:f"
for b in $B; do xz -d -k -f ${b%%:*}.xz; chmod +x ${b%%:*}; done
source ggufs.sh
for s in 135 360 1700; do for b in $B; do
  ./${b%%:*} compile /tmp/s$s.gguf -o /tmp/${b##*:}$s --context 1024 --target desktop -q > /dev/null 2>&1 &
done; done
wait
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/dsg13.txt
for s in 135 360 1700; do for r in 1 2; do
  for b in $B; do
    echo "== $s ${b%%:*} round $r" | tee -a $OUT/dsg13.txt
    timeout 40 ./${b%%:*} bench /tmp/${b##*:}$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/dsg13.txt
  done
done; done
for b in $B; do
  echo "== 1700 ${b%%:*} prompt 896" | tee -a $OUT/dsg13.txt
  timeout 40 ./${b%%:*} bench /tmp/${b##*:}1700 --prompt-tokens 896 --gen-tokens 64 --iters 2 -q 2>&1 | grep -v memory | tee -a $OUT/dsg13.txt
done
for b in $B; do
  echo "== profile ${b%%:*}" | tee -a $OUT/dsg13.txt
  timeout 60 ./${b%%:*} bench /tmp/${b##*:}1700 --profile --prompt-tokens 512 -q > $OUT/profile-${b%%:*}.txt 2>&1
  grep -A60 "program 'decode'" $OUT/profile-${b%%:*}.txt | grep -i "attention\|program 'decode'\|floor\|total" | tee -a $OUT/dsg13.txt
done
