"""Helpers several test modules share: paths, skip markers for ../shared, small data makers."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cryoforge.drgn import CoordinateDecoder
from cryoforge.drgn.data import ht2_center
from cryoforge.drgn.model import lattice_coords
from cryoforge.drgn.posesearch import HartleySlices
from cryoforge.fourier import gaussian_filter
from cryoforge.hyptest.config import WGANConfig
from cryoforge.io.mrc import read_mrc
from cryoforge.io.particles import read_particle_metadata
from cryoforge.io.star import StarWarning
from cryoforge.multicryogan.data import ParticleStack
from cryoforge.multicryogan.projector import gaussian_blobs
from cryoforge.sim.density import model_to_density
from cryoforge.sim.params import ParticleParams
from cryoforge.sim.particles import Ensemble, simulate_particles_job
from cryoforge.sim.phantoms import phantom_model

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
CRYODRGN = REPO.parent / "shared" / "cryodrgn"  # cryoDRGN's own test files, beside the checkout

needs_het_weights = pytest.mark.skipif(not (CRYODRGN / "het_weights.pkl").is_file(),
                                       reason="../shared/cryodrgn (cryoDRGN's test files) is not beside the checkout")
needs_hand_images = pytest.mark.skipif(not (CRYODRGN / "hand.mrcs").is_file(),
                                       reason="../shared/cryodrgn (cryoDRGN's test files) is not beside the checkout")

METADATA = TESTS / "data" / "metadata"
DRGN_PARSED = json.loads((METADATA / "cryodrgn_parsed.json").read_text())
R30, R31, CS = METADATA / "relion30_sta.star", METADATA / "relion31_optics6.star", METADATA / "cryosparc_small.cs"

TINY = WGANConfig(box=32, width=2, mbd_kernels=4, mbd_dim=2, zdim=8)


def correlation(a, b) -> float:
    """Pearson correlation of two arrays of any shape."""
    return float(np.corrcoef(np.asarray(a).ravel(), np.asarray(b).ravel())[0, 1])


def relative_error(a, b) -> float:
    """RMS of ``a − b`` relative to the RMS of ``b``."""
    return float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())


def phantom_map(n=32):
    """A smooth asymmetric test map (two trilinear resamplings of sharper maps lose a few % correlation)."""
    return gaussian_filter(model_to_density(phantom_model("multiblob", 1), n, 6.0).float(), 1.5)


def wedged(vols, mask):
    """Apply a centred Fourier mask (noise-free missing wedge)."""
    from cryoforge.fourier import centred_fft, centred_ifft

    return centred_ifft(centred_fft(vols) * mask)


def random_drgn_run(tmp_path, domain="hartley", pe="gaussian", D=17, zdim=2, seed=0):
    """A cryoDRGN-format run with random weights (an encoder in the weights is ignored)."""
    from cryoforge.drgn.run import save_run
    from cryoforge.rng import seeded

    with seeded(seed):
        dec = CoordinateDecoder(D, zdim, 2, 16, domain, pe, 6, "relu", 0.5)
    save_run(tmp_path, dec, (0.2, 3.0), epoch=3, extra_state={"encoder.main.0.weight": torch.zeros(4, 4)})
    return dec


def projections(vol: np.ndarray, rot: torch.Tensor) -> np.ndarray:
    """Noise-free particle images: the central slices at ``k @ R``, back to real space."""
    D = vol.shape[0]
    coords = lattice_coords(D + 1)[D // 2].reshape(-1, 3)
    h = HartleySlices.from_volume(vol)(coords @ rot)[0].view(len(rot), D + 1, D + 1)[:, :-1, :-1]
    return (ht2_center(h) / D ** 2).numpy().astype(np.float32)  # the 2-D Hartley transform is its own inverse / N


def adk_map(D: int) -> np.ndarray:
    """The shipped closed-AdK map, Fourier-cropped to D³ (an asymmetric test object)."""
    from cryoforge.fourier import downsample

    states = np.asarray(read_mrc(REPO / "sample_data" / "adk_continuous" / "states.mrc")[0], np.float32)
    return downsample(torch.as_tensor(states[0]), D).numpy()


def homogeneous_stack(n=16, count=1000):
    """A noise-free, CTF-free stack of one Gaussian-blob volume: ``(volume, ParticleStack)``."""
    from cryoforge.jobs.runner import drive

    vol, _ = gaussian_blobs(n, count=6, sigma=1.5, seed=3)
    sim = drive(simulate_particles_job(Ensemble(vol.numpy()), count,
                                       ParticleParams(snr=None, apply_ctf=False, pixel_size=4.0), seed=0))
    return vol, ParticleStack(sim.images, None, 4.0)


def read_quiet(path, **kw):
    """Particle metadata without the StarWarnings (tests that check values, not messages)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarWarning)
        return read_particle_metadata(path, **kw)


def error_messages(notes) -> list[str]:
    """The error messages among ``(severity, message)`` notifications (the plugin tests' ``notifications``)."""
    return [m for s, m in notes if s == "error"]


def save_format1_checkpoint(path, kind: str, config: dict, architecture_keys: list, state_dicts: dict) -> Path:
    """A checkpoint as cryoforge wrote it before format 2: the architecture's keys flat in the config."""
    import torch

    torch.save({"format": "cryoforge-checkpoint", "format_version": 1, "kind": kind, "cryoforge_version": "0.1",
                "config": {**config, "architecture_keys": list(architecture_keys)}, "state_dicts": state_dicts,
                "metrics": {}, "extra": {}}, path)
    return Path(path)


def tomogram_of_copies(rotations, box: int = 20, shape=(24, 72, 96), noise: float = 0.05, seed: int = 0):
    """A tomogram ``shape`` (Z, Y, X) holding one rotated copy of :func:`phantom_map` ``(box)`` per rotation on a
    grid of 4 per row (centres 12 + 24 k voxels, z 12), plus Gaussian noise ``noise`` × its std: ``(tomogram,
    the map, the centres (x, y, z) in voxels)``."""
    from cryoforge.geometry import transform_volumes

    ref = phantom_map(box).numpy()
    vol = np.zeros(shape, np.float32)
    xyz = []
    h = box // 2
    for k, r in enumerate(torch.as_tensor(rotations, dtype=torch.float32)):
        x, y, z = 12 + 24 * (k % 4), 12 + 24 * (k // 4), 12
        vol[z - h:z + h, y - h:y + h, x - h:x + h] += transform_volumes(torch.from_numpy(ref), r).numpy()
        xyz.append((x, y, z))
    vol += np.random.default_rng(seed).normal(0, noise * vol.std(), shape).astype(np.float32)
    return vol, ref, np.array(xyz, float)


def phantom_crowd(seed: int = 1):
    """A 96×96×48 tomogram at 12 Å of three ribosome and three proteasome phantoms (both in the shipped known set of
    the hypothesis test), SNR 1, ±60° every 6°; and the two 32³ maps."""
    from cryoforge.jobs import drive
    from cryoforge.sim.sources import MapSpec, load_map
    from cryoforge.sim.tomogram import TomogramParams, simulate_tomogram_job

    maps = np.stack([load_map(s, MapSpec(32, 12.0)) for s in ("phantom:ribosome", "phantom:proteasome")])
    p = TomogramParams(shape=(96, 96, 48), voxel_size=12.0, n_particles=6, thickness=400, snr=1.0, tilt_step=6,
                       seed=seed)
    return drive(simulate_tomogram_job(maps, ["ribosome", "proteasome"], p)), maps
