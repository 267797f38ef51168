# Twenty-second session: MiniLM-L3 1x128 before (kiln) and after (kiln_new) the factored
# quotient, six rounds in alternation, and a profile of each bundle (the first command's 1x128
# readings were within their spread but the new build's were higher).
#   bash benches/device/run_mdiv22b.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln kiln_new
xz -d -k -f -T8 minilm_v4096.onnx.xz
for b in kiln kiln_new; do
  ./$b compile minilm_v4096.onnx -o /tmp/${b}1 --target h200 --dim batch_size=1 --dim sequence_length=128 -q 2>&1 | tail -1
done
for r in 1 2 3 4 5 6; do
  for b in kiln kiln_new; do
    echo "$b round $r $(timeout 60 ./$b bench /tmp/${b}1 --input input_ids=ids_1x128.npy --input attention_mask=mask_1x128.npy --iters 20 -q 2>&1 | grep program)" | tee -a $OUT/mdiv1.txt
  done
done
for b in kiln kiln_new; do
  echo "== profile $b 1x128" | tee -a $OUT/mdiv1.txt
  timeout 60 ./$b bench /tmp/${b}1 --input input_ids=ids_1x128.npy --input attention_mask=mask_1x128.npy --profile -q 2>&1 | grep -E "GPU|  [a-z_]+ [a-z_]+\(" | head -9 | cut -c1-120 | tee -a $OUT/mdiv1.txt
done
