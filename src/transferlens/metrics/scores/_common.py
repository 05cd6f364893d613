"""Shared helpers of the transferability scores: input checks, class statistics, PCA, warnings.

Everything here is a pure function of its arguments. Scores signal an unreliable estimate with
:class:`UnreliableScoreWarning` (a ``UserWarning``); :func:`transferlens.metrics.scores.compute_score`
collects those into the result record.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
from scipy.special import logsumexp

from ...errors import InputError
from ...validation import as_float_matrix, check_features_labels, check_probabilities

#: Every labelled score needs at least this many samples per class (per-class means/variances).
MIN_PER_CLASS = 2


class UnreliableScoreWarning(UserWarning):
    """The score was computed but its value should not be trusted (N < D, tiny classes, saturation...)."""


def warn_unreliable(message: str) -> None:
    """Emit an :class:`UnreliableScoreWarning` attributed to the caller of the score."""
    warnings.warn(message, UnreliableScoreWarning, stacklevel=3)


def prepare_features(features: Any) -> np.ndarray:
    """Finite float64 (N, D) matrix, or :class:`InputError`."""
    return as_float_matrix(features, name="features")


def prepare_labelled(
    features: Any, labels: Any, min_per_class: int = MIN_PER_CLASS
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate (features, labels): float64 X (N, D), int64 y in 0..K-1 with every class >= ``min_per_class``."""
    if labels is None:
        raise InputError("this score needs target labels (a vector of ints 0..K-1); pass labels=...")
    return check_features_labels(features, labels, min_classes=2, min_per_class=min_per_class)


def prepare_source_probs(source_probs: Any, n_samples: int) -> np.ndarray:
    """Validate a (N, C_s) row-stochastic matrix of source-head probabilities (softmax outputs, not logits)."""
    if source_probs is None:
        raise InputError(
            "this score needs the source model's class probabilities (N, C_s): pass source_probs=softmax(logits)."
        )
    return check_probabilities(source_probs, n_samples=n_samples, name="source_probs")


def class_indicator(y: np.ndarray, n_classes: int) -> scipy.sparse.csr_matrix:
    """Sparse (K, N) indicator matrix, ``Y[k, i] = 1[y_i = k]``."""
    n = y.shape[0]
    return scipy.sparse.csr_matrix((np.ones(n), (y, np.arange(n))), shape=(n_classes, n))


def class_sums_counts(x: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class sums (K, D) and counts (K,), in O(N D)."""
    sums = np.asarray(class_indicator(y, n_classes) @ x)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return sums, counts


def class_means(x: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class means (K, D) and counts (K,)."""
    sums, counts = class_sums_counts(x, y, n_classes)
    return sums / counts[:, None], counts


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed with log-sum-exp."""
    return np.exp(logits - logsumexp(logits, axis=1, keepdims=True))


def gram(x: np.ndarray) -> np.ndarray:
    """``x.T @ x`` (symmetric; numpy dispatches to a SYRK-like kernel for this pattern)."""
    g = x.T @ x
    return (g + g.T) * 0.5


def check_class_sizes(y: np.ndarray, n_classes: int, *, small: int = 5) -> None:
    """Warn when a class has fewer than ``small`` samples (class statistics are then very noisy)."""
    counts = np.bincount(y, minlength=n_classes)
    tiny = np.flatnonzero(counts < small)
    if tiny.size:
        warn_unreliable(
            f"{tiny.size} class(es) have fewer than {small} samples (smallest: {int(counts.min())}); "
            "per-class statistics are noisy, the score is unreliable."
        )


def pca_project(x: np.ndarray, n_components: int | float) -> np.ndarray:
    """Deterministic PCA projection of ``x`` (centred) onto its top principal axes.

    ``n_components``: an int (number of axes, clipped to the rank bound ``min(N-1, D)``) or a float in
    (0, 1) (smallest number of axes that explain at least that fraction of the variance, as
    ``sklearn.decomposition.PCA(n_components=0.8)``). Uses ``eigh`` of the smaller Gram matrix (D x D or
    N x N) -- or Lanczos (``eigsh``, fixed start vector, full precision) when few axes of a large matrix
    are wanted -- so the result is exact and independent of any random seed (signs are arbitrary).
    """
    n, d = x.shape
    xc = x - x.mean(axis=0, keepdims=True)
    max_rank = max(1, min(n - 1, d))
    small_gram = n < d
    g = xc @ xc.T if small_gram else gram(xc)
    m = g.shape[0]
    if isinstance(n_components, float) and 0.0 < n_components < 1.0:
        evals = np.clip(scipy.linalg.eigvalsh(g), 0.0, None)[::-1]
        total = evals.sum()
        if total <= 0:
            raise InputError("features are constant (zero variance); no principal axis exists.")
        k = int(np.searchsorted(np.cumsum(evals) / total, n_components) + 1)
    else:
        k = int(n_components)
        if k < 1 or k != n_components:
            raise InputError(
                f"n_components must be an int >= 1 or a fraction in (0, 1), got {n_components!r}."
            )
    k = min(k, max_rank)
    if 64 < m and k <= m // 8:  # few axes of a large Gram: Lanczos (deterministic start) is ~3x faster
        evals, evecs = scipy.sparse.linalg.eigsh(g, k=k, which="LA", v0=np.ones(m), tol=0.0)
    else:
        evals, evecs = scipy.linalg.eigh(g, subset_by_index=[m - k, m - 1])
    order = np.argsort(evals)[::-1]
    evals, evecs = evals[order], evecs[:, order]
    if small_gram:  # g = X X^T = U S^2 U^T  ->  projections X V = U S
        return evecs * np.sqrt(np.clip(evals, 0.0, None))[None, :]
    return xc @ evecs


def auto_pca_dim(n_samples: int, n_features: int, n_classes: int | None) -> int:
    """Dimension used by ``pca_dim='auto'``: about 10 samples per dimension, never below K, never above D.

    The 10-samples-per-dimension rule keeps sample covariances well conditioned (SFDA issue #5 reports
    saturation at N=500, D=2048, fixed by PCA to 32 dims).
    """
    k = n_classes or 1
    d = max(n_samples // 10, k, 2)
    return int(min(d, n_features, max(1, n_samples - 1)))


def minmax(values: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] across models; a constant vector maps to zeros."""
    v = np.asarray(values, dtype=np.float64)
    span = v.max() - v.min()
    if not np.isfinite(span) or span <= 0:
        return np.zeros_like(v)
    return (v - v.min()) / span
