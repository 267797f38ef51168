# Twenty-second session: where MiniLM-L3's 32x128 time goes now (issue 7's open model target).
# `kiln bench --profile` of the untuned h200 bundle, beside PyTorch eager's profile
# (benches/device/minilm9/torch_prof.py) and torch_minilm.py.
#   bash benches/device/run_mprof22.sh   (carry .gl and .bench; .bench holds kiln.xz,
#   minilm_v4096.onnx.xz, ids_/mask_32x128.npy)
source benches/device/prelude.sh
unpack kiln
xz -d -k -f -T8 minilm_v4096.onnx.xz
cp ../benches/torch_minilm.py ../benches/device/minilm9/torch_prof.py .
MD="--dim batch_size=32 --dim sequence_length=128"
./kiln compile minilm_v4096.onnx -o /tmp/m32 --target h200 $MD -q 2>&1 | tail -2
timeout 60 ./kiln bench /tmp/m32 --input input_ids=ids_32x128.npy --input attention_mask=mask_32x128.npy --iters 20 -q 2>&1 | tee $OUT/mprof.txt
timeout 60 ./kiln bench /tmp/m32 --input input_ids=ids_32x128.npy --input attention_mask=mask_32x128.npy --profile -q > $OUT/profile32.txt 2>&1
PYTHONUNBUFFERED=1 timeout 90 python3 torch_minilm.py 32x128 2>&1 | tee -a $OUT/mprof.txt
PYTHONUNBUFFERED=1 timeout 90 python3 torch_prof.py > $OUT/torch_prof.txt 2>&1
head -c 5000 $OUT/profile32.txt
head -c 4000 $OUT/torch_prof.txt
