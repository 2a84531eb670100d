"""Tests of :mod:`cryoforge.manifold.loaders`."""

import numpy as np
import pytest

from cryoforge.manifold import ManifoldError, open_manifold
from cryoforge.manifold.analytic import AnalyticManifold


def test_open_manifold_bad_inputs(tmp_path):
    from cryoforge.samples import GUMNET_CHECKPOINT, sample_path

    with pytest.raises(ManifoldError, match="'gumnet' checkpoint is not a generative model"):
        open_manifold(sample_path(GUMNET_CHECKPOINT))
    with pytest.raises(FileNotFoundError):
        open_manifold(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="not a cryoforge checkpoint"):
        open_manifold(tmp_path / "junk.pt")
    with pytest.raises(ManifoldError, match="no encoder"):
        AnalyticManifold(2).encode(np.zeros((32, 32, 32)))


def test_opening_the_shipped_wgan_reads_its_checkpoint_once(monkeypatch):
    import torch

    from cryoforge.manifold.loaders import open_manifold

    calls = []
    load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a[0]) or load(*a, **k))
    m = open_manifold("wgan")
    assert len(calls) == 1 and m.can_encode  # before: four reads of the same file
