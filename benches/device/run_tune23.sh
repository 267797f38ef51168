# Twenty-third session: `kiln tune` with the default budget on this session's build (kiln_new)
# for MiniLM-L3 at 32x128 and PP-OCRv4 det at 1x3x640x640, timed; then the tuned and untuned
# bundles in alternation (issue 7: tuning takes at most 2 minutes, and the tuned bundle is not
# slower than the untuned one), and each tuned bundle's schedules beside the defaults. Run twice:
# before and after `kiln tune` checked its records in the whole model (src/tune_check.rs).
#   bash benches/device/run_tune23.sh   (carry .gl and .bench: kiln_new.xz, minilm_v4096.onnx.xz,
#   ids_/mask_32x128.npy, ppocr.onnx)
source benches/device/prelude.sh
unpack kiln_new
xz -d -k -f -T8 minilm_v4096.onnx.xz
MD="--dim batch_size=32 --dim sequence_length=128"
IN="--input input_ids=ids_32x128.npy --input attention_mask=mask_32x128.npy"
D0=p2o.DynamicDimension; PD="--dim $D0.0=1 --dim $D0.1=640 --dim $D0.2=640"
s0=$(date +%s%N)
timeout 200 ./kiln_new tune minilm_v4096.onnx -o /tmp/ml.ron --target h200 $MD 2>&1 | tail -14 | tee -a $OUT/tune.txt
echo "kiln tune minilm 32x128 wall: $(( ($(date +%s%N) - s0) / 1000000 )) ms" | tee -a $OUT/tune.txt
s0=$(date +%s%N)
timeout 200 ./kiln_new tune ppocr.onnx -o /tmp/pp.ron --target h200 $PD 2>&1 | tail -50 | tee -a $OUT/tune.txt
echo "kiln tune ppocr wall: $(( ($(date +%s%N) - s0) / 1000000 )) ms" | tee -a $OUT/tune.txt
./kiln_new compile minilm_v4096.onnx -o /tmp/mt --target h200 $MD --tuning /tmp/ml.ron -q | head -1
./kiln_new compile minilm_v4096.onnx -o /tmp/mu --target h200 $MD -q | head -1
./kiln_new compile ppocr.onnx -o /tmp/pt --target h200 $PD --tuning /tmp/pp.ron -q | head -1
./kiln_new compile ppocr.onnx -o /tmp/pu --target h200 $PD -q | head -1
cp /tmp/ml.ron /tmp/pp.ron $OUT/
for r in 1 2 3; do
  for b in mu mt; do
    echo "== minilm $b round $r" | tee -a $OUT/tune.txt
    timeout 60 ./kiln_new bench /tmp/$b $IN --iters 20 -q 2>&1 | grep "program" | tee -a $OUT/tune.txt
  done
  for b in pu pt; do
    echo "== ppocr $b round $r" | tee -a $OUT/tune.txt
    timeout 60 ./kiln_new bench /tmp/$b --iters 50 -q 2>&1 | grep "program" | tee -a $OUT/tune.txt
  done
done
for b in mu mt; do
  timeout 60 ./kiln_new bench /tmp/$b $IN --profile -q > /tmp/prof.txt 2>&1
  echo "== profile $b" | tee -a $OUT/tune.txt
  grep "GPU" /tmp/prof.txt | cut -c1-100 | tee -a $OUT/tune.txt
  grep "us each.*layer.1/" /tmp/prof.txt | sed -E 's|^ *[0-9.]+% +[0-9.]+ ms +1x +([0-9.]+) us each +/model/model.0/auto_model/encoder/layer.1/([^+]*).*|  \1 us \2|' | tee -a $OUT/tune.txt
done
for b in mt pt; do python3 -c "
import json,sys
m=json.load(open('/tmp/$b/manifest.json'))
for k in m['kernels']:
    if k.get('schedule_source')=='tuning': print('$b', k['name'], k['schedule'])
" | tee -a $OUT/tune.txt; done
