# Decode attention (sixth session): a branch's `kiln` against main's previous build (`kiln_main.xz`)
# in .bench/, on random Q4_1 GGUFs (Q8_0 embeddings) of the SmolLM2 135M and 1.7B shapes: the 1.7B
# decode profile (one step after 512 tokens) of both, then decode tok/s of both at both sizes.
source .bench/common.sh
xz -d -k -f kiln_main.xz && chmod +x kiln_main
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/dattn.txt; }
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/gg
python3 make_gguf.py make smollm2_tok.json /tmp/s135.gguf --qtype Q4_1 --embd-qtype Q8_0 2>&1 | tail -1 &
python3 make_gguf.py make smollm2_tok.json /tmp/s1700.gguf --dim 2048 --layers 24 --heads 32 --kv-heads 32 --ffn 8192 --rope-base 130000 --qtype Q4_1 --embd-qtype Q8_0 2>&1 | tail -1 &
wait; t ggufs
for s in 135 1700; do
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q 2>&1 | grep -v integrity | tee -a $OUT/dattn.txt &
  ./kiln_main compile /tmp/s$s.gguf -o /tmp/m$s --context 1024 --target desktop -q 2>&1 | grep -v integrity | tee -a $OUT/dattn.txt &
done
wait; t compiled
for b in k m; do
  echo "== profile 1700 ($b: k = wip-dattn, m = main), one decode step after 512 tokens" | tee -a $OUT/dattn.txt
  timeout 60 ./$( [ $b = k ] && echo kiln || echo kiln_main ) bench /tmp/${b}1700 --prompt-tokens 512 --profile -q > $OUT/profile_$b.txt 2>&1
  grep -i -A40 "decode" $OUT/profile_$b.txt | grep -i "attention\|dispatches\|gpu\|wall\|step" | head -20 | tee -a $OUT/dattn.txt
  t profile $b
done
for s in 135 1700; do
  for b in k m; do
    echo "== decode $s ($b)" | tee -a $OUT/dattn.txt
    timeout 60 ./$( [ $b = k ] && echo kiln || echo kiln_main ) bench /tmp/${b}$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/dattn.txt
  done
  t bench $s
done
for f in $(grep -l "decode attention kernel" /tmp/k1700/kernels/*); do cp $f $OUT/; done; ls /tmp/k1700/kernels | head -40 > $OUT/kernels.txt
