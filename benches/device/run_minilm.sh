source .bench/common.sh
PYTHONUNBUFFERED=1 timeout 120 python3 torch_minilm.py 1x128 32x128 2>&1 | tee $OUT/torch_minilm.txt
for B in 1 32; do for L in 1 2 3; do
  ./kiln compile minilm_v4096.onnx -o /tmp/m$B-$L --opt-level $L --target ${KILN_TARGET:-h200} --dim batch_size=$B --dim sequence_length=128 -q 2>&1 | grep -v integrity | tee -a $OUT/minilm.txt
  echo "opt-level $L ${B}x128 (--dim)" | tee -a $OUT/minilm.txt
  timeout 60 ./kiln bench /tmp/m$B-$L --input input_ids=ids_${B}x128.npy --input attention_mask=mask_${B}x128.npy --iters 20 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/minilm.txt
done; done
./kiln compile minilm_v4096.onnx -o /tmp/msym --target ${KILN_TARGET:-h200} -q 2>&1 | grep -v integrity | tee -a $OUT/minilm.txt
for B in 1 32; do
  echo "opt-level 2 ${B}x128 (symbolic bundle)" | tee -a $OUT/minilm.txt
  timeout 60 ./kiln bench /tmp/msym --input input_ids=ids_${B}x128.npy --input attention_mask=mask_${B}x128.npy --iters 20 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/minilm.txt
done
PYTHONUNBUFFERED=1 timeout 120 python3 torch_minilm.py 1x128 32x128 2>&1 | tee -a $OUT/torch_minilm.txt
KILN_BENCH_FILTER="gemm f32 128x" timeout 100 ./kiln_bench 2>&1 | tee $OUT/bench_gemm.txt
KILN_BENCH_FILTER="gemm f32 4096x384" timeout 60 ./kiln_bench 2>&1 | tee -a $OUT/bench_gemm.txt
KILN_BENCH_FILTER="attention" timeout 100 ./kiln_bench 2>&1 | tee $OUT/bench_attn.txt
