# qgemv helper, short second command: decode only, final defaults (kiln) vs main (kiln_base).
#   bash .dev-qgemv/run_qgemv3.sh
# .dev-qgemv/common.sh is benches/device/common.sh with `cd .dev-qgemv` and kiln_base.xz unpacked too.
source .dev-qgemv/common.sh
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/gg
(python3 make_gguf.py make smollm2_tok.json /tmp/s135.gguf --qtype Q4_1 --embd-qtype Q8_0 > /tmp/g135.log 2>&1) &
(python3 make_gguf.py make smollm2_tok.json /tmp/s1700.gguf --dim 2048 --layers 24 --heads 32 --kv-heads 32 --ffn 8192 --rope-base 130000 --qtype Q4_1 --embd-qtype Q8_0 > /tmp/g1700.log 2>&1) &
wait
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
