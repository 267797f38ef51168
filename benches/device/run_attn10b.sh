# Tenth-session attn, second command: the new default at 1x12x512x64 (pbuf + sg, 4 key slices)
# against the previous default (the same split without them) from one kiln_bench sweep
# invocation, three times, after main's kiln_bench once. Same folder and carry as
# run_attn10.sh.
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .dev-attn
for b in kiln_bench kiln_bench_main; do xz -d -k -f $b.xz; chmod +x $b; done
export KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="attention f32 1x12x512x64 opt-level 2"
timeout 20 ./kiln_bench_main 2>&1 | grep "^attention" | sed 's/^/main   /' | tee $OUT/ab.txt
for i in 1 2 3; do
  KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="rows=64, bk=32, splits=8, slices=4, tm=4)" \
    timeout 20 ./kiln_bench 2>&1 | grep "^attention" | sed "s/^/run $i  /" | tee -a $OUT/ab.txt
done
