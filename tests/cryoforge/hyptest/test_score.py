"""Tests of :mod:`cryoforge.hyptest.score`."""

import pytest
import torch

from cryoforge.hyptest.config import ScoreConfig
from cryoforge.hyptest.score import TemplateScorer


def test_scorer_finds_the_true_template_with_a_wedge_and_a_shift(blob_clusters):
    from cryoforge.conventions import random_rotations, rotation_angle_deg
    from cryoforge.geometry import transform_volumes
    from cryoforge.sim.tomo import centred_wedge

    t = torch.from_numpy(blob_clusters())
    mask = centred_wedge(24, -60, 60)
    cfg = ScoreConfig(coarse_box=12, n_rotations=3000)
    for i in range(len(t)):
        rot = random_rotations(1, 10 + i)[0]
        p = transform_volumes(t[i], rot, torch.tensor([1.5, -1.0, 0.5]))
        p = torch.fft.ifftn(torch.fft.fftn(p) * torch.fft.ifftshift(mask)).real  # the wedge
        r = TemplateScorer(p, mask, cfg).score(t)
        assert int(r.scores.argmax()) == i
        assert r.scores[i] > 0.85  # a 10° grid, no local refinement
        # within three grid steps: 5-blob clusters are nearly symmetric (cluster 1 scores 0.937 at 25° from the truth,
        # higher than the 0.919 the amplitude-ranked candidates alone found at 18°)
        assert rotation_angle_deg(r.rotations[i], rot) < 30
        assert torch.allclose(r.shifts[i], torch.tensor([1.5, -1.0, 0.5]), atol=1.0)


def test_spectral_equalisation_undoes_a_radial_filter_of_the_template(blob_clusters):
    """A blurred copy of the true template scores like the template once both are equalised to one radial profile;
    without equalisation the blur costs correlation (blurred pseudo-complexes would lose to sharp known maps)."""
    from cryoforge.fourier import gaussian_filter
    from cryoforge.hyptest.score import radial_profile
    from cryoforge.sim.tomo import centred_wedge

    t = torch.from_numpy(blob_clusters(n=24, k=1, seed=4, sigma=(0.8, 1.2)))
    blurred = gaussian_filter(t, 1.5)
    mask = centred_wedge(24, -60, 60)
    p = torch.fft.ifftn(torch.fft.fftn(t[0]) * torch.fft.ifftshift(mask)).real
    cfg = ScoreConfig(coarse_box=12, n_rotations=3000)
    plain = TemplateScorer(p, mask, cfg).score(torch.cat([t, blurred])).scores
    equal = TemplateScorer(p, mask, cfg, profile=radial_profile(t)).score(torch.cat([t, blurred])).scores
    assert plain[0] - plain[1] > 0.05
    assert abs(float(equal[0] - equal[1])) < 0.015
    assert abs(float(equal[0] - plain[0])) < 1e-4  # equalised to its own profile, the template is unchanged
    with pytest.raises(ValueError, match="radial profile"):
        TemplateScorer(p, mask, cfg, profile=torch.ones(3))


def test_radial_transfer_is_the_simulators_phase_flipped_ctf_times_mtf():
    from cryoforge.ctf import CTFParams
    from cryoforge.hyptest.score import radial_transfer
    from cryoforge.sim.tomo import transfer_3d

    n, vs, df = 48, 8.0, 40000.0
    r = radial_transfer(n, vs, df)
    full = transfer_3d((n, n, n), vs, CTFParams(defocus_u=df, defocus_v=df, amplitude_contrast=0.07), -60, 60)
    along_x = full[0, 0, : n // 2 + 1].abs()  # kz = ky = 0 lies in the sampled region
    assert torch.allclose(r[: n // 2 + 1], along_x, atol=1e-5)
    peak = int(torch.argmax(r[: n // 2]))  # 4 µm at 300 kV: |CTF| first vanishes near 1/(λ Δf)^½ after its first peak
    first_zero = next(i for i in range(peak + 1, n // 2) if r[i] <= r[i + 1])
    lam = 0.019687  # Å at 300 kV
    assert abs(first_zero - n * vs * (1 / (lam * df)) ** 0.5) <= 1.5


def test_radial_transfer_of_a_binned_subtomogram_takes_the_mtf_of_its_acquisition_pixel():
    from cryoforge.hyptest.score import radial_transfer
    from cryoforge.sim.tomo import detector_mtf

    n, vs, df = 32, 12.0, 30000.0
    native, binned = radial_transfer(n, vs, df), radial_transfer(n, vs, df, pixel_size=9.6)
    s = torch.arange(1, n // 2 + 1, dtype=torch.float32)
    expect = detector_mtf(s * 2 * 9.6 / (n * vs)) / detector_mtf(s * 2 / n)
    ok = native[1:n // 2 + 1] > 1e-4
    assert torch.allclose((binned[1:n // 2 + 1] / native[1:n // 2 + 1].clamp_min(1e-12))[ok], expect[ok], rtol=1e-4)
    assert binned[n // 2] > native[n // 2]  # the 12 Å Nyquist is only 0.8 of the 9.6 Å detector's


def test_phase_ranked_candidates_find_the_true_template_where_amplitudes_miss_it(blob_clusters):
    """Centred, noisy, wedge-limited subtomograms (a template-matching candidate): with two candidate rotations ranked by
    Fourier amplitudes the true template is often not the best; two more ranked by phase (``centred``) find it."""
    from cryoforge.conventions import random_rotations
    from cryoforge.geometry import transform_volumes
    from cryoforge.sim.tomo import centred_wedge

    t = torch.from_numpy(blob_clusters(k=6, blobs=8))
    mask = centred_wedge(24, -60, 60)
    g = torch.Generator().manual_seed(0)
    found = {0: 0, 2: 0}
    for i in range(len(t)):
        p = transform_volumes(t[i], random_rotations(1, 100 + i)[0])
        p = p + 6 * p.std() * torch.randn(p.shape, generator=g)
        p = torch.fft.ifftn(torch.fft.fftn(p) * torch.fft.ifftshift(mask)).real
        for centred in found:
            cfg = ScoreConfig(coarse_box=12, n_rotations=1000, candidates=2, centred=centred)
            found[centred] += int(TemplateScorer(p, mask, cfg).score(t).scores.argmax()) == i
    assert found[2] == len(t) and found[0] <= len(t) - 2, found
    with pytest.raises(ValueError, match="centred"):
        ScoreConfig(centred=-1).validate(24)
