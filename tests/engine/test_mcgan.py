"""Multi-CryoGAN: projectors against the Fourier slice and exact projections, the per-sample gradient penalty,
training on a homogeneous noise-free stack improves FSC against the truth, FSCCC and proportions, bad input,
checkpoints as manifolds, the CLI."""

import json

import numpy as np
import pytest
import torch

from cryoforge.conventions import random_rotations
from cryoforge.latent import ManifoldError
from cryoforge.multicryogan.data import ParticleStack, fourier_crop, load_stack
from cryoforge.multicryogan.fsccc import (
    align_to_reference,
    discrete_proportions,
    fsc_area,
    fsccc_matrix,
    matrix_agreement,
)
from cryoforge.multicryogan.model import Critic, Generator, McganConfig
from cryoforge.multicryogan.projector import (
    analytic_projections,
    form_images,
    gaussian_blobs,
    project_fourier,
    project_real,
)
from cryoforge.multicryogan.train import McganTrainConfig, McganTrainer


def _rel(a, b):
    return float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())


def test_projectors_match_fourier_slice_and_exact_projections():
    from torch_fourier_slice import project_3d_to_2d

    vol, blobs = gaussian_blobs(32, seed=2)
    rots = random_rotations(6, 5)
    exact = analytic_projections(32, blobs, rots)
    fourier = project_fourier(vol[None], rots)
    real = project_real(vol[None], rots)
    # the simulator's convention: teamtomo's slice at Rᵀ (cryoforge.sim.particles)
    assert torch.allclose(fourier, project_3d_to_2d(vol, rots.transpose(-1, -2)), atol=1e-4)
    assert _rel(fourier, exact) < 0.02
    assert _rel(real, fourier) < 0.05
    assert _rel(real, exact) < 0.05
    wrong = project_fourier(vol[None], rots.transpose(-1, -2))  # the other convention is a different image
    assert _rel(wrong, exact) > 0.3


def test_batched_projection_is_volume_major_and_differentiable():
    vol, _ = gaussian_blobs(16, count=5, sigma=1.2, seed=1)
    vols = torch.stack([vol, vol.flip(0)]).requires_grad_(True)
    rots = random_rotations(3, 0)
    out = project_fourier(vols, rots)
    assert out.shape == (6, 16, 16)
    assert torch.allclose(out[3:], project_fourier(vols[1:2].detach(), rots), atol=1e-5)
    out.square().sum().backward()
    assert vols.grad is not None and vols.grad.abs().sum() > 0


def test_image_formation_shift_ctf_noise():
    from cryoforge.ctf import CTFParams

    vol, _ = gaussian_blobs(32, seed=0)
    proj = project_fourier(vol[None], random_rotations(2, 0))
    ctf = CTFParams(defocus_u=np.array([15000.0, 15000.0]), defocus_v=np.array([15000.0, 15000.0]),
                    defocus_angle=np.zeros(2))
    clean = form_images(proj, None, ctf, 3.0, None)
    assert not torch.allclose(clean, proj, atol=1e-3)
    g = torch.Generator().manual_seed(0)
    noisy = form_images(proj, None, ctf, 3.0, torch.tensor(2.0), g)
    assert abs(float((noisy - clean).std()) - 2.0) < 0.1
    shifted = form_images(proj, torch.tensor([[2.0, 0.0], [0.0, 0.0]]), None, 3.0, None)
    assert torch.allclose(shifted[0], torch.roll(proj[0], 2, dims=-1), atol=1e-3)


def test_gradient_penalty_is_per_sample_for_images():
    from cryoforge.gan import gradient_penalty

    torch.manual_seed(0)
    critic = Critic(McganConfig(box=16, cwidth=4), 16)
    real, fake = torch.randn(4, 16, 16), torch.randn(4, 16, 16)
    got = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(3))
    eps = torch.rand(4, 1, 1, generator=torch.Generator().manual_seed(3))
    hand = []
    for i in range(4):  # one image at a time: its own gradient norm
        x = (eps[i] * real[i] + (1 - eps[i]) * fake[i])[None].requires_grad_(True)
        grad, = torch.autograd.grad(critic(x).sum(), x)
        hand.append((grad.norm() - 1) ** 2)
    assert torch.allclose(got, torch.stack(hand).mean(), rtol=1e-4)
    x = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x).sum(), x)
    per_pixel = ((grad.abs() - 1) ** 2).mean()  # the public CryoGAN code's norm
    assert not torch.allclose(got, per_pixel, rtol=1e-2)


def test_generator_segment_prior_and_shapes():
    cfg = McganConfig(box=16, zdim=4, gwidth=4)
    gen = Generator(cfg)
    assert cfg.latent_dim == 1
    z = gen.latent(torch.tensor([[0.0], [1.0]]))
    assert torch.allclose(z[0], gen.z0) and torch.allclose(z[1], gen.z1)
    assert gen(torch.rand(3, 1)).shape == (3, 16, 16, 16)
    assert McganConfig(prior="gaussian", zdim=5).latent_dim == 5
    with pytest.raises(ValueError, match="powers of two"):
        McganConfig(box=24)


def test_mapping_network_starts_as_identity_learns_and_reloads(tmp_path):
    from cryoforge.io.checkpoint import save_checkpoint
    from cryoforge.multicryogan.train import ARCH_KEYS, load_generator

    cfg = McganConfig(box=16, zdim=4, gwidth=2, mapping=2)
    gen = Generator(cfg)
    coords = torch.rand(5, 1)
    z = gen.latent(coords)
    assert torch.equal(gen.mapping(z), torch.zeros_like(z))  # residual, last layer zero: training starts plain
    plain = Generator(McganConfig(box=16, zdim=4, gwidth=2))
    plain.load_state_dict({k: v for k, v in gen.state_dict().items() if not k.startswith("mapping.")})
    assert torch.allclose(gen(coords), plain(coords))
    gen(coords).square().mean().backward()
    assert gen.mapping[-1].weight.grad.abs().sum() > 0  # the zero layer still learns
    with pytest.raises(ValueError, match="mapping"):
        McganConfig(mapping=-1)

    with torch.no_grad():
        gen.mapping[-1].weight.normal_()
    config = {**cfg.as_dict(), "pixel_size": 4.0}
    save_checkpoint(tmp_path / "m.pt", "multicryogan", config, {"generator": gen.state_dict()})
    back, _ = load_generator(tmp_path / "m.pt")
    assert back.cfg.mapping == 2 and torch.allclose(back(coords), gen(coords))
    # a checkpoint from before the mapping network (no "mapping" in its config) opens as the plain decoder
    old = {k: v for k, v in config.items() if k != "mapping"}
    assert "mapping" in ARCH_KEYS
    save_checkpoint(tmp_path / "old.pt", "multicryogan", old, {"generator": plain.state_dict()})
    back, _ = load_generator(tmp_path / "old.pt")
    assert back.mapping is None and torch.allclose(back(coords), plain(coords))


def _homogeneous_stack(n=16, count=1000):
    from cryoforge.jobs.runner import drive
    from cryoforge.sim.particles import Ensemble, ParticleParams, simulate_particles_job

    vol, _ = gaussian_blobs(n, count=6, sigma=1.5, seed=3)
    imgs, _, _ = drive(simulate_particles_job(Ensemble(vol.numpy(), None), count,
                                              ParticleParams(snr=None, apply_ctf=False, pixel_size=4.0), seed=0))
    return vol, ParticleStack(imgs, None, 4.0)


def test_training_on_a_homogeneous_noise_free_stack_improves_fsc():
    vol, data = _homogeneous_stack()
    tr = McganTrainer(data, McganConfig(box=16, gwidth=8, cwidth=16),
                      McganTrainConfig(batch=16, poses=8, n_critic=2, seed=0))

    def score():
        placed, _ = align_to_reference(tr.volumes([[0.5]])[0], vol)
        return fsc_area(placed, vol)

    before = score()
    for step in range(1, 251):
        tr.train_step(step)
    after = score()
    assert after > before + 0.1, (before, after)


def test_same_seed_same_weights_and_resume(tmp_path):
    from cryoforge.jobs.runner import drive
    from cryoforge.multicryogan.train import train_mcgan_job

    _, data = _homogeneous_stack(count=64)
    cfg, tc = McganConfig(box=16, gwidth=2, cwidth=4), McganTrainConfig(batch=8, poses=4, n_critic=2)
    ck = tmp_path / "m.pt"
    drive(train_mcgan_job(data, cfg, tc, 3, ck, validate_every=0))
    drive(train_mcgan_job(data, cfg, tc, 5, ck, validate_every=0))  # resumes at 3
    straight = tmp_path / "s.pt"
    drive(train_mcgan_job(data, cfg, tc, 5, straight, validate_every=0))
    a = torch.load(ck, weights_only=True)["state_dicts"]["generator"]
    b = torch.load(straight, weights_only=True)["state_dicts"]["generator"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)

    from cryoforge.manifold import open_manifold

    m = open_manifold(ck)
    assert m.kind == "multicryogan" and m.latent_dim == 1 and m.box == 16 and m.voxel_size == 4.0
    assert m.decode([[0.0], [1.0]]).shape == (2, 16, 16, 16)
    assert m.data_labels[0] == "α=0.00" and len(m.data_latents) == 21


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


def test_fourier_crop_keeps_band_limited_content():
    vol, blobs = gaussian_blobs(32, seed=4, sigma=2.5)
    img = project_fourier(vol[None], random_rotations(1, 0))
    small = fourier_crop(img, 16)
    assert small.shape == (1, 16, 16)
    assert float(small.mean()) == pytest.approx(float(img.mean()), rel=1e-4)
    assert _rel(small[0], img[0, ::2, ::2]) < 0.1


def _write_stack(path, n, size, star_ctf=True):
    from cryoforge.ctf import CTFParams
    from cryoforge.io.mrc import write_mrc
    from cryoforge.io.star import ParticleMetadata, write_particles_star

    write_mrc(path, np.random.default_rng(0).standard_normal((n, size, size)).astype(np.float32), 3.0, stack=True)
    ctf = CTFParams(defocus_u=np.full(n, 15000.0), defocus_v=np.full(n, 15000.0), defocus_angle=np.zeros(n)) \
        if star_ctf else None
    star = path.with_suffix(".star")
    write_particles_star(star, ParticleMetadata(image_names=[f"{i + 1}@{path.name}" for i in range(n)],
                                                ctf=ctf, pixel_size=3.0))
    return star


def test_bad_input_mixed_sizes_and_missing_ctf(tmp_path):
    a, b = tmp_path / "a.mrcs", tmp_path / "b.mrcs"
    star_a = _write_stack(a, 4, 16)
    _write_stack(b, 4, 32)
    with pytest.raises(ManifoldError, match="mixed image sizes.*a.mrcs: 16².*b.mrcs: 32²"):
        load_stack([a, b], use_ctf=False)
    nctf = tmp_path / "n.mrcs"
    star_n = _write_stack(nctf, 4, 16, star_ctf=False)
    with pytest.raises(ManifoldError, match="no CTF columns.*--no-ctf"):
        load_stack(nctf, star_n)
    with pytest.raises(ManifoldError, match="STAR file.*--no-ctf"):
        load_stack(a)
    assert load_stack(nctf, star_n, use_ctf=False).ctf is None  # allowed when the user says so
    assert load_stack(a, star_a).ctf is not None
    with pytest.raises(ManifoldError, match="4 particles for 8 images"):
        load_stack([a, a], star_a)


def test_cli_train_and_eval(tmp_path, capsys):
    from cryoforge.cli import main
    from cryoforge.io.mrc import write_mrc

    _, data = _homogeneous_stack(count=64)
    stack = tmp_path / "p.mrcs"
    write_mrc(stack, np.asarray(data.images), 4.0, stack=True)
    ck = tmp_path / "m.pt"
    assert main(["mcgan", "train", str(stack), "--no-ctf", "--checkpoint", str(ck), "--steps", "3", "--gwidth", "2",
                 "--cwidth", "4", "--batch", "8", "--poses", "4", "--validate-every", "3"]) == 0
    payload = torch.load(ck, weights_only=True)
    assert payload["kind"] == "multicryogan" and payload["extra"]["command"].startswith("cryoforge mcgan train")
    out = tmp_path / "eval"
    assert main(["mcgan", "eval", str(ck), "--out", str(out), "--points", "4"]) == 0
    rep = json.loads((out / "eval.json").read_text())
    assert np.shape(rep["fsccc_matrix"]) == (5, 5)
    curve = rep["ends_fsc"]  # the ends' FSC per shell; its area is the matrix's corner entry
    f = np.asarray(curve["frequency_cycles_per_px"]) / 0.5
    assert np.trapezoid(curve["generator"], f) == pytest.approx(rep["fsccc_matrix"][0][-1], abs=1e-6)
    assert set(rep["proportions"]) >= {"first", "last", "transition"}
    assert (out / "fsccc.png").stat().st_size > 1000 and (out / "volumes.mrc").is_file()
