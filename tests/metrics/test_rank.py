"""Ranks: constructed low-rank data vs numpy, closed forms of effective rank / RankMe, projection path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from transferlens.errors import InputError
from transferlens.metrics import rank as R
from transferlens.metrics.stats import ClassStats


def _low_rank(n=200, d=30, r=4, seed=0, offset=3.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, r)) @ rng.normal(size=(r, d)) + offset


@pytest.mark.parametrize("n, d, r", [(200, 30, 4), (25, 60, 7), (500, 40, 12)])
def test_numerical_rank_of_constructed_low_rank_data(n, d, r):
    x = _low_rank(n, d, r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = R.numerical_rank(x)
    assert got == r == np.linalg.matrix_rank(x - x.mean(0))


def test_numerical_rank_threshold_counts_spectrum():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(400, 6)))
    scales = np.sqrt([1.0, 0.5, 0.1, 5e-3, 5e-4, 1e-5])  # covariance eigenvalue ratios 1 .. 1e-5
    x = (q - q.mean(0)) * scales * 40
    lam = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False)))[::-1]
    for thr in (1e-3, 1e-2, 0.3):
        assert R.numerical_rank(x, threshold=thr) == int(np.sum(lam > thr * lam[0]))


@pytest.mark.parametrize("n, d", [(80, 10), (10, 40)])
def test_covariance_spectrum_matches_numpy(n, d):
    x = np.random.default_rng(2).normal(size=(n, d)) * 2 + 1
    ref = np.sort(np.clip(np.linalg.eigvalsh(np.cov(x, rowvar=False)), 0, None))[::-1][: min(n, d)]
    got = R.covariance_spectrum(x)[: min(n, d)]
    np.testing.assert_allclose(got, ref, atol=1e-10 * ref[0])


def test_stats_and_arrays_agree():
    x = _low_rank(300, 20, 5, seed=3)
    y = np.arange(300) % 3
    st_ = ClassStats(3, 20)
    for part in np.array_split(np.arange(300), 7):
        st_.update(x[part], y[part])
    assert R.numerical_rank(st_) == R.numerical_rank(x) == 5
    np.testing.assert_allclose(R.covariance_spectrum(st_), R.covariance_spectrum(x), atol=1e-9)
    assert R.effective_rank(st_) == pytest.approx(R.effective_rank(x), rel=1e-8)
    assert R.rankme(st_) == pytest.approx(R.rankme(x), rel=1e-8)


def test_effective_rank_closed_form_equal_singular_values():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(100, 5))
    a -= a.mean(0)
    q, _ = np.linalg.qr(a)  # orthonormal, centred columns -> 5 equal singular values after centring
    x = 7.0 * q @ np.linalg.qr(rng.normal(size=(12, 5)))[0].T
    assert R.effective_rank(x) == pytest.approx(5.0, rel=1e-9)
    assert R.entropy_rank(np.ones(9)) == pytest.approx(9.0)
    assert R.entropy_rank([3.0, 0.0, 0.0]) == pytest.approx(1.0)


def test_rankme_matches_direct_formula():
    x = np.random.default_rng(5).normal(size=(60, 16)) @ np.diag(np.linspace(0.1, 3, 16)) + 0.5
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum() + 1e-7
    assert R.rankme(x) == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-9)
    sc = np.linalg.svd(x - x.mean(0), compute_uv=False)
    pc = sc / sc.sum()
    assert R.effective_rank(x) == pytest.approx(np.exp(-np.sum(pc * np.log(pc))), rel=1e-9)
    assert 1.0 <= R.effective_rank(x) <= 16.0


def test_random_projection_path_preserves_low_rank():
    x = _low_rank(n=50, d=100, r=6, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert R.numerical_rank(x, max_dim=64) == 6
        assert R.numerical_rank(x, max_dim=64, seed=3) == 6
    g = R.random_projection_matrix(100, 64, seed=0)
    assert g.shape == (64, 100)
    np.testing.assert_allclose(np.linalg.norm(g, axis=0), 1.0)
    np.testing.assert_array_equal(g, R.random_projection_matrix(100, 64, seed=0))


def test_few_samples_warn():
    with pytest.warns(UserWarning, match="capped"):
        R.numerical_rank(np.random.default_rng(0).normal(size=(5, 10)))


def test_rank_report_keys():
    rep = R.rank_report(_low_rank(seed=7))
    assert rep["numerical_rank"] == 4.0 and set(rep) == {"numerical_rank", "effective_rank", "rankme"}


def test_bad_inputs():
    with pytest.raises(InputError, match="threshold"):
        R.numerical_rank(np.ones((5, 2)), threshold=2.0)
    with pytest.raises(InputError, match="constant"):
        R.effective_rank(np.ones((5, 3)))
    with pytest.raises(InputError, match="NaN"):
        R.rankme(np.array([[1.0, np.nan], [0, 1]]))
    with pytest.raises(InputError, match="non-negative"):
        R.entropy_rank([1.0, -1.0])
    with pytest.raises(InputError, match="2-D"):
        R.covariance_spectrum(np.ones(5))
