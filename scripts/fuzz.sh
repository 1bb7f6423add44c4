#!/bin/sh
# fuzz.sh BUILD SECONDS [HARNESS...]: for each libFuzzer harness (default:
# every BUILD/tests/fuzz/fuzz_*), replay its corpus tests/fuzz/<name>/ (the
# seeds and every input that once crashed it), then fuzz for SECONDS more in
# a scratch copy of the corpus (the repository's corpus is not grown). A crash
# leaves its input in BUILD/fuzz-artifacts/ and fails the script. SECONDS = 0
# only replays.
set -eu
build=${1:?usage: fuzz.sh BUILD SECONDS [HARNESS...]}
seconds=${2:?usage: fuzz.sh BUILD SECONDS [HARNESS...]}
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -eq 0 ]; then
    set -- $(cd "$build/tests/fuzz" && ls fuzz_* | grep -v '\.' )
fi
mkdir -p "$build/fuzz-artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for h in "$@"; do
    name=${h#fuzz_}
    bin="$build/tests/fuzz/$h"
    corpus="$root/tests/fuzz/$name"
    echo "== $h: replay $(ls "$corpus" | wc -l) inputs"
    "$bin" -rss_limit_mb=2048 -timeout=10 "$corpus"/* >/dev/null 2>"$build/fuzz-artifacts/$h.log" ||
        { tail -40 "$build/fuzz-artifacts/$h.log"; exit 1; }
    [ "$seconds" -gt 0 ] || continue
    work=$(mktemp -d)
    cp "$corpus"/* "$work"/
    "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
        -artifact_prefix="$build/fuzz-artifacts/$h-" -print_final_stats=1 "$work" \
        >"$build/fuzz-artifacts/$h.log" 2>&1 ||
        { tail -40 "$build/fuzz-artifacts/$h.log"; rm -rf "$work"; exit 1; }
    grep -E 'stat::number_of_executed_units' "$build/fuzz-artifacts/$h.log" | sed "s/^/   /"
    rm -rf "$work"
done
