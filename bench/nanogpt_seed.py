"""nanogpt_seed.py SEED train.py [ARGS...]: run nanoGPT's own train.py with
another seed.

train.py seeds torch with a fixed 1337 (plus the DDP rank) and has no option
for it, so three seeds of nanoGPT need this: torch.manual_seed is wrapped to
seed SEED + (the value train.py asks for - 1337), then train.py runs as the
main program from the current folder with ARGS, untouched. SEED 1337 is
nanoGPT's own run. Nothing of nanoGPT is copied here.
"""
import os
import runpy
import sys

import torch

seed = int(sys.argv[1])
_manual_seed = torch.manual_seed


def _seeded(s):
    return _manual_seed(seed + (int(s) - 1337))


torch.manual_seed = _seeded
sys.argv = sys.argv[2:]
# as `python3 train.py` would: its folder first on the path (model.py)
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
runpy.run_path(sys.argv[0], run_name="__main__")
