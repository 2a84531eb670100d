"""The hypothesis test: Monte-Carlo p-value of the best known template among GAN pseudo-complexes.

For a subtomogram ``P`` and known templates ``C_1 … C_K``: every template is scored
(:mod:`cryoforge.hyptest.score`), ``C_I`` is the argmax, and its score is compared with the scores of
``B`` null templates — ``n_pseudo`` pseudo-complexes ``G(z)`` drawn outside ``C_I``'s rejection region — from the GAN prior (the paper) or,
with ``null_spread``, around ``C_I``'s own codes (the neighbour null; :mod:`cryoforge.hyptest.null`) — plus the other
known templates (the paper: 985 + 15 known):

    p̂ = (1/B) · Σ_b 1[c(P, T(C_I)) ≤ c(P, T(C₀ᵇ))]

Beside it, the Gaussian tail that matched-filter pickers use (Rickgauer et al. 2017; pytom-match-pick):
``z = (c_I − mean_null) / σ_null`` and ``p = ½·erfc(z / √2)`` — it assumes a normal null, p̂ does not.
Decisions: Cond.1 ``C_I`` is the true complex (when known), Cond.2 ``p ≤ α`` with ``p = p̂``, or, when the tester has
a :class:`~.calibration.Calibration`, p̂'s rank among simulated H0 cases (``p_cal``); for many subtomograms the
p-values are adjusted by Benjamini–Hochberg (:func:`bh_qvalues`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..jobs import Log, Preview, Progress, Result
from ..jobs.distributed import World, gather, shard
from ..resources import inference_precision
from .config import HypTestConfig
from .null import fit_kde, neighbour_sample, rejection_sample, template_codes
from .results import DecisionRow, DecisionTable, HypothesisResult
from .score import TemplateScorer, radial_profile
from .templates import check_templates
from .wgan import generate

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

    from ..hints import ArrayLike, PathLike, Tensorish
    from ..jobs import Event
    from .calibration import Calibration
    from .train import Regressor
    from .wgan import Generator



def check_resolution(n_null: int, alpha: float) -> None:
    """p̂ moves in steps of 1/B: refuse a null set too small to ever reach ``alpha``."""
    if not 0 < alpha < 1:
        raise ValueError(f"the threshold α must be in (0, 1); got {alpha}")
    need = math.ceil(1 / alpha - 1e-9)
    if n_null < need:
        raise ValueError(f"p̂ moves in steps of 1/B, so with B = {n_null} null templates it cannot reach α = {alpha}; "
                         f"use B ≥ {need} (raise the number of pseudo-complexes)")


def p_value(c_best: float, null: Tensorish) -> float:
    """``p̂ = (1/B) Σ 1[c_best ≤ c_b]``."""
    null = np.asarray(null, np.float64)
    if null.size == 0:
        raise ValueError("the null set is empty")
    return float((null >= c_best).mean())


def p_text(p_hat: float, B: int) -> str:
    """``p̂`` as a user reads it: ``"< 1/(B+1)"`` when no null score reached the best one (p̂ = 0 only says the
    null set was too small to tell), else its value."""
    if p_hat <= 0:
        return f"< {1 / (B + 1):.2g}"
    return f"= {p_hat:.4g}"


def gaussian_tail(c_best: float, null: Tensorish) -> tuple[float, float]:
    """``(z, ½ erfc(z/√2))`` with the null's mean and standard deviation."""
    null = np.asarray(null, np.float64)
    z = (c_best - null.mean()) / max(null.std(ddof=1), 1e-12)
    return float(z), float(0.5 * math.erfc(z / math.sqrt(2)))


def bh_qvalues(p: ArrayLike) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values), in the input order."""
    p = np.asarray(p, np.float64)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must be a 1-D array in [0, 1]")
    m = len(p)
    order = np.argsort(p)
    q = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(q[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(q, 0, 1)
    return out


class HypothesisTester:
    """Known templates + a trained generator/regressor → tests of subtomograms (null sets cached per ``C_I``)."""

    def __init__(self, templates: ArrayLike, names: Sequence[str], generator: Generator, regressor: Regressor,
                 cfg: HypTestConfig | None = None, device: str = "cpu", calibration: Calibration | None = None) -> None:
        self.templates = torch.from_numpy(check_templates(templates))
        self.names = list(names)
        if len(self.names) != len(self.templates):
            raise ValueError(f"{len(self.templates)} templates but {len(self.names)} names")
        self.cfg, self.device = cfg or HypTestConfig(), device
        if generator.cfg.box != self.templates.shape[-1]:
            raise ValueError(f"the GAN makes {generator.cfg.box}³ pseudo-complexes but the templates are "
                             f"{self.templates.shape[-1]}³; use a GAN trained at the templates' box size")
        check_resolution(self.cfg.n_pseudo + len(self.templates) - 1, self.cfg.alpha)
        self.gen, self.reg = generator.to(device).eval(), regressor.to(device).eval()
        self.profile = radial_profile(self.templates)  # every template, known or pseudo, is scored at this spectrum
        self._null: dict[int, dict] = {}
        self.calibration: Calibration | None = None
        self.calibrate(calibration)

    def calibrate(self, calibration: Calibration | None) -> None:
        """Refer every later p̂ to ``calibration``'s H0 cases (None: use p̂ itself); refused when it was made for
        another null or is too small for α."""
        if calibration is not None:
            calibration.check(self.cfg.null_spread, self.cfg.prior, self.cfg.alpha, int(self.templates.shape[-1]))
        self.calibration = calibration

    def scorer(self, subtomo: Tensorish, mask: Tensorish | None = None, transfer: Tensorish | None = None,
               **overrides: Any) -> TemplateScorer:
        """A :class:`TemplateScorer` for ``subtomo`` with this tester's score settings (``overrides`` replace some)
        and its spectral profile, so known templates and pseudo-complexes are scored alike; ``transfer``: the
        subtomogram's radial |CTF|·MTF (:func:`cryoforge.hyptest.score.radial_transfer`), or None."""
        return TemplateScorer(subtomo, mask, replace(self.cfg.score, **overrides), self.device, self.profile,
                              transfer)

    @classmethod
    def from_checkpoint(cls, path: PathLike, templates: ArrayLike, names: Sequence[str],
                        cfg: HypTestConfig | None = None, device: str = "cpu",
                        calibration: Calibration | None = None) -> HypothesisTester:
        from .train import load_regressor

        gen, reg, _ = load_regressor(path, device)
        return cls(templates, names, gen, reg, cfg, device, calibration)

    def null_set(self, i: int) -> dict:
        """Codes, volumes and bookkeeping of the pseudo-complexes outside ``C_i``'s rejection region (cached)."""
        if i not in self._null:
            c = self.cfg
            with inference_precision(self.device, c.precision):
                codes = template_codes(self.reg, self.templates[i], c.kde_rotations, c.seed + 7919 * (i + 1))
            kde = fit_kde(codes)
            seed = c.seed + 104729 * (i + 1)
            ns = (rejection_sample(kde, c.n_pseudo, self.gen.cfg.zdim, c.prior, seed) if c.null_spread is None
                  else neighbour_sample(codes, kde, c.n_pseudo, c.null_spread, c.prior, seed))
            with inference_precision(self.device, c.precision):
                vols, _ = generate(self.gen, len(ns.z), z=ns.z, device=self.device)
            self._null[i] = {"z": ns.z, "volumes": vols, "drawn": ns.drawn, "rejected": ns.rejected,
                             "bandwidth": float(kde.bandwidth)}
        return self._null[i]

    def null_kind(self) -> str:
        """How the null set is drawn, in words: the paper's prior or the neighbour null with its spread."""
        spread = self.cfg.null_spread
        return "from the GAN prior" if spread is None else f"neighbours at spread τ = {spread:g}"

    def pseudo_volume(self, i: int, b: int) -> np.ndarray:
        return self.null_set(i)["volumes"][b].numpy()

    def test_job(self, subtomo: Tensorish, mask: Tensorish | None = None, truth: int | None = None, chunk: int = 128,
                 transfer: Tensorish | None = None) -> Iterator[Event]:
        """Job: test one subtomogram (``transfer``: its radial |CTF|·MTF, or None); ``Result`` is a
        :class:`~.results.HypothesisResult`."""
        scorer = self.scorer(subtomo, mask, transfer)
        total = 2 + math.ceil(self.cfg.n_pseudo / chunk)
        yield Progress(0, total, "scoring the known templates")
        fits = scorer.score(self.templates)
        known = fits.scores.numpy()
        best = int(known.argmax())
        yield Preview("known scores", np.stack([np.arange(len(known)), known]).astype(np.float32), "curve",
                      {"names": self.names})
        yield Progress(1, total, f"null set for {self.names[best]} (KDE, rejection sampling, generation)")
        null = self.null_set(best)
        yield Log(f"{self.names[best]}: null {self.null_kind()}, KDE bandwidth {null['bandwidth']:.3g}; {null['rejected']} of "
                  f"{null['drawn']} codes fell in the rejection region")
        pseudo = []
        vols = null["volumes"]
        for b0 in range(0, len(vols), chunk):
            pseudo.append(scorer.score(vols[b0:b0 + chunk]).scores.numpy())
            so_far = np.concatenate(pseudo)
            yield Preview("pseudo scores", np.stack([np.arange(len(so_far)), so_far]).astype(np.float32), "curve",
                          {"known": known.tolist(), "names": self.names})
            yield Progress(2 + b0 // chunk, total, f"scored {len(so_far)}/{len(vols)} pseudo-complexes")
        out = self.decide(known, np.concatenate(pseudo), best, truth)
        out.known_rotations, out.known_shifts = fits.rotations.tolist(), fits.shifts.tolist()
        yield Result(out)

    def decide(self, known: ArrayLike, pseudo: ArrayLike, best: int, truth: int | None = None) -> HypothesisResult:
        """The decisions for a subtomogram from the scores of the ``known`` templates and of the pseudo-complexes of
        ``C_best``'s null set (:meth:`null_set`), scored by one :meth:`scorer`."""
        known, pseudo, null = np.asarray(known, np.float64), np.asarray(pseudo, np.float64), self.null_set(best)
        others = np.delete(known, best)
        null_scores = np.concatenate([pseudo, others])
        c_best = float(known[best])
        p_hat = p_value(c_best, null_scores)
        p_cal = None if self.calibration is None else self.calibration.p(p_hat)
        z, p_gauss = gaussian_tail(c_best, null_scores)
        order = np.argsort(-known)
        out = HypothesisResult(
            best=best, best_name=self.names[best], score=c_best, p_hat=p_hat, p_gauss=p_gauss, z_sigma=z,
            B=len(null_scores), n_pseudo=len(pseudo), known_scores=known.tolist(), pseudo_scores=pseudo.tolist(),
            known_rank={self.names[k]: int(r + 1) for r, k in enumerate(order)},
            known_p=[p_value(float(s), null_scores) for s in known], rejected=null["rejected"], drawn=null["drawn"],
            bandwidth=null["bandwidth"], alpha=self.cfg.alpha, cond2=(p_hat if p_cal is None else p_cal) <= self.cfg.alpha,
            p_cal=p_cal)
        if truth is not None:
            out.truth = int(truth)
            out.truth_name = self.names[truth] if 0 <= truth < len(self.names) else None
            out.cond1 = best == truth
            out.success = bool(out.cond1 and out.cond2)
        return out

    def test(self, subtomo: Tensorish, mask: Tensorish | None = None, truth: int | None = None,
             transfer: Tensorish | None = None) -> HypothesisResult:
        from ..jobs import drive

        return drive(self.test_job(subtomo, mask, truth, transfer=transfer))

    def dataset_job(self, subtomos: Tensorish, mask: Tensorish | None = None, truths: Sequence[int] | None = None,
                    transfers: Sequence[Tensorish] | None = None, world: World | None = None) -> Iterator[Event]:
        """Job: test every subtomogram ``(N, n, n, n)`` (``transfers``: one radial |CTF|·MTF each, or None);
        ``Result`` is a :class:`~.results.DecisionTable` (BH q-values). ``world``: one of several processes
        (``torchrun``): each tests its block of subtomograms, rank 0 gathers them and returns the table of all (the
        others return None); every test is seeded by its template, so the table is one process's."""
        world = world or World()
        n = len(subtomos)
        mine = shard(n, world)
        yield Log(f"null set: {self.cfg.n_pseudo} pseudo-complexes {self.null_kind()} per best template, plus the "
                  f"other known templates")
        results: list[HypothesisResult] = []
        for j in mine:
            res = None
            for ev in self.test_job(np.asarray(subtomos[j], np.float32), mask,
                                    None if truths is None else int(truths[j]),
                                    transfer=None if transfers is None else transfers[j]):
                if isinstance(ev, Result):
                    res = ev.value
                elif isinstance(ev, Preview):
                    yield ev
            assert res is not None
            results.append(res)
            k = j + 1 - mine.start
            yield Progress(k, len(mine), f"tested {k}/{len(mine)} subtomograms"
                           + (f" (rank {world.rank} of {world.size})" if world.size > 1 else ""))
        blocks = gather(results, world)
        if blocks is None:
            yield Result(None)
            return
        yield Result(decision_table([r for b in blocks for r in b], self.cfg.alpha))


def decision_table(results: list[HypothesisResult], alpha: float) -> DecisionTable:
    """Per-subtomogram rows with BH q-values (of the calibrated p-values where the tests have them); ``significant``
    means q ≤ α."""
    q = bh_qvalues([r.p for r in results]) if results else np.zeros(0)
    rows = [DecisionRow(j, r.best_name, r.score, r.p_hat, float(qj), r.p_gauss, r.z_sigma, r.B, bool(qj <= alpha),
                        r.truth_name, r.cond1, r.cond2 if r.truth is not None else None, r.p_cal)
            for j, (r, qj) in enumerate(zip(results, q, strict=True))]
    return DecisionTable(rows, results, alpha, truth_known=any(r.truth is not None for r in results))
