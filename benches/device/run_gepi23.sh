# Twenty-third session: what MiniLM-L3 32x128's GEMM epilogues and tiles cost in the model.
# Compiles the h200 bundle, makes WGSL-edited copies (benches/device/bundle_variant.py) and
# tuning-database variants (benches/device/minilm23/db_*.ron), and profiles each with
# `kiln bench --profile` (per-dispatch GPU times), two rounds in alternation; PyTorch eager and
# kiln_bench's isolated GEMMs in the same command.
#   bash benches/device/run_gepi23.sh   (carry .gl and .bench: kiln.xz, kiln_bench.xz,
#   minilm_v4096.onnx.xz, ids_/mask_32x128.npy)
source benches/device/prelude.sh
unpack kiln kiln_bench
xz -d -k -f -T8 minilm_v4096.onnx.xz
MD="--dim batch_size=32 --dim sequence_length=128"
IN="--input input_ids=ids_32x128.npy --input attention_mask=mask_32x128.npy"
V=../benches/device/bundle_variant.py
./kiln compile minilm_v4096.onnx -o /tmp/base --target h200 $MD -q | head -1
for d in tiles double; do
  ./kiln compile minilm_v4096.onnx -o /tmp/$d --target h200 $MD --tuning ../benches/device/minilm23/db_$d.ron -q | head -1
done
E='(fn kiln_epilogue\(v: f32, gm: i32, gn: i32, batch: i32\) -> f32 \{).*?\n\}'
python3 $V /tmp/base /tmp/none k007_gemm.wgsl "$E" '\1\n    return v + in0[0] * 0.0f;\n}' k002_gemm.wgsl "$E" '\1\n    return v + in0[0] * 0.0f;\n}'
python3 $V /tmp/base /tmp/bias k007_gemm.wgsl "$E" '\1\n    return v + in0[gn];\n}' k002_gemm.wgsl 'let c1 = \(i % 1152i\);' 'let c1 = gn;'
python3 $V /tmp/base /tmp/gn k007_gemm.wgsl 'let c1 = \(i % 1536i\);' 'let c1 = gn;' k002_gemm.wgsl 'let c1 = \(i % 1152i\);' 'let c1 = gn;'
python3 $V /tmp/gn /tmp/gnmul k007_gemm.wgsl 'b3 / 1.4142135f' 'b3 * 0.70710678f'
for r in 1 2; do
  for v in base none bias gn gnmul tiles double; do
    echo "== $v round $r" | tee -a $OUT/gepi.txt
    timeout 60 ./kiln bench /tmp/$v $IN --iters 20 -q 2>&1 | grep "program" | tee -a $OUT/gepi.txt
    timeout 60 ./kiln bench /tmp/$v $IN --profile -q > $OUT/prof_${v}_$r.txt 2>&1
    grep "GPU" $OUT/prof_${v}_$r.txt | cut -c1-120 | tee -a $OUT/gepi.txt
    grep "us each.*layer.1/" $OUT/prof_${v}_$r.txt | sed -E 's|^ *[0-9.]+% +[0-9.]+ ms +1x +([0-9.]+) us each +/model/model.0/auto_model/encoder/layer.1/([^+]*).*|  \1 us \2|' | tee -a $OUT/gepi.txt
  done
done
PYTHONUNBUFFERED=1 timeout 90 python3 ../benches/torch_minilm.py 32x128 2>&1 | tee -a $OUT/gepi.txt
KILN_BENCH_TARGET=h200 KILN_BENCH_FILTER="gemm f32 4096x" timeout 120 ./kiln_bench 2>&1 | tee -a $OUT/gepi.txt
