# Twenty-second session: where the f32 flash attention's time goes at issue 7's case
# (benches/attn_ceiling.rs: the compiled kernel and its edited variants), beside PyTorch SDPA.
#   bash benches/device/run_actl22.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack attn_ceiling
cp ../benches/torch_ref.py .
for r in 1 2; do timeout 120 ./attn_ceiling 2>&1 | sed "s/^/r$r  /" | tee -a $OUT/actl.txt; done
PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "attention f32 1x12x512" 2>&1 | grep attention | sed "s/^/torch  /" | tee -a $OUT/actl.txt
