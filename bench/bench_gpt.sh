#!/bin/sh
# bench_gpt.sh - nanoGPT's baby GPT on tiny Shakespeare, attn against PyTorch in one run.
#
#   bench/bench_gpt.sh [ITERS]      (default 2000; fewer for a quick look)
#
# Both train the same model (4 layers, 4 heads, width 128, context 64, no
# biases, 804,096 parameters with the 65-character vocabulary), batch 12, lr
# 1e-3 with 100 warm-up steps and cosine decay to 1e-4 at ITERS, AdamW (0.9,
# 0.99, weight decay 0.1), clipping at 1.0, on the first 90% of the text, and
# evaluate once at the end on the whole last 10% (every non-overlapping window
# of 64 characters: no sampling noise; nanoGPT samples 20 random batches,
# whose mean moves by a few hundredths from draw to draw; EVAL_ITERS=20 for that).
# Prints ms/iter (median), tokens/s, peak resident memory (/usr/bin/time), the
# final validation loss, attn's model FLOP utilisation against the 2-core fp32
# peak of docs/benchmarks.md (234 GFLOP/s; override with PEAK_GFLOPS), and
# generation speed with and without the KV cache.
set -eu
ITERS=${1:-2000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
ATTN=${ATTN:-$ROOT/build/attn}
DATA=${DATA:-$ROOT/../shared/data/tinyshakespeare.txt}
PEAK=${PEAK_GFLOPS:-234}
OUT=$(mktemp -d /tmp/bench-gpt-XXXXXX)
EVAL_ITERS=${EVAL_ITERS:-0}
if [ "$EVAL_ITERS" -eq 0 ]; then EVAL=$ITERS; else EVAL=$(( ITERS < 250 ? ITERS : 250 )); fi
echo "bench_gpt: $ITERS iterations, $(nproc) cores, OMP_NUM_THREADS=${OMP_NUM_THREADS:-default}, output in $OUT"

/usr/bin/time -f '%M' -o "$OUT/attn.rss" "$ATTN" train --data "$DATA" --iters "$ITERS" \
    --eval-every "$EVAL" --eval-iters "$EVAL_ITERS" --out "$OUT/ckpt" --json-log "$OUT/attn.jsonl" > "$OUT/attn.out"
/usr/bin/time -f '%M' -o "$OUT/torch.rss" /usr/bin/python3 "$HERE/gpt_torch.py" --data "$DATA" \
    --iters "$ITERS" --eval-every "$EVAL" --eval-iters "$EVAL_ITERS" > "$OUT/torch.jsonl"
"$ATTN" generate --model "$OUT/ckpt" --tokens 256 --temperature 0 --stats > /dev/null 2> "$OUT/gen_cache"
"$ATTN" generate --model "$OUT/ckpt" --tokens 256 --temperature 0 --stats --no-cache > /dev/null 2> "$OUT/gen_nocache"

/usr/bin/python3 - "$OUT" "$PEAK" <<'PY'
import json, statistics, sys, re
out, peak = sys.argv[1], float(sys.argv[2])
a = [json.loads(l) for l in open(out + "/attn.jsonl")]
t = [json.loads(l) for l in open(out + "/torch.jsonl")]
ts = [x for x in t if x.get("summary")][0]
a_ms = statistics.median(x["ms_per_iter"] for x in a)
a_val = [x["val_loss"] for x in a if "val_loss" in x][-1]
a_rss = int(open(out + "/attn.rss").read().split()[-1]) / 1024
t_rss = int(open(out + "/torch.rss").read().split()[-1]) / 1024
tok = 12 * 64
N, L, C, T = 804096, 4, 128, 64
flops = (6 * N + 12 * L * C * T) * tok          # nanoGPT's estimate per iteration
mfu = flops / (a_ms / 1e3) / (peak * 1e9)
rate = lambda f: float(re.search(r"\(([0-9.]+) tokens/s", open(out + "/" + f).read()).group(1))
gc, gn = rate("gen_cache"), rate("gen_nocache")
print("%-22s %12s %12s %8s" % ("", "attn", "PyTorch", "ratio"))
print("%-22s %12.1f %12.1f %8.2f" % ("ms/iter (median)", a_ms, ts["ms_per_iter_median"], ts["ms_per_iter_median"] / a_ms))
print("%-22s %12.0f %12.0f %8.2f" % ("tokens/s", tok / a_ms * 1e3, ts["tokens_per_s"], tok / a_ms * 1e3 / ts["tokens_per_s"]))
print("%-22s %12.0f %12.0f %8.2f" % ("peak RSS (MiB)", a_rss, t_rss, a_rss / t_rss))
print("%-22s %12.4f %12.4f" % ("final val loss", a_val, ts["val_loss"]))
print("attn model FLOP utilisation: %.1f%% of %g GFLOP/s (%.2f GFLOP/iter)" % (100 * mfu, peak, flops / 1e9))
print("generation, 256 tokens: %.1f tokens/s with KV cache, %.1f without: %.1fx" % (gc, gn, gc / gn))
PY
