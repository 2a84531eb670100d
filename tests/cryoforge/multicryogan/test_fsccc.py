"""Tests of :mod:`cryoforge.multicryogan.fsccc`."""

import numpy as np
import pytest
import torch

from cryoforge.multicryogan.fsccc import (
    discrete_proportions,
    fsc_area,
    fsccc_matrix,
    matrix_agreement,
)
from cryoforge.multicryogan.projector import (
    gaussian_blobs,
)


def test_fsc_area_and_fsccc_matrix():
    vol, _ = gaussian_blobs(16, count=5, seed=1)
    g = torch.Generator().manual_seed(0)
    assert fsc_area(vol, vol) == pytest.approx(1.0, abs=1e-6)
    assert abs(fsc_area(vol, torch.randn(16, 16, 16, generator=g))) < 0.2
    vols = torch.stack([vol + s * torch.randn(16, 16, 16, generator=g) for s in (0.0, 0.02, 0.05, 0.1, 0.3)])
    m = fsccc_matrix(vols)
    assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1)
    assert m[0, 1] > m[0, 2] > m[0, 3] > m[0, 4]  # similarity falls with distance
    agree = matrix_agreement(m[::-1, ::-1], m)
    assert agree["reversed"] and agree["pearson"] == pytest.approx(1.0)
    assert agree["mean_abs_difference"] == pytest.approx(0.0, abs=1e-12)
    # a manifold collapsed towards one volume keeps the pattern (Pearson 1) but not the scale: the report shows it
    collapsed = matrix_agreement(1 - 0.05 * (1 - m), m)
    assert collapsed["pearson"] == pytest.approx(1.0) and not collapsed["reversed"]
    assert collapsed["ends_similarity"] == pytest.approx(0.95 + 0.05 * m[0, -1])
    assert collapsed["ends_similarity_truth"] == pytest.approx(m[0, -1]) and m[0, -1] < 0.9
    assert collapsed["mean_abs_difference"] == pytest.approx(0.95 * np.mean(1 - m[~np.eye(5, dtype=bool)]))
    with pytest.raises(ValueError, match="same size"):
        matrix_agreement(m, m[:3, :3])


def test_discrete_proportions_read_the_step():
    alphas = np.linspace(0, 1, 101)
    # a generator that maps α < 0.25 to state A, α > 0.30 to state B, and blends in between
    w = np.clip((alphas - 0.25) / 0.05, 0, 1)
    to_first, to_last = 1 - 0.4 * w, 0.6 + 0.4 * w
    p = discrete_proportions(to_first, to_last, tol=0.2)
    assert p["first"] == pytest.approx(0.26, abs=0.015)
    assert p["last"] == pytest.approx(0.71, abs=0.015)
    assert p["first"] + p["last"] + p["transition"] == pytest.approx(1.0)
