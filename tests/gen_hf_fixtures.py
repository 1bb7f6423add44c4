#!/usr/bin/env python3
"""Tiny random GPT-2 directories in Hugging Face's layout, and what GPT-2's
math gives on them (for test_gpt_hf.c).

    gen_hf_fixtures.py --out DIR | --check DIR

Each case is a folder with config.json and model.safetensors as
transformers' GPT2LMHeadModel saves them (no transformers package needed):
Conv1D weights stored (in, out), the tanh GELU ("gelu_new"), biases, the
head tied to wte, plus expected.safetensors (F32): for the token ids "ids"
the logits (T, V) of every position, computed in float64 from the weights
as stored, and the greedy continuation "greedy" of "prompt". The f32 case
also holds, for `attn explain --model` with a byte-level tokenizer of 257
tokens (GPT-2's 256 byte tokens, no merge, what `attn tokenize --train` makes
with --vocab-size 257), the ids of EXPLAIN_TEXT ("explain_ids"), every
layer's and head's attention map ("explain_attention", (L*H*n, n): layer,
head, query, key) and the hidden state after every block ("explain_hidden",
(L*n, C)), and the ids and hidden states of COMPARE_TEXT ("compare_ids",
"compare_hidden").
  f32:  F32, names without a prefix, no lm_head.weight
  f16:  F16, names under "transformer.", lm_head.weight (the tied copy) and
        the attn.bias / attn.masked_bias buffers present
  bf16: BF16, no prefix
--check regenerates into a temporary folder and compares (config.json
exactly, tensors within 1e-6).
"""
import argparse
import json
import math
import os
import struct
import sys
import tempfile

import torch

import fixture_io

V, T, C, L, H = 257, 24, 32, 2, 4
PROMPT = [10, 200, 3, 77, 256, 41]
N_NEW = 10
IDS = [5, 17, 250, 0, 99, 3, 3, 128, 64, 1, 200, 42]
EXPLAIN_TEXT = "the cat and mouse"
COMPARE_TEXT = "a keyboard and mouse"


def byte_ids(text):
    """Ids of the bytes in GPT-2's order (bytes_to_unicode: the printable
    ranges first, then the others), as a vocabulary of bytes only has them."""
    order = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    order += [b for b in range(256) if b not in order]
    return [order.index(b) for b in text.encode("utf-8")]


def make_weights(seed):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, std):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * std

    w = {"wte.weight": rnd(V, C, std=1.0), "wpe.weight": rnd(T, C, std=0.5)}
    for i in range(L):
        p = "h.%d." % i
        w[p + "ln_1.weight"] = 1 + rnd(C, std=0.2)
        w[p + "ln_1.bias"] = rnd(C, std=0.2)
        w[p + "attn.c_attn.weight"] = rnd(C, 3 * C, std=0.3)   # Conv1D: (in, out)
        w[p + "attn.c_attn.bias"] = rnd(3 * C, std=0.2)
        w[p + "attn.c_proj.weight"] = rnd(C, C, std=0.3)
        w[p + "attn.c_proj.bias"] = rnd(C, std=0.2)
        w[p + "ln_2.weight"] = 1 + rnd(C, std=0.2)
        w[p + "ln_2.bias"] = rnd(C, std=0.2)
        w[p + "mlp.c_fc.weight"] = rnd(C, 4 * C, std=0.3)
        w[p + "mlp.c_fc.bias"] = rnd(4 * C, std=0.2)
        w[p + "mlp.c_proj.weight"] = rnd(4 * C, C, std=0.2)
        w[p + "mlp.c_proj.bias"] = rnd(C, std=0.2)
    w["ln_f.weight"] = 1 + rnd(C, std=0.2)
    w["ln_f.bias"] = rnd(C, std=0.2)
    return w


def gelu_new(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def layer_norm(x, w, b):
    return torch.nn.functional.layer_norm(x, (C,), w, b, 1e-5)


def forward(w, ids, maps=None, hidden=None):
    """GPT-2's forward (transformers' GPT2LMHeadModel) over ids: (T, V).
    Appends each layer's attention (H, n, n) to maps and the hidden state
    after each block (n, C) to hidden when they are lists."""
    n = len(ids)
    x = w["wte.weight"][ids] + w["wpe.weight"][:n]
    mask = torch.tril(torch.ones(n, n, dtype=torch.bool))
    for i in range(L):
        p = "h.%d." % i
        a = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"])
        qkv = a @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]   # Conv1D: x W + b
        q, k, v = qkv.split(C, dim=1)
        d = C // H
        q, k, v = (t.reshape(n, H, d).transpose(0, 1) for t in (q, k, v))
        s = (q @ k.transpose(1, 2)) / math.sqrt(d)
        s = s.masked_fill(~mask, float("-inf"))
        att = torch.softmax(s, dim=-1)
        if maps is not None:
            maps.append(att)
        o = (att @ v).transpose(0, 1).reshape(n, C)
        x = x + o @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        m = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"])
        m = gelu_new(m @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
        if hidden is not None:
            hidden.append(x)
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"])
    return x @ w["wte.weight"].T   # the tied head


def greedy(w, prompt, n_new):
    ids = list(prompt)
    for _ in range(n_new):
        logits = forward(w, ids)[-1]
        top = torch.topk(logits, 2).values
        if top[0] - top[1] < 1e-3:
            raise SystemExit("greedy step too close to a tie: choose another seed")
        ids.append(int(torch.argmax(logits)))
    return ids[len(prompt):]


DTYPES = {"F32": (torch.float32, torch.int32), "F16": (torch.float16, torch.int16),
          "BF16": (torch.bfloat16, torch.int16)}


CASES = [
    {"name": "f32", "dtype": "F32", "prefix": "", "extras": False, "seed": 1},
    {"name": "f16", "dtype": "F16", "prefix": "transformer.", "extras": True, "seed": 2},
    {"name": "bf16", "dtype": "BF16", "prefix": "", "extras": False, "seed": 3},
]


def write_case(root, c):
    d = os.path.join(root, c["name"])
    os.makedirs(d, exist_ok=True)
    w = make_weights(c["seed"])
    # the weights as the file stores them, back in float64 for the reference
    w = {k: v.to(DTYPES[c["dtype"]][0]).to(torch.float64) for k, v in w.items()}
    tensors = [(c["prefix"] + k, v) for k, v in w.items()]
    if c["extras"]:
        for i in range(L):
            tensors.append((c["prefix"] + "h.%d.attn.bias" % i, torch.tril(torch.ones(1, 1, T, T))))
            tensors.append((c["prefix"] + "h.%d.attn.masked_bias" % i, torch.tensor(-1e4)))
        tensors.append(("lm_head.weight", w["wte.weight"]))
    fixture_io.st_write(os.path.join(d, "model.safetensors"), tensors, {"format": "pt"}, c["dtype"])
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": V,
              "n_positions": T, "n_ctx": T, "n_embd": C, "n_layer": L, "n_head": H,
              "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new",
              "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[c["dtype"]]}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    expected = [("ids", torch.tensor(IDS, dtype=torch.float64)),
                ("logits", forward(w, IDS)),
                ("prompt", torch.tensor(PROMPT, dtype=torch.float64)),
                ("greedy", torch.tensor(greedy(w, PROMPT, N_NEW), dtype=torch.float64))]
    if c["name"] == "f32":
        maps, hidden, chidden = [], [], []
        ids, cids = byte_ids(EXPLAIN_TEXT), byte_ids(COMPARE_TEXT)
        forward(w, ids, maps, hidden)
        forward(w, cids, None, chidden)
        n = len(ids)
        expected += [("explain_ids", torch.tensor(ids, dtype=torch.float64)),
                     ("explain_attention", torch.stack(maps).reshape(L * H * n, n)),
                     ("explain_hidden", torch.cat(hidden)),
                     ("compare_ids", torch.tensor(cids, dtype=torch.float64)),
                     ("compare_hidden", torch.cat(chidden))]
    fixture_io.st_write(os.path.join(d, "expected.safetensors"), expected, {})


def st_values(path):
    """name -> list of floats, whatever the dtype."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        tdt, idt = DTYPES[info["dtype"]]
        fmt = "i" if idt == torch.int32 else "h"
        bits = torch.tensor(struct.unpack("<%d%s" % ((e - b) // (4 if fmt == "i" else 2), fmt), raw[8 + n + b:8 + n + e]),
                            dtype=idt)
        out[name] = (info["shape"], bits.view(tdt).double().tolist())
    return out


def check(d):
    with tempfile.TemporaryDirectory(prefix="hf-fixtures-") as tmp:
        worst = 0.0
        for c in CASES:
            write_case(tmp, c)
            for f in ("config.json", "model.safetensors", "expected.safetensors"):
                new, old = os.path.join(tmp, c["name"], f), os.path.join(d, c["name"], f)
                if not os.path.exists(old):
                    print("hf fixtures: %s is missing" % old, file=sys.stderr)
                    return 1
                if f == "config.json":
                    if open(new).read() != open(old).read():
                        print("hf fixtures: %s differs" % old, file=sys.stderr)
                        return 1
                    continue
                a, b = st_values(new), st_values(old)
                if sorted(a) != sorted(b):
                    print("hf fixtures: %s: tensors differ" % old, file=sys.stderr)
                    return 1
                for name in a:
                    if a[name][0] != b[name][0]:
                        print("hf fixtures: %s: '%s' shape differs" % (old, name), file=sys.stderr)
                        return 1
                    diff = max((abs(p - q) for p, q in zip(a[name][1], b[name][1])), default=0.0)
                    if diff > 1e-6:
                        print("hf fixtures: %s: '%s' differs by %g" % (old, name, diff), file=sys.stderr)
                        return 1
                    worst = max(worst, diff)
    print("hf fixtures: %d folders match (max abs diff %g)" % (len(CASES), worst))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", metavar="DIR")
    g.add_argument("--check", metavar="DIR")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.out:
        for c in CASES:
            write_case(args.out, c)
        print("hf fixtures: wrote %d folders to %s" % (len(CASES), args.out))
        return 0
    return check(args.check)


if __name__ == "__main__":
    sys.exit(main())
