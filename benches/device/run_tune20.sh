# Twentieth session: `kiln tune --activations q8` with the qgemm_x8 GEMVs tuned (their one-op
# models now form the same kernel). SmolLM2-1.7B shape (random Q4_1 GGUF): tune with the
# default budget for the desktop target, then compile with and without the records and time
# decode (`kiln bench`, 128 tokens after a 512-token prompt, median of 3, two rounds in
# alternation) and profile one decode step (the qgemm lines).
#   bash benches/device/run_tune20.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln
llm_setup
/usr/bin/time -f "tune wall %e s" ./kiln tune /tmp/s1700.gguf -o /tmp/db8.ron --activations q8 --target desktop -q 2>&1 | tail -25
grep -c "schedule" /tmp/db8.ron; grep -o '"qgemm[a-z_0-9]*:[^"]*"' /tmp/db8.ron | sort | uniq | head -20
./kiln compile /tmp/s1700.gguf -o /tmp/u8 $K --activations q8 > /dev/null 2>&1
./kiln compile /tmp/s1700.gguf -o /tmp/t8 $K --activations q8 --tuning /tmp/db8.ron > /dev/null 2>&1
for r in 1 2; do
  for b in u8 t8; do
    echo "== $b r$r: $(timeout 60 ./kiln bench /tmp/$b --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep decode | cut -c1-140)"
  done
done
for b in u8 t8; do
  echo "== $b decode profile"
  timeout 60 ./kiln bench /tmp/$b --profile --prompt-tokens 512 -q 2>&1 | sed -n "/program 'decode'/,/by operation/p" | head -12
done
