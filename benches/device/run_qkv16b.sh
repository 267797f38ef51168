# Sixteenth session, second command: the q/k/v and head GEMVs rounding their own x, with the
# 1024-thread default (32 lanes x 32 threads) for every GEMV that does. `kiln` (this tree,
# with an experiment-only switch KILN_QX_MAX_N: GEMVs of more outputs keep their quantizer
# dispatch) against `kiln_main` (1e7069f): 1.7B with `--activations q8` (q/k/v, gate/up, down
# and head inputs rounded), with and without the head's prologue, three forced head schedules;
# 135M and 360M with `auto` (the head only); llama.cpp tg128 beside them; decode profile.
#   bash .bench/run_qkv16b.sh   (carry .gl and .bench)
source benches/device/prelude.sh
for b in kiln kiln_main; do xz -d -k -f $b.xz; chmod +x $b; done
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
source ggufs.sh
K="--context 1024 --target desktop -q"
B="--prompt-tokens 512 --gen-tokens 128 --iters 3 -q"
for s in 135 360 1700; do
  ./kiln_main compile /tmp/s$s.gguf -o /tmp/main$s $K > /dev/null 2>&1 &
  ./kiln compile /tmp/s$s.gguf -o /tmp/auto$s $K > /dev/null 2>&1 &
  KILN_QX_MAX_N=20000 ./kiln compile /tmp/s$s.gguf -o /tmp/nohead$s $K > /dev/null 2>&1 &
  wait
done
./kiln compile /tmp/s1700.gguf -o /tmp/q8 $K --activations q8 > /dev/null 2>&1 &
KILN_QX_MAX_N=20000 ./kiln compile /tmp/s1700.gguf -o /tmp/q8nohead $K --activations q8 > /dev/null 2>&1 &
key='qgemm_rmsnorm_xq8:q8_0:m=1,n=49152,k=2048'
S="8,1,32,false 16,1,32,true 8,2,32,true"
i=0
for s in $S; do
  IFS=, read l lr ks sg <<< "$s"
  echo "(records: {\"$key\": (schedule: Gemv((lanes: $l, ksplit: $ks, rows: 1, lane_rows: $lr, sg: $sg)), micros: 0.0, device: \"forced\")})" > /tmp/db$i.ron
  ./kiln compile /tmp/s1700.gguf -o /tmp/h$i $K --activations q8 --tuning /tmp/db$i.ron > /dev/null 2>&1 &
  i=$((i+1))
done
wait
for r in 1 2; do
  for v in main1700 q8 q8nohead; do
    b=./kiln; [ $v = main1700 ] && b=./kiln_main
    echo "== $v round $r"; timeout 40 $b bench /tmp/$v $B 2>&1 | grep -E "decode"
  done
done
i=0
for s in $S; do
  echo "== q8, head lanes,lane_rows,ksplit,sg=$s"; timeout 40 ./kiln bench /tmp/h$i $B 2>&1 | grep decode
  i=$((i+1))
done
for r in 1 2; do
  for s in 135 360; do
    for v in main auto nohead; do
      b=./kiln; [ $v = main ] && b=./kiln_main
      echo "== $s $v round $r"; timeout 40 $b bench /tmp/$v$s $B 2>&1 | grep -E "decode"
    done
  done
done
echo "== 1700 llama.cpp"
LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s1700.gguf -ngl 99 -r 3 -p 0 -n 128 2>&1 | grep "tg128"
timeout 60 ./kiln bench /tmp/q8 --profile --prompt-tokens 512 -q > $OUT/profile-q8.txt 2>&1
grep -A22 "program 'decode'" $OUT/profile-q8.txt | head -23 | cut -c1-160
