# Twenty-fourth session: the f16 MLP of run_mlp24.sh with the final default (64x32 subgroup
# tiles for the product with the bias and ReLU epilogue), profiled, timed three rounds, with
# PyTorch's fp16 eager MLP beside it.
#   bash benches/device/run_mlp24b.sh   (carry .gl and .bench: kiln_h.xz, mlp16.onnx, x16.npy)
source benches/device/prelude.sh
unpack kiln_h
./kiln_h compile mlp16.onnx -o /tmp/u --precision f16 --target h200 -q | head -1
timeout 60 ./kiln_h bench /tmp/u --input x=x16.npy --profile -q 2>&1 | grep -E "GPU|MatMul"
for r in 1 2 3; do
  echo "== round $r: $(timeout 60 ./kiln_h bench /tmp/u --input x=x16.npy --iters 50 -q 2>&1 | grep program)"
  PYTHONUNBUFFERED=1 timeout 60 python3 ../benches/torch_mlp16.py
done
# Where the epilogue's time goes (timing probes of WGSL-edited copies, never shipped; the
# no-barrier copy may race): the product with the epilogue without the workgroup barriers of
# its scratch store, and with the scratch store but no epilogue.
F=k000_coop_gemm.wgsl
python3 ../benches/device/bundle_variant.py /tmp/u /tmp/nobar $F \
  '(coopStoreT\(acc_\d+_\d+, &c_sh\[scratch\], 16u\);)\n    workgroupBarrier\(\);' '\1' \
  $F '(\n        \}\n    \})\n    workgroupBarrier\(\);' '\1'
python3 ../benches/device/bundle_variant.py /tmp/u /tmp/noepi $F \
  'kiln_epilogue\(c_sh\[scratch \+ e\], gm, gn, batch\)' 'c_sh[scratch + e]'
for v in nobar noepi; do
  for r in 1 2; do
    echo "== $v round $r"
    timeout 60 ./kiln_h bench /tmp/$v --input x=x16.npy --profile -q 2>&1 | grep -E "MatMul"
  done
done
