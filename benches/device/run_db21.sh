# Twenty-first session, second command: the barrier's share of the f16 cooperative-matrix
# GEMM, and double-buffered stages with constant offsets (two K-steps per loop iteration).
#  1. benches/coop_ceiling.rs: multiplies / fragment loads / barriers per step of 16, 32, 64
#     on 128x256 (16 subgroups) and 128x128 (8 subgroups) blocks.
#  2. kiln_bench (h200 profile) at 4096³ and 2048³ f16: the default, then every
#     double-buffered member of space::coop_gemm (KILN_BENCH_SWEEP_FILTER=db), each checked
#     against the f64 product before it is timed; PyTorch fp16 beside it.
#   bash benches/device/run_db21.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench coop_ceiling
cp ../benches/torch_ref.py .
timeout 200 ./coop_ceiling 2>&1 | grep -v "^\s*$"
export KILN_BENCH_TARGET=h200
KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="db" KILN_BENCH_FILTER="gemm f16 4096|gemm f16 2048" timeout 300 ./kiln_bench 2>&1 | grep -E "^gemm"
PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "gemm f16 2048|gemm f16 4096" 2>&1 | grep gemm | sed "s/^/torch  /"
