"""The known-template set: maps of real complexes and phantoms, and their rotated copies (the GAN's data).

The default 15 known complexes (:data:`KNOWN_SOURCES`) are four real entries from ``../shared/structures``
(70S ribosome, spliceosome, apoferritin, enolase) and eleven phantoms (a 20S-like proteasome, a ribosome
and nine asymmetric assemblies), all 32³ at 12 Å through the Peng-potential density code. The set the
product ships (``sample_data/hyptest/templates.mrc`` with its names) was made from exactly these.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..conventions import random_rotations
from ..geometry import transform_volumes
from ..sim.sources import MapSpec, load_map, source_name

REAL = ("4v5d.cif.gz", "3jb9.cif.gz", "4v1w.cif.gz", "3enl_addH.pdb.gz")
PHANTOM_SOURCES = ("phantom:proteasome", "phantom:ribosome") + tuple(f"phantom:assembly@{s}" for s in range(1, 10))


def known_sources(structures_dir) -> list[str]:
    """The default 15 known complexes; ``structures_dir`` holds the PDB/mmCIF files of :data:`REAL`."""
    d = Path(structures_dir)
    missing = [f for f in REAL if not (d / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{d}: missing {', '.join(missing)} (the real entries of the known-template set)")
    return [str(d / f) for f in REAL] + list(PHANTOM_SOURCES)


def build_templates(sources, spec: MapSpec | None = None) -> tuple[np.ndarray, list[str]]:
    """Maps ``(K, n, n, n)`` and names of ``sources`` (phantoms, PDB/mmCIF or MRC)."""
    spec = spec or MapSpec()
    maps = np.stack([load_map(s, spec) for s in sources]).astype(np.float32)
    return maps, [source_name(s) for s in sources]


def check_templates(templates) -> np.ndarray:
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


def rotated_pool(maps, per_map: int, seed: int, chunk: int = 256) -> torch.Tensor:
    """``per_map`` uniformly random rotations of each map, ``(K·per_map, n, n, n)`` (the augmentation)."""
    maps = torch.as_tensor(check_templates(maps))
    k = len(maps)
    rots = random_rotations(k * per_map, seed)
    idx = torch.arange(k).repeat_interleave(per_map)
    out = [transform_volumes(maps[idx[i:i + chunk]], rots[i:i + chunk]) for i in range(0, len(idx), chunk)]
    return torch.cat(out)
