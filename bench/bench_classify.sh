#!/bin/sh
# bench_classify.sh - the WordNet supersense classifier, attn against PyTorch in one run.
#
#   bench/bench_classify.sh [EPOCHS]      (default 4, early stopping with patience 2)
#
# Builds the data set with `attn data wordnet` (needs wordnet-base), then
# trains the same encoder (2 layers, 4 heads, width 128, mean pooling, batch
# 64, dropout 0.1 after the embeddings and on the attention and MLP outputs;
# the token embedding row-sparse (lazy Adam: attn's sparse rows, PyTorch's
# SparseAdam), AdamW for the rest with weight decay 0.01 on matrices; lr 1e-3
# with 100 warm-up steps and cosine decay to 1e-4 over the planned epochs,
# clipping at 1.0, label smoothing 0.1) with attn and with PyTorch (bench/classify_torch.py,
# Debian python3-torch), evaluating on validation after every epoch and
# keeping the best. Prints, for both: training seconds (evaluations
# excluded), seconds to the best epoch, the best epoch, and test accuracy /
# macro-F1 and the F1 of noun.animal and noun.artifact at it; and attn's
# baselines (majority class, bag-of-words logistic regression) on the same
# test split. Each side runs once per thread count in THREADS (default "1
# NPROC": one thread and every core) and precision in PRECISIONS (default
# "fp32 bf16": attn's --precision bf16, PyTorch's CPU autocast to bfloat16,
# which is 1.4-2.6x faster than its fp32 here) and is compared at its
# fastest (least training time to its best epoch); the times of every run are
# printed too. Extra options for both trainers go in ARGS (e.g.
# ARGS="--pooling cls").
set -eu
EPOCHS=${1:-4}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
ATTN=${ATTN:-$ROOT/build/attn}
ARGS=${ARGS:-}
THREADS=${THREADS:-1 $(nproc)}
PRECISIONS=${PRECISIONS:-fp32 bf16}
OUT=$(mktemp -d /tmp/bench-classify-XXXXXX)
echo "bench_classify: $EPOCHS epochs, $(nproc) cores, threads $THREADS and precisions $PRECISIONS for each side, output in $OUT"
"$ATTN" data wordnet --out "$OUT/data" > /dev/null

RUNS=""
for p in $PRECISIONS; do
    for n in $THREADS; do
        # shellcheck disable=SC2086
        OMP_NUM_THREADS=$n "$ATTN" train --task classify --data "$OUT/data" --out "$OUT/ckpt_${n}_$p" \
            --epochs "$EPOCHS" --patience 2 --precision "$p" --json-log "$OUT/attn_${n}_$p.jsonl" $ARGS \
            > "$OUT/attn_${n}_$p.out"
        # shellcheck disable=SC2086
        /usr/bin/python3 "$HERE/classify_torch.py" --data "$OUT/data" --epochs "$EPOCHS" --patience 2 \
            --threads "$n" --precision "$p" $ARGS > "$OUT/torch_${n}_$p.jsonl"
        RUNS="$RUNS ${n}_$p"
    done
done

# shellcheck disable=SC2086
/usr/bin/python3 - "$OUT" $RUNS <<'PY'
import json, sys
out, counts = sys.argv[1], sys.argv[2:]

def attn_run(n):
    a = [json.loads(l) for l in open("%s/attn_%s.jsonl" % (out, n))]
    steps = [x for x in a if "step" in x]
    test = [x for x in a if "test" in x][-1]["test"]
    best_step = test["encoder"]["best_step"]
    to_best = sum(x["ms_per_iter"] for x in steps if x["step"] <= best_step) / 1e3
    return dict(steps=steps, test=test, best_step=best_step, to_best=to_best,
                train_s=sum(x["ms_per_iter"] for x in steps) / 1e3)

def torch_run(n):
    return [x for x in (json.loads(l) for l in open("%s/torch_%s.jsonl" % (out, n))) if x.get("summary")][0]

runs_a = {n: attn_run(n) for n in counts}
runs_t = {n: torch_run(n) for n in counts}
na = min(counts, key=lambda n: runs_a[n]["to_best"])
nt = min(counts, key=lambda n: runs_t[n]["train_s_to_best"])
print("seconds to the best epoch (test accuracy) by threads_precision:")
for n in counts:
    print("  %-10s attn %7.1f (%.4f)   PyTorch %7.1f (%.4f)" % (
        n, runs_a[n]["to_best"], runs_a[n]["test"]["encoder"]["accuracy"],
        runs_t[n]["train_s_to_best"], runs_t[n]["test_accuracy"]))
ra, ts = runs_a[na], runs_t[nt]
steps, test, best_step, to_best, train_s = ra["steps"], ra["test"], ra["best_step"], ra["to_best"], ra["train_s"]
evals = [x for x in steps if "val_accuracy" in x]
best_epoch = [x["epoch"] for x in evals if x["step"] == best_step][0]
print("%-34s %10s %10s" % ("", "attn", "PyTorch"))
print("%-34s %10s %10s" % ("threads_precision (each's fastest)", na, nt))
print("%-34s %10.1f %10.1f" % ("training seconds (all epochs run)", train_s, ts["train_s"]))
print("%-34s %10.1f %10.1f" % ("training seconds to the best epoch", to_best, ts["train_s_to_best"]))
print("%-34s %10d %10d" % ("best epoch (validation accuracy)", best_epoch, ts["best_epoch"]))
print("%-34s %10.4f %10.4f" % ("test accuracy", test["encoder"]["accuracy"], ts["test_accuracy"]))
print("%-34s %10.4f %10.4f" % ("test macro-F1", test["encoder"]["macro_f1"], ts["test_macro_f1"]))
for name in ("noun.animal", "noun.artifact"):
    print("%-34s %10.4f %10.4f" % ("test F1 of " + name, test["f1"][test["labels"].index(name)],
                                    ts["test_f1"][ts["labels"].index(name)]))
print("baselines (attn, same split): majority %.4f / %.4f, bag-of-words logistic regression %.4f / %.4f"
      % (test["majority"]["accuracy"], test["majority"]["macro_f1"],
         test["bag_of_words"]["accuracy"], test["bag_of_words"]["macro_f1"]))
print("attn's time to its best epoch is %.2f of PyTorch's" % (to_best / ts["train_s_to_best"]))
PY
