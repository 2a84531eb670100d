"""Where simulated maps come from: a phantom name, an atomic model, or a map file — and ensembles of them.

A *source* string is ``phantom:KIND`` (:data:`cryoforge.sim.phantoms.PHANTOMS`), a PDB / mmCIF path
(``.pdb``, ``.ent``, ``.cif``, ``.mmcif``, optionally ``.gz``) or an MRC map. Maps read from files are
resampled to the simulation's voxel size and padded or cropped to its box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..fourier import lowpass
from .atoms import AtomicModel, interpolate_coords, read_model, superpose, trajectory_models
from .density import model_to_density, models_to_density
from .particles import Ensemble
from .phantoms import PHANTOMS, phantom_model

if TYPE_CHECKING:
    from ..hints import ArrayLike, Tensorish


MODEL_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif")
MAP_SUFFIXES = (".mrc", ".map", ".rec")


@dataclass
class MapSpec:
    """How atoms become a map (see :func:`cryoforge.sim.density.models_to_density`)."""

    box: int = 32
    voxel_size: float = 12.0  # Å
    method: str = "peng"
    resolution: float | None = None  # Å; None: band limit of the grid only (peng)
    bfactor: float = 0.0  # Å²


def _suffix(path: str) -> str:
    p = Path(path)
    return Path(p.stem).suffix.lower() if p.suffix.lower() == ".gz" else p.suffix.lower()


def source_name(source: str) -> str:
    """Short name of a map source: the phantom's name or the file's stem."""
    return source.split(":", 1)[1] if source.startswith("phantom:") else Path(source).name.split(".")[0]


def _phantom_seed(source: str, seed: int) -> tuple[str, int]:
    """``phantom:KIND@S`` fixes the phantom's seed to ``S`` (several distinct phantoms of one kind)."""
    kind = source.split(":", 1)[1]
    if "@" in kind:
        kind, s = kind.split("@", 1)
        try:
            return kind, int(s)
        except ValueError:
            raise ValueError(f"source {source!r}: the phantom seed after '@' must be an integer") from None
    return kind, seed


def load_model(source: str, seed: int = 0) -> AtomicModel:
    """The atomic (or pseudo-atomic) model of a ``phantom:KIND`` or PDB / mmCIF source."""
    if source.startswith("phantom:"):
        return phantom_model(*_phantom_seed(source, seed))
    if _suffix(source) in MODEL_SUFFIXES:
        return read_model(source)
    raise ValueError(f"source {source!r} is not a phantom (phantom:{'|'.join(PHANTOMS)}[@seed]) or a PDB/mmCIF file")


def resample_map(volume: Tensorish, from_voxel: float, to_voxel: float, box: int) -> np.ndarray:
    """Band-limit, resample (trilinear) to ``to_voxel`` Å and pad/crop about the centre to ``box``."""
    v = torch.as_tensor(np.asarray(volume, np.float32))
    if abs(from_voxel - to_voxel) > 1e-6 * to_voxel:
        if to_voxel > from_voxel:
            v = lowpass(v, 2 * to_voxel, from_voxel)
        size = [max(2, int(round(s * from_voxel / to_voxel))) for s in v.shape]
        v = F.interpolate(v[None, None], size=size, mode="trilinear", align_corners=False)[0, 0]
    out = torch.zeros((box,) * 3)
    src, dst = [], []
    for s in v.shape:
        c_in, c_out = s // 2, box // 2
        lo = max(0, c_in - c_out)
        hi = min(s, c_in + (box - c_out))
        src.append(slice(lo, hi))
        dst.append(slice(c_out - (c_in - lo), c_out + (hi - c_in)))
    out[tuple(dst)] = v[tuple(src)]
    return out.numpy()


def load_map(source: str, spec: MapSpec, seed: int = 0) -> np.ndarray:
    """A ``(n, n, n)`` map of any source at ``spec``'s box and voxel size."""
    if not source.startswith("phantom:") and _suffix(source) in MAP_SUFFIXES:
        from ..io.mrc import read_mrc

        data, info = read_mrc(source, finite=True)
        if data.ndim != 3 or info.is_stack:
            raise ValueError(f"{Path(source).name}: a source map must be one volume (Z, Y, X)")
        return resample_map(data, info.voxel_size[0], spec.voxel_size, spec.box)
    model = load_model(source, seed)
    return model_to_density(model, spec.box, spec.voxel_size, spec.method, spec.resolution,
                            spec.bfactor).numpy()


def continuous_ensemble(source_a: str, source_b: str, n_states: int, spec: MapSpec) -> Ensemble:
    """States along the straight path between two models of the same atoms (``b`` superposed on ``a``)."""
    if n_states < 2:
        raise ValueError(f"a continuous ensemble needs n_states ≥ 2; got {n_states!r}")
    a, b = load_model(source_a), load_model(source_b)
    xyz = interpolate_coords(a, b, np.linspace(0, 1, n_states))
    maps = models_to_density(xyz, a.elements, spec.box, spec.voxel_size, spec.method, spec.resolution,
                             spec.bfactor, occupancy=a.occupancy).numpy()
    return Ensemble(maps, np.linspace(0, 1, n_states), names=[source_name(source_a), source_name(source_b)])


def trajectory_ensemble(topology: str, dcd: str, spec: MapSpec, stride: int = 1) -> Ensemble:
    """States = the frames of a DCD trajectory (coordinate = frame / last frame), superposed on frame 0."""
    frames = trajectory_models(load_model(topology), dcd, stride)
    ref = frames[0]
    xyz = np.stack([superpose(f.coords, ref.coords, ref.masses) for f in frames])
    maps = models_to_density(xyz, ref.elements, spec.box, spec.voxel_size, spec.method, spec.resolution,
                             spec.bfactor, occupancy=ref.occupancy).numpy()
    return Ensemble(maps, np.linspace(0, 1, len(frames)), names=[f.name for f in frames])


def discrete_ensemble(sources: list[str], weights: ArrayLike, spec: MapSpec) -> Ensemble:
    """A mixture of ``sources`` in proportions ``weights``; models of the same atoms share one centre."""
    models = [load_model(s) for s in sources]
    same = all(len(m) == len(models[0]) and m.elements == models[0].elements for m in models)
    if same:
        xyz = np.stack([models[0].coords] + [superpose(m.coords, models[0].coords, models[0].masses) for m in models[1:]])
        maps = models_to_density(xyz, models[0].elements, spec.box, spec.voxel_size, spec.method,
                                 spec.resolution, spec.bfactor, occupancy=models[0].occupancy).numpy()
    else:
        maps = np.stack([load_map(s, spec) for s in sources])
    return Ensemble(maps, np.linspace(0, 1, len(sources)), weights=np.asarray(weights, np.float64),
                    names=[source_name(s) for s in sources])

