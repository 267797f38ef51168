# Fifteenth session: which record of run_tune15.sh's database (tuned1700.ron) slows the tuned
# 1.7B decode (401.8 against 760.5 tok/s untuned). Each decode GEMV record left out or kept
# alone, decode-only benches (16-token prompt), and in-pass profiles of the tuned and untuned
# bundles.   bash .bench/run_tune15b.sh  (carry .gl and .bench)
source benches/device/prelude.sh
xz -d -k -f kiln.xz; chmod +x kiln
source ggufs.sh
K="--context 1024 --target desktop -q"
B="--prompt-tokens 16 --gen-tokens 128 --iters 3 -q"
python3 - <<'PY'
import re
s = open('tuned1700.ron').read()
body = s[s.index('{') + 1:s.rindex('}')]
recs = re.findall(r'\s*("[^"]+": \((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)),', body)
keys = [re.match(r'"([^"]+)"', r).group(1) for r in recs]
gemv = {'glu': 'qgemm_glu_x8_y8', 'down': 'qgemm_x8:q4_1', 'head': 'qgemm_x8:q8_0'}
def write(name, keep):
    open(f'/tmp/db_{name}.ron', 'w').write('(records: {' + ','.join(r for r, k in zip(recs, keys) if keep(k)) + '})')
write('all', lambda k: True)
for n, p in gemv.items():
    write('no_' + n, lambda k, p=p: not k.startswith(p))
    write('only_' + n, lambda k, p=p: k.startswith(p))
print(len(recs), 'records')
PY
./kiln compile /tmp/s1700.gguf -o /tmp/untuned $K > /dev/null 2>&1 &
for v in all no_glu no_down no_head only_glu only_down only_head; do
  ./kiln compile /tmp/s1700.gguf -o /tmp/t_$v $K --tuning /tmp/db_$v.ron > $OUT/compile_$v.txt 2>&1 &
done
wait
for v in untuned t_all t_no_glu t_no_down t_no_head t_only_glu t_only_down t_only_head; do
  echo "== $v"; timeout 40 ./kiln bench /tmp/$v $B 2>&1 | grep decode
done
timeout 60 ./kiln bench /tmp/t_all --profile --prompt-tokens 16 -q > $OUT/profile-tuned.txt 2>&1
grep -A30 "program 'decode'" $OUT/profile-tuned.txt | cut -c1-170 | head -31
