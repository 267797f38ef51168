#!/usr/bin/env bash
# Explores fresh random cases of the property tests (tests/gpu_proptest.rs, tests/opt_proptest.rs)
# on whatever adapter wgpu finds. scripts/test.sh (and so CI) runs them from one fixed seed so
# its verdict is reproducible; this script is where new cases are drawn. Run it before landing
# a compiler change. A failure prints a `cc ...` line: add it to the test's file in
# proptest-regressions/ with a comment, so every later run (CI included) replays that case.
#
#   ROUNDS=4 CASES=64 bash scripts/proptest_soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-4}
export PROPTEST_CASES=${CASES:-64}
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
    XDG_RUNTIME_DIR=$(mktemp -d)
    export XDG_RUNTIME_DIR
fi
for round in $(seq 1 "$rounds"); do
    seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
    echo "proptest_soak: round $round of $rounds, PROPTEST_RNG_SEED=$seed, $PROPTEST_CASES cases" >&2
    PROPTEST_RNG_SEED=$seed cargo test --release -q --test main -- gpu_proptest:: opt_proptest::
done
