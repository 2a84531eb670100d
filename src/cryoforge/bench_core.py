"""``cryoforge bench core``: the field libraries the core stands on — teamtomo's torch-fourier-shell-correlation
against a plain nearest-shell FSC (agreement and speed), and torch-ctf throughput for batched CTFs."""


from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .ctf import CTFParams, ctf_2d
from .fourier import freq_radius
from .jobs import Metrics, Progress, Result
from .metrics import fsc

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .jobs import Event



def nearest_shell_fsc(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Reference FSC: each rfft voxel counts in the shell ``round(|k| n)``; shells 0 … n/2."""
    n = a.shape[-1]
    fa, fb = torch.fft.rfftn(a), torch.fft.rfftn(b)
    shell = torch.round(freq_radius(a.shape, rfft=True, device=a.device) * n).long().flatten()
    keep = shell <= n // 2
    shell = shell[keep]
    num = torch.zeros(n // 2 + 1, dtype=torch.float64, device=a.device)
    d1, d2 = torch.zeros_like(num), torch.zeros_like(num)
    num.index_add_(0, shell, (fa * fb.conj()).real.flatten()[keep].double())
    d1.index_add_(0, shell, (fa.abs() ** 2).flatten()[keep].double())
    d2.index_add_(0, shell, (fb.abs() ** 2).flatten()[keep].double())
    return (num / torch.sqrt(d1 * d2).clamp_min(1e-30)).cpu().numpy()


def _time(fn, repeats: int, device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


@dataclass(frozen=True)
class CoreBench:
    """Settings of the core bench: FSC box sizes, timing repeats."""

    sizes: tuple[int, ...] = (32, 64, 128)
    repeats: int = 3


def bench_core(settings: CoreBench | None = None, device: str = "cpu") -> Iterator[Event]:
    """Job: FSC (library vs reference) per box size, then CTF throughput."""
    opts = settings or CoreBench()
    dev = torch.device(device)
    g = torch.Generator().manual_seed(0)
    total = len(opts.sizes) + 1
    report: dict[str, Any] = {"device": str(dev), "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "fsc": [], "ctf": {}}
    for i, n in enumerate(opts.sizes):
        a = torch.randn(n, n, n, generator=g).to(dev)
        b = (a + 2 * torch.randn(n, n, n, generator=g).to(dev))
        lib = fsc(a, b).fsc
        ref = nearest_shell_fsc(a, b)
        row = {
            "n": n,
            "torchfsc_s": _time(lambda a=a, b=b: fsc(a, b), opts.repeats, dev),
            "nearest_shell_s": _time(lambda a=a, b=b: nearest_shell_fsc(a, b), opts.repeats, dev),
            "max_abs_diff_shells_1_to_nyquist": float(np.abs(lib[1:] - ref[1:]).max()),
        }
        report["fsc"].append(row)
        yield Metrics({f"fsc{n}_torchfsc_ms": 1e3 * row["torchfsc_s"],
                       f"fsc{n}_nearest_ms": 1e3 * row["nearest_shell_s"]})
        yield Progress(i + 1, total, f"FSC {n}³")
    batch, size = 256, 256
    params = CTFParams(defocus_u=np.linspace(8000, 30000, batch), defocus_v=np.linspace(7500, 29000, batch),
                       defocus_angle=np.linspace(0, 180, batch), voltage=np.full(batch, 300.0),
                       cs=np.full(batch, 2.7), amplitude_contrast=np.full(batch, 0.07),
                       bfactor=np.full(batch, 50.0), phase_shift=np.zeros(batch))
    t = _time(lambda: ctf_2d(params, (size, size), 1.0, device=dev), opts.repeats, dev)
    report["ctf"] = {"batch": batch, "size": size, "seconds": t, "ctfs_per_s": batch / t}
    yield Metrics({"ctf_per_s": batch / t})
    yield Progress(total, total, "CTF")
    yield Result(report)
