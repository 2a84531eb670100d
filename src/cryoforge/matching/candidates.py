"""The candidates of a finished matching folder, with every statistic (``match extract``, the template-matching dock).

Peaks of the score map at least ``min_distance`` apart — or, when the run matched decoys, the spots where the
template beats every decoy (target–decoy competition, :func:`cryoforge.matching.peaks.compete`) — each with its
score, the Gaussian-null false alarms and q-value (Rickgauer et al. 2017; the field's baseline) and, with decoys, the
target–decoy q-value. Positions and poses as RELION 5 particles (:class:`cryoforge.io.tomo_particles.TomoParticles`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..conventions import euler_zyz_to_matrix
from ..io.mrc import read_mrc
from ..io.tomo_particles import TomoParticles
from .peaks import (
    compete,
    decoy_q_values,
    find_peaks,
    gaussian_null_false_alarms,
    gaussian_null_q_values,
    gaussian_null_threshold,
)

if TYPE_CHECKING:
    from ..hints import PathLike


@dataclass
class MatchCandidates:
    """Candidates of one matching folder: ``particles`` (positions, poses and the table of statistics: ``rlnLCCmax``,
    ``cfGaussianNullFalseAlarms``, ``cfAboveGaussianNull``, ``cfGaussianNullQValue`` and with decoys ``cfDecoyFalse``,
    ``cfQValue``), the voxel size (Å), the Gaussian-null threshold, which q-value column ``--fdr`` uses, how many decoy
    maps, the minimum distance (Å) and the FDR level applied (None: none)."""

    particles: TomoParticles
    voxel_size: float
    threshold: float
    q_name: str
    n_decoys: int
    min_distance: float
    fdr: float | None
    false_alarms: float
    sigma: float
    trials: float

    @property
    def q_values(self) -> np.ndarray:
        return self.particles.table[self.q_name].to_numpy()

    def summary(self) -> str:
        """One line: how many, how far apart, at which q, and how many pass the Gaussian-null threshold."""
        n = len(self.particles.table)
        above = int(self.particles.table["cfAboveGaussianNull"].sum())
        return (f"{n} candidates at least {self.min_distance:g} Å apart"
                + (f" with q ≤ {self.fdr:g} ({self.q_name}, {self.n_decoys} decoy map(s))" if self.fdr is not None
                   else "")
                + f"; {above} above the Gaussian-null threshold {self.threshold:.4f} ({self.false_alarms:g} false "
                f"alarm(s) expected per tomogram, σ {self.sigma:.4f} over {self.trials:.3g} placements)")


def match_candidates(folder: PathLike, n: int = 100, min_distance: float | None = None, edge: int | None = None,
                     false_alarms: float = 1.0, above_threshold: bool = False,
                     fdr: float | None = None) -> MatchCandidates:
    """The candidates of the finished matching ``folder`` (see the module): at most ``n``, ``min_distance`` Å apart
    (default the mask's diameter), none within ``edge`` voxels of the border (default half the template box);
    ``above_threshold`` keeps those above the Gaussian-null threshold for ``false_alarms`` per tomogram; ``fdr`` those
    with q ≤ it. A clear error when nothing is left."""
    folder = Path(folder)
    if not (folder / "job.json").is_file():
        raise ValueError(f"{folder}: not a finished template-matching folder (no job.json; run `cryoforge match` "
                         "first, or let it finish)")
    job = json.loads((folder / "job.json").read_text())
    scores, _ = read_mrc(folder / "scores.mrc", layout="volume")
    angles, _ = read_mrc(folder / "angles.mrc", layout="volume")
    vs = float(job["voxel_size_A"])
    trials = float(job["searched_voxels"]) * float(job["n_rotations"])
    sigma = float(job["score_sigma"])
    threshold = gaussian_null_threshold(sigma, trials, false_alarms)
    edge = job["template_box"] // 2 if edge is None else edge
    if min_distance is None:  # the mask's diameter (a sphere of 0.4 of the box unless the run said otherwise)
        radius = job["settings"].get("mask_radius") or 0.4 * job["template_box"] * vs
        min_distance = 2 * float(radius)
    decoys = sorted(folder.glob("decoy*/job.json"))
    decoy_z = np.zeros(0)
    if decoys:  # the target's candidates are the spots where it beats every decoy (target–decoy competition)
        maps = [(read_mrc(m.parent / "scores.mrc", layout="volume")[0], float(json.loads(m.read_text())["score_sigma"]))
                for m in decoys]
        cand, decoy_z = compete(scores, angles, sigma, maps, n, min_distance / vs, edge)
        if above_threshold:
            cand = cand.take(cand.scores >= threshold)
    else:
        cand = find_peaks(scores, angles, n, min_distance / vs, edge, threshold if above_threshold else None)
    rot = np.asarray(job["rotations_zyz_relion_deg"], np.float64)
    mats = euler_zyz_to_matrix(rot[cand.rotation_index, 0], rot[cand.rotation_index, 1],
                               rot[cand.rotation_index, 2]).numpy() if len(cand.scores) else np.zeros((0, 3, 3))
    fa = gaussian_null_false_alarms(cand.scores, sigma, trials)
    columns = {"rlnLCCmax": cand.scores, "cfGaussianNullFalseAlarms": fa,
               "cfAboveGaussianNull": (cand.scores >= threshold).astype(int),
               "cfGaussianNullQValue": gaussian_null_q_values(fa)}
    if decoys:
        q, false = decoy_q_values(cand.scores / sigma, decoy_z, len(decoys))
        columns.update({"cfDecoyFalse": false, "cfQValue": q})
    table = pd.DataFrame(columns)
    q_name = "cfQValue" if decoys else "cfGaussianNullQValue"
    if fdr is not None:
        keep = table[q_name].to_numpy() <= fdr
        cand = cand.take(keep)
        table, mats = table[keep].reset_index(drop=True), mats[keep]
    if not len(cand.scores):
        raise ValueError(f"{folder}: no candidate is left" + (f" at q ≤ {fdr:g}" if fdr is not None else "")
                         + (" (every spot is scored higher by a decoy)" if decoys else "") + "; nothing written")
    parts = TomoParticles.from_voxels(cand.xyz, vs, tuple(job["tomogram_shape_zyx"]), mats,
                                      job.get("tomogram_name", "tomogram"), table, str(folder))
    return MatchCandidates(parts, vs, threshold, q_name, len(decoys), float(min_distance), fdr, false_alarms, sigma,
                           trials)
