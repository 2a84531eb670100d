"""Benchmarks, run as ``cryoforge bench NAME`` (jobs yielding progress; results written as JSON).

``core`` (:mod:`cryoforge.bench_core`) measures the field libraries the core stands on: teamtomo's torch-fourier-shell-correlation
against a plain nearest-shell FSC (agreement and speed), and torch-ctf throughput for batched CTFs.
``sim`` measures subtomogram, particle and density simulation throughput (:mod:`cryoforge.sim.bench`).
``align`` measures alignment accuracy and speed and averaging resolution (:mod:`cryoforge.align.bench`).
``hyptest`` measures the template-matching hypothesis tests (:mod:`cryoforge.hyptest.bench`).
``drgn`` trains cryoDRGN with known poses on a continuous stack (:mod:`cryoforge.drgn.bench`).
``mcgan`` trains Multi-CryoGAN on continuous and discrete AdK stacks (:mod:`cryoforge.multicryogan.bench`).
``explorer`` measures live-decode latency of every manifold kind (:mod:`cryoforge.manifold.bench`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .jobs import Event

# name → (module, job function); each module is imported only when its bench runs
BENCH_JOBS = {"core": ("cryoforge.bench_core", "bench_core"), "sim": ("cryoforge.sim.bench", "bench_sim"),
              "align": ("cryoforge.align.bench", "bench_align"), "hyptest": ("cryoforge.hyptest.bench", "bench_hyptest"),
              "explorer": ("cryoforge.manifold.bench", "bench_explorer"),
              "drgn": ("cryoforge.drgn.bench", "bench_drgn"), "mcgan": ("cryoforge.multicryogan.bench", "bench_mcgan")}


def bench_job(name: str) -> Callable[..., Iterator[Event]]:
    """The job function of bench ``name`` (one of :data:`BENCH_JOBS`)."""
    from importlib import import_module

    if name not in BENCH_JOBS:
        raise ValueError(f"unknown bench {name!r}; choose one of {', '.join(BENCH_JOBS)}")
    module, func = BENCH_JOBS[name]
    return getattr(import_module(module), func)


def bench_settings(name: str) -> dict[str, Any]:
    """The settings ``-o KEY=VALUE`` may change for bench ``name``, with their defaults (``device`` has its flag)."""
    import inspect

    params = inspect.signature(bench_job(name)).parameters
    return {k: p.default for k, p in params.items() if k != "device" and p.kind is p.POSITIONAL_OR_KEYWORD}


def check_settings(name: str, options: dict[str, Any]) -> None:
    """Refuse a setting the bench does not have (one line listing those it has), or a value of the wrong type."""
    known = bench_settings(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        listed = ", ".join(f"{k}={v!r}" for k, v in known.items())
        raise ValueError(f"bench {name} has no setting {', '.join(unknown)}; its settings (defaults): {listed}")
    for key, value in options.items():
        default = known[key]
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ValueError(f"bench {name}: {key} takes true or false (JSON); got {value!r}")
        if isinstance(default, int | float) and not isinstance(default, bool) and (
                isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"bench {name}: {key} takes a number (default {default!r}); got {value!r}")
