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
