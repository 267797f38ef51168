# Twentieth session, final command (the merged tree): the attention tests on the H200, then
# SmolLM2-135M and 1.7B shapes (random Q4_1 GGUFs, default precision f16) compiled by the
# session-start CLI (kiln_old, 8d5a834) and this one for the desktop and h200 targets: a
# 512-token prefill and decode (`kiln bench`, median of 3, two rounds in alternation) and the
# attention kernels' profile lines, also with KILN_KERNEL_VARIANTS=0 (every kernel as itself:
# the f32 attention kernels with the score at coordinates against the linear index).
#   bash benches/device/run_final20.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_main kiln kiln_old
timeout 200 ./kiln_main --test-threads 1 --nocapture attention 2>&1 \
  | grep -E "coop attention|f16 attention|test result|panicked" | head -20
llm_setup
for s in 135 1700; do
  for t in desktop h200; do
    for b in kiln_old kiln; do ./$b compile /tmp/s$s.gguf -o /tmp/$b$s$t --context 1024 --target $t -q > /dev/null 2>&1 & done
  done
done
wait
for s in 135 1700; do
  for t in desktop h200; do
    for r in 1 2; do
      for b in kiln_old kiln; do
        echo "== $s $t $b r$r: $(timeout 60 ./$b bench /tmp/$b$s$t --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep prefill | cut -c1-110)"
      done
    done
    for v in 1 0; do
      for b in kiln_old kiln; do
        echo "== $s $t $b variants=$v profile: $(KILN_KERNEL_VARIANTS=$v timeout 60 ./$b bench /tmp/$b$s$t --profile --prompt-tokens 512 -q 2>&1 | sed -n '/prefill/,/by operation/p' | grep -E " attention ")"
      done
    done
  done
done
