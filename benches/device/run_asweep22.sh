# Twenty-second session: after the 2-D K and probability blocks (3c7a998), attn_ceiling on the
# new default and the whole attention space at issue 7's case, beside PyTorch SDPA.
#   bash benches/device/run_asweep22.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack attn_ceiling kiln_bench_new
cp ../benches/torch_ref.py .
timeout 120 ./attn_ceiling 2>&1 | tee -a $OUT/asweep.txt
export KILN_BENCH_TARGET=h200
KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="attention f32 1x12x512x64 opt-level 2" timeout 400 ./kiln_bench_new 2>&1 | grep -E "^attention" | tee -a $OUT/asweep.txt > /dev/null
PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "attention f32 1x12x512" 2>&1 | grep attention | sed "s/^/torch  /" | tee -a $OUT/asweep.txt
grep -E "^attention" $OUT/asweep.txt | awk '{for(i=1;i<=NF;i++) if ($i ~ /^[0-9]+\.[0-9]+$/) {print $i, $0; break}}' | sort -n | head -25
