"""Tests of :mod:`cryoforge.sim.phantoms`."""

import numpy as np
import pytest
import torch

from cryoforge.geometry import rotate_volume
from cryoforge.sim.density import model_to_density
from cryoforge.sim.phantoms import PHANTOMS, octahedral_group, phantom_model


@pytest.mark.parametrize("kind", PHANTOMS)
def test_phantoms_are_seeded_and_fit(kind):
    a, b, c = phantom_model(kind, 1), phantom_model(kind, 1), phantom_model(kind, 2)
    assert np.array_equal(a.coords, b.coords) and not np.array_equal(a.coords, c.coords)
    vol = model_to_density(a, 48, 8.0, resolution=16.0).numpy()  # 384 Å: the hypothesis test's box
    assert np.isfinite(vol).all() and vol.max() > 0


def test_ferritin_phantom_has_octahedral_symmetry():
    vol = torch.as_tensor(model_to_density(phantom_model("ferritin", 0), 40, 4.0, resolution=10.0))
    for g in octahedral_group()[[1, 5, 9, 17]]:
        rot = rotate_volume(vol, torch.as_tensor(g, dtype=torch.float32))
        assert np.corrcoef(rot.ravel(), vol.ravel())[0, 1] > 0.98
