# qgemv helper, short second command: decode only, final defaults (kiln) vs main (kiln_base).
#   bash .dev-qgemv/run_qgemv3.sh
# Needs ggufs.sh beside it. .dev-qgemv/common.sh is benches/device/common.sh with `cd .dev-qgemv` and kiln_base.xz unpacked too.
source .dev-qgemv/common.sh
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
source ggufs.sh  # benches/device/ggufs.sh, copied beside this script (writes the 360M file too)
for s in 135 1700; do
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q 2>&1 | grep -v integrity | tee -a $OUT/llm.txt &
  ./kiln_base compile /tmp/s$s.gguf -o /tmp/b$s --context 1024 --target desktop -q 2>&1 | grep -v integrity | tee -a $OUT/llm.txt &
done
wait; t compiled
for s in 135 1700; do
  for b in kiln kiln_base; do
    d=/tmp/k$s; [ $b = kiln_base ] && d=/tmp/b$s
    echo "-- $s $b" | tee -a $OUT/llm.txt
    timeout 25 ./$b bench $d --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/llm.txt
  done
done
t done
