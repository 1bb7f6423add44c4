"""fixture_io.py - what the PyTorch fixture generators of the models share
(gen_gpt_fixtures.py, gen_cls_fixtures.py): F32 safetensors files written and
read with the standard library, and the command line: --out DIR writes the
fixtures, --check DIR regenerates them into a temporary directory and
compares them with DIR's, failing on any tensor off by more than tol."""
import argparse
import json
import os
import struct
import sys
import tempfile

import torch


def _raw(t, dtype):
    """The little-endian bytes of t as F32, F16 or BF16."""
    if dtype == "F32":
        return struct.pack("<%df" % t.numel(), *t.detach().reshape(-1).float().tolist())
    bits = t.detach().to({"F16": torch.float16, "BF16": torch.bfloat16}[dtype]).contiguous()
    bits = bits.view(torch.int16).reshape(-1).tolist()
    return struct.pack("<%dh" % len(bits), *bits)


def st_write(path, tensors, meta, dtype="F32"):
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        raw = _raw(t, dtype)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def st_read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        vals = struct.unpack("<%df" % ((e - b) // 4), data[b:e])
        out[name] = (info["shape"], vals)
    return out, meta


def write_all(d, cases, make_case):
    os.makedirs(d, exist_ok=True)
    for c in cases:
        tensors, meta = make_case(c)
        st_write(os.path.join(d, c["name"] + ".safetensors"), tensors, meta)


def check(kind, d, cases, make_case, tol):
    with tempfile.TemporaryDirectory(prefix=kind + "-fixtures-") as tmp:
        write_all(tmp, cases, make_case)
        worst = 0.0
        for c in cases:
            f = c["name"] + ".safetensors"
            new_path, old_path = os.path.join(tmp, f), os.path.join(d, f)
            if not os.path.exists(old_path):
                print("%s fixtures: %s is missing" % (kind, old_path), file=sys.stderr)
                return 1
            (a, ma), (b, mb) = st_read(new_path), st_read(old_path)
            if ma != mb or sorted(a) != sorted(b):
                print("%s fixtures: %s: tensors or metadata differ" % (kind, old_path), file=sys.stderr)
                return 1
            for name in a:
                if a[name][0] != b[name][0]:
                    print("%s fixtures: %s: '%s' shape differs" % (kind, old_path, name), file=sys.stderr)
                    return 1
                diff = max((abs(p - q) for p, q in zip(a[name][1], b[name][1])), default=0.0)
                if diff > tol:
                    print("%s fixtures: %s: '%s' differs by %g" % (kind, old_path, name, diff),
                          file=sys.stderr)
                    return 1
                worst = max(worst, diff)
    print("%s fixtures: %d files match (max abs diff %g)" % (kind, len(cases), worst))
    return 0


def main(kind, doc, cases, make_case, tol):
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", metavar="DIR", help="write the fixtures into DIR")
    g.add_argument("--check", metavar="DIR", help="compare DIR with freshly generated ones")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    if args.out:
        write_all(args.out, cases, make_case)
        print("%s fixtures: wrote %d files to %s" % (kind, len(cases), args.out))
        return 0
    return check(kind, args.check, cases, make_case, tol)
