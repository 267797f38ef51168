# Eighth session, merged main on the H200 in one command: Kiln (f32, and --precision f16 for
# prefill) against llama.cpp Vulkan on random Q4_1 GGUFs of the SmolLM2 135M / 360M / 1.7B
# shapes with the session start's binary beside it (llm_vs_llama.sh); issue 7's kernels
# (kiln_bench, `h200` profile) beside PyTorch; MiniLM-L3 1x128 / 32x128 beside PyTorch eager;
# PP-OCRv4 det at 1x3x640x640 for this build and the session start's.
# Needs in .bench/: kiln.xz, kiln_bench.xz, kiln_base.xz, llama.tar.xz, make_gguf.py, whl/,
# smollm2_tok.json, torch_ref.py, torch_minilm.py, minilm_v4096.onnx, ids_*/mask_*.npy,
# ppocr.onnx, common.sh, ggufs.sh, llm_vs_llama.sh (carry ".gl" and ".bench").
source .bench/common.sh
source llm_vs_llama.sh
K="gemm f32 1024x1024x1024|gemm f32 2048x2048x2048|gemm f32 4096x4096x4096|gemm f16|attention f32 1x12x512|attention f32 32x12x128x32|copy|add f32|gemv f32"
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="$K" timeout 90 ./kiln_bench 2>&1 | tee $OUT/kernels.txt
t kernels
PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "$K" 2>&1 | tee $OUT/torch.txt
t torch
for B in 1 32; do
  for b in kiln kiln_base; do
    ./$b compile minilm_v4096.onnx -o /tmp/m$B$b --target h200 --dim batch_size=$B --dim sequence_length=128 -q > /dev/null 2>&1
    echo "== minilm ${B}x128 $b" | tee -a $OUT/minilm.txt
    timeout 60 ./$b bench /tmp/m$B$b --input input_ids=ids_${B}x128.npy --input attention_mask=mask_${B}x128.npy --iters 20 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/minilm.txt
  done
done
PYTHONUNBUFFERED=1 timeout 60 python3 torch_minilm.py 1x128 32x128 2>&1 | tee -a $OUT/minilm.txt
t minilm
D0=p2o.DynamicDimension
for b in kiln kiln_base; do
  ./$b compile ppocr.onnx -o /tmp/p$b --target h200 --dim $D0.0=1 --dim $D0.1=640 --dim $D0.2=640 -q > /dev/null 2>&1
  echo "== ppocr $b" | tee -a $OUT/ppocr.txt
  timeout 60 ./$b bench /tmp/p$b --iters 50 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/ppocr.txt
done
t ppocr
