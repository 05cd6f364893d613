"""Shared fixtures of the transferability-score tests: single-threaded BLAS and planted-signal data."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _single_thread_blas():
    # Tiny matrices: threading only adds overhead (and contention on the shared 2-core machine).
    with threadpool_limits(1):
        yield


def planted(n: int = 240, d: int = 12, k: int = 4, strength: float = 2.0, seed: int = 0):
    """Features = strength * class mean + N(0, I) noise, with balanced labels 0..k-1."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    means = rng.normal(size=(k, d))
    x = strength * means[y] + rng.normal(size=(n, d))
    return x, y


def source_probs(y: np.ndarray, c_s: int = 6, informative: bool = True, seed: int = 0) -> np.ndarray:
    """Source-head probabilities: peaked on a label-dependent source class, or label-independent."""
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    if not informative:
        return rng.dirichlet(np.ones(c_s), size=n)
    z = (y * 2 + (rng.random(n) < 0.2)) % c_s
    p = rng.dirichlet(np.ones(c_s) * 0.5, size=n) * 0.3
    p[np.arange(n), z] += 0.7
    return p / p.sum(axis=1, keepdims=True)


@pytest.fixture
def make_planted():
    return planted


@pytest.fixture
def make_source_probs():
    return source_probs
