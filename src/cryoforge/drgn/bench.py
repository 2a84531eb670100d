"""``cryoforge bench drgn``: cryoDRGN on simulated AdK closed → open continuous stacks (21 states by coordinate
interpolation, CTF defocus U[1, 2] µm, shifts, SNR 0.1).

``known_poses``: a VAE trained with the true poses on ≥ 10 000 images at 64² (or ``dataset``: a stack written by
``cryoforge simulate particles``, e.g. the shipped 2 000-image one). Reported: |Spearman| between the latent and
the true conformation; per image (a sample of ``fsc_images``), the FSC = 0.5 resolution in pixels of the volume
decoded at the image's latent against the true map at the image's conformation; and the decoded ends against the
closed and open maps.

``pose_search``: a smaller stack at 32², trained without poses (random-pose pretraining, then branch and bound with
frequency marching in the loop): median rotation error (degrees and Frobenius, after the reconstruction's global
rotation and hand) and translation error in pixels, and the FSC of the reconstruction, put in the true frame by the
found global rotation, against the true map at the middle of the path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..configs import from_dict, to_dict
from ..jobs import Log, Metrics, Progress, Result

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

    from ..jobs import Event



def _images(ens, n, voxel, snr, max_shift, seed):
    """A simulated stack as :class:`ParticleImages` with its poses (cryoDRGN convention) and the conformations."""
    from ..jobs.runner import drive
    from ..sim.params import ParticleParams
    from ..sim.particles import simulate_particles_job
    from .data import ParticleImages

    sim = drive(simulate_particles_job(ens, n, ParticleParams(pixel_size=voxel, snr=snr, max_shift=max_shift),
                                       seed=seed))
    meta = sim.metadata
    assert meta.ctf is not None
    ctf = {k: np.asarray(v) for k, v in to_dict(meta.ctf).items()}
    trans = np.asarray(meta.shifts, np.float32) / voxel  # RELION origins (Å, the re-centring shift) → pixels, as STAR
    return (ParticleImages(sim.images, meta.rotations, trans, ctf, voxel),
            sim.truth["conformation"].to_numpy())


def _stored(dataset):
    import pandas as pd

    from ..io.mrc import read_mrc
    from ..io.star import read_particles_star
    from ..sim.particles import Ensemble
    from .data import ParticleImages

    d = Path(dataset)
    images, _ = read_mrc(d / "particles.mrcs", mmap=True)
    meta = read_particles_star(d / "particles.star")
    states = np.asarray(read_mrc(d / "states.mrc")[0], np.float32)  # closed, open
    ctf = None if meta.ctf is None else {k: np.asarray(v) for k, v in meta.ctf.as_dict().items()}
    data = ParticleImages(images, meta.rotations, meta.shifts_px(), ctf, meta.particle_pixel_sizes())
    # only the end maps are stored: the ends are scored, not each image (its map is not a blend of the two ends)
    return data, pd.read_csv(d / "truth.csv")["conformation"].to_numpy(), Ensemble(states, weights=np.array([0.5, 0.5]))


def _train(tr, steps: int, label: str, every: int = 50):
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        tr.train_step(step)
        if step % every == 0 or step == steps:
            yield Progress(step, steps, label)
    return time.perf_counter() - t0


def _resolution_px(vol, ref) -> float:
    from ..metrics import fsc

    return float(fsc(vol, torch.as_tensor(ref), 1.0).resolution(0.5))


def known_poses(device: str, opts: DrgnBench) -> Generator[Event, None, dict[str, Any]]:
    """Train with known poses on a simulated AdK stack; Spearman of latent vs conformation, FSC per image and at the
    ends."""
    from scipy.stats import spearmanr

    from ..sim.adk import adk_ensemble
    from .config import DrgnConfig, DrgnTrainConfig
    from .model import decode_volumes
    from .train import DrgnTrainer

    run = opts.known
    dataset, n_images, box, voxel_size, snr, zdim = (opts.dataset, run.n_images, run.box, run.voxel_size, opts.snr,
                                                     run.zdim)
    steps, batch, layers, dim, lr, fsc_images = run.steps, opts.batch, run.layers, run.dim, run.lr, opts.fsc_images
    seed, structures = opts.seed, opts.structures
    if dataset:
        data, truth, ens = _stored(dataset)
    else:
        ens = adk_ensemble("continuous", box, voxel_size, structures)
        yield Log(f"known poses: simulating {n_images} particles at {box}², SNR {snr}")
        data, truth = _images(ens, n_images, voxel_size, snr, 2.0 * box / 64, seed)
    cfg = DrgnConfig(zdim=zdim, players=layers, pdim=dim, qlayers=2, qdim=dim)
    tr = DrgnTrainer(data, cfg, DrgnTrainConfig(lr=lr, batch=batch, seed=seed), device)
    train_s = yield from _train(tr, steps, "known poses: training")
    mu = tr.latents()
    rho = [float(spearmanr(mu[:, j], truth).correlation) for j in range(zdim)]
    best = int(np.argmax(np.abs(rho)))
    order = np.argsort(mu[:, best] * np.sign(rho[best]))
    ends = {"closed": mu[order[: len(order) // 20]].mean(0), "open": mu[order[-len(order) // 20:]].mean(0)}
    table = {f"{name}_end_vs_{j}": {"fsc05_px": _resolution_px(tr.volume(z), ref)}
             for name, z in ends.items() for j, ref in zip(("closed", "open"), ens.maps[[0, -1]], strict=True)}
    row = {"n_images": data.n, "image_size": data.D, "pixel_size_A": data.pixel_size, "zdim": zdim, "steps": steps,
           "batch": batch, "decoder": f"{layers}x{dim}", "train_s": train_s,
           "spearman_latent_vs_conformation": rho, "abs_spearman_best": abs(rho[best]), "end_volumes": table}
    if not ens.discrete:  # per-image FSC against each image's own true conformation
        idx = np.linspace(0, data.n - 1, min(fsc_images, data.n)).astype(int)
        res: list[float] = []
        for s in range(0, len(idx), 8):
            part = idx[s:s + 8]
            vols = decode_volumes(tr.dec.eval(), torch.as_tensor(mu[part]).to(tr.device), data.norm).cpu()
            res += [_resolution_px(v, ens.map_at(truth[i])) for v, i in zip(vols, part, strict=True)]
            yield Progress(s + len(part), len(idx), "known poses: per-image FSC")
        row["per_image_fsc05_px"] = {"n": len(res), "median": float(np.median(res)),
                                     "p25": float(np.percentile(res, 25)), "p75": float(np.percentile(res, 75))}
        yield Metrics({"per_image_fsc05_px_median": float(np.median(res)), "abs_spearman": abs(rho[best])})
    return row


def pose_search_run(device: str, opts: DrgnBench) -> Generator[Event, None, dict[str, Any]]:
    """Train ab initio (pose search) on a small AdK stack (the ``pose_search`` run); pose errors and FSC to the middle
    conformation."""
    from ..sim.adk import adk_ensemble
    from .config import DrgnConfig, DrgnTrainConfig, PoseSearchConfig
    from .poses import pose_errors
    from .train import DrgnTrainer

    run = opts.pose_search
    n_images, box, voxel_size, snr, zdim, steps = (run.n_images, run.box, run.voxel_size, opts.snr, run.zdim,
                                                   run.steps)
    batch, layers, dim, lr, seed = opts.batch, run.layers, run.dim, run.lr, opts.seed
    structures = opts.structures
    search = opts.ps_search
    ens = adk_ensemble("continuous", box, voxel_size, structures)
    yield Log(f"pose search: simulating {n_images} particles at {box}², SNR {snr}")
    data, truth = _images(ens, n_images, voxel_size, snr, 1.0, seed + 1)
    psc = from_dict(PoseSearchConfig, {"pretrain_images": n_images, "every_epochs": 2.0, "l_start": box / 4,
                                       "ramp_epochs": 10.0, "t_extent": 1.0, "t_ngrid": 3, **(search or {})},
                    where="ps_search")
    cfg = DrgnConfig(zdim=zdim, players=layers, pdim=dim, qlayers=2, qdim=dim)
    tr = DrgnTrainer(data, cfg, DrgnTrainConfig(lr=lr, batch=batch, seed=seed), device, pose_search=psc)
    train_s = yield from _train(tr, steps, "pose search: training")
    err = pose_errors(tr.poses.rot.cpu(), data.rot, tr.poses.trans.cpu(), data.trans)
    tr.frame = torch.tensor(err["frame"])
    z = None if not zdim else tr.latents().mean(0)
    mid = ens.map_at(0.5)
    row = {"n_images": n_images, "image_size": box, "pixel_size_A": voxel_size, "zdim": zdim, "steps": steps,
           "batch": batch, "decoder": f"{layers}x{dim}", "train_s": train_s, "search": to_dict(psc),
           "searched_fraction": float((tr.poses.searched >= 0).float().mean()),
           "pose_errors": {k: v for k, v in err.items() if k != "frame"},
           "fsc05_px_vs_middle_conformation": _resolution_px(tr.volume(z, reference_frame=True), mid)}
    yield Metrics({"rot_median_deg": err["rot_median_deg"], "trans_median_px": err.get("trans_median_px", np.nan)})
    return row


@dataclass(frozen=True)
class DrgnRun:
    """One training run of the cryoDRGN bench: the simulated stack (images, box, Å per pixel) and the model and its
    training (latent size, steps, decoder layers and width, learning rate)."""

    n_images: int
    box: int
    voxel_size: float
    zdim: int
    steps: int
    layers: int
    dim: int
    lr: float


@dataclass(frozen=True)
class DrgnBench:
    """Settings of the cryoDRGN bench: ``parts`` (known_poses, pose_search), the two runs (``known`` and
    ``pose_search``: ``-o known.steps=150``), the pose-search schedule's overrides (``ps_search``), and what both
    share."""

    parts: tuple[str, ...] = ("known_poses", "pose_search")
    seed: int = 0
    snr: float = 0.1
    structures: str | None = None
    dataset: str | None = None
    batch: int = 16
    fsc_images: int = 100
    known: DrgnRun = DrgnRun(n_images=10_000, box=64, voxel_size=1.5, zdim=1, steps=3000, layers=3, dim=128, lr=3e-4)
    pose_search: DrgnRun = DrgnRun(n_images=2000, box=32, voxel_size=3.0, zdim=0, steps=4000, layers=3, dim=128,
                                   lr=1e-3)
    ps_search: dict[str, Any] | None = None


def bench_drgn(settings: DrgnBench | None = None, device: str = "cpu") -> Iterator[Event]:
    """Job: the cryoDRGN benchmark (``parts``: known_poses, pose_search); ``Result`` is the report dict."""
    opts = settings or DrgnBench()
    unknown = set(opts.parts) - {"known_poses", "pose_search"}
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}: known_poses, pose_search")
    report = {"device": device, "threads": torch.get_num_threads(), "snr": opts.snr, "seed": opts.seed}
    if "known_poses" in opts.parts:
        report["known_poses"] = yield from known_poses(device, opts)
    if "pose_search" in opts.parts:
        report["pose_search"] = yield from pose_search_run(device, opts)
    yield Result(report)
