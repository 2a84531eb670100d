"""cryoDRGN (seed 003): coordinate-based decoders compatible with cryoDRGN's weights, training with known poses or
pose search, and :class:`DrgnManifold`, which opens a trained run for the latent explorer, movies and analysis.
cryoDRGN's pickles are read by :mod:`cryoforge.io.pickles`. Importing this package does not import torch (the CLI
takes its defaults from :mod:`.config`); the names below load on first use.
"""

from ..lazy import lazy_exports

_EXPORTS = {"CoordinateDecoder": "model", "decode_hartley": "model", "hartley_to_volume": "model",
            "htn_center": "model", "ihtn_center": "model", "lattice_coords": "model",
            "DrgnManifold": "run", "find_run_files": "run", "load_config": "run"}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
