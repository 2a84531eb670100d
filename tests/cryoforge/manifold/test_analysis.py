"""Tests of :mod:`cryoforge.manifold.analysis`."""

import numpy as np
import pytest


def test_nearest_structure_names_the_template():
    from cryoforge.manifold.analysis import nearest_structure

    rng = np.random.default_rng(0)
    maps = rng.random((4, 8, 8, 8))
    name, score, scores = nearest_structure(maps[2] + 0.1 * rng.random((8, 8, 8)), maps, list("abcd"))
    assert name == "c" and score == pytest.approx(scores.max()) and score > 0.9
