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

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers share two cores, each with torch's default threads: OpenMP threads that wait at a barrier sleep
    # instead of spinning on a core the other worker needs (2026-12-01, 2-core machine, one hour: 510 s; one torch
    # thread per worker instead: 592 s). Set before torch is imported; inherited by the CLI subprocesses.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The files that take longest (seconds under `-n 2` on the 2-core machine, 2026-12-01), run first so that the two
# workers finish together (longest first): a long file scheduled last would leave one core idle at the end.
LONGEST_FILES = (
    "cryoforge/jobs/test_distributed.py",  # 113
    "cryoforge/align/test_average.py",  # 48
    "cryoforge/drgn/test_posesearch.py",  # 48
    "cryoforge/test_bench_scale.py",  # 43
    "cryoforge/multicryogan/test_train.py",  # 36
    "cryoforge/test_bench_tomo.py",  # 34
    "cryoforge/multicryogan/test_bench.py",  # 30
)
# The files whose GUI stall measurements take the machine alone (tests/quiet.py), last, longest first: a measurement
# waits for the test the other worker is running, and among the other files that was a 40–50 s bench (2026-12-02:
# 37 s for test_bench_tomo; 110 s of waiting over the run, `quiet lock:` in the summary). Here the other worker runs
# these docks' tests too, most of a few seconds.
MEASURING_FILES = (
    "napari_cryoforge/widgets/test_explorer.py",  # 51
    "napari_cryoforge/widgets/test_align.py",  # 48
    "napari_cryoforge/widgets/test_match.py",  # 33
    "napari_cryoforge/widgets/test_mcgan.py",
    "napari_cryoforge/widgets/test_hyptest.py",
    "napari_cryoforge/widgets/test_simulate.py",
    "napari_cryoforge/widgets/test_inspector.py",
    "napari_cryoforge/widgets/test_qa.py",
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    from tests.quiet import shared

    with shared(item.nodeid):  # its setup, call and teardown: a GUI stall measurement on another worker waits for them
        yield


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::")[0].removeprefix("tests/")
        if path in LONGEST_FILES:
            return LONGEST_FILES.index(path)
        if path in MEASURING_FILES:
            return len(LONGEST_FILES) + 1 + MEASURING_FILES.index(path)
        return len(LONGEST_FILES)

    items.sort(key=rank)  # stable: every file's own order is kept


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


WORKER_LINES: list[str] = []  # summary lines the xdist workers sent (the GUI tests' stall figures)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    WORKER_LINES.extend(f"[{node.gateway.id}] {line}" for line in getattr(node, "workeroutput", {}).get(
        "summary_lines", []))


def pytest_terminal_summary(terminalreporter):
    for line in WORKER_LINES:
        terminalreporter.write_line(line)
