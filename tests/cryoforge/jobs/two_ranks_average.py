"""Run under torchrun by test_distributed.py: the Fourier-weighted average of 30 subtomograms summed by the ranks in
chunks of 4 (rank 0: chunks 1–4, rank 1: 5–8) against one process's; rank 0 writes ``ok`` or the difference to the
file named by the first argument."""

import sys

import torch

from cryoforge.align.average import weighted_average
from cryoforge.conventions import random_rotations
from cryoforge.jobs import distributed

world = distributed.World.from_env()
distributed.start(world)
g = torch.Generator().manual_seed(0)
x = torch.randn(30, 12, 12, 12, generator=g)
masks = (torch.rand(30, 12, 12, 12, generator=g) > 0.3).float()
rot, sh = random_rotations(30, seed=1), torch.randn(30, 3, generator=g)
two = weighted_average(x, masks, rot, sh, chunk=4, world=world)
one = weighted_average(x, masks, rot, sh, chunk=4)
if world.main:
    with open(sys.argv[1], "w") as fh:
        fh.write("ok" if torch.equal(one, two) else f"differ by {float((one - two).abs().max()):.3g}")
distributed.stop(world)
