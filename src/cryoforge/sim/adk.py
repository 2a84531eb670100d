"""The simulated AdK closed → open ensembles the manifold benches train on (``cryoforge bench drgn|mcgan``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..hints import PathLike
    from .particles import Ensemble


ADK = ("adk_closed.pdb.gz", "adk_open.pdb.gz")


def adk_models(structures: PathLike | None = None) -> list[str]:
    """Paths of the closed and open AdK models in ``structures`` (default ``../shared/structures``, relative to the
    working directory, as the hyptest bench's)."""
    folder = Path(structures or "../shared/structures")
    paths = [folder / name for name in ADK]
    if not all(p.is_file() for p in paths):
        raise FileNotFoundError(f"the AdK models {', '.join(ADK)} are not in {folder.resolve()}: pass "
                                "-o structures=FOLDER")
    return [str(p) for p in paths]


def adk_ensemble(case: str, box: int, voxel_size: float, structures: PathLike | None = None) -> Ensemble:
    """``continuous``: 21 states by coordinate interpolation closed → open; ``discrete``: closed 0.25 / open 0.75."""
    from .sources import MapSpec, continuous_ensemble, discrete_ensemble

    paths, spec = adk_models(structures), MapSpec(box=box, voxel_size=voxel_size)
    if case == "continuous":
        return continuous_ensemble(paths[0], paths[1], 21, spec)
    if case == "discrete":
        return discrete_ensemble(paths, [0.25, 0.75], spec)
    raise ValueError(f"unknown AdK case {case!r}: continuous or discrete")
