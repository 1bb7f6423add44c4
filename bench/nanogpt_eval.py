#!/usr/bin/python3
"""The validation loss of a nanoGPT checkpoint on the whole split: every
non-overlapping window of block_size characters, in order, as
`attn train --eval-iters 0` and bench/gpt_torch.py --eval-iters 0 measure it
(nanoGPT's own figure is the mean of eval_iters random batches).

  nanogpt_eval.py NANOGPT_DIR CKPT_PT VAL_BIN [BATCH]

Prints one JSON object: {"val_loss": .., "windows": .., "iter_num": ..}.
"""
import contextlib
import json
import sys

import numpy as np
import torch


def main():
    ng, ckpt_path, val_path = sys.argv[1:4]
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 12
    sys.path.insert(0, ng)
    from model import GPT, GPTConfig  # nanoGPT's, from its checkout

    ck = torch.load(ckpt_path, map_location="cpu")
    with contextlib.redirect_stdout(sys.stderr):  # model.py prints notes
        model = GPT(GPTConfig(**ck["model_args"]))
    sd = {k[len("_orig_mod."):] if k.startswith("_orig_mod.") else k: v for k, v in ck["model"].items()}
    model.load_state_dict(sd)
    model.eval()
    T = model.config.block_size
    val = torch.from_numpy(np.fromfile(val_path, dtype=np.uint16).astype(np.int64))
    w = (len(val) - 1) // T
    x, y = val[: w * T].view(w, T), val[1 : w * T + 1].view(w, T)
    total = 0.0
    with torch.no_grad():
        for i in range(0, w, batch):
            _, loss = model(x[i : i + batch], y[i : i + batch])
            total += loss.item() * len(x[i : i + batch])
    print(json.dumps({"val_loss": total / w, "windows": w, "iter_num": ck.get("iter_num")}))


if __name__ == "__main__":
    sys.exit(main())
