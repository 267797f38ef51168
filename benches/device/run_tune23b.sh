# Twenty-third session: `kiln tune`'s wall time with the default budget once the check in the
# whole model takes the last tenth of it (kiln_new), MiniLM-L3 at 32x128 and PP-OCRv4 det at
# 1x3x640x640 (issue 7: at most 2 minutes each).
#   bash benches/device/run_tune23b.sh   (carry .gl and .bench: kiln_new.xz, minilm_v4096.onnx.xz,
#   ppocr.onnx)
source benches/device/prelude.sh
unpack kiln_new
xz -d -k -f -T8 minilm_v4096.onnx.xz
MD="--dim batch_size=32 --dim sequence_length=128"
D0=p2o.DynamicDimension; PD="--dim $D0.0=1 --dim $D0.1=640 --dim $D0.2=640"
s0=$(date +%s%N)
timeout 200 ./kiln_new tune minilm_v4096.onnx -o /tmp/ml.ron --target h200 $MD 2>&1 | grep -v "^gemm\|^attention" | tee -a $OUT/tune.txt
echo "kiln tune minilm 32x128 wall: $(( ($(date +%s%N) - s0) / 1000000 )) ms" | tee -a $OUT/tune.txt
s0=$(date +%s%N)
timeout 200 ./kiln_new tune ppocr.onnx -o /tmp/pp.ron --target h200 $PD 2>&1 | grep -v "^conv" | tee -a $OUT/tune.txt
echo "kiln tune ppocr wall: $(( ($(date +%s%N) - s0) / 1000000 )) ms" | tee -a $OUT/tune.txt
