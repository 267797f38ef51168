#!/usr/bin/env bash
# Fuzzes Kiln's input parsers with cargo-fuzz (libFuzzer, nightly toolchain):
#   onnx_compile  ONNX bytes -> frontend -> compile
#   manifest      manifest.json (+ a WGSL source) -> parse, validate, kernel check, size exprs
#   npy           .npy bytes -> the reader `kiln run` uses
#   gguf          GGUF bytes -> the reader, its metadata getters and dequantization
# each for FUZZ_SECONDS (default 60), seeded from real files: the ONNX node-test models, the
# demo bundle's manifest and kernels, .npy files, and small GGUF files from Kiln's writer.
# Exits non-zero on any crash (panic, abort, stack overflow, out-of-memory, a run over
# FUZZ_TIMEOUT seconds, default 30); the reproducer is left in fuzz/artifacts/<target>/.
#
# The toolchain: FUZZ_TOOLCHAIN if set, else nightly where rustup has it. A machine with only
# the stable toolchain (and no way to fetch nightly) builds with stable and RUSTC_BOOTSTRAP=1,
# which lets it take the -Z flags cargo-fuzz passes for a sanitizer.
#
# The targets build in release mode (`-O`, as Kiln ships: no debug assertions, so an integer
# overflow wraps as in the CLI) and, by default, without a sanitizer (FUZZ_SANITIZER=none):
# the crates under test contain no `unsafe` code, so AddressSanitizer would only watch the
# dependencies' (naga, egg, tera), while it slows the instrumented build of all ~150 crates and
# every run (about 2x); panics, aborts, stack overflows, runs over the time limit and memory
# over -rss_limit_mb are caught without it. FUZZ_SANITIZER=address for a deeper local run.
# They link only the crates they test (kiln-compiler, kiln-abi, kiln-npy), never the GPU
# runtime. cargo-fuzz itself is installed from the local cargo cache when it is there
# (machines without network), else from crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-none}
timeout=${FUZZ_TIMEOUT:-30}
# cargo-fuzz builds release code with one codegen unit per crate by default; 16 lets the big
# crates (naga, kiln-compiler) use both cores of a CI machine (cargo-fuzz's own suggestion for
# faster builds; the runs are slightly slower).
cgu=${FUZZ_CODEGEN_UNITS:-16}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz --version 0.13.2 --offline \
        || cargo install --locked cargo-fuzz --version 0.13.2
fi
# The fuzz crate is its own workspace: start its lock file from the main one so it resolves the
# same (already downloaded) versions, offline too.
[ -f fuzz/Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock
if [ -z "${FUZZ_TOOLCHAIN:-}" ] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    FUZZ_TOOLCHAIN=nightly
fi
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    fuzz=(cargo "+$FUZZ_TOOLCHAIN" fuzz)
else
    # Only for cargo-fuzz: in the environment of the other cargo commands below it would
    # change their fingerprints and rebuild the workspace.
    fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
fi
corpus=fuzz/corpus
mkdir -p "$corpus/onnx_compile" "$corpus/manifest" "$corpus/npy" "$corpus/gguf"

# Seeds.
cargo build --release -q
for m in $(find tests/onnx-node -name model.onnx 2>/dev/null | sort | head -400); do
    cp "$m" "$corpus/onnx_compile/$(basename "$(dirname "$m")").onnx"
done
seed=$(mktemp -d)
trap 'rm -rf "$seed"' EXIT
target/release/kiln demo --out "$seed/demo.kiln" >/dev/null
for k in "$seed"/demo.kiln/kernels/*.wgsl; do
    { cat "$seed/demo.kiln/manifest.json"; printf '\0'; cat "$k"; } > "$corpus/manifest/demo-$(basename "$k").seed"
done
py=python3
[ -x .venv/bin/python3 ] && py=.venv/bin/python3
"$py" - "$corpus/npy" <<'PY' || echo "fuzz: numpy not available, .npy corpus starts empty" >&2
import sys, numpy as np
out = sys.argv[1]
for i, (dt, shape) in enumerate([("<f4", (2, 3)), ("<f2", (4,)), ("<i8", (1, 5)), ("<i4", ()), ("|b1", (3,)), ("|u1", (2, 2))]):
    np.save(f"{out}/seed{i}.npy", np.arange(int(np.prod(shape)) if shape else 1).reshape(shape).astype(dt))
PY
# --workspace, not -p kiln-compiler: the same features as scripts/test.sh's build, so nothing
# is compiled again after it.
KILN_GGUF_SEEDS="$PWD/$corpus/gguf" cargo test --release -q --workspace --lib gguf_fuzz_seeds >/dev/null

build_start=$(date +%s)
"${fuzz[@]}" build -O --sanitizer "$sanitizer" --codegen-units "$cgu"
echo "fuzz: build took $(($(date +%s) - build_start)) s" >&2
# Each libFuzzer run is one process on one core: two at a time use both cores of a CI machine
# and halve the wall time of the runs, each target still getting its full FUZZ_SECONDS.
logs=$(mktemp -d)
trap 'rm -rf "$seed" "$logs"' EXIT
fuzz_one() {
    "${fuzz[@]}" run -O --sanitizer "$sanitizer" --codegen-units "$cgu" "$1" "$corpus/$1" -- \
        -max_total_time="$secs" -timeout="$timeout" -rss_limit_mb=4096 -max_len=262144 -print_final_stats=1 \
        >"$logs/$1.log" 2>&1
}
failed=()
for pair in "onnx_compile manifest" "npy gguf"; do
    pids=()
    for t in $pair; do
        echo "fuzz: $t for ${secs}s" >&2
        fuzz_one "$t" &
        pids+=("$t:$!")
    done
    for entry in "${pids[@]}"; do
        t=${entry%%:*}
        if ! wait "${entry#*:}"; then
            failed+=("$t")
        fi
        # The run's own summary (and any crash report with its reproducer path).
        grep -E '^(stat::|Done |==|SUMMARY|artifact_prefix|Test unit written|.*(panicked|ERROR|crash|timeout|leak))' \
            "$logs/$t.log" | sed "s/^/fuzz[$t]: /" >&2 || true
    done
done
if [ ${#failed[@]} -gt 0 ]; then
    for t in "${failed[@]}"; do
        echo "fuzz: $t FAILED; its full log:" >&2
        cat "$logs/$t.log" >&2
    done
    exit 1
fi
echo "fuzz: all targets ran ${secs}s without a crash" >&2
