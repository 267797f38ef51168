# Twentieth session, last command: the cooperative-matrix flash attention as merged (the
# variant unsplit where 64-row tiles reach every other compute unit; variants rendered with
# their base kernel's parameter fields, so the per-row kernel gets one too).
#  1. The test binary's coop_attention and f16_prefill_attention tests on the H200 (the
#     variant must run and match the f64 / interpreter references).
#  2. kiln_bench's attention cases (f32 and f16, each checked against an f64 reference) beside
#     PyTorch SDPA fp32 and fp16, two rounds.
#  3. SmolLM2-135M and 1.7B shapes (random Q4_1 GGUFs; default precision f16, so the prefill
#     attention now ships the variant): `kiln bench` after a 512-token prompt with the
#     session-start CLI (kiln_old, 8d5a834) and this one (kiln), two rounds in alternation.
#   bash benches/device/run_cattn20b.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench kiln_main kiln kiln_old
cp ../benches/torch_ref.py .
timeout 150 ./kiln_main --test-threads 1 --nocapture coop_attention f16_prefill_attention 2>&1 \
  | grep -E "coop attention|f16 attention|test result|panicked" | head -20
export KILN_BENCH_TARGET=h200
CASES="attention f16|attention f32 1x12x512x64 opt-level 2|attention f32 1x12x128x32 opt-level 3|attention f32 32x12x128x32 opt-level 3"
for r in 1 2; do
  KILN_BENCH_FILTER="$CASES" timeout 90 ./kiln_bench 2>&1 | grep "^attention" | sed "s/^/kiln r$r  /"
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "attention" 2>&1 | grep attention | sed "s/^/torch r$r  /"
done
llm_setup
for s in 135 1700; do
  for b in kiln_old kiln; do ./$b compile /tmp/s$s.gguf -o /tmp/$b$s $K > /dev/null 2>&1 & done
done
wait
for s in 135 1700; do
  for r in 1 2; do
    for b in kiln_old kiln; do
      echo "== $s $b round $r"
      timeout 60 ./$b bench /tmp/$b$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -E "prefill|decode"
    done
  done
done
