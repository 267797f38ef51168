# Sixteenth session, third command: each layer's K/V append as the tail of its O projection's
# GEMV (workgroups after the GEMV's own; no append dispatch left in a decode step), plus the
# rounded-x rules of the first two commands. `kiln` (this tree) against `kiln_main` (1e7069f,
# the fifteenth session's main), default `--activations auto`, on the random Q4_1 GGUFs (Q8_0
# embeddings) of the SmolLM2 135M / 360M / 1.7B shapes, `--context 1024 --target desktop`,
# `kiln bench --prompt-tokens 512 --gen-tokens 128 --iters 3`, three rounds in alternation;
# llama.cpp Vulkan beside them; decode profiles.   bash .bench/run_tail16.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln kiln_main
llm_setup
for s in 135 360 1700; do
  ./kiln_main compile /tmp/s$s.gguf -o /tmp/main$s $K > /dev/null 2>&1 &
  ./kiln compile /tmp/s$s.gguf -o /tmp/new$s $K > /dev/null 2>&1 &
  wait
done
for r in 1 2 3; do
  for s in 1700 135 360; do
    for v in main new; do
      b=./kiln; [ $v = main ] && b=./kiln_main
      echo "== $s $v round $r"; timeout 40 $b bench /tmp/$v$s $B 2>&1 | grep -E "decode|peak"
    done
  done
done
for s in 1700 135 360; do
  echo "== $s llama.cpp"
  LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128"
done
timeout 60 ./kiln bench /tmp/new1700 --profile --prompt-tokens 512 -q > $OUT/profile-new.txt 2>&1
grep -A24 "program 'decode'" $OUT/profile-new.txt | head -25 | cut -c1-160
