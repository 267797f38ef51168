# Twentieth session, last command: attention score expressions at (batch, row, key)
# coordinates (no division by the key count per score) with the cooperative-matrix variant.
#  1. The test binary's attention tests on the H200 (the coop variant must run where asked).
#  2. kiln_bench's attention cases beside PyTorch SDPA fp32 and fp16, two rounds.
#  3. SmolLM2-135M and 1.7B shapes (random Q4_1 GGUFs, default precision f16), compiled by the
#     session-start CLI (kiln_old, 8d5a834) and this one for the desktop and h200 targets:
#     prefill of 512 tokens and decode (`kiln bench`, median of 3, two rounds), and the
#     attention kernels' lines of a `--profile`.
#   bash benches/device/run_llmattn20b.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench kiln_main kiln kiln_old
cp ../benches/torch_ref.py .
timeout 200 ./kiln_main --test-threads 1 --nocapture attention 2>&1 \
  | grep -E "coop attention|f16 attention|test result|panicked" | head -20
export KILN_BENCH_TARGET=h200
CASES="attention f16|attention f32 1x12x512x64 opt-level 2|attention f32 1x12x128x32 opt-level 3|attention f32 32x12x128x32 opt-level 3"
for r in 1 2; do
  KILN_BENCH_FILTER="$CASES" timeout 90 ./kiln_bench 2>&1 | grep "^attention" | sed "s/^/kiln r$r  /"
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "attention" 2>&1 | grep attention | sed "s/^/torch r$r  /"
done
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
    for b in kiln_old kiln; do
      echo "== $s $t $b profile: $(timeout 60 ./$b bench /tmp/$b$s$t --profile --prompt-tokens 512 -q 2>&1 | sed -n '/prefill/,/by operation/p' | grep -E " attention ")"
    done
  done
done
