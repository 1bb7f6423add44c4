#!/usr/bin/python3
"""Time PyTorch (1.13: matmul-softmax-matmul) on the shapes of
`attn bench attention` in the same run, and print attn's speed-up over it.

    /usr/bin/python3 bench/torch_attention.py [--attn build/attn] [--n 4096]
        [--d 64] [--heads 12] [--threads 2] [--causal] [--backward]

It runs `attn bench attention --json --n N ...` itself, then PyTorch on the
same (1, heads, N, d) shape with the same thread count, and compares medians.
"""
import argparse
import json
import math
import subprocess
import sys
import time

import torch


def torch_attention(q, k, v, causal):
    s = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if causal:
        n = q.shape[-2]
        mask = torch.ones(n, n, dtype=torch.bool).triu(1)
        s = s.masked_fill(mask, float("-inf"))
    return torch.matmul(torch.softmax(s, dim=-1), v)


def time_torch(n, d, heads, causal, backward, reps):
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, heads, n, d, requires_grad=backward) for _ in range(3))
    g = torch.randn(1, heads, n, d)
    times = []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        if backward:
            out = torch_attention(q, k, v, causal)
            out.backward(g)
        else:
            with torch.no_grad():
                torch_attention(q, k, v, causal)
        if r:
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--attn", default="build/attn")
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--causal", action="store_true", help="also the causal shapes")
    ap.add_argument("--backward", action="store_true", help="also forward+backward")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cmd = [a.attn, "bench", "attention", "--json", "--no-ref", "--n", str(a.n), "--d", str(a.d),
           "--heads", str(a.heads), "--threads", str(a.threads),
           "--causal", "both" if a.causal else "no", "--pass", "both" if a.backward else "fwd"]
    res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    print(f"threads {res['threads']}, attn SIMD {res['simd']}, torch {torch.__version__}, "
          f"measured peak {res['peak_gflops']:.1f} GFLOP/s")
    print(f"{'N':>6} {'d':>4} {'heads':>5} {'causal':>6} {'pass':>7} {'attn ms':>9} "
          f"{'torch ms':>9} {'torch GFLOP/s':>13} {'attn/torch':>10}")
    for r in res["results"]:
        bwd = r["pass"] == "fwdbwd"
        tm = time_torch(r["n"], r["d"], r["heads"], r["causal"], bwd, a.reps)
        flops = 4.0 * r["n"] ** 2 * r["d"] * r["heads"] * (2.5 if bwd else 1.0) * (0.5 if r["causal"] else 1.0)
        print(f"{r['n']:>6} {r['d']:>4} {r['heads']:>5} {'yes' if r['causal'] else 'no':>6} "
              f"{'fwd+bwd' if bwd else 'fwd':>7} {r['ms']:>9.1f} {tm:>9.1f} "
              f"{flops / (tm * 1e-3) * 1e-9:>13.1f} {tm / r['ms']:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
