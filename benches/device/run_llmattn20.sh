# Twentieth session: the LLM prefill with the cooperative-matrix attention variant (GGUF's
# default precision is f16). SmolLM2-135M and 1.7B shapes, compiled by the session-start CLI
# (kiln_old, 8d5a834) and this one (kiln) for the desktop and h200 targets; per bundle the
# prefill of 512 tokens timed (`kiln bench`, median of 3) and profiled (`--profile`: the
# attention kernels' lines).
#   bash benches/device/run_llmattn20.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln kiln_old
llm_setup
for s in 135 1700; do
  for t in desktop h200; do
    for b in kiln_old kiln; do ./$b compile /tmp/s$s.gguf -o /tmp/$b$s$t --context 1024 --target $t -q > /dev/null 2>&1 & done
  done
done
wait
for s in 135 1700; do
  for t in desktop h200; do
    for b in kiln_old kiln; do
      echo "== $s $t $b"
      timeout 60 ./$b bench /tmp/$b$s$t --prompt-tokens 512 --gen-tokens 16 --iters 3 -q 2>&1 | grep -E "prefill" | cut -c1-60
      timeout 60 ./$b bench /tmp/$b$s$t --profile --prompt-tokens 512 -q 2>&1 | sed -n '/prefill/,/by operation/p' | grep -E "attention|program"
    done
  done
done
