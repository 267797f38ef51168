# Tenth session, merged main on the H200, in two commands (PART=llm, PART=models).
# PART=llm: random Q4_1 GGUFs (Q8_0 embeddings) of the SmolLM2 135M / 360M / 1.7B shapes,
#   this build (`kiln`) vs the session start (`kiln_base`) vs llama.cpp Vulkan, plus the
#   1.7B bundle tuned by `kiln tune --budget 60`; dispatches per decode step from
#   the compile output; greedy ids of both builds on the 135M file.
# PART=ab: decode of the 360M and 1.7B shapes for this build, the session start and the
#   `defer` branch's design-only commit 2a36af4 (`kiln_defer1`: appends read through and
#   deferred into the next layer's append kernel, no attention store), two rounds alternating.
# PART=models: MiniLM-L3 (vocab cut to 4096) at 32x128 tuned with the default budget
#   (`kiln tune --dim ...`, timed) and at 1x128 untuned, beside PyTorch eager and the session
#   start; PP-OCRv4 det tuned (default budget, timed), tuned vs untuned vs session start.
#   PART=llm bash .bench/run_final10.sh      (carry .gl and .bench)
# Needs in .bench/: common.sh, ggufs.sh, make_gguf.py, smollm2_tok.json, whl/, kiln.xz,
# kiln_base.xz, llama.tar.xz, torch_minilm.py, minilm_v4096.onnx.xz, ids_*/mask_*.npy, ppocr.onnx.
source .bench/common.sh
xz -d -k -f kiln_base.xz && chmod +x kiln_base
T0=$(date +%s); t() { echo "[t=$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/log.txt; }
if [ "$PART" = llm ]; then
  mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
  source ggufs.sh; t ggufs
  for s in 135 360 1700; do
    ./kiln compile /tmp/s$s.gguf -o /tmp/k$s --context 1024 --target desktop -q > $OUT/compile-$s.txt 2>&1 &
    ./kiln_base compile /tmp/s$s.gguf -o /tmp/b$s --context 1024 --target desktop -q > $OUT/compile-base-$s.txt 2>&1 &
  done
  wait; t compiled
  for s in 1700; do
    timeout 90 ./kiln tune /tmp/s$s.gguf -o /tmp/t$s.ron --target desktop --budget 60 2>&1 | tail -12 > $OUT/tune-$s.txt
    ./kiln compile /tmp/s$s.gguf -o /tmp/tk$s --context 1024 --target desktop --tuning /tmp/t$s.ron -q >> $OUT/tune-$s.txt 2>&1
    t tuned $s
  done
  for s in 135 360 1700; do
    for b in k b tk; do
      [ -d /tmp/$b$s ] || continue
      bin=./kiln; [ $b = b ] && bin=./kiln_base
      echo "== $s $b" | tee -a $OUT/llm.txt
      timeout 60 $bin bench /tmp/$b$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | tee -a $OUT/llm.txt
    done
    LD_LIBRARY_PATH=/tmp/llama timeout 90 /tmp/llama/llama-bench -m /tmp/s$s.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128" | tee -a $OUT/llm.txt
    t size $s
  done
  for b in k b; do
    timeout 20 ./kiln generate /tmp/${b}135 --prompt "The quick brown fox" --max-tokens 24 --ids 2>/dev/null | tee -a $OUT/llm.txt
  done
  cat $OUT/compile-*.txt $OUT/tune-*.txt
fi
if [ "$PART" = ab ]; then
  xz -d -k -f kiln_defer1.xz && chmod +x kiln_defer1
  source ggufs.sh; t ggufs
  for s in 360 1700; do
    for b in kiln kiln_base kiln_defer1; do
      ./$b compile /tmp/s$s.gguf -o /tmp/$b$s --context 1024 --target desktop -q > $OUT/ab-compile-$b-$s.txt 2>&1 &
    done
  done
  wait; t compiled
  for r in 1 2; do
    for s in 360 1700; do
      for b in kiln kiln_base kiln_defer1; do
        echo "== $s $b round $r" | tee -a $OUT/ab.txt
        timeout 40 ./$b bench /tmp/$b$s --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep -v memory | tee -a $OUT/ab.txt
      done
    done
  done
  t ab
  grep -h compiled $OUT/ab-compile-*.txt
fi
if [ "$PART" = models ]; then
  xz -d -k -f -T8 minilm_v4096.onnx.xz
  MD="--dim batch_size=32 --dim sequence_length=128"
  s0=$(date +%s%N)
  timeout 150 ./kiln tune minilm_v4096.onnx -o /tmp/ml.ron --target h200 $MD 2>&1 | tail -12 > $OUT/tune-minilm.txt
  echo "kiln tune minilm 32x128 wall: $(( ($(date +%s%N) - s0) / 1000000 )) ms" | tee -a $OUT/tune-minilm.txt
  t tuned minilm
  ./kiln compile minilm_v4096.onnx -o /tmp/mt --target h200 $MD --tuning /tmp/ml.ron -q >> $OUT/tune-minilm.txt 2>&1
  for B in 32 1; do
    for b in kiln kiln_base; do
      ./$b compile minilm_v4096.onnx -o /tmp/m$B$b --target h200 --dim batch_size=$B --dim sequence_length=128 -q > /dev/null 2>&1
    done
  done
  for r in 1 2; do
    for m in mt m32kiln m32kiln_base m1kiln m1kiln_base; do
      B=32; case $m in m1*) B=1;; esac
      bin=./kiln; case $m in *base) bin=./kiln_base;; esac
      echo "== minilm $m round $r" | tee -a $OUT/models.txt
      timeout 60 $bin bench /tmp/$m --input input_ids=ids_${B}x128.npy --input attention_mask=mask_${B}x128.npy --iters 20 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/models.txt
    done
  done
  PYTHONUNBUFFERED=1 timeout 60 python3 torch_minilm.py 1x128 32x128 2>&1 | tee -a $OUT/models.txt
  t minilm
  D0=p2o.DynamicDimension; PD="--dim $D0.0=1 --dim $D0.1=640 --dim $D0.2=640"
  s0=$(date +%s%N)
  timeout 150 ./kiln tune ppocr.onnx -o /tmp/pp.ron --target h200 $PD 2>&1 | tail -12 > $OUT/tune-ppocr.txt
  echo "kiln tune ppocr wall: $(( ($(date +%s%N) - s0) / 1000000 )) ms" | tee -a $OUT/tune-ppocr.txt
  ./kiln compile ppocr.onnx -o /tmp/ptuned --target h200 $PD --tuning /tmp/pp.ron -q >> $OUT/tune-ppocr.txt 2>&1
  ./kiln compile ppocr.onnx -o /tmp/pkiln --target h200 $PD -q > /dev/null 2>&1
  ./kiln_base compile ppocr.onnx -o /tmp/pkiln_base --target h200 $PD -q > /dev/null 2>&1
  for r in 1 2; do
    for p in ptuned pkiln pkiln_base; do
      bin=./kiln; [ $p = pkiln_base ] && bin=./kiln_base
      echo "== ppocr $p round $r" | tee -a $OUT/models.txt
      timeout 60 $bin bench /tmp/$p --iters 50 -q 2>&1 | grep -v "^device\|^bundle" | tee -a $OUT/models.txt
    done
  done
  t ppocr
  cat $OUT/tune-minilm.txt $OUT/tune-ppocr.txt
fi
