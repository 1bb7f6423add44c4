#!/usr/bin/env python3
"""Writes the arrays of a NumPy .npz file (e.g. a PyTorch state_dict saved with
np.savez) as one safetensors file, with numpy alone: Debian ships no
`safetensors` package.

    # in Python, with the module `mha`:
    np.savez("W.npz", **{k: v.detach().numpy() for k, v in mha.state_dict().items()})
    # then
    python3 scripts/npz_to_safetensors.py W.npz W.safetensors

Each array keeps its name (the npz key), shape and dtype (float32/16/64,
bool, (u)int8..64); the output is written to a temporary file and renamed.
"""
import json
import os
import sys

import numpy as np

DTYPES = {"float32": "F32", "float16": "F16", "float64": "F64", "bool": "BOOL",
          "uint8": "U8", "int8": "I8", "int16": "I16", "uint16": "U16",
          "int32": "I32", "uint32": "U32", "int64": "I64", "uint64": "U64"}


def convert(src, dst):
    arrays = np.load(src, allow_pickle=False)
    header, blobs, offset = {}, [], 0
    for name in sorted(arrays.files):
        a = np.ascontiguousarray(arrays[name])
        if a.dtype.name not in DTYPES:
            raise ValueError(f"{src}: array '{name}' has dtype {a.dtype.name}, "
                             f"expected one of {', '.join(DTYPES)}")
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": DTYPES[a.dtype.name], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, dst)
    return len(header)


def main(argv):
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr if len(argv) != 2 else sys.stdout)
        return 0 if len(argv) == 2 else 2
    try:
        n = convert(argv[1], argv[2])
    except (OSError, ValueError) as e:
        print(f"npz_to_safetensors: {e}", file=sys.stderr)
        return 2
    print(f"wrote {argv[2]} ({n} tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
