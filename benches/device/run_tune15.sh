# Fifteenth session (run twice: before and after the tuner's thread floor for GEMVs): `kiln tune` (default budget, 110 s) on the random Q4_1 GGUF of the SmolLM2
# 1.7B shape with this tree's `kiln` (the rounding gate/up GEMV, whose job now also tries 512-
# and 1024-thread workgroups), then the tuned and untuned bundles in alternation beside
# llama.cpp's llama-bench on the same file.   bash .bench/run_tune15.sh  (carry .gl and .bench)
source benches/device/prelude.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/tune.txt
xz -d -k -f kiln.xz; chmod +x kiln
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
source ggufs.sh
K="--context 1024 --target desktop -q"
B="--prompt-tokens 512 --gen-tokens 128 --iters 3 -q"
./kiln compile /tmp/s1700.gguf -o /tmp/untuned $K > /dev/null 2>&1
SECONDS=0
./kiln tune /tmp/s1700.gguf -o $OUT/tuned1700.ron --target desktop -q -vv > $OUT/tune-log.txt 2>&1
echo "tune wall $SECONDS s" | tee -a $OUT/tune.txt
grep "^tuned" $OUT/tune-log.txt | tee -a $OUT/tune.txt
grep -E "^\S.*: .* at .* us \(default" $OUT/tune-log.txt | tee -a $OUT/tune.txt
grep "qgemm_glu_x8_y8" $OUT/tune-log.txt | grep -v "at .* us (default" | sort -t' ' -k2 | head -30
./kiln compile /tmp/s1700.gguf -o /tmp/tuned $K --tuning $OUT/tuned1700.ron > /dev/null 2>&1
for r in 1 2; do
  echo "== untuned round $r" | tee -a $OUT/tune.txt; timeout 40 ./kiln bench /tmp/untuned $B 2>&1 | grep decode | tee -a $OUT/tune.txt
  echo "== tuned round $r" | tee -a $OUT/tune.txt; timeout 40 ./kiln bench /tmp/tuned $B 2>&1 | grep decode | tee -a $OUT/tune.txt
done
echo "== 1.7B llama.cpp" | tee -a $OUT/tune.txt
LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s1700.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128" | tee -a $OUT/tune.txt
