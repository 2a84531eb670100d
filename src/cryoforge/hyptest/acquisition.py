"""Simulated acquisition of subtomograms for the hypothesis test's benches and calibrations: random poses, a tilt
range, phase-flipped CTF and noise at a per-voxel SNR (:mod:`cryoforge.sim.tomo`), optionally at a finer sampling
binned to the templates' grid (:func:`cryoforge.hyptest.templates.bin_to_templates`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..conventions import random_rotations
from ..sim.params import TomoParams
from ..sim.sources import MapSpec, load_map
from ..sim.tomo import simulate_subtomograms
from .templates import bin_to_templates

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from ..hints import Tensorish


def simulate(maps: Tensorish, snr: float | None, seed: int, max_shift: float = 2.0,
             voxel_size: float = 12.0, defocus: float | None = None,
             cs: float | None = None, tilt: tuple[float, float] = (-60.0, 60.0), voltage: float | None = None,
             amplitude_contrast: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subtomograms of ``maps`` ``(N, n, n, n)`` (``voxel_size`` Å) at random poses, ``tilt`` range (degrees),
    phase-flipped CTF (defocus ``defocus`` µm, else drawn in the simulator's range; ``cs`` mm, ``voltage`` kV and
    ``amplitude_contrast``, else the simulator's defaults); also the noise alone, and each subtomogram's defocus (Å)."""
    maps = torch.as_tensor(np.asarray(maps, np.float32))
    n = len(maps)
    rng = np.random.default_rng(seed)
    rots = random_rotations(n, seed)
    d = rng.normal(size=(n, 3))
    shifts = torch.from_numpy((d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(0, max_shift, (n, 1)))
                              .astype(np.float32))
    optics: dict[str, Any] = {k: v for k, v in (("cs", cs), ("voltage", voltage),
                                                ("amplitude_contrast", amplitude_contrast)) if v is not None}
    if defocus is not None:
        optics.update(defocus_min=defocus * 1e4, defocus_max=defocus * 1e4)
    params = TomoParams(voxel_size=voxel_size, snr=snr, ctf_correction="phase_flip", **optics)
    df = torch.from_numpy(rng.uniform(params.defocus_min, params.defocus_max, n).astype(np.float32))
    g = torch.Generator().manual_seed(seed)
    noisy = simulate_subtomograms(maps, rots, shifts, df, *tilt, params, g)
    clean = simulate_subtomograms(maps, rots, shifts, df, *tilt, TomoParams(voxel_size=voxel_size, snr=None,
                                                                             ctf_correction="phase_flip", **optics))
    return noisy.numpy(), (noisy - clean).numpy(), df.numpy()


def acquire(maps: Tensorish, snr: float | None, seed: int, voxel_size: float, template_voxel: float,
            template_box: int, defocus: float | None = None, cs: float | None = None,
            tilt: tuple[float, float] = (-60.0, 60.0), **optics: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """:func:`simulate` at ``voxel_size`` Å (``defocus`` µm and ``cs`` mm, or the simulator's), then binned to the
    templates' grid: subtomograms, their noise, defocus, and the SNR measured at the templates' sampling. ``optics``:
    ``voltage``, ``amplitude_contrast`` (:func:`simulate`)."""
    noisy, noise, df = simulate(maps, snr, seed, voxel_size=voxel_size, defocus=defocus, cs=cs, tilt=tilt, **optics)
    noisy, _ = bin_to_templates(noisy, None, voxel_size, template_voxel, template_box)
    noise, _ = bin_to_templates(noise, None, voxel_size, template_voxel, template_box)
    signal = noisy - noise
    return noisy, noise, df, float(signal.var(axis=(1, 2, 3)).mean() / noise.var(axis=(1, 2, 3)).mean())


def source_maps(sources: Sequence[str], n: int, voxel_size: float) -> np.ndarray:
    """Maps of template-set ``sources`` at ``n``³ × ``voxel_size`` Å, or a clear error when a file is missing."""
    from pathlib import Path

    missing = [s for s in sources if not s.startswith("phantom:") and not Path(s).is_file()]
    if missing:
        raise FileNotFoundError(f"acquiring at {voxel_size:g} Å makes the maps from the template set's sources; "
                                f"missing {', '.join(missing)} (run from the folder they are relative to, or set "
                                f"acquisition_voxel to the templates' voxel size)")
    return np.stack([load_map(s, MapSpec(n, voxel_size)) for s in sources]).astype(np.float32)


def acquire_structures(structures: Tensorish, n_acq: int, snr: float | None, seed: int, voxel_size: float,
                       template_voxel: float, template_box: int, defocus: float | None = None,
                       cs: float | None = None, tilt: tuple[float, float] = (-60.0, 60.0),
                       **optics: float) -> tuple[np.ndarray, np.ndarray]:
    """GAN structures on the templates' grid ``(m, n, n, n)`` resampled to the acquisition's ``n_acq``³ and
    then acquired (:func:`acquire`): the subtomograms and their defocus (Å) — the H0 cases' ``P``
    (:func:`cryoforge.hyptest.h0.h0_job`)."""
    from ..fourier import upsample

    sub, _, df, _ = acquire(upsample(torch.as_tensor(structures), n_acq).numpy(), snr, seed, voxel_size,
                            template_voxel, template_box, defocus, cs, tilt, **optics)
    return sub, df
