"""The manifold registry and what works on any manifold: above every generative family.

The :class:`~cryoforge.latent.Manifold` protocol lives in :mod:`cryoforge.latent` (a primitive the families
implement: the 3D-WGAN in :mod:`cryoforge.hyptest.manifold`, cryoDRGN in :mod:`cryoforge.drgn`, Multi-CryoGAN in
:mod:`cryoforge.multicryogan`). Here: ``loaders.open_manifold`` opens any of them; ``analytic`` a closed-form demo
manifold; ``paths`` latent paths; ``analysis`` PCA, k-means, traversals; ``movie`` interpolation movies; ``live``
latest-only decoding for the explorer; ``bench`` decode latency. Importing this package does not import torch (the
CLI stays quick); the names below load on first use.
"""

from ..lazy import lazy_exports

_EXPORTS = {"Manifold": "..latent", "ManifoldError": "..latent", "open_manifold": ".loaders", "make_path": ".paths",
            "PATH_METHODS": ".paths"}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
