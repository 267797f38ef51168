# Tenth-session attn measurements (docs/performance.md), one command on the H200: main's
# kiln_bench (kiln_bench_main, built at the branch's start commit) and this branch's
# kiln_bench on the attention cases with their defaults, PyTorch SDPA fp32 (torch_ref.py) in
# between and again at the end, then KILN_BENCH_SWEEP=1 over the register-tiled members of
# 32/64-row tiles (with and without pbuf / sg, 1-8 key slices) at 1x12x512x64 and the 64-row
# members at 32x12x128x32. Every Kiln result is checked against an f64 reference (64 rows).
# Run as `bash .dev-attn/run_attn10.sh` (device tool, carry .gl and .dev-attn) from a folder
# .dev-attn holding kiln_bench.xz (this branch), kiln_bench_main.xz and benches/torch_ref.py.
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .dev-attn
for b in kiln_bench kiln_bench_main; do xz -d -k -f $b.xz; chmod +x $b; done
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*"; }
CASES="attention f32 1x12x512x64 opt-level 2|attention f32 1x12x128x32 opt-level 3|attention f32 32x12x128x32 opt-level 3"
export KILN_BENCH_TARGET=h200
t main
KILN_BENCH_FILTER="$CASES" timeout 40 ./kiln_bench_main 2>&1 | tee $OUT/main.txt
t branch
KILN_BENCH_FILTER="$CASES" timeout 40 ./kiln_bench 2>&1 | tee $OUT/branch.txt
t torch
PYTHONUNBUFFERED=1 timeout 30 python3 torch_ref.py --filter "attention" 2>&1 | tee $OUT/torch.txt
t sweep
KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="attention f32 1x12x512x64 opt-level 2" \
  KILN_BENCH_SWEEP_FILTER="rows=64, bk=32, splits=8|rows=32, bk=32, splits=8|rows=32, bk=64, splits=16" \
  timeout 120 ./kiln_bench 2>&1 | grep -v "^device\|^case\|^target" | tee $OUT/sweep.txt
KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="attention f32 32x12x128x32 opt-level 3" \
  KILN_BENCH_SWEEP_FILTER="rows=64, bk=32, splits=8" \
  timeout 60 ./kiln_bench 2>&1 | grep -v "^device\|^case\|^target" | tee -a $OUT/sweep.txt
t again
KILN_BENCH_FILTER="attention f32 1x12x512x64 opt-level 2" timeout 20 ./kiln_bench_main 2>&1 | grep "^attention" | tee -a $OUT/main.txt
KILN_BENCH_FILTER="attention f32 1x12x512x64 opt-level 2" timeout 20 ./kiln_bench 2>&1 | grep "^attention" | tee -a $OUT/branch.txt
PYTHONUNBUFFERED=1 timeout 30 python3 torch_ref.py --filter "attention f32 1x12x512x64" 2>&1 | tee -a $OUT/torch.txt
t done
