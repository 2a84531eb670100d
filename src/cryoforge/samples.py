"""Where the shipped sample files are: ``cryoforge/_sample_data`` in a wheel, ``sample_data/`` in a checkout."""

from __future__ import annotations

from pathlib import Path

GUMNET_CHECKPOINT = "gumnet/gumnet_compact.pt"
GUMNET_LOCAL_CHECKPOINT = "gumnet/gumnet_local.pt"  # relative rotations ≤ 45°: averaging's local iterations
SUBTOMO_PAIRS = "subtomo_pairs"
HYPTEST_TEMPLATES = "hyptest"
HYPTEST_MODEL = "hyptest/wgan_regressor.pt"
HYPTEST_NEIGHBOUR_CALIBRATION = "hyptest/calibration_neighbours.json"  # hyptest test --null-spread 1 --calibration
MCGAN_MODEL = "mcgan/adk_continuous.pt"


def sample_dir() -> Path:
    """The folder of the shipped sample data (in the wheel, or ``sample_data/`` of a checkout)."""
    here = Path(__file__).resolve().parent
    for d in (here / "_sample_data", here.parents[1] / "sample_data"):
        if d.is_dir():
            return d
    raise FileNotFoundError("the sample_data folder is not installed")


def sample_path(name: str) -> Path:
    """Path of a shipped sample file or folder; a clear error when it is missing."""
    p = sample_dir() / name
    if not p.exists():
        raise FileNotFoundError(f"shipped sample {name!r} not found in {sample_dir()}")
    return p
