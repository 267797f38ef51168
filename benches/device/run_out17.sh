# Seventeenth session, sixth command: the gate/up GEMV's subgroup form shares each output
# block's maximum and integer sum by shuffles when it rounds its outputs for the down
# projection (two barriers fewer; its prologue as in main). `kiln` (this tree) against
# `kiln_fa` (b4ae83a) at the 1.7B shape, options as run_fuse17.sh, four rounds in
# alternation, llama.cpp beside them.
#   bash .bench/run_out17.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln kiln_fa
llm_setup
./kiln_fa compile /tmp/s1700.gguf -o /tmp/fa $K > /dev/null 2>&1 &
./kiln compile /tmp/s1700.gguf -o /tmp/new $K > /dev/null 2>&1 &
wait
for r in 1 2 3 4; do
  for v in fa new; do
    b=./kiln; [ $v = fa ] && b=./kiln_fa
    echo "== 1700 $v round $r"; timeout 40 $b bench /tmp/$v $B 2>&1 | grep -E "decode"
  done
done
LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s1700.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128"
