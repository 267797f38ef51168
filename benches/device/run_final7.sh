# Seventh-session merged main on the H200, in one command: Kiln (f32, and --precision f16 for
# prefill) against llama.cpp Vulkan on the same random Q4_1 GGUFs (Q8_0 embeddings) of the
# SmolLM2 135M / 360M / 1.7B shapes, prefill 512 and decode 128; the sixth session's merged
# binary (`kiln_base.xz`, this session's start) beside it; a 135M decode-step profile; then
# issue 7's GEMM and attention kernels beside PyTorch (and the GEMMs again with the h200
# profile at 48 KiB of workgroup memory: h200_48k.ron).
# Needs in .bench/: kiln.xz, kiln_bench.xz, kiln_base.xz, llama.tar.xz, make_gguf.py, whl/,
# smollm2_tok.json, torch_ref.py, common.sh, ggufs.sh, llm_vs_llama.sh, h200_48k.ron (carry ".gl" and ".bench").
source .bench/common.sh
source llm_vs_llama.sh
timeout 60 ./kiln bench /tmp/k135f32 --profile --prompt-tokens 512 -q > $OUT/profile135.txt 2>&1
t profile
K="gemm f32 1024x1024x1024|gemm f32 2048x2048x2048|gemm f32 4096x4096x4096|gemm f16|attention f32 1x12x512"
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="$K" timeout 90 ./kiln_bench 2>&1 | tee $OUT/kernels.txt
t kernels
# The same GEMMs with the h200 profile's workgroup memory at NVIDIA's 48 KiB (h200_48k.ron).
KILN_BENCH_TARGET=h200_48k.ron KILN_BENCH_FILTER="gemm" timeout 60 ./kiln_bench 2>&1 | tee $OUT/kernels48k.txt
t kernels48k
PYTHONUNBUFFERED=1 timeout 60 python3 torch_ref.py --filter "$K" 2>&1 | tee $OUT/torch.txt
t torch
