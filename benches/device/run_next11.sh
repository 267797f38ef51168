# Eleventh session's prepared measurement (no device time was left in that session), for one
# command on the H200: random Q4_1 GGUFs (Q8_0 embeddings) of the SmolLM2 1.7B and 135M shapes,
#   1. the decode step's profile timed inside one pass (`kiln bench --profile`, which now times
#      each dispatch from the end of the one before it, so the times add up to the step), for
#      this build (`kiln`) untuned;
#   2. `kiln tune` of the 1.7B file with the default budget (cold-cache timing now reads its
#      scratch buffer; the decode GEMVs' space now has subgroup-sum candidates), timed, and the
#      tuned bundle's profile;
#   3. decode and prefill (`kiln bench`, 512-token prompt, 128 tokens) of tuned, untuned and
#      the tenth session's main (`kiln_base`, f41a82b), two rounds in alternation, beside
#      llama.cpp Vulkan `llama-bench -p 512 -n 128` on the same files. This build compiles GGUF
#      models with `--precision f16` by default (f16 prefill products), kiln_base with f32.
#   0. first, `benches/qgemv_layouts.rs` (`qgemv_layouts`): q4_1 GEMVs over GGUF's row-major
#      blocks (today's structure) against block-column-major and planar layouts read one row
#      per thread, cold, at the 1.7B shapes, beside a plain read of the same bytes.
#   bash .bench/run_next11.sh     (carry .gl and .bench)
# Needs in .bench/: common.sh, ggufs.sh, make_gguf.py, smollm2_tok.json, whl/, kiln.xz,
# kiln_base.xz, llama.tar.xz, qgemv_layouts.xz (target/release/deps/qgemv_layouts-* of
# `cargo bench --bench qgemv_layouts --no-run`).
source .bench/common.sh
xz -d -k -f kiln_base.xz && chmod +x kiln_base
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
xz -d -k -f qgemv_layouts.xz && chmod +x qgemv_layouts
timeout 120 ./qgemv_layouts > $OUT/layouts.txt 2>&1; t layouts
source ggufs.sh; t ggufs
for s in 1700 135; do
  ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q > $OUT/compile-$s.txt 2>&1 &
  ./kiln_base compile /tmp/s$s.gguf -o /tmp/b$s --context 1024 --target desktop -q > /dev/null 2>&1 &
done
wait; t compiled
timeout 60 ./kiln bench /tmp/k1700 --profile --prompt-tokens 512 -q > $OUT/profile-1700.txt 2>&1
timeout 60 ./kiln bench /tmp/k135 --profile --prompt-tokens 512 -q > $OUT/profile-135.txt 2>&1
t profiled
s0=$(date +%s%N)
timeout 200 ./kiln tune /tmp/s1700.gguf -o /tmp/t1700.ron --target desktop 2>&1 | tail -30 > $OUT/tune-1700.txt
echo "kiln tune 1700 wall: $(( ($(date +%s%N) - s0) / 1000000 )) ms" | tee -a $OUT/tune-1700.txt
./kiln compile /tmp/s1700.gguf -o /tmp/tk1700 --context 1024 --target desktop --tuning /tmp/t1700.ron -q > $OUT/compile-tuned-1700.txt 2>&1
timeout 60 ./kiln bench /tmp/tk1700 --profile --prompt-tokens 512 -q > $OUT/profile-tuned-1700.txt 2>&1
t tuned
for s in 1700 135; do
  for r in 1 2; do
    for b in tk k b; do
      [ -d /tmp/$b$s ] || continue
      bin=./kiln; [ $b = b ] && bin=./kiln_base
      echo "== $s $b round $r" | tee -a $OUT/llm.txt
      timeout 40 $bin bench /tmp/$b$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/llm.txt
    done
  done
  LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128" | tee -a $OUT/llm.txt
done
t done
cat $OUT/layouts.txt $OUT/tune-1700.txt; head -40 $OUT/profile-1700.txt; head -40 $OUT/profile-tuned-1700.txt; head -30 $OUT/profile-135.txt
