"""Subtomograms to test: an MRC volume or stack with its missing-wedge mask, or a simulated pair-dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from ..hints import PathLike



def read_subtomograms(path: PathLike, tilt_range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray,
                      np.ndarray | None, float]:
    """Subtomograms ``(N, n, n, n)``, their centred wedge mask, and true structure indices when known.

    ``path``: an MRC volume or volume stack (mask from ``tilt_range``, default ±60°) or a pair-dataset folder
    (its s_b subtomograms, their wedge and the true structures from truth.star)."""
    import numpy as np

    from ..io.mrc import read_mrc
    from ..sim.subtomo import dataset_masks
    from ..sim.tomo import centred_wedge

    p = Path(path)
    if p.is_dir():
        from ..sim.subtomo import read_pairs

        ds = read_pairs(p)
        truth = np.asarray(ds.truth["structure"]) if "structure" in ds.truth else None
        return ds.s_b, dataset_masks(ds)[1].numpy(), truth, ds.voxel_size
    data, info = read_mrc(p, finite=True)
    vols = np.asarray(data, np.float32)
    vols = vols[None] if vols.ndim == 3 else vols
    lo, hi = tilt_range or (-60.0, 60.0)
    return vols, centred_wedge(vols.shape[-1], lo, hi).numpy(), None, float(info.voxel_size[0])
