#!/usr/bin/python3
"""Character-level tiny Shakespeare in the layout nanoGPT's train.py reads
(data/shakespeare_char/{train,val}.bin as uint16, meta.pkl with vocab_size,
itos, stoi): sorted characters, the first 90% for training, as `attn train`
and bench/gpt_torch.py split it. Used by bench_gpt.sh, in a temporary folder.

  nanogpt_data.py TEXT OUT_DIR
"""
import os
import pickle
import sys

import numpy as np


def main():
    text_path, out = sys.argv[1], sys.argv[2]
    text = open(text_path, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    n = int(0.9 * len(ids))
    os.makedirs(out, exist_ok=True)
    ids[:n].tofile(os.path.join(out, "train.bin"))
    ids[n:].tofile(os.path.join(out, "val.bin"))
    with open(os.path.join(out, "meta.pkl"), "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)


if __name__ == "__main__":
    sys.exit(main())
