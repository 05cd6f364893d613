"""Closed-form ridge probe: equals scikit-learn's Ridge, streaming equals in-memory, α selection is exact."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from transferlens.errors import InputError
from transferlens.metrics.stats import ClassStats
from transferlens.probe.ridge import fit_ridge, fit_ridge_probe, fit_ridge_stats, select_alpha


def _data(n=240, d=15, k=4, seed=0, offset=3.0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n // k)
    means = rng.standard_normal((k, d)) * 2
    x = means[y] + rng.standard_normal((n, d)) * rng.uniform(0.2, 5.0, d) + offset  # uneven scales, off-centre
    return x, y


@pytest.mark.parametrize("alpha", [1e-6, 0.3, 10.0, 1e4])
def test_ridge_equals_sklearn_ridge(alpha):
    x, y = _data()
    onehot = np.eye(4)[y]
    ref = Ridge(alpha=alpha, fit_intercept=True).fit(x, onehot)
    probe = fit_ridge(x, y, alpha)
    np.testing.assert_allclose(probe.coef_original, ref.coef_.T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(probe.intercept_original, ref.intercept_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(probe.decision_function(x), ref.predict(x), rtol=1e-8, atol=1e-10)


def test_standardised_ridge_equals_sklearn_on_scaled_features():
    x, y = _data(seed=1)
    xs = StandardScaler().fit_transform(x)
    ref = Ridge(alpha=2.5).fit(xs, np.eye(4)[y])
    probe = fit_ridge(x, y, 2.5, standardize=True)
    np.testing.assert_allclose(probe.coef, ref.coef_.T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(probe.decision_function(x), ref.predict(xs), rtol=1e-8, atol=1e-10)


def test_wide_features_more_dims_than_samples():
    x, y = _data(n=40, d=60, seed=2)
    ref = Ridge(alpha=0.7).fit(x, np.eye(4)[y])
    probe = fit_ridge(x, y, 0.7)
    np.testing.assert_allclose(probe.decision_function(x), ref.predict(x), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("batch", [1, 7, 64, 1000])
def test_streamed_statistics_equal_in_memory(batch):
    x, y = _data(seed=3)
    perm = np.random.default_rng(0).permutation(len(y))  # arbitrary order and batch split
    streamed = ClassStats(4, x.shape[1])
    for s in range(0, len(y), batch):
        streamed.update(x[perm[s:s + batch]].astype(np.float64), y[perm[s:s + batch]])
    a = fit_ridge_stats(streamed, 1.3, standardize=True)
    b = fit_ridge(x, y, 1.3, standardize=True)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-9, atol=1e-12)
    s = streamed.compute()
    xc = x - x.mean(0)
    np.testing.assert_allclose(s.total_scatter, xc.T @ xc, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(s.xty, x.T @ np.eye(4)[y], rtol=1e-12)


def test_shards_merge_to_the_same_probe():
    x, y = _data(seed=4)
    a = ClassStats(4, x.shape[1]).update(x[:100], y[:100])
    b = ClassStats(4, x.shape[1]).update(x[100:], y[100:])
    merged = ClassStats(4, x.shape[1]).merge(a).merge(b)
    np.testing.assert_allclose(fit_ridge_stats(merged, 0.5).coef, fit_ridge(x, y, 0.5).coef, rtol=1e-9, atol=1e-12)


def test_alpha_selection_matches_brute_force_refits():
    x, y = _data(n=200, d=30, seed=5)
    xv, yv = _data(n=80, d=30, seed=6)
    stats = ClassStats(4, 30).update(x, y)
    grid = [1e-3, 1e-1, 1.0, 10.0, 1e3]
    probe, sel = select_alpha(stats, xv, yv, alphas=grid, relative=False, standardize=True)
    for i, a in enumerate(grid):
        brute = fit_ridge_stats(stats, a, standardize=True)
        assert sel.accuracy[i] == pytest.approx(brute.score(xv, yv))
        scores = brute.decision_function(xv)
        assert sel.mse[i] == pytest.approx(np.mean((scores - np.eye(4)[yv]) ** 2), rel=1e-9)
    assert sel.accuracy[sel.best] == sel.accuracy.max()
    np.testing.assert_allclose(probe.coef, fit_ridge_stats(stats, sel.alpha, standardize=True).coef, rtol=1e-7, atol=1e-10)


def test_relative_grid_is_scale_free():
    x, y = _data(seed=7)
    p1, _ = fit_ridge_probe(x, y, standardize=False)
    p2, _ = fit_ridge_probe(100.0 * x, y, standardize=False)
    assert p2.alpha == pytest.approx(1e4 * p1.alpha, rel=1e-9)
    np.testing.assert_array_equal(p1.predict(x), p2.predict(100.0 * x))


def test_probe_learns_separable_classes_and_prefers_regularisation_on_noise():
    rng = np.random.default_rng(8)
    y = np.repeat(np.arange(3), 100)
    x = np.eye(3)[y] * 5 + 0.1 * rng.standard_normal((300, 3))
    probe, stats = fit_ridge_probe(np.hstack([x, rng.standard_normal((300, 50))]), y)
    assert probe.score(np.hstack([x, rng.standard_normal((300, 50))]), y) == 1.0
    assert stats.n_samples == 300  # the returned statistics cover all training samples


def test_refit_scales_alpha_with_sample_count():
    x, y = _data(seed=9)
    probe, _ = fit_ridge_probe(x, y, val_fraction=0.2)
    n_all, n_fit = 240, 240 - 48
    assert probe.alpha == pytest.approx(probe.info["selection"]["alpha"] * n_all / n_fit)


def test_bad_input():
    x, y = _data()
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fit_ridge(bad, y)
    with pytest.raises(InputError):
        fit_ridge(x, y, alpha=-1.0)
    with pytest.raises(InputError):
        fit_ridge(x[:, 0], y)
    with pytest.raises(InputError, match="rows"):
        fit_ridge(x, y[:-1])
    y1 = y.copy()
    y1[0] = 4  # class 4 has one sample
    with pytest.raises(InputError, match="fewer than 2"):
        fit_ridge_probe(x, y1)
    probe = fit_ridge(x, y)
    with pytest.raises(InputError, match="columns"):
        probe.predict(x[:, :5])
    with pytest.raises(InputError):
        select_alpha(ClassStats(4, x.shape[1]).update(x, y), x, y, alphas=[])
