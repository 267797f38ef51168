# PP-OCRv4 det: this build vs the session start's (two rounds, profiles by kernel kind), and the 135M decode beside llama.cpp.
source .bench/common.sh
xz -d -k -f kiln_base.xz && chmod +x kiln_base
D0=p2o.DynamicDimension
for b in kiln kiln_base; do ./$b compile ppocr.onnx -o /tmp/p$b --target h200 --dim $D0.0=1 --dim $D0.1=640 --dim $D0.2=640 -q > /dev/null 2>&1; done
for r in 1 2; do for b in kiln kiln_base; do echo "== ppocr $b round $r"; timeout 60 ./$b bench /tmp/p$b --iters 100 -q 2>&1 | grep "program"; done; done
for b in kiln kiln_base; do echo "== profile $b"; timeout 60 ./$b bench /tmp/p$b --profile -q 2>&1 | grep -B2 -A10 "by kernel kind" | head -14; done
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl 2>&1 | tail -1
PYTHONPATH=/tmp/gg python3 make_gguf.py make smollm2_tok.json /tmp/s135.gguf --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1
for b in kiln kiln_base; do ./$b compile /tmp/s135.gguf -o /tmp/k$b --context 1024 --target desktop -q > /dev/null 2>&1; echo "== 135 $b"; timeout 30 ./$b bench /tmp/k$b --prompt-tokens 512 --gen-tokens 128 --iters 3 -q 2>&1 | grep decode; done
mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
LD_LIBRARY_PATH=/tmp/llama timeout 60 /tmp/llama/llama-bench -m /tmp/s135.gguf -ngl 99 -r 3 -p 512 -n 128 2>&1 | grep "pp512\|tg128"
