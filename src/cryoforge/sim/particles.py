"""Single-particle image stacks (seeds 002/003): uniform SO(3) poses, shifts, per-particle CTF, noise.

Image formation, per particle: projection of the map rotated by ``R`` (RELION's ``A`` matrix, the
Fourier slice of teamtomo's torch-fourier-slice) → shift by ``d`` pixels → CTF (RELION parameters,
optional astigmatism) → white Gaussian noise. Protein is bright (the CTF is positive at low
frequency), as in RELION / cryoDRGN particle stacks.

SNR (``snr``, linear; ``snr_db`` = 10 log10 snr): ``var(clean CTF-modulated image) / σ²`` with one
noise σ for the whole stack, the clean variance averaged over the first (up to) 256 particles — the
definition cryoDRGN's ``add_noise`` uses — so the noise level is constant, as on a detector.

Metadata follow RELION 3.1: ``rlnOriginX/YAngst = −d · pixel size`` (the shift that re-centres the
particle), ``rlnAngleRot/Tilt/Psi`` the ZYZ angles of ``R``, defocus U/V/angle in Å/°, voltage,
Cs, amplitude contrast and pixel size in the optics table — the columns cryoDRGN's
``parse_pose_star`` / ``parse_ctf_star`` read.

Heterogeneity (:class:`Ensemble`): the map of particle ``i`` is a blend of neighbouring states
along a conformational coordinate ``u ∈ [0, 1]``; a discrete mixture uses the states themselves.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from .. import __version__
from ..configs import to_dict
from ..conventions import random_rotations
from ..ctf import CTFParams, ctf_2d
from ..fourier import fourier_shift
from ..io.atomic import atomic_dir
from ..io.mrc import write_mrc
from ..io.star import ParticleMetadata, write_particles_star
from ..jobs import Log, Preview, Progress, Result
from ..resources import check_allocation
from .params import ParticleParams

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..hints import PathLike, Tensorish
    from ..jobs import Event


CHUNK = 256
PROJECT_CHUNK = 2048


def snr_from_db(db: float) -> float:
    """Signal-to-noise ratio from decibels."""
    return float(10 ** (db / 10))


@dataclass
class Ensemble:
    """Conformational states ``(K, n, n, n)`` at coordinates ``coords`` (increasing, in [0, 1]).

    ``weights`` (K,) makes it a discrete mixture; without weights the coordinate is continuous and
    uniform in ``[coords[0], coords[-1]]``, each particle's map blended linearly between the two
    states around its coordinate (dense states make the blend a small correction).
    """

    maps: np.ndarray
    coords: np.ndarray = field(default_factory=lambda: np.empty(0))  # empty: evenly spaced in [0, 1]
    weights: np.ndarray | None = None
    names: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.maps = np.asarray(self.maps, np.float32)
        if self.maps.ndim == 3:
            self.maps = self.maps[None]
        k = len(self.maps)
        empty = self.coords is None or np.size(self.coords) == 0
        self.coords = np.linspace(0, 1, k) if empty else np.asarray(self.coords, np.float64)
        if len(self.coords) != k or np.any(np.diff(self.coords) <= 0):
            raise ValueError(f"coords must be {k} increasing values, one per state")
        if self.weights is not None:
            w = np.asarray(self.weights, np.float64)
            if len(w) != k or np.any(w < 0) or w.sum() <= 0:
                raise ValueError(f"weights must be {k} non-negative numbers with a positive sum; got {self.weights!r}")
            self.weights = w / w.sum()

    @property
    def discrete(self) -> bool:
        return self.weights is not None or len(self.maps) == 1

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per particle: lower state index, blend weight toward the next state, coordinate ``u``, state label."""
        k = len(self.maps)
        if self.discrete:
            w = self.weights if self.weights is not None else np.ones(1)
            state = rng.choice(k, size=n, p=w)
            return state, np.zeros(n), self.coords[state], state
        u = rng.uniform(self.coords[0], self.coords[-1], size=n)
        lo, frac = self._blend(u)
        return lo, frac, u, np.full(n, -1)

    def _blend(self, u):
        k = len(self.maps)
        lo = np.clip(np.searchsorted(self.coords, u, side="right") - 1, 0, k - 2)
        return lo, (u - self.coords[lo]) / (self.coords[lo + 1] - self.coords[lo])

    def map_at(self, u: float) -> np.ndarray:
        """The map of a continuous ensemble at coordinate ``u``, blended as the particles' are."""
        if self.discrete:
            raise ValueError("map_at is for a continuous ensemble; a discrete one has its maps")
        lo, frac = self._blend(np.asarray([u], np.float64))
        return ((1 - frac[0]) * self.maps[lo[0]] + frac[0] * self.maps[lo[0] + 1]).astype(np.float32)


def project_ensemble(ens: Ensemble, rot: np.ndarray, lo: np.ndarray,
                     frac: np.ndarray) -> Iterator[tuple[float, int] | torch.Tensor]:
    """Yield ``(done, total)`` while projecting; the last item is the ``(N, n, n)`` projections.

    One pass per state (each state's padded 3-D FFT is computed once for all its particles).
    """
    from torch_fourier_slice import project_3d_to_2d

    n = ens.maps.shape[-1]
    out = torch.zeros(len(rot), n, n)
    r_t = torch.from_numpy(np.asarray(rot, np.float32)).transpose(-1, -2)  # samples V(M p): M = R^T
    for k in range(len(ens.maps)):
        w = np.where(lo == k, 1 - frac, 0.0) + np.where((lo + 1 == k) & (frac > 0), frac, 0.0)
        idx = np.nonzero(w)[0]
        vol = torch.from_numpy(ens.maps[k])
        for s in range(0, len(idx), PROJECT_CHUNK):  # bounded memory: padded 2n² slices per call
            part = idx[s:s + PROJECT_CHUNK]
            p = project_3d_to_2d(vol, r_t[part])
            out[part] += p * torch.from_numpy(w[part].astype(np.float32))[:, None, None]
            yield k + (s + len(part)) / len(idx), len(ens.maps)
        yield k + 1, len(ens.maps)
    yield out


def _ctf_batch(params: ParticleParams, n: int, rng: np.random.Generator) -> CTFParams:
    mean = rng.uniform(params.defocus_min, params.defocus_max, n)
    half = rng.uniform(0, params.astigmatism, n) / 2
    return CTFParams(defocus_u=(mean + half).astype(np.float32), defocus_v=(mean - half).astype(np.float32),
                     defocus_angle=(rng.uniform(0, 180, n) if params.astigmatism else np.zeros(n)).astype(np.float32),
                     voltage=params.voltage, cs=params.cs, amplitude_contrast=params.amplitude_contrast,
                     bfactor=params.bfactor)


def finish_images(img: torch.Tensor, shifts_px: Tensorish | None, ctf: CTFParams | None,
                  pixel_size: float | np.ndarray) -> torch.Tensor:
    """Shift projections ``(N, n, n)`` by ``shifts_px`` (pixels, x y; array or tensor) and apply their CTF, on the
    images' device (differentiable in the images: Multi-CryoGAN's simulator uses it). ``pixel_size`` (Å): one
    number, or one per image."""
    if shifts_px is not None:
        shifts = torch.as_tensor(shifts_px, dtype=img.dtype).to(img.device)
        if shifts.abs().sum() > 0:
            img = fourier_shift(img, shifts)
    if ctf is not None:
        c = ctf_2d(ctf, img.shape[-2:], pixel_size, rfft=True, device=img.device)
        img = torch.fft.irfft2(torch.fft.rfft2(img) * c, s=img.shape[-2:])
    return img


@dataclass
class ParticleSimulation:
    """What particle simulation returns: the images ``(N, Y, X)``, their metadata (poses, CTF, pixel size), the
    truth per particle (conformation, state, shift in px), the noise σ added (None: noise-free) and the folder
    written (None without ``out_dir``)."""

    images: np.ndarray
    metadata: ParticleMetadata
    truth: pd.DataFrame
    noise_sigma: float | None = None
    folder: str | None = None


def simulate_particles_job(ensemble: Ensemble, n_particles: int, params: ParticleParams | None = None,
                           seed: int = 0, out_dir: PathLike | None = None, stem: str = "particles",
                           storage: str = "float32") -> Iterator[Event]:
    """Job: ``n_particles`` images; yields progress, a preview, and a :class:`ParticleSimulation`.

    With ``out_dir``: ``{stem}.mrcs``, ``{stem}.star`` (RELION 3.1), ``truth.csv`` (conformation of each
    particle), ``states.mrc`` and ``dataset.json`` are written at the end, as one folder that appears whole (see
    :func:`write_particles`).
    """
    params = (params or ParticleParams()).validate()
    if n_particles < 1:
        raise ValueError(f"n_particles must be at least 1; got {n_particles!r}")
    n = ensemble.maps.shape[-1]
    check_allocation(n_particles * (n * n * 4 * 2 + 256), f"{n_particles} particle images of {n}² px",
                     "simulate fewer particles (-n) per run, or a smaller box")
    rng = np.random.default_rng(seed)
    rots = random_rotations(n_particles, seed).numpy().astype(np.float32)
    lo, frac, u, state = ensemble.sample(n_particles, rng)
    r = params.max_shift * np.sqrt(rng.random(n_particles))
    phi = rng.uniform(0, 2 * np.pi, n_particles)
    shifts = np.stack([r * np.cos(phi), r * np.sin(phi)], 1).astype(np.float32)
    ctf = _ctf_batch(params, n_particles, rng)
    gen = torch.Generator().manual_seed(int(seed))
    sigma = None
    yield Log(f"{n_particles} particles of {n}² px at {params.pixel_size:g} Å/px, SNR {params.snr}, "
              f"{'discrete' if ensemble.discrete else 'continuous'} ensemble of {len(ensemble.maps)} state(s)")
    total = len(ensemble.maps) + math.ceil(n_particles / CHUNK)
    for item in project_ensemble(ensemble, rots, lo, frac):
        if isinstance(item, tuple):
            yield Progress(int(item[0]), total, "projecting states")
        else:
            projections = item
    images = np.empty((n_particles, n, n), np.float32)
    for start in range(0, n_particles, CHUNK):
        sl = slice(start, min(start + CHUNK, n_particles))
        c = CTFParams(**{k: (v[sl] if isinstance(v, np.ndarray) else v) for k, v in ctf.as_dict().items()})
        clean = finish_images(projections[sl], shifts[sl], c if params.apply_ctf else None, params.pixel_size)
        if params.snr is not None:
            if sigma is None:
                sigma = float(torch.sqrt(clean.var(dim=(-2, -1)).mean() / params.snr))
            clean = clean + sigma * torch.randn(clean.shape, generator=gen)
        images[sl] = clean.numpy()
        if start == 0:
            yield Preview("particles", images[: min(16, n_particles)], "stack", {"voxel_size": params.pixel_size})
        yield Progress(len(ensemble.maps) + start // CHUNK + 1, total, "CTF and noise")
    meta = ParticleMetadata(image_names=[f"{i + 1:06d}@{stem}.mrcs" for i in range(n_particles)], rotations=rots,
                            shifts=-shifts * params.pixel_size, ctf=ctf if params.apply_ctf else None,
                            pixel_size=params.pixel_size)
    truth = pd.DataFrame({"particle": np.arange(n_particles), "conformation": u, "state": state,
                          "shift_x_px": shifts[:, 0], "shift_y_px": shifts[:, 1]})
    if out_dir is not None:
        yield Progress(n_particles, n_particles, "writing files")
        info = {"params": to_dict(params), "n_particles": n_particles, "box_size": n, "seed": seed,
                "noise_sigma": sigma, "ensemble": {"discrete": ensemble.discrete, "coords": ensemble.coords.tolist(),
                                                   "weights": None if ensemble.weights is None
                                                   else ensemble.weights.tolist(), "names": ensemble.names},
                "snr_definition": "var(clean CTF-modulated image over the box, mean of the first 256) / sigma^2",
                "cryoforge_version": __version__}
        write_particles(out_dir, stem, images, meta, truth, ensemble, info, storage)
    yield Result(ParticleSimulation(images, meta, truth, sigma, None if out_dir is None else str(out_dir)))


def write_particles(out_dir: PathLike, stem: str, images: np.ndarray, meta: ParticleMetadata, truth: pd.DataFrame,
                    ensemble: Ensemble, info: dict,
                    storage: str = "float32") -> Path:
    """Write the stack (``storage``: float32 or float16, MRC modes 2 / 12), STAR, truth, states and JSON."""
    if storage not in ("float32", "float16"):
        raise ValueError(f"particle storage must be float32 or float16; got {storage!r}")
    ps = meta.pixel_size
    assert ps is not None, "simulated metadata carry their pixel size"
    with atomic_dir(out_dir, "dataset.json") as out:  # complete or absent; never a mix of two runs
        write_mrc(out / f"{stem}.mrcs", images, ps, stack=True, dtype=storage)
        if ensemble.discrete:
            meta.table = pd.DataFrame({"rlnClassNumber": truth["state"].to_numpy() + 1})
        write_particles_star(out / f"{stem}.star", meta)
        truth.to_csv(out / "truth.csv", index=False)
        keep = ensemble.maps if len(ensemble.maps) <= 8 else ensemble.maps[[0, -1]]
        write_mrc(out / "states.mrc", keep, ps)
        info = dict(info, states_file_holds="all states" if len(ensemble.maps) <= 8 else "first and last state")
        (out / "dataset.json").write_text(json.dumps(info, indent=1, default=float))  # the completion marker
    return Path(out_dir)
