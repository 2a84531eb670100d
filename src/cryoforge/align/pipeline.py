"""Align the pairs of a dataset with Gum-Net, the classical search or the hybrid; errors against the truth.

:func:`align_pairs_job` is the engine job the CLI (``cryoforge align run``), the bench and the
"Align & average" dock share. Estimated poses follow ``s_b ≈ T(R, t) s_a`` (:mod:`cryoforge.align.warp`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..conventions import euler_zyz_to_matrix, matrix_to_euler_zyz, rotation_angle_deg, rotation_frobenius
from ..io.mrc import StoredStack
from ..jobs import Log, Metrics, Preview, Progress, Result
from ..jobs.distributed import World, gather, shard
from ..search import SearchConfig, classical_align
from .warp import masked_pearson, rotate_fourier_masks, warp_inverse

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..hints import PathLike, Tensorish
    from ..jobs import Event
    from ..sim.subtomo import PairDataset
    from .gumnet import GumNet


METHODS = ("gumnet", "classical", "hybrid")


def pose_errors(rot: Tensorish, shifts: Tensorish, true_rot: Tensorish, true_shifts: Tensorish) -> dict:
    """Per-pair rotation error (degrees, Frobenius) and translation error (voxels)."""
    rot, true_rot = torch.as_tensor(rot, dtype=torch.float64), torch.as_tensor(true_rot, dtype=torch.float64)
    d = torch.as_tensor(shifts, dtype=torch.float64) - torch.as_tensor(true_shifts, dtype=torch.float64)
    return {"rot_deg": rotation_angle_deg(rot, true_rot).numpy(), "rot_frob": rotation_frobenius(rot, true_rot).numpy(),
            "trans_vox": torch.linalg.norm(d, dim=1).numpy()}


SELF_MATCH = 0.9  # correlation of the clean map with itself turned, at which the turn counts as its symmetry


def errors_modulo_symmetry(maps: Tensorish, structure: np.ndarray, absolute: Tensorish, rot: Tensorish,
                           true_rot: Tensorish, rot_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation errors (degrees) modulo each structure's symmetry, and which pairs were turned by one.

    With ``s_a = T(A) M`` and ``s_b = T(B) M``, an estimate ``R`` is right up to symmetry when ``S = Bᵀ R A`` maps
    the clean map ``M`` onto itself; its error is then the angle from ``S`` to the nearest rotation that does
    (:func:`cryoforge.search.nearest_self_match`, correlation ≥ :data:`SELF_MATCH`). ``maps`` ``(K, n, n, n)``,
    ``structure`` ``(N,)`` each pair's map index, ``absolute`` ``(N, 3, 3)`` the ``A``; pairs off by ≤ 10° keep
    their error."""
    from ..search import nearest_self_match

    out, turned = np.array(rot_deg, np.float64), np.zeros(len(rot_deg), bool)
    a = torch.as_tensor(np.asarray(absolute), dtype=torch.float64)
    r, rt = (torch.as_tensor(np.asarray(x), dtype=torch.float64) for x in (rot, true_rot))
    for k in np.unique(structure):
        rows = np.where((structure == k) & (out > 10))[0]
        if not len(rows):
            continue
        ak = a[rows]
        s = ak.transpose(-1, -2) @ rt[rows].transpose(-1, -2) @ r[rows] @ ak  # Bᵀ R A with B = R_true A
        match, corr = nearest_self_match(np.asarray(maps)[k], s.float())
        ok = (corr >= SELF_MATCH).numpy()
        out[rows[ok]] = rotation_angle_deg(s[ok], match[ok].double()).numpy()
        turned[rows[ok]] = True
    return out, turned


def summarize(errors: dict) -> dict:
    """Mean, standard deviation and median of each per-pair error list (``{key}_mean`` …)."""
    out = {}
    for k, v in errors.items():
        out[f"{k}_mean"], out[f"{k}_sd"], out[f"{k}_median"] = float(np.mean(v)), float(np.std(v)), float(np.median(v))
    return out


@dataclass
class AlignmentResult:
    """What an alignment job returns. Poses follow ``s_b ≈ T(R, t) s_a`` (:mod:`cryoforge.conventions`)."""

    method: str
    rotations: np.ndarray  # (N, 3, 3)
    shifts: np.ndarray  # (N, 3) voxels, (x, y, z)
    seconds: float
    pairs_per_s: float
    corr_before: np.ndarray  # (N,) wedge-constrained correlation of s_a and s_b as given
    corr_after: np.ndarray  # (N,) the same after undoing the estimated pose
    aligned_first: np.ndarray  # the first pair's s_b with its pose undone, (n, n, n): what a viewer shows
    summary: dict[str, float] = field(default_factory=dict)  # pairs/s and, with the truth, error statistics
    errors: dict[str, np.ndarray] | None = None  # per-pair errors against the truth, when known

    @property
    def n_pairs(self) -> int:
        """Number of pairs aligned."""
        return len(self.rotations)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (arrays as lists) without the aligned volume."""
        out = {k: v for k, v in asdict(self).items() if k != "aligned_first"}
        out["n_pairs"] = self.n_pairs
        return json.loads(json.dumps(out, default=lambda a: np.asarray(a).tolist()))


def _load_model(checkpoint, box, device):
    from ..samples import GUMNET_CHECKPOINT, sample_path
    from .train import load_gumnet

    return load_gumnet(checkpoint or sample_path(GUMNET_CHECKPOINT), box=box, device=device)


def align_pairs_job(s_a: Tensorish, s_b: Tensorish, mask_a: Tensorish | None = None, mask_b: Tensorish | None = None,
                    method: str = "hybrid", checkpoint: PathLike | None = None, model: GumNet | None = None,
                    truth: tuple | None = None, search: SearchConfig | None = None, batch: int = 16,
                    device: str = "cpu", voxel_size: float = 1.0,
                    symmetry: tuple | None = None, adapt_norm: bool = True,
                    norm_pairs: tuple[Tensorish, Tensorish] | None = None,
                    world: World | None = None) -> Iterator[Event]:
    """Job: align pairs ``s_a``, ``s_b`` ``(N, n, n, n)`` (or single volumes); ``Result`` is an
    :class:`AlignmentResult` (with ``truth = (R, t)``: per-pair ``errors`` and their ``summary``; with
    ``symmetry = (maps, structure index per pair, absolute rotation A of s_a per pair, names)`` also
    ``rot_deg_sym``, the errors modulo each map's symmetry, :func:`errors_modulo_symmetry`). ``adapt_norm``: the
    network normalises with statistics of these pairs (:func:`cryoforge.align.adapt.recalibrated`; from 8 pairs
    on), not the mixture stored in training; ``norm_pairs = (s_a, s_b)``: take the statistics from these pairs instead
    (the stack a single pair comes from). ``world``: one of several processes (``torchrun``): each aligns its block
    of whole batches and rank 0 gathers them and returns the result (the others return None); the poses are those
    of one process (:mod:`cryoforge.jobs.distributed`)."""
    world = world or World()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if not isinstance(s_a, StoredStack):  # a stored stack stays on disk: each batch reads its rows
        s_a = torch.as_tensor(np.asarray(s_a, dtype=np.float32))
    if not isinstance(s_b, StoredStack):
        s_b = torch.as_tensor(np.asarray(s_b, dtype=np.float32))
    if tuple(s_a.shape) != tuple(s_b.shape):
        raise ValueError(f"s_a and s_b must have the same shape; got {tuple(s_a.shape)} and {tuple(s_b.shape)}")
    if len(s_a.shape) == 3:
        s_a, s_b = s_a[None], s_b[None]
    shape = tuple(s_a.shape[1:])
    if len(s_a.shape) != 4 or len(set(shape)) != 1:
        raise ValueError(f"subtomograms must be cubic (n, n, n); got {shape} (Z, Y, X)")
    n_pairs, n = len(s_a), shape[0]
    full = torch.ones(shape)
    mask_a = full if mask_a is None else torch.as_tensor(np.asarray(mask_a, dtype=np.float32))
    mask_b = full if mask_b is None else torch.as_tensor(np.asarray(mask_b, dtype=np.float32))
    if method != "classical" and model is None:
        model = _load_model(checkpoint, n, device)
    adapted = False
    t0 = time.perf_counter()  # the recalibration is part of the cost of aligning
    if method != "classical" and adapt_norm:
        from .adapt import recalibrated

        assert model is not None
        tuned = recalibrated(model, *(norm_pairs or (s_a, s_b)), device=device)
        adapted, model = tuned is not model, tuned
    mine = shard(n_pairs, world, batch)
    rots, shifts, before, after = [torch.zeros(0, 3, 3)], [torch.zeros(0, 3)], [torch.zeros(0)], [torch.zeros(0)]
    first = None
    for start in range(mine.start, mine.stop, batch):
        sl = slice(start, min(start + batch, mine.stop))
        a, b = (torch.as_tensor(np.asarray(x[sl], dtype=np.float32)) for x in (s_a, s_b))
        init = None
        if method != "classical":
            from .train import gumnet_predict

            assert model is not None  # loaded above for every learned method
            r, t = gumnet_predict(model, a, b, batch=batch, device=device)
            init = r
        if method != "gumnet":
            r, t, _ = classical_align(a, b, mask_a, mask_b, search, initial=init, device=device)
        r, t = r.cpu(), t.cpu()
        warped = warp_inverse(b, r, t)
        rots.append(r)
        shifts.append(t)
        before.append(masked_pearson(a, b, mask_a * mask_b))
        after.append(masked_pearson(a, warped, rotate_fourier_masks(mask_b.expand(len(a), *shape), r) * mask_a))
        done = sl.stop - mine.start
        yield Progress(done, len(mine), f"{method} alignment" + (f" (rank {world.rank} of {world.size}: pairs "
                                                                 f"{mine.start}–{mine.stop - 1})" if world.size > 1 else ""))
        if start == 0:
            first = warped[0].numpy()
            vs = {"voxel_size": voxel_size}
            yield Preview("s_a", a[0].numpy(), "volume", vs)
            yield Preview("s_b", b[0].numpy(), "volume", vs)
            yield Preview("aligned s_b", first, "volume", vs)
    blocks = gather(tuple(torch.cat(x) for x in (rots, shifts, before, after)), world)
    if blocks is None:  # not rank 0: its block is on its way there
        yield Result(None)
        return
    rot, sh, corr_before, corr_after = (torch.cat([blk[i] for blk in blocks]) for i in range(4))
    elapsed = time.perf_counter() - t0
    assert first is not None  # rank 0 aligns the first batch
    result = AlignmentResult(method, rot.numpy(), sh.numpy(), elapsed, n_pairs / elapsed, corr_before.numpy(),
                             corr_after.numpy(), first)
    result.summary = {"pairs_per_s": result.pairs_per_s}
    if method != "classical":
        result.summary["norm_from_these_pairs"] = int(adapted)  # 0: the statistics stored in training
    if truth is not None:
        result.errors = pose_errors(rot, sh, truth[0][:n_pairs], truth[1][:n_pairs])
        if symmetry is not None:
            maps, structure, absolute, names = symmetry
            sym, turned = errors_modulo_symmetry(maps, np.asarray(structure)[:n_pairs], np.asarray(absolute)[:n_pairs],
                                                 rot, truth[0][:n_pairs], result.errors["rot_deg"])
            result.errors["rot_deg_sym"] = sym
            result.summary["pairs_turned_by_symmetry"] = int(turned.sum())
            which = sorted({names[int(k)] for k in np.asarray(structure)[:n_pairs][turned]})
            yield Log(f"{int(turned.sum())} of {n_pairs} pairs were found turned by a symmetry of their structure's "
                      f"clean map{' (' + ', '.join(which) + ')' if which else ''}: rot_deg_sym is the error modulo "
                      "that symmetry, rot_deg the plain one")
        result.summary.update(summarize(result.errors))
        yield Metrics(result.summary)
    yield Result(result)


def align_dataset_job(dataset: PathLike | PairDataset, method: str = "hybrid", checkpoint: PathLike | None = None,
                      device: str = "cpu",
                      limit: int | None = None,
                      search: SearchConfig | None = None, adapt_norm: bool = True, batch: int = 16,
                      world: World | None = None) -> Iterator[Event]:
    """:func:`align_pairs_job` on a pair-dataset folder or :class:`cryoforge.sim.subtomo.PairDataset`."""
    from ..sim.subtomo import PairDataset, dataset_masks, read_pairs

    ds = dataset if isinstance(dataset, PairDataset) else read_pairs(dataset, mmap=True)
    k = len(ds) if limit is None else min(limit, len(ds))
    ma, mb = dataset_masks(ds)
    truth = (ds.rotations()[:k], ds.shifts()[:k]) if "rel_rot" in ds.truth else None
    yield from align_pairs_job(ds.s_a[:k], ds.s_b[:k], ma, mb, method, checkpoint, truth=truth, search=search,
                               device=device, voxel_size=ds.voxel_size, adapt_norm=adapt_norm,
                               symmetry=None if truth is None else dataset_symmetry(ds, slice(0, k)), batch=batch,
                               world=world)


def dataset_symmetry(ds: PairDataset, rows: slice) -> tuple | None:
    """What :func:`errors_modulo_symmetry` needs for pairs ``rows`` of a pair dataset — its clean maps, each pair's
    map index, ``s_a``'s absolute rotation and the structures' names — or None when the dataset lacks them."""
    t = ds.truth.iloc[rows]
    index = {name: i for i, name in enumerate(ds.structures)}
    if not {"structure", "a_rot", "a_tilt", "a_psi"} <= set(t.columns) or not len(ds.maps) \
            or not set(t["structure"]) <= set(index):
        return None
    absolute = euler_zyz_to_matrix(t["a_rot"].to_numpy(), t["a_tilt"].to_numpy(), t["a_psi"].to_numpy()).numpy()
    return ds.maps, t["structure"].map(index).to_numpy(), absolute, ds.structures


def write_alignment(result: AlignmentResult, path: PathLike) -> Path:
    """Estimated relative poses (RELION ZYZ degrees, shifts in voxels) and errors as a STAR file."""
    import pandas as pd
    import starfile

    from ..io.atomic import atomic_path

    ang = matrix_to_euler_zyz(torch.as_tensor(result.rotations, dtype=torch.float64)).numpy()
    df = pd.DataFrame({"pair": np.arange(len(ang)), "rel_rot": ang[:, 0], "rel_tilt": ang[:, 1], "rel_psi": ang[:, 2]})
    for j, ax in enumerate("xyz"):
        df[f"shift_{ax}"] = result.shifts[:, j]
    df["corr_before"], df["corr_after"] = result.corr_before, result.corr_after
    for k, v in (result.errors or {}).items():
        df[f"error_{k}"] = v
    path = Path(path)
    with atomic_path(path) as tmp:
        starfile.write({"alignment": df}, tmp, overwrite=True)
    return path
