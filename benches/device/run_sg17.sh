# Seventeenth session, third command: the subgroup form of a decode GEMV that rounds its own x
# (the gate/up GEMV) sums the prologue's mean square by subgroupAdd (two barriers, not one per
# halving of 1024 threads) and shares each block's maximum and integer sum by shuffles, in the
# prologue (x) and in the epilogue that rounds its outputs for the down projection (no
# barriers). `kiln` (this tree) against `kiln_fa` (b4ae83a: the attention combining its own
# slices), same models and options as run_fuse17.sh, three rounds in alternation, llama.cpp
# beside them, a decode profile of this tree's 1.7B bundle.
#   bash .bench/run_sg17.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln kiln_fa
llm_setup
for s in 135 360 1700; do
  ./kiln_fa compile /tmp/s$s.gguf -o /tmp/fa$s $K > /dev/null 2>&1 &
  ./kiln compile /tmp/s$s.gguf -o /tmp/new$s $K > /dev/null 2>&1 &
  wait
done
for r in 1 2 3; do
  for s in 1700 135 360; do
    for v in fa new; do
      b=./kiln; [ $v = fa ] && b=./kiln_fa
      echo "== $s $v round $r"; timeout 40 $b bench /tmp/$v$s $B 2>&1 | grep -E "decode|peak"
    done
  done
  if [ $r = 2 ]; then
    for s in 1700 135 360; do
      echo "== $s llama.cpp"
      LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128"
    done
  fi
done
timeout 60 ./kiln bench /tmp/new1700 --profile --prompt-tokens 512 -q > $OUT/profile-new.txt 2>&1
grep -A22 "program 'decode'" $OUT/profile-new.txt | grep -v "^  by kernel" | head -22 | cut -c1-150
grep "floor of 'decode'" $OUT/profile-new.txt
