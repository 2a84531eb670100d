"""Parts of the hypothesis test: GAN layers, per-sample gradient penalty, KDE/rejection, p̂, BH, scoring."""

import numpy as np
import pytest
import torch

from cryoforge.gan import gradient_penalty
from cryoforge.hyptest.montecarlo import bh_qvalues, check_resolution, gaussian_tail, p_value
from cryoforge.hyptest.null import fit_kde, in_rejection_region, log_prior, rejection_sample
from cryoforge.hyptest.score import ScoreConfig, TemplateScorer, score_templates
from cryoforge.hyptest.templates import check_templates
from cryoforge.hyptest.wgan import Critic, Generator, MinibatchDiscrimination, WGANConfig


class HalfSquare(torch.nn.Module):
    """D(x)_i = ½‖x_i‖², so ∇D(x)_i = x_i: the per-sample norms are known by hand."""

    def forward(self, x):
        return 0.5 * (x ** 2).flatten(1).sum(1)


def test_gradient_penalty_is_per_sample():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(4, 3, 3, 3, generator=g), torch.randn(4, 3, 3, 3, generator=g) * 0.1
    gp = gradient_penalty(HalfSquare(), real, fake, torch.Generator().manual_seed(5))
    eps = torch.rand(4, 1, 1, 1, generator=torch.Generator().manual_seed(5))
    x = eps * real + (1 - eps) * fake
    by_hand = ((x.flatten(1).norm(dim=1) - 1) ** 2).mean()
    whole_batch = (x.norm() - 1) ** 2
    assert gp.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert abs(gp.item() - whole_batch.item()) > 0.1


def test_minibatch_discrimination_depends_on_the_batch():
    torch.manual_seed(0)
    mbd = MinibatchDiscrimination(10, 5, 3)
    f = torch.randn(3, 10)
    out = mbd(f)
    assert out.shape == (3, 15)
    f2 = f.clone()
    f2[2] += 1.0
    out2 = mbd(f2)
    assert torch.equal(out[0, :10], out2[0, :10])  # its own features are unchanged …
    assert not torch.allclose(out[0, 10:], out2[0, 10:])  # … its batch features are not
    assert torch.allclose(mbd(f[:1])[0, 10:], torch.zeros(5))  # alone in its batch: nothing to compare with


@pytest.mark.parametrize("box", [32, 64])
def test_generator_and_critic_shapes(box):
    cfg = WGANConfig(box=box, width=2, mbd_kernels=4, mbd_dim=2)
    x = Generator(cfg)(torch.randn(3, 100))
    assert x.shape == (3, box, box, box) and x.min() >= -1 and x.max() <= 1
    assert Critic(cfg)(x).shape == (3,)
    with pytest.raises(ValueError, match="32 or 64"):
        WGANConfig(box=48)


def test_kde_bandwidth_is_chosen_by_cross_validation():
    from sklearn.model_selection import KFold
    from sklearn.neighbors import KernelDensity

    rng = np.random.default_rng(0)
    codes = rng.normal(size=(120, 4)) * 0.3
    grid = [0.03, 0.1, 0.2, 0.4, 1.0, 3.0]
    kde = fit_kde(codes, grid)

    def cv_loglik(bw):
        return np.mean([KernelDensity(bandwidth=bw).fit(codes[tr]).score(codes[te])
                        for tr, te in KFold(3).split(codes)])

    assert kde.bandwidth == grid[int(np.argmax([cv_loglik(b) for b in grid]))]
    assert fit_kde(codes * 10).bandwidth > 3 * fit_kde(codes).bandwidth  # the default grid scales with the data


def test_rejection_sampling_never_returns_codes_inside_the_region():
    rng = np.random.default_rng(1)
    kde = fit_kde(rng.normal(size=(60, 3)) * 0.4 + 0.3)
    ns = rejection_sample(kde, 300, 3, prior=5.0, seed=2, batch=256)
    assert len(ns.z) == 300 and ns.rejected > 0 and ns.drawn == 300 + ns.rejected
    assert not in_rejection_region(ns.z.numpy(), kde, 5.0).any()
    again = rejection_sample(kde, 300, 3, prior=5.0, seed=2, batch=256)
    assert torch.equal(ns.z, again.z)
    z = np.zeros((1, 3))
    assert log_prior(z)[0] == pytest.approx(-1.5 * np.log(2 * np.pi))
    with pytest.raises(ValueError, match="positive"):
        in_rejection_region(z, kde, 0.0)


def test_p_value_is_a_direct_count_and_the_gaussian_tail():
    null = np.array([0.1, 0.3, 0.5, 0.5, 0.7, 0.9, 0.2, 0.4])
    assert p_value(0.5, null) == 4 / 8  # ties count against the template
    assert p_value(0.95, null) == 0.0
    assert p_value(0.0, null) == 1.0
    z, p = gaussian_tail(null.mean() + null.std(ddof=1), null)
    assert z == pytest.approx(1.0) and p == pytest.approx(0.158655, rel=1e-4)


def test_bh_matches_scipy():
    from scipy.stats import false_discovery_control

    p = np.random.default_rng(3).uniform(size=50) ** 2
    assert np.allclose(bh_qvalues(p), false_discovery_control(p, method="bh"))
    with pytest.raises(ValueError):
        bh_qvalues([0.2, 1.5])


def test_bad_inputs_are_clear():
    with pytest.raises(ValueError, match="cannot reach"):
        check_resolution(99, 0.01)
    check_resolution(100, 0.01)
    with pytest.raises(ValueError, match="mixes box sizes"):
        check_templates([np.zeros((16, 16, 16)), np.zeros((32, 32, 32))])
    with pytest.raises(ValueError, match="match the subtomogram"):
        score_templates(np.zeros((16, 16, 16)), np.zeros((2, 20, 20, 20)))


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
        assert int(r["scores"].argmax()) == i
        assert r["scores"][i] > 0.85  # a 10° grid, no local refinement
        assert rotation_angle_deg(r["rotations"][i], rot) < 20  # two grid steps: 5-blob clusters are nearly symmetric
        assert torch.allclose(r["shifts"][i], torch.tensor([1.5, -1.0, 0.5]), atol=1.0)


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
    plain = TemplateScorer(p, mask, cfg).score(torch.cat([t, blurred]))["scores"]
    equal = TemplateScorer(p, mask, cfg, profile=radial_profile(t)).score(torch.cat([t, blurred]))["scores"]
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


def test_p_text_says_below_the_resolution_of_the_null_set():
    from cryoforge.hyptest.montecarlo import p_text

    assert p_text(0.0, 999) == "< 0.001" and p_text(0.25, 999) == "= 0.25"
