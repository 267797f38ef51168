# Eighteenth session, fifth command: cooperative-matrix GEMMs that load fragments straight
# from f16 storage buffers (benches/coop_direct.rs: no workgroup memory, no barrier) at 4096³
# and 2048³, beside Kiln's f16 GEMM (f32 operands staged as f16 in workgroup memory) and
# PyTorch's fp16 matmul in the same command.
#   bash benches/device/run_coop18.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack coop_direct kiln_bench
cp ../benches/torch_ref.py .
export KILN_BENCH_TARGET=h200
for r in 1 2; do
  timeout 120 ./coop_direct 2>&1 | sed "s/^/direct r$r  /"
  KILN_BENCH_FILTER="gemm f16 4096|gemm f16 2048" timeout 60 ./kiln_bench 2>&1 | grep "^gemm" | sed "s/^/kiln r$r  /"
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "gemm f16 4096|gemm f16 2048" 2>&1 | grep gemm | sed "s/^/torch r$r  /"
done
KILN_COOP_SIZE=2048 timeout 60 ./coop_direct 2>&1 | sed "s/^/direct 2048  /"
