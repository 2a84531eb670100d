"""What the hypothesis test returns: one subtomogram's :class:`HypothesisResult`, and the :class:`DecisionTable` of
a set of subtomograms (Benjamini–Hochberg q-values, written as CSV or STAR)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class HypothesisResult:
    """The test of one subtomogram ``P``: the best known template ``C_I`` (index, name, score ``c``), its Monte-Carlo
    ``p_hat`` among ``B`` null scores (``n_pseudo`` pseudo-complexes plus the other known templates), the Gaussian
    tail beside it (``p_gauss``, ``z_sigma``), every known template's score, rank and p̂, the pseudo-complexes'
    scores, the rejection sampling's bookkeeping (``rejected`` of ``drawn`` codes, KDE ``bandwidth``) and the
    decisions: Cond.2 ``p ≤ alpha`` — ``p_cal``, p̂ referred to simulated H0 cases (:mod:`.calibration`), when the
    tester has a calibration, else ``p_hat``; with the truth known, Cond.1 (the best is the true complex) and
    ``success`` (both)."""

    best: int
    best_name: str
    score: float
    p_hat: float
    p_gauss: float
    z_sigma: float
    B: int
    n_pseudo: int
    known_scores: list[float]
    pseudo_scores: list[float]
    known_rank: dict[str, int]
    known_p: list[float]
    rejected: int
    drawn: int
    bandwidth: float
    alpha: float
    cond2: bool
    truth: int | None = None
    truth_name: str | None = None
    cond1: bool | None = None
    success: bool | None = None
    known_rotations: list | None = None  # (K, 3, 3) each known template's pose in P: P ≈ T(R, t) C
    known_shifts: list | None = None  # (K, 3) voxels, x y z
    p_cal: float | None = None  # calibrated p-value (cryoforge.hyptest.calibration), when the tester has a calibration

    @property
    def p(self) -> float:
        """The p-value the decisions use: ``p_cal`` when there is one, else ``p_hat``."""
        return self.p_hat if self.p_cal is None else self.p_cal

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the truth's fields only when the truth is known)."""
        out = asdict(self)
        if self.truth is None:
            for key in ("truth", "truth_name", "cond1", "success"):
                out.pop(key)
        if self.p_cal is None:
            out.pop("p_cal")
        return out


@dataclass
class DecisionRow:
    """One subtomogram of a :class:`DecisionTable`: ``q`` from ``p_cal`` when the test was calibrated, else from
    ``p_hat``; ``significant`` means ``q ≤ α``."""

    index: int
    best: str
    score: float
    p_hat: float
    q: float
    p_gauss: float
    z_sigma: float
    B: int
    significant: bool
    truth: str | None = None
    cond1: bool | None = None
    cond2: bool | None = None
    p_cal: float | None = None


@dataclass
class DecisionTable:
    """Tests of many subtomograms: a row each (with its BH q-value), the full results, and α."""

    rows: list[DecisionRow]
    results: list[HypothesisResult]
    alpha: float
    truth_known: bool = field(default=False)

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts (the truth's columns only when the truth is known)."""
        drop = set() if self.truth_known else {"truth", "cond1", "cond2"}
        if all(r.p_cal is None for r in self.rows):
            drop.add("p_cal")
        return [{k: v for k, v in asdict(r).items() if k not in drop} for r in self.rows]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: rows, results and α."""
        return {"rows": self.records(), "results": [r.to_json() for r in self.results], "alpha": self.alpha}

    def write(self, path: str | Path) -> Path:
        """The rows as CSV (``.csv``) or a STAR data block (``.star``), atomically."""
        import pandas as pd

        from ..io.atomic import atomic_path

        path = Path(path)
        if path.suffix not in (".csv", ".star"):
            raise ValueError(f"{path.name}: write the table as .csv or .star")
        df = pd.DataFrame(self.records())
        with atomic_path(path) as tmp:
            if path.suffix == ".star":
                import starfile

                starfile.write({"hypothesis_tests": df}, tmp, overwrite=True)
            else:
                df.to_csv(tmp, index=False)
        return path
