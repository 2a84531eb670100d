"""``cryoforge bench mcgan``: the projectors (accuracy against analytic projections, speed), then Multi-CryoGAN
trained on simulated AdK stacks — continuous (closed → open by coordinate interpolation, 21 states) and discrete
(closed 0.25 / open 0.75) — at 32² and SNR 0.1 with CTF and shifts: FSC of the aligned ends against the true
conformations (the last frequency before FSC falls below 0.5, in cycles/px and Å; the paper reaches ≥ 0.25
cycles/px), the FSCCC matrix against the true one (correlation, and the scale-aware mean difference and ends'
similarity that show a collapsed manifold), the FSC between the two ends per shell (generator and truth: a
compressed manifold), the discrete proportions, and the training time.

The default sampling is the paper's 5 Å. It matters for the cycles/px figure: the first CTF zero of the bench's
defocus range (1–2 µm at 300 kV) lies at 14–20 Å, which is 0.25–0.36 cycles/px at 5 Å but 0.15–0.21 at 3 Å; the
generators trained so far lose FSC = 0.5 at 19–24 Å at either sampling (``-o voxel_size=3`` for the finer one)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..jobs import Log, Metrics, Progress, Result

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..jobs import Event



def _true_volumes(ens, case: str, points: int) -> np.ndarray:
    """The true conformation at ``α = m/L`` of a uniform latent: the ensemble's state there (continuous), or the
    state whose share of the segment contains it (discrete, states in order)."""
    alphas = np.linspace(0, 1, points + 1)
    if case == "continuous":
        return np.stack([ens.maps[np.argmin(np.abs(ens.coords - a))] for a in alphas])
    edges = np.cumsum(ens.weights)
    return np.stack([ens.maps[min(int(np.searchsorted(edges, a, side="right")), len(ens.maps) - 1)] for a in alphas])


def _case(case: str, opts: McganBench, device: str):
    from ..jobs.runner import drive
    from ..jobs.trainer import Schedule, train_job
    from ..sim.adk import adk_ensemble
    from ..sim.params import ParticleParams
    from ..sim.particles import simulate_particles_job
    from .config import McganConfig, McganTrainConfig
    from .data import ParticleStack
    from .fsccc import discrete_proportions, ends_fsc, fsc_area, fsccc_matrix, matrix_agreement
    from .train import McganTrainer, end_scores

    structures, n_images, box, voxel, snr, steps = (opts.structures, opts.n_images, opts.box, opts.voxel_size,
                                                     opts.snr, opts.steps)
    seed, out_dir, points, batch, max_seconds = opts.seed, opts.out_dir, opts.points, opts.batch, opts.max_seconds
    ens = adk_ensemble(case, box, voxel, structures)
    yield Log(f"{case}: simulating {n_images} particles")
    sim = drive(simulate_particles_job(ens, n_images, ParticleParams(pixel_size=voxel, snr=snr, max_shift=1.0),
                                       seed=seed))
    data = ParticleStack(sim.images, sim.metadata.ctf, voxel)
    tr = McganTrainer(data, McganConfig(box=data.D, gwidth=opts.gwidth, mapping=opts.mapping),
                      McganTrainConfig(batch=batch, max_shift=1.0, seed=seed), device, references=ens.maps[[0, -1]])
    ckpt = None if out_dir is None else Path(out_dir) / f"adk_{case}.pt"
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    reached = steps
    for ev in train_job(tr,
                        Schedule(steps=steps, validate_every=max(steps // opts.validations, 1) if opts.validations else 0,
                                 max_seconds=max_seconds, resume=False),
                        checkpoint=ckpt):
        if isinstance(ev, Result):
            reached = ev.value.step
        elif isinstance(ev, Progress):
            yield Progress(ev.step, ev.total, f"{case}: {ev.message}")
        elif isinstance(ev, Metrics) and any(k.startswith("val_") for k in ev.values):
            yield Metrics({f"{case}_{k}": v for k, v in ev.values.items()}, ev.step)
    train_s = time.perf_counter() - t0
    vols = tr.volumes(np.linspace(0, 1, points + 1)[:, None]).numpy()
    truth = _true_volumes(ens, case, points)
    row: dict[str, Any] = {"n_images": n_images, "steps": reached, "batch": batch, "gwidth": opts.gwidth,
                           "mapping": opts.mapping, "train_s": train_s,
                           "checkpoint": None if ckpt is None else str(ckpt),
                           "ends": end_scores(vols[[0, -1]], ens.maps[[0, -1]], voxel)}
    m_rec, m_true = fsccc_matrix(vols), fsccc_matrix(truth)
    agree = matrix_agreement(m_rec, m_true)
    row.update({"fsccc_matrix": m_rec.tolist(), "fsccc_matrix_truth": m_true.tolist(), "matrix_agreement": agree,
                "ends_fsc": ends_fsc(vols, truth)})
    if case == "discrete":
        fine = tr.volumes(np.linspace(0, 1, 101)[:, None]).numpy()
        p = discrete_proportions([fsc_area(v, fine[0]) for v in fine], [fsc_area(v, fine[-1]) for v in fine])
        closed, opened = (p["last"], p["first"]) if row["ends"]["ends_reversed"] else (p["first"], p["last"])
        row["proportions"] = {**p, "closed": closed, "open": opened, "true_closed": 0.25, "true_open": 0.75,
                              "max_abs_error": max(abs(closed - 0.25), abs(opened - 0.75)),
                              # < 1: the generator's ends are more alike than the true states; near 0 the
                              # proportions are read from noise (a collapsed manifold)
                              "ends_contrast_ratio": (1 - agree["ends_similarity"])
                              / max(1 - agree["ends_similarity_truth"], 1e-9)}
    return row


@dataclass(frozen=True)
class McganBench:
    """Settings of the Multi-CryoGAN bench. ``batch``: images per critic/generator step (volumes × 8 poses);
    ``max_seconds``: each case's training time limit (``steps`` is then an upper bound); ``gwidth``: the
    generator's channels at full size (×2 per coarser level); ``mapping``: see :class:`.config.McganConfig`."""

    steps: int = 2000
    n_images: int = 20_000
    box: int = 32
    voxel_size: float = 5.0
    snr: float = 0.1
    seed: int = 0
    points: int = 20
    structures: str | None = None
    out_dir: str | None = None
    cases: tuple[str, ...] = ("continuous", "discrete")
    batch: int = 32
    max_seconds: float | None = None
    gwidth: int = 8
    mapping: int = 0
    validations: int = 4  # during each case's training (each aligns the generator's ends to the truth; 0: none)


def bench_mcgan(settings: McganBench | None = None, device: str = "cpu") -> Iterator[Event]:
    """Job: the benchmark; ``Result`` is the report dict. ``batch``: images per critic/generator step (volumes ×
    8 poses); ``max_seconds``: each case's training time limit (``steps`` is then an upper bound); ``gwidth``: the
    generator's channels at full size (×2 per coarser level); ``mapping``: see :class:`.model.McganConfig`."""
    opts = settings or McganBench()
    from ..sim.adk import adk_models
    from .projector import projector_report

    adk_models(opts.structures)  # fail before the projector measurement when the models are missing
    report: dict[str, Any] = {"device": device, "threads": torch.get_num_threads(), "box": opts.box,
                              "voxel_size_A": opts.voxel_size, "snr": opts.snr, "projector": projector_report(opts.box)}
    yield Metrics({f"{k}_rel_err": v["relative_rms_error"] for k, v in report["projector"].items()
                   if isinstance(v, dict)})
    for case in opts.cases:
        report[case] = yield from _case(case, opts, device)
    yield Result(report)
