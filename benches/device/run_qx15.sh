# Fifteenth session: the FFN norm's quantizer fused into the gate/up GEMV as a prologue (each
# 1024-thread workgroup normalizes and rounds x itself; branch qx-prologue) against main
# (`kiln_main`, 184f499), 1.7B shape, two rounds in alternation, llama.cpp decode beside them,
# and the decode profile.   bash .bench/run_qx15.sh   (carry .gl and .bench)
source benches/device/prelude.sh
for b in kiln kiln_main; do xz -d -k -f $b.xz; chmod +x $b; done
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
source ggufs.sh
K="--context 1024 --target desktop -q"
B="--prompt-tokens 512 --gen-tokens 128 --iters 3 -q"
./kiln_main compile /tmp/s1700.gguf -o /tmp/main $K > /dev/null 2>&1 &
./kiln compile /tmp/s1700.gguf -o /tmp/qx $K > /dev/null 2>&1 &
wait
for r in 1 2; do
  echo "== main round $r"; timeout 40 ./kiln_main bench /tmp/main $B 2>&1 | grep decode
  echo "== qx round $r"; timeout 40 ./kiln bench /tmp/qx $B 2>&1 | grep decode
done
echo "== 1.7B llama.cpp"
LD_LIBRARY_PATH=/tmp/llama timeout 60 /tmp/llama/llama-bench -m /tmp/s1700.gguf -ngl 99 -r 3 -p 0 -n 128 2>&1 | grep "tg128"
timeout 60 ./kiln bench /tmp/qx --profile --prompt-tokens 16 -q > $OUT/profile-qx.txt 2>&1
grep -A22 "program 'decode'" $OUT/profile-qx.txt | cut -c1-150 | head -23
