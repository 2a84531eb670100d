"""Open any generative model as a :class:`Manifold`: cryoforge checkpoints by their ``kind``, cryoDRGN runs by
their files, and ``analytic[:d]`` for the demo manifold. Kinds register here (:data:`CHECKPOINT_KINDS`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..latent import Manifold, ManifoldError
from ..samples import HYPTEST_MODEL, MCGAN_MODEL, sample_path

if TYPE_CHECKING:
    import numpy as np

    from ..hints import PathLike


# checkpoint kind → loader(path, device, **options), one per family's checkpoint kind (registered below).
CHECKPOINT_KINDS: dict[str, Callable[..., Manifold]] = {}


def _wgan(path, device="cpu", templates=None, payload=None, **_):
    from ..hyptest.manifold import WGANManifold

    return WGANManifold(path, templates, device, payload)


def _drgn(path, device="cpu", **_):
    from ..drgn.train import TrainedDrgnManifold

    return TrainedDrgnManifold(path, device)


def _mcgan(path, device="cpu", **_):
    from ..multicryogan.train import McganManifold

    return McganManifold(path, device)


CHECKPOINT_KINDS["wgan3d"] = _wgan
CHECKPOINT_KINDS["wgan3d_regressor"] = _wgan
CHECKPOINT_KINDS["cryodrgn_vae"] = _drgn
CHECKPOINT_KINDS["multicryogan"] = _mcgan

SHIPPED = {"wgan": HYPTEST_MODEL, "mcgan": MCGAN_MODEL}


def shipped_templates() -> tuple[np.ndarray, list[str], float] | None:
    """The shipped known-template set ``(maps, names, voxel_size)``, or None when it is not installed."""
    try:
        from ..hyptest.templates import read_template_set

        return read_template_set()
    except FileNotFoundError:
        return None


def open_manifold(spec: PathLike, device: str = "cpu", config: PathLike | None = None, z: PathLike | None = None,
                  voxel_size: float | None = None,
                  templates: tuple[np.ndarray, list[str], float] | None = None) -> Manifold:
    """A manifold from ``spec``: ``analytic`` / ``analytic:D`` (latent dim D), ``wgan`` (the shipped 3D-WGAN),
    ``mcgan`` (the shipped Multi-CryoGAN of AdK closed → open),
    a cryoforge checkpoint (``.pt``), or a cryoDRGN run (its folder or ``weights.N.pkl``; ``config``/``z`` override)."""
    text = str(spec)
    if text.startswith("analytic"):
        _, _, d = text.partition(":")
        from .analytic import AnalyticManifold

        try:
            return AnalyticManifold(int(d) if d else 2, device=device)
        except ValueError as err:
            raise ManifoldError(f"bad analytic manifold spec {text!r}: {err}") from None
    if text in SHIPPED:
        spec = sample_path(SHIPPED[text])
        if text == "wgan" and templates is None:
            templates = shipped_templates()
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file or folder")
    if path.is_dir() or path.suffix == ".pkl":
        from ..drgn import DrgnManifold

        return DrgnManifold(path, config, z, voxel_size, device)
    from ..io.checkpoint import load_checkpoint

    payload = load_checkpoint(path)  # read once: the loader of its kind builds from it where it can
    kind = payload["kind"]
    if kind not in CHECKPOINT_KINDS:
        known = ", ".join(sorted(CHECKPOINT_KINDS))
        raise ManifoldError(f"{path.name}: a '{kind}' checkpoint is not a generative model the explorer can open "
                            f"(it opens {known}, cryoDRGN runs and 'analytic')")
    m: Manifold = CHECKPOINT_KINDS[kind](path, device=device, templates=templates, payload=payload)
    if voxel_size:
        m.voxel_size = float(voxel_size)
    return m
