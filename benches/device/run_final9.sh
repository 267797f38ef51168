# Ninth session, merged main on the H200 in one command: LLMs (f16 KV cache, the new default,
# and --kv-cache f32) against llama.cpp Vulkan and the session start's binary on random Q4_1
# GGUFs of the SmolLM2 135M / 360M / 1.7B shapes; MiniLM-L3 1x128 / 32x128 beside PyTorch
# eager and the session start; PP-OCRv4 det at 1x3x640x640 for this build and the session
# start's; with TUNE=1, `kiln tune` of PP-OCRv4 det with the default budget, timed, and the
# tuned bundle benched beside the untuned one.
# Needs in .bench/: kiln.xz, kiln_base.xz, llama.tar.xz, make_gguf.py, whl/, smollm2_tok.json,
# torch_minilm.py, minilm_v4096.onnx.xz, ids_*/mask_*.npy, ppocr.onnx, common.sh, ggufs.sh
# (carry ".gl" and ".bench").
source .bench/common.sh
xz -d -k -f kiln_base.xz && chmod +x kiln_base
xz -d -k -f -T8 minilm_v4096.onnx.xz
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
source ggufs.sh; t ggufs
for s in 135 360 1700; do
  ./kiln compile /tmp/s$s.gguf -o /tmp/k${s}f16 --context 1024 --target desktop -q > $OUT/compile-$s.txt 2>&1 &
  ./kiln compile /tmp/s$s.gguf -o /tmp/k${s}f32 --context 1024 --target desktop --kv-cache f32 -q > /dev/null 2>&1 &
  ./kiln_base compile /tmp/s$s.gguf -o /tmp/b$s --context 1024 --target desktop -q > /dev/null 2>&1 &
done
wait; t compiled
for s in 135 360 1700; do
  for b in k${s}f16 k${s}f32 b$s; do
    echo "== $s $b" | tee -a $OUT/llm.txt
    bin=./kiln; [ $b = b$s ] && bin=./kiln_base
    timeout 60 $bin bench /tmp/$b --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/llm.txt
  done
  LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128" | tee -a $OUT/llm.txt
  t size $s
done
for B in 1 32; do
  for b in kiln kiln_base; do
    ./$b compile minilm_v4096.onnx -o /tmp/m$B$b --target h200 --dim batch_size=$B --dim sequence_length=128 -q > /dev/null 2>&1
    echo "== minilm ${B}x128 $b" | tee -a $OUT/models.txt
    timeout 60 ./$b bench /tmp/m$B$b --input input_ids=ids_${B}x128.npy --input attention_mask=mask_${B}x128.npy --iters 20 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/models.txt
  done
done
PYTHONUNBUFFERED=1 timeout 60 python3 torch_minilm.py 1x128 32x128 2>&1 | tee -a $OUT/models.txt
t minilm
D0=p2o.DynamicDimension; PD="--dim $D0.0=1 --dim $D0.1=640 --dim $D0.2=640"
for b in kiln kiln_base; do
  ./$b compile ppocr.onnx -o /tmp/p$b --target h200 $PD -q > /dev/null 2>&1
  for r in 1 2; do
    echo "== ppocr $b round $r" | tee -a $OUT/models.txt
    timeout 60 ./$b bench /tmp/p$b --iters 50 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/models.txt
  done
done
t ppocr
if [ "${TUNE:-0}" = 1 ]; then
  s0=$(date +%s%N)
  timeout 150 ./kiln tune ppocr.onnx -o /tmp/pp.ron --target h200 $PD 2>&1 | tail -25 | tee $OUT/tune.txt
  echo "kiln tune ppocr wall: $(( ($(date +%s%N) - s0) / 1000000 )) ms" | tee -a $OUT/tune.txt
  ./kiln compile ppocr.onnx -o /tmp/ptuned --target h200 $PD --tuning /tmp/pp.ron -q > /dev/null 2>&1
  for b in ptuned pkiln ptuned pkiln; do
    echo "== ppocr $b" | tee -a $OUT/tune.txt
    timeout 60 ./kiln bench /tmp/$b --iters 50 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/tune.txt
  done
  t tune
fi
