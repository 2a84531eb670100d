"""``cryoforge bench sim``: throughput of the simulators on this machine (JSON via the CLI).

Subtomograms per second at 32³ (±60°, 1° steps: 121 tilts) and 64³ for both reconstructions, particle
images per second at 64², and atoms→density time for a real-sized complex. Goal (issue): ≥ 20
subtomograms/s at 32³ on 2 CPU cores.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..conventions import random_rotations
from ..jobs import Metrics, Progress, Result
from .density import model_to_density
from .params import ParticleParams, TomoParams
from .particles import Ensemble, simulate_particles_job
from .phantoms import phantom_model
from .tomo import simulate_subtomograms, tilt_angles

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..jobs import Event



def _rate(fn, count: int, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return count / best


@dataclass(frozen=True)
class SimBench:
    """Settings of the simulator bench: timing repeats."""

    repeats: int = 2


def bench_sim(settings: SimBench | None = None, device: str = "cpu") -> Iterator[Event]:
    """Job: simulator throughput; ``Result`` is the report dict."""
    opts = settings or SimBench()
    if device != "cpu":
        torch.set_default_device(device)
    report: dict[str, Any] = {"device": device, "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "subtomograms": [], "particles": {}, "density": []}
    cases = [(32, "fourier", 64), (32, "wbp", 4), (64, "fourier", 16), (64, "wbp", 1)]
    total = len(cases) + 2
    g = torch.Generator().manual_seed(0)
    for i, (n, rec, batch) in enumerate(cases):
        vs = 12.0 if n == 32 else 6.0
        vol = model_to_density(phantom_model("proteasome", 0), n, vs, resolution=2 * vs)
        vols = vol.expand(batch, n, n, n).contiguous()
        rots = random_rotations(batch, i)
        params = TomoParams(voxel_size=vs, reconstruction=rec)
        d = torch.full((batch,), 30000.0)

        def run(vols=vols, rots=rots, batch=batch, d=d, params=params):
            simulate_subtomograms(vols, rots, torch.zeros(batch, 3), d, -60, 60, params, g)

        rate = _rate(run, batch, opts.repeats)
        row = {"box": n, "voxel_size": vs, "tilts": len(tilt_angles(-60, 60, 1.0)), "reconstruction": rec,
               "batch": batch, "subtomograms_per_s": rate}
        report["subtomograms"].append(row)
        yield Metrics({f"subtomo{n}_{rec}_per_s": rate})
        yield Progress(i + 1, total, f"subtomograms {n}³ {rec}")
    ribosome = model_to_density(phantom_model("ribosome", 0), 64, 5.0, resolution=10.0).numpy()
    n_part = 2000
    job = lambda: list(simulate_particles_job(Ensemble(ribosome), n_part, ParticleParams(pixel_size=5.0), seed=0))  # noqa: E731
    rate = _rate(job, n_part, opts.repeats)
    report["particles"] = {"box": 64, "n": n_part, "states": 1, "particles_per_s": rate}
    yield Metrics({"particles64_per_s": rate})
    yield Progress(len(cases) + 1, total, "particles 64²")
    for kind, n, vs in (("ribosome", 64, 6.0), ("ferritin", 32, 12.0)):
        m = phantom_model(kind, 0)
        t = time.perf_counter()
        model_to_density(m, n, vs)
        report["density"].append({"model": f"phantom:{kind}", "atoms": len(m), "box": n, "voxel_size": vs,
                                  "seconds": time.perf_counter() - t})
    yield Progress(total, total, "density")
    yield Result(report)
