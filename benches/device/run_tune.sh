# Tuning time and effect (issue 7): `kiln tune` with its default budget (120 s) for
# paraphrase-MiniLM-L3-v2 (1 x 128; the copy with a 4096-row embedding table) and PP-OCRv4 det
# (1 x 3 x 640 x 640), timed; then the untuned and tuned bundles of each side by side in one run:
# wall time per run (`kiln bench`) and time per dispatch (`kiln bench --profile`). `kiln tune`
# itself prints each kernel's tuned time next to its default's. Run like run_minilm.sh, with
# ocr.onnx (ch_PP-OCRv4_det_infer.onnx) in .bench/; results go to $OUT/tune.txt.
source .bench/common.sh
D0=p2o.DynamicDimension
for M in minilm ocr; do
  if [ $M = minilm ]; then
    model=minilm_v4096.onnx; dims="--dim batch_size=1 --dim sequence_length=128"
    run_with="--input input_ids=ids_1x128.npy --input attention_mask=mask_1x128.npy"
  else
    model=ocr.onnx; dims="--dim $D0.0=1 --dim $D0.1=640 --dim $D0.2=640"; run_with=""  # static bundle: bench draws inputs
  fi
  echo "== $M: kiln tune (default budget), target h200" | tee -a $OUT/tune.txt
  start=$(date +%s%N)
  timeout 200 ./kiln tune $model -o /tmp/$M.ron --target h200 $dims 2>&1 | tail -40 | tee -a $OUT/tune.txt
  echo "kiln tune wall time: $(( ($(date +%s%N) - start) / 1000000 )) ms" | tee -a $OUT/tune.txt
  ./kiln compile $model -o /tmp/$M-default --target h200 $dims -q 2>&1 | grep -v integrity | tee -a $OUT/tune.txt
  ./kiln compile $model -o /tmp/$M-tuned --target h200 $dims --tuning /tmp/$M.ron -q 2>&1 | grep -v integrity | tee -a $OUT/tune.txt
  for round in 1 2; do for b in default tuned; do
    echo "-- $M $b (round $round)" | tee -a $OUT/tune.txt
    timeout 60 ./kiln bench /tmp/$M-$b $run_with --iters 50 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/tune.txt
  done; done
  for b in default tuned; do
    echo "-- $M $b: profile" | tee -a $OUT/tune.txt
    timeout 60 ./kiln bench /tmp/$M-$b $run_with --profile -q 2>&1 | head -30 | tee -a $OUT/tune.txt
  done
done
