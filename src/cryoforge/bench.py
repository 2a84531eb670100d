"""Benchmarks, run as ``cryoforge bench NAME`` (jobs yielding progress; results written as JSON).

``core`` (:mod:`cryoforge.bench_core`) measures the field libraries the core stands on: teamtomo's torch-fourier-shell-correlation
against a plain nearest-shell FSC (agreement and speed), and torch-ctf throughput for batched CTFs.
``sim`` measures subtomogram, particle and density simulation throughput (:mod:`cryoforge.sim.bench`).
``align`` measures alignment accuracy and speed and averaging resolution (:mod:`cryoforge.align.bench`).
``hyptest`` measures the template-matching hypothesis tests (:mod:`cryoforge.hyptest.bench`).
``drgn`` trains cryoDRGN with known poses on a continuous stack (:mod:`cryoforge.drgn.bench`).
``mcgan`` trains Multi-CryoGAN on continuous and discrete AdK stacks (:mod:`cryoforge.multicryogan.bench`).
``tomo`` simulates crowded tomograms and measures extraction, averaging and the particle-list round trips against
the truth (:mod:`cryoforge.bench_tomo`).
``tm`` matches templates over crowded simulated tomograms: the realised false-discovery rate against the nominal,
recall, and the matcher's speed (:mod:`cryoforge.bench_tm`).
``scale`` runs training and batch jobs on one process and on several under ``torchrun`` (:mod:`cryoforge.bench_scale`).
``explorer`` measures live-decode latency of every manifold kind (:mod:`cryoforge.manifold.bench`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .jobs import Event

# name → (module, job function, settings dataclass); each module is imported only when its bench runs
BENCH_JOBS = {"core": ("cryoforge.bench_core", "bench_core", "CoreBench"),
              "sim": ("cryoforge.sim.bench", "bench_sim", "SimBench"),
              "align": ("cryoforge.align.bench", "bench_align", "AlignBench"),
              "hyptest": ("cryoforge.hyptest.bench", "bench_hyptest", "HyptestBench"),
              "explorer": ("cryoforge.manifold.bench", "bench_explorer", "ExplorerBench"),
              "drgn": ("cryoforge.drgn.bench", "bench_drgn", "DrgnBench"),
              "mcgan": ("cryoforge.multicryogan.bench", "bench_mcgan", "McganBench"),
              "tomo": ("cryoforge.bench_tomo", "bench_tomo", "TomoBench"),
              "scale": ("cryoforge.bench_scale", "bench_scale", "ScaleBench"),
              "tm": ("cryoforge.bench_tm", "bench_tm", "TmBench")}


def _bench(name: str) -> tuple[Callable[..., Iterator[Event]], type]:
    from importlib import import_module

    if name not in BENCH_JOBS:
        raise ValueError(f"unknown bench {name!r}; choose one of {', '.join(BENCH_JOBS)}")
    module, func, settings = BENCH_JOBS[name]
    mod = import_module(module)
    return getattr(mod, func), getattr(mod, settings)


def bench_job(name: str) -> Callable[..., Iterator[Event]]:
    """The job function of bench ``name`` (one of :data:`BENCH_JOBS`): ``job(settings, device)``."""
    return _bench(name)[0]


def bench_settings(name: str, options: dict[str, Any] | None = None) -> Any:
    """The settings dataclass of bench ``name`` with ``options`` (``-o KEY=VALUE``; ``-o known.steps=150`` sets one
    setting of a group) over its defaults; an unknown key or a value of the wrong type is a one-line
    :class:`cryoforge.configs.ConfigError` listing the settings."""
    from .configs import from_dict, nest

    return from_dict(_bench(name)[1], nest(options or {}), where=f"bench {name}")
