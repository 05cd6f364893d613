"""ClassStats: streaming == in-memory (any split, merged shards), derived accessors, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transferlens.errors import InputError
from transferlens.metrics.stats import ClassStats, as_summary

K, D = 4, 6


def _data(n=120, k=K, d=D, offset=5.0, seed=0):
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])  # every class present
    rng.shuffle(y)
    mu = rng.normal(size=(k, d)) * 3 + offset
    x = mu[y] + rng.normal(size=(n, d)) * rng.uniform(0.5, 2, size=d)
    return x, y


def _reference(x, y, k):
    """Two-pass in-memory float64 statistics."""
    means = np.stack([x[y == c].mean(axis=0) for c in range(k)])
    dev = x - means[y]
    sw = dev.T @ dev
    ssq = np.array([np.sum(dev[y == c] ** 2) for c in range(k)])
    counts = np.bincount(y, minlength=k).astype(float)
    return counts, means, sw, ssq


def _assert_matches(s, x, y, k, tol=1e-10):
    counts, means, sw, ssq = _reference(x, y, k)
    scale = max(1.0, np.abs(sw).max())
    np.testing.assert_array_equal(s.counts, counts)
    np.testing.assert_allclose(s.means, means, rtol=0, atol=tol * max(1.0, np.abs(means).max()))
    np.testing.assert_allclose(s.within_scatter, sw, rtol=0, atol=tol * scale)
    np.testing.assert_allclose(s.class_sq_dev, ssq, rtol=0, atol=tol * scale)


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=8), chunk=st.integers(1, 50))
def test_streaming_equals_in_memory_for_any_batch_split(cuts, chunk):
    x, y = _data()
    bounds = sorted(set([0, 120, *cuts]))
    stats = ClassStats(K, D, chunk_rows=chunk)
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b > a:
            stats.update(x[a:b], y[a:b])
    _assert_matches(stats.compute(), x, y, K)


@settings(max_examples=20, deadline=None)
@given(n_shards=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_merged_shards_equal_in_memory(n_shards, seed):
    x, y = _data(seed=seed % 7)
    rng = np.random.default_rng(seed)
    shard_of = rng.integers(0, n_shards, size=x.shape[0])
    shards = []
    for s in range(n_shards):
        st_s = ClassStats(K, D)
        idx = np.flatnonzero(shard_of == s)
        for part in np.array_split(idx, 3):
            if part.size:
                st_s.update(x[part], y[part])
        shards.append(st_s)
    total = ClassStats(K, D)
    for s in rng.permutation(n_shards):
        total.merge(shards[s])
    _assert_matches(total.compute(), x, y, K)


def test_large_offset_is_stable():
    # Features ~1e6 with unit spread: a naive E[xx^T] - mu mu^T loses all digits; Chan's update does not.
    x, y = _data(n=400, offset=1e6, seed=3)
    st_ = ClassStats(K, D)
    for part in np.array_split(np.arange(400), 13):
        st_.update(x[part], y[part])
    _, _, sw, _ = _reference(x, y, K)
    np.testing.assert_allclose(st_.compute().within_scatter, sw, rtol=1e-8, atol=1e-8 * np.abs(sw).max())


def test_derived_accessors_match_numpy():
    x, y = _data(n=90)
    s = ClassStats.from_arrays(x, y).compute()
    n = x.shape[0]
    counts, means, sw, _ = _reference(x, y, K)
    onehot = np.eye(K)[y]
    mg = means.mean(axis=0)
    np.testing.assert_allclose(s.sigma_w, sw / n, atol=1e-12)
    np.testing.assert_allclose(s.sigma_b(), (means - mg).T @ (means - mg) / K, atol=1e-12)
    mu = x.mean(axis=0)
    np.testing.assert_allclose(s.sigma_b("samples"), (means - mu).T @ (means - mu) / K, atol=1e-12)
    np.testing.assert_allclose(s.total_covariance(ddof=1), np.cov(x, rowvar=False), atol=1e-12)
    np.testing.assert_allclose(s.total_covariance(), np.cov(x, rowvar=False, bias=True), atol=1e-12)
    np.testing.assert_allclose(s.xtx, x.T @ x, rtol=1e-12)
    np.testing.assert_allclose(s.xty, x.T @ onehot, atol=1e-12)
    np.testing.assert_allclose(s.yty, onehot.T @ onehot)
    np.testing.assert_allclose(s.global_mean, mu, atol=1e-12)
    var = np.array([np.mean(np.sum((x[y == c] - means[c]) ** 2, axis=1)) for c in range(K)])
    np.testing.assert_allclose(s.class_variances, var, rtol=1e-12)
    np.testing.assert_allclose(s.total_scatter, (x - mu).T @ (x - mu), atol=1e-10)
    assert s.n_samples == n


def test_torch_float32_input_accumulates_in_float64():
    x, y = _data(n=60)
    xt = torch.tensor(x, dtype=torch.float32)
    s = ClassStats(K, D).update(xt, torch.tensor(y)).compute()
    ref = ClassStats(K, D).update(xt.double().numpy(), y).compute()
    assert s.sums.dtype == np.float64 and s.within_scatter.dtype == np.float64
    np.testing.assert_allclose(s.within_scatter, ref.within_scatter, atol=1e-10)


def test_bfloat16_tensors_are_accepted():
    x, y = _data(n=30)
    xt = torch.tensor(x, dtype=torch.bfloat16)
    s = ClassStats(K, D).update(xt, y).compute()
    ref = ClassStats(K, D).update(xt.float().numpy(), y).compute()
    np.testing.assert_allclose(s.within_scatter, ref.within_scatter, rtol=1e-12)


def test_reset_and_empty_class_means_are_nan():
    x, y = _data(n=40)
    st_ = ClassStats(K + 1, D).update(x, y)
    s = st_.compute()
    assert np.isnan(s.means[K]).all() and not s.present[K]
    st_.reset()
    assert st_.n_samples == 0
    with pytest.raises(InputError, match="no samples"):
        st_.compute()


def test_as_summary_dispatch():
    x, y = _data(n=40)
    st_ = ClassStats.from_arrays(x, y)
    s = as_summary(st_)
    assert as_summary(s) is s
    np.testing.assert_allclose(as_summary(x, y).within_scatter, s.within_scatter)
    with pytest.raises(InputError, match="labels"):
        as_summary(x)
    with pytest.raises(InputError, match="labels must not"):
        as_summary(st_, y)


@pytest.mark.parametrize(
    "features, labels, match",
    [
        (np.ones((5, D + 1)), np.zeros(5, int), "columns"),
        (np.ones(5), np.zeros(5, int), "2-D"),
        (np.ones((5, D)), np.zeros(4, int), "same samples"),
        (np.ones((5, D)), np.full(5, K), "out of range"),
        (np.ones((5, D)), np.array([0, 1, -1, 0, 1]), "0..K-1"),
        (np.ones((5, D)), np.array(["a"] * 5), "integers"),
        (np.full((5, D), np.nan), np.zeros(5, int), "NaN"),
    ],
)
def test_bad_update_inputs(features, labels, match):
    with pytest.raises(InputError, match=match):
        ClassStats(K, D).update(features, labels)


def test_bad_construction_and_merge():
    with pytest.raises(InputError):
        ClassStats(0, 3)
    with pytest.raises(InputError, match="share K and D"):
        ClassStats(2, 3).merge(ClassStats(2, 4))
    with pytest.raises(InputError, match="merge"):
        ClassStats(2, 3).merge(np.zeros(3))
