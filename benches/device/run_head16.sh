# Sixteenth session, fifth command: schedules of the output head's GEMV (Q8_0, 49152 outputs,
# 8-bit x) at the 1.7B and 135M shapes, each forced by a one-record tuning database, against
# this tree's default (8 lanes x 32 threads); llama.cpp's 1.7B decode beside them.
# `--context 1024 --target desktop`, `kiln bench --prompt-tokens 512 --gen-tokens 128 --iters 3`.
#   bash .bench/run_head16.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln
llm_setup
V="8,32,1,true 4,64,1,false 16,32,1,true 8,32,2,true 32,32,1,true 16,64,1,false"
for s in 1700 135; do
  k=2048; [ $s = 135 ] && k=576
  ./kiln compile /tmp/s$s.gguf -o /tmp/base$s $K > /dev/null 2>&1 &
  for v in $V; do
    IFS=, read l ks lr sg <<< "$v"
    echo "(records: {\"qgemm_x8:q8_0:m=1,n=49152,k=$k\": (schedule: Gemv((lanes: $l, ksplit: $ks, rows: 1, lane_rows: $lr, sg: $sg)), micros: 0.0, device: \"forced\")})" > /tmp/db$s-$l-$ks-$lr-$sg.ron
    ./kiln compile /tmp/s$s.gguf -o /tmp/h$s-$l-$ks-$lr-$sg $K --tuning /tmp/db$s-$l-$ks-$lr-$sg.ron > /dev/null 2>&1 &
  done
  wait
done
for s in 1700 135; do
  echo "== $s base"; timeout 40 ./kiln bench /tmp/base$s $B 2>&1 | grep decode
  for v in $V; do
    IFS=, read l ks lr sg <<< "$v"
    echo "== $s head lanes,ksplit,lane_rows,sg=$v"; timeout 40 ./kiln bench /tmp/h$s-$l-$ks-$lr-$sg $B 2>&1 | grep decode
  done
  echo "== $s base"; timeout 40 ./kiln bench /tmp/base$s $B 2>&1 | grep decode
done
echo "== 1700 llama.cpp"
LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s1700.gguf -ngl 99 -r 3 -p 0 -n 128 2>&1 | grep "tg128"
