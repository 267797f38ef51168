# Seventh session, after the merge: MiniLM-L3 (minilm_v4096.onnx, issue 7's model target) at
# opt-level 2 for 1x128 and 32x128 beside PyTorch eager fp32 (torch_minilm.py) in one command,
# and decode-step profiles (`kiln bench --profile`) of the 135M and 1.7B random GGUFs.
# Needs in .bench/: kiln.xz, kiln_bench.xz, minilm_v4096.onnx, ids_*/mask_*.npy, torch_minilm.py,
# make_gguf.py, whl/, smollm2_tok.json, ggufs.sh, common.sh (carry ".gl" and ".bench").
source .bench/common.sh
PYTHONUNBUFFERED=1 timeout 120 python3 torch_minilm.py 1x128 32x128 2>&1 | tee $OUT/torch_minilm.txt
for B in 1 32; do
  ./kiln compile minilm_v4096.onnx -o /tmp/m$B --target h200 --dim batch_size=$B --dim sequence_length=128 -q 2>&1 | grep -v integrity | tee -a $OUT/minilm.txt
  echo "opt-level 2 ${B}x128 (--dim)" | tee -a $OUT/minilm.txt
  timeout 60 ./kiln bench /tmp/m$B --input input_ids=ids_${B}x128.npy --input attention_mask=mask_${B}x128.npy --iters 20 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/minilm.txt
done
PYTHONUNBUFFERED=1 timeout 120 python3 torch_minilm.py 1x128 32x128 2>&1 | tee -a $OUT/torch_minilm.txt
source ggufs.sh
for s in 135 1700; do
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q > /dev/null 2>&1
  echo "== profile $s" | tee -a $OUT/profile.txt
  timeout 60 ./kiln bench /tmp/k$s --profile --prompt-tokens 512 -q 2>&1 | tee -a $OUT/profile.txt | tail -60
done
