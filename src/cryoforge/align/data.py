"""Subtomogram pairs for alignment: on-the-fly simulation for training, masks of a dataset, held-out sets."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..io.mrc import read_mrc
from ..jobs import Result
from ..samples import SUBTOMO_PAIRS, sample_path
from ..sim.params import TomoParams
from ..sim.subtomo import PairDataset, simulate_pairs_job
from ..sim.tomo import tilt_range_from_wedge

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..hints import ArrayLike, Tensorish



def simulate_pairs(maps: Tensorish, n_pairs: int, params: TomoParams, seed: int, wedge_a: float = 0.0,
                   wedge_b: float = 30.0,
                   max_shift: float = 7.0, structures: Sequence[str] | None = None) -> PairDataset:
    """A pair dataset drawn from ``seed`` (structures in turn; see :mod:`cryoforge.sim.subtomo`)."""
    result: PairDataset | None = None
    for event in simulate_pairs_job(maps, structures, n_pairs, params, wedge_a, wedge_b, max_shift, seed,
                                    batch=max(n_pairs, 1)):
        if isinstance(event, Result):
            result = event.value
    if result is None:
        raise RuntimeError("the pair simulation ended without a result")
    return result


def curriculum(step: int, ramp_steps: int, start_angle: float = 15.0, start_shift: float = 1.0,
               max_shift: float = 7.0) -> tuple[float, float]:
    """Largest relative rotation (degrees) and shift (voxels) of training pairs at ``step``: linear ramps
    from ``start_*`` to 180° / ``max_shift`` over ``ramp_steps`` (0: no curriculum)."""
    if ramp_steps <= 0:
        return 180.0, max_shift
    f = min(1.0, step / ramp_steps)
    return start_angle + (180.0 - start_angle) * f, start_shift + (max_shift - start_shift) * f


def training_batch(maps: ArrayLike, batch: int, params: TomoParams, snrs: Sequence[float], seed: int, step: int,
                   wedge_b: float = 30.0, max_shift: float = 7.0,
                   max_angle: float = 180.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(s_a, s_b, R, t)`` of a random batch for ``step``, reproducible from ``(seed, step)``.

    Structures drawn at random; ``s_a`` (no wedge) at a uniform rotation ``R_a``; ``s_b = T(R, t) s_a``
    with ``R`` uniform over SO(3) when ``max_angle ≥ 180`` else a rotation about a random axis by an
    angle uniform in ``[0, max_angle]``; ``t`` uniform in the ball of ``max_shift``. The SNR cycles
    through ``snrs``; each subtomogram has its own defocus.
    """
    from ..conventions import random_rotations, rotation_about_axis
    from ..sim.subtomo import random_shifts
    from ..sim.tomo import simulate_subtomograms

    rng = np.random.default_rng([seed, step])
    stack = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    vols = stack[torch.as_tensor(rng.integers(len(stack), size=batch))]
    r_a = random_rotations(batch, int(rng.integers(2**31)))
    if max_angle >= 180:
        rel = random_rotations(batch, int(rng.integers(2**31)))
    else:
        rel = rotation_about_axis(rng.normal(size=(batch, 3)), rng.uniform(0, max_angle, batch)).float()
    r_b = rel @ r_a
    shifts = torch.from_numpy(random_shifts(batch, max_shift, rng))
    defocus = rng.uniform(params.defocus_min, params.defocus_max, size=(batch, 2)).astype(np.float32)
    p = replace(params, snr=snrs[step % len(snrs)])
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    s_a = simulate_subtomograms(vols, r_a, None, defocus[:, 0], -90.0, 90.0, p, gen)
    bmin, bmax = tilt_range_from_wedge(wedge_b)
    s_b = simulate_subtomograms(vols, r_b, shifts, defocus[:, 1], bmin, bmax, p, gen)
    return s_a, s_b, rel, shifts


def load_maps(source: str | None) -> tuple[np.ndarray, list[str]]:
    """Training maps: a pair-dataset folder (its maps.mrc), an MRC volume or volume stack; default: the sample set."""
    path = Path(source) if source else sample_path(SUBTOMO_PAIRS)
    if path.is_dir():
        info = json.loads((path / "dataset.json").read_text()) if (path / "dataset.json").is_file() else {}
        data, _ = read_mrc(path / "maps.mrc", finite=True)
        names = info.get("structures")
    else:
        data, _ = read_mrc(path, finite=True)
        names = None
    maps = np.asarray(data, dtype=np.float32)
    maps = maps[None] if maps.ndim == 3 else maps
    return maps, names or [f"{path.stem}{i}" for i in range(len(maps))]
