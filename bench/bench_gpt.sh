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
# final validation loss, attn's model FLOP utilisation against the fp32 peak
# measured by `attn bench attention` just before attn trains (the median of 5
# runs of 1 s on the same threads; PEAK_GFLOPS=X uses X instead; with
# ATTN_ARGS="--precision bf16" also against the bf16 peak measured there), and
# generation speed with and without the KV cache.
#
# PyTorch runs at its fastest thread count and precision here (gpt_torch.py
# --threads auto --precision auto times the default, 1 and all cores, each in
# fp32 and under CPU autocast to bfloat16, and says which it took).
# ATTN_ARGS adds options to attn train (e.g. ATTN_ARGS="--precision bf16").
#
# NANOGPT_DIR=/path/to/nanoGPT (a checkout of karpathy/nanoGPT; nothing of it
# is copied into this repository) also runs nanoGPT's own train.py with its
# baby-config command for CPUs (config/train_shakespeare_char.py, device=cpu,
# compile=False, block_size 64, batch 12, 4 layers, 4 heads, width 128,
# ITERS iterations, dropout 0), in a temporary folder whose data/ this script
# prepares from the same text (bench/nanogpt_data.py), and scores its final
# checkpoint on the whole validation split (bench/nanogpt_eval.py): nanoGPT's
# ms/iter is the median of its own per-iteration log.
#
# SEED=S (default 1337, nanoGPT's own) seeds all three runs: attn and the
# PyTorch script by --seed, nanoGPT's train.py through bench/nanogpt_seed.py
# (train.py has a fixed seed and no option for it).
#
# The whole run takes minutes; PARTS="peak attn" (of: peak attn torch nanogpt
# report, all by default) runs some of them into OUT_DIR=DIR (default a new
# temporary folder), so that the parts can run one at a time (e.g. each alone
# on a shared machine) and a last PARTS=report prints the table from DIR.
set -eu
ITERS=${1:-2000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
ATTN=${ATTN:-$ROOT/build/attn}
DATA=${DATA:-$ROOT/../shared/data/tinyshakespeare.txt}
PEAK=${PEAK_GFLOPS:-}
OUT=${OUT_DIR:-$(mktemp -d /tmp/bench-gpt-XXXXXX)}
PARTS=" ${PARTS:-peak attn torch nanogpt report} "
part() { case "$PARTS" in *" $1 "*) return 0 ;; esac; return 1; }
mkdir -p "$OUT"
EVAL_ITERS=${EVAL_ITERS:-0}
SEED=${SEED:-1337}
ATTN_ARGS=${ATTN_ARGS:-}
if [ "$EVAL_ITERS" -eq 0 ]; then EVAL=$ITERS; else EVAL=$(( ITERS < 250 ? ITERS : 250 )); fi
echo "bench_gpt: $ITERS iterations, seed $SEED, $(nproc) cores, OMP_NUM_THREADS=${OMP_NUM_THREADS:-default}, output in $OUT"
if [ -z "$PEAK" ] && [ -f "$OUT/peak.json" ] && ! part peak; then
    PEAK=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["peak_fp32"]["median"])' "$OUT/peak.json")
fi
if [ -z "$PEAK" ] && part peak; then
    "$ATTN" bench attention --json --n 128 --heads 1 --no-ref --pass fwd --causal no \
        --peak-seconds 1 --peak-runs 5 > "$OUT/peak.json"
    PEAK=$(/usr/bin/python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["peak_fp32"]; print(p["median"]); print("fp32 peak (GFLOP/s): min %.1f median %.1f max %.1f" % (p["min"], p["median"], p["max"]), file=sys.stderr)' "$OUT/peak.json")
fi

if part attn; then
    rm -rf "$OUT/ckpt" "$OUT/attn.jsonl"
    # shellcheck disable=SC2086
    /usr/bin/time -f '%M' -o "$OUT/attn.rss" "$ATTN" train --data "$DATA" --iters "$ITERS" \
        --eval-every "$EVAL" --eval-iters "$EVAL_ITERS" --seed "$SEED" --out "$OUT/ckpt" --json-log "$OUT/attn.jsonl" $ATTN_ARGS > "$OUT/attn.out"
    "$ATTN" generate --model "$OUT/ckpt" --tokens 256 --temperature 0 --stats > /dev/null 2> "$OUT/gen_cache"
    "$ATTN" generate --model "$OUT/ckpt" --tokens 256 --temperature 0 --stats --no-cache > /dev/null 2> "$OUT/gen_nocache"
fi
if part torch; then
    /usr/bin/time -f '%M' -o "$OUT/torch.rss" /usr/bin/python3 "$HERE/gpt_torch.py" --data "$DATA" \
        --iters "$ITERS" --eval-every "$EVAL" --eval-iters "$EVAL_ITERS" --seed "$SEED" > "$OUT/torch.jsonl"
fi
if [ -n "${NANOGPT_DIR:-}" ] && part nanogpt; then
    rm -rf "$OUT/nanogpt"
    NG=$OUT/nanogpt
    mkdir -p "$NG"
    for f in train.py model.py configurator.py config; do ln -s "$NANOGPT_DIR/$f" "$NG/$f"; done
    /usr/bin/python3 "$HERE/nanogpt_data.py" "$DATA" "$NG/data/shakespeare_char"
    (cd "$NG" && /usr/bin/time -f '%M' -o "$OUT/nanogpt.rss" /usr/bin/python3 "$HERE/nanogpt_seed.py" "$SEED" train.py \
        config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20 \
        --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 \
        --max_iters="$ITERS" --lr_decay_iters="$ITERS" --dropout=0.0 --eval_interval="$ITERS" \
        --always_save_checkpoint=True --out_dir="$NG/out" > "$OUT/nanogpt.out" 2>&1)
    /usr/bin/python3 "$HERE/nanogpt_eval.py" "$NANOGPT_DIR" "$NG/out/ckpt.pt" \
        "$NG/data/shakespeare_char/val.bin" > "$OUT/nanogpt_val.json"
fi
part report || exit 0
/usr/bin/python3 - "$OUT" "${PEAK:-0}" "$ATTN_ARGS" <<'PY'
import json, statistics, sys, re
out, peak, attn_args = sys.argv[1], float(sys.argv[2]), sys.argv[3]
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
mfu = flops / (a_ms / 1e3) / (peak * 1e9) if peak > 0 else float("nan")
rate = lambda f: float(re.search(r"\(([0-9.]+) tokens/s", open(out + "/" + f).read()).group(1))
gc, gn = rate("gen_cache"), rate("gen_nocache")
import os
ng = os.path.exists(out + "/nanogpt_val.json")
cols = [("attn", a_ms, a_rss, a_val), ("PyTorch", ts["ms_per_iter_median"], t_rss, ts["val_loss"])]
if ng:
    its = [float(m.group(1)) for m in re.finditer(r"^iter \d+: loss [0-9.]+, time ([0-9.]+)ms", open(out + "/nanogpt.out").read(), re.M)]
    n_rss = int(open(out + "/nanogpt.rss").read().split()[-1]) / 1024
    cols.append(("nanoGPT", statistics.median(its[1:]), n_rss, json.loads(open(out + "/nanogpt_val.json").read())["val_loss"]))
print("PyTorch threads: %d, %s (default %d threads; step ms by threads/precision: %s)" % (
    ts["threads"], ts.get("precision", "fp32"), ts["threads_default"], ts["thread_trials_ms"]))
print("%-22s" % "" + "".join("%12s" % c[0] for c in cols) + "".join("%16s" % ("attn/" + c[0]) for c in cols[1:]))
print("%-22s" % "ms/iter (median)" + "".join("%12.1f" % c[1] for c in cols) + "".join("%16.2f" % (c[1] / a_ms) for c in cols[1:]))
print("%-22s" % "tokens/s" + "".join("%12.0f" % (tok / c[1] * 1e3) for c in cols) + "".join("%16.2f" % (c[1] / a_ms) for c in cols[1:]))
print("%-22s" % "peak RSS (MiB)" + "".join("%12.0f" % c[2] for c in cols) + "".join("%16.2f" % (a_rss / c[2]) for c in cols[1:]))
print("%-22s" % "val loss (whole split)" + "".join("%12.4f" % c[3] for c in cols))
print("attn model FLOP utilisation: %.1f%% of the fp32 FMA peak, %g GFLOP/s (%.2f GFLOP/iter)" % (100 * mfu, peak, flops / 1e9))
# with --precision bf16 the GEMMs run on bf16 dot products: their peak too
if re.search(r"--precision[= ]bf16", attn_args) and os.path.exists(out + "/peak.json"):
    pb = (json.load(open(out + "/peak.json")).get("peak_bf16") or {}).get("median", 0)
    if pb > 0:
        print("  (attn ran --precision bf16: %.1f%% of the bf16 dot-product peak, %g GFLOP/s)" % (
            100 * flops / (a_ms / 1e3) / (pb * 1e9), pb))
print("generation, 256 tokens: %.1f tokens/s with KV cache, %.1f without: %.1fx" % (gc, gn, gc / gn))
PY
