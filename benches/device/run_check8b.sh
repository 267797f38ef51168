# PP-OCRv4 det after the vec4 default rule: this build vs the session start's, profiles by kernel kind; copy/add kernels.
source .bench/common.sh
xz -d -k -f kiln_base.xz && chmod +x kiln_base
D0=p2o.DynamicDimension
for b in kiln kiln_base; do ./$b compile ppocr.onnx -o /tmp/p$b --target h200 --dim $D0.0=1 --dim $D0.1=640 --dim $D0.2=640 -q > /dev/null 2>&1; done
for r in 1 2; do for b in kiln kiln_base; do echo "== ppocr $b round $r"; timeout 60 ./$b bench /tmp/p$b --iters 100 -q 2>&1 | grep "program"; done; done
for b in kiln kiln_base; do echo "== profile $b"; timeout 60 ./$b bench /tmp/p$b --profile -q 2>&1 | grep "injective"; done
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="copy|add f32" timeout 60 ./kiln_bench 2>&1 | grep "copy\|add"
