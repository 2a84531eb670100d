"""Quick looks at a simulation before generating a dataset (the Simulate dock's live preview).

:func:`preview_job` yields ``Preview`` events — the clean map, one tilt image with CTF and MTF
(noise-free and noisy), the noisy subtomogram, its Fourier amplitude and the sampling (wedge) mask —
or, for particles, a few noise-free and noisy particle images; then a :class:`SimulationPreview` of them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..conventions import random_rotations
from ..ctf import ctf_2d
from ..jobs import Preview, Progress, Result, drive
from .params import ParticleParams
from .particles import Ensemble, simulate_particles_job
from .sources import MapSpec, load_map, resample_map
from .tomo import (
    TomoParams,
    centred_wedge,
    detector_mtf,
    project_tilt_series,
    simulate_subtomograms,
    tilt_angles,
    tilt_range_from_wedge,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..hints import ArrayLike, Tensorish
    from ..jobs import Event



def source_volume(source: str | ArrayLike, spec: MapSpec, source_voxel: float | None = None,
                  seed: int = 0) -> np.ndarray:
    """The map of a source string (:mod:`cryoforge.sim.sources`) or of an array at ``source_voxel`` Å."""
    if isinstance(source, str):
        return load_map(source, spec, seed=seed)
    arr = np.asarray(source, np.float32)
    if arr.ndim != 3:
        raise ValueError(f"a source map must be a 3-D volume (Z, Y, X); got shape {arr.shape}")
    return resample_map(arr, float(source_voxel or spec.voxel_size), spec.voxel_size, spec.box)


def tilt_image(volume: Tensorish, rotation: Tensorish, tilt: float, params: TomoParams, defocus: float, noisy: bool,
               generator: torch.Generator | None = None, n_tilts: int = 121) -> np.ndarray:
    """One tilt image ``(n, n)``: projection at ``tilt`` degrees, CTF and MTF, with noise at the projection SNR
    that gives the subtomogram SNR (noise σ from the same calibration as the reconstruction)."""
    n = volume.shape[-1]
    proj = project_tilt_series(torch.as_tensor(volume), rotation, [tilt])[0]
    ft = torch.fft.rfft2(proj)
    if params.apply_ctf:
        ft = ft * ctf_2d(params.ctf_params(defocus), (n, n), params.voxel_size)
    k = torch.sqrt(torch.fft.fftfreq(n)[:, None] ** 2 + torch.fft.rfftfreq(n)[None, :] ** 2)
    mtf = detector_mtf(2 * k) if params.mtf else torch.ones_like(k)
    img = torch.fft.irfft2(ft * mtf, s=(n, n))
    if noisy and params.snr is not None:
        # per-image SNR of a series whose reconstruction has SNR `snr`: roughly snr / n_tilts
        sigma = float(img.std()) / np.sqrt(params.snr / n_tilts)
        noise = torch.randn(img.shape, generator=generator)
        img = img + sigma * torch.fft.irfft2(torch.fft.rfft2(noise) * mtf, s=(n, n))
    return img.numpy()


@dataclass
class SimulationPreview:
    """What :func:`preview_job` returns: the clean map and, for a subtomogram, the tilt-0° image without and with
    noise, the noisy subtomogram, its log Fourier amplitude, the sampling (wedge) mask and the tilt range (degrees);
    for particles, 16 noisy and noise-free images."""

    map: np.ndarray
    tilt_clean: np.ndarray | None = None
    tilt_noisy: np.ndarray | None = None
    subtomogram: np.ndarray | None = None
    fourier_amplitude: np.ndarray | None = None
    wedge: np.ndarray | None = None
    tilt_range: tuple[float, float] | None = None
    particles: np.ndarray | None = None
    particles_clean: np.ndarray | None = None


def preview_job(source: str | ArrayLike, spec: MapSpec, mode: str = "subtomogram", tomo: TomoParams | None = None,
                wedge: float = 30.0, particles: ParticleParams | None = None, source_voxel: float | None = None,
                seed: int = 0) -> Iterator[Event]:
    """Job: previews of one simulated subtomogram (``mode='subtomogram'``) or of 16 particles."""
    if mode not in ("subtomogram", "particles"):
        raise ValueError(f"mode must be 'subtomogram' or 'particles'; got {mode!r}")
    yield Progress(0, 3, "building the map")
    vol = source_volume(source, spec, source_voxel, seed)
    vs = spec.voxel_size
    out = SimulationPreview(vol)
    yield Preview("clean map", vol, "volume", {"voxel_size": vs})
    yield Progress(1, 3, "simulating")
    if mode == "particles":
        params = particles or ParticleParams(pixel_size=vs)
        params.pixel_size = vs
        ens = Ensemble(vol)
        images = drive(simulate_particles_job(ens, 16, params, seed)).images
        clean = drive(simulate_particles_job(ens, 16, _noise_free(params), seed)).images
        out.particles, out.particles_clean = images, clean
        yield Preview("particles (noise-free)", clean, "stack", {"voxel_size": vs})
        yield Preview("particles", images, "stack", {"voxel_size": vs})
    else:
        tparams = (tomo or TomoParams(voxel_size=vs)).validate()
        lo, hi = tilt_range_from_wedge(wedge)
        rot = random_rotations(1, seed)[0]
        defocus = 0.5 * (tparams.defocus_min + tparams.defocus_max)
        g = torch.Generator().manual_seed(seed)
        n = vol.shape[-1]
        out.tilt_clean = tilt_image(vol, rot, 0.0, tparams, defocus, noisy=False)
        n_tilts = len(tilt_angles(lo, hi, tparams.tilt_step))
        out.tilt_noisy = tilt_image(vol, rot, 0.0, tparams, defocus, noisy=True, generator=g, n_tilts=n_tilts)
        sub = simulate_subtomograms(vol[None], rot[None], None, torch.tensor([defocus]), lo, hi, tparams, g)[0]
        out.subtomogram = sub.numpy()
        amp = torch.fft.fftshift(torch.fft.fftn(sub).abs()).numpy()
        out.fourier_amplitude = np.log1p(amp / (amp.mean() + 1e-12))
        out.wedge = centred_wedge(n, lo, hi).numpy()
        out.tilt_range = (lo, hi)
        yield Preview("tilt 0° (CTF, MTF)", out.tilt_clean, "image", {"voxel_size": vs})
        yield Preview("tilt 0° with noise", out.tilt_noisy, "image", {"voxel_size": vs})
        yield Preview("subtomogram", out.subtomogram, "volume", {"voxel_size": vs})
        yield Preview("wedge", out.wedge, "volume", {"voxel_size": 1.0 / (n * vs)})
    yield Progress(3, 3, "done")
    yield Result(out)


def _noise_free(p: ParticleParams) -> ParticleParams:
    from dataclasses import replace

    return replace(p, snr=None)
