# Twelfth session: the sampling kernel's argmax with its 32 loads per step in separate values
# (kiln_s2), and that plus the decode GEMV defaults taken from `kiln tune`'s records (kiln_s3),
# against main at the session start (kiln, db7364c) on random Q4_1 GGUFs of the 135M, 360M and
# 1.7B shapes, two rounds in alternation; then the decode profile's sample line at 1.7B.
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .bench
xz -d -k -f kiln.xz; xz -d -k -f kiln_s2.xz; xz -d -k -f kiln_s3.xz; xz -d -k -f kiln_s4.xz; chmod +x kiln kiln_s2 kiln_s3 kiln_s4
source ggufs.sh
for s in 135 360 1700; do
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q > /dev/null 2>&1 &
  ./kiln_s2 compile /tmp/s$s.gguf -o /tmp/n$s --context 1024 --target desktop -q > /dev/null 2>&1 &
  ./kiln_s3 compile /tmp/s$s.gguf -o /tmp/d$s --context 1024 --target desktop -q > /dev/null 2>&1 &
  ./kiln_s4 compile /tmp/s$s.gguf -o /tmp/c$s --context 1024 --target desktop -q > /dev/null 2>&1 &
done
wait
for s in 135 360 1700; do for r in 1 2; do
  for b in kiln:k kiln_s2:n kiln_s3:d; do
    echo "== $s ${b%%:*} round $r" | tee -a $OUT/llm12s.txt
    timeout 40 ./${b%%:*} bench /tmp/${b##*:}$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/llm12s.txt
  done
done; done
for b in kiln:k kiln_s2:n kiln_s3:d; do
  echo "== profile ${b%%:*}"
  timeout 60 ./${b%%:*} bench /tmp/${b##*:}1700 --profile --prompt-tokens 512 -q > $OUT/profile-${b%%:*}.txt 2>&1
  grep -A40 "program 'decode'" $OUT/profile-${b%%:*}.txt | grep -i "  sample\|program 'decode'\|floor"
done
# Sampled decoding (`kiln bench`'s new sampling flags, which kiln_s2 also has): what the
# sampling kernel's bisections cost against greedy, with their passes' loads one at a time
# (kiln_s2), 8 at a time (kiln_s3), and over each thread's candidates (kiln_s4), at 1.7B and 135M.
for s in 1700 135; do
  for args in "--temperature 0.7" "--temperature 0.7 --top-k 40 --top-p 0.9" "--temperature 0.7 --top-p 0.9"; do
    for b in kiln_s2:n kiln_s3:d kiln_s4:c; do
      echo "== $s ${b%%:*} $args" | tee -a $OUT/llm12s.txt
      timeout 60 ./${b%%:*} bench /tmp/${b##*:}$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q $args 2>&1 | grep -v memory | tee -a $OUT/llm12s.txt
    done
  done
done
# The qgemv_layouts bench once more (x without exact halfway cases, so the RMS-norm quantize
# dispatch checks against its reference).
xz -d -k -f qgemv_layouts.xz && chmod +x qgemv_layouts
timeout 120 ./qgemv_layouts 2>&1 | tee $OUT/layouts12c.txt | grep "rowmajor\|unroll 2\|int8 x, 1\|quantize\|read\|empty"
