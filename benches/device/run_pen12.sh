# Twelfth session, last: the greedy argmax without the repetition penalty's lookup in its loop
# (kiln_pen) against main before it (kiln_u8), random Q4_1 GGUFs of the 135M and 1.7B shapes,
# two rounds in alternation, then both builds' 1.7B decode profile sample line.
#   bash .bench/run_pen12.sh   (carry .gl and .bench)
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .bench
xz -d -k -f kiln_u8.xz; xz -d -k -f kiln_pen.xz; chmod +x kiln_u8 kiln_pen
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/gg
python3 make_gguf.py make smollm2_tok.json /tmp/s135.gguf --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1 &
python3 make_gguf.py make smollm2_tok.json /tmp/s1700.gguf --dim 2048 --layers 24 --heads 32 --kv-heads 32 --ffn 8192 --rope-base 130000 --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1 &
wait
for s in 135 1700; do
  ./kiln_u8 compile /tmp/s$s.gguf -o /tmp/u$s --context 1024 --target desktop -q > /dev/null 2>&1 &
  ./kiln_pen compile /tmp/s$s.gguf -o /tmp/p$s --context 1024 --target desktop -q > /dev/null 2>&1 &
done
wait
for s in 135 1700; do for r in 1 2; do
  for b in kiln_u8:u kiln_pen:p; do
    echo "== $s ${b%%:*} round $r" | tee -a $OUT/pen12.txt
    timeout 40 ./${b%%:*} bench /tmp/${b##*:}$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/pen12.txt
  done
done; done
for b in kiln_u8:u kiln_pen:p; do
  echo "== profile ${b%%:*}"
  timeout 60 ./${b%%:*} bench /tmp/${b##*:}1700 --profile --prompt-tokens 512 -q > $OUT/profile-${b%%:*}.txt 2>&1
  grep -A40 "program 'decode'" $OUT/profile-${b%%:*}.txt | grep "  sample\|program 'decode'\|floor"
done
