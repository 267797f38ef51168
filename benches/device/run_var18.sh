# Eighteenth session, first command: three decode variants against main at the 1.7B shape
# (kiln_psg: branch prologue-sg2, the GEMV x prologue's mean square by two subgroupAdds;
# kiln_s2 / kiln_s8: decode attention with 2 / 8 key slices per compute unit instead of 4),
# three rounds in alternation; then main at all three sizes after a 1-token prompt (the
# context llama-bench's tg128 decodes at) and llama-bench at depth 0 and 512 (-d 0,512), so
# each figure has a peer reading at its own context.
#   bash benches/device/run_var18.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln kiln_psg kiln_s2 kiln_s8
llm_setup
for v in kiln kiln_psg kiln_s2 kiln_s8; do ./$v compile /tmp/s1700.gguf -o /tmp/$v $K > /dev/null 2>&1 & done
./kiln compile /tmp/s135.gguf -o /tmp/m135 $K > /dev/null 2>&1 &
./kiln compile /tmp/s360.gguf -o /tmp/m360 $K > /dev/null 2>&1 &
wait
for r in 1 2 3; do
  for v in kiln kiln_psg kiln_s2 kiln_s8; do
    echo "== 1700 $v round $r"; timeout 40 ./$v bench /tmp/$v $B 2>&1 | grep -E "decode"
  done
done
for s in 135 360 1700; do
  bdir=/tmp/m$s; [ $s = 1700 ] && bdir=/tmp/kiln
  for p in 1 512; do
    echo "== $s main prompt $p"; timeout 40 ./kiln bench $bdir --prompt-tokens $p --gen-tokens 128 --iters 3 -q 2>&1 | grep -E "decode"
  done
  LD_LIBRARY_PATH=/tmp/llama timeout 150 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 5 -p 512 -n 128 -d 0,512 2>&1 | grep "pp512\|tg128"
done
