# PyTorch side of run_final7.sh (its first run carried an older torch_ref.py without `|` filters).
cd .bench
K="gemm f32 1024x1024x1024|gemm f32 2048x2048x2048|gemm f32 4096x4096x4096|gemm f16|attention f32 1x12x512"
PYTHONUNBUFFERED=1 timeout 90 python3 torch_ref.py --filter "$K" 2>&1
