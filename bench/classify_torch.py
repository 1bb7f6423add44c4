#!/usr/bin/env python3
"""classify_torch.py - the encoder classifier of `attn train --task classify`
in PyTorch, for bench/bench_classify.sh: the same tokenizer (lower-cased ASCII
letter/digit runs, bytes >= 0x80 inside words, words seen at least twice in
train), the same model (token + position embeddings, pre-LN blocks of
nn.MultiheadAttention with a key padding mask and a GELU(tanh) MLP, final
LayerNorm, mean or [CLS] pooling, a linear head; dropout after the
embeddings and on each block's attention and MLP outputs), the same training
(the token embedding row-sparse with torch.optim.SparseAdam, lazy and without
weight decay as attn's; AdamW with weight decay on the other matrices; label
smoothing 0.1; linear warm-up then cosine decay, global norm clipping, length-bucketed batches, one
evaluation per epoch, early stopping on validation accuracy) and the same
metrics. Prints one JSON line per epoch and a summary line."""
import argparse, collections, contextlib, json, math, random, re, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F

WORD = re.compile(rb"[A-Za-z0-9\x80-\xff]+")


def read(path):
    rows = []
    for line in open(path, "rb"):
        label, _, text = line.rstrip(b"\r\n").partition(b"\t")
        rows.append((label.decode(), text))
    return rows


def words(text):
    return [w.lower() for w in WORD.findall(text)]


class Encoder(nn.Module):
    def __init__(self, V, T, L, H, C, K, pooling, dropout):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C, sparse=True), nn.Embedding(T, C)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList()
        for _ in range(L):
            b = nn.Module()
            b.ln_1, b.attn, b.ln_2 = nn.LayerNorm(C), nn.MultiheadAttention(C, H, batch_first=True), nn.LayerNorm(C)
            b.c_fc, b.c_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
            self.blocks.append(b)
        self.ln_f, self.head, self.pooling = nn.LayerNorm(C), nn.Linear(C, K), pooling
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if n.endswith("out_proj.weight") or n.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif n.endswith("bias") or "in_proj_bias" in n:
                nn.init.zeros_(p)

    def forward(self, ids, pad):
        T = ids.shape[1]
        x = self.drop(self.wte(ids) + self.wpe(torch.arange(T)))
        for b in self.blocks:
            h = b.ln_1(x)
            x = x + self.drop(b.attn(h, h, h, key_padding_mask=pad, need_weights=False)[0])
            x = x + self.drop(b.c_proj(F.gelu(b.c_fc(b.ln_2(x)), approximate="tanh")))
        h = self.ln_f(x)
        if self.pooling == "cls":
            p = h[:, 0]
        else:
            keep = (~pad).unsqueeze(-1).float()
            p = (h * keep).sum(1) / keep.sum(1)
        return self.head(p)


def batches(data, order, B):
    for s in range(0, len(order), B):
        idx = order[s:s + B]
        T = max(len(data[i][0]) for i in idx)
        ids = torch.zeros(len(idx), T, dtype=torch.long)
        pad = torch.ones(len(idx), T, dtype=torch.bool)
        for r, i in enumerate(idx):
            ids[r, :len(data[i][0])] = torch.tensor(data[i][0])
            pad[r, :len(data[i][0])] = False
        yield ids, pad, torch.tensor([data[i][1] for i in idx])


def autocast(precision):
    """bf16: CPU autocast to bfloat16 (fp32 weights, gradients and optimizer). fp32: nothing."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluate(model, data, B, K):
    """In fp32 whatever the training's precision (not timed; autocast breaks
    nn.MultiheadAttention's inference fast path in 1.13)."""
    model.eval()
    order = sorted(range(len(data)), key=lambda i: -len(data[i][0]))
    pred, gold, loss = [0] * len(data), [d[1] for d in data], 0.0
    with torch.no_grad():
        at = 0
        for ids, pad, y in batches(data, order, B):
            z = model(ids, pad)
            loss += F.cross_entropy(z, y, reduction="sum").item()
            for r, p in enumerate(z.argmax(1).tolist()):
                pred[order[at + r]] = p
            at += len(y)
    model.train()
    tp, fp, fn = [0] * K, [0] * K, [0] * K
    for p, g in zip(pred, gold):
        if p == g: tp[g] += 1
        else: fp[p] += 1; fn[g] += 1
    per_class = [2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else 0.0 for c in range(K)]
    f1 = [per_class[c] for c in range(K) if tp[c] + fp[c] + fn[c]]
    return sum(tp) / len(data), sum(f1) / len(f1), loss / len(data), per_class


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--layers", type=int, default=2); ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--width", type=int, default=128); ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--pooling", default="mean"); ap.add_argument("--min-count", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=4); ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64); ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4); ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.01); ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--dropout", type=float, default=0.1); ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1337); ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="bf16: the forward under CPU autocast to bfloat16 (fp32 weights and optimizer)")
    a = ap.parse_args()
    torch.manual_seed(a.seed); random.seed(a.seed)
    if a.threads: torch.set_num_threads(a.threads)
    split = {n: read(f"{a.data}/{n}.tsv") for n in ("train", "valid", "test")}
    labels = sorted({l for l, _ in split["train"]})
    count = collections.Counter(w for _, t in split["train"] for w in words(t))
    vocab = ["[PAD]", "[CLS]", "[UNK]"] + [w for w, c in sorted(count.items(), key=lambda x: (-x[1], x[0])) if c >= a.min_count]
    index = {w: i for i, w in enumerate(vocab)}
    lab = {l: i for i, l in enumerate(labels)}
    data = {n: [([1] + [index.get(w, 2) for w in words(t)][:a.context - 1], lab[l]) for l, t in rows]
            for n, rows in split.items()}
    K, B = len(labels), a.batch
    model = Encoder(len(vocab), a.context, a.layers, a.heads, a.width, K, a.pooling, a.dropout)
    decay = [p for p in model.parameters() if p.dim() == 2 and p is not model.wte.weight]
    rest = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    sparse = torch.optim.SparseAdam([model.wte.weight], lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    steps = (len(data["train"]) + B - 1) // B
    iters = steps * a.epochs

    def lr_at(it):
        if it < a.warmup: return a.lr * (it + 1) / (a.warmup + 1)
        r = (it - a.warmup) / max(1, iters - a.warmup)
        return a.min_lr + 0.5 * (1 + math.cos(math.pi * min(r, 1.0))) * (a.lr - a.min_lr)

    best, bad, step, train_s, best_state, best_s = None, 0, 0, 0.0, None, 0.0
    tr = data["train"]
    for ep in range(a.epochs):
        order = list(range(len(tr))); random.shuffle(order)
        chunk = 32 * B
        order = [i for s in range(0, len(order), chunk) for i in sorted(order[s:s + chunk], key=lambda i: -len(tr[i][0]))]
        groups = [order[s:s + B] for s in range(0, len(order), B)]
        random.shuffle(groups)
        t0 = time.perf_counter()
        for g in groups:
            ids, pad, y = next(batches(tr, g, B))
            for q in opt.param_groups + sparse.param_groups: q["lr"] = lr_at(step)
            with autocast(a.precision):
                loss = F.cross_entropy(model(ids, pad), y, label_smoothing=a.label_smoothing)
            opt.zero_grad(set_to_none=True)
            sparse.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
            opt.step()
            sparse.step()
            step += 1
        train_s += time.perf_counter() - t0
        acc, f1, vl, _ = evaluate(model, data["valid"], 256, K)
        improved = best is None or acc > best[0]
        print(json.dumps({"epoch": ep + 1, "step": step, "train_s": round(train_s, 2), "val_loss": vl,
                          "val_accuracy": acc, "val_macro_f1": f1, "best": improved}), flush=True)
        if improved:
            best, bad, best_s = (acc, f1, ep + 1), 0, train_s
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if a.patience and bad >= a.patience: break
    model.load_state_dict(best_state)
    acc, f1, _, per_class = evaluate(model, data["test"], 256, K)
    print(json.dumps({"summary": True, "best_epoch": best[2], "train_s": round(train_s, 2),
                      "train_s_to_best": round(best_s, 2), "test_accuracy": acc, "test_macro_f1": f1,
                      "labels": labels, "test_f1": per_class,
                      "vocab": len(vocab), "threads": torch.get_num_threads(),
                      "precision": a.precision}), flush=True)


if __name__ == "__main__":
    main()
