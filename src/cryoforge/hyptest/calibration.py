"""Calibrated p-values: the test's Monte-Carlo p̂ referred to its own distribution under a simulated H0.

The test's p̂ is exact only when ``C_I`` is exchangeable with the null set's draws. The neighbour null
(:mod:`cryoforge.hyptest.null`) breaks that by design — ``C_I`` is the centre of its neighbours — and its p̂ was
anti-conservative with the shipped 32³ model (docs/benchmarks.md). Whatever the null, p̂ can be calibrated by
simulation (prepivoting: Beran 1987; the double bootstrap's adjusted p-value, Davison & Hinkley 1997 §4.5):

1. ``M`` H0 cases are simulated as the bench's calibration makes them. A tested template ``C*`` is a GAN sample; the
   structure in the subtomogram ``P`` is drawn as the null set's pseudo-complexes are (the prior, or a neighbour of
   ``C*``'s codes). ``P`` is acquired as the data are (SNR, tilts, CTF), and p̂ of ``C*`` against its own null set is
   recorded (:func:`cryoforge.hyptest.h0.h0_job`).
2. A subtomogram's calibrated p-value is its p̂'s rank among them, ``p = (1 + #{h : p̂_h ≤ p̂}) / (M + 1)``
   (:meth:`Calibration.p`). That is a Monte-Carlo test of the statistic p̂ (ties count against the subtomogram): if
   ``P``'s p̂ is exchangeable with the simulated ones under H0, ``Pr(p ≤ k/(M+1)) ≤ k/(M+1)``.

So p is calibrated *for the simulated H0* — GAN structures, the stated acquisition — not for every real complex, and
its smallest value is ``1/(M + 1)``: M must be at least ``1/α − 1``. Checked on H0 cases of other seeds by
``cryoforge bench hyptest -o reference_cases=M`` (its KS of p against U(0, 1)).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from typing import Any

    from ..hints import PathLike

VERSION = 1


@dataclass
class Calibration:
    """The p̂ of ``M`` simulated H0 cases and how they were made (``settings``: the null, the acquisition, the sizes)."""

    p_hats: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = np.sort(np.asarray(self.p_hats, np.float64).ravel())
        if p.size == 0 or np.any((p < 0) | (p > 1)) or not np.all(np.isfinite(p)):
            raise ValueError("a calibration needs at least one H0 p̂, every one in [0, 1]")
        self.p_hats = p

    @property
    def cases(self) -> int:
        return int(self.p_hats.size)

    @property
    def smallest(self) -> float:
        """The smallest calibrated p-value it can give, ``1 / (M + 1)``."""
        return 1.0 / (self.cases + 1)

    def p(self, p_hat: float) -> float:
        """The calibrated p-value of ``p_hat``: ``(1 + #{h : p̂_h ≤ p̂}) / (M + 1)``."""
        return float(self.p_values(np.asarray([p_hat]))[0])

    def p_values(self, p_hats: Any) -> np.ndarray:
        """:meth:`p` of every one of ``p_hats`` (the H0 cases of a check, a bench's subtomograms)."""
        at_most = np.searchsorted(self.p_hats, np.asarray(p_hats, np.float64) + 1e-12, side="right")
        return (1 + at_most) / (self.cases + 1)

    def p_hat_level(self, alpha: float) -> float:
        """The p̂ a subtomogram must stay under for ``p ≤ alpha``: ``p ≤ α`` ⇔ ``#{h ≤ p̂} ≤ k = ⌊α(M + 1)⌋ − 1`` ⇔
        ``p̂ < h_(k+1)``, the (k+1)-th smallest H0 p̂ (1 when ``k ≥ M``; 0, nothing significant, when ``k < 0`` or
        that many H0 cases had p̂ = 0)."""
        k = math.floor(alpha * (self.cases + 1) + 1e-9) - 1
        if k < 0:
            return 0.0
        return 1.0 if k >= self.cases else float(self.p_hats[k])

    def check(self, null_spread: float | None, prior: float, alpha: float, box: int | None = None) -> None:
        """Refuse a calibration made for another null (its spread, its prior π or box size) or too small for ``alpha``."""
        s = self.settings
        if "null_spread" in s and s["null_spread"] != null_spread:
            raise ValueError(f"this calibration was made with the {_null_words(s['null_spread'])}, the test uses the "
                             f"{_null_words(null_spread)}; calibrate again with the test's null")
        if "prior" in s and not math.isclose(float(s["prior"]), prior):
            raise ValueError(f"this calibration was made with the prior π = {s['prior']:g}, the test uses {prior:g}")
        if box is not None and s.get("box") not in (None, box):
            raise ValueError(f"this calibration was made on {s['box']}³ templates, the test's are {box}³")
        if self.smallest > alpha:
            raise ValueError(f"with {self.cases} H0 cases the calibrated p-value is at least 1/{self.cases + 1} "
                             f"= {self.smallest:.3g} > α = {alpha:g}; use at least {math.ceil(1 / alpha - 1)} cases")

    def to_json(self) -> dict[str, Any]:
        return {"kind": "cryoforge-hyptest-calibration", "version": VERSION, "settings": self.settings,
                "p_hats": self.p_hats.tolist()}

    def write(self, path: PathLike) -> Path:
        """JSON, atomically."""
        from ..io.atomic import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_json(), indent=1))
        return path

    @classmethod
    def read(cls, path: PathLike) -> Calibration:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a readable calibration ({e})") from e
        if not isinstance(d, dict) or d.get("kind") != "cryoforge-hyptest-calibration":
            raise ValueError(f"{path}: not a hypothesis-test calibration (make one with `cryoforge hyptest calibrate`)")
        return cls(np.asarray(d["p_hats"], np.float64), dict(d.get("settings", {})))


def _null_words(spread: float | None) -> str:
    return "paper's prior null" if spread is None else f"neighbour null at τ = {spread:g}"


def ks_summary(p: Any) -> dict[str, float]:
    """KS test of ``p`` against U(0, 1), its mean and the fraction at ≤ 0.05 (the bench's calibration figures)."""
    from scipy.stats import kstest

    p = np.asarray(p, np.float64)
    ks = kstest(p, "uniform")
    return {"ks_statistic": float(ks.statistic), "ks_p": float(ks.pvalue), "mean": float(p.mean()),
            "fraction_le_0.05": float(np.mean(p <= 0.05))}

