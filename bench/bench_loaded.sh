#!/bin/sh
# bench_loaded.sh - `attn train` on a machine where another process is busy.
#
#   bench/bench_loaded.sh [ITERS]      (default 150)
#
# Runs the baby GPT for ITERS steps with no competitor, with one busy loop
# at normal priority and with one at nice 19, each time as the user would
# run it (no settings), on one thread (OMP_NUM_THREADS=1) and with the
# OpenMP waiting set by hand (OMP_WAIT_POLICY=active / passive, a short
# spin GOMP_SPINCOUNT=10000), and prints the median ms per step of each and
# the threads it ran on (from attn train's first line). The competitor is a
# shell loop started here and killed by its process id. ATTN_NO_REEXEC=1
# turns off the CLI's own choice (tools/omp_env.c) to show what it avoids.
set -eu
ITERS=${1:-150}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
ATTN=${ATTN:-$ROOT/build/attn}
DATA=${DATA:-$ROOT/../shared/data/tinyshakespeare.txt}
OUT=$(mktemp -d /tmp/bench-loaded-XXXXXX)

run() { # label, env assignments...
    label=$1; shift
    rm -rf "$OUT/ckpt"
    env "$@" "$ATTN" train --data "$DATA" --iters "$ITERS" --eval-every "$ITERS" --eval-iters 1 \
        --out "$OUT/ckpt" --json-log "$OUT/log.jsonl" > "$OUT/stdout"
    threads=$(head -n 1 "$OUT/stdout" | sed -n 's/.*, \([0-9]*\) threads*$/\1/p')
    ms=$(/usr/bin/python3 -c 'import json,statistics,sys; print("%.1f" % statistics.median(json.loads(l)["ms_per_iter"] for l in open(sys.argv[1]) if "ms_per_iter" in l))' "$OUT/log.jsonl")
    rm -f "$OUT/log.jsonl"
    printf '%-14s %-34s %8s %8s\n' "$COMP" "$label" "$ms" "$threads"
}

matrix() {
    run "as the user runs it"
    run "ATTN_NO_REEXEC=1 (libgomp default)" ATTN_NO_REEXEC=1
    run "OMP_NUM_THREADS=1" OMP_NUM_THREADS=1
    run "OMP_WAIT_POLICY=active" OMP_WAIT_POLICY=active
    run "OMP_WAIT_POLICY=passive" OMP_WAIT_POLICY=passive
    run "GOMP_SPINCOUNT=10000" GOMP_SPINCOUNT=10000
}

printf '%-14s %-34s %8s %8s\n' "competitor" "attn train" "ms/step" "threads"
COMP=none; matrix
for pri in 0 19; do
    nice -n "$pri" sh -c 'while :; do :; done' &
    pid=$!
    COMP="busy, nice $pri"; matrix
    kill "$pid"
    wait "$pid" 2>/dev/null || true
done
rm -rf "$OUT"
