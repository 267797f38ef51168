# Ninth-session convolution measurements (docs/performance.md, "ninth session, conv"): this
# branch's kiln_bench and main's (built from main at the branch point, with this branch's bench
# cases) on the conv3x3 and depthwise cases, PyTorch fp32 (cuDNN, TF32 off) on the same cases,
# PP-OCRv4 det (1x3x640x640) with this branch's kiln and main's, each in the same command, then
# a sweep of the vec4 GEMM tiles over both conv3x3 cases.
# Run as `bash .dev-conv/run_conv9.sh` (device tool, carry .gl and .dev-conv) from a folder
# .dev-conv holding kiln.xz, kiln_main.xz, kiln_bench.xz, kiln_bench_main.xz, torch_ref.py,
# ppocr.onnx and this script.
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .dev-conv
for b in kiln kiln_main kiln_bench kiln_bench_main; do xz -d -k -f $b.xz; chmod +x $b; done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
export KILN_BENCH_TARGET=h200
F="conv3x3|dwconv3x3"
echo "== branch"
KILN_BENCH_FILTER="$F" timeout 40 ./kiln_bench 2>&1 | tee $OUT/new.txt
echo "== main"
KILN_BENCH_FILTER="$F" timeout 40 ./kiln_bench_main 2>&1 | tee $OUT/main.txt
echo "== torch"
PYTHONUNBUFFERED=1 timeout 40 python3 torch_ref.py --filter "$F" 2>&1 | tee $OUT/torch.txt
D0=p2o.DynamicDimension
for round in 1 2; do
  for b in kiln kiln_main; do
    [ $round = 1 ] && ./$b compile ppocr.onnx -o /tmp/p$b --target h200 --dim $D0.0=1 --dim $D0.1=640 --dim $D0.2=640 -q > /dev/null 2>&1
    echo "== ppocr $b (round $round)" | tee -a $OUT/ppocr.txt
    timeout 40 ./$b bench /tmp/p$b --iters 50 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/ppocr.txt
  done
done
for b in kiln kiln_main; do
  timeout 30 ./$b bench /tmp/p$b --profile -q > $OUT/ppocr_profile_$b.txt 2>&1
done
echo "== sweep"
KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="tm=4|tm=8|tm=16" KILN_BENCH_FILTER="conv3x3" \
  timeout 150 ./kiln_bench 2>&1 | grep -v "^device\|^case\|^target" | tee $OUT/sweep.txt
