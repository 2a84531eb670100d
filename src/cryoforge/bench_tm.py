"""``cryoforge bench tm``: whole-tomogram template matching on crowded simulated tomograms whose truth is known.

Per SNR and seed: a crowded tomogram (:mod:`cryoforge.sim.tomogram`) of the target and the other structures drawn in
turn; the target's map matched over it (:mod:`cryoforge.matching`: wedge, CTF and MTF on the template, a sphere of
the target's radius as the mask) and, with the same settings, ``decoys`` decoy maps of ``decoy_kind``
(:func:`~cryoforge.matching.peaks.decoy_template`). Two candidate lists, each at most ``3 ×`` as many as there are
targets and at least the target's diameter apart: the target's wins of the target–decoy competition
(:func:`~cryoforge.matching.peaks.compete`), and the template's own score maxima (what a matcher without decoys
gives). A candidate is true when it lies within ``match_radius`` voxels of a target particle not claimed by a stronger
candidate; each false one is put down to the structure within a radius of it, or "empty".

Reported per SNR, averaged over the seeds' tomograms, for each nominal level ``q``: the realised false-discovery
rate (false / kept) and the recall (true kept / targets) of the candidates kept with

- ``decoy_tdc`` (the competition's wins): target–decoy q-values (:func:`~cryoforge.matching.peaks.decoy_q_values`:
  the false discoveries above a score cut estimated by the decoys' candidates above it, per decoy map, plus one),
- ``gaussian_bh`` (the template's maxima): q-values from the Gaussian null over every voxel (Rickgauer et al.'s
  normal tail with the score σ over all voxels and rotations, then Benjamini–Hochberg),
- ``hyptest_bh`` (the template's maxima, ``test``): seed 000's hypothesis test of each candidate's subtomogram
  against the known set and the 3D-WGAN's pseudo-complexes (:mod:`cryoforge.candidate_tests`: p̂ when one of
  ``test_targets`` explains it best, else 1), then Benjamini–Hochberg,

and, as the field's baseline, the Gaussian-null threshold of one false alarm per tomogram; then the recall that a
single score threshold over all the tomograms' maxima reaches at the false positives each method made. Speed: the
seconds per rotation, the time of one forward + inverse real FFT of the same tile (``bench`` reports their ratio),
the voxel-rotations per second and the seconds per tested candidate. Plots (``plots``): realised against nominal FDR,
and precision against recall (candidates ordered by score, and by the test's p-value).
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .bench_tomo import _resolve
from .candidate_tests import (
    CANDIDATE_ROTATIONS,
    candidate_subtomograms,
    candidate_tester,
    match_transfer,
    target_indices,
    test_candidates_job,
)
from .jobs import Log, Metrics, Progress, Result, stage
from .matching.job import MatchConfig, match_job
from .matching.peaks import (
    compete,
    decoy_q_values,
    decoy_template,
    find_peaks,
    gaussian_null_false_alarms,
    gaussian_null_q_values,
    gaussian_null_threshold,
)
from .sim.sources import MapSpec, load_map, source_name
from .sim.tomogram import TomogramParams, map_radius, simulate_tomogram_job

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .jobs import Event


@dataclass(frozen=True)
class TmBench:
    """Settings of the template-matching bench: the target and the other structures (atomic models found in
    ``shared``/structures, or ``phantom:KIND``), the tomograms, the search and the levels."""

    target: str = "4v5d.cif.gz"
    others: tuple[str, ...] = ("3jb9.cif.gz", "6z6u.pdb.gz")
    shared: str | None = None
    shape: tuple[int, int, int] = (192, 192, 64)  # X Y Z voxels
    voxel_size: float = 12.0
    box: int = 32
    n_particles: int = 45  # of all structures together
    thickness: float = 700.0
    snrs: tuple[float, ...] = (0.1, 0.05)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    defocus: float = 3.0  # µm
    tilt_range: tuple[float, float] = (-60.0, 60.0)
    tilt_step: float = 3.0
    angular_step: float = 20.0
    decoys: int = 2
    decoy_kind: str = "shells"  # see cryoforge.matching.peaks.decoy_template
    match_radius: float = 3.0  # voxels
    levels: tuple[float, ...] = (0.01, 0.05, 0.10)
    plots: str | None = None  # folder for the PNGs (none: no plots)
    test: bool = True  # seed 000's hypothesis test of every candidate (cryoforge.candidate_tests)
    known: str | None = None  # the known template set (None: the shipped one)
    model: str | None = None  # its 3D-WGAN + regressor (None: the shipped one)
    test_targets: tuple[str, ...] = ("4v5d",)  # the known template(s) that are the target
    n_pseudo: int = 985
    test_rotations: int = CANDIDATE_ROTATIONS  # SO(3) grid of the candidates' scoring


# q-value selections and the candidate list each one labels: the target–decoy competition's wins, or the
# template's own peaks (the Gaussian null and the hypothesis test)
METHODS = {"decoy_tdc": "true", "gaussian_bh": "peak_true", "hyptest_bh": "peak_true"}
NAMES = {"decoy_tdc": "decoys", "gaussian_bh": "Gaussian null + BH", "hyptest_bh": "hypothesis test + BH"}


def _label(cand_xyz: np.ndarray, truth_xyz: np.ndarray, radius: float) -> np.ndarray:
    """True for each candidate (strongest first) within ``radius`` of a target not claimed by a stronger one."""
    free = np.ones(len(truth_xyz), bool)
    out = np.zeros(len(cand_xyz), bool)
    for i, p in enumerate(cand_xyz):
        if not free.any():
            break
        d = np.linalg.norm(truth_xyz - p, axis=1)
        d[~free] = np.inf
        k = int(np.argmin(d))
        if d[k] <= radius:
            out[i], free[k] = True, False
    return out


def _near(xyz: np.ndarray, every: np.ndarray, kinds: np.ndarray, radius: float) -> list[str]:
    """The structure within ``radius`` voxels of each point (the nearest), or "empty"."""
    d = [np.linalg.norm(every - p, axis=1) for p in xyz]
    return [str(kinds[int(np.argmin(e))]) if e.min() <= radius else "empty" for e in d]


def _selection(true: np.ndarray, keep: np.ndarray, n_targets: int) -> dict[str, Any]:
    kept = int(keep.sum())
    tp = int((true & keep).sum())
    return {"kept": kept, "true": tp, "false": kept - tp, "fdr": (kept - tp) / kept if kept else 0.0,
            "recall": tp / n_targets if n_targets else 0.0}


def _recall_at_false(rows: list[dict[str, Any]], n_false: int) -> float:
    """The recall of one score threshold over all the tomograms (the template's own peaks, scores in units of each
    run's σ, as the Gaussian null sees them) that admits ``n_false`` false candidates in all."""
    z = np.concatenate([r["peak_scores"] / r["sigma"] for r in rows])
    t = np.concatenate([r["peak_true"] for r in rows])
    order = np.argsort(-z, kind="stable")
    false_seen = np.cumsum(~t[order])
    cut = int(np.searchsorted(false_seen, n_false, side="right"))  # all candidates before the (n_false+1)-th false
    return float(t[order][:cut].sum() / sum(r["n_targets"] for r in rows))


def _summary(rows: list[dict[str, Any]], levels: tuple[float, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method in [m for m in METHODS if m in rows[0]]:
        per = {}
        for q in levels:
            sel = [_selection(r[METHODS[method]], r[method] <= q, r["n_targets"]) for r in rows]
            per[f"{q:g}"] = {"fdr_mean": float(np.mean([s["fdr"] for s in sel])),
                             "recall_mean": float(np.mean([s["recall"] for s in sel])),
                             "false_total": int(sum(s["false"] for s in sel)),
                             "kept_total": int(sum(s["kept"] for s in sel)),
                             "threshold_recall_at_same_false": _recall_at_false(rows, int(sum(s["false"] for s in sel)))}
        out[method] = per
    sel = [_selection(r["peak_true"], r["above_1fa"], r["n_targets"]) for r in rows]
    out["gaussian_1fa"] = {"fdr_mean": float(np.mean([s["fdr"] for s in sel])),
                           "recall_mean": float(np.mean([s["recall"] for s in sel])),
                           "false_total": int(sum(s["false"] for s in sel)), "kept_total": int(sum(s["kept"] for s in sel))}
    return out


def _plots(folder: Path, summary: dict[str, Any], per_snr: dict[str, list[dict[str, Any]]],
           levels: tuple[float, ...]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, max(levels)], [0, max(levels)], "k:", lw=1, label="realised = nominal")
    styles = {"decoy_tdc": "o-", "gaussian_bh": "s--", "hyptest_bh": "^-"}
    for snr, s in summary.items():
        for method in [m for m in METHODS if m in s]:
            ax.plot(levels, [s[method][f"{q:g}"]["fdr_mean"] for q in levels], styles[method],
                    label=f"SNR {snr}, {NAMES[method]}")
    ax.set_xlabel("nominal FDR q")
    ax.set_ylabel("realised FDR (mean over tomograms)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "tm_fdr.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4.2, 4))
    for snr, rows in per_snr.items():
        z = np.concatenate([r["peak_scores"] / r["sigma"] for r in rows])
        t = np.concatenate([r["peak_true"] for r in rows])
        n = sum(r["n_targets"] for r in rows)
        orders = {"score": np.argsort(-z, kind="stable")}
        if "hyptest_bh" in rows[0]:  # by the test's p-value, ties by score
            orders["hypothesis test"] = np.lexsort((-z, np.concatenate([r["hyptest_p"] for r in rows])))
        for what, order in orders.items():
            tp = np.cumsum(t[order])
            ax.plot(tp / n, tp / np.arange(1, len(tp) + 1), "-" if what == "score" else "--",
                    label=f"SNR {snr}, by {what}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "tm_precision_recall.png", dpi=120)
    plt.close(fig)
    return [str(folder / "tm_fdr.png"), str(folder / "tm_precision_recall.png")]


def bench_tm(o: TmBench, device: str = "cpu") -> Iterator[Event]:
    """Job: the template-matching bench (module text); ``Result`` is the report (a JSON-ready dict)."""
    spec = MapSpec(o.box, o.voxel_size)
    sources = [o.target, *o.others]
    maps = np.stack([load_map(_resolve(s, o.shared), spec, seed=k) for k, s in enumerate(sources)])
    names = [source_name(s) for s in sources]
    radius = map_radius(maps[0])  # voxels
    cfg = MatchConfig(angular_step=o.angular_step, mask_radius=min(radius + 2, o.box / 2) * o.voxel_size,
                      tilt_range=o.tilt_range, defocus=o.defocus * 1e4)
    report: dict[str, Any] = {"settings": asdict(o), "machine": platform.processor() or platform.machine(),
                              "device": device, "target_radius_vox": radius, "runs": [], "summary": {}}
    tester, known_vs, transfer = None, o.voxel_size, None
    if o.test:  # seed 000's tester with the known set; the tomograms' transfer on its grid (not phase-flipped)
        tester, known_vs = candidate_tester(o.known, o.model, o.n_pseudo, device=device, rotations=o.test_rotations)
        target_indices(tester.names, o.test_targets)
        transfer = match_transfer(asdict(cfg), o.box, known_vs, o.voxel_size)
        report["known"] = tester.names
    total = len(o.snrs) * len(o.seeds) * (2 + o.decoys + o.test)
    done = 0
    per_snr: dict[str, list[dict[str, Any]]] = {}
    for snr in o.snrs:
        for seed in o.seeds:
            params = TomogramParams(shape=o.shape, voxel_size=o.voxel_size, n_particles=o.n_particles,
                                    tilt_range=o.tilt_range, tilt_step=o.tilt_step, snr=snr, defocus=o.defocus,
                                    thickness=o.thickness, seed=seed)
            sim = yield from stage(simulate_tomogram_job(maps, names, params))
            done += 1
            yield Progress(done, total, f"SNR {snr:g}, seed {seed}: simulated")
            tomo = sim.tomogram
            target = sim.particles.table["cfStructure"].to_numpy() == names[0]
            truth = sim.particles.voxels(o.voxel_size, tomo.shape)[target]
            res = yield from stage(match_job(tomo, maps[0], o.voxel_size, cfg, device=device))
            done += 1
            yield Progress(done, total, f"SNR {snr:g}, seed {seed}: matched")
            n = 3 * max(1, len(truth))
            sigma = float(res.record["score_sigma"])
            decoy_maps = []
            for k in range(o.decoys):
                dres = yield from stage(match_job(tomo, decoy_template(maps[0], 1000 * seed + k + 1, o.decoy_kind),
                                                  o.voxel_size, cfg, device=device))
                decoy_maps.append((dres.scores, float(dres.record["score_sigma"])))
                done += 1
                yield Progress(done, total, f"SNR {snr:g}, seed {seed}: decoy {k + 1} matched")
            if decoy_maps:  # the candidates of the competition: where the target beats every decoy
                cand, decoy_z = compete(res.scores, res.angles, sigma, decoy_maps, n, 2 * radius, o.box // 2)
            else:
                cand, decoy_z = find_peaks(res.scores, res.angles, n, 2 * radius, o.box // 2), np.zeros(0)
            rec = res.record
            trials = float(rec["searched_voxels"]) * rec["n_rotations"]
            true = _label(cand.xyz, truth, o.match_radius)
            peaks = find_peaks(res.scores, res.angles, n, 2 * radius, o.box // 2)  # the template's own maxima
            peak_true = _label(peaks.xyz, truth, o.match_radius)
            every = sim.particles.voxels(o.voxel_size, tomo.shape)
            kinds = sim.particles.table["cfStructure"].to_numpy()
            fa = gaussian_null_false_alarms(peaks.scores, sigma, trials)
            row = {"snr": snr, "seed": seed, "n_targets": int(len(truth)), "scores": cand.scores, "true": true,
                   "peak_scores": peaks.scores, "peak_true": peak_true,
                   "sigma": sigma, "decoy_tdc": decoy_q_values(cand.scores / sigma, decoy_z, o.decoys)[0]
                   if decoy_maps else np.ones(len(cand.scores)),
                   "gaussian_bh": gaussian_null_q_values(fa),
                   "above_1fa": peaks.scores >= gaussian_null_threshold(sigma, trials, 1.0)}
            run: dict[str, Any] = {}
            if tester is not None:
                subtomos, mask = candidate_subtomograms(tomo, peaks.xyz, o.voxel_size, known_vs, o.box, o.tilt_range)
                tests = yield from stage(test_candidates_job(tester, subtomos, o.test_targets, mask, transfer))
                row["hyptest_bh"], row["hyptest_p"] = tests.q, tests.p
                done += 1
                yield Progress(done, total, f"SNR {snr:g}, seed {seed}: {len(peaks.scores)} candidates tested")
                on = _near(peaks.xyz, every, kinds, radius)
                run["hyptest"] = {"on": on, "true": peak_true.tolist(), "z": np.round(peaks.scores / sigma, 2).tolist(),
                                  "best": tests.best, "p_hat": [None if np.isnan(v) else float(v) for v in tests.p_hat],
                                  "q": tests.q.round(5).tolist(), "seconds": np.round(tests.seconds, 2).tolist()}
            per_snr.setdefault(f"{snr:g}", []).append(row)
            false_on = _near(cand.xyz[~true], every, kinds, radius)
            dists = [np.linalg.norm(every - p, axis=1) for p in cand.xyz[~true]]
            report["runs"].append({"snr": snr, "seed": seed, "n_targets": row["n_targets"],
                                   "particle_snr": sim.report.get("snr_in_particle_boxes"),
                                   "candidates": len(cand.scores), "true_candidates": int(true.sum()),
                                   "peaks": len(peaks.scores), "true_peaks": int(peak_true.sum()),
                                   "false_on": {k: false_on.count(k) for k in sorted(set(false_on))},  # within a radius
                                   "false_nearest_vox": [round(float(d.min()), 1) for d in dists],
                                   "false_xyz": cand.xyz[~true].round().astype(int).tolist(),
                                   "true_scores": np.round(cand.scores[true], 4).tolist(),
                                   "false_scores": np.round(cand.scores[~true], 4).tolist(),
                                   "true_z": np.round(cand.scores[true] / sigma, 2).tolist(),
                                   "false_z": np.round(cand.scores[~true] / sigma, 2).tolist(),
                                   "decoy_top_z": np.round(np.sort(decoy_z)[::-1][:10], 2).tolist(), **run,
                                   "score_sigma": sigma, "seconds_per_rotation": rec["seconds_per_rotation"],
                                   "fft_pair_seconds": rec["fft_pair_seconds"],
                                   "rotation_over_fft_pair": rec["rotation_over_fft_pair"],
                                   "voxel_rotations_per_s": rec["voxel_rotations_per_s"],
                                   "n_rotations": rec["n_rotations"], "match_seconds": rec["seconds"]})
            yield Log(f"SNR {snr:g}, seed {seed}: {int(true.sum())} of {len(truth)} targets among the "
                      f"{len(cand.scores)} candidates; {rec['seconds_per_rotation'] * 1e3:.0f} ms per rotation "
                      f"({rec['rotation_over_fft_pair']:.2f}× an FFT pair)")
        report["summary"][f"{snr:g}"] = _summary(per_snr[f"{snr:g}"], o.levels)
        s = report["summary"][f"{snr:g}"]
        yield Metrics({f"{m}_fdr_{q:g}_snr{snr:g}": s[m][f"{q:g}"]["fdr_mean"] for m in ("decoy_tdc", "hyptest_bh")
                       if m in s for q in o.levels})
    if o.plots:
        report["plots"] = _plots(Path(o.plots), report["summary"], per_snr, o.levels)
    yield Result(report)
