# Twenty-fourth session, first command: where the f16 GEMM at 4096³ stands and whether packed
# f16 operands lift it. benches/coop_ceiling.rs's full 4096³ GEMMs (f32 operands as Kiln's
# kernel; f16 read 4 or 8 per load; f16 packed in u32, read 8 per 16-byte load), then Kiln's
# own kernel with its default and the cooperative space's 128x256 / 256x128 members, PyTorch
# fp16 beside them.
#   bash benches/device/run_f16a24.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench_new coop_ceiling
cp ../benches/torch_ref.py .
for r in 1 2; do
  COOP_CEILING_FULL_ONLY=1 timeout 60 ./coop_ceiling 2>&1 | grep -E "full" | sed "s/^/r$r  /"
  KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="gemm f16 4096" timeout 60 ./kiln_bench_new 2>&1 | grep -E "^gemm" | sed "s/^/r$r  /"
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "gemm f16 4096" 2>&1 | grep gemm | sed "s/^/torch r$r  /"
done
KILN_BENCH_TARGET=h200 KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="bn=256, bk=16, sm=64, sn=32, v4, db)|bn=256, bk=16, sm=64, sn=64, v4, db)|bn=128, bk=16, sm=64, sn=64, v4, db)|bn=256, bk=32, sm=64, sn=64, v4)|bn=256, bk=32, sm=64, sn=32, v4)|bn=256, bk=48, sm=64, sn=32, v4)" \
  KILN_BENCH_FILTER="gemm f16 4096" timeout 200 ./kiln_bench_new 2>&1 | grep -E "^gemm" | sed "s/^/sweep  /"
