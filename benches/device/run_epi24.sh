# Twenty-fourth session: why the f16 MLP's first product (4096x4096x1024 with its bias and
# ReLU as epilogue) took 325 us in the model against 156 us alone without an epilogue. The
# bundle compiled with tuning records forcing each cooperative tile (.bench/mlpdb/*.ron) on
# both products, each profiled twice.
#   bash benches/device/run_epi24.sh   (carry .gl and .bench: kiln_h.xz, mlp16.onnx, x16.npy, mlpdb/)
source benches/device/prelude.sh
unpack kiln_h
K="--precision f16 --target h200 -q"
for db in mlpdb/*.ron; do
  n=$(basename $db .ron)
  ./kiln_h compile mlp16.onnx -o /tmp/$n $K --tuning $db > /dev/null
  for r in 1 2; do
    echo "== $n round $r"
    timeout 60 ./kiln_h bench /tmp/$n --input x=x16.npy --profile -q 2>&1 | grep -E "GPU|MatMul"
  done
done
