"""``cryoforge bench drgn``: heterogeneous cryoDRGN with known poses on a simulated continuous stack (default: the
shipped AdK closed→open particles with CTF and shifts) — |Spearman| between the latent and the true conformation,
and FSC of the volumes decoded at the latent's ends against the true closed and open maps."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ...jobs import Progress, Result


def bench_drgn(device: str = "cpu", dataset: str | None = None, zdim: int = 1, steps: int = 1500, batch: int = 16,
               layers: int = 3, dim: int = 128, lr: float = 3e-4, seed: int = 0):
    import pandas as pd
    from scipy.stats import spearmanr

    from ...io.mrc import read_mrc
    from ...metrics import fsc
    from ...samples import sample_path
    from .data import ParticleImages
    from .metadata import read_poses
    from .train import DrgnTrainConfig, DrgnTrainer

    d = Path(dataset) if dataset else sample_path("adk_continuous")
    images, _ = read_mrc(d / "particles.mrcs", mmap=True)
    poses = read_poses(d / "particles.star")
    truth = pd.read_csv(d / "truth.csv")["conformation"].to_numpy()
    states = np.asarray(read_mrc(d / "states.mrc")[0], np.float32)  # closed, open
    data = ParticleImages(images, poses.rotations, poses.translations, poses.ctf, poses.pixel_size)
    torch.manual_seed(seed)
    cfg = DrgnTrainConfig(zdim=zdim, players=layers, pdim=dim, qlayers=2, qdim=dim, lr=lr, batch=batch, seed=seed)
    tr = DrgnTrainer(data, cfg, device)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        tr.train_step(step)
        if step % 50 == 0:
            yield Progress(step, steps, "training")
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        mu = np.concatenate([tr.latent(tr._targets(np.arange(i, min(i + 200, data.n))), False)[2].cpu().numpy()
                             for i in range(0, data.n, 200)])
    rho = [float(spearmanr(mu[:, j], truth).correlation) for j in range(zdim)]
    best = int(np.argmax(np.abs(rho)))
    order = np.argsort(mu[:, best] * np.sign(rho[best]))
    ends = {"closed": mu[order[: len(order) // 20]].mean(0), "open": mu[order[-len(order) // 20:]].mean(0)}
    table = {}
    for name, z in ends.items():
        v = tr.volume(z)
        for j, ref in zip(("closed", "open"), states):
            c = fsc(v, torch.as_tensor(ref), data.pixel_size)
            table[f"{name}_end_vs_{j}"] = {"fsc_mean_shells_1_15": float(np.mean(c.fsc[1:16])),
                                           "fsc05_A": float(c.resolution(0.5))}
    yield Result({"dataset": str(d), "n_images": data.n, "image_size": data.D, "zdim": zdim, "steps": steps,
                  "batch": batch, "decoder": f"{layers}x{dim}", "train_s": train_s,
                  "spearman_latent_vs_conformation": rho, "abs_spearman_best": abs(rho[best]), "end_volumes": table,
                  "device": device, "threads": torch.get_num_threads()})
