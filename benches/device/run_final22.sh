# Twenty-second session, last command: the new flash-attention default for split keys (the
# 256-thread tile of 64-key blocks, values in halves, 4f605c4). The test binary's flash and
# coop attention tests on the H200 (the splits-16 subgroup variant needs 16 lanes: lavapipe
# has 8); attn_ceiling on the new default; kiln_bench before (kiln_bench, 1e9f39f) and after
# (kiln_bench_new) in alternation, three rounds; PyTorch SDPA beside.
#   bash benches/device/run_final22.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_main attn_ceiling kiln_bench kiln_bench_new
cp ../benches/torch_ref.py .
timeout 200 ./kiln_main --test-threads 1 flash_attention coop_attention_variant f16_prefill_attention 2>&1 | grep -E "^test |test result|panicked" | tee -a $OUT/final.txt
timeout 120 ./attn_ceiling 2>&1 | tee -a $OUT/final.txt
export KILN_BENCH_TARGET=h200
C="attention f32 1x12x512x64 opt-level 2|attention f16 1x12x512x64|attention f32 32x12x128x32 opt-level 3|attention f32 1x12x128x32 opt-level 3"
for r in 1 2 3; do
  for b in kiln_bench kiln_bench_new; do
    KILN_BENCH_FILTER="$C" timeout 90 ./$b 2>&1 | grep -E "^attention" | sed "s/^/$b r$r  /" | tee -a $OUT/final.txt
  done
done
PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "attention" 2>&1 | grep attention | sed "s/^/torch  /" | tee -a $OUT/final.txt
