# Twenty-second session, closing command for issue 7: every target side by side in one command
# on the final build (kiln_bench_new and kiln at 4f605c4 + docs).
#  1. kiln_bench (h200 profile), two rounds, beside torch_ref.py (fp32 with TF32 off; fp16 for
#     the f16 GEMM and attention cases).
#  2. MiniLM-L3 (word embeddings cut to 4,096 rows: benches/device/minilm9/truncate.py) at 1x128
#     and 32x128, untuned and (32x128) tuned with the default budget, `kiln tune` timed; PyTorch
#     eager (benches/torch_minilm.py) beside.
#  3. PP-OCRv4 det at 1x3x640x640: `kiln tune` (default budget) timed, tuned vs untuned bundle.
#   PART=kernels|models bash benches/device/run_close22.sh   (carry .gl and .bench; .bench holds kiln.xz,
#   kiln_bench_new.xz, minilm_v4096.onnx.xz, ids_/mask_{1,32}x128.npy, ppocr.onnx)
source benches/device/prelude.sh
unpack kiln kiln_bench_new
xz -d -k -f -T8 minilm_v4096.onnx.xz
cp ../benches/torch_ref.py ../benches/torch_minilm.py .
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/close.txt
T0=$(date +%s); t() { echo "== $1 at $(( $(date +%s) - T0 )) s" | tee -a $OUT/close.txt; }
if [ "${PART:-all}" != models ]; then
export KILN_BENCH_TARGET=h200
CASES="gemm f32 1024x1024|gemm f32 2048x2048|gemm f32 4096x4096|gemm f16 2048|gemm f16 4096|gemv f32|softmax f32 4096|layernorm f32 4096|copy (neg) f32 16777216|conv3x3 f32 8x128|dwconv|attention f32 1x12x512x64 opt-level 2|attention f16 1x12x512x64|attention f32 32x12x128x32 opt-level 3"
for r in 1 2; do
  KILN_BENCH_FILTER="$CASES" timeout 200 ./kiln_bench_new 2>&1 | grep -E "^[a-z]" | grep -v "^device" | sed "s/^/kiln r$r  /" | tee -a $OUT/close.txt
done
PYTHONUNBUFFERED=1 timeout 120 python3 torch_ref.py --filter "$CASES|attention f32 1x12x512x64|attention f32 32x12x128x32" 2>&1 | grep -vi warn | sed "s/^/torch  /" | tee -a $OUT/close.txt
t kernels
fi
[ "${PART:-all}" = kernels ] && exit 0
MD="--dim batch_size=32 --dim sequence_length=128"
s0=$(date +%s%N)
timeout 200 ./kiln tune minilm_v4096.onnx -o /tmp/ml.ron --target h200 $MD 2>&1 | tail -6 | tee -a $OUT/close.txt
echo "kiln tune minilm 32x128 wall: $(( ($(date +%s%N) - s0) / 1000000 )) ms" | tee -a $OUT/close.txt
./kiln compile minilm_v4096.onnx -o /tmp/mt --target h200 $MD --tuning /tmp/ml.ron -q 2>&1 | tail -2
for B in 32 1; do
  ./kiln compile minilm_v4096.onnx -o /tmp/m$B --target h200 --dim batch_size=$B --dim sequence_length=128 -q 2>&1 | tail -2
done
for r in 1 2; do
  for m in m1 m32 mt; do
    B=32; [ $m = m1 ] && B=1
    echo "== minilm $m round $r" | tee -a $OUT/close.txt
    timeout 60 ./kiln bench /tmp/$m --input input_ids=ids_${B}x128.npy --input attention_mask=mask_${B}x128.npy --iters 20 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/close.txt
  done
done
PYTHONUNBUFFERED=1 timeout 90 python3 torch_minilm.py 1x128 32x128 2>&1 | tee -a $OUT/close.txt
t minilm
D0=p2o.DynamicDimension; PD="--dim $D0.0=1 --dim $D0.1=640 --dim $D0.2=640"
s0=$(date +%s%N)
timeout 200 ./kiln tune ppocr.onnx -o /tmp/pp.ron --target h200 $PD 2>&1 | tail -6 | tee -a $OUT/close.txt
echo "kiln tune ppocr wall: $(( ($(date +%s%N) - s0) / 1000000 )) ms" | tee -a $OUT/close.txt
./kiln compile ppocr.onnx -o /tmp/ptuned --target h200 $PD --tuning /tmp/pp.ron -q 2>&1 | tail -2
./kiln compile ppocr.onnx -o /tmp/pkiln --target h200 $PD -q 2>&1 | tail -2
for r in 1 2; do
  for p in ptuned pkiln; do
    echo "== ppocr $p round $r" | tee -a $OUT/close.txt
    timeout 60 ./kiln bench /tmp/$p --iters 50 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/close.txt
  done
done
t ppocr
