# Ninth session (minilm), second (final) command: MiniLM-L3 at 32x128 and 1x128 for this branch
# (`kiln`: vec4 GEMM stores) and main (`kiln_main`) beside PyTorch eager (torch_minilm.py); this
# branch with tuning databases that force other GEMM tiles (db_a64: 64x64 8x8 blocks, db_b128x64:
# 128x64 8x8 blocks, FFN down split 2 ways in both), 128- or 64-thread layer norms
# (db_cln128, db_dln64) or tiles and 64-thread layer norms (db_*_ln64); kiln_bench's GEMM
# cases for both builds (defaults), and a sweep of 13 GEMM
# schedules over MiniLM's four 4096-row products (this branch); `kiln bench --profile` of this
# branch's 32x128 bundle.
# Needs in .dev-minilm/: kiln.xz, kiln_main.xz, kiln_bench.xz, kiln_bench_main.xz,
# minilm_v4096.onnx.xz, ids_/mask_*x128.npy (benches/device/minilm9/truncate.py makes them), and
# the tuning databases db_*.ron of benches/device/minilm9/ (carry ".gl" and ".dev-minilm").
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cp benches/torch_minilm.py .dev-minilm/
cd .dev-minilm
for x in *.xz; do xz -d -f -T8 $x & done; wait; chmod +x kiln kiln_main kiln_bench kiln_bench_main
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
T0=$(date +%s); t() { echo "== $1 at $(( $(date +%s) - T0 )) s"; }
C="compile minilm_v4096.onnx --target h200 --dim sequence_length=128 -q"
for B in 1 32; do
  ./kiln_main $C -o /tmp/main$B --dim batch_size=$B > /dev/null 2>&1
  ./kiln $C -o /tmp/mine$B --dim batch_size=$B > /dev/null 2>&1
done
for v in a64 b128x64 cln128 dln64 a64_ln64 b128x64_ln64; do ./kiln $C -o /tmp/$v --dim batch_size=32 --tuning db_$v.ron > /dev/null 2>&1; done
t compiled
PYTHONUNBUFFERED=1 timeout 60 python3 torch_minilm.py 1x128 32x128 2>&1 | tee $OUT/models.txt
t torch
for b in main32 mine32 a64 b128x64 cln128 dln64 a64_ln64 b128x64_ln64 main1 mine1; do
  case $b in main1|mine1) B=1;; *) B=32;; esac
  echo "== $b (${B}x128)" | tee -a $OUT/models.txt
  timeout 30 ./$( [[ $b == main* ]] && echo kiln_main || echo kiln ) bench /tmp/$b --input input_ids=ids_${B}x128.npy --input attention_mask=mask_${B}x128.npy --iters 20 -q 2>&1 | grep "median" | tee -a $OUT/models.txt
done
t models
timeout 30 ./kiln bench /tmp/mine32 --input input_ids=ids_32x128.npy --input attention_mask=mask_32x128.npy --profile -q > $OUT/profile_mine32.txt 2>&1
K="gemm f32 1024x1024x1024|gemm f32 4096x4096x4096|gemm f32 4096x|attention f32 32x12x128x32"
for kb in kiln_bench_main kiln_bench; do
  echo "== $kb" | tee -a $OUT/kernels.txt
  KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="$K" timeout 40 ./$kb 2>&1 | grep -v "^device\|^target" | tee -a $OUT/kernels.txt
done
t kernels
S="gemm(bm=128, bn=128, bk=16, tm=8, tn=8)|gemm(bm=128, bn=128, bk=16, tm=8, tn=8, ksplit=2)|gemm(bm=128, bn=128, bk=16, tm=8, tn=8, ksplit=4)|gemm(bm=64, bn=64, bk=16, tm=8, tn=8)|gemm(bm=64, bn=64, bk=16, tm=8, tn=8, ksplit=2)|gemm(bm=128, bn=64, bk=16, tm=8, tn=8)|gemm(bm=128, bn=64, bk=16, tm=8, tn=8, ksplit=2)|gemm(bm=64, bn=128, bk=16, tm=8, tn=8)|gemm(bm=64, bn=128, bk=16, tm=8, tn=8, ksplit=2)|gemm(bm=64, bn=128, bk=16, tm=8, tn=4)|gemm(bm=128, bn=64, bk=16, tm=4, tn=8)|gemm(bm=64, bn=64, bk=32, tm=8, tn=8)|gemm(bm=32, bn=128, bk=16, tm=8, tn=8)"
KILN_BENCH_TARGET=h200 KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="$S" KILN_BENCH_FILTER="gemm f32 4096x1152|gemm f32 4096x384|gemm f32 4096x1536" timeout 60 ./kiln_bench 2>&1 | grep -v "^device\|^target" > $OUT/sweep.txt
t sweep
cat $OUT/models.txt; grep "4096x" $OUT/kernels.txt | cut -c1-110
