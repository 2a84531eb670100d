"""Tests of :mod:`cryoforge.hyptest.null`."""

import numpy as np
import pytest
import torch

from cryoforge.hyptest.null import (
    cv_log_likelihood,
    fit_kde,
    in_rejection_region,
    log_prior,
    neighbour_sample,
    rejection_sample,
)


def test_kde_bandwidth_is_chosen_by_cross_validation():
    from sklearn.model_selection import KFold
    from sklearn.neighbors import KernelDensity

    rng = np.random.default_rng(0)
    codes = rng.normal(size=(120, 4)) * 0.3
    grid = [0.03, 0.1, 0.2, 0.4, 1.0, 3.0]
    kde = fit_kde(codes, grid)

    def cv_loglik(bw):
        return np.mean([KernelDensity(bandwidth=bw).fit(codes[tr]).score(codes[te])
                        for tr, te in KFold(3).split(codes)])

    assert kde.bandwidth == grid[int(np.argmax([cv_loglik(b) for b in grid]))]
    assert fit_kde(codes * 10).bandwidth > 3 * fit_kde(codes).bandwidth  # the default grid scales with the data


def test_held_out_likelihood_is_grid_search_cvs_own():
    """Every fold's score, and the pick, as scikit-learn's GridSearchCV reads the same codes (100-D like the
    regressor's, N not a multiple of the folds)."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KernelDensity

    rng = np.random.default_rng(3)
    codes = rng.normal(size=(101, 100)) * rng.uniform(0.05, 1.0, size=100)
    grid = list(np.logspace(-1.5, 0.5, 9))
    search = GridSearchCV(KernelDensity(), {"bandwidth": grid}, cv=3).fit(codes)
    ours = cv_log_likelihood(codes, grid, 3)
    theirs = np.stack([search.cv_results_[f"split{k}_test_score"] for k in range(3)], 1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)
    assert fit_kde(codes, grid).bandwidth == search.best_params_["bandwidth"]


def test_rejection_sampling_never_returns_codes_inside_the_region():
    rng = np.random.default_rng(1)
    kde = fit_kde(rng.normal(size=(60, 3)) * 0.4 + 0.3)
    ns = rejection_sample(kde, 300, 3, prior=5.0, seed=2, batch=256)
    assert len(ns.z) == 300 and ns.rejected > 0 and ns.drawn == 300 + ns.rejected
    assert not in_rejection_region(ns.z.numpy(), kde, 5.0).any()
    again = rejection_sample(kde, 300, 3, prior=5.0, seed=2, batch=256)
    assert torch.equal(ns.z, again.z)
    z = np.zeros((1, 3))
    assert log_prior(z)[0] == pytest.approx(-1.5 * np.log(2 * np.pi))
    with pytest.raises(ValueError, match="positive"):
        in_rejection_region(z, kde, 0.0)


def test_neighbour_null_draws_around_the_codes_outside_the_region():
    rng = np.random.default_rng(3)
    codes = rng.normal(size=(60, 8)) * 0.2 + 2.0  # a tight cloud away from the prior's centre
    kde = fit_kde(codes)
    ns = neighbour_sample(codes, kde, 400, spread=0.5, prior=1.0, seed=4, batch=256)
    z = ns.z.numpy()
    assert len(z) == 400 and ns.rejected > 0 and ns.drawn == 400 + ns.rejected
    assert not in_rejection_region(z, kde, 1.0).any()
    # around the cloud, not the prior: nearest code at about spread·√d, the mean near the cloud's
    nearest = np.sqrt(((z[:, None] - codes[None]) ** 2).sum(-1)).min(1)
    assert 0.5 * 0.5 * np.sqrt(8) < np.median(nearest) < 1.5 * 0.5 * np.sqrt(8)
    assert np.abs(z.mean(0) - codes.mean(0)).max() < 0.15
    prior = rejection_sample(kde, 400, 8, prior=1.0, seed=4, batch=256).z.numpy()
    assert np.abs(prior.mean(0) - codes.mean(0)).min() > 1.0
    assert torch.equal(ns.z, neighbour_sample(codes, kde, 400, spread=0.5, prior=1.0, seed=4, batch=256).z)
    with pytest.raises(ValueError, match="spread"):
        neighbour_sample(codes, kde, 10, spread=0.0, prior=1.0, seed=0)
