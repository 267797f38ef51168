# Twenty-fourth session: an f16 model end to end. An fp16 MLP (ONNX, x f16 [4096, 1024],
# y = relu(x·W1 + b1)·W2, W1 [1024, 4096], W2 [4096, 1024], f16 weights; written by the
# benches/device/make_mlp16.py into .bench/mlp16.onnx with x16.npy) compiled with --precision f16 for the
# h200 profile, benchmarked, tuned with `kiln tune` (default budget), benchmarked again beside
# the untuned bundle, and PyTorch's fp16 eager MLP of the same shapes beside it. The GPU tests
# of the f16 paths run first.
#   bash benches/device/run_mlp24.sh   (carry .gl and .bench: kiln_h.xz, kiln_main.xz,
#   mlp16.onnx, x16.npy)
source benches/device/prelude.sh
unpack kiln_h kiln_main
timeout 120 ./kiln_main --test-threads 1 --nocapture f16_operands_stay an_f16_mlp an_f16_product 2>&1 \
  | grep -E "f16 mlp|f16 operands|test result|panicked" | head -20
K="--precision f16 --target h200 -q"
./kiln_h compile mlp16.onnx -o /tmp/u $K | head -1
./kiln_h inspect /tmp/u --kernels | grep -E "^run|input:|weights:"
T0=$(date +%s)
timeout 300 ./kiln_h tune mlp16.onnx -o /tmp/db.ron --precision f16 --target h200 2>&1 | grep -vE "^\s*$" | tail -12
echo "== kiln tune took $(( $(date +%s) - T0 )) s"
./kiln_h compile mlp16.onnx -o /tmp/t $K --tuning /tmp/db.ron | head -1
./kiln_h inspect /tmp/t --kernels | grep -E "^run"
for r in 1 2 3; do
  for b in u t; do
    echo "== $b round $r: $(timeout 60 ./kiln_h bench /tmp/$b --input x=x16.npy --iters 50 -q 2>&1 | grep program)"
  done
done
timeout 60 ./kiln_h bench /tmp/t --input x=x16.npy --profile -q 2>&1 | head -12
PYTHONUNBUFFERED=1 timeout 60 python3 ../benches/torch_mlp16.py
PYTHONUNBUFFERED=1 timeout 60 python3 ../benches/torch_mlp16.py
