# Eighth-session attn measurements (docs/performance.md): this branch's kiln_bench with its
# defaults on the fused attention cases, PyTorch SDPA fp32 in the same command, then a sweep of
# the register-tiled members (tm=4) and the per-row kernel's two best at 1x12x512x64 and
# 32x12x128x32. Run as `bash .dev-attn/run2.sh` (device tool, carry .gl and .dev-attn) from a
# folder .dev-attn holding kiln_bench.xz (this build) and benches/torch_ref.py.
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .dev-attn
xz -d -k -f kiln_bench.xz; chmod +x kiln_bench
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*"; }
t defaults
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="attention f32 1x12x512x64 opt-level 2|attention f32 1x12x128x32 opt-level 3|attention f32 32x12x128x32 opt-level 3|attention f32 32x12x128x64 opt-level 3" \
  timeout 40 ./kiln_bench 2>&1 | tee $OUT/defaults.txt
t torch
PYTHONUNBUFFERED=1 timeout 30 python3 torch_ref.py --filter "attention" 2>&1 | tee $OUT/torch.txt
t sweep
KILN_BENCH_TARGET=h200 KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="attention f32 1x12x512x64 opt-level 2|attention f32 32x12x128x32 opt-level 3" \
  KILN_BENCH_SWEEP_FILTER="tm=4|rows=64, bk=32, splits=4)|rows=64, bk=16, splits=2)" \
  timeout 150 ./kiln_bench 2>&1 | grep -v "^device\|^case\|^target" | tee $OUT/sweep.txt
t done
