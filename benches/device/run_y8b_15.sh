# Fifteenth session, second command: wider workgroups for the rounding gate/up GEMV (512 and
# 1024 threads, the `desktop` profile's limit; the first command's 256-thread forms launch too
# few threads). 1.7B shape as in run_y8_15.sh; `kiln_base` (e512730) and this tree's default
# in alternation around the forced schedules.   bash .bench/run_y8b_15.sh  (carry .gl, .bench)
source benches/device/prelude.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/y8b.txt
for b in kiln kiln_base; do xz -d -k -f $b.xz; chmod +x $b; done
source ggufs.sh
K="--context 1024 --target desktop -q"
B="--prompt-tokens 512 --gen-tokens 128 --iters 3 -q"
./kiln_base compile /tmp/s1700.gguf -o /tmp/base $K > /dev/null 2>&1 &
./kiln compile /tmp/s1700.gguf -o /tmp/auto $K > /dev/null 2>&1 &
key='qgemm_glu_x8_y8:q4_1:m=1,n=16384,k=2048'
S="32,1,32,true 16,2,32,true 32,1,16,true 32,1,32,false 32,2,16,true 16,4,16,true 32,2,8,true 8,4,32,true"
i=0
for s in $S; do
  IFS=, read l lr ks sg <<< "$s"
  echo "(records: {\"$key\": (schedule: Gemv((lanes: $l, ksplit: $ks, rows: 1, lane_rows: $lr, sg: $sg)), micros: 0.0, device: \"forced\")})" > /tmp/db$i.ron
  ./kiln compile /tmp/s1700.gguf -o /tmp/z$i $K --tuning /tmp/db$i.ron > /dev/null 2>&1 &
  i=$((i+1))
done
wait
for r in 1 2; do
  echo "== base round $r" | tee -a $OUT/y8b.txt; timeout 40 ./kiln_base bench /tmp/base $B 2>&1 | grep decode | tee -a $OUT/y8b.txt
  echo "== auto round $r" | tee -a $OUT/y8b.txt; timeout 40 ./kiln bench /tmp/auto $B 2>&1 | grep decode | tee -a $OUT/y8b.txt
  i=0
  for s in $S; do
    echo "== z$i lanes,lane_rows,ksplit,sg=$s round $r" | tee -a $OUT/y8b.txt
    timeout 40 ./kiln bench /tmp/z$i $B 2>&1 | grep -i decode | tee -a $OUT/y8b.txt
    i=$((i+1))
  done
done
timeout 60 ./kiln bench /tmp/z0 --profile --prompt-tokens 512 -q > $OUT/profile-z0.txt 2>&1
grep -A12 "program 'decode'" $OUT/profile-z0.txt | head -13
