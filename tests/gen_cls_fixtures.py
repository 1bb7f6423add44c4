#!/usr/bin/python3
"""Generate / check the PyTorch reference fixtures for the encoder (attn/classify.h).

Usage (Debian's /usr/bin/python3 with python3-torch):
    gen_cls_fixtures.py --out DIR     write every case as DIR/<name>.safetensors
    gen_cls_fixtures.py --check DIR   regenerate into a temp dir and compare with
                                      DIR (same files, tensors, metadata; max abs
                                      diff <= 1e-6); exit 1 naming the mismatch

The reference is the same bidirectional encoder written here in PyTorch, in
float64: token + position embeddings, pre-LayerNorm blocks of multi-head
self-attention with a key padding mask (packed in_proj_weight of q|k|v rows,
out_proj, as nn.MultiheadAttention; checked against
F.multi_head_attention_forward) and a GELU(tanh) MLP, final LayerNorm, pooling
(token 0, [CLS], or the mean over the tokens that are not padding), a linear
head and the mean cross-entropy over the batch. Weights: GPT-2 initialisation
from torch.manual_seed(<case seed>) (N(0, 0.02); attn.out_proj and mlp.c_proj
N(0, 0.02/sqrt(2 layers)); layer norms 1 + N(0, 0.1) and biases N(0, 0.02),
random here so that they are tested), rounded to float32 so that the float64
computation sees the stored values. Examples: [CLS] (id 1), then words (ids 2..V-1),
then [PAD] (id 0) up to T. Per case the file holds:
  <parameter name>   the weights, names as in attn/classify.h
  ids                (B, T) token ids (as F32);  lens (B);  labels (B)
  logits             (B, K);  loss (1) = mean cross-entropy against labels
  grad.<name>        d loss / d parameter
__metadata__ (strings): vocab_size, context, layers, heads, width, classes,
bias, pooling (mean | cls), seed, doc, and format "attn-encoder", step "0" so
that attn_params_read (the checkpoint loader) reads the weights.
Files are safetensors written with the standard library (all tensors F32).
"""

import math
import sys

import torch
import torch.nn.functional as F

import fixture_io

TOL = 1e-6
PAD, CLS = 0, 1

CASES = [
    dict(name="mean", pooling="mean", seed=701, V=23, T=9, L=2, H=2, C=16, K=5, lens=[9, 4, 1, 6],
         doc="mean pooling over non-padding tokens, head_dim 8, lengths 9 4 1 6"),
    dict(name="cls", pooling="cls", seed=702, V=23, T=9, L=2, H=4, C=16, K=5, lens=[5, 9, 2, 1],
         doc="[CLS] pooling, head_dim 4, lengths 5 9 2 1"),
]


def param_names(c):
    """The encoder's parameters in attn_encoder_params order (bias always on here)."""
    C = c["C"]
    names = [("wte.weight", (c["V"], C)), ("wpe.weight", (c["T"], C))]
    for l in range(c["L"]):
        p = "h.%d." % l
        names += [(p + "ln_1.weight", (C,)), (p + "ln_1.bias", (C,)),
                  (p + "attn.in_proj_weight", (3 * C, C)), (p + "attn.in_proj_bias", (3 * C,)),
                  (p + "attn.out_proj.weight", (C, C)), (p + "attn.out_proj.bias", (C,)),
                  (p + "ln_2.weight", (C,)), (p + "ln_2.bias", (C,)),
                  (p + "mlp.c_fc.weight", (4 * C, C)), (p + "mlp.c_fc.bias", (4 * C,)),
                  (p + "mlp.c_proj.weight", (C, 4 * C)), (p + "mlp.c_proj.bias", (C,))]
    names += [("ln_f.weight", (C,)), ("ln_f.bias", (C,)),
              ("head.weight", (c["K"], C)), ("head.bias", (c["K"],))]
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


def attention(c, P, p, a, pad):
    """Self-attention of a (B, T, C) with keys where pad (B, T) is True masked out."""
    B, T, C = a.shape
    H = c["H"]
    d = C // H
    qkv = F.linear(a, P[p + "attn.in_proj_weight"], P[p + "attn.in_proj_bias"])
    q, k, v = (t.view(B, T, H, d).transpose(1, 2) for t in qkv.split(C, dim=2))
    att = (q @ k.transpose(-2, -1)) / math.sqrt(d)
    att = att.masked_fill(pad[:, None, None, :], float("-inf")).softmax(dim=-1)
    o = (att @ v).transpose(1, 2).reshape(B, T, C)
    return F.linear(o, P[p + "attn.out_proj.weight"], P[p + "attn.out_proj.bias"])


def forward(c, P, ids, lens, labels):
    B, T = ids.shape
    C = c["C"]
    pad = torch.arange(T)[None, :] >= lens[:, None]  # (B, T), True = [PAD]
    h = P["wte.weight"][ids] + P["wpe.weight"][torch.arange(T)]
    for l in range(c["L"]):
        p = "h.%d." % l
        a = F.layer_norm(h, (C,), P[p + "ln_1.weight"], P[p + "ln_1.bias"], 1e-5)
        att = attention(c, P, p, a, pad)
        # The explicit attention must be PyTorch's own MultiheadAttention.
        ref, _ = F.multi_head_attention_forward(
            a.transpose(0, 1), a.transpose(0, 1), a.transpose(0, 1), C, c["H"],
            P[p + "attn.in_proj_weight"], P[p + "attn.in_proj_bias"], None, None, False, 0.0,
            P[p + "attn.out_proj.weight"], P[p + "attn.out_proj.bias"], training=False,
            key_padding_mask=pad, need_weights=False)
        ok = torch.allclose(att, ref.transpose(0, 1), atol=1e-12, rtol=0)
        assert ok, "explicit attention differs from F.multi_head_attention_forward"
        h = h + att
        a = F.layer_norm(h, (C,), P[p + "ln_2.weight"], P[p + "ln_2.bias"], 1e-5)
        m = F.gelu(F.linear(a, P[p + "mlp.c_fc.weight"], P[p + "mlp.c_fc.bias"]), approximate="tanh")
        h = h + F.linear(m, P[p + "mlp.c_proj.weight"], P[p + "mlp.c_proj.bias"])
    h = F.layer_norm(h, (C,), P["ln_f.weight"], P["ln_f.bias"], 1e-5)
    if c["pooling"] == "cls":
        pooled = h[:, 0]
    else:
        keep = (~pad).double()[:, :, None]
        pooled = (h * keep).sum(dim=1) / lens[:, None].double()
    logits = F.linear(pooled, P["head.weight"], P["head.bias"])
    return logits, F.cross_entropy(logits, labels)


def make_case(c):
    P = init_params(c)
    g = torch.Generator().manual_seed(c["seed"] + 1000)
    V, T, K = c["V"], c["T"], c["K"]
    lens = torch.tensor(c["lens"])
    B = len(c["lens"])
    ids = torch.randint(2, V, (B, T), generator=g)
    ids[:, 0] = CLS
    ids[torch.arange(T)[None, :] >= lens[:, None]] = PAD
    labels = torch.randint(0, K, (B,), generator=g)
    names = [n for n, _ in param_names(c)]
    out = [(n, P[n].detach().clone()) for n in names]
    logits, loss = forward(c, P, ids, lens, labels)
    loss.backward()
    out += [("ids", ids.double()), ("lens", lens.double()), ("labels", labels.double()),
            ("logits", logits), ("loss", loss.reshape(1))]
    out += [("grad." + n, P[n].grad.clone()) for n in names]
    meta = {"vocab_size": str(V), "context": str(T), "layers": str(c["L"]), "heads": str(c["H"]),
            "width": str(c["C"]), "classes": str(K), "bias": "1", "pooling": c["pooling"],
            "seed": str(c["seed"]), "doc": c["doc"], "format": "attn-encoder", "step": "0"}
    return out, meta


if __name__ == "__main__":
    sys.exit(fixture_io.main("cls", __doc__, CASES, make_case, TOL))
