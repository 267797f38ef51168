# Twenty-third session: the GEMM cost model's new picks (busiest multiprocessor, occupancy and
# block traffic; kiln_new, kiln_bench_new) against the previous model's (kiln, kiln_bench, both
# with the epilogue fix), side by side: MiniLM-L3 at 1x128 and 32x128 (plus tuning-database
# variants of the 32x128 bundle, benches/device/minilm23/db_{best,bk32,down8}.ron), PP-OCRv4 det
# at 1x3x640x640, and kiln_bench's f32 GEMM, convolution and quantized-GEMM cases.
#   bash benches/device/run_gval23.sh   (carry .gl and .bench: kiln{,_new}.xz,
#   kiln_bench{,_new}.xz, minilm_v4096.onnx.xz, ids_/mask_{1,32}x128.npy, ppocr.onnx)
source benches/device/prelude.sh
unpack kiln kiln_new kiln_bench kiln_bench_new
xz -d -k -f -T8 minilm_v4096.onnx.xz
for B in 1 32; do
  ./kiln compile minilm_v4096.onnx -o /tmp/old$B --target h200 --dim batch_size=$B --dim sequence_length=128 -q | head -1
  ./kiln_new compile minilm_v4096.onnx -o /tmp/new$B --target h200 --dim batch_size=$B --dim sequence_length=128 -q | head -1
done
for db in best bk32 down8; do
  ./kiln_new compile minilm_v4096.onnx -o /tmp/${db}32 --target h200 --dim batch_size=32 --dim sequence_length=128 --tuning ../benches/device/minilm23/db_$db.ron -q | head -1
done
grep -h '"schedule"' /tmp/new32/manifest.json | sort | uniq -c
for r in 1 2; do
  for b in old32 new32 best32 bk32 down832 old1 new1; do
    B=32; case $b in *1) B=1;; esac
    IN="--input input_ids=ids_${B}x128.npy --input attention_mask=mask_${B}x128.npy"
    echo "== $b round $r" | tee -a $OUT/gval.txt
    timeout 60 ./kiln_new bench /tmp/$b $IN --iters 20 -q 2>&1 | grep "program" | tee -a $OUT/gval.txt
    timeout 60 ./kiln_new bench /tmp/$b $IN --profile -q > /tmp/prof.txt 2>&1
    grep "GPU" /tmp/prof.txt | cut -c1-100 | tee -a $OUT/gval.txt
    grep "us each.*layer.1/" /tmp/prof.txt | sed -E 's|^ *[0-9.]+% +[0-9.]+ ms +1x +([0-9.]+) us each +/model/model.0/auto_model/encoder/layer.1/([^+]*).*|  \1 us \2|' | tee -a $OUT/gval.txt
  done
done
D0=p2o.DynamicDimension; PD="--dim $D0.0=1 --dim $D0.1=640 --dim $D0.2=640"
./kiln compile ppocr.onnx -o /tmp/pold --target h200 $PD -q | head -1
./kiln_new compile ppocr.onnx -o /tmp/pnew --target h200 $PD -q | head -1
for r in 1 2; do
  for p in pold pnew; do
    echo "== ppocr $p round $r" | tee -a $OUT/gval.txt
    timeout 60 ./kiln_new bench /tmp/$p --iters 50 -q 2>&1 | grep "program" | tee -a $OUT/gval.txt
  done
done
export KILN_BENCH_TARGET=h200
CASES="gemm f32|conv3x3|dwconv|qgemm q4_1 512"
for b in kiln_bench kiln_bench_new; do
  KILN_BENCH_FILTER="$CASES" timeout 150 ./$b 2>&1 | grep -E "^[a-z]" | grep -v "^device" | sed "s/^/$b  /" | tee -a $OUT/gval.txt
done
