# Eleventh session's prepared measurement (no device time was left in that session), for two
# commands on the H200 (each under the 10-minute limit), on random Q4_1 GGUFs (Q8_0
# embeddings) of the SmolLM2 1.7B and 135M shapes:
# PART=1 (1.7B):
#   - `qgemv_layouts` (benches/qgemv_layouts.rs): q4_1 GEMVs over GGUF's row-major blocks
#     (today's structure) against block-column-major and planar layouts read one row per
#     thread, cold, at the 1.7B shapes, beside a plain read of the same bytes;
#   - the decode step's profile timed inside one pass, with its floor (`kiln bench --profile`),
#     for this build (`kiln`) untuned;
#   - `kiln tune` with the default budget (cold-cache timing now reads its scratch buffer; the
#     decode GEMVs' space now has subgroup-sum candidates), timed; the tuned bundle's profile;
#     decode and prefill of tuned and untuned, two rounds in alternation.
# PART=2 (1.7B and 135M): decode and prefill (`kiln bench`, 512-token prompt, 128 tokens) of
#   this build, this build with `--weight-layout block-columns` (row-parallel decode GEMVs),
#   `kiln_f16w` (branch f16-words2: the decode attention reads the f16 cache a word per load)
#   and the tenth session's main (`kiln_base`, f41a82b), two rounds in
#   alternation, beside llama.cpp Vulkan `llama-bench -p 512 -n 128` on the same files; the
#   135M decode profile. This build compiles GGUF models with `--precision f16` by default
#   (f16 prefill products), kiln_base with f32.
#   PART=1 bash .bench/run_next11.sh; PART=2 bash .bench/run_next11.sh   (carry .gl and .bench)
# Needs in .bench/: common.sh, ggufs.sh, make_gguf.py, smollm2_tok.json, whl/, kiln.xz,
# kiln_base.xz, kiln_f16w.xz, llama.tar.xz, qgemv_layouts.xz (target/release/deps/qgemv_layouts-*
# of `cargo bench --bench qgemv_layouts --no-run`).
source .bench/common.sh
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/llm.txt; }
bench() { # bench BIN DIR LABEL
  echo "== $3" | tee -a $OUT/llm.txt
  timeout 40 $1 bench $2 --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/llm.txt
}
if [ "$PART" = 1 ]; then
  xz -d -k -f qgemv_layouts.xz && chmod +x qgemv_layouts
  timeout 150 ./qgemv_layouts > $OUT/layouts.txt 2>&1; t layouts
  source ggufs.sh; t ggufs
  ./kiln compile /tmp/s1700.gguf -o /tmp/k1700 --context 1024 --target desktop -q > $OUT/compile-1700.txt 2>&1
  timeout 60 ./kiln bench /tmp/k1700 --profile --prompt-tokens 512 -q > $OUT/profile-1700.txt 2>&1
  t profiled
  s0=$(date +%s%N)
  timeout 200 ./kiln tune /tmp/s1700.gguf -o /tmp/t1700.ron --target desktop 2>&1 | tail -30 > $OUT/tune-1700.txt
  echo "kiln tune 1700 wall: $(( ($(date +%s%N) - s0) / 1000000 )) ms" | tee -a $OUT/tune-1700.txt
  cp /tmp/t1700.ron $OUT/ 2>/dev/null
  ./kiln compile /tmp/s1700.gguf -o /tmp/tk1700 --context 1024 --target desktop --tuning /tmp/t1700.ron -q > $OUT/compile-tuned-1700.txt 2>&1
  timeout 60 ./kiln bench /tmp/tk1700 --profile --prompt-tokens 512 -q > $OUT/profile-tuned-1700.txt 2>&1
  t tuned
  for r in 1 2; do
    bench ./kiln /tmp/tk1700 "1700 tuned round $r"
    bench ./kiln /tmp/k1700 "1700 untuned round $r"
  done
  t done
  cat $OUT/layouts.txt $OUT/tune-1700.txt; head -45 $OUT/profile-1700.txt; head -45 $OUT/profile-tuned-1700.txt
fi
if [ "$PART" = 2 ]; then
  xz -d -k -f kiln_base.xz && chmod +x kiln_base
  xz -d -k -f kiln_f16w.xz && chmod +x kiln_f16w
  mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
  source ggufs.sh; t ggufs
  for s in 1700 135; do
    ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q > $OUT/compile-$s.txt 2>&1 &
    ./kiln compile /tmp/s$s.gguf -o /tmp/c$s --context 1024 --target desktop --weight-layout block-columns -q > $OUT/compile-cols-$s.txt 2>&1 &
    ./kiln_f16w compile /tmp/s$s.gguf -o /tmp/w$s --context 1024 --target desktop -q > /dev/null 2>&1 &
    ./kiln_base compile /tmp/s$s.gguf -o /tmp/b$s --context 1024 --target desktop -q > /dev/null 2>&1 &
  done
  wait; t compiled
  timeout 60 ./kiln bench /tmp/k135 --profile --prompt-tokens 512 -q > $OUT/profile-135.txt 2>&1
  timeout 60 ./kiln bench /tmp/c1700 --profile --prompt-tokens 512 -q > $OUT/profile-cols-1700.txt 2>&1
  for s in 1700 135; do
    for r in 1 2; do
      bench ./kiln /tmp/k$s "$s main round $r"
      bench ./kiln /tmp/c$s "$s main, block-column weights round $r"
      bench ./kiln_f16w /tmp/w$s "$s f16-words round $r"
      bench ./kiln_base /tmp/b$s "$s tenth-session main (f32 prefill) round $r"
    done
    LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128" | tee -a $OUT/llm.txt
    t size $s
  done
  head -40 $OUT/profile-135.txt; head -45 $OUT/profile-cols-1700.txt
fi
