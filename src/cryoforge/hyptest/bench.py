"""``cryoforge bench hyptest``: success on known structures, false positives rejected, calibration, speed.

* **Known structures** (the paper's simulated test): one subtomogram of each known template at SNR 0.03
  (random rotation, shift ≤ ``max_shift`` voxels, ±60° tilts, CTF phase-flipped); success = Cond.1
  (``C_I`` is the true template) and Cond.2 (``p̂ ≤ α``).
* **Empty and unknown subtomograms**: noise only (the noise of a SNR-0.03 subtomogram) and phantoms
  that are not among the templates; every argmax is a false positive, rejected when ``p̂ > α``.
* **Calibration**: a tested template ``C*`` and the structure in ``P`` are independent GAN samples (``P``
  holds a pseudo-complex that is not the template — the null); ``p̂`` of ``C*`` against its own null set
  (rejection sampling included) should be uniform: Kolmogorov–Smirnov test against U(0, 1).
* **Speed**: one subtomogram against 1 000 templates (scoring), and the whole test of one subtomogram
  (null set included) on this machine's threads.

**Sampling.** The SNR of :mod:`cryoforge.sim.tomo` is per voxel, so the same SNR is harder the coarser the
sampling: binning keeps the signal's band and averages the noise beyond it away. The subtomograms are
acquired at ``acquisition_voxel`` Å (default 9.6 Å, about the 1 nm voxels of AITom's simulations; the maps
are made from the template set's own sources at that sampling) and binned to the templates' 12 Å grid
(:func:`cryoforge.hyptest.templates.bin_to_templates`), as tomograms are binned for template matching. The
report states the SNR this leaves at the templates' sampling, and (``compare_direct``) repeats the
known-structure test on subtomograms made directly at 12 Å at the same SNR.

**Cases** (``case``, :data:`CASES`): ``shipped`` (the above, with the shipped 32³ set and model) and ``paper`` — the
paper's setup: subtomograms made at the templates' own sampling (no binning), SNR 0.03, ±60°, defocus 5 µm, Cs 2 mm,
300 kV, MTF; its templates (``-o templates=DIR``: 64³ at 6 Å, infinite SNR, a 2 Å Gaussian blur, from
``cryoforge hyptest templates … --box 64 --voxel-size 6 --blur 2``) and a 3D-WGAN + regressor trained on them
(``-o model=PT``) are the user's: nothing shipped is at 64³.

Every template, known or pseudo, is scored after spectral equalisation to the known set's radial profile
and (``ctf_aware``, default) through the subtomogram's own |CTF|·MTF (:mod:`cryoforge.hyptest.score`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..configs import to_dict
from ..jobs import Log, Metrics, Progress, Result
from ..resources import inference_precision
from ..sim.tomo import centred_wedge
from .acquisition import acquire, acquire_structures, simulate, source_maps
from .calibration import Calibration, ks_summary
from .config import HypTestConfig, ScoreConfig
from .h0 import calibration_settings, h0_job
from .montecarlo import HypothesisTester
from .score import radial_transfer
from .wgan import generate

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator
    from typing import Any

    from ..jobs import Event


REFERENCE_SEED = 500_000  # the reference H0 cases' seeds: bench seed + this (the check's are bench seed + 5 … 10 000 + m)
UNKNOWN = tuple(f"phantom:assembly@{s}" for s in range(100, 107)) + tuple(f"phantom:multiblob@{s}" for s in (10, 11, 12))


@dataclass(frozen=True)
class HyptestBench:
    """Settings of the hypothesis-test bench. ``ctf_aware``: templates are scored through each subtomogram's |CTF|·MTF
    (its defocus is known from the simulation); ``acquisition_voxel``: Å the subtomograms are simulated at before
    binning to the templates (None: the templates' own); ``case``: a preset (:data:`CASES`) for the settings left at
    their defaults."""

    model: str | None = None
    templates: str | None = None
    snr: float = 0.03
    n_pseudo: int = 985
    alpha: float = 0.01
    n_empty: int = 10
    calibration_cases: int = 200
    calibration_pseudo: int = 200
    calibration_rotations: int = 1000
    speed_templates: int = 1000  # generated and scored for the speed figures (reported per 1 000)
    seed: int = 0
    prior: float = 1.0
    ctf_aware: bool = True
    acquisition_voxel: float | None = 9.6
    compare_direct: bool = True
    defocus: float | None = None  # µm for every subtomogram (None: drawn in the simulator's 2–5 µm)
    cs: float | None = None  # mm (None: the simulator's 2.7)
    case: str = "shipped"  # a preset of the settings above (CASES); explicit options override it
    centred: int = 4  # more candidate rotations ranked by phase (ScoreConfig.centred; subtomograms shifted ≤ 2 voxels)
    rotations: int = 4000  # SO(3) grid of the coarse search (ScoreConfig.n_rotations; the candidate tests use 8 000)
    null_spread: float | None = None  # HypTestConfig.null_spread: None the paper's prior null, τ the neighbour null
    # H0 cases (other seeds than the calibration check's) whose p̂ calibrate every test's p (cryoforge.hyptest.
    # calibration); 0: the tests use p̂ itself
    reference_cases: int = 0
    reference_file: str | None = None  # where to write the reference as a calibration (`hyptest test --calibration`)


# the paper's setup (Do et al.): subtomograms made at the templates' sampling (64³ at 6 Å: -o templates=DIR from
# `cryoforge hyptest templates … --box 64 --voxel-size 6 --blur 2`, -o model=PT trained on them), SNR 0.03, ±60°,
# defocus 5 µm, Cs 2 mm, 300 kV, MTF
CASES: dict[str, dict[str, Any]] = {
    "shipped": {},
    "paper": {"snr": 0.03, "acquisition_voxel": None, "compare_direct": False, "defocus": 5.0, "cs": 2.0},
}


def resolve_case(opts: HyptestBench) -> HyptestBench:
    """``opts`` with its case's preset (:data:`CASES`) in the settings left at their defaults; the paper case needs
    its own templates and model (nothing shipped is at 64³)."""
    from dataclasses import fields, replace

    if opts.case not in CASES:
        raise ValueError(f"unknown hypothesis-test bench case {opts.case!r}; choose from {', '.join(CASES)}")
    default = HyptestBench()
    preset = {f.name: CASES[opts.case][f.name] for f in fields(opts)
              if f.name in CASES[opts.case] and getattr(opts, f.name) == getattr(default, f.name)}
    opts = replace(opts, **preset)
    if opts.case == "paper" and (opts.templates is None or opts.model is None):
        raise ValueError("the paper case needs -o templates=DIR (cryoforge hyptest templates SOURCES --box 64 "
                         "--voxel-size 6 --blur 2 --out DIR) and -o model=PT (hyptest train-gan, train-regressor on "
                         "those templates)")
    return opts


def bench_hyptest(settings: HyptestBench | None = None, device: str = "cpu") -> Iterator[Event]:
    """Job: the figures of the module docstring; ``Result`` is the JSON report. ``ctf_aware``: templates are scored
    through each subtomogram's |CTF|·MTF (its defocus is known from the simulation). ``acquisition_voxel``: Å the
    subtomograms are simulated at before binning to the templates (None: the templates' own)."""
    opts = resolve_case(settings or HyptestBench())

    from ..samples import HYPTEST_MODEL, sample_path
    from .templates import read_template_set, template_sources

    maps, names, vs = read_template_set(opts.templates)
    acq = float(opts.acquisition_voxel or vs)
    n_acq = int(round(maps.shape[-1] * vs / acq))
    cfg = HypTestConfig(n_pseudo=opts.n_pseudo, alpha=opts.alpha, seed=opts.seed, prior=opts.prior,
                        null_spread=opts.null_spread,
                        score=ScoreConfig(centred=opts.centred, n_rotations=opts.rotations))
    tester = HypothesisTester.from_checkpoint(opts.model or sample_path(HYPTEST_MODEL), maps, names, cfg, device)
    mask = centred_wedge(maps.shape[-1], -60, 60).numpy()
    report: dict[str, Any] = {"device": device, "threads": torch.get_num_threads(), "snr": opts.snr,
                              "alpha": opts.alpha,
              "templates": names, "n_pseudo": opts.n_pseudo, "prior": opts.prior, "null_spread": opts.null_spread,
              "score": to_dict(cfg.score),
              "ctf_aware": opts.ctf_aware,
              "template_voxel": vs, "acquisition_voxel": acq}
    n = maps.shape[-1]

    cs = 2.7 if opts.cs is None else opts.cs
    report.update(defocus_um=opts.defocus, cs_mm=cs, case=opts.case)

    def transfer(defocus, pixel=acq):
        return radial_transfer(n, vs, float(defocus), cs=cs, pixel_size=pixel) if opts.ctf_aware else None
    direct = opts.compare_direct and acq != vs
    total = len(maps) * (1 + direct) + 2 * opts.n_empty + 2 * opts.calibration_cases + 2 * opts.reference_cases + 2
    done = 0

    def acquire_h0(structures, seed):
        return acquire_structures(structures, n_acq, opts.snr, seed, acq, vs, n, opts.defocus, opts.cs)

    def h0_cases(seed, cases, label):
        return h0_job(tester, cases, seed, acquire_h0, transfer, mask, opts.calibration_pseudo,
                      opts.calibration_rotations, label)

    if opts.reference_cases:  # calibrated p-values: the reference H0 cases, seeds apart from the check's below
        ref_seed = opts.seed + REFERENCE_SEED
        ref, _ = yield from _offset(h0_cases(ref_seed, opts.reference_cases, "reference H0 case"), done, total)
        done += 2 * opts.reference_cases
        reference = Calibration(ref, calibration_settings(
            tester, opts.reference_cases, ref_seed, opts.calibration_pseudo, opts.calibration_rotations, snr=opts.snr,
            defocus_um=opts.defocus, cs_mm=cs, tilt_range=[-60.0, 60.0], acquisition_voxel=acq, template_voxel=vs,
            model=opts.model or "shipped"))
        tester.calibrate(reference)
        report["reference"] = {**_ks_fields(ref, "p_hat"), "cases": opts.reference_cases, "seed": ref_seed,
                               "p_hats": ref.tolist()}
        if opts.reference_file:
            report["reference"]["file"] = str(reference.write(opts.reference_file))
        yield Log(f"reference: {opts.reference_cases} H0 cases, p̂ mean {ref.mean():.3f}; every p below is calibrated")

    def known_test(subtomos, defocus, pixel, label):
        nonlocal done
        rows = []
        for i, p in enumerate(subtomos):
            t0 = time.perf_counter()
            r = tester.test(p, mask, truth=i, transfer=transfer(defocus[i], pixel))
            rows.append({"structure": names[i], "best": r.best_name, "score": r.score, "p_hat": r.p_hat,
                         "p_cal": r.p_cal, "p_gauss": r.p_gauss, "z_sigma": r.z_sigma, "cond1": r.cond1, "cond2": r.cond2,
                         "success": r.success, "rejected_codes": r.rejected,
                         "seconds": time.perf_counter() - t0})
            done += 1
            yield Progress(done, total, f"{label} {names[i]}: best {r.best_name}, p̂ = {r.p_hat:.4f}")
        return {"rows": rows, "success": sum(row["success"] for row in rows), "cases": len(rows),
                "cond1": sum(row["cond1"] for row in rows), "cond2": sum(row["cond2"] for row in rows),
                "success_gaussian": sum(row["cond1"] and row["p_gauss"] <= opts.alpha for row in rows)}

    # known structures, acquired at `acq` and binned to the templates
    known_maps = maps if acq == vs else source_maps(template_sources(opts.templates), n_acq, acq)
    known_sub, noise, known_df, report["snr_at_template_sampling"] = acquire(known_maps, opts.snr, opts.seed + 1, acq,
                                                                             vs, n, opts.defocus, opts.cs)
    report["known"] = yield from known_test(known_sub, known_df, acq, "known")
    yield Metrics({"known_success": report["known"]["success"]})
    if direct:  # the same SNR reached directly at the templates' sampling (no binning)
        direct_sub, _, direct_df = simulate(maps, opts.snr, opts.seed + 1, voxel_size=vs, defocus=opts.defocus,
                                            cs=opts.cs)
        report["known_direct"] = yield from known_test(direct_sub, direct_df, vs, f"known at {vs:g} Å")
        yield Metrics({"known_success_direct": report["known_direct"]["success"]})

    # empty and unknown subtomograms
    cases = [("empty", noise[j % len(noise)] if j < len(noise) else noise[j % len(noise)][::-1].copy(),
              known_df[j % len(noise)]) for j in range(opts.n_empty)]
    if opts.n_empty:
        unknown_maps = source_maps(UNKNOWN[:opts.n_empty], n_acq, acq)
        unknown_sub, _, unknown_df, _ = acquire(unknown_maps, opts.snr, opts.seed + 2, acq, vs, n, opts.defocus,
                                                opts.cs)
        cases += [(UNKNOWN[j], unknown_sub[j], unknown_df[j]) for j in range(len(unknown_sub))]
    fp_rows = []
    for kind, p, df in cases:
        r = tester.test(p, mask, transfer=transfer(df))
        fp_rows.append({"case": kind, "best": r.best_name, "score": r.score, "p_hat": r.p_hat, "p_cal": r.p_cal,
                        "p_gauss": r.p_gauss, "rejected": not r.cond2,
                        "rejected_gaussian": r.p_gauss > opts.alpha})
        done += 1
        yield Progress(done, total, f"{kind}: best {r.best_name}, p̂ = {r.p_hat:.4f}")
    def share(key):
        return float(np.mean([row[key] for row in fp_rows])) if fp_rows else None
    report["false_positives"] = {"rows": fp_rows, "cases": len(fp_rows), "rejected_fraction": share("rejected"),
                                 "rejected_fraction_gaussian": share("rejected_gaussian")}
    if fp_rows:
        yield Metrics({"false_positives_rejected": report["false_positives"]["rejected_fraction"]})

    # speed: one subtomogram against 1000 templates (speed_templates of them, scaled to 1 000)
    gen = tester.gen
    k = opts.speed_templates
    many, _ = generate(gen, k, seed=opts.seed + 3, device=device)
    t0 = time.perf_counter()
    tester.scorer(known_sub[0], mask, transfer(known_df[0])).score(many)
    t_score = (time.perf_counter() - t0) * 1000 / k
    tester._null.clear()
    t0 = time.perf_counter()
    tester.test(known_sub[0], mask, truth=0, transfer=transfer(known_df[0]))
    t_test = time.perf_counter() - t0
    report["speed"] = {"score_1000_templates_s": t_score, "full_test_one_subtomogram_s": t_test,
                       "null_set": opts.n_pseudo + len(maps) - 1, "templates_timed": k}
    t0 = time.perf_counter()
    with inference_precision(device, tester.cfg.precision):  # as the tester draws its null sets
        generate(gen, k, seed=opts.seed + 4, device=device)
    report["speed"]["generated_structures_per_s"] = k / (time.perf_counter() - t0)
    report["speed"]["precision"] = tester.cfg.precision
    done += 2
    yield Progress(done, total, f"1000 templates scored in {t_score:.1f} s")

    # calibration under the null: P holds a structure drawn as the null set's are (the prior's N(0, I), or a
    # neighbour of C*'s codes), so p̂ of C* against its null set should be uniform; with a reference, so should p
    m = opts.calibration_cases
    if not m:
        yield Result(report)
        return
    p_hats, rejected = yield from _offset(h0_cases(opts.seed, m, "calibration case"), done, total)
    calib = {"cases": m, "null_per_case": opts.calibration_pseudo, "rotations": opts.calibration_rotations,
             **_ks_fields(p_hats, "p_hat"), "rejected_codes_per_case": rejected, "p_hats": p_hats.tolist()}
    if tester.calibration is not None:
        p_cal = tester.calibration.p_values(p_hats)
        calib.update(_ks_fields(p_cal, "p_cal"), p_cal=p_cal.tolist())
    report["calibration"] = calib
    yield Log(f"calibration: KS p = {calib['ks_p']:.3f}" + (f" (p̂), {calib['ks_p_cal']:.3g} (calibrated p)"
                                                          if tester.calibration is not None else ""))
    yield Result(report)


def _ks_fields(p: np.ndarray, name: str) -> dict[str, float]:
    """The calibration figures of ``p`` (:func:`~.calibration.ks_summary`) under the report's keys: p̂'s keep the names
    of earlier reports (``ks_p``, ``mean_p_hat``, ``fraction_p_le_0.05``), a calibrated p's carry ``_p_cal``."""
    k = ks_summary(p)
    if name == "p_hat":
        return {"ks_statistic": k["ks_statistic"], "ks_p": k["ks_p"], "mean_p_hat": k["mean"],
                "fraction_p_le_0.05": k["fraction_le_0.05"]}
    return {"ks_statistic_p_cal": k["ks_statistic"], "ks_p_cal": k["ks_p"], "mean_p_cal": k["mean"],
            "fraction_p_cal_le_0.05": k["fraction_le_0.05"]}


def _offset(job: Iterator[Event], done: int, total: int) -> Generator[Event, None, Any]:
    """``job``'s events with its progress placed after ``done`` of the bench's ``total`` steps; returns its result."""
    result = None
    for ev in job:
        if isinstance(ev, Progress):
            yield Progress(done + ev.step, total, ev.message)
        elif isinstance(ev, Result):
            result = ev.value
        else:
            yield ev
    return result

