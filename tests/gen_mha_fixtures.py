#!/usr/bin/python3
"""Generate / check the PyTorch reference fixtures for attn_mha (forward and backward).

Usage (Debian's /usr/bin/python3 with python3-torch and numpy):
    gen_mha_fixtures.py --out DIR     write every case as DIR/<name>.safetensors
    gen_mha_fixtures.py --check DIR   regenerate into a temp dir and compare with
                                      DIR (same files, same tensors, same
                                      metadata, max abs diff <= 1e-6); exit 1
                                      naming the file and tensor on a mismatch

The reference is torch.nn.MultiheadAttention(E, H, bias, add_bias_kv,
add_zero_attn, kdim, vdim, batch_first=True) in float64 (module.double()),
built after torch.manual_seed(<case seed>) with PyTorch's default
initialisation. PyTorch initialises in_proj_bias and out_proj.bias to zero,
which would leave the biases untested, so they are then overwritten with
random values; every parameter and input is rounded to float32 first, so the
float64 computation sees exactly the values stored in the file. Per case:
    output, weights = mha(query, key, value, key_padding_mask, need_weights=True,
                          attn_mask, average_attn_weights=False)
    loss = (output * R).sum();  loss.backward()
and the file holds the inputs, R, the output, the per-head weights and the
gradients of the inputs and of every parameter, all cast to float32.

File format: safetensors (8-byte little-endian header length, JSON header,
data), written with the standard library; every tensor is F32. Names:
  parameters      the module's state_dict names: in_proj_weight or
                  q_proj_weight / k_proj_weight / v_proj_weight, in_proj_bias,
                  out_proj.weight, out_proj.bias, bias_k, bias_v
  inputs          query (N,L,E); key (N,S,kdim) and value (N,S,vdim), absent
                  when self = "1" (key and value are then the query tensor);
                  attn_mask (L,S) or (N*H,L,S) and key_padding_mask (N,S) when
                  used: bool masks as 0/1 (1 = masked, MHA's convention), float
                  masks as the additive values (-inf allowed)
  R               (N,L,E), the weights of the loss, i.e. d loss / d output
  output          (N,L,E)
  attn_weights    (N,H,L,S'), S' = S + add_bias_kv + add_zero_attn; the long
                  case stores only the first 4 query rows as attn_weights_rows
                  (N,H,4,S')
  grad.query, grad.key, grad.value, grad.<parameter name>
                  with self = "1" the one combined gradient of the shared
                  input is grad.query (no grad.key / grad.value)
__metadata__ (strings): num_heads, bias, add_bias_kv, add_zero_attn,
  attn_mask_kind (bool | float | none), key_padding_kind (bool | float |
  none), attn_mask_per_head ("1" when attn_mask is (N*H,L,S), index n*H + h),
  causal ("1": the case masks future keys, j > i, top-left aligned; torch was
  given that mask explicitly, merged into attn_mask; the file holds no causal
  mask: the C side sets ATTN_CAUSAL_TOP_LEFT), self ("1": q = k = v is one
  tensor), seed, doc; temperature (only in cases that set one: the C side
  passes attn_sdpa_params with that temperature to every head).

A temperature T divides every head's scaled scores: softmax(Q·Kᵀ/(√d_k·T)).
torch's MHA has no such argument, so the reference runs a copy of the module
whose query projection (its weight rows and bias) is divided by T, i.e. with
scaled queries; its gradients of those parameters are divided by T once more
(chain rule) to be the gradients of the stored, unscaled parameters.

Masks torch 1.13 cannot combine (a float key_padding_mask together with an
attn_mask) are merged here into one additive (N*H,L,S) float64 mask, the sum
of both as later PyTorch versions define it; the file still holds the two
masks as given.

A fully masked row (every key -inf) gives NaN in PyTorch's MHA; attn gives
zero weights and a zero per-head output, so the output row is out_proj.bias
(a documented difference). The case "fully_masked_row" patches its expected
values that way: weights 0, output row = out_proj.bias. Its gradients are
those of that definition: torch's backward is run with R zero on the dead
rows and the dead rows' attention unmasked (which then contributes nothing),
and the dead rows' R is added to grad.out_proj.bias by hand.
"""

import argparse
import copy
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch

TOL = 1e-6
WEIGHT_ROWS = 4  # rows of attn_weights kept by cases with weights_rows=True

# name, seed, N, L, S, E, H and options:
#   kdim, vdim, bias (default True), bias_kv, zero_attn, self_attn,
#   attn_mask: None | "bool" | "float", per_head (3-D attn_mask),
#   kpm: None | "bool" | "float", causal, am_rows / kpm_rows: rows of the bool
#   masks fixed by hand, dead_rows: the (n, i) rows those leave fully masked
#   (checked), weights_rows: store only the first WEIGHT_ROWS rows of the weights.
# Seeds are per case so that reordering keeps data.
CASES = [
    dict(name="basic", seed=201, N=2, L=4, S=4, E=6, H=2,
         doc="cross-attention, separate q/k/v, head_dim 3"),
    dict(name="self_attn", seed=202, N=3, L=5, S=5, E=10, H=2, self_attn=True,
         doc="self-attention: one tensor as q, k and v, head_dim 5"),
    dict(name="self_attn_no_bias", seed=203, N=2, L=3, S=3, E=9, H=3, self_attn=True,
         bias=False, doc="self-attention, bias=False"),
    dict(name="head_dim_21", seed=204, N=2, L=6, S=7, E=63, H=3,
         doc="head_dim 21 (not a multiple of 8)"),
    dict(name="kdim_vdim", seed=205, N=3, L=4, S=6, E=15, H=3, kdim=7, vdim=11,
         doc="kdim and vdim != E: separate q/k/v projection weights"),
    dict(name="kdim_vdim_no_bias", seed=206, N=2, L=3, S=5, E=10, H=2, kdim=13, vdim=6,
         bias=False, doc="kdim/vdim != E, bias=False"),
    dict(name="bias_kv", seed=207, N=4, L=5, S=3, E=12, H=4, bias_kv=True,
         doc="add_bias_kv: one learned key/value position"),
    dict(name="zero_attn", seed=208, N=2, L=3, S=6, E=10, H=2, zero_attn=True,
         doc="add_zero_attn: one all-zero key/value position"),
    dict(name="bias_kv_zero_attn", seed=209, N=3, L=4, S=4, E=15, H=3, bias_kv=True,
         zero_attn=True, doc="add_bias_kv and add_zero_attn together"),
    dict(name="bias_kv_zero_attn_kdim_kpm", seed=210, N=3, L=5, S=4, E=6, H=2, kdim=4,
         vdim=9, bias_kv=True, zero_attn=True, kpm="bool",
         doc="both extra positions, kdim/vdim != E, boolean key padding mask"),
    dict(name="bool_mask_2d", seed=211, N=3, L=5, S=6, E=12, H=4, attn_mask="bool",
         doc="boolean (L,S) attn_mask"),
    dict(name="float_mask_2d", seed=212, N=2, L=6, S=4, E=10, H=2, attn_mask="float",
         doc="float (L,S) attn_mask: finite values and some -inf"),
    dict(name="bool_mask_3d", seed=213, N=2, L=4, S=5, E=9, H=3, attn_mask="bool",
         per_head=True, doc="boolean (N*H,L,S) attn_mask"),
    dict(name="float_mask_3d", seed=214, N=3, L=3, S=7, E=6, H=2, attn_mask="float",
         per_head=True, doc="float (N*H,L,S) attn_mask"),
    dict(name="kpm_bool", seed=215, N=5, L=4, S=6, E=12, H=4, kpm="bool",
         doc="boolean key padding mask"),
    dict(name="kpm_float", seed=216, N=4, L=3, S=5, E=10, H=2, kpm="float",
         doc="float key padding mask: finite values and some -inf"),
    dict(name="bool_mask_kpm_bool", seed=217, N=3, L=4, S=6, E=6, H=2, attn_mask="bool",
         kpm="bool", doc="boolean attn_mask and boolean key padding mask"),
    dict(name="float_mask_kpm_bool_zero_attn", seed=218, N=2, L=5, S=5, E=10, H=2,
         attn_mask="float", kpm="bool", zero_attn=True,
         doc="float attn_mask, boolean key padding mask, add_zero_attn"),
    dict(name="float_mask_3d_kpm_float", seed=219, N=2, L=4, S=5, E=9, H=3,
         attn_mask="float", per_head=True, kpm="float",
         doc="float (N*H,L,S) attn_mask plus a float key padding mask (added)"),
    dict(name="bool_mask_kpm_float", seed=220, N=3, L=3, S=6, E=6, H=2, attn_mask="bool",
         kpm="float", doc="boolean attn_mask with a float key padding mask"),
    dict(name="bias_kv_float_mask_3d", seed=221, N=2, L=5, S=4, E=12, H=4, bias_kv=True,
         attn_mask="float", per_head=True,
         doc="add_bias_kv with a float (N*H,L,S) attn_mask (padded with 0)"),
    dict(name="causal_self", seed=222, N=2, L=6, S=6, E=10, H=2, self_attn=True,
         causal=True, doc="causal self-attention"),
    dict(name="causal_l_lt_s_kpm", seed=223, N=3, L=3, S=6, E=6, H=2, causal=True,
         kpm="bool", doc="top-left causal, L<S, boolean key padding mask"),
    dict(name="causal_l_gt_s", seed=224, N=2, L=7, S=4, E=15, H=3, causal=True,
         doc="top-left causal, L>S"),
    dict(name="causal_bias_kv_zero_attn", seed=232, N=2, L=5, S=5, E=6, H=2, self_attn=True,
         causal=True, bias_kv=True, zero_attn=True,
         doc="causal with bias_k/bias_v and a zero position, which every row may see"),
    dict(name="query_len_1", seed=225, N=6, L=1, S=8, E=15, H=3, kdim=5, vdim=20,
         kpm="bool", doc="L=1, kdim/vdim != E, key padding mask"),
    dict(name="src_len_1_bias_kv", seed=226, N=2, L=5, S=1, E=6, H=2, bias_kv=True,
         doc="S=1 with add_bias_kv"),
    dict(name="batch_10", seed=227, N=10, L=10, S=10, E=20, H=4, bias_kv=True,
         attn_mask="bool", kpm="bool", doc="N=L=S=10, bias_kv, both masks"),
    dict(name="batch_1_one_head", seed=228, N=1, L=2, S=9, E=3, H=1,
         doc="N=1, a single head of width 3"),
    dict(name="self_attn_bias_kv_zero_attn_kpm", seed=229, N=4, L=7, S=7, E=12, H=4,
         self_attn=True, bias_kv=True, zero_attn=True, kpm="float",
         doc="self-attention, both extra positions, float key padding mask"),
    dict(name="fully_masked_row", seed=230, N=2, L=4, S=5, E=6, H=2, attn_mask="bool",
         kpm="bool", am_rows={0: [1, 1, 1, 0, 0], 2: [1, 1, 1, 1, 1]},
         kpm_rows={0: [0, 0, 0, 1, 1], 1: [1, 0, 0, 0, 0]},
         dead_rows=[(0, 0), (0, 2), (1, 2)],
         doc="rows where every key is masked: attn gives weights 0, output out_proj.bias"),
    dict(name="temperature_2_causal_self", seed=233, N=2, L=5, S=5, E=8, H=2, self_attn=True,
         causal=True, temperature=2.0,
         doc="temperature 2 on every head (torch: the query projection divided by 2)"),
    dict(name="long_512", seed=231, N=1, L=512, S=512, E=8, H=2, weights_rows=True,
         doc="L=S=512, small E; attn_weights stored for the first 4 rows only"),
]


# ---- safetensors, standard library only -------------------------------------

def st_write(path, tensors, meta):
    """tensors: list of (name, numpy array); meta: dict str -> str."""
    header = {"__metadata__": dict(meta)}
    blobs, off = [], 0
    for name, a in tensors:
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def st_read(path):
    """(dict name -> numpy float32 array, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        if e["dtype"] != "F32":
            raise ValueError("%s: tensor %s has dtype %s" % (path, name, e["dtype"]))
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype="<f4").reshape(e["shape"])
    return out, meta


# ---- the reference ------------------------------------------------------------

def exact32(t):
    """t (float64) rounded to float32 values, still float64."""
    return t.float().double()


def rand_bool(g, shape, p):
    return torch.rand(shape, generator=g, dtype=torch.float64) < p


def rand_float_mask(g, shape):
    m = exact32(torch.randn(shape, generator=g, dtype=torch.float64) * 2.0)
    holes = rand_bool(g, shape, 0.25)
    return m.masked_fill(holes, -math.inf)


def additive(mask, kind):
    if mask is None:
        return None
    if kind == "bool":
        return torch.zeros(mask.shape, dtype=torch.float64).masked_fill(mask, -math.inf)
    return mask


def combined_mask(c, am, kpm, causal):
    """The additive (N,H,L,S) mask the case applies (before the extra positions)."""
    N, H, L, S = c["N"], c["H"], c["L"], c["S"]
    tot = torch.zeros(N, H, L, S, dtype=torch.float64)
    a = additive(am, c.get("attn_mask"))
    if a is not None:
        tot = tot + (a.view(N, H, L, S) if c.get("per_head") else a.view(1, 1, L, S))
    k = additive(kpm, c.get("kpm"))
    if k is not None:
        tot = tot + k.view(N, 1, 1, S)
    if causal is not None:
        tot = tot.masked_fill(causal.view(1, 1, L, S), -math.inf)
    return tot


def make_masks(c, g):
    """(attn_mask, key_padding_mask, causal bool (L,S) or None); no row fully
    masked unless the case asks for dead rows (then exactly those)."""
    N, H, L, S = c["N"], c["H"], c["L"], c["S"]
    causal = None
    if c.get("causal"):
        causal = torch.ones(L, S, dtype=torch.bool).triu(diagonal=1)
    extra = c.get("bias_kv") or c.get("zero_attn")
    dead = c.get("dead_rows", [])
    ashape = (N * H, L, S) if c.get("per_head") else (L, S)
    for _ in range(1000):
        am = kpm = None
        kind = c.get("attn_mask")
        if kind == "bool":
            am = rand_bool(g, ashape, 0.3)
        elif kind == "float":
            am = rand_float_mask(g, ashape)
        kind = c.get("kpm")
        if kind == "bool":
            kpm = rand_bool(g, (N, S), 0.3)
        elif kind == "float":
            kpm = rand_float_mask(g, (N, S))
        for i, row in c.get("am_rows", {}).items():  # fixed rows (dead-row case)
            am[i] = torch.tensor(row, dtype=torch.bool)
        for n, row in c.get("kpm_rows", {}).items():
            kpm[n] = torch.tensor(row, dtype=torch.bool)
        tot = combined_mask(c, am, kpm, causal)
        row_dead = torch.isneginf(tot).all(dim=-1)  # (N,H,L)
        if extra:
            row_dead[:] = False
        want = torch.zeros(N, H, L, dtype=torch.bool)
        for n, i in dead:
            want[n, :, i] = True
        if torch.equal(row_dead, want):
            return am, kpm, causal
    raise RuntimeError("%s: cannot draw masks" % c["name"])


def run_case(c):
    """dict name -> float32 numpy array, and the metadata dict."""
    N, L, S, E, H = c["N"], c["L"], c["S"], c["E"], c["H"]
    kdim, vdim = c.get("kdim", E), c.get("vdim", E)
    bias = c.get("bias", True)
    self_attn = c.get("self_attn", False)
    assert not self_attn or (kdim == E and vdim == E and L == S)
    # causal + extra positions: torch pads the explicit causal mask with an
    # "attend" column for bias_k / the zero position, and attn's causal flag
    # leaves those positions visible too.

    torch.manual_seed(c["seed"])
    mha = torch.nn.MultiheadAttention(E, H, bias=bias, add_bias_kv=c.get("bias_kv", False),
                                      add_zero_attn=c.get("zero_attn", False), kdim=kdim,
                                      vdim=vdim, batch_first=True).double()
    g = torch.Generator().manual_seed(c["seed"] * 1000 + 7)
    with torch.no_grad():
        for name, p in mha.named_parameters():
            if name in ("in_proj_bias", "out_proj.bias"):
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
            p.copy_(exact32(p))

    query = exact32(torch.randn(N, L, E, generator=g, dtype=torch.float64))
    if self_attn:
        key = value = None
    else:
        key = exact32(torch.randn(N, S, kdim, generator=g, dtype=torch.float64))
        value = exact32(torch.randn(N, S, vdim, generator=g, dtype=torch.float64))
    R = exact32(torch.randn(N, L, E, generator=g, dtype=torch.float64))
    am, kpm, causal = make_masks(c, g)

    # What torch is given: the masks as stored, with causal merged into the
    # attn_mask, or everything merged when torch 1.13 cannot combine them.
    t_am, t_kpm = am, kpm
    if causal is not None:
        if am is None:
            t_am = causal
        else:
            t_am = am | causal if c.get("attn_mask") == "bool" else am.masked_fill(causal, -math.inf)
    if c.get("kpm") == "float" and am is not None:
        t_am = combined_mask(c, am, kpm, causal).reshape(N * H, L, S)
        t_kpm = None

    dead = c.get("dead_rows", [])
    if dead:  # forward/backward with the dead rows unmasked and their R zero
        t_am = am.clone().unsqueeze(0).repeat(N, 1, 1)
        t_kpm = None
        t_am = additive(t_am, "bool") + additive(kpm, "bool").view(N, 1, S)
        for n, i in dead:
            t_am[n, i] = 0.0
        t_am = t_am.repeat_interleave(H, dim=0)
        R_used = R.clone()
        for n, i in dead:
            R_used[n, i] = 0.0
    else:
        R_used = R

    temp = c.get("temperature")
    net = mha
    if temp:  # the queries scaled by 1/T: the q rows of the projection divided by T
        net = copy.deepcopy(mha)
        with torch.no_grad():
            for name, p in net.named_parameters():
                if name in ("in_proj_weight", "in_proj_bias"):
                    p[:E] /= temp
                elif name == "q_proj_weight":
                    p /= temp
    q = query.clone().requires_grad_(True)
    if self_attn:
        k = v = q
    else:
        k = key.clone().requires_grad_(True)
        v = value.clone().requires_grad_(True)
    out, w = net(q, k, v, key_padding_mask=t_kpm, need_weights=True, attn_mask=t_am,
                 average_attn_weights=False)
    (out * R_used).sum().backward()

    out = out.detach().clone()
    w = w.detach().clone()
    grads = {"grad." + n: p.grad.clone() for n, p in net.named_parameters()}
    if temp:  # d loss / d p = d loss / d (p/T) / T for the scaled query parts
        for name in ("in_proj_weight", "in_proj_bias"):
            if "grad." + name in grads:
                grads["grad." + name][:E] /= temp
        if "grad.q_proj_weight" in grads:
            grads["grad.q_proj_weight"] /= temp
    if dead:
        ob = mha.out_proj.bias
        for n, i in dead:
            w[n, :, i, :] = 0.0
            out[n, i] = ob.detach() if ob is not None else 0.0
            if ob is not None:
                grads["grad.out_proj.bias"] += R[n, i]
    assert not torch.isnan(out).any() and not torch.isnan(w).any(), c["name"]

    S2 = S + int(c.get("bias_kv", False)) + int(c.get("zero_attn", False))
    assert w.shape == (N, H, L, S2)
    t = []
    for name, p in mha.state_dict().items():
        t.append((name, p))
    t.append(("query", query))
    if not self_attn:
        t += [("key", key), ("value", value)]
    if am is not None:
        t.append(("attn_mask", am.double()))
    if kpm is not None:
        t.append(("key_padding_mask", kpm.double()))
    t += [("R", R), ("output", out)]
    if c.get("weights_rows"):
        t.append(("attn_weights_rows", w[:, :, :WEIGHT_ROWS, :]))
    else:
        t.append(("attn_weights", w))
    t.append(("grad.query", q.grad))
    if not self_attn:
        t += [("grad.key", k.grad), ("grad.value", v.grad)]
    for name, _ in mha.named_parameters():
        t.append(("grad." + name, grads["grad." + name]))
    arrays = [(n, x.detach().numpy().astype("<f4")) for n, x in t]

    meta = {
        "generator": "tests/gen_mha_fixtures.py",
        "doc": c["doc"],
        "seed": str(c["seed"]),
        "num_heads": str(H),
        "bias": "1" if bias else "0",
        "add_bias_kv": "1" if c.get("bias_kv") else "0",
        "add_zero_attn": "1" if c.get("zero_attn") else "0",
        "attn_mask_kind": c.get("attn_mask") or "none",
        "key_padding_kind": c.get("kpm") or "none",
        "attn_mask_per_head": "1" if c.get("per_head") else "0",
        "causal": "1" if c.get("causal") else "0",
        "self": "1" if self_attn else "0",
    }
    if temp:
        meta["temperature"] = repr(float(temp))
    return arrays, meta


def write_all(d):
    os.makedirs(d, exist_ok=True)
    names = [c["name"] for c in CASES]
    assert len(set(names)) == len(names), "duplicate case names"
    for c in CASES:
        arrays, meta = run_case(c)
        st_write(os.path.join(d, c["name"] + ".safetensors"), arrays, meta)


def fixture_files(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".safetensors"))


def compare_file(new_path, old_path, tol):
    """Max abs diff; raises ValueError naming the file and tensor."""
    new, new_meta = st_read(new_path)
    old, old_meta = st_read(old_path)
    if new_meta != old_meta:
        keys = sorted(k for k in set(new_meta) | set(old_meta) if new_meta.get(k) != old_meta.get(k))
        raise ValueError("%s: metadata differs in %s" % (old_path, keys))
    if sorted(new) != sorted(old):
        raise ValueError("%s: tensors missing %s, unexpected %s" % (
            old_path, sorted(set(new) - set(old)) or "none", sorted(set(old) - set(new)) or "none"))
    worst = 0.0
    for name in sorted(new):
        a, b = new[name].astype(np.float64), old[name].astype(np.float64)
        if a.shape != b.shape:
            raise ValueError("%s: tensor %s has shape %s, expected %s"
                             % (old_path, name, list(b.shape), list(a.shape)))
        same_inf = np.isinf(a) | np.isinf(b)
        if not np.array_equal(a[same_inf], b[same_inf]) or np.isnan(a).any() or np.isnan(b).any():
            raise ValueError("%s: tensor %s: inf/nan values differ" % (old_path, name))
        fin = ~same_inf
        if fin.any():
            diff = np.abs(a[fin] - b[fin])
            i = int(np.argmax(diff))
            if diff[i] > tol:
                flat = np.flatnonzero(fin)[i]
                raise ValueError("%s: tensor %s[%d]: %.9g, expected %.9g (diff %g > %g)" % (
                    old_path, name, flat, b.reshape(-1)[flat], a.reshape(-1)[flat], diff[i], tol))
            worst = max(worst, float(diff[i]))
    return worst


def check(d, tol=TOL):
    with tempfile.TemporaryDirectory(prefix="mha-fixtures-") as tmp:
        write_all(tmp)
        want, have = fixture_files(tmp), fixture_files(d) if os.path.isdir(d) else []
        if want != have:
            print("mha fixtures: %s differs: missing %s, unexpected %s" % (
                d, sorted(set(want) - set(have)) or "none",
                sorted(set(have) - set(want)) or "none"), file=sys.stderr)
            return 1
        worst = 0.0
        for name in want:
            try:
                worst = max(worst, compare_file(os.path.join(tmp, name), os.path.join(d, name), tol))
            except ValueError as e:
                print("mha fixtures: mismatch: %s" % e, file=sys.stderr)
                return 1
    print("mha fixtures: %d files match (max abs diff %g)" % (len(want), worst))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", metavar="DIR", help="write the fixtures into DIR")
    g.add_argument("--check", metavar="DIR", help="compare DIR with freshly generated ones")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the same summation order on every machine
    if args.out:
        write_all(args.out)
        print("mha fixtures: wrote %d files to %s" % (len(CASES), args.out))
        return 0
    return check(args.check)


if __name__ == "__main__":
    sys.exit(main())
