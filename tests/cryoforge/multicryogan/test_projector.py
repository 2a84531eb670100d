"""Tests of :mod:`cryoforge.multicryogan.projector`."""

import numpy as np
import torch

from cryoforge.conventions import random_rotations
from cryoforge.multicryogan.projector import (
    analytic_projections,
    form_images,
    gaussian_blobs,
    project_fourier,
    project_real,
)
from tests.helpers import relative_error


def test_projectors_match_fourier_slice_and_exact_projections():
    from torch_fourier_slice import project_3d_to_2d

    vol, blobs = gaussian_blobs(32, seed=2)
    rots = random_rotations(6, 5)
    exact = analytic_projections(32, blobs, rots)
    fourier = project_fourier(vol[None], rots)
    real = project_real(vol[None], rots)
    # the simulator's convention: teamtomo's slice at Rᵀ (cryoforge.sim.particles)
    assert torch.allclose(fourier, project_3d_to_2d(vol, rots.transpose(-1, -2)), atol=1e-4)
    assert relative_error(fourier, exact) < 0.02
    assert relative_error(real, fourier) < 0.05
    assert relative_error(real, exact) < 0.05
    wrong = project_fourier(vol[None], rots.transpose(-1, -2))  # the other convention is a different image
    assert relative_error(wrong, exact) > 0.3


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
