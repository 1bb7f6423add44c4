#!/usr/bin/python3
"""generate_torch.py - PyTorch's side of `attn bench generate`.

Loads the GPT-2 that attn wrote (DIR/config.json and DIR/model.safetensors in
Hugging Face's layout: Conv1D weights stored (in, out), tied head), and times
the same work as attn_bench_generate: the prefill of a PROMPT-token prompt
into an empty cache (logits of the last position only), then DECODE one-token
steps, teacher-forced with the ids (i * 7919 + 13) % vocab for position i;
REPS times. The cache is preallocated (heads, context, head_dim) per layer and
written in place, as attn's is. Prints one JSON object on stdout.

Run it with Debian's python3 (PyTorch 1.13): /usr/bin/python3."""
import argparse
import json
import math
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=np.float32).reshape(t["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


class GPT2:
    def __init__(self, cfg, w):
        self.C, self.H, self.L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
        self.T, self.V = cfg["n_positions"], cfg["vocab_size"]
        self.eps = cfg.get("layer_norm_epsilon", 1e-5)
        self.w = w
        d = self.C // self.H
        self.k = [torch.zeros(self.H, self.T, d) for _ in range(self.L)]
        self.v = [torch.zeros(self.H, self.T, d) for _ in range(self.L)]
        self.len = 0

    def ln(self, x, name):
        return F.layer_norm(x, (self.C,), self.w[name + ".weight"], self.w[name + ".bias"], self.eps)

    def conv1d(self, x, name):  # Conv1D: x · w + b with w (in, out)
        return torch.addmm(self.w[name + ".bias"], x, self.w[name + ".weight"])

    def step(self, ids):
        """Appends ids (n) to the cache; returns the last position's logits."""
        n, C, H, w = len(ids), self.C, self.H, self.w
        d, past = C // H, self.len
        S = past + n
        pos = torch.arange(past, S)
        x = w["wte.weight"][ids] + w["wpe.weight"][pos]
        # bottom-right causal: query i sees keys j <= i + past
        mask = torch.ones(n, S, dtype=torch.bool).tril(diagonal=past)
        for l in range(self.L):
            p = f"h.{l}."
            qkv = self.conv1d(self.ln(x, p + "ln_1"), p + "attn.c_attn")
            q, k, v = (t.view(n, H, d).transpose(0, 1) for t in qkv.split(C, dim=1))
            self.k[l][:, past:S] = k
            self.v[l][:, past:S] = v
            kc, vc = self.k[l][:, :S], self.v[l][:, :S]
            att = (q @ kc.transpose(1, 2)) * (1.0 / math.sqrt(d))
            if n > 1:
                att = att.masked_fill(~mask, float("-inf"))
            y = (F.softmax(att, dim=-1) @ vc).transpose(0, 1).reshape(n, C)
            x = x + self.conv1d(y, p + "attn.c_proj")
            h = F.gelu(self.conv1d(self.ln(x, p + "ln_2"), p + "mlp.c_fc"), approximate="tanh")
            x = x + self.conv1d(h, p + "mlp.c_proj")
        self.len = S
        return self.ln(x[-1:], "ln_f")[0] @ w["wte.weight"].t()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    with open(a.dir + "/config.json") as f:
        cfg = json.load(f)
    m = GPT2(cfg, load_safetensors(a.dir + "/model.safetensors"))
    ids = torch.tensor([(i * 7919 + 13) % m.V for i in range(a.prompt + a.decode)])
    tp, td, head, best = [], [], None, None
    with torch.inference_mode():
        for r in range(a.reps):
            m.len = 0
            t0 = time.perf_counter()
            logits = m.step(ids[: a.prompt])
            tp.append(time.perf_counter() - t0)
            if r == 0:
                head, best = logits[:8].tolist(), int(torch.argmax(logits))
            t0 = time.perf_counter()
            for i in range(a.prompt, a.prompt + a.decode):
                m.step(ids[i : i + 1])
            td.append(time.perf_counter() - t0)
    json.dump({"version": torch.__version__, "threads": torch.get_num_threads(),
               "prefill_s": statistics.median(tp), "decode_s": statistics.median(td),
               "prefill_runs": tp, "decode_runs": td,
               "logits_head": head, "argmax_prefill": best}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
