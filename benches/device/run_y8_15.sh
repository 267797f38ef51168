# Fifteenth session: the gate/up GEMV rounds the SwiGLU to 8-bit blocks for the down
# projection (no quantizer dispatch). One command: `kiln` (this session's tree) against
# `kiln_base` (e512730, the fourteenth session's main), both with the default `--activations
# auto`, on the random Q4_1 GGUF (Q8_0 embeddings) of the SmolLM2 1.7B shape, `--context 1024
# --target desktop`, `kiln bench --prompt-tokens 512 --gen-tokens 128 --iters 3`, two rounds in
# alternation; eight schedules of the rounding gate/up GEMV forced by a one-record tuning
# database; `--activations q8` and f32; llama.cpp Vulkan llama-bench on the same file; decode
# profiles.   bash .bench/run_y8_15.sh   (carry .gl and .bench)
source benches/device/prelude.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/y8.txt
for b in kiln kiln_base; do xz -d -k -f $b.xz; chmod +x $b; done
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
source ggufs.sh
K="--context 1024 --target desktop -q"
B="--prompt-tokens 512 --gen-tokens 128 --iters 3 -q"
./kiln_base compile /tmp/s1700.gguf -o /tmp/base $K > /dev/null 2>&1 &
./kiln compile /tmp/s1700.gguf -o /tmp/auto $K > /dev/null 2>&1 &
./kiln compile /tmp/s1700.gguf -o /tmp/q8 $K --activations q8 > /dev/null 2>&1 &
./kiln compile /tmp/s1700.gguf -o /tmp/f32 $K --activations f32 > /dev/null 2>&1 &
key='qgemm_glu_x8_y8:q4_1:m=1,n=16384,k=2048'
S="8,4,32,true 32,1,8,true 16,2,16,true 8,4,16,true 16,2,8,true 32,1,4,true 32,1,8,false 8,4,32,false"
i=0
for s in $S; do
  IFS=, read l lr ks sg <<< "$s"
  echo "(records: {\"$key\": (schedule: Gemv((lanes: $l, ksplit: $ks, rows: 1, lane_rows: $lr, sg: $sg)), micros: 0.0, device: \"forced\")})" > /tmp/db$i.ron
  ./kiln compile /tmp/s1700.gguf -o /tmp/y$i $K --tuning /tmp/db$i.ron > /dev/null 2>&1 &
  i=$((i+1))
done
wait
for r in 1 2; do
  echo "== base round $r" | tee -a $OUT/y8.txt; timeout 40 ./kiln_base bench /tmp/base $B 2>&1 | tee -a $OUT/y8.txt
  echo "== auto round $r" | tee -a $OUT/y8.txt; timeout 40 ./kiln bench /tmp/auto $B 2>&1 | tee -a $OUT/y8.txt
done
i=0
for s in $S; do
  echo "== y$i lanes,lane_rows,ksplit,sg=$s" | tee -a $OUT/y8.txt
  timeout 40 ./kiln bench /tmp/y$i $B 2>&1 | grep -i decode | tee -a $OUT/y8.txt
  i=$((i+1))
done
for a in q8 f32; do echo "== $a" | tee -a $OUT/y8.txt; timeout 40 ./kiln bench /tmp/$a $B 2>&1 | tee -a $OUT/y8.txt; done
echo "== 1.7B llama.cpp" | tee -a $OUT/y8.txt
LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s1700.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128" | tee -a $OUT/y8.txt
echo "== base round 3" | tee -a $OUT/y8.txt; timeout 40 ./kiln_base bench /tmp/base $B 2>&1 | tee -a $OUT/y8.txt
echo "== auto round 3" | tee -a $OUT/y8.txt; timeout 40 ./kiln bench /tmp/auto $B 2>&1 | tee -a $OUT/y8.txt
timeout 60 ./kiln bench /tmp/auto --profile --prompt-tokens 512 -q > $OUT/profile-auto.txt 2>&1
timeout 60 ./kiln_base bench /tmp/base --profile --prompt-tokens 512 -q > $OUT/profile-base.txt 2>&1
grep -A45 "program 'decode'" $OUT/profile-auto.txt | head -46
