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


def test_templates_blur_is_a_gaussian_of_sigma_angstrom(tmp_path):
    """``hyptest templates --blur σ`` (the paper's templates: 2 Å): each map is the unblurred one times the Gaussian's
    transfer exp(−2π²σ²k²), and templates.json records σ."""
    import json

    import numpy as np

    from cryoforge.cli import main
    from cryoforge.hyptest.templates import read_template_set

    for blur in ("0", "4"):
        assert main(["hyptest", "templates", "phantom:ribosome", "phantom:ring@2", "--box", "32", "--voxel-size", "12",
                     "--blur", blur, "--out", str(tmp_path / blur)]) == 0
    sharp, names, vs = read_template_set(tmp_path / "0")
    blurred, _, _ = read_template_set(tmp_path / "4")
    assert names == ["ribosome", "ring@2"] and vs == 12.0
    assert json.loads((tmp_path / "4" / "templates.json").read_text())["blur_A"] == 4.0
    f, fx = np.fft.fftfreq(32, 12.0), np.fft.rfftfreq(32, 12.0)
    k = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + fx[None, None, :] ** 2)
    ratio = np.abs(np.fft.rfftn(blurred[0])) / np.maximum(np.abs(np.fft.rfftn(sharp[0])), 1e-9)
    strong = np.abs(np.fft.rfftn(sharp[0])) > 1e-3 * np.abs(np.fft.rfftn(sharp[0])).max()
    assert np.allclose(ratio[strong], np.exp(-2 * (np.pi * 4.0 * k[strong]) ** 2), atol=1e-3)
