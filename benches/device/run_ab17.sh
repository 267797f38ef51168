# Seventeenth session, fourth command (three attempts): which part of the gate/up GEMV's
# subgroup changes costs, at the 1.7B shape. Builds of this session: `fa` (b4ae83a, no change
# to the GEMV); `a` (subgroup prologue; each part's value word read before its block's scale
# word); then `b` (`a` with the scale word first, as before) and `c` (`a` plus the output
# rounding by shuffles) in the first two attempts, `n` (`a` with the value word read by a
# function of its own, as in run_pre17.sh's build) in the third, shown here. Same model and
# options as run_fuse17.sh, three rounds in alternation, llama.cpp beside them, in-pass
# profiles of the gate/up GEMV.
#   bash .bench/run_ab17.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_fa kiln_a kiln_n
llm_setup
for v in fa a n; do ./kiln_$v compile /tmp/s1700.gguf -o /tmp/$v $K > /dev/null 2>&1 & done; wait
for r in 1 2 3; do
  for v in fa a n; do
    echo "== 1700 $v round $r"; timeout 40 ./kiln_$v bench /tmp/$v $B 2>&1 | grep -E "decode"
  done
done
LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s1700.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "tg128"
for v in fa a n; do
  timeout 60 ./kiln_$v bench /tmp/$v --profile --prompt-tokens 512 -q > $OUT/profile-$v.txt 2>&1
  echo "== $v"; grep -A22 "program 'decode'" $OUT/profile-$v.txt | grep -E "ffn_norm|program" | cut -c1-120
done
