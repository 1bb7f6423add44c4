#!/usr/bin/python3
"""Generate / check the PyTorch reference fixtures for the GPT (attn/gpt.h).

Usage (Debian's /usr/bin/python3 with python3-torch):
    gen_gpt_fixtures.py --out DIR     write every case as DIR/<name>.safetensors
    gen_gpt_fixtures.py --check DIR   regenerate into a temp dir and compare with
                                      DIR (same files, tensors, metadata; max abs
                                      diff <= 1e-6); exit 1 naming the mismatch

The reference is the same GPT-2 style model written here in PyTorch, in float64:
token + position embeddings, pre-LayerNorm blocks of causal multi-head attention
(packed in_proj_weight of q|k|v rows, out_proj, as nn.MultiheadAttention) and a
GELU(tanh) MLP, final LayerNorm, LM head tied to wte. Weights: GPT-2
initialisation from torch.manual_seed(<case seed>) (N(0, 0.02); attn.out_proj and
mlp.c_proj N(0, 0.02/sqrt(2 layers)); biases random here, so that they are
tested), rounded to float32 so that the float64 computation sees the stored
values. Per case the file holds:
  <parameter name>   the initial weights, names as in attn/gpt.h
  x, y               (B, T) token ids and targets (as F32)
  logits             (B, T, V) of x;  loss (1) = mean cross-entropy against y
  grad.<name>        d loss / d parameter
  steps_x, steps_y   (S, A, B, T): S AdamW steps of A accumulated micro-batches
  step_losses        (S): each step's mean micro-batch loss before its update
Training: torch.optim.AdamW(betas, eps, weight_decay on rank-2 tensors only),
clip_grad_norm_(grad_clip), learning rate per step it (0-based): warm-up
lr*(it+1)/(warmup+1), then cosine to min_lr at iters.
__metadata__ (strings): vocab_size, context, layers, heads, width, bias, lr,
min_lr, warmup, iters, beta1, beta2, eps, weight_decay, grad_clip, accum, seed, doc.
Files are safetensors written with the standard library (all tensors F32).
"""

import math
import sys

import torch
import torch.nn.functional as F

import fixture_io

TOL = 1e-6

CASES = [
    dict(name="bias", seed=601, V=13, T=8, L=2, H=2, C=16, B=3, bias=True, S=10, A=2,
         doc="biases on, head_dim 8, two blocks, accumulation 2"),
    dict(name="no_bias", seed=602, V=11, T=6, L=2, H=4, C=16, B=2, bias=False, S=10, A=1,
         doc="no biases (nanoGPT bias=False), head_dim 4"),
]
TRAIN = dict(lr=1e-2, min_lr=1e-3, warmup=3, iters=10, beta1=0.9, beta2=0.99, eps=1e-8,
             weight_decay=0.1, grad_clip=0.5)


def param_names(c):
    names = [("wte.weight", (c["V"], c["C"])), ("wpe.weight", (c["T"], c["C"]))]
    C, b = c["C"], c["bias"]
    for l in range(c["L"]):
        p = "h.%d." % l
        names.append((p + "ln_1.weight", (C,)))
        if b: names.append((p + "ln_1.bias", (C,)))
        names.append((p + "attn.in_proj_weight", (3 * C, C)))
        if b: names.append((p + "attn.in_proj_bias", (3 * C,)))
        names.append((p + "attn.out_proj.weight", (C, C)))
        if b: names.append((p + "attn.out_proj.bias", (C,)))
        names.append((p + "ln_2.weight", (C,)))
        if b: names.append((p + "ln_2.bias", (C,)))
        names.append((p + "mlp.c_fc.weight", (4 * C, C)))
        if b: names.append((p + "mlp.c_fc.bias", (4 * C,)))
        names.append((p + "mlp.c_proj.weight", (C, 4 * C)))
        if b: names.append((p + "mlp.c_proj.bias", (C,)))
    names.append(("ln_f.weight", (C,)))
    if b: names.append(("ln_f.bias", (C,)))
    return names


def init_params(c):
    torch.manual_seed(c["seed"])
    std_res = 0.02 / math.sqrt(2 * c["L"])
    params = {}
    for name, shape in param_names(c):
        if len(shape) == 2:
            std = std_res if ("out_proj.weight" in name or "c_proj.weight" in name) else 0.02
            t = torch.randn(shape) * std
        elif name.endswith(".weight"):
            t = 1.0 + 0.1 * torch.randn(shape)  # layer norms: not exactly 1, to test them
        else:
            t = 0.02 * torch.randn(shape)
        params[name] = t.float().double().requires_grad_(True)
    return params


def forward(c, P, x, y):
    B, T = x.shape
    C, H = c["C"], c["H"]
    d = C // H
    h = P["wte.weight"][x] + P["wpe.weight"][torch.arange(T)]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    get = lambda n: P.get(n)
    for l in range(c["L"]):
        p = "h.%d." % l
        a = F.layer_norm(h, (C,), get(p + "ln_1.weight"), get(p + "ln_1.bias"), 1e-5)
        qkv = F.linear(a, P[p + "attn.in_proj_weight"], get(p + "attn.in_proj_bias"))
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, H, d).transpose(1, 2)
        k = k.view(B, T, H, d).transpose(1, 2)
        v = v.view(B, T, H, d).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d)
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, C)
        h = h + F.linear(o, P[p + "attn.out_proj.weight"], get(p + "attn.out_proj.bias"))
        a = F.layer_norm(h, (C,), get(p + "ln_2.weight"), get(p + "ln_2.bias"), 1e-5)
        m = F.gelu(F.linear(a, P[p + "mlp.c_fc.weight"], get(p + "mlp.c_fc.bias")), approximate="tanh")
        h = h + F.linear(m, P[p + "mlp.c_proj.weight"], get(p + "mlp.c_proj.bias"))
    h = F.layer_norm(h, (C,), P["ln_f.weight"], get("ln_f.bias"), 1e-5)
    logits = h @ P["wte.weight"].t()
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    return logits, loss


def lr_at(it):
    t = TRAIN
    if it < t["warmup"]:
        return t["lr"] * (it + 1) / (t["warmup"] + 1)
    if it > t["iters"]:
        return t["min_lr"]
    r = (it - t["warmup"]) / (t["iters"] - t["warmup"])
    return t["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * r)) * (t["lr"] - t["min_lr"])


def make_case(c):
    P = init_params(c)
    g = torch.Generator().manual_seed(c["seed"] + 1000)
    V, T, B, S, A = c["V"], c["T"], c["B"], c["S"], c["A"]
    x = torch.randint(0, V, (B, T), generator=g)
    y = torch.randint(0, V, (B, T), generator=g)
    sx = torch.randint(0, V, (S, A, B, T), generator=g)
    sy = torch.randint(0, V, (S, A, B, T), generator=g)
    names = [n for n, _ in param_names(c)]
    out = [(n, P[n].detach().clone()) for n in names]  # before training changes them
    logits, loss = forward(c, P, x, y)
    loss.backward()
    out += [("x", x.double()), ("y", y.double()), ("logits", logits), ("loss", loss.reshape(1))]
    out += [("grad." + n, P[n].grad.clone()) for n in names]
    # Training from the same initial weights.
    for n in names:
        P[n].grad = None
    decay = [P[n] for n in names if P[n].dim() == 2]
    other = [P[n] for n in names if P[n].dim() != 2]
    t = TRAIN
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": t["weight_decay"]},
                             {"params": other, "weight_decay": 0.0}],
                            lr=t["lr"], betas=(t["beta1"], t["beta2"]), eps=t["eps"])
    losses = []
    for s in range(S):
        opt.zero_grad(set_to_none=False)
        total = 0.0
        for a in range(A):
            _, l = forward(c, P, sx[s, a], sy[s, a])
            (l / A).backward()
            total += l.item() / A
        torch.nn.utils.clip_grad_norm_([P[n] for n in names], t["grad_clip"])
        for grp in opt.param_groups:
            grp["lr"] = lr_at(s)
        opt.step()
        losses.append(total)
    out += [("steps_x", sx.double()), ("steps_y", sy.double()),
            ("step_losses", torch.tensor(losses, dtype=torch.float64))]
    meta = {"vocab_size": str(V), "context": str(T), "layers": str(c["L"]), "heads": str(c["H"]),
            "width": str(c["C"]), "bias": "1" if c["bias"] else "0", "accum": str(A),
            "seed": str(c["seed"]), "doc": c["doc"]}
    meta.update({k: repr(v) for k, v in TRAIN.items()})
    return out, meta


if __name__ == "__main__":
    sys.exit(fixture_io.main("gpt", __doc__, CASES, make_case, TOL))
