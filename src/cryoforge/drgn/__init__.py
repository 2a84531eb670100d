"""cryoDRGN (seed 003): coordinate-based decoders compatible with cryoDRGN's weights, safe readers for its files,
and :class:`DrgnManifold`, which opens a trained run for the latent explorer, movies and analysis."""

from ..io.pickles import load_ctf, load_poses, load_weights, load_z
from .model import CoordinateDecoder, decode_hartley, hartley_to_volume, htn_center, ihtn_center, lattice_coords
from .run import DrgnManifold, find_run_files, load_config

__all__ = ["CoordinateDecoder", "DrgnManifold", "decode_hartley", "find_run_files", "hartley_to_volume",
           "htn_center", "ihtn_center", "lattice_coords", "load_config", "load_ctf", "load_poses", "load_weights",
           "load_z"]
