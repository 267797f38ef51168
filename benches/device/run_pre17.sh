# Seventeenth session, second command: a decode GEMV that rounds its own x (the gate/up GEMV)
# reads its first loop step's weight words before the prologue, so their loads are in flight
# while x is normalized and rounded; its subgroup form sums the mean square by subgroupAdd (two
# barriers, not one per halving) and shares each block's maximum and integer sum by shuffles
# (no barriers). `kiln` (this tree) against `kiln_fa` (b4ae83a: the first command's build, the
# attention combining its own slices); `nopre` is this tree's bundle compiled with the
# experiment-only KILN_NO_PRELOAD=1 (subgroup prologue, no early weight reads). Same models and
# options as run_fuse17.sh, three rounds in alternation, llama.cpp beside them once, a decode
# profile of this tree's 1.7B bundle.
#   bash .bench/run_pre17.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln kiln_fa
llm_setup
for s in 135 360 1700; do
  ./kiln_fa compile /tmp/s$s.gguf -o /tmp/fa$s $K > /dev/null 2>&1 &
  ./kiln compile /tmp/s$s.gguf -o /tmp/new$s $K > /dev/null 2>&1 &
  KILN_NO_PRELOAD=1 ./kiln compile /tmp/s$s.gguf -o /tmp/nopre$s $K > /dev/null 2>&1 &
  wait
done
for r in 1 2 3; do
  for s in 1700 135 360; do
    for v in fa new nopre; do
      b=./kiln; [ $v = fa ] && b=./kiln_fa
      echo "== $s $v round $r"; timeout 40 $b bench /tmp/$v$s $B 2>&1 | grep -E "decode"
    done
  done
  if [ $r = 1 ]; then
    for s in 1700 135 360; do
      echo "== $s llama.cpp"
      LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "tg128"
    done
  fi
done
timeout 60 ./kiln bench /tmp/new1700 --profile --prompt-tokens 512 -q > $OUT/profile-new.txt 2>&1
grep -A22 "program 'decode'" $OUT/profile-new.txt | grep -v "^  by kernel" | head -22 | cut -c1-150
