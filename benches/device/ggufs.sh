# Sourced by the device scripts from inside the bench folder: writes random Q4_1 GGUFs (Q8_0
# embeddings) of the SmolLM2 135M / 360M / 1.7B shapes to /tmp/s135.gguf, /tmp/s360.gguf and
# /tmp/s1700.gguf with make_gguf.py (the gguf wheel from whl/, SmolLM2's tokenizer).
python3 -m pip install -q --no-deps --target /tmp/gg whl/gguf-*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/gg
python3 make_gguf.py make smollm2_tok.json /tmp/s135.gguf --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1 &
python3 make_gguf.py make smollm2_tok.json /tmp/s360.gguf --dim 960 --layers 32 --heads 15 --kv-heads 5 --ffn 2560 --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1 &
python3 make_gguf.py make smollm2_tok.json /tmp/s1700.gguf --dim 2048 --layers 24 --heads 32 --kv-heads 32 --ffn 8192 --rope-base 130000 --qtype Q4_1 --embd-qtype Q8_0 > /dev/null 2>&1 &
wait
