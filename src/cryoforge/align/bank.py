"""A bank of pre-simulated training pairs on disk, read by memory map (issue 27: feed an accelerator).

Simulating a step's pairs on the CPU capped Gum-Net training at 6 steps/s on an H100. A bank simulates once — with the
same simulator as on-the-fly training (:func:`cryoforge.align.data.training_batch`) — and training then reads batches
of rows. Files (one folder): ``s_a.npy`` and ``s_b.npy`` ``(N, n, n, n)`` float16, ``rotations.npy`` ``(N, 3, 3)``
and ``shifts.npy`` ``(N, 3)`` float32 (``s_b = T(R, t) s_a``, :mod:`cryoforge.conventions`), ``snr.npy`` and
``angle_deg.npy`` ``(N,)`` (the relative rotation's angle, which curricula select on), ``bank.json``.
A bank holds finitely many pairs: every pass over it repeats them (on-the-fly simulation never repeats).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..conventions import rotation_angle_deg
from ..io.atomic import atomic_dir
from ..jobs import Progress, Result
from .data import training_batch

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from ..hints import ArrayLike, PathLike
    from ..jobs import Event
    from ..sim.params import TomoParams

MARKER = "bank.json"
CHUNK = 64  # pairs simulated at once (one SNR each, in turn)


def write_bank_job(out: PathLike, maps: ArrayLike, n_pairs: int, params: TomoParams, snrs: Sequence[float],
                   seed: int = 0, wedge_b: float = 30.0, max_shift: float = 7.0, max_angle: float = 180.0,
                   structures: Sequence[str] | None = None) -> Iterator[Event]:
    """Job: simulate ``n_pairs`` training pairs into the bank folder ``out`` (written whole or not at all; chunks of
    :data:`CHUNK` pairs cycle through ``snrs``). ``Result``: the folder's path."""
    if n_pairs < 1:
        raise ValueError(f"a bank needs at least one pair; got {n_pairs}")
    maps = np.asarray(maps, np.float32)
    n = maps.shape[-1]
    with atomic_dir(out, MARKER) as tmp:
        arrays = {name: np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
                  for name, dtype, shape in (("s_a", np.float16, (n_pairs, n, n, n)),
                                             ("s_b", np.float16, (n_pairs, n, n, n)),
                                             ("rotations", np.float32, (n_pairs, 3, 3)),
                                             ("shifts", np.float32, (n_pairs, 3)), ("snr", np.float32, (n_pairs,)),
                                             ("angle_deg", np.float32, (n_pairs,)))}
        chunks = range(0, n_pairs, CHUNK)
        for k, start in enumerate(chunks):
            stop = min(start + CHUNK, n_pairs)
            snr = float(snrs[k % len(snrs)])
            s_a, s_b, rel, sh = training_batch(maps, stop - start, params, [snr], seed, k, wedge_b, max_shift,
                                               max_angle)
            arrays["s_a"][start:stop], arrays["s_b"][start:stop] = s_a.numpy(), s_b.numpy()
            arrays["rotations"][start:stop], arrays["shifts"][start:stop] = rel.numpy(), sh.numpy()
            arrays["snr"][start:stop] = snr
            arrays["angle_deg"][start:stop] = rotation_angle_deg(rel, torch.eye(3).expand_as(rel)).numpy()
            yield Progress(k + 1, len(chunks), f"{stop}/{n_pairs} pairs")
        for a in arrays.values():
            a.flush()
        info = {"pairs": n_pairs, "box": n, "voxel_size_A": params.voxel_size, "snrs": [float(s) for s in snrs],
                "seed": seed, "wedge_b_deg": wedge_b, "max_shift_vox": max_shift, "max_angle_deg": max_angle,
                "structures": list(structures or []), "dtype": "float16"}
        (tmp / MARKER).write_text(json.dumps(info, indent=1))
    yield Result(Path(out))


@dataclass
class PairBank:
    """A bank opened for training: the arrays memory-mapped, read a batch of rows at a time."""

    folder: Path
    info: dict
    arrays: dict[str, np.ndarray]

    @classmethod
    def open(cls, folder: PathLike) -> PairBank:
        folder = Path(folder)
        if not (folder / MARKER).is_file():
            raise FileNotFoundError(f"{folder}: not a pair bank (no {MARKER}; make one with cryoforge align bank)")
        info = json.loads((folder / MARKER).read_text())
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r")
                  for name in ("s_a", "s_b", "rotations", "shifts", "snr", "angle_deg")}
        return cls(folder, info, arrays)

    def __len__(self) -> int:
        return len(self.arrays["snr"])

    def batch(self, size: int, seed: int, step: int, max_angle: float, snrs: Sequence[float]
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(s_a, s_b, R, t)`` of ``size`` rows drawn from ``(seed, step)`` among the pairs turned by at most
        ``max_angle`` degrees at the step's SNR (``snrs`` cycled by step, as :func:`training_batch` does); rows are
        read in increasing order (sequential pages)."""
        snr = float(snrs[step % len(snrs)])
        ok = np.flatnonzero((self.arrays["angle_deg"] <= max_angle + 1e-3)
                            & np.isclose(self.arrays["snr"], snr, rtol=1e-5))
        if not len(ok):
            raise ValueError(f"{self.folder}: no pair in the bank at SNR {snr:g} turned by ≤ {max_angle:g}°; the bank "
                             f"holds SNRs {sorted(set(self.info['snrs']))} up to {self.info['max_angle_deg']:g}°")
        rows = np.sort(np.random.default_rng([seed, step]).choice(ok, size, replace=len(ok) < size))
        get = self.arrays
        return (torch.from_numpy(np.asarray(get["s_a"][rows], np.float32)),
                torch.from_numpy(np.asarray(get["s_b"][rows], np.float32)),
                torch.from_numpy(np.asarray(get["rotations"][rows])), torch.from_numpy(np.asarray(get["shifts"][rows])))
