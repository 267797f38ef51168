# Twenty-fourth session, third command: the f16-pair default (128x256 of 8 subgroups of 64x64
# when both operands are f16 pairs), two rounds beside PyTorch fp16, then sweeps of the
# cooperative tiles for an f16 weight times f32-word activations (hgemm f16 weight 4096³)
# and for both operands as pairs at 2048³.
#   bash benches/device/run_f16c24.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench_h
cp ../benches/torch_ref.py .
export KILN_BENCH_TARGET=h200
for r in 1 2; do
  KILN_BENCH_FILTER="gemm f16 2048|gemm f16 4096|gemm f16 weight" timeout 90 ./kiln_bench_h 2>&1 | grep -E "gemm" | sed "s/^/r$r  /"
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "gemm f16 2048|gemm f16 4096" 2>&1 | grep gemm | sed "s/^/torch r$r  /"
done
T="bn=256, bk=32, sm=64, sn=64, v4)|bn=128, bk=32, sm=64, sn=64, v4)|bn=256, bk=32, sm=64, sn=32, v4)|bn=128, bk=64, sm=64, sn=32, v4)|bn=128, bk=16, sm=64, sn=64, v4, db)|bn=256, bk=16, sm=64, sn=64, v4, db)"
KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="$T" KILN_BENCH_FILTER="hgemm f16 weight 4096|hgemm f16 2048" timeout 240 ./kiln_bench_h 2>&1 | grep -E "gemm" | sed "s/^/sweep  /"
