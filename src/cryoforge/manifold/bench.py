"""``cryoforge bench explorer``: live-decode latency of each manifold kind (one latent point, as the explorer's
slider asks) at D=32 and D=64, and cryoDRGN's batched full-lattice decoding against slice-by-slice decoding."""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..jobs import Progress, Result
from ..rng import seeded

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..jobs import Event



def _latency_ms(m, repeats: int, seed: int = 0) -> dict:
    z = m.sample(repeats + 1, seed)
    m.decode_one(z[0])  # warm-up
    times = []
    for zi in z[1:]:
        t = time.perf_counter()
        m.decode_one(zi)
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": statistics.median(times), "max_ms": max(times), "repeats": repeats}


def _drgn_model(D: int, tmp: Path, dim: int = 256, layers: int = 3, zdim: int = 8):
    """A cryoDRGN-format run (random weights, the default Gaussian-feature Hartley decoder) for timing at size D."""
    from ..drgn.model import CoordinateDecoder
    from ..drgn.run import save_run

    with seeded(0):
        decoder = CoordinateDecoder(D + 1, zdim, layers, dim, "hartley", "gaussian", 64, "relu", 0.5)
    return save_run(tmp / f"run_{D}", decoder)


@dataclass(frozen=True)
class ExplorerBench:
    """Settings of the explorer bench: latency repeats, the cryoDRGN decoder width, the ../shared folder."""

    repeats: int = 10
    drgn_dim: int = 256
    shared: str | None = None


def bench_explorer(settings: ExplorerBench | None = None, device: str = "cpu") -> Iterator[Event]:
    """Job: latency per kind and size; cryoDRGN batched vs slice-by-slice volumes/s (same model, 4 z)."""
    opts = settings or ExplorerBench()
    import tempfile

    from ..drgn import DrgnManifold
    from .analytic import AnalyticManifold
    from .loaders import open_manifold

    rows, total = [], 7
    yield Progress(0, total, "analytic")
    for D in (32, 64):
        rows.append({"kind": "analytic", "D": D, **_latency_ms(AnalyticManifold(2, D, device=device), opts.repeats)})
    yield Progress(2, total, "3D-WGAN")
    rows.append({"kind": "wgan3d (shipped)", "D": 32, **_latency_ms(open_manifold("wgan", device), opts.repeats)})
    speed = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, D in enumerate((32, 64)):
            yield Progress(3 + i, total, f"cryoDRGN D={D}")
            w, c = _drgn_model(D, Path(tmp), opts.drgn_dim)
            m = DrgnManifold(w, config=c, device=device)
            rows.append({"kind": f"cryodrgn (3×{opts.drgn_dim} residual, Gaussian features)", "D": D,
                         **_latency_ms(m, max(3, opts.repeats // 2))})
            if D == 64:
                z = m.sample(4, 1)
                m.decode(z[:1]), m.decode_slicewise(z[:1])  # warm-up (kernel selection, caches) out of the timing
                t = time.perf_counter()
                batched = m.decode(z)
                tb = time.perf_counter() - t
                t = time.perf_counter()
                sliced = m.decode_slicewise(z)
                ts = time.perf_counter() - t
                speed = {"D": D, "n_volumes": len(z), "batched_vol_per_s": len(z) / tb,
                         "slicewise_vol_per_s": len(z) / ts, "speedup": ts / tb,
                         "max_abs_diff": float((batched - sliced).abs().max())}
    places = ([Path(opts.shared)] if opts.shared
              else [Path.cwd().parent / "shared", Path(__file__).resolve().parents[4] / "shared"])
    het = next((p / "cryodrgn" / "het_weights.pkl" for p in places if (p / "cryodrgn" / "het_weights.pkl").is_file()),
               Path("missing"))
    yield Progress(5, total, "cryoDRGN test model")
    if het.is_file():
        rows.append({"kind": "cryodrgn het_weights.pkl (3×8, from cryoDRGN's tests)", "D": 64,
                     **_latency_ms(open_manifold(het, device), opts.repeats)})
    yield Progress(total, total, "done")
    yield Result({"latency": rows, "cryodrgn_batched_vs_slicewise": speed, "device": device,
                  "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine()})
