# Sixteenth session: every norm-fed decode GEMV normalizes and rounds its own x (the q/k/v
# projection and the head too, not only gate/up). One command: `kiln` (this tree) against
# `kiln_main` (1e7069f, the fifteenth session's main) on the random Q4_1 GGUFs (Q8_0
# embeddings) of the SmolLM2 135M / 360M / 1.7B shapes, `--context 1024 --target desktop`,
# `kiln bench --prompt-tokens 512 --gen-tokens 128 --iters 3`: main auto, this auto (the head
# rounds its x inside), this q8 (q/k/v too), and at 1.7B four schedules of the q/k/v GEMV forced
# by a one-record tuning database; llama.cpp Vulkan beside them; decode profiles.
#   bash .bench/run_qkv16.sh   (carry .gl and .bench)
source benches/device/prelude.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
unpack kiln kiln_main
llm_setup
for s in 135 360 1700; do
  ./kiln_main compile /tmp/s$s.gguf -o /tmp/main$s $K > /dev/null 2>&1 &
  ./kiln compile /tmp/s$s.gguf -o /tmp/auto$s $K > /dev/null 2>&1 &
  ./kiln compile /tmp/s$s.gguf -o /tmp/q8$s $K --activations q8 > /dev/null 2>&1 &
  wait
done
key='qgemm_rmsnorm_xq8:q4_1:m=1,n=6144,k=2048'
S="32,1,32,true 16,2,32,true 8,4,32,true 32,1,8,true"
i=0
for s in $S; do
  IFS=, read l lr ks sg <<< "$s"
  echo "(records: {\"$key\": (schedule: Gemv((lanes: $l, ksplit: $ks, rows: 1, lane_rows: $lr, sg: $sg)), micros: 0.0, device: \"forced\")})" > /tmp/db$i.ron
  ./kiln compile /tmp/s1700.gguf -o /tmp/x$i $K --activations q8 --tuning /tmp/db$i.ron > /dev/null 2>&1 &
  i=$((i+1))
done
wait
grep -o '"schedule":"gemv[^"]*"' /tmp/q81700/manifest.json | sort | uniq -c
for r in 1 2; do
  for s in 1700 135 360; do
    for v in main auto q8; do
      b=./kiln; [ $v = main ] && b=./kiln_main
      echo "== $s $v round $r"; timeout 40 $b bench /tmp/$v$s $B 2>&1 | grep -E "decode|prefill"
    done
  done
done
i=0
for s in $S; do
  echo "== 1700 q8, q/k/v lanes,lane_rows,ksplit,sg=$s"; timeout 40 ./kiln bench /tmp/x$i $B 2>&1 | grep decode
  i=$((i+1))
done
for s in 1700 135 360; do
  echo "== $s llama.cpp"
  LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128"
done
timeout 60 ./kiln bench /tmp/q81700 --profile --prompt-tokens 512 -q > $OUT/profile-q8.txt 2>&1
timeout 60 ./kiln_main bench /tmp/main1700 --profile --prompt-tokens 512 -q > $OUT/profile-main.txt 2>&1
grep -A30 "program 'decode'" $OUT/profile-q8.txt | head -31
