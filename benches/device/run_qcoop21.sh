# Twenty-first session, sixth command: the quantized GEMM's cooperative variant with unsigned
# staging indices and W loads without bounds checks where W's blocks and K-steps are whole (the
# change that took the f16 GEMM from 155 to 210 TFLOP/s), and the W-unit loads of the f32
# quantized GEMM (shared macro) in unsigned form.
#  1. The test binary's f16 prefill test (tiny Llama, --precision f16, h200 profile: the
#     quantized and attention variants run) and coop_gemm_variant on the H200.
#  2. kiln_bench (h200) qgemm cases, the build before (kiln_bench_base, 83af9f4) and after, two
#     rounds in alternation (every result checked against its reference).
#  3. SmolLM2-135M and 1.7B shapes (random Q4_1 GGUFs, --target h200, default precision f16):
#     `kiln bench` of a 512-token prompt, kiln_base (83af9f4) and kiln, two rounds.
#   bash benches/device/run_qcoop21.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench kiln_bench_base kiln_main kiln kiln_base
source ggufs.sh &
timeout 150 ./kiln_main --test-threads 1 --nocapture f16_prefill_attention coop_gemm_variant 2>&1 \
  | grep -E "coop gemm|f16 attention|test result|panicked" | head -20
export KILN_BENCH_TARGET=h200
for r in 1 2; do
  for b in kiln_bench_base kiln_bench; do
    KILN_BENCH_FILTER="qgemm" timeout 120 ./$b 2>&1 | grep -E "^qgemm" | sed "s/^/$b r$r  /"
  done
done
wait
K="--context 1024 --target h200 -q"
for s in 135 1700; do for b in kiln_base kiln; do ./$b compile /tmp/s$s.gguf -o /tmp/$b$s $K > /dev/null 2>&1 & done; done
wait
for s in 135 1700; do for r in 1 2; do for b in kiln_base kiln; do
  echo "== $s $b round $r: $(timeout 60 ./$b bench /tmp/$b$s --prompt-tokens 512 --gen-tokens 32 --iters 3 -q 2>&1 | grep -E "prefill|decode" | tr '\n' ' ')"
done; done; done
