"""Shared test configuration: hypothesis profiles and the ../shared data folder."""

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Timing deadlines are meaningless on a loaded 2-core CI machine; CI runs are derandomised so that
# a failure reproduces exactly.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """The read-only ../shared folder beside the checkout; tests using it skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED} (read-only data beside the repository)")
    return SHARED


@pytest.fixture(scope="session")
def blob_clusters():
    """``make(n=24, k=4, seed=0, blobs=5, spread=3.5, sigma=(1.2, 2.5))`` → ``(k, n, n, n)`` float32 clusters of
    Gaussian blobs: fast, asymmetric stand-ins for complexes."""
    import numpy as np

    def make(n=24, k=4, seed=0, blobs=5, spread=3.5, sigma=(1.2, 2.5)):
        rng = np.random.default_rng(seed)
        zz, yy, xx = np.mgrid[:n, :n, :n] - n // 2
        out = np.zeros((k, n, n, n), np.float32)
        for v in out:
            for c, s in zip(rng.normal(size=(blobs, 3)) * spread, rng.uniform(*sigma, blobs), strict=True):
                v += np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2 + (zz - c[2]) ** 2) / (2 * s ** 2))
        return out

    return make
