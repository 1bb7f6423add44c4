#!/usr/bin/env python3
"""Writes tests/fixtures/safetensors/mixed.safetensors for test_safetensors.c.

Only the standard library (struct, json): the file is laid out by hand the
way the reference `safetensors` package lays it out, so the C reader is
checked against an independent writer rather than against itself. The values
are chosen to be exact in their dtype; test_safetensors.c repeats them.

    python3 tests/gen_safetensors_fixture.py
"""
import json
import os
import struct

# name -> (dtype, shape, values), in the order their bytes are laid out.
TENSORS = [
    ("f32", "F32", [2, 3], [0.0, 1.0, -2.5, 3.25, 1e-3, 65504.0]),
    ("f16", "F16", [5], [1.0, -2.0, float("inf"), 2.0 ** -24, 0.333251953125]),
    ("bf16", "BF16", [2, 2], [1.0, -3.5, 0.15625, 256.0]),
    ("f64", "F64", [3], [0.1, -1e300, 3.0]),
    ("mask", "BOOL", [2, 2], [True, False, False, True]),
    ("scalar", "F32", [], [42.0]),
    ("empty", "F16", [0, 3], []),
]
METADATA = {"format": "pt", "source": "gen_safetensors_fixture.py"}


def encode(dtype, values):
    if dtype == "F32":
        return struct.pack("<%df" % len(values), *values)
    if dtype == "F16":
        return struct.pack("<%de" % len(values), *values)
    if dtype == "BF16":
        # The top half of each float32; the values above are exact in bfloat16.
        out = b""
        for v in values:
            bits = struct.unpack("<I", struct.pack("<f", v))[0]
            assert bits & 0xFFFF == 0, v
            out += struct.pack("<H", bits >> 16)
        return out
    if dtype == "F64":
        return struct.pack("<%dd" % len(values), *values)
    if dtype == "BOOL":
        return bytes(1 if v else 0 for v in values)
    raise ValueError(dtype)


def main():
    header = {"__metadata__": METADATA}
    data = b""
    for name, dtype, shape, values in TENSORS:
        blob = encode(dtype, values)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    # Keys sorted by name, so the JSON order differs from the offset order
    # and the reader's sort is exercised.
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # data starts 8-aligned, as the reference pads
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "safetensors")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "mixed.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
    print("wrote %s (%d bytes)" % (path, 8 + len(text) + len(data)))


if __name__ == "__main__":
    main()
