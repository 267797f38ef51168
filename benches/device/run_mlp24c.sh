# Twenty-fourth session, last command: the f16 MLP of run_mlp24.sh with the final build (64x32
# tiles for the product with an epilogue; f16 rounding skipped after a ReLU, max, min,
# negation, absolute value or selection of f16 values; branch-free f16 rounding), profiled and
# timed three rounds beside PyTorch's fp16 eager MLP; the GPU tests of the f16 paths first.
#   bash benches/device/run_mlp24c.sh   (carry .gl and .bench: kiln_h.xz, kiln_main.xz, mlp16.onnx, x16.npy)
source benches/device/prelude.sh
unpack kiln_h kiln_main
timeout 120 ./kiln_main --test-threads 1 --nocapture f16_operands_stay an_f16_mlp coop_gemm_variant 2>&1 \
  | grep -E "f16 mlp|coop gemm|test result|panicked" | head -20
./kiln_h compile mlp16.onnx -o /tmp/u --precision f16 --target h200 -q | head -1
for r in 1 2; do
  timeout 60 ./kiln_h bench /tmp/u --input x=x16.npy --profile -q 2>&1 | grep -E "GPU|MatMul"
done
for r in 1 2 3; do
  echo "== round $r: $(timeout 60 ./kiln_h bench /tmp/u --input x=x16.npy --iters 50 -q 2>&1 | grep program)"
  PYTHONUNBUFFERED=1 timeout 60 python3 ../benches/torch_mlp16.py
done
