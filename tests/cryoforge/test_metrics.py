"""Tests of :mod:`cryoforge.metrics`."""

import numpy as np
import pytest
import torch

from cryoforge.fourier import freq_radius
from cryoforge.jobs import Preview, Progress, Result, drive
from cryoforge.metrics import FSCCurve, fsc, fsc_full_map, masked_fsc_job, split_half_sets
from cryoforge.phantom import blob_phantom, noisy_half_maps


def test_fsc_of_map_with_itself_is_one_everywhere():
    v = blob_phantom(32, 2.0, seed=3)
    c = fsc(v, v, 2.0)
    assert len(c.fsc) == 17
    np.testing.assert_allclose(c.fsc, 1.0, atol=1e-5)
    assert c.resolution() == pytest.approx(4.0)  # never drops: Nyquist, 2 x voxel size
    np.testing.assert_allclose(c.frequency[[0, 16]], [0.0, 0.25])


def test_independent_noise_crossing_matches_expected_shell():
    n, vs = 48, 2.0
    signal = blob_phantom(n, vs, n_blobs=40, seed=4)
    for snr, seed in ((0.5, 11), (2.0, 12), (8.0, 13)):
        h1, h2 = noisy_half_maps(signal, snr, seed)
        measured = fsc(h1, h2, vs)
        # expected FSC per shell: S / (S + N), S = signal power in the shell, N = white noise power
        sigma2 = signal.var() / snr
        ps = (torch.abs(torch.fft.rfftn(torch.from_numpy(signal))) ** 2).numpy()
        shell = np.round(freq_radius((n,) * 3, rfft=True).numpy() * n).astype(int)
        s_shell = np.bincount(shell.ravel(), ps.ravel())[: n // 2 + 1] / np.bincount(shell.ravel())[: n // 2 + 1]
        expected = FSCCurve(measured.frequency, s_shell / (s_shell + sigma2 * n**3), vs)
        e, m = expected.crossing_shell(0.143), measured.crossing_shell(0.143)
        assert e is not None and m is not None
        assert abs(e - m) <= 1, (snr, e, m)


def test_resolution_interpolates_between_shells():
    f = np.arange(5) / (8 * 2.0)
    c = FSCCurve(f, np.array([1.0, 0.9, 0.5, 0.1, 0.0]), 2.0)
    # 0.143 lies 0.8925 of the way from shell 2 to 3
    expected = 1 / (f[2] + (0.5 - 0.143) / 0.4 * (f[3] - f[2]))
    assert c.resolution(0.143) == pytest.approx(expected)
    assert c.resolution(0.5) == pytest.approx(1 / f[2])


def test_fsc_rejects_bad_input():
    with pytest.raises(ValueError, match="cubic"):
        fsc(np.zeros((8, 8, 10)), np.zeros((8, 8, 10)))
    with pytest.raises(ValueError, match="same shape"):
        fsc(np.zeros((8, 8, 8)), np.zeros((10, 10, 10)))
    bad = np.zeros((8, 8, 8))
    bad[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fsc(bad, bad)


def test_gold_standard_split():
    a, b = split_half_sets(101, seed=5)
    assert len(a) == 51 and len(b) == 50
    assert set(a).isdisjoint(b) and set(a) | set(b) == set(range(101))
    a2, _ = split_half_sets(101, seed=5)
    assert np.array_equal(a, a2)
    assert not np.array_equal(a, split_half_sets(101, seed=6)[0])
    np.testing.assert_allclose(fsc_full_map([0.143, 1.0, 0.0]), [0.25021872, 1.0, 0.0])


def test_masked_fsc_job_events_and_correction():
    signal = blob_phantom(32, 2.0, seed=2, resolution=6.0)
    h1, h2 = noisy_half_maps(signal, 2.0, seed=9)
    events = []
    res = drive(masked_fsc_job(h1, h2, 2.0, n_repeats=3, seed=1), events.append)
    kinds = {type(e) for e in events}
    assert {Progress, Preview, Result} <= kinds
    steps = [e.step for e in events if isinstance(e, Progress)]
    assert steps == sorted(steps) and steps[-1] == 5
    beyond = res.corrected.frequency > 1 / res.randomize_beyond_A
    # the random-phase FSC is small beyond the randomisation frequency, so the correction is mild and bounded
    assert np.all(np.abs(res.randomized.fsc[beyond][2:]) < 0.3)
    assert np.all(res.corrected.fsc <= 1.0 + 1e-6)
