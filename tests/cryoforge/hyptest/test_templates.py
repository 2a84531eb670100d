"""Tests of :mod:`cryoforge.hyptest.templates`."""

import numpy as np
import pytest


def test_binning_to_the_templates_keeps_the_band_and_averages_the_noise_away():
    from cryoforge.hyptest.templates import bin_to_templates
    from cryoforge.sim.sources import MapSpec, load_map
    from cryoforge.sim.tomo import centred_wedge

    fine, coarse = load_map("phantom:assembly@4", MapSpec(40, 9.6)), load_map("phantom:assembly@4", MapSpec(32, 12.0))
    binned, mask = bin_to_templates(fine, centred_wedge(40, -60, 60).numpy(), 9.6, 12.0, 32)
    assert binned.shape == (1, 32, 32, 32) and mask.shape == (32, 32, 32)
    assert np.corrcoef(binned[0].ravel(), coarse.ravel())[0, 1] > 0.98  # the same map as made at 12 Å
    assert np.array_equal(mask, centred_wedge(32, -60, 60).numpy())
    noise = np.random.default_rng(0).normal(size=(4, 40, 40, 40)).astype(np.float32)
    ratio = bin_to_templates(noise, None, 9.6, 12.0, 32)[0].var() / noise.var()
    # white noise keeps the (32/40)³ of its variance inside the new band (less half of the three unpaired Nyquist
    # planes, 3/64): the band-limited signal stays, so the SNR rises ≈ 2×
    assert abs(ratio - (32 / 40) ** 3 * (1 - 3 / 64)) < 0.006
    same, _ = bin_to_templates(coarse, None, 12.0, 12.0, 32)
    assert np.array_equal(same[0], coarse)
    with pytest.raises(ValueError, match="coarser"):
        bin_to_templates(coarse, None, 14.0, 12.0, 32)
    with pytest.raises(ValueError, match="span"):
        bin_to_templates(fine, None, 8.0, 12.0, 32)
