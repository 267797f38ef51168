# Twenty-first session, seventh command: `kiln tune` times the f16 cooperative-matrix variants
# (`coop <key>` jobs). SmolLM2-1.7B shapes (random Q4_1 GGUF), `--target h200`, GGUF's default
# precision f16, the default budget; then the untuned and tuned bundles' 512-token prefill and
# decode, two rounds in alternation.
#   bash benches/device/run_tune21.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl 2>&1 | tail -1
PYTHONPATH=/tmp/gg python3 make_gguf.py make smollm2_tok.json /tmp/s1700.gguf --dim 2048 --layers 24 --heads 32 --kv-heads 32 --ffn 8192 --rope-base 130000 --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1
K="--context 1024 --target h200 -q"
./kiln compile /tmp/s1700.gguf -o /tmp/plain $K > /dev/null 2>&1 &
timeout 200 ./kiln tune /tmp/s1700.gguf -o /tmp/db.ron --target h200 2>&1 | grep -v "^\s*$" | tail -30
wait
./kiln compile /tmp/s1700.gguf -o /tmp/tuned $K --tuning /tmp/db.ron > /dev/null 2>&1
grep -c "coop" /tmp/db.ron
for r in 1 2; do for b in plain tuned; do
  echo "== $b round $r: $(timeout 60 ./kiln bench /tmp/$b --prompt-tokens 512 --gen-tokens 32 --iters 3 -q 2>&1 | grep -E "prefill|decode" | tr '\n' ' ')"
done; done
