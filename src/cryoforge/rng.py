"""Seeded model initialisation without touching torch's global random state (:mod:`cryoforge.conventions`).

PyTorch layers draw their initial weights from the global generator. Library code must not reseed it (a caller's
own random stream would change under it), yet the same seed must give the same initial weights. :func:`seeded`
does both: inside the block the global CPU generator is seeded with ``seed``; on leaving, its previous state is
restored. Build every model inside it (models are built on the CPU, then moved to their device).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global CPU generator seeded by ``seed``; restore the caller's state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))  # the CPU generator: models are built on the CPU
        yield
