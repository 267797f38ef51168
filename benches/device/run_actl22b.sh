# Twenty-second session: attn_ceiling on the final default (after benches/attn_ceiling.rs kept
# only the first P·V block and checked NaN outputs), two rounds.
#   bash benches/device/run_actl22b.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack attn_ceiling
for r in 1 2; do timeout 120 ./attn_ceiling 2>&1 | sed "s/^/r$r  /" | tee -a $OUT/actl2.txt; done
