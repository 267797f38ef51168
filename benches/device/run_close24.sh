# Twenty-fourth session, closing command for issue 7: this session's build (kiln_bench_h: f16
# inputs and weights kept as f16 pairs, the cooperative GEMM's 8-value loads and the f16-pair
# default tile) against the session-start build (kiln_bench_new, commit 6e486e6), PyTorch in
# the same command.
#  1. The GPU tests of the f16-pair operands and of the cooperative variant on the H200.
#  2. kiln_bench (h200) of both builds over issue 7's kernel targets, the new build twice.
#  3. torch_ref.py (fp32 with TF32 off, fp16 for the f16 GEMMs) over the same cases.
#   bash benches/device/run_close24.sh   (carry .gl and .bench: kiln_bench_{new,h}.xz, kiln_main.xz)
source benches/device/prelude.sh
unpack kiln_bench_new kiln_bench_h kiln_main
cp ../benches/torch_ref.py .
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 120 ./kiln_main --test-threads 1 --nocapture coop_gemm_variant f16_operands_stay 2>&1 \
  | grep -E "coop gemm|f16 operands|test result|panicked" | head -30
export KILN_BENCH_TARGET=h200
CASES="gemm f32 4096x4096|gemm f16|conv3x3|gemv f32|softmax f32 4096|layernorm f32 4096|copy (neg)"
KILN_BENCH_FILTER="$CASES" timeout 150 ./kiln_bench_new 2>&1 | grep -E "^[a-z]" | grep -v "^device" | sed "s/^/start  /"
for r in 1 2; do
  KILN_BENCH_FILTER="$CASES" timeout 150 ./kiln_bench_h 2>&1 | grep -E "^[a-z]" | grep -v "^device" | sed "s/^/new r$r  /"
done
PYTHONUNBUFFERED=1 timeout 120 python3 torch_ref.py --filter "gemm f32 4096x4096|gemm f16|conv3x3 f32 8x128|layernorm|softmax|copy|gemv f32" 2>&1 | grep -vi warn | sed "s/^/torch  /"
