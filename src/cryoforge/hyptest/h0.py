"""Simulated H0 cases of the hypothesis test (:mod:`cryoforge.hyptest.calibration`, step 1): the p̂ a tester gives
when the subtomogram holds a structure drawn as its null set's pseudo-complexes are. The bench's KS check and the
references of calibrated p-values (``cryoforge hyptest calibrate``) are made by :func:`h0_job`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..jobs import Progress, Result
from ..resources import inference_precision
from .montecarlo import p_value
from .null import fit_kde, neighbour_sample, rejection_sample, template_codes
from .wgan import generate

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from ..hints import Tensorish
    from ..jobs import Event
    from .montecarlo import HypothesisTester


def h0_job(tester: HypothesisTester, cases: int, seed: int,
           acquire: Callable[[torch.Tensor, int], tuple[np.ndarray, np.ndarray]],
           transfer: Callable[[float], Tensorish | None], mask: Tensorish | None, pseudo: int = 200,
           rotations: int = 1000, label: str = "H0 case") -> Iterator[Event]:
    """Job: p̂ of ``cases`` simulated H0 cases (module docstring, step 1) with ``tester``'s null design, each null set
    ``pseudo`` codes and each scoring on ``rotations`` coarse rotations. ``acquire(structures, seed)`` makes the
    subtomograms ``P`` of ``(m, n, n, n)`` GAN structures and gives their defocus (Å); ``transfer(defocus)`` is the
    radial |CTF|·MTF the templates are scored through (or None). Deterministic in ``seed``. ``Result``:
    ``(p_hats, rejected codes per case)``."""
    gen, reg, cfg = tester.gen, tester.reg, tester.cfg
    dev = tester.device
    z_p = torch.randn(cases, gen.cfg.zdim, generator=torch.Generator().manual_seed(seed + 5))
    z_c = torch.randn(cases, gen.cfg.zdim, generator=torch.Generator().manual_seed(seed + 6))
    with inference_precision(dev, cfg.precision):
        c_struct, _ = generate(gen, cases, z=z_c, device=dev)
    total = 2 * cases
    null_z, rejected = [], 0
    for j in range(cases):
        with inference_precision(dev, cfg.precision):
            codes = template_codes(reg, c_struct[j], cfg.kde_rotations, seed + 100 + j)
        kde = fit_kde(codes)
        if cfg.null_spread is None:
            ns = rejection_sample(kde, pseudo, gen.cfg.zdim, cfg.prior, seed + 10_000 + j)
            null_z.append(ns.z)
        else:  # one more neighbour: the structure in P
            ns = neighbour_sample(codes, kde, pseudo + 1, cfg.null_spread, cfg.prior, seed + 10_000 + j)
            z_p[j] = ns.z[0]
            null_z.append(ns.z[1:])
        rejected += ns.rejected
        yield Progress(j + 1, total, f"{label}s: null sets {j + 1}/{cases}")
    with inference_precision(dev, cfg.precision):
        p_struct, _ = generate(gen, cases, z=z_p, device=dev)
    subtomos, defocus = acquire(p_struct, seed + 7)
    p_hats = []
    for j in range(cases):
        with inference_precision(dev, cfg.precision):
            null_vols, _ = generate(gen, len(null_z[j]), z=null_z[j], device=dev)
        scorer = tester.scorer(subtomos[j], mask, transfer(float(defocus[j])), n_rotations=rotations)
        s = scorer.score(torch.cat([c_struct[j:j + 1], null_vols])).scores
        p_hats.append(p_value(float(s[0]), s[1:].numpy()))
        yield Progress(cases + j + 1, total, f"{label} {j + 1}/{cases}: p̂ = {p_hats[-1]:.3f}")
    yield Result((np.asarray(p_hats), rejected / max(cases, 1)))


def calibration_settings(tester: HypothesisTester, cases: int, seed: int, pseudo: int, rotations: int,
                         **acquisition: Any) -> dict[str, Any]:
    """What a :class:`Calibration` records: the tester's null, the H0 cases' sizes and seed, the acquisition."""
    return {"null_spread": tester.cfg.null_spread, "prior": tester.cfg.prior, "box": int(tester.templates.shape[-1]),
            "cases": cases, "seed": seed, "pseudo": pseudo, "rotations": rotations, **acquisition}
