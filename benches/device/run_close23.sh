# Twenty-third session, closing command for issue 7: this session's build (kiln_new,
# kiln_bench_new: GEMM epilogues over coordinates, the recalibrated GEMM cost model, vec4 layer
# norms) against the session-start build c459b58 (kiln_start, kiln_bench_start), with PyTorch in
# the same command.
#  1. kiln_bench (h200 profile) of both builds over the GEMM, convolution, quantized-GEMM and
#     row-reduction cases; torch_ref.py (fp32 with TF32 off, fp16 for the f16 GEMM) beside.
#  2. MiniLM-L3 (word embeddings cut to 4,096 rows) at 1x128 and 32x128, both builds, two rounds
#     in alternation, the new 32x128 bundle profiled; torch_minilm.py beside.
#  3. PP-OCRv4 det at 1x3x640x640, both builds, two rounds.
#   bash benches/device/run_close23.sh   (carry .gl and .bench: kiln_{start,new}.xz,
#   kiln_bench_{start,new}.xz, minilm_v4096.onnx.xz, ids_/mask_{1,32}x128.npy, ppocr.onnx)
source benches/device/prelude.sh
unpack kiln_start kiln_new kiln_bench_start kiln_bench_new
xz -d -k -f -T8 minilm_v4096.onnx.xz
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/close.txt
T0=$(date +%s); t() { echo "== $1 at $(( $(date +%s) - T0 )) s" | tee -a $OUT/close.txt; }
for B in 1 32; do
  for v in start new; do
    ./kiln_$v compile minilm_v4096.onnx -o /tmp/${v}$B --target h200 --dim batch_size=$B --dim sequence_length=128 -q | head -1
  done
done
for r in 1 2; do
  for b in start32 new32 start1 new1; do
    B=32; case $b in *1) B=1;; esac
    echo "== minilm $b round $r" | tee -a $OUT/close.txt
    timeout 60 ./kiln_new bench /tmp/$b --input input_ids=ids_${B}x128.npy --input attention_mask=mask_${B}x128.npy --iters 20 -q 2>&1 | grep "program" | tee -a $OUT/close.txt
  done
done
timeout 60 ./kiln_new bench /tmp/new32 --input input_ids=ids_32x128.npy --input attention_mask=mask_32x128.npy --profile -q > $OUT/profile_new32.txt 2>&1
timeout 60 ./kiln_new bench /tmp/start32 --input input_ids=ids_32x128.npy --input attention_mask=mask_32x128.npy --profile -q > $OUT/profile_start32.txt 2>&1
grep -h "GPU" $OUT/profile_*32.txt | tee -a $OUT/close.txt
PYTHONUNBUFFERED=1 timeout 90 python3 ../benches/torch_minilm.py 1x128 32x128 2>&1 | tee -a $OUT/close.txt
t minilm
D0=p2o.DynamicDimension; PD="--dim $D0.0=1 --dim $D0.1=640 --dim $D0.2=640"
for v in start new; do ./kiln_$v compile ppocr.onnx -o /tmp/p$v --target h200 $PD -q | head -1; done
for r in 1 2 3; do
  for v in start new; do
    echo "== ppocr $v round $r" | tee -a $OUT/close.txt
    timeout 60 ./kiln_new bench /tmp/p$v --iters 50 -q 2>&1 | grep "program" | tee -a $OUT/close.txt
  done
done
t ppocr
export KILN_BENCH_TARGET=h200
CASES="gemm f32|gemm f16 4096|conv3x3|dwconv|qgemm q4_1 512|layernorm f32 4096|softmax f32 4096|copy (neg)|gemv f32"
for b in kiln_bench_start kiln_bench_new; do
  KILN_BENCH_FILTER="$CASES" timeout 150 ./$b 2>&1 | grep -E "^[a-z]" | grep -v "^device" | sed "s/^/$b  /" | tee -a $OUT/close.txt
done
t kernels
PYTHONUNBUFFERED=1 timeout 120 python3 ../benches/torch_ref.py --filter "gemm f32 4096x4096|gemm f32 4096x1|gemm f32 4096x384|gemm f16 4096|conv3x3 f32 8x128|layernorm|softmax|copy|gemv f32" 2>&1 | grep -vi warn | sed "s/^/torch  /" | tee -a $OUT/close.txt
t torch
