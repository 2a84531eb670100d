"""Crowded tomograms: particles of several structures in a slab, a CTF'd tilt series with noise, and its weighted
back-projection — with the ground-truth particle list.

Geometry (:mod:`cryoforge.sim.tomo`): the specimen tilts about y; the image at tilt θ is the projection along z of
the specimen rotated by ``Ry(θ)``, so a point ``(x, y, z)`` (voxels from the tomogram centre) lands at
``(x cos θ + z sin θ, y)`` of the image. Each particle is projected on its own (teamtomo's torch-fourier-slice, the
subtomogram simulator's :func:`~cryoforge.sim.tomo.project_tilt_series`) and pasted at that point with its sub-pixel
rest as a Fourier shift; its CTF uses the defocus at its height in the tilted specimen (``defocus − height``, the
defocus gradient across the tilt axis that a flat-CTF simulator misses); the detector MTF blurs signal and noise.

Noise: white Gaussian noise through the MTF on every image, scaled so that the *particles'* SNR in the
reconstruction — ``var(signal) / var(noise)`` inside the particle boxes, the subtomogram simulator's definition —
is ``snr``. The signal and the noise are reconstructed separately (back-projection is linear) and summed with that
scale; the tilt series written is the same sum.

Reconstruction: R-weighted (``|k_x|``) real-space back-projection of the whole slab, one tilt at a time (a
linear-interpolation gather along x for every (z, x), all rows y at once).

Particles: non-overlapping spheres (each structure's radius from its map) at uniform random positions inside the
slab (``thickness`` Å about the tomogram's mid-plane) and uniform random rotations, all from ``seed``. The list is
written as RELION 5 STAR (:mod:`cryoforge.io.tomo_particles`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from ..configs import to_dict
from ..conventions import random_rotations
from ..ctf import CTFParams, ctf_2d
from ..fourier import fourier_shift, freq_grid
from ..io.tomo_particles import TomoParticles
from ..jobs import Log, Metrics, Preview, Progress, Result
from ..resources import check_allocation
from .tomo import detector_mtf, project_tilt_series, tilt_angles

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from ..hints import PathLike
    from ..jobs import Event


@dataclass(frozen=True)
class TomogramParams:
    """A crowded-tomogram simulation: shape ``(X, Y, Z)`` voxels at ``voxel_size`` Å, particles, tilt series (range,
    step; degrees), SNR of the particles in the reconstruction (None: noise-free), defocus (µm, underfocus), slab
    thickness (Å), optics (kV, mm, fraction), CTF and MTF on or off, seed."""

    shape: tuple[int, int, int] = (512, 512, 128)
    voxel_size: float = 10.0
    n_particles: int = 200
    tilt_range: tuple[float, float] = (-60.0, 60.0)
    tilt_step: float = 2.0
    snr: float | None = 0.1
    defocus: float = 3.0
    thickness: float = 1000.0
    voltage: float = 300.0
    cs: float = 2.7
    amplitude_contrast: float = 0.07
    apply_ctf: bool = True  # False: perfect transfer (tests, idealised data)
    mtf: bool = True
    seed: int = 0

    def validate(self) -> TomogramParams:
        """Refuse what cannot be simulated, in one line naming the setting."""
        if len(self.shape) != 3 or min(self.shape) < 8:
            raise ValueError(f"shape is X Y Z voxels, each at least 8; got {self.shape}")
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be a positive number of Å; got {self.voxel_size}")
        if self.n_particles < 0:
            raise ValueError(f"n_particles must be ≥ 0; got {self.n_particles}")
        if self.snr is not None and not (self.snr > 0 and math.isfinite(self.snr)):
            raise ValueError(f"snr must be a positive number (or none for noise-free); got {self.snr}")
        if not self.thickness > 0:
            raise ValueError(f"thickness must be a positive number of Å; got {self.thickness}")
        if not self.defocus >= 0:
            raise ValueError(f"defocus must be ≥ 0 µm; got {self.defocus}")
        tilt_angles(*self.tilt_range, self.tilt_step)  # checks the range
        return self


@dataclass
class SimulatedTomogram:
    """A simulated tomogram ``(Z, Y, X)``, its tilt series ``(T, Y, X)`` and angles (degrees), the noise-free
    density it was made from, the true particles (with ``cfStructure`` in their table), the structures' maps and
    names, the noise σ per image (0: noise-free), timings, and the folder written (None without one)."""

    tomogram: np.ndarray
    tilt_series: np.ndarray
    tilts: np.ndarray
    density: np.ndarray
    particles: TomoParticles
    maps: np.ndarray
    names: list[str]
    voxel_size: float
    noise_sigma: float
    report: dict[str, Any] = field(default_factory=dict)
    folder: str | None = None


def map_radius(volume: np.ndarray, fraction: float = 0.05) -> float:
    """Radius (voxels) around the box centre that holds the density above ``fraction`` of the maximum (the
    particles' exclusion radius: at 5 % the blur tails of neighbours may touch, their cores do not)."""
    v = np.asarray(volume, np.float64)
    n = v.shape[-1]
    ax = np.arange(n) - n // 2
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    r = np.sqrt(x * x + y * y + z * z)
    inside = v > fraction * v.max()
    return float(r[inside].max()) + 1.0 if inside.any() else n / 2


def place_particles(radii: Sequence[float], kinds: np.ndarray, shape_xyz: Sequence[int], thickness_vox: float,
                    seed: int, tries: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping centres ``(M, 3)`` (x y z voxels from the tomogram centre) for the particles of ``kinds``
    (indices into ``radii``), inside the box and the slab; returns the centres and the kinds placed (a particle
    that finds no room in ``tries`` draws is left out)."""
    rng = np.random.default_rng(seed)
    half = np.asarray(shape_xyz, np.float64) / 2
    placed: list[np.ndarray] = []
    placed_r: list[float] = []
    kept: list[int] = []
    for k in kinds:
        r = float(radii[k])
        lo = np.array([-half[0] + r, -half[1] + r, max(-half[2] + r, -thickness_vox / 2 + r)])
        hi = np.array([half[0] - r, half[1] - r, min(half[2] - r, thickness_vox / 2 - r)])
        if np.any(hi < lo):
            continue
        for _ in range(tries):
            p = rng.uniform(lo, hi)
            if not placed or np.all(np.linalg.norm(np.asarray(placed) - p, axis=1) >= np.asarray(placed_r) + r):
                placed.append(p)
                placed_r.append(r)
                kept.append(int(k))
                break
    return np.asarray(placed, np.float64).reshape(-1, 3), np.asarray(kept, int)


def _paste(images: torch.Tensor, patches: torch.Tensor, centres_uv: np.ndarray) -> None:
    """Add ``patches`` ``(T, b, b)`` into ``images`` ``(T, Y, X)`` centred (index ``b // 2``) at ``centres_uv``
    ``(T, 2)`` (u = x, v = y in image pixels, fractional: the rest is a Fourier shift), clipped at the edges."""
    t, b, _ = patches.shape
    whole = np.round(centres_uv).astype(int)
    shifted = fourier_shift(patches, torch.as_tensor(centres_uv - whole, dtype=torch.float32))
    height, width = images.shape[-2:]
    for i in range(t):
        x0, y0 = whole[i, 0] - b // 2, whole[i, 1] - b // 2
        xs, ys = max(0, x0), max(0, y0)
        xe, ye = min(width, x0 + b), min(height, y0 + b)
        if xe > xs and ye > ys:
            images[i, ys:ye, xs:xe] += shifted[i, ys - y0:ye - y0, xs - x0:xe - x0]


def backproject_slab(images: torch.Tensor, tilts_deg: np.ndarray, depth: int) -> torch.Tensor:
    """R-weighted back-projection of ``(T, Y, X)`` tilt images into a ``(depth, Y, X)`` slab (tilt axis y, through
    the centre ``size / 2``; :mod:`cryoforge.sim.tomo`'s geometry and scale)."""
    t, height, width = images.shape
    kx = torch.fft.rfftfreq(width)
    filt = torch.fft.irfft(torch.fft.rfft(images, dim=-1) * kx.abs(), n=width, dim=-1)
    x = torch.arange(width, dtype=torch.float32) - width // 2
    z = torch.arange(depth, dtype=torch.float32) - depth // 2
    out = torch.zeros(depth, height, width)
    for i, theta in enumerate(np.radians(tilts_deg)):
        u = math.cos(theta) * x[None, :] + math.sin(theta) * z[:, None] + width // 2  # (depth, X)
        u0 = torch.floor(u)
        w = (u - u0)[:, None, :]
        i0 = u0.long()
        valid0 = ((i0 >= 0) & (i0 < width)).float()[:, None, :]
        valid1 = ((i0 + 1 >= 0) & (i0 + 1 < width)).float()[:, None, :]
        img = filt[i]  # (Y, X)
        a = img[:, i0.clamp(0, width - 1)].permute(1, 0, 2)  # (depth, Y, X)
        b = img[:, (i0 + 1).clamp(0, width - 1)].permute(1, 0, 2)
        out += a * (1 - w) * valid0 + b * w * valid1
    return out * (math.pi / t)


def simulate_tomogram_job(maps: np.ndarray, names: Sequence[str], params: TomogramParams | None = None,
                          out_dir: PathLike | None = None, tomogram_name: str = "TS_01") -> Iterator[Event]:
    """Job: a crowded tomogram of the structures ``maps`` ``(K, b, b, b)`` (at ``params.voxel_size``; the particles
    draw the structures in turn); ``Result`` is a :class:`SimulatedTomogram`. With ``out_dir``: ``tomogram.mrc``,
    ``tiltseries.mrcs`` and ``tiltseries.tlt`` (IMOD), ``particles.star`` (RELION 5), ``maps.mrcs``, ``density.mrc``
    (noise-free, no CTF) and ``tomogram.json``."""
    p = (params or TomogramParams()).validate()
    t0 = time.perf_counter()
    maps = np.asarray(maps, np.float32)
    if maps.ndim != 4 or len(set(maps.shape[1:])) != 1:
        raise ValueError(f"maps must be a (K, b, b, b) stack of cubic maps; got shape {maps.shape}")
    if len(names) != len(maps):
        raise ValueError(f"{len(maps)} maps but {len(names)} names")
    sx, sy, sz = (int(s) for s in p.shape)
    b = maps.shape[-1]
    if b > min(sx, sy, sz):
        raise ValueError(f"the maps' box ({b}) does not fit in the tomogram ({sx} × {sy} × {sz} voxels)")
    tilts = tilt_angles(*p.tilt_range, p.tilt_step)
    check_allocation((3 * sx * sy * sz + 3 * len(tilts) * sx * sy) * 4, f"a {sx}×{sy}×{sz} tomogram and its "
                     f"{len(tilts)} tilt images", "simulate a smaller --shape")
    radii = [map_radius(m) for m in maps]
    kinds = np.arange(p.n_particles) % len(maps)
    centres, kinds = place_particles(radii, kinds, (sx, sy, sz), p.thickness / p.voxel_size, p.seed)
    n = len(centres)
    yield Log(f"{n} of {p.n_particles} particles placed in a {sx}×{sy}×{sz} tomogram ({p.thickness:g} Å slab), "
              f"{len(tilts)} tilts {tilts[0]:g}…{tilts[-1]:g}°")
    rots = random_rotations(max(n, 1), p.seed + 1).numpy()[:n].astype(np.float64)
    th = np.radians(tilts)
    c, s = np.cos(th), np.sin(th)
    # image coordinates of every particle at every tilt, and its height in the tilted specimen (voxels)
    u = centres[None, :, 0] * c[:, None] + centres[None, :, 2] * s[:, None] + sx // 2  # (T, n)
    v = np.broadcast_to(centres[None, :, 1] + sy // 2, u.shape)
    height = -centres[None, :, 0] * s[:, None] + centres[None, :, 2] * c[:, None]
    k2 = freq_grid((b, b), 1.0, rfft=True)
    mtf = detector_mtf(2 * torch.linalg.norm(k2, dim=-1)) if p.mtf else torch.ones(k2.shape[:-1])
    signal = torch.zeros(len(tilts), sy, sx)
    density = torch.zeros(sz, sy, sx)
    from ..geometry import transform_volumes

    maps_t = torch.from_numpy(maps)
    for j in range(n):
        proj = project_tilt_series(maps_t[kinds[j]], torch.from_numpy(rots[j]).float(), tilts)  # (T, b, b)
        defocus = (p.defocus * 1e4 - height[:, j] * p.voxel_size).astype(np.float32)  # Å underfocus per tilt
        ctf = CTFParams(defocus_u=defocus, defocus_v=defocus, voltage=p.voltage, cs=p.cs,
                        amplitude_contrast=p.amplitude_contrast)
        transfer = (ctf_2d(ctf, (b, b), p.voxel_size, rfft=True) if p.apply_ctf else 1.0) * mtf
        proj = torch.fft.irfft2(torch.fft.rfft2(proj) * transfer, s=(b, b))
        _paste(signal, proj, np.stack([u[:, j], v[:, j]], 1))
        rotated = transform_volumes(maps_t[kinds[j]], torch.from_numpy(rots[j]).float())
        _paste_volume(density, rotated, centres[j] + np.array([sx // 2, sy // 2, sz // 2]))
        if (j + 1) % 20 == 0 or j + 1 == n:
            yield Progress(j + 1, n + 2, f"projected {j + 1}/{n} particles")
    t_proj = time.perf_counter() - t0
    rec_signal = backproject_slab(signal, tilts, sz)
    yield Progress(n + 1, n + 2, "back-projected the signal")
    sigma, images, tomogram = 0.0, signal, rec_signal
    snr_measured = None
    if p.snr is not None and n:
        g = torch.Generator().manual_seed(p.seed + 2)
        white = torch.randn(signal.shape, generator=g)
        kimg = freq_grid((sy, sx), 1.0, rfft=True)
        mtf_img = detector_mtf(2 * torch.linalg.norm(kimg, dim=-1)) if p.mtf else torch.ones(kimg.shape[:-1])
        noise = torch.fft.irfft2(torch.fft.rfft2(white) * mtf_img, s=(sy, sx))
        rec_noise = backproject_slab(noise, tilts, sz)
        var_s, var_n = _box_variances(rec_signal, rec_noise, centres, (sx, sy, sz), b)
        scale = math.sqrt(var_s / (p.snr * var_n)) if var_n > 0 else 0.0
        sigma = scale
        images = signal + scale * noise
        tomogram = rec_signal + scale * rec_noise
        snr_measured = var_s / (scale ** 2 * var_n) if scale else None
    wall = time.perf_counter() - t0
    table = pd.DataFrame({"cfStructure": [names[int(k)] for k in kinds]})
    particles = TomoParticles(centres * p.voxel_size, rots, np.full(n, tomogram_name, dtype=object), table,
                              "simulated", p.voxel_size)
    report = {"params": to_dict(p), "n_placed": n, "n_tilts": len(tilts), "noise_sigma_per_image": sigma,
              "snr_in_particle_boxes": snr_measured, "seconds": wall, "seconds_projecting": t_proj,
              "structures": list(names), "snr_definition": "var(signal) / var(noise) of the reconstruction inside "
                                                            "the particle boxes (the subtomogram simulator's)"}
    yield Metrics({"seconds": wall, "particles": n})
    result = SimulatedTomogram(tomogram.numpy(), images.numpy(), tilts, density.numpy(), particles, maps,
                               list(names), p.voxel_size, sigma, report)
    yield Preview("tomogram", result.tomogram, "volume", {"voxel_size": p.voxel_size})
    if out_dir is not None:
        result.folder = str(write_tomogram(out_dir, result))
    yield Progress(n + 2, n + 2, "done")
    yield Result(result)


def _paste_volume(volume: torch.Tensor, patch: torch.Tensor, centre_xyz: np.ndarray) -> None:
    """Add ``patch`` ``(b, b, b)`` into ``volume`` ``(Z, Y, X)`` with its centre voxel at the nearest voxel of
    ``centre_xyz`` (the noise-free density: for display and truth, not for the images)."""
    b = patch.shape[-1]
    lo = np.round(centre_xyz).astype(int)[::-1] - b // 2  # z y x
    sl_v, sl_p = [], []
    for ax in range(3):
        a0, a1 = max(0, lo[ax]), min(volume.shape[ax], lo[ax] + b)
        sl_v.append(slice(a0, a1))
        sl_p.append(slice(a0 - lo[ax], a1 - lo[ax]))
    volume[tuple(sl_v)] += patch[tuple(sl_p)]


def _box_variances(signal: torch.Tensor, noise: torch.Tensor, centres: np.ndarray, shape_xyz: Sequence[int],
                   b: int) -> tuple[float, float]:
    """Mean over particles of the signal's and the noise's variance inside each particle's ``b``³ box."""
    vs, vn = [], []
    half = np.asarray(shape_xyz) // 2
    for cxyz in centres:
        x, y, z = (np.round(cxyz).astype(int) + half) - b // 2
        box = (slice(max(z, 0), z + b), slice(max(y, 0), y + b), slice(max(x, 0), x + b))
        vs.append(float(signal[box].var()))
        vn.append(float(noise[box].var()))
    return float(np.mean(vs)), float(np.mean(vn))


def write_tomogram(out_dir: PathLike, sim: SimulatedTomogram) -> Path:
    """Write a :class:`SimulatedTomogram` (see :func:`simulate_tomogram_job`); the folder appears whole, with
    ``tomogram.json`` written last."""
    from ..io.atomic import atomic_dir
    from ..io.mrc import write_mrc
    from ..io.tomo_particles import write_relion5

    vs = sim.voxel_size
    with atomic_dir(out_dir, "tomogram.json") as tmp:
        write_mrc(tmp / "tomogram.mrc", sim.tomogram, vs)
        write_mrc(tmp / "tiltseries.mrcs", sim.tilt_series, vs, stack=True)
        (tmp / "tiltseries.tlt").write_text("".join(f"{a:.2f}\n" for a in sim.tilts))
        write_relion5(tmp / "particles.star", sim.particles, vs)
        write_mrc(tmp / "maps.mrcs", sim.maps, vs)
        write_mrc(tmp / "density.mrc", sim.density, vs)
        (tmp / "tomogram.json").write_text(json.dumps({**sim.report, "maps": sim.names}, indent=1, default=float))
    return Path(out_dir)
