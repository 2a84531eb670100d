"""The null set of pseudo-complexes: KDE of a template's latent codes and Bayes rejection sampling.

For the chosen template ``C_I`` the regressor maps ``rotations`` random rotations of it to latent codes;
a Gaussian KDE ``E(z)`` of those codes (bandwidth chosen by ``cv``-fold cross-validated likelihood;
scikit-learn's estimator) is the density of "being ``C_I``". Latent codes are drawn from the GAN prior ``N(0, I)``
and those in the rejection region ``R = {z : N(z) < π·E(z)}`` (the posterior odds favour ``C_I``) are
discarded, so pseudo-complexes near ``C_I`` do not enter the null distribution. Everything is in log
space (``zdim`` = 100 densities underflow).

**Neighbour null** (``spread`` τ; a deviation from the paper, :func:`neighbour_sample`): the codes are drawn around
``C_I``'s own codes, ``z = z_r + τ·ε`` (``z_r`` one of the KDE's codes, ``ε ~ N(0, I)``, τ in units of the prior's
standard deviation), the same rejection region discarded. The null then holds complexes that resemble ``C_I`` without
being it — the realistic false positives (a homologue, another conformation, an unknown complex of similar shape) —
where draws from the whole prior mostly make pseudo-complexes that no subtomogram matches well. Measured on the
paper's setup (docs/benchmarks.md): unknown complexes score above every prior draw, but inside the neighbours. The
test is exact only when ``C_I`` is exchangeable with the null's draws; here it is their centre. p̂ was
anti-conservative with the shipped 32³ model (KS p 8×10⁻¹⁴) and passed the KS check at the paper's 64³ case (0.10),
likely because that regressor inverts ``C_I`` less well. Use it with calibrated p-values (:mod:`.calibration`:
``cryoforge hyptest calibrate``, then ``hyptest test --calibration``), which refer p̂ to simulated H0 cases of the
same null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..conventions import random_rotations
from ..geometry import transform_volumes
from .wgan import to_unit

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sklearn.neighbors import KernelDensity

    from ..hints import ArrayLike, Tensorish



def cv_log_likelihood(codes: Tensorish, bandwidths: ArrayLike, cv: int = 3) -> np.ndarray:
    """Held-out log-likelihood of a Gaussian KDE of ``codes`` ``(N, d)``: ``(len(bandwidths), cv)``, entry
    ``[b, k]`` the summed log-density of fold ``k`` under the KDE of the other folds at ``bandwidths[b]``.

    The folds and the values are those of ``GridSearchCV(KernelDensity(), cv=cv)`` (unshuffled ``KFold``, the
    estimator's ``score``); a test holds the two side by side. Computed from one distance matrix in torch, because
    the grid search spends ≈ 150 ms of interpreter-bound work on 300 codes, during which a GUI thread waiting for the
    interpreter lock does not get it (measured: 169 ms longest wait of a 10 ms timer beside it, 4 ms with this).
    """
    from sklearn.model_selection import KFold

    x = torch.as_tensor(np.asarray(codes, np.float64))
    n, d = x.shape
    fold = torch.empty(n, dtype=torch.long)
    for k, (_, held) in enumerate(KFold(cv).split(np.zeros(n))):
        fold[torch.from_numpy(held)] = k
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1) if n <= 1024 else torch.cdist(x, x) ** 2
    same = fold[:, None] == fold[None, :]
    n_train = (n - torch.bincount(fold, minlength=cv)).to(torch.float64)[fold]  # training codes each row sees
    out = np.empty((len(np.ravel(bandwidths)), cv))
    for b, h in enumerate(np.ravel(bandwidths).astype(float)):
        logk = (-sq / (2 * h * h)).masked_fill(same, -math.inf)
        row = torch.logsumexp(logk, 1) - torch.log(n_train) - 0.5 * d * math.log(2 * math.pi * h * h)
        out[b] = torch.zeros(cv, dtype=torch.float64).index_add_(0, fold, row).numpy()
    return out


def fit_kde(codes: Tensorish, bandwidths: ArrayLike | None = None, cv: int = 3) -> KernelDensity:
    """A Gaussian ``KernelDensity`` fitted to ``codes`` ``(N, d)`` with the bandwidth of the highest mean held-out
    log-likelihood over ``cv`` folds (:func:`cv_log_likelihood`; the first of equals, as ``GridSearchCV``)."""
    from sklearn.neighbors import KernelDensity

    codes = np.asarray(codes, np.float64)
    if codes.ndim != 2 or len(codes) < cv:
        raise ValueError(f"the KDE needs (N ≥ {cv}, d) latent codes; got shape {codes.shape}")
    if bandwidths is None:
        spread = float(np.sqrt(codes.var(0).sum() / codes.shape[1])) or 1.0
        bandwidths = spread * np.logspace(-1.5, 0.5, 21)
    grid = np.ravel(bandwidths).astype(float)
    best = int(np.argmax(cv_log_likelihood(codes, grid, cv).mean(1)))
    return KernelDensity(kernel="gaussian", bandwidth=float(grid[best])).fit(codes)


def log_prior(z: ArrayLike) -> np.ndarray:
    """``log N(z; 0, I)`` of ``(N, d)`` codes."""
    z = np.asarray(z, np.float64)
    return -0.5 * (z ** 2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


def in_rejection_region(z: Tensorish, kde: KernelDensity, prior: float) -> np.ndarray:
    """``True`` where ``N(z) < π·E(z)``."""
    if prior <= 0:
        raise ValueError(f"the prior π must be positive; got {prior}")
    z = np.asarray(z, np.float64)
    # In chunks: sklearn's tree code holds the interpreter lock for a whole call (97 ms for 4 096 codes of 100-D),
    # and a GUI waiting on that lock cannot answer; 512 codes take ≈ 12 ms. The values are the same.
    log_kde = np.concatenate([kde.score_samples(z[i:i + 512]) for i in range(0, len(z), 512)] or [np.zeros(0)])
    return log_prior(z) < math.log(prior) + log_kde


@dataclass
class NullSample:
    """Codes accepted into the null set, how many were drawn in all and how many rejected."""

    z: torch.Tensor  # accepted codes (B, d)
    drawn: int  # codes drawn in all
    rejected: int


def rejection_sample(kde: KernelDensity, n: int, zdim: int, prior: float, seed: int, batch: int = 4096,
                     max_draws: int = 1_000_000) -> NullSample:
    """``n`` codes from ``N(0, I)`` outside the rejection region of ``kde`` (deterministic in ``seed``)."""
    return _outside_region(lambda g: torch.randn(batch, zdim, generator=g), kde, n, prior, seed, max_draws)


def neighbour_sample(codes: Tensorish, kde: KernelDensity, n: int, spread: float, prior: float, seed: int,
                     batch: int = 4096, max_draws: int = 1_000_000) -> NullSample:
    """``n`` codes ``z_r + spread·ε`` around ``codes`` ``(N, d)`` (``z_r`` drawn uniformly from them, ``ε ~ N(0, I)``)
    outside the rejection region of ``kde`` (deterministic in ``seed``): the neighbour null of the module docstring."""
    if not spread > 0:
        raise ValueError(f"the neighbour null's spread τ must be positive; got {spread}")
    c = torch.as_tensor(np.asarray(codes, np.float32))
    if c.ndim != 2 or len(c) == 0:
        raise ValueError(f"the neighbour null needs (N ≥ 1, d) codes; got shape {tuple(c.shape)}")

    def draw(g: torch.Generator) -> torch.Tensor:
        pick = torch.randint(len(c), (batch,), generator=g)
        return c[pick] + spread * torch.randn(batch, c.shape[1], generator=g)

    return _outside_region(draw, kde, n, prior, seed, max_draws)


def _outside_region(draw: Callable[[torch.Generator], torch.Tensor], kde: KernelDensity, n: int, prior: float,
                    seed: int, max_draws: int) -> NullSample:
    """Batches of ``draw`` until ``n`` codes lie outside the rejection region; counts what was rejected."""
    g = torch.Generator().manual_seed(int(seed))
    kept: list[torch.Tensor] = []
    drawn = 0
    while sum(len(k) for k in kept) < n:
        if drawn >= max_draws:
            raise RuntimeError(f"only {sum(len(k) for k in kept)} of {n} codes fell outside the rejection region "
                               f"in {drawn} draws; lower the prior π ({prior})")
        z = draw(g)
        drawn += len(z)
        kept.append(z[torch.from_numpy(~in_rejection_region(z.numpy(), kde, prior))])
    z = torch.cat(kept)
    accepted_total = len(z)
    z = z[:n]
    # count rejections among the draws actually consumed (proportionally for the last batch)
    rejected = round((drawn - accepted_total) * n / accepted_total) if accepted_total else drawn
    return NullSample(z, n + rejected, rejected)


@torch.no_grad()
def template_codes(regressor: Any, template: Tensorish, rotations: int, seed: int, batch: int = 64) -> np.ndarray:
    """Regressor codes of ``rotations`` random rotations of ``template`` ``(n, n, n)``, ``(rotations, d)``."""
    t = torch.as_tensor(template, dtype=torch.float32)
    rots = random_rotations(rotations, seed)
    dev = next(regressor.parameters()).device
    regressor.eval()
    out = [regressor(to_unit(transform_volumes(t.expand(len(r), *t.shape), r)).to(dev)).float().cpu()
           for r in rots.split(batch)]
    return torch.cat(out).numpy()
