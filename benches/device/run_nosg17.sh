# Seventeenth session, fifth command: the gate/up GEMV (norm and 8-bit rounding of x inside,
# SwiGLU, outputs rounded to 8 bits) in its subgroup form (the default: lane sums by shuffles)
# against its workgroup-memory form, each forced by a one-record tuning database, with
# `kiln_fa` (b4ae83a). 1.7B: the default, 32 lanes x 32 threads without subgroups, 16 lanes of
# 2 rows and 32 lanes of 2 rows without subgroups; 135M and 360M: the default and 32 x 32
# without subgroups. Same options as run_fuse17.sh, three rounds in alternation.
#   bash .bench/run_nosg17.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_fa
llm_setup
key() { case $1 in 1700) echo "n=16384,k=2048";; 135) echo "n=3072,k=576";; 360) echo "n=5120,k=960";; esac; }
for s in 1700 135 360; do
  ./kiln_fa compile /tmp/s$s.gguf -o /tmp/d$s $K > /dev/null 2>&1 &
  V="32,1"; [ $s = 1700 ] && V="32,1 16,2 32,2"
  for v in $V; do
    IFS=, read l lr <<< "$v"
    echo "(records: {\"qgemm_rmsnorm_glu_xq8_y8:q4_1:m=1,$(key $s)\": (schedule: Gemv((lanes: $l, ksplit: 32, rows: 1, lane_rows: $lr, sg: false)), micros: 0.0, device: \"forced\")})" > /tmp/db$s-$l-$lr.ron
    ./kiln_fa compile /tmp/s$s.gguf -o /tmp/w$s-$l-$lr $K --tuning /tmp/db$s-$l-$lr.ron > /dev/null 2>&1 &
  done
  wait
done
for r in 1 2 3; do
  for s in 1700 135 360; do
    echo "== $s default round $r"; timeout 40 ./kiln_fa bench /tmp/d$s $B 2>&1 | grep decode
    V="32,1"; [ $s = 1700 ] && V="32,1 16,2 32,2"
    for v in $V; do
      IFS=, read l lr <<< "$v"
      echo "== $s no-subgroup lanes=$l lane_rows=$lr round $r"; timeout 40 ./kiln_fa bench /tmp/w$s-$l-$lr $B 2>&1 | grep decode
    done
  done
done
timeout 60 ./kiln_fa bench /tmp/w1700-32-1 --profile --prompt-tokens 512 -q > $OUT/profile-nosg.txt 2>&1
grep -A22 "program 'decode'" $OUT/profile-nosg.txt | grep -E "ffn_norm|program" | cut -c1-120
grep -h schedule_source /tmp/w1700-32-1/manifest.json | sort | uniq -c
