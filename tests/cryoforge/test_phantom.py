"""Tests of :mod:`cryoforge.phantom`."""

import numpy as np

from cryoforge.phantom import blob_phantom, noisy_half_maps


def test_same_seed_same_result():
    a = noisy_half_maps(blob_phantom(16, 2.0, seed=1), 1.0, seed=2)
    b = noisy_half_maps(blob_phantom(16, 2.0, seed=1), 1.0, seed=2)
    np.testing.assert_array_equal(a[0], b[0])
