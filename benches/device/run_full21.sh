# Twenty-first session, fourth command: the f16 GEMM's operand path. benches/coop_ceiling.rs
# (full 4096³ GEMMs shaped as Kiln's default cooperative kernel, without bounds checks, with
# f32 operands, f16 operands read 4 per load and f16 read 8 per load; then the barrier
# decomposition again), Kiln's own kernel (kiln_bench, h200) and PyTorch fp16 beside them.
#   bash benches/device/run_full21.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench coop_ceiling
cp ../benches/torch_ref.py .
timeout 150 ./coop_ceiling 2>&1 | grep -v "^\s*$" | tee $OUT/ceiling.txt
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="gemm f16 4096" timeout 60 ./kiln_bench 2>&1 | grep -E "^gemm" | tee -a $OUT/ceiling.txt
PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "gemm f16 4096" 2>&1 | grep gemm | sed "s/^/torch  /" | tee -a $OUT/ceiling.txt
