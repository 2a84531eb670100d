"""``cryoforge bench align``: accuracy and speed of Gum-Net, its ablations, the classical search, the hybrid,
and reference-free averaging, on held-out simulated data (figures in JSON).

Test pairs: ``n_pairs`` per SNR (100, 0.1, 0.03) simulated from the shipped training maps (5 asymmetric
structures: 4V5D, 3JB9 and three asymmetric assembly phantoms; ``sample_data/gumnet/maps.mrc``) with seeds
the training never used; s_a without wedge, s_b with a 30° wedge, shifts ≤ 7 voxels (the
:mod:`cryoforge.sim.subtomo` defaults). Rotation error in degrees and Frobenius norm, translation
error in voxels, mean ± sd, and pairs/s. Averaging: ``n_average`` subtomograms of the first map
(4V5D) per SNR (0.1, 0.03), phase-flipped, CTF-weighted reference-free averaging; the final average
is aligned to the true map and the FSC-0.143 resolution against it is reported in nm; ``average_local`` runs it
once per local-iteration method (``gumnet``: the shipped local model, or ``local_checkpoint``) and reports the seconds
of the global and of the local iterations. ``local_range`` (issue 27's local-refinement regime): every Gum-Net also on
``n_pairs`` pairs per SNR turned by at most that many degrees (shifts ≤ 7 voxels × range / 180°, as the gated
curriculum draws them), beside the error of guessing no rotation. ``curves``: a folder for a learning-curve PNG per
Gum-Net checkpoint that holds its training history (validation rotation error against pairs seen, per SNR).
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
    local_range: float = 45.0  # ° (0: skip)
    average_local: tuple[str, ...] = ("classical", "gumnet")
    average_snrs: tuple[float, ...] = (0.1, 0.03)
    local_checkpoint: str = ""  # the Gum-Net of averaging's local iterations (default: the shipped local model)
    curves: str = ""


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
    steps = len(opts.snrs) * len(runs) + (len(opts.average_snrs) if opts.averaging else 0)
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
    if opts.local_range > 0 and models:
        report["local"] = {f"snr{snr:g}": _local_bench(models, maps, vs, opts, snr, opts.seed + 20 + i, device)
                           for i, snr in enumerate(opts.snrs)}
        yield Log(f"within ±{opts.local_range:g}°: " + "; ".join(
            f"{name} {row['rot_deg_mean']:.1f}° at {snr}" for snr, rows in report["local"].items()
            for name, row in rows.items() if name != "no_rotation"))
    if opts.curves:
        report["curves"] = _curves(ckpts, Path(opts.curves))
    if opts.averaging:
        local_model = None
        if "gumnet" in opts.average_local:
            from ..samples import GUMNET_LOCAL_CHECKPOINT, sample_path

            local_model = load_gumnet(opts.local_checkpoint or sample_path(GUMNET_LOCAL_CHECKPOINT),
                                      box=maps.shape[-1], device=device)
            report["local_checkpoint"] = Path(opts.local_checkpoint or GUMNET_LOCAL_CHECKPOINT).name
        for j, snr in enumerate(opts.average_snrs):
            for method in opts.average_local:
                cfg = AverageConfig(iterations=opts.average_iterations,
                                    global_iterations=opts.average_global_iterations, local_method=method)
                row = yield from _average_bench(maps[0], vs, opts.n_average, snr, opts.seed + 10 + j, device, cfg,
                                                local_model)
                key = f"snr{snr:g}" if method == "classical" else f"snr{snr:g}_{method}"
                report["averaging"][key] = row
            done += 1
            yield Progress(done, steps, f"averaging at SNR {snr:g}")
    yield Result(report)


def _local_bench(models, maps, vs, opts, snr, seed, device):
    """Every Gum-Net on pairs turned by at most ``opts.local_range`` degrees (normalised with their statistics)."""
    from ..conventions import rotation_angle_deg
    from .adapt import recalibrated
    from .data import training_batch
    from .train import gumnet_predict

    rng_deg = opts.local_range
    s_a, s_b, rel, sh = training_batch(maps, opts.n_pairs, TomoParams(voxel_size=vs), [snr], seed, 0, 30.0,
                                       7.0 * rng_deg / 180, rng_deg)
    ident = rotation_angle_deg(torch.eye(3).expand_as(rel), rel)
    rows = {"no_rotation": {"rot_deg_mean": float(ident.mean()), "range_deg": rng_deg}}
    for name, model in models.items():
        r, t = gumnet_predict(recalibrated(model, s_a, s_b, device=device), s_a, s_b, device=device)
        err = rotation_angle_deg(r, rel)
        rows[name] = {"rot_deg_mean": float(err.mean()), "rot_deg_median": float(err.median()),
                      "rot_deg_sd": float(err.std()), "trans_vox_mean": float(torch.linalg.norm(t - sh, dim=1).mean()),
                      "range_deg": rng_deg}
    return rows


def _curves(ckpts, folder: Path) -> dict[str, str]:
    """A learning-curve PNG per checkpoint with a training history (shipped exports have none)."""
    from ..io.checkpoint import load_checkpoint

    out = {}
    for name, path in ckpts.items():
        payload = load_checkpoint(path, kind="gumnet")
        history = payload.get("extra", {}).get("history", [])
        batch = payload.get("config", {}).get("train", {}).get("batch")
        if any(k.startswith("val_snr") for h in history for k in h):
            out[name] = str(plot_learning_curve(history, folder / f"curve_{name}.png", title=name, batch=batch))
    return out


def learning_curve(history: list[dict[str, Any]], batch: int | None = None) -> dict[str, list[float]]:
    """``{"pairs_seen": [...], "snr100_rot_deg": [...], ...}`` from a training history's validation rows (pairs seen
    from ``val_pairs_seen``, or ``step × batch`` for older checkpoints)."""
    rows = [h for h in history if any(k.startswith("val_snr") and k.endswith("_rot_deg") for k in h)]
    keys = sorted({k[4:] for h in rows for k in h if k.startswith("val_snr") and k.endswith("_rot_deg")})
    curve: dict[str, list[float]] = {"pairs_seen": [float(h.get("val_pairs_seen", h["step"] * (batch or 1)))
                                                   for h in rows]}
    for k in keys:
        curve[k] = [float(h.get(f"val_{k}", np.nan)) for h in rows]
    if any("val_gate_range_deg" in h for h in rows):
        curve["gate_range_deg"] = [float(h.get("val_gate_range_deg", np.nan)) for h in rows]
    return curve


def plot_learning_curve(history: list[dict[str, Any]], path: Path, title: str = "", batch: int | None = None) -> Path:
    """Validation rotation error (°) against pairs seen, one line per SNR (and the gated range, dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = learning_curve(history, batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for k, v in curve.items():
        if k.endswith("_rot_deg"):
            ax.plot(curve["pairs_seen"], v, label=f"SNR {k[3:-8]}")
    if "gate_range_deg" in curve:
        ax.plot(curve["pairs_seen"], curve["gate_range_deg"], "k:", label="training range")
    ax.set_xlabel("pairs seen")
    ax.set_ylabel("validation rotation error (°)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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


def _average_bench(true_map, voxel_size, n, snr, seed, device, cfg, model=None):
    params = TomoParams(voxel_size=voxel_size, snr=snr, ctf_correction="phase_flip")
    ds = simulate_pairs(true_map[None], n, params, seed=seed)
    yield Log(f"averaging {n} subtomograms at SNR {snr:g} (local iterations: {cfg.local_method})")
    res = drive(average_dataset_job(ds, cfg, side="b", device=device, model=model))
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
            "fsc_vs_truth": curve.fsc.tolist(), "frequency_per_A": curve.frequency.tolist(),
            "local_method": cfg.local_method,
            "seconds_global": sum(r["seconds"] for r in res.report["iterations"] if r["search"] == "global"),
            "seconds_local": sum(r["seconds"] for r in res.report["iterations"] if r["search"] != "global"),
            "align_seconds_local": sum(r["align_seconds"] for r in res.report["iterations"] if r["search"] != "global")}


def _inverse(r, t):
    """``warp_inverse`` arguments that apply ``T(r, t)`` itself: ``T(r,t) = (T(rᵀ, −rᵀt))⁻¹``."""
    rt = r.transpose(-1, -2)
    return rt, -(rt @ t[..., None])[..., 0]
