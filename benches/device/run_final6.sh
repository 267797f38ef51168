# Sixth-session merged main on the H200, in one command: Kiln (f32 and --precision f16) against
# llama.cpp Vulkan on the same random Q4_1 GGUFs (Q8_0 embeddings) of the SmolLM2 135M / 360M /
# 1.7B shapes, prefill 512 and decode 128; the session's starting binary (`kiln_base.xz`) beside
# it for decode; a 1.7B decode-step profile; then the issue-7 kernels beside PyTorch.
# Needs in .bench/: kiln.xz, kiln_bench.xz, kiln_base.xz, llama.tar.xz, make_gguf.py, whl/,
# smollm2_tok.json, torch_ref.py, common.sh, ggufs.sh, llm_vs_llama.sh (carry ".gl" and ".bench").
source .bench/common.sh
source llm_vs_llama.sh
echo "== profile 1.7B f32 (prefill 512, one decode step)" | tee -a $OUT/profile.txt
timeout 60 ./kiln bench /tmp/k1700f32 --profile --prompt-tokens 512 -q > $OUT/profile1700.txt 2>&1
t profile
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER=4096x4096x4096 timeout 90 ./kiln_bench 2>&1 | tee $OUT/kernels.txt
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="attention f32 1x12x512" timeout 40 ./kiln_bench 2>&1 | tee -a $OUT/kernels.txt
t kernels
timeout 60 python3 torch_ref.py --filter 4096x4096x4096 2>&1 | tee $OUT/torch.txt
timeout 30 python3 torch_ref.py --filter attention 2>&1 | tee -a $OUT/torch.txt
t torch
