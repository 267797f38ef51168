# Twenty-third session: MiniLM-L3 32x128's four GEMMs under each of six tiles, in the model
# (`kiln bench --profile` of bundles compiled with tuning databases that force the tile:
# benches/device/minilm23/make_dbs.py), two rounds; then kiln_bench's isolated sweep of the
# bk-16 8x8, 8x4 and 4x8 tiles over MiniLM's products at both batch sizes, 1024^3, 2048^3 and
# the 3x3 convolution, for the GEMM cost model (schedules::defaults::gemm_seconds).
#   bash benches/device/run_gtile23.sh   (carry .gl and .bench: kiln.xz, kiln_bench.xz,
#   minilm_v4096.onnx.xz, ids_/mask_32x128.npy)
source benches/device/prelude.sh
unpack kiln kiln_bench
xz -d -k -f -T8 minilm_v4096.onnx.xz
MD="--dim batch_size=32 --dim sequence_length=128"
IN="--input input_ids=ids_32x128.npy --input attention_mask=mask_32x128.npy"
mkdir -p /tmp/dbs
DBS=$(python3 ../benches/device/minilm23/make_dbs.py /tmp/dbs)
./kiln compile minilm_v4096.onnx -o /tmp/b_default --target h200 $MD -q | head -1
for db in $DBS; do
  v=$(basename $db .ron)
  ./kiln compile minilm_v4096.onnx -o /tmp/b_$v --target h200 $MD --tuning $db -q > /dev/null
done
for r in 1 2; do
  for b in /tmp/b_*; do
    v=$(basename $b)
    echo "== $v round $r" | tee -a $OUT/gtile.txt
    timeout 60 ./kiln bench $b $IN --iters 20 -q 2>&1 | grep "program" | tee -a $OUT/gtile.txt
    timeout 60 ./kiln bench $b $IN --profile -q > /tmp/prof.txt 2>&1
    grep "GPU" /tmp/prof.txt | cut -c1-100 | tee -a $OUT/gtile.txt
    grep "us each.*layer.1/" /tmp/prof.txt | sed -E 's|^ *[0-9.]+% +[0-9.]+ ms +1x +([0-9.]+) us each +/model/model.0/auto_model/encoder/layer.1/([^+]*).*|  \1 us \2|' | tee -a $OUT/gtile.txt
  done
done
export KILN_BENCH_TARGET=h200 KILN_BENCH_SWEEP=1 KILN_BENCH_SWEEP_FILTER="bk=16, tm=8, tn=8|bk=16, tm=8, tn=4|bk=16, tm=4, tn=8"
KILN_BENCH_FILTER="gemm f32 4096x|gemm f32 128x|gemm f32 1024x|gemm f32 2048x|conv3x3 f32 8x128" timeout 400 ./kiln_bench 2>&1 | tee $OUT/sweep.txt | tail -5
