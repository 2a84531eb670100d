"""Seed 000's hypothesis test on every candidate of a template-matching run, and the false-discovery control over them.

A whole-tomogram matcher scores one template; its false hits in a crowded tomogram lie on *other complexes*, which
a noise model (the Gaussian null of Rickgauer et al.) cannot count. Each candidate's subtomogram is therefore tested
as seed 000 tests a subtomogram (:class:`cryoforge.hyptest.montecarlo.HypothesisTester`): every known template is
scored in it, ``C_I`` is the best, and ``C_I``'s score is ranked among the 3D-WGAN pseudo-complexes outside
``C_I``'s rejection region and the other known templates (p̂). For the question a template-matching user asks — *is
this the target?* — the candidate's p-value is

    p = p̂   when C_I is one of the ``targets`` (Cond.1: the target explains the candidate best),
    p = 1   otherwise (another known complex explains it better: no evidence for the target),

and Benjamini–Hochberg over all the candidates gives the q-values (``--fdr Q`` keeps q ≤ Q). A candidate whose best
template is not a target is not scored against the pseudo-complexes (its p is 1 whatever they score), which saves
most of the time on false hits.

Subtomograms are cut from the tomogram at the templates' field of view and Fourier-binned to their grid
(:func:`cryoforge.hyptest.templates.bin_to_templates`); the missing wedge and the CTF·MTF of the matching run
(its ``job.json``: tilt range, defocus, optics, phase flipping) weight the scoring as in the hypothesis test.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .jobs import Log, Progress, Result

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator, Sequence

    import torch

    from .hints import ArrayLike, Tensorish
    from .hyptest.montecarlo import HypothesisTester
    from .jobs import Event
    from .matching.candidates import MatchCandidates

# the STAR columns this module adds to a candidate list
COLUMNS = ("cfKnownBest", "cfKnownScore", "cfTargetScore", "cfPHat", "cfCond1", "cfCond2", "cfTestPValue",
           "cfTestQValue")


@dataclass
class CandidateTests:
    """The test of every candidate: its best known template and score, the best target template's score, p̂ (NaN
    where ``C_I`` is not a target and the pseudo-complexes were not scored), Cond.1 (``C_I`` is a target), Cond.2
    (``p̂ ≤ alpha``), the p-value of *this is the target* (p̂ under Cond.1, else 1), the Benjamini–Hochberg q-values,
    the pseudo-complex scores of each tested candidate (for its histogram; None where untested), the null-set size
    ``B`` and the seconds per candidate."""

    names: list[str]
    targets: list[str]
    best: list[str]
    score: np.ndarray
    target_score: np.ndarray
    p_hat: np.ndarray
    cond1: np.ndarray
    cond2: np.ndarray
    p: np.ndarray
    q: np.ndarray
    alpha: float
    B: int
    pseudo_scores: list[list[float] | None] = field(default_factory=list)
    known_scores: list[list[float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def columns(self) -> pd.DataFrame:
        """The STAR columns (:data:`COLUMNS`), one row per candidate."""
        values = (self.best, self.score, self.target_score, self.p_hat, self.cond1.astype(int), self.cond2.astype(int),
                  self.p, self.q)
        return pd.DataFrame(dict(zip(COLUMNS, values, strict=True)))

    def summary(self, fdr: float | None = None) -> str:
        n = len(self.p)
        kept = "" if fdr is None else f"; {int((self.q <= fdr).sum())} with q ≤ {fdr:g}"
        return (f"tested {n} candidates against {len(self.names)} known templates and {self.B} null templates: "
                f"{int(self.cond1.sum())} best explained by {' or '.join(self.targets)} (Cond.1), "
                f"{int((self.cond1 & self.cond2).sum())} of them with p̂ ≤ {self.alpha:g}{kept}")


# SO(3) grid of the candidates' scoring (hypothesis tests of single subtomograms use ScoreConfig's 4 000). On the 19
# candidates of bench tm's SNR-0.05 tomogram (seed 4), 8 000 rotations raised the true ribosomes' mean best score
# from 0.235 to 0.281 and let the target explain all 13 of them (12 with 4 000: one lost to a phantom, 0.106 against
# its 0.099, that scores 0.33 with the finer grid); the top pseudo-complex scores stayed at 0.12–0.13. Over bench
# tm's ten tomograms: recall 66 and 67 of 69 (was 66 and 66), realised FDR ≤ 0.025, 4.2–6.9 s per candidate (was
# 3.7–6.6 s); docs/benchmarks.md.
CANDIDATE_ROTATIONS = 8000


def candidate_tester(known: str | None = None, model: str | None = None, n_pseudo: int | None = None,
                     alpha: float | None = None, seed: int = 0, device: str = "cpu",
                     rotations: int = CANDIDATE_ROTATIONS) -> tuple[HypothesisTester, float]:
    """The hypothesis tester for matching candidates and its templates' voxel size (Å): the known set ``known``
    (default the shipped one), the 3D-WGAN + regressor ``model`` (default shipped), the test's defaults (scoring ranks
    4 more rotations by phase, ``ScoreConfig.centred``: with amplitudes alone 3 of 15 true ribosomes of a SNR-0.1
    crowded tomogram were explained best by another template, with them none) with ``n_pseudo``, ``alpha``, ``seed``,
    and an SO(3) grid of ``rotations`` (:data:`CANDIDATE_ROTATIONS`)."""
    from .hyptest.config import HypTestConfig, ScoreConfig
    from .hyptest.montecarlo import HypothesisTester
    from .hyptest.templates import read_template_set
    from .samples import HYPTEST_MODEL, sample_path

    d = HypTestConfig()
    cfg = HypTestConfig(n_pseudo=n_pseudo or d.n_pseudo, alpha=alpha or d.alpha, seed=seed,
                        score=ScoreConfig(n_rotations=rotations))
    maps, names, voxel_size = read_template_set(known)
    return HypothesisTester.from_checkpoint(model or sample_path(HYPTEST_MODEL), maps, names, cfg, device), voxel_size


def target_indices(names: Sequence[str], targets: Sequence[str]) -> list[int]:
    """Indices of ``targets`` among the known templates' ``names``, or a clear error naming what is there."""
    if not targets:
        raise ValueError("name the target among the known templates (--target NAME)")
    missing = [t for t in targets if t not in names]
    if missing:
        raise ValueError(f"{', '.join(missing)}: not among the known templates ({', '.join(names)}); --target names "
                         "the known template(s) that are the matched complex")
    return [list(names).index(t) for t in targets]


def candidate_subtomograms(tomogram: Tensorish, xyz: ArrayLike, voxel_size: float, template_voxel: float,
                           template_box: int, tilt_range: tuple[float, float] | None = None
                           ) -> tuple[np.ndarray, Tensorish | None]:
    """Subtomograms ``(N, box, box, box)`` at the candidates ``xyz`` ``(N, 3)`` (0-based voxels, x y z) of ``tomogram``
    ``(Z, Y, X)`` at ``voxel_size`` Å, cut at the templates' field of view and binned to their grid; and their centred
    missing-wedge mask (None without a tilt range)."""
    from .hyptest.templates import bin_to_templates
    from .sim.tomo import centred_wedge
    from .tomograms.extract import crop_subtomograms

    m = int(round(template_box * template_voxel / voxel_size))
    if m < template_box:
        raise ValueError(f"the tomogram ({voxel_size:g} Å) is coarser than the known templates ({template_voxel:g} "
                         f"Å); make templates at {voxel_size:g} Å (cryoforge hyptest templates --voxel-size)")
    xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
    boxes, _ = crop_subtomograms(tomogram, xyz[:, ::-1].copy(), m)
    mask = None if tilt_range is None else centred_wedge(m, *tilt_range).numpy()
    return bin_to_templates(boxes.numpy(), mask, voxel_size, template_voxel, template_box)


def test_candidates_job(tester: HypothesisTester, subtomos: Tensorish, targets: Sequence[str],
                        mask: Tensorish | None = None, transfer: Tensorish | None = None) -> Iterator[Event]:
    """Job: test every candidate subtomogram ``(N, n, n, n)`` (module text); ``Result`` is :class:`CandidateTests`."""
    from .hyptest.montecarlo import bh_qvalues

    tgt = target_indices(tester.names, targets)
    subtomos = np.asarray(subtomos, np.float32)
    n = len(subtomos)
    B = tester.cfg.n_pseudo + len(tester.names) - 1
    best, score, tscore, p_hat = [], np.zeros(n), np.zeros(n), np.full(n, np.nan)
    pseudo: list[list[float] | None] = []
    known_all: list[list[float]] = []
    seconds: list[float] = []
    announced: set[int] = set()
    yield Progress(0, n, f"testing {n} candidates against {len(tester.names)} known templates")
    for j in range(n):
        t0 = time.perf_counter()
        scorer = tester.scorer(subtomos[j], mask, transfer)
        known = scorer.score(tester.templates).scores.numpy().astype(np.float64)
        b = int(known.argmax())
        best.append(tester.names[b])
        score[j], tscore[j] = known[b], known[tgt].max()
        known_all.append(known.tolist())
        if b in tgt:
            if b not in announced:
                announced.add(b)
                yield Log(f"null set for {tester.names[b]}: KDE of its codes, rejection sampling, {tester.cfg.n_pseudo}"
                          " pseudo-complexes")
            res = tester.decide(known, scorer.score(tester.null_set(b)["volumes"]).scores.numpy(), b)
            p_hat[j] = res.p_hat
            pseudo.append(res.pseudo_scores)
        else:
            pseudo.append(None)
        seconds.append(time.perf_counter() - t0)
        yield Progress(j + 1, n, f"candidate {j + 1}/{n}: best {best[-1]}"
                       + ("" if math.isnan(p_hat[j]) else f", p̂ = {p_hat[j]:.4g}"))
    cond1 = np.array([b in targets for b in best], bool)
    cond2 = np.nan_to_num(p_hat, nan=1.0) <= tester.cfg.alpha
    p = np.where(cond1, np.nan_to_num(p_hat, nan=1.0), 1.0)
    q = bh_qvalues(p) if n else np.zeros(0)
    yield Result(CandidateTests(list(tester.names), list(targets), best, score, tscore, p_hat, cond1, cond2, p, q,
                                tester.cfg.alpha, B, pseudo, known_all, seconds))


def match_transfer(settings: dict[str, Any], box: int, template_voxel: float, voxel_size: float
                   ) -> torch.Tensor | None:
    """The radial transfer of a matching run's tomogram (its ``job.json`` settings) for the known templates' grid:
    signed CTF·MTF, or |CTF|·MTF when phase-flipped; None without a defocus."""
    from .hyptest.score import radial_transfer

    if settings.get("defocus") is None:
        return None
    return radial_transfer(box, template_voxel, float(settings["defocus"]), float(settings.get("voltage", 300.0)),
                           float(settings.get("cs", 2.7)), float(settings.get("amplitude_contrast", 0.07)),
                           pixel_size=voxel_size, phase_flipped=bool(settings.get("phase_flipped", False)))


def test_match_job(found: MatchCandidates, job: dict[str, Any], tomogram: Tensorish, tester: HypothesisTester,
                   template_voxel: float, targets: Sequence[str]) -> Iterator[Event]:
    """Job: test the candidates ``found`` in a matching folder (:func:`cryoforge.matching.candidates.match_candidates`,
    its ``job.json`` as ``job``) in ``tomogram``, with ``tester``'s known templates at ``template_voxel`` Å;
    ``Result`` is :class:`CandidateTests`."""
    settings = job["settings"]
    vs, tvs = float(job["voxel_size_A"]), float(template_voxel)
    box = int(tester.templates.shape[-1])
    xyz = found.particles.voxels(vs, tuple(job["tomogram_shape_zyx"]))
    tilt = settings.get("tilt_range")
    subtomos, mask = candidate_subtomograms(tomogram, xyz, vs, tvs, box, None if tilt is None else tuple(tilt))
    if settings.get("invert"):  # the matched template was inverted (dark protein): the known templates are not
        subtomos = -subtomos
    return (yield from test_candidates_job(tester, subtomos, targets, mask, match_transfer(settings, box, tvs, vs)))


def with_tests(found: MatchCandidates, tests: CandidateTests, fdr: float | None = None) -> MatchCandidates:
    """``found`` with the test's columns; its q-values (``cfTestQValue``) are the ones ``fdr`` keeps (q ≤ fdr) and
    the dock colours by. A clear error when nothing is left."""
    from dataclasses import replace

    table = pd.concat([found.particles.table.reset_index(drop=True), tests.columns()], axis=1)
    parts = replace(found.particles, table=table)
    if fdr is not None:
        keep = np.flatnonzero(tests.q <= fdr)
        if not len(keep):
            raise ValueError(f"no candidate is left at q ≤ {fdr:g} after the hypothesis test ({tests.summary()}); "
                             "nothing written")
        parts = parts.take(keep)
    return replace(found, particles=parts, q_name="cfTestQValue", fdr=fdr)


def test_extracted(args: Any, found: MatchCandidates) -> tuple[MatchCandidates, CandidateTests]:
    """``cryoforge match extract DIR --target NAME …``: the test of the candidates ``found`` with the known set
    ``args.known`` (default: the shipped one) and the 3D-WGAN + regressor ``args.model`` (default: shipped), then
    ``--fdr`` on its q-values."""
    import json
    from pathlib import Path

    from .io.mrc import read_mrc
    from .jobs import run_cli

    folder = Path(args.folder)
    job = json.loads((folder / "job.json").read_text())
    path = args.tomogram or job.get("tomogram")
    if not path or not Path(path).is_file():
        raise ValueError(f"{folder}: the tomogram it matched ({path or 'not recorded'}) is not there; pass --tomogram")
    tomogram, _ = read_mrc(path, layout="volume", mmap=True, finite=True)
    if tuple(tomogram.shape) != tuple(job["tomogram_shape_zyx"]):
        raise ValueError(f"{path}: shape {tuple(tomogram.shape)} but {folder} matched a "
                         f"{tuple(job['tomogram_shape_zyx'])} tomogram; pass the tomogram it matched (--tomogram)")
    tester, tvs = candidate_tester(args.known, args.model, args.n_pseudo, args.alpha, args.seed,
                                   args.world.device(args.device), args.test_rotations)
    target_indices(tester.names, args.target)
    tests = run_cli(test_match_job(found, job, tomogram, tester, tvs, args.target), show_metrics=False)
    return with_tests(found, tests, args.fdr), tests


def add_test_arguments(e: argparse.ArgumentParser) -> None:
    """The options of ``match extract``'s hypothesis test (:func:`test_extracted` runs it)."""
    from .cliargs import positive
    from .hyptest.config import HypTestConfig

    h = HypTestConfig()
    t = e.add_argument_group("hypothesis test of every candidate (seed 000; --fdr then uses its q-values)")
    t.add_argument("--target", nargs="+", metavar="NAME",
                   help="the known template(s) that are the matched complex: each candidate is tested against the "
                        "known set and the 3D-WGAN's pseudo-complexes; its p-value is p̂ when a target explains it "
                        "best, else 1")
    t.add_argument("--known", help="the known template set (folder of `cryoforge hyptest templates`; default the "
                                   "shipped one, 32³ at 12 Å)")
    t.add_argument("--model", help="3D-WGAN + regressor checkpoint (default the shipped one)")
    t.add_argument("--tomogram", help="the tomogram the folder matched (default the path in its job.json)")
    t.add_argument("--n-pseudo", type=positive("templates", int), default=h.n_pseudo,
                   help="pseudo-complexes in each null set (default %(default)s)")
    t.add_argument("--alpha", type=positive("α"), default=h.alpha, help="level of Cond.2, p̂ ≤ α (default %(default)s)")
    t.add_argument("--seed", type=int, default=h.seed, help="seed of the null sets (default %(default)s)")
    t.add_argument("--test-rotations", type=positive("rotations", int), default=CANDIDATE_ROTATIONS,
                   help="SO(3) grid of the candidates' scoring (default %(default)s)")
    t.add_argument("--device", default="cpu")
    e.set_defaults(test_candidates=test_extracted)
