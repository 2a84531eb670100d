"""The known-template set: maps of real complexes and phantoms, and their rotated copies (the GAN's data).

The default 15 known complexes (:data:`KNOWN_SOURCES`) are four real entries from ``../shared/structures``
(70S ribosome, spliceosome, apoferritin, enolase) and eleven phantoms (a 20S-like proteasome, a ribosome,
four asymmetric assemblies, a filament, a ring, a tripod, a dumbbell and a crescent), all 32³ at 12 Å
through the Peng-potential density code. The phantoms were chosen greedily from 32 candidates (the
proteasome, the ribosome, nine assemblies, three seeds of each other kind) so that each adds the least
similarity to the set: the largest noise-free aligned correlation between two members is 0.65, where
nine sibling assemblies reached 0.75 and lost to each other at low SNR. The set the product ships
(``sample_data/hyptest/templates.mrc`` with its names) was made from exactly these.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..conventions import random_rotations
from ..geometry import transform_volumes
from ..sim.sources import MapSpec, load_map, source_name

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..hints import ArrayLike, PathLike, Tensorish


REAL = ("4v5d.cif.gz", "3jb9.cif.gz", "4v1w.cif.gz", "3enl_addH.pdb.gz")
PHANTOM_SOURCES = ("phantom:proteasome", "phantom:ribosome") + tuple(f"phantom:assembly@{s}" for s in (4, 5, 6, 9)) + (
    "phantom:filament@3", "phantom:ring@2", "phantom:tripod@2", "phantom:dumbbell@1", "phantom:crescent@3")


def known_sources(structures_dir: PathLike) -> list[str]:
    """The default 15 known complexes; ``structures_dir`` holds the PDB/mmCIF files of :data:`REAL`."""
    d = Path(structures_dir)
    missing = [f for f in REAL if not (d / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{d}: missing {', '.join(missing)} (the real entries of the known-template set)")
    return [str(d / f) for f in REAL] + list(PHANTOM_SOURCES)


def build_templates(sources: Sequence[str], spec: MapSpec | None = None) -> tuple[np.ndarray, list[str]]:
    """Maps ``(K, n, n, n)`` and names of ``sources`` (phantoms, PDB/mmCIF or MRC)."""
    spec = spec or MapSpec()
    maps = np.stack([load_map(s, spec) for s in sources]).astype(np.float32)
    return maps, [source_name(s) for s in sources]


def check_templates(templates: ArrayLike | Sequence[ArrayLike]) -> np.ndarray:
    """A ``(K, n, n, n)`` float32 stack of cubic maps of one size, or a clear error."""
    if isinstance(templates, (list, tuple)):
        shapes = sorted({tuple(np.shape(t)) for t in templates})
        if len(shapes) > 1:
            raise ValueError(f"the template set mixes box sizes {shapes}; resample all templates to one cubic box")
        templates = np.stack(templates)
    t = np.asarray(templates, dtype=np.float32)
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or len(set(t.shape[1:])) != 1:
        raise ValueError(f"templates must be cubic maps (K, n, n, n); got shape {t.shape}")
    return t


def rotated_pool(maps: Tensorish, per_map: int, seed: int, chunk: int = 256) -> torch.Tensor:
    """``per_map`` uniformly random rotations of each map, ``(K·per_map, n, n, n)`` (the augmentation)."""
    maps = torch.as_tensor(check_templates(maps))
    k = len(maps)
    rots = random_rotations(k * per_map, seed)
    idx = torch.arange(k).repeat_interleave(per_map)
    out = [transform_volumes(maps[idx[i:i + chunk]], rots[i:i + chunk]) for i in range(0, len(idx), chunk)]
    return torch.cat(out)


def bin_to_templates(subtomos: Tensorish, mask: Tensorish | None, voxel_size: float, template_voxel: float,
                     template_box: int) -> tuple[np.ndarray, Tensorish | None]:
    """Subtomograms ``(N, m, m, m)`` sampled at ``voxel_size`` Å, and their centred Fourier mask, Fourier-cropped
    (binned) to the templates' ``template_box``³ grid at ``template_voxel`` Å; unchanged when the sampling matches.

    Tomograms are acquired finer than templates are matched: binning keeps the band the templates hold and drops
    the noise beyond it. The two boxes must span the same length (``m · voxel_size = template_box · template_voxel``).
    """
    from ..fourier import crop_mask, downsample

    v = torch.as_tensor(np.asarray(subtomos, np.float32))
    v = v[None] if v.ndim == 3 else v
    m = v.shape[-1]
    if m == template_box and abs(voxel_size - template_voxel) <= 1e-3 * template_voxel:
        return v.numpy(), mask
    if voxel_size > template_voxel * (1 + 1e-3):
        raise ValueError(f"the subtomograms ({voxel_size:g} Å) are coarser than the templates ({template_voxel:g} Å); "
                         f"make templates at {voxel_size:g} Å (cryoforge hyptest templates --voxel-size)")
    if abs(m * voxel_size - template_box * template_voxel) > 0.5 * template_voxel:
        raise ValueError(f"the subtomograms span {m} × {voxel_size:g} = {m * voxel_size:g} Å but the templates "
                         f"{template_box} × {template_voxel:g} = {template_box * template_voxel:g} Å; extract "
                         f"subtomograms of {template_box * template_voxel / voxel_size:.0f}³ voxels")
    mask = None if mask is None else crop_mask(torch.as_tensor(mask, dtype=torch.float32), template_box).numpy()
    return downsample(v, template_box).numpy(), mask


def read_template_set(path: PathLike | None = None) -> tuple[np.ndarray, list[str], float]:
    """``(maps (K, n, n, n), names, voxel_size)`` of a template folder (templates.mrc + templates.json) or an MRC
    stack; default: the shipped set."""
    import numpy as np

    from ..io.mrc import read_mrc
    from ..samples import HYPTEST_TEMPLATES, sample_path

    p = Path(path) if path else sample_path(HYPTEST_TEMPLATES)
    folder = p if p.is_dir() else p.parent
    mrc = p / "templates.mrc" if p.is_dir() else p
    data, info = read_mrc(mrc, finite=True)
    maps = np.asarray(data, np.float32)
    maps = maps[None] if maps.ndim == 3 else maps
    meta = folder / "templates.json"
    names = json.loads(meta.read_text())["names"] if meta.is_file() and mrc.name == "templates.mrc" else None
    return maps, names or [f"{mrc.stem}{i}" for i in range(len(maps))], float(info.voxel_size[0])


def template_sources(path: PathLike | None = None) -> list[str]:
    """The sources a template folder was made from (its ``templates.json``; default: the shipped set)."""
    from ..samples import HYPTEST_TEMPLATES, sample_path

    p = Path(path) if path else sample_path(HYPTEST_TEMPLATES)
    meta = (p if p.is_dir() else p.parent) / "templates.json"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta} is missing: the template set does not say which sources made it")
    return list(json.loads(meta.read_text())["sources"])


def write_template_set(out: PathLike, maps: Tensorish, names: Sequence[str], voxel_size: float,
                       sources: Sequence[str] | None = None, blur: float = 0.0) -> Path:
    """Write a template folder (templates.mrc + templates.json, which names the maps, their sources and the Gaussian
    blur σ in Å they were given)."""
    from ..io.atomic import atomic_dir
    from ..io.mrc import write_mrc

    with atomic_dir(out, "templates.json") as tmp:  # complete or absent; templates.json last
        write_mrc(tmp / "templates.mrc", maps, voxel_size, stack=True)
        (tmp / "templates.json").write_text(json.dumps({"names": list(names), "sources": list(sources or names),
                                                        "voxel_size": voxel_size, "box": int(maps.shape[-1]),
                                                        "blur_A": float(blur)},
                                                       indent=1))
    return Path(out)
