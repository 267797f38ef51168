# Eighteenth session, last command: main's decode and prefill against llama.cpp at equal
# context depth, at all three SmolLM2 shapes: `kiln bench` after a 1-token and a 512-token
# prompt (two rounds each), then `llama-bench -r 5 -p 512 -n 128 -d 0,512` on the same file,
# and the memory report.
#   bash benches/device/run_final18.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln
llm_setup
for s in 135 360 1700; do ./kiln compile /tmp/s$s.gguf -o /tmp/m$s $K > /dev/null 2>&1 & done
wait
for s in 135 360 1700; do
  for r in 1 2; do
    for p in 1 512; do
      echo "== $s prompt $p round $r"
      timeout 40 ./kiln bench /tmp/m$s --prompt-tokens $p --gen-tokens 128 --iters 3 -q 2>&1 | grep -E "decode|peak"
    done
  done
  LD_LIBRARY_PATH=/tmp/llama timeout 150 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 5 -p 512 -n 128 -d 0,512 2>&1 | grep "pp512\|tg128"
done
