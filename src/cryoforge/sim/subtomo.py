"""Subtomogram pair datasets (seeds 000/001): ``s_a`` without a wedge, ``s_b`` with one, known relative pose.

Pair ``i`` uses structure ``i mod K``. ``s_a`` is the structure rotated by a uniform random ``R_a``;
``s_b`` is it rotated by ``R_b`` and shifted by ``t`` (uniform in the ball ``|t| ≤ max_shift`` voxels).
Ground truth (:func:`cryoforge.geometry.transform_volumes` convention): ``s_b = T(R, t) s_a`` with
``R = R_b R_aᵀ`` — the transform an aligner must find to map ``s_a`` onto ``s_b`` (its inverse brings
``s_b`` back onto ``s_a``). Each subtomogram has its own defocus, drawn uniformly in the range.

On disk (:func:`write_pairs`): ``subtomos_a.mrc`` / ``subtomos_b.mrc`` (MRC2014 stacks of volumes),
``truth.star`` (one row per pair; angles ZYZ RELION degrees, shifts in voxels and Å), ``maps.mrc``
(the clean structures, canonical pose), ``wedge_a.mrc`` / ``wedge_b.mrc`` (Fourier-space sampling
masks, centred) and ``dataset.json`` (parameters, definitions, provenance).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from .. import __version__
from ..configs import to_dict
from ..conventions import matrix_to_euler_zyz, random_rotations
from ..io.atomic import atomic_dir
from ..io.mrc import read_mrc, write_mrc
from ..jobs import Log, Preview, Progress, Result
from ..resources import check_allocation
from .params import TomoParams
from .tomo import centred_wedge, simulate_subtomograms, tilt_angles, tilt_range_from_wedge

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

    from ..hints import PathLike, Tensorish
    from ..jobs import Event


SNR_DEFINITION = ("subtomogram SNR = c/(1-c) for the Pearson correlation c of two aligned noisy copies "
                  "= var(signal)/var(noise) of the reconstructed subtomogram over the box (seed 001)")
INT8_RANGE = 5.0  # int8 storage keeps ±5 standard deviations


@dataclass
class PairDataset:
    """Simulated pairs: ``s_a``, ``s_b`` ``(N, n, n, n)`` float32, the ``truth`` table and the clean ``maps``."""

    s_a: np.ndarray
    s_b: np.ndarray
    truth: pd.DataFrame
    maps: np.ndarray
    structures: list[str]
    voxel_size: float
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.s_a)

    def rotations(self) -> np.ndarray:
        """Ground-truth relative rotations ``R = R_b R_aᵀ``, ``(N, 3, 3)``."""
        from ..conventions import euler_zyz_to_matrix

        t = self.truth
        return euler_zyz_to_matrix(t["rel_rot"].to_numpy(), t["rel_tilt"].to_numpy(),
                                   t["rel_psi"].to_numpy()).numpy().astype(np.float32)

    def shifts(self) -> np.ndarray:
        """Ground-truth shifts ``t`` in voxels ``(x, y, z)``, ``(N, 3)``."""
        return self.truth[["shift_x", "shift_y", "shift_z"]].to_numpy(np.float32)


def random_shifts(n: int, max_shift: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` shifts uniform in the ball of radius ``max_shift`` (voxels), ``(n, 3)``."""
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-12
    return (d * max_shift * rng.random((n, 1)) ** (1 / 3)).astype(np.float32)


def _check(maps: np.ndarray, n_pairs: int, wedge_a: float, wedge_b: float, max_shift: float):
    if maps.ndim != 4 or len(set(maps.shape[1:])) != 1:
        raise ValueError(f"maps must be a (K, n, n, n) stack of cubic volumes; got shape {maps.shape}")
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be at least 1; got {n_pairs!r}")
    for name, w in (("wedge_a", wedge_a), ("wedge_b", wedge_b)):
        if not 0 <= w <= 90:
            raise ValueError(f"{name} must lie in [0, 90] degrees (the tilt range is ±(90 − wedge)); got {w!r}")
    if not 0 <= max_shift <= maps.shape[-1] / 2:
        raise ValueError(f"max_shift must be in [0, box/2 = {maps.shape[-1] / 2:g}] voxels; got {max_shift!r}")


def simulate_pairs_job(maps: Tensorish, structures: Sequence[str] | None = None, n_pairs: int = 100,
                       params: TomoParams | None = None,
                       wedge_a: float = 0.0, wedge_b: float = 30.0, max_shift: float = 7.0, seed: int = 0,
                       batch: int = 32, out_dir: PathLike | None = None, storage: str = "float32") -> Iterator[Event]:
    """Job: simulate ``n_pairs`` pairs from ``maps`` ``(K, n, n, n)``; yields progress, a preview and the dataset.

    With ``out_dir`` the files are written once all pairs exist, as one folder that appears whole
    (:func:`cryoforge.io.atomic.atomic_dir`); cancelling earlier writes nothing.
    """
    params = (params or TomoParams()).validate()
    maps = np.asarray(maps, dtype=np.float32)
    _check(maps, n_pairs, wedge_a, wedge_b, max_shift)
    n = maps.shape[-1]
    check_allocation(2 * n_pairs * n**3 * 4 * 1.5, f"{n_pairs} subtomogram pairs of {n}³",
                     "simulate fewer pairs (--n-pairs) per run, or a smaller box")
    n_tilts = len(tilt_angles(-90.0, 90.0, params.tilt_step))
    check_allocation(min(batch, n_pairs) * n_tilts * n * n * 4 * 2, f"{n_tilts} tilts per subtomogram",
                     f"use a coarser --tilt-step than {params.tilt_step:g}°")
    k = len(maps)
    structures = list(structures) if structures else [f"structure{i}" for i in range(k)]
    rng = np.random.default_rng(seed)
    rots = random_rotations(2 * n_pairs, seed).numpy()
    ra, rb = rots[:n_pairs], rots[n_pairs:]
    shifts = random_shifts(n_pairs, max_shift, rng)
    defocus = rng.uniform(params.defocus_min, params.defocus_max, size=(n_pairs, 2)).astype(np.float32)
    ids = np.arange(n_pairs) % k
    gen = torch.Generator().manual_seed(int(seed))
    amin, amax = tilt_range_from_wedge(wedge_a)
    bmin, bmax = tilt_range_from_wedge(wedge_b)
    vols = torch.from_numpy(maps)
    s_a, s_b = [], []
    yield Log(f"{n_pairs} pairs of {k} structure(s) at {maps.shape[-1]}³, {params.voxel_size:g} Å/voxel, "
              f"SNR {params.snr}, wedges {wedge_a:g}° / {wedge_b:g}°, {params.reconstruction} reconstruction")
    for start in range(0, n_pairs, batch):
        sl = slice(start, min(start + batch, n_pairs))
        v = vols[ids[sl]]
        s_a.append(simulate_subtomograms(v, ra[sl], None, defocus[sl, 0], amin, amax, params, gen).numpy())
        s_b.append(simulate_subtomograms(v, rb[sl], shifts[sl], defocus[sl, 1], bmin, bmax, params, gen).numpy())
        if start == 0:
            yield Preview("s_a", s_a[0][0], "volume", {"voxel_size": params.voxel_size})
            yield Preview("s_b", s_b[0][0], "volume", {"voxel_size": params.voxel_size})
        yield Progress(sl.stop, n_pairs, "simulating subtomogram pairs")
    rel = np.einsum("nij,nkj->nik", rb, ra)
    ang = {name: matrix_to_euler_zyz(m.astype(np.float64)).numpy() for name, m in (("a", ra), ("b", rb), ("rel", rel))}
    truth = pd.DataFrame({"pair": np.arange(n_pairs), "structure": [structures[i] for i in ids]})
    for name in ("a", "b", "rel"):
        for j, col in enumerate(("rot", "tilt", "psi")):
            truth[f"{name}_{col}"] = ang[name][:, j]
    for j, ax in enumerate("xyz"):
        truth[f"shift_{ax}"] = shifts[:, j]
        truth[f"shift_{ax}_angst"] = shifts[:, j] * params.voxel_size
    truth["defocus_a"], truth["defocus_b"] = defocus[:, 0], defocus[:, 1]
    info = {"params": to_dict(params), "n_pairs": n_pairs, "box_size": int(maps.shape[-1]), "seed": seed,
            "wedge_a": wedge_a, "wedge_b": wedge_b, "tilt_range_a": [amin, amax], "tilt_range_b": [bmin, bmax],
            "max_shift_voxels": max_shift, "structures": structures, "snr_definition": SNR_DEFINITION,
            "truth_convention": "s_b = T(R, t) s_a, R = R_b R_a^T (rel_* angles), t = shift (voxels, x y z); "
                                "T(R, t) V (p) = V(R^T (p - t)); RELION ZYZ angles of the rotation matrices",
            "cryoforge_version": __version__}
    ds = PairDataset(np.concatenate(s_a), np.concatenate(s_b), truth, maps, structures, params.voxel_size, info)
    if out_dir is not None:
        yield Progress(n_pairs, n_pairs, "writing files")
        write_pairs(ds, out_dir, storage=storage)
    yield Result(ds)


def _store(path: Path, data: np.ndarray, voxel_size: float, storage: str) -> dict:
    if storage == "int8":
        scale = INT8_RANGE * float(data.std()) / 127.0
        q = np.clip(np.round((data - data.mean()) / scale), -127, 127)
        write_mrc(path, q, voxel_size, dtype="int8")
        return {"storage": "int8", "scale": scale, "offset": float(data.mean())}
    write_mrc(path, data, voxel_size, dtype=storage)
    return {"storage": storage, "scale": 1.0, "offset": 0.0}


def _load(path: Path, rec: dict, mmap: bool = False) -> Any:
    if mmap:
        from ..io.mrc import StoredStack

        data, _ = read_mrc(path, mmap=True, finite=True)
        return StoredStack(data, rec.get("scale", 1.0), rec.get("offset", 0.0))
    data, _ = read_mrc(path, finite=True)
    return data * np.float32(rec.get("scale", 1.0)) + np.float32(rec.get("offset", 0.0))


def write_pairs(ds: PairDataset, out_dir: PathLike, storage: str = "float32") -> Path:
    """Write a :class:`PairDataset` (see the module docstring). ``storage``: float32, float16, or int8
    (values scaled to ±5 σ; the scale is in ``dataset.json`` and :func:`read_pairs` undoes it)."""
    import starfile

    with atomic_dir(out_dir, "dataset.json") as out:  # complete or absent; never a mix of two runs
        vs = ds.voxel_size
        files = {"s_a": _store(out / "subtomos_a.mrc", ds.s_a, vs, storage),
                 "s_b": _store(out / "subtomos_b.mrc", ds.s_b, vs, storage)}
        write_mrc(out / "maps.mrc", ds.maps, vs)
        n = ds.maps.shape[-1]
        for key in ("a", "b"):
            lo, hi = ds.info[f"tilt_range_{key}"]
            mask = centred_wedge(n, lo, hi).numpy()
            write_mrc(out / f"wedge_{key}.mrc", mask, 1.0 / (n * vs))
        starfile.write({"pairs": ds.truth}, out / "truth.star", overwrite=True)
        info = dict(ds.info, files=files)
        (out / "dataset.json").write_text(json.dumps(info, indent=1, default=float))  # the completion marker
    return Path(out_dir)


def read_pairs(path: PathLike, mmap: bool = False) -> PairDataset:
    """Read a directory written by :func:`write_pairs`; with ``mmap`` the subtomograms stay on disk
    (:class:`cryoforge.io.mrc.StoredStack`: a job reads only the rows it aligns)."""
    import starfile

    d = Path(path)
    if not (d / "dataset.json").is_file():
        if (d / "tomogram.mrc").is_file() and (d / "particles.star").is_file():
            raise FileNotFoundError(f"{d}: a tomogram and its particles (cryoforge simulate tomogram), not subtomogram "
                                    f"pairs; give them as `{d / 'tomogram.mrc'} --particles {d / 'particles.star'} "
                                    "--box N`")
        held = sorted(p.name for p in d.glob("*.mrcs")) if d.is_dir() else []
        what = f"; it holds a particle stack ({held[0]}), not subtomogram pairs" if held else ""
        raise FileNotFoundError(f"{d}: not a cryoforge subtomogram-pair dataset (no dataset.json){what}; make one "
                                "with `cryoforge simulate subtomos`")
    info = json.loads((d / "dataset.json").read_text())
    files = info.get("files", {})
    s_a = _load(d / "subtomos_a.mrc", files.get("s_a", {}), mmap)
    s_b = _load(d / "subtomos_b.mrc", files.get("s_b", {}), mmap)
    maps, mi = read_mrc(d / "maps.mrc", finite=True)
    truth = starfile.read(d / "truth.star", always_dict=True)["pairs"]
    maps = maps if maps.ndim == 4 else maps[None]
    counts = {"subtomos_a.mrc": len(s_a), "subtomos_b.mrc": len(s_b), "truth.star": len(truth)}
    if "n_pairs" in info:
        counts["dataset.json"] = int(info["n_pairs"])
    if len(set(counts.values())) > 1:
        raise ValueError(f"{d}: an incomplete or mixed dataset: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                         + " pairs; simulate it again")
    if "structures" not in info:
        raise ValueError(f"{d}: dataset.json names no structures; not a complete cryoforge pair dataset")
    return PairDataset(s_a, s_b, truth, maps, list(info["structures"]), float(mi.voxel_size[0]), info)


def dataset_masks(ds: PairDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The centred Fourier masks of ``s_a`` and ``s_b`` of a pair dataset."""
    n = ds.s_a.shape[-1]
    ra = ds.info.get("tilt_range_a", tilt_range_from_wedge(ds.info.get("wedge_a", 0.0)))
    rb = ds.info.get("tilt_range_b", tilt_range_from_wedge(ds.info.get("wedge_b", 30.0)))
    return centred_wedge(n, *ra), centred_wedge(n, *rb)
