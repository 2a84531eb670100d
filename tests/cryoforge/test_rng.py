"""cryoforge.rng: seeded model initialisation that leaves torch's global random state as it was."""

import re

import torch

from cryoforge.rng import seeded
from tests.helpers import REPO

SRC = REPO / "src" / "cryoforge"


def test_same_seed_same_weights_and_the_global_stream_untouched():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7):
        a = torch.nn.Linear(4, 4).weight.detach().clone()
    assert torch.equal(torch.rand(3), expected_next)  # the caller's stream continues as if nothing happened
    with seeded(7):
        b = torch.nn.Linear(4, 4).weight.detach().clone()
    with seeded(8):
        c = torch.nn.Linear(4, 4).weight.detach().clone()
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_library_code_never_seeds_the_global_generator():
    bad = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py") if p.name != "rng.py"
           for i, line in enumerate(p.read_text().splitlines(), 1)
           if re.search(r"\btorch\.(random\.)?manual_seed\(|\bnp\.random\.seed\(", line)]
    assert not bad, bad


def test_trainers_initialise_from_their_seed():
    import numpy as np

    from cryoforge.align.config import GumNetConfig, TrainConfig
    from cryoforge.align.train import GumNetTrainer

    maps = np.zeros((1, 32, 32, 32), np.float32)
    w = [next(GumNetTrainer(GumNetConfig.preset("small", box=32), TrainConfig(seed=s), maps).model.parameters())
         .detach().clone() for s in (0, 0, 1)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])
