# Fourteenth session: which projections pay for 8-bit activations. One binary (kiln_q8b),
# random Q4_1 GGUFs (Q8_0 embeddings) of the SmolLM2 135M / 360M / 1.7B shapes compiled with
# `--activations q8` (every norm before q/k/v, gate/up and the head quantizes), `auto` with
# the threshold set by KILN_EXP_Q8_MIN_MIB (an override only these experiment binaries read, not in
# main; 8: at 1.7B gate/up and the head, elsewhere the
# head only; 24: the head only), and `f32`; `kiln bench --prompt-tokens 512 --gen-tokens 128
# --iters 3`, two rounds in alternation. Then at 1.7B kiln_q8c (the same with the O and down
# projections' inputs also candidates: threshold 8 quantizes gate/up, down and the head; 2
# every projection input) beside a8.
#   bash .bench/run_q8b_14.sh   (carry .gl and .bench)
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .bench
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/q8b.txt
for b in kiln_q8b kiln_q8c; do xz -d -k -f $b.xz; chmod +x $b; done
source ggufs.sh
C135="q8:q8:0 a8:auto:8 f32:f32:0"; C1700="q8:q8:0 a8:auto:8 a24:auto:24 f32:f32:0"
for s in 135 360 1700; do
  C=$C135; [ $s = 1700 ] && C=$C1700
  for c in $C; do IFS=: read n a m <<< "$c"
    KILN_EXP_Q8_MIN_MIB=$m ./kiln_q8b compile /tmp/s$s.gguf -o /tmp/$n$s --context 1024 --target desktop --activations $a -q > /dev/null 2>&1 &
  done
done
for c in c8:8 c2:2; do KILN_EXP_Q8_MIN_MIB=${c#*:} ./kiln_q8c compile /tmp/s1700.gguf -o /tmp/${c%%:*}1700 --context 1024 --target desktop --activations auto -q > /dev/null 2>&1 & done
wait
for s in 135 360 1700; do
  C=$C135; [ $s = 1700 ] && C=$C1700
  for r in 1 2; do for c in $C; do n=${c%%:*}
    echo "== $s $n round $r: $(grep -o "weight_mul.q8\"" /tmp/$n$s/manifest.ron | wc -l) quantizer dispatch labels" | tee -a $OUT/q8b.txt
    timeout 40 ./kiln_q8b bench /tmp/$n$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/q8b.txt
  done; done
done
for r in 1 2; do for n in c8 c2 a8; do
  echo "== 1700 $n (kiln_q8c: O and down inputs too) round $r" | tee -a $OUT/q8b.txt
  timeout 40 ./kiln_q8b bench /tmp/${n}1700 --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/q8b.txt
done; done
timeout 60 ./kiln_q8b bench /tmp/c81700 --profile --prompt-tokens 512 -q > $OUT/profile-c8-1700.txt 2>&1
for s in 135 360 1700; do
  timeout 60 ./kiln_q8b bench /tmp/q8$s --profile --prompt-tokens 512 -q > $OUT/profile-q8-$s.txt 2>&1
  timeout 60 ./kiln_q8b bench /tmp/f32$s --profile --prompt-tokens 512 -q > $OUT/profile-f32-$s.txt 2>&1
done
grep -h "floor of 'decode'" $OUT/profile-*.txt
