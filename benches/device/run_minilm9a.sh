# Ninth session (minilm), first command: where MiniLM-L3's 32x128 time goes on main's build.
# `kiln bench --profile` of main's bundle at 32x128, PyTorch eager beside it (torch_minilm.py and
# a torch.profiler table of the same model), and `kiln tune` at 32x128 (each GEMM and the
# attention of the real model timed over its schedule space: default vs best).
# Needs in .dev-minilm/: kiln_main.xz, minilm_v4096.onnx.xz, ids_/mask_*x128.npy, torch_prof.py
# (benches/device/minilm9/: truncate.py makes the model and inputs)
# (carry ".gl" and ".dev-minilm").
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cp benches/torch_minilm.py .dev-minilm/
cd .dev-minilm
for x in *.xz; do xz -d -f -T4 $x; done; chmod +x kiln_main
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
T0=$(date +%s); t() { echo "== $1 at $(( $(date +%s) - T0 )) s"; }
./kiln_main compile minilm_v4096.onnx -o /tmp/m32 --target h200 --dim batch_size=32 --dim sequence_length=128 -q 2>&1 | grep -v integrity
./kiln_main inspect --kernels /tmp/m32 > $OUT/kernels32.txt 2>&1
timeout 60 ./kiln_main bench /tmp/m32 --input input_ids=ids_32x128.npy --input attention_mask=mask_32x128.npy --iters 20 -q 2>&1 | tee $OUT/bench.txt
timeout 60 ./kiln_main bench /tmp/m32 --input input_ids=ids_32x128.npy --input attention_mask=mask_32x128.npy --profile -q > $OUT/profile32.txt 2>&1
t profile
PYTHONUNBUFFERED=1 timeout 90 python3 torch_minilm.py 1x128 32x128 2>&1 | tee -a $OUT/bench.txt
PYTHONUNBUFFERED=1 timeout 90 python3 torch_prof.py > $OUT/torch_prof.txt 2>&1
t torch
timeout 100 ./kiln_main tune minilm_v4096.onnx -o $OUT/tune32.ron --target h200 --dim batch_size=32 --dim sequence_length=128 --budget 75 -q 2>&1 | tee $OUT/tune.txt
t tune
head -c 6000 $OUT/profile32.txt
