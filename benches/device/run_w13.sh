# Thirteenth session, last: the decode attention with 512 threads per workgroup (kiln_w512: 32
# keys per step) against 256 (kiln_new), random Q4_1 GGUFs of the 135M / 360M / 1.7B shapes,
# decode at a 512-token prompt, two rounds in alternation.
#   bash .bench/run_w13.sh   (carry .gl and .bench)
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .bench
B="kiln_new:n kiln_w512:w"
for b in $B; do xz -d -k -f ${b%%:*}.xz; chmod +x ${b%%:*}; done
source ggufs.sh
for s in 135 360 1700; do for b in $B; do
  ./${b%%:*} compile /tmp/s$s.gguf -o /tmp/${b##*:}$s --context 1024 --target desktop -q > /dev/null 2>&1 &
done; done
wait
for s in 135 360 1700; do for r in 1 2; do for b in $B; do
  echo "== $s ${b%%:*} round $r" | tee -a $OUT/w13.txt
  timeout 40 ./${b%%:*} bench /tmp/${b##*:}$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/w13.txt
done; done; done
