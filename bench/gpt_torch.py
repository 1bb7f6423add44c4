#!/usr/bin/python3
"""The attn GPT (attn/gpt.h) in PyTorch, trained like `attn train`: the reference
side of bench/bench_gpt.sh. Same architecture (pre-LN blocks, causal MHA with a
packed q|k|v projection, GELU(tanh) MLP, tied head, optional biases), GPT-2
initialisation, AdamW (decay on matrices), global-norm clipping, warm-up then
cosine decay, nanoGPT's batch sampling and 90/10 split of a character-level text.

Threads and precision (--threads auto and --precision auto, the defaults):
PyTorch as it starts (as nanoGPT leaves it: torch.get_num_threads()), 1 and
every core, each in fp32 and under CPU autocast to bfloat16 (fp32 weights
and optimizer: what PyTorch offers for mixed precision on a CPU), are timed
on 20 training steps of a throwaway model before training, and the fastest
is used (ties to fewer threads, then fp32); the summary states the trials
and the choice.

Prints one JSON object per evaluation and a final summary line:
  {"summary": true, "ms_per_iter_median": .., "tokens_per_s": .., "val_loss": ..,
   "peak_rss_mib": .., "params": .., "threads": .., "threads_default": ..,
   "precision": .., "thread_trials_ms": {"N/fp32": .., "N/bf16": .., ..}}
"""
import os
import argparse
import contextlib
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, H, bias):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(C, elementwise_affine=True)
        self.ln_2 = nn.LayerNorm(C, elementwise_affine=True)
        if not bias:
            self.ln_1.bias = None
            self.ln_2.bias = None
        self.c_attn = nn.Linear(C, 3 * C, bias=bias)
        self.c_proj = nn.Linear(C, C, bias=bias)
        self.c_fc = nn.Linear(C, 4 * C, bias=bias)
        self.mlp_proj = nn.Linear(4 * C, C, bias=bias)

    def forward(self, x):
        B, T, C = x.shape
        H = self.H
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q = q.view(B, T, H, C // H).transpose(1, 2)
        k = k.view(B, T, H, C // H).transpose(1, 2)
        v = v.view(B, T, H, C // H).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // H))
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, V, T, L, H, C, bias):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList([Block(C, H, bias) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)
        if not bias:
            self.ln_f.bias = None
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if n.endswith("c_proj.weight") or n.endswith("mlp_proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif n.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.h:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def autocast(precision):
    """bf16: CPU autocast to bfloat16. fp32: nothing."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def time_threads(make, batch, n, precision, steps=20, warmup=5):
    """Median ms of a training step (forward, backward, AdamW) on n threads."""
    torch.set_num_threads(n)
    model = make()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(warmup + steps):
        x, y = batch()
        t0 = time.perf_counter()
        with autocast(precision):
            loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-iters", type=int, default=20, help="0: the whole split, in order")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--bias", action="store_true")
    ap.add_argument("--threads", default="auto", help="auto (the fastest of the default, 1, all) or N")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="auto (the faster, timed with the threads), fp32, or bf16 (CPU autocast)")
    a = ap.parse_args()
    default_threads = torch.get_num_threads()
    text = open(a.data, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    train, val = data[:n], data[n:]
    T, B = a.context, a.batch

    def batch(d):
        ix = torch.randint(len(d) - T, (B,))
        return torch.stack([d[i:i + T] for i in ix]), torch.stack([d[i + 1:i + 1 + T] for i in ix])

    trials = {}
    counts = sorted({default_threads, 1, os.cpu_count() or 1}) if a.threads == "auto" else [int(a.threads)]
    precisions = ["fp32", "bf16"] if a.precision == "auto" else [a.precision]
    if len(counts) * len(precisions) > 1:
        make = lambda: GPT(len(chars), T, a.layers, a.heads, a.width, a.bias)
        for n in counts:
            for p in precisions:
                trials[(n, p)] = time_threads(make, lambda: batch(train), n, p)
        threads, precision = min(trials, key=lambda k: (trials[k], k[0], k[1] != "fp32"))
    else:
        threads, precision = counts[0], precisions[0]
    torch.set_num_threads(threads)
    torch.manual_seed(a.seed)  # after the trials: the same run whatever they drew

    model = GPT(len(chars), T, a.layers, a.heads, a.width, a.bias)
    params = [p for p in model.parameters()]
    decay = [p for p in params if p.dim() >= 2]
    other = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.99), eps=1e-8)

    def lr_at(it):
        if it < a.warmup:
            return a.lr * (it + 1) / (a.warmup + 1)
        if it > a.iters:
            return a.min_lr
        r = (it - a.warmup) / (a.iters - a.warmup)
        return a.min_lr + 0.5 * (1 + math.cos(math.pi * r)) * (a.lr - a.min_lr)

    @torch.no_grad()
    def evaluate(d):
        model.eval()
        if a.eval_iters == 0:  # every non-overlapping window in order, as attn's --eval-iters 0
            w = (len(d) - 1) // T
            x, y = d[:w * T].view(w, T), d[1:w * T + 1].view(w, T)
            total = sum(model(x[i:i + B], y[i:i + B]).item() * len(x[i:i + B]) for i in range(0, w, B))
            model.train()
            return total / w
        ls = [model(*batch(d)).item() for _ in range(a.eval_iters)]
        model.train()
        return sum(ls) / len(ls)

    times, val_loss = [], float("nan")
    for it in range(a.iters):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        with autocast(precision):
            loss = model(*batch(train))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        step = it + 1
        if step % a.eval_every == 0 or step == a.iters:
            val_loss = evaluate(val)
            print(json.dumps({"step": step, "train_loss": loss.item(), "val_loss": val_loss}), flush=True)
    med = statistics.median(times)
    print(json.dumps({"summary": True, "ms_per_iter_median": 1e3 * med, "tokens_per_s": B * T / med,
                      "val_loss": val_loss, "params": sum(p.numel() for p in params),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                      "threads": torch.get_num_threads(), "threads_default": default_threads,
                      "precision": precision,
                      "thread_trials_ms": {"%d/%s" % k: round(ms, 2) for k, ms in trials.items()}}),
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
