# Eighteenth session, sixth command: the whole attention schedule space (per-row and
# register-tiled members, every slice count) swept at issue 7's prefill case, with the
# default and PyTorch SDPA fp32 before and after.
#   bash benches/device/run_asweep18.sh   (carry .gl and .bench)
source benches/device/prelude.sh
unpack kiln_bench
cp ../benches/torch_ref.py .
export KILN_BENCH_TARGET=h200
CASE="attention f32 1x12x512x64 opt-level 2"
PYTHONUNBUFFERED=1 timeout 30 python3 torch_ref.py --filter "attention f32 1x12x512x64" 2>&1 | grep attention | sed "s/^/torch  /"
KILN_BENCH_FILTER="$CASE" timeout 40 ./kiln_bench 2>&1 | grep "^attention" | sed "s/^/default  /"
KILN_BENCH_SWEEP=1 KILN_BENCH_FILTER="$CASE" timeout 400 ./kiln_bench 2>&1 | grep "^attention" | sed "s/^/sweep  /" | sort -t'|' -k1 > /tmp/sweep.txt
cat /tmp/sweep.txt
KILN_BENCH_FILTER="$CASE" timeout 40 ./kiln_bench 2>&1 | grep "^attention" | sed "s/^/default  /"
PYTHONUNBUFFERED=1 timeout 30 python3 torch_ref.py --filter "attention f32 1x12x512x64" 2>&1 | grep attention | sed "s/^/torch  /"
