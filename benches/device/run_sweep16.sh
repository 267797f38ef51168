# Sixteenth session, fourth command: schedules of the 1.7B decode step's down (int8 x, K 8192)
# and O (f32 x, residual, the layer's K/V appends as its tail) GEMVs, each forced by a
# one-record tuning database, against this tree's defaults (4 lanes x 64 threads for both);
# `--context 1024 --target desktop`, `kiln bench --prompt-tokens 512 --gen-tokens 128 --iters 3`.
#   bash .bench/run_sweep16.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln
llm_setup
./kiln compile /tmp/s1700.gguf -o /tmp/base $K > /dev/null 2>&1 &
V="down,4,128,false down,2,128,false down,8,128,false down,4,256,false down,8,32,true o,8,64,false o,16,64,false o,2,64,false o,8,32,true o,4,32,true"
for v in $V; do
  IFS=, read w l ks sg <<< "$v"
  key='qgemm_x8:q4_1:m=1,n=2048,k=8192'; [ $w = o ] && key='qgemm:q4_1:m=1,n=2048,k=2048'
  echo "(records: {\"$key\": (schedule: Gemv((lanes: $l, ksplit: $ks, rows: 1, lane_rows: 1, sg: $sg)), micros: 0.0, device: \"forced\")})" > /tmp/db_$w$l$ks$sg.ron
  ./kiln compile /tmp/s1700.gguf -o /tmp/b_$w$l$ks$sg $K --tuning /tmp/db_$w$l$ks$sg.ron > /dev/null 2>&1 &
done
wait
echo "== base"; timeout 40 ./kiln bench /tmp/base $B 2>&1 | grep decode
for v in $V; do
  IFS=, read w l ks sg <<< "$v"
  echo "== $v"; timeout 40 ./kiln bench /tmp/b_$w$l$ks$sg $B 2>&1 | grep decode
done
echo "== base"; timeout 40 ./kiln bench /tmp/base $B 2>&1 | grep decode
