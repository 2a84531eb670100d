"""``cryoforge bench align``: accuracy and speed of Gum-Net, its ablations, the classical search, the hybrid,
and reference-free averaging, on held-out simulated data (figures in JSON).

Test pairs: ``n_pairs`` per SNR (100, 0.1, 0.03) simulated from the shipped training maps (5 asymmetric
structures: 4V5D, 3JB9 and three asymmetric assembly phantoms; ``sample_data/gumnet/maps.mrc``) with seeds
the training never used; s_a without wedge, s_b with a 30° wedge, shifts ≤ 7 voxels (the
:mod:`cryoforge.sim.subtomo` defaults). Rotation error in degrees and Frobenius norm, translation
error in voxels, mean ± sd, and pairs/s. Averaging: ``n_average`` subtomograms of the first map
(4V5D) per SNR (0.1, 0.03), phase-flipped, CTF-weighted reference-free averaging; the final average
is aligned to the true map and the FSC-0.143 resolution against it is reported in nm.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..configs import from_dict, to_dict
from ..jobs import Log, Metrics, Progress, Result
from ..jobs.runner import drive
from ..metrics import GOLD_STANDARD, fsc
from ..search import SearchConfig, classical_align
from ..sim.params import TomoParams
from ..sim.subtomo import dataset_masks
from .average import average_dataset_job, warp_fine
from .config import AverageConfig
from .data import simulate_pairs
from .pipeline import align_pairs_job

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..jobs import Event


SNRS = (100.0, 0.1, 0.03)
STRUCTURES = ("4v5d", "3jb9", "assembly@1", "assembly@4", "assembly@5")  # sample_data/gumnet/maps.mrc
ABLATIONS = {"gumnet_MP": "gumnet/ablation_max.pt", "gumnet_AP": "gumnet/ablation_avg.pt",
             "gumnet_SC": "gumnet/ablation_single.pt"}


def _maps():
    from ..io.mrc import read_mrc
    from ..samples import sample_path

    maps, info = read_mrc(sample_path("gumnet/maps.mrc"))
    return np.asarray(maps, np.float32), float(info.voxel_size[0])


def _checkpoints(checkpoints):
    from ..samples import GUMNET_CHECKPOINT, sample_dir

    if checkpoints:
        return dict(checkpoints)
    out = {"gumnet": sample_dir() / GUMNET_CHECKPOINT}
    out.update({k: sample_dir() / v for k, v in ABLATIONS.items() if (sample_dir() / v).is_file()})
    return out


@dataclass(frozen=True)
class AlignBench:
    """Settings of the alignment bench. ``checkpoints``: name → Gum-Net checkpoint (default: the shipped ones); ``search``:
    :class:`~cryoforge.search.SearchConfig` fields of the classical search (e.g. ``{"global_rotations": 4000}``);
    ``batch``: pairs per network / search batch."""

    n_pairs: int = 500
    n_average: int = 500
    checkpoints: dict[str, str] | None = None
    methods: tuple[str, ...] = ("gumnet", "classical", "hybrid")
    averaging: bool = True
    snrs: tuple[float, ...] = SNRS
    seed: int = 50_000
    average_iterations: int = 8
    average_global_iterations: int = 3
    search: dict[str, Any] | None = None
    batch: int = 16
    stored_norm: bool = True  # also each Gum-Net normalised with the statistics stored in training (row NAME_stored_norm)


def bench_align(settings: AlignBench | None = None, device: str = "cpu") -> Iterator[Event]:
    """Job: the alignment benchmark; ``Result`` is the report dict. ``search``: :class:`SearchConfig` fields of
    the classical search (e.g. ``{"global_rotations": 4000, "candidates": 8}``); ``batch``: pairs per network /
    search batch."""
    opts = settings or AlignBench()
    from .train import load_gumnet

    maps, vs = _maps()
    names = list(STRUCTURES) if len(maps) == len(STRUCTURES) else [f"map{i}" for i in range(len(maps))]
    ckpts = _checkpoints(opts.checkpoints) if {"gumnet", "hybrid"} & set(opts.methods) else {}
    models = {name: load_gumnet(path, box=maps.shape[-1], device=device) for name, path in ckpts.items()}
    report = {"device": device, "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "n_pairs_per_snr": opts.n_pairs, "batch": opts.batch,
              "box": int(maps.shape[-1]),
              "voxel_size_A": vs, "checkpoints": {k: str(Path(v).name) for k, v in ckpts.items()},
              "search": to_dict(search_cfg := from_dict(SearchConfig, opts.search or {}, where="search")),
              "alignment": {}, "averaging": {}}
    runs = [(m, name, True) for m in opts.methods for name in (models if m == "gumnet" else [None])]
    if opts.stored_norm and "gumnet" in opts.methods:
        runs += [("gumnet", name, False) for name in models]
    steps = len(opts.snrs) * len(runs) + (2 if opts.averaging else 0)
    done = 0
    _warm_up(models, maps, device)
    for i, snr in enumerate(opts.snrs):
        ds = simulate_pairs(maps, opts.n_pairs, TomoParams(voxel_size=vs, snr=snr), seed=opts.seed + i,
                            structures=names)
        _, mb = dataset_masks(ds)
        truth = (ds.rotations(), ds.shifts())
        for method, name, adapt in runs:
            label = f"{name if method == 'gumnet' else method}{'' if adapt else '_stored_norm'}"
            model = models.get(name) if method == "gumnet" else models.get("gumnet")
            res = drive(align_pairs_job(ds.s_a, ds.s_b, None, mb, method, model=model, truth=truth, device=device,
                                        voxel_size=vs, search=search_cfg, batch=opts.batch, adapt_norm=adapt))
            row = dict(res.summary)
            row["per_structure_rot_deg_median"] = {
                name: float(np.median(res.errors["rot_deg"][(ds.truth["structure"] == name).to_numpy()]))
                for name in ds.structures if (ds.truth["structure"] == name).any()}
            report["alignment"].setdefault(f"snr{snr:g}", {})[label] = row
            done += 1
            yield Metrics({f"{label}@{snr:g}_rot_deg": row["rot_deg_mean"], "trans_vox": row["trans_vox_mean"],
                           "pairs_per_s": row["pairs_per_s"]})
            yield Progress(done, steps, f"{label} at SNR {snr:g}")
    _speedups(report)
    if opts.averaging:
        for j, snr in enumerate((0.1, 0.03)):
            report["averaging"][f"snr{snr:g}"] = yield from _average_bench(
                maps[0], vs, opts.n_average, snr, opts.seed + 10 + j, device,
                AverageConfig(iterations=opts.average_iterations, global_iterations=opts.average_global_iterations))
            done += 1
            yield Progress(done, steps, f"averaging at SNR {snr:g}")
    yield Result(report)


def _warm_up(models, maps, device):
    """One small call of every network and of the search before any timing: CUDA context, kernel selection and FFT
    plans otherwise land in the first row's pairs/s (seen on an H100: 8× instead of 85×)."""
    from .train import gumnet_predict

    two = torch.as_tensor(maps[:2])
    for model in models.values():
        gumnet_predict(model, two, two, device=device)
    classical_align(two, two, cfg=SearchConfig(global_rotations=50, candidates=1), device=device)


def _speedups(report):
    for rows in report["alignment"].values():
        if "classical" in rows and "gumnet" in rows:
            rows["gumnet_speedup_vs_classical"] = rows["gumnet"]["pairs_per_s"] / rows["classical"]["pairs_per_s"]


def _average_bench(true_map, voxel_size, n, snr, seed, device, cfg):
    params = TomoParams(voxel_size=voxel_size, snr=snr, ctf_correction="phase_flip")
    ds = simulate_pairs(true_map[None], n, params, seed=seed)
    yield Log(f"averaging {n} subtomograms at SNR {snr:g}")
    res = drive(average_dataset_job(ds, cfg, side="b", device=device))
    avg = torch.as_tensor(res.average).to(device)
    truth = torch.as_tensor(true_map).to(device)
    r, t, _ = classical_align(avg[None], truth[None], None, None, SearchConfig(), device=device)
    # truth ≈ T(r, t) avg: bring the average into the true map's frame (oversampled warp: no extra blur)
    placed = warp_fine(avg[None], *_inverse(r, t))[0]
    curve = fsc(placed.cpu(), truth.cpu(), voxel_size)
    gold = res.resolution
    return {"n": n, "snr": snr, "iterations": len(res.report["iterations"]),
            "resolution_vs_truth_nm": curve.resolution(GOLD_STANDARD) / 10, "gold_standard_nm": gold / 10,
            "gold_standard_per_iteration_nm": [row["resolution_0.143_A"] / 10 for row in res.report["iterations"]],
            "fsc_vs_truth": curve.fsc.tolist(), "frequency_per_A": curve.frequency.tolist()}


def _inverse(r, t):
    """``warp_inverse`` arguments that apply ``T(r, t)`` itself: ``T(r,t) = (T(rᵀ, −rᵀt))⁻¹``."""
    rt = r.transpose(-1, -2)
    return rt, -(rt @ t[..., None])[..., 0]
