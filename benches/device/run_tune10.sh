# Tenth session: `kiln tune` of a GGUF language model on the H200 in one command: random Q4_1
# GGUFs (Q8_0 embeddings) of the SmolLM2 1.7B and 135M shapes tuned with the default budget
# (1.7B) and 60 s (135M) at `--target desktop`, timed; then prefill and decode (`kiln bench`,
# f16 KV cache) of the tuned bundle, the untuned one and the session start's binary, two
# rounds in alternation, and greedy 24-token ids of tuned and untuned on the 135M file.
#   bash .bench/run_tune10.sh     (carry .gl and .bench)
# Needs in .bench/: common.sh, ggufs.sh, make_gguf.py, smollm2_tok.json, whl/, kiln.xz, kiln_base.xz.
source .bench/common.sh
xz -d -k -f kiln_base.xz && chmod +x kiln_base
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
source ggufs.sh; t ggufs
for s in 1700 135; do
  b=""; [ $s = 135 ] && b="--budget 60"
  s0=$(date +%s%N)
  timeout 150 ./kiln tune /tmp/s$s.gguf -o /tmp/t$s.ron --target desktop $b 2>&1 | tail -30 > $OUT/tune-$s.txt
  echo "kiln tune $s wall: $(( ($(date +%s%N) - s0) / 1000000 )) ms" | tee -a $OUT/tune-$s.txt
  t tuned $s
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q > /dev/null 2>&1 &
  ./kiln compile /tmp/s$s.gguf -o /tmp/tk$s --context 1024 --target desktop --tuning /tmp/t$s.ron -q > $OUT/compile-tuned-$s.txt 2>&1 &
  ./kiln_base compile /tmp/s$s.gguf -o /tmp/b$s --context 1024 --target desktop -q > /dev/null 2>&1 &
  wait
done
t compiled
for s in 1700 135; do
  for r in 1 2; do
    for b in tk k b; do
      bin=./kiln; [ $b = b ] && bin=./kiln_base
      echo "== $s $b round $r" | tee -a $OUT/llm.txt
      timeout 40 $bin bench /tmp/$b$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/llm.txt
    done
  done
done
for b in tk k; do
  timeout 20 ./kiln generate /tmp/${b}135 --prompt "The quick brown fox" --max-tokens 24 --ids 2>/dev/null | tee -a $OUT/llm.txt
done
t done
cat $OUT/tune-1700.txt $OUT/tune-135.txt
