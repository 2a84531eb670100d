"""Differentiable image formation for Multi-CryoGAN: projection, shift, CTF, noise.

Two projectors with the same convention (the one :mod:`cryoforge.sim.particles` simulates with): the image of a
volume ``V`` at pose ``R`` (:mod:`cryoforge.conventions`: RELION's ``A``) is the line integral along z of
``T(R) V`` (:func:`cryoforge.geometry.transform_volumes`), i.e. the central slice of ``V``'s transform at
``Rᵀ``'s xy plane.

- :func:`project_fourier`: teamtomo's torch-fourier-slice, every volume of a batch at every pose of a set
  (``project_3d_to_2d_multichannel``: one padded 3-D FFT per volume, trilinear slices, sinc² correction).
- :func:`project_real`: rotate with ``grid_sample`` and sum (what the public CryoGAN code does).

:func:`projector_report` measures both against the analytic projections of a sum of Gaussians (what
``cryoforge bench mcgan`` records); Fourier slicing at ``pad=2`` is the default: it is the accurate one and, with
several poses per generated volume, the fast one too.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..conventions import random_rotations
from ..geometry import transform_volumes
from ..sim.particles import finish_images

if TYPE_CHECKING:
    from ..ctf import CTFParams
    pass



def project_fourier(volumes: torch.Tensor, rotations: torch.Tensor, pad: float = 2.0) -> torch.Tensor:
    """Projections ``(V·P, n, n)`` of volumes ``(V, n, n, n)`` at poses ``(P, 3, 3)``, volume-major (image
    ``v·P + p`` is volume ``v`` at pose ``p``)."""
    from torch_fourier_slice import project_3d_to_2d_multichannel

    out = project_3d_to_2d_multichannel(volumes, rotations.transpose(-1, -2), pad_factor=pad)  # (P, V, n, n)
    return out.transpose(0, 1).reshape(-1, *volumes.shape[-2:])


def project_real(volumes: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Projections ``(V·P, n, n)`` as :func:`project_fourier`, by rotating in real space and summing along z."""
    p = len(rotations)
    vols = volumes.repeat_interleave(p, 0)
    return transform_volumes(vols, rotations.repeat(len(volumes), 1, 1)).sum(-3)




def form_images(projections: torch.Tensor, shifts_px: torch.Tensor | None, ctf: CTFParams | None,
                pixel_size: float | np.ndarray,
                noise_sigma: torch.Tensor | float | None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift (pixels, x y), CTF (:class:`cryoforge.ctf.CTFParams` batch, or None) and white Gaussian noise of
    standard deviation ``noise_sigma`` (a tensor keeps it differentiable) — the particle simulator's steps."""
    img = finish_images(projections, shifts_px, ctf, pixel_size)
    if noise_sigma is not None:
        noise = torch.randn(img.shape, generator=generator).to(img)
        img = img + noise_sigma * noise
    return img


def gaussian_blobs(n: int, count: int = 12, sigma: float = 1.6, seed: int = 0) -> tuple[torch.Tensor,
                   tuple[np.ndarray, np.ndarray]]:
    """A volume ``(n, n, n)`` of ``count`` Gaussians inside the inscribed sphere, and the blobs ``(centres xyz in
    voxels from the box centre, amplitudes)`` — its exact projections are sums of 2-D Gaussians."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1, 1, (count * 4, 3))
    c = c[np.linalg.norm(c, axis=1) < 1][:count] * (n / 2 - 4 * sigma)
    amp = rng.uniform(0.5, 1.5, len(c))
    ax = torch.arange(n, dtype=torch.float64) - n // 2
    z, y, x = torch.meshgrid(ax, ax, ax, indexing="ij")
    vol = torch.zeros(n, n, n, dtype=torch.float64)
    for (cx, cy, cz), a in zip(c, amp, strict=True):
        vol += a * torch.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * sigma ** 2))
    return vol.float(), (c, amp)


def analytic_projections(n: int, blobs: tuple[np.ndarray, np.ndarray], rotations: torch.Tensor,
                         sigma: float = 1.6) -> torch.Tensor:
    """Exact projections ``(P, n, n)`` of :func:`gaussian_blobs` at ``rotations`` (line integrals, unit voxels)."""
    c, amp = blobs
    ax = torch.arange(n, dtype=torch.float64) - n // 2
    y, x = torch.meshgrid(ax, ax, indexing="ij")
    moved = torch.as_tensor(c) @ rotations.double().transpose(-1, -2)  # (P, K, 3): R c
    out = torch.zeros(len(rotations), n, n, dtype=torch.float64)
    for k, a in enumerate(amp):
        cx, cy = moved[:, k, 0, None, None], moved[:, k, 1, None, None]
        out += a * math.sqrt(2 * math.pi) * sigma * torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2))
    return out.float()


def projector_report(n: int = 32, volumes: int = 8, poses: int = 4, repeats: int = 5, seed: int = 0) -> dict:
    """Accuracy (relative RMS error against analytic projections) and speed (images/s, forward + backward, the
    training workload: ``volumes`` generated volumes × ``poses`` poses) of each projector on this machine."""
    vol, blobs = gaussian_blobs(n, seed=seed)
    rots = random_rotations(poses, seed + 1)
    exact = analytic_projections(n, blobs, rots)
    batch = vol.expand(volumes, n, n, n).contiguous()
    report: dict[str, Any] = {"box": n, "volumes": volumes, "poses_per_volume": poses, "threads": torch.get_num_threads()}
    for name, fn in (("fourier_pad2", lambda v, r: project_fourier(v, r, 2.0)),
                     ("fourier_pad1", lambda v, r: project_fourier(v, r, 1.0)), ("real_grid_sample", project_real)):
        got = fn(vol[None], rots)
        err = float((got - exact).pow(2).mean().sqrt() / exact.pow(2).mean().sqrt())
        v = batch.clone().requires_grad_(True)
        fn(v, rots).sum().backward()  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn(v, rots).square().sum().backward()
        dt = (time.perf_counter() - t0) / repeats
        report[name] = {"relative_rms_error": err, "images_per_s_fwd_bwd": volumes * poses / dt}
    return report
