# Twenty-first session, first command: what wgpu's runtime checks cost, and where the f16
# cooperative-matrix GEMM's time goes.
#  1. benches/coop_ceiling.rs: on the default f16 GEMM's grid (4096³, 128x256 blocks of 64x32
#     subgroup tiles), multiplies only / fragment loads from workgroup memory + multiplies /
#     the same with two barriers per 32-deep step; f16 and vec4<f16> stages; checks on and off.
#  2. kiln_bench (h200 profile) with wgpu's runtime checks (default) and without them
#     (KILN_SHADER_CHECKS=0: no index clamps, loop bounds or division guards), two rounds in
#     alternation, beside torch_ref.py for the same cases. The switch existed only in the
#     measured build (a runtime option through wgpu's create_shader_module_trusted); it was
#     dropped after this command, since its gains were mixed (docs/performance.md).
#   bash benches/device/run_checks21.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench coop_ceiling
cp ../benches/torch_ref.py .
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 ./coop_ceiling 2>&1 | grep -v "^\s*$"
export KILN_BENCH_TARGET=h200
CASES="gemm f32 4096x4096|gemm f16 4096|gemm f16 2048|gemm f32 4096x384x1536|attention f32 1x12x512x64 opt-level 2|attention f16 1x12x512x64|attention f32 32x12x128x32 opt-level 3|gemv f32|conv3x3 f32 8x128|softmax f32 4096|layernorm f32 4096|q4_1 1x2048 . 8192|demo block batch 64"
for r in 1 2; do
  for c in 1 0; do
    KILN_SHADER_CHECKS=$c KILN_BENCH_FILTER="$CASES" timeout 150 ./kiln_bench 2>&1 \
      | grep -E "^(gemm|gemv|qgemv|attention|softmax|layernorm|conv|demo)" | sed "s/^/checks=$c r$r  /"
  done
done
PYTHONUNBUFFERED=1 timeout 90 python3 torch_ref.py --filter "gemm f32 4096x4096|gemm f16|gemm f32 4096x384x1536|attention|gemv|conv3x3 f32 8x128|softmax|layernorm|copy" 2>&1 | grep -vi warn | sed "s/^/torch  /"
