# Twenty-second session, last command: MiniLM-L3 at 32x128 and 1x128 before (kiln, 24d8f22) and
# after (kiln_new) affine::simplify factors a quotient by a multiple of a term (the attention's
# K, V and mask reads divide the batch-of-heads coordinate by the heads instead of the whole
# index by heads x rows x keys), three rounds in alternation, with a profile of each 32x128
# bundle, beside PyTorch eager.
#   bash benches/device/run_mdiv22.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln kiln_new
xz -d -k -f -T8 minilm_v4096.onnx.xz
cp ../benches/torch_minilm.py .
for b in kiln kiln_new; do
  for B in 32 1; do
    ./$b compile minilm_v4096.onnx -o /tmp/$b$B --target h200 --dim batch_size=$B --dim sequence_length=128 -q 2>&1 | tail -1
  done
done
for r in 1 2 3; do
  for b in kiln kiln_new; do
    for B in 32 1; do
      echo "== $b ${B}x128 round $r" | tee -a $OUT/mdiv.txt
      timeout 60 ./$b bench /tmp/$b$B --input input_ids=ids_${B}x128.npy --input attention_mask=mask_${B}x128.npy --iters 20 -q 2>&1 | grep "program" | tee -a $OUT/mdiv.txt
    done
  done
done
for b in kiln kiln_new; do
  echo "== profile $b 32x128" | tee -a $OUT/mdiv.txt
  timeout 60 ./$b bench /tmp/${b}32 --input input_ids=ids_32x128.npy --input attention_mask=mask_32x128.npy --profile -q 2>&1 | grep -E "GPU|attention|gemm " | head -8 | cut -c1-120 | tee -a $OUT/mdiv.txt
done
PYTHONUNBUFFERED=1 timeout 90 python3 torch_minilm.py 1x128 32x128 2>&1 | tee -a $OUT/mdiv.txt
