"""Generative manifolds of volumes (seeds 000, 002, 003) behind one :class:`Manifold` interface.

``base`` the protocol; ``analytic`` a closed-form demo manifold; ``wgan`` the 3D-WGAN; ``drgn`` cryoDRGN runs;
``loaders.open_manifold`` opens any of them; ``paths`` latent paths; ``analysis`` PCA, k-means, traversals;
``movie`` interpolation movies; ``live`` latest-only decoding for the explorer. Importing this package does
not import torch (the CLI stays quick); the names below load on first use.
"""

_EXPORTS = {"Manifold": "base", "ManifoldError": "base", "open_manifold": "loaders", "make_path": "paths",
            "PATH_KINDS": "paths"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)
