"""Ranks of a representation: numerical rank, effective rank and RankMe.

All functions accept an (N, D) feature array or streamed :class:`~transferlens.metrics.stats.ClassStats`
(the spectrum then comes from the exact float64 total covariance / Gram matrix, O(D²) memory).

* **Numerical rank** (Masarczyk et al., NeurIPS 2023, "The tunnel effect"; Harun et al. 2024 App. C.13):
  #{λ_i > τ·λ_1} for the eigenvalues λ of the sample covariance, τ = 1e-3. Beyond ``max_dim`` = 8192
  features the centred data are first mapped by a Gaussian random projection G ∈ R^{b×D} with unit-norm
  columns (as ``compute_X_reduced`` in ``bok-bok/tunnel_effect``), b = 8192.
* **Effective rank** (Roy & Vetterli, EUSIPCO 2007): exp(H(p)), p_k = σ_k / Σ_j σ_j, σ the singular values
  of the centred data matrix. Equals r for r equal non-zero singular values.
* **RankMe** (Garrido, Balestriero, Najman & LeCun, ICML 2023): the same entropy of the singular values
  of the *uncentred* embedding matrix with p_k = σ_k/‖σ‖₁ + ε, ε = 1e-7. (The tunnel-effect code applies
  the formula to covariance eigenvalues, i.e. squared singular values; use
  :func:`entropy_rank` on :func:`covariance_spectrum` for that variant.)
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import as_float_matrix
from .stats import ClassStats, ClassSummary

DEFAULT_MAX_DIM = 8192


def random_projection_matrix(dim_in: int, dim_out: int = DEFAULT_MAX_DIM, seed: int = 0) -> np.ndarray:
    """Gaussian G (dim_out × dim_in) with unit-norm columns; project rows with ``X @ G.T``.

    Use the same matrix for every batch when projecting a stream before :class:`ClassStats`.
    """
    if dim_in < 1 or dim_out < 1:
        raise InputError(f"projection dimensions must be positive, got {dim_in} -> {dim_out}.")
    g = np.random.default_rng(seed).standard_normal((dim_out, dim_in))
    g /= np.linalg.norm(g, axis=0, keepdims=True)
    return g


def _is_stats(data: Any) -> bool:
    return isinstance(data, (ClassStats, ClassSummary))


def _summary(data: Any) -> ClassSummary:
    return data.compute() if isinstance(data, ClassStats) else data


def _centred_matrix(data: Any, max_dim: int, seed: int, center: bool = True) -> np.ndarray:
    x = as_float_matrix(data, name="features")
    if center:
        x = x - x.mean(axis=0, keepdims=True)
    if x.shape[1] > max_dim:
        x = x @ random_projection_matrix(x.shape[1], max_dim, seed).T
    return x


def _sym_eigvals_desc(a: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix, descending; values within rounding of 0 (≤ n·eps·λ_max) are set to 0."""
    lam = np.linalg.eigvalsh(0.5 * (a + a.T))[::-1]
    lam[lam <= a.shape[0] * np.finfo(np.float64).eps * max(lam[0], 0.0)] = 0.0
    return lam


def _singular_values(x: np.ndarray) -> np.ndarray:
    """Singular values (descending) of a data matrix (LAPACK SVD, accurate also for the small ones)."""
    return np.linalg.svd(x, compute_uv=False)


def covariance_spectrum(
    data: Any, *, ddof: int = 1, max_dim: int = DEFAULT_MAX_DIM, seed: int = 0
) -> np.ndarray:
    """Eigenvalues (descending, ≥ 0) of the sample covariance (1/(N−ddof)) Σ_i (x_i − x̄)(x_i − x̄)ᵀ.

    Arrays wider than ``max_dim`` are randomly projected first (see module docstring); class statistics
    use their exact total covariance (project the stream yourself with :func:`random_projection_matrix`).
    """
    if _is_stats(data):
        s = _summary(data)
        return _sym_eigvals_desc(s.total_covariance(ddof=ddof))
    x = _centred_matrix(data, max_dim, seed)
    n = x.shape[0]
    if n - ddof <= 0:
        raise InputError(f"need more than {ddof} samples for a covariance, got {n}.")
    return _singular_values(x) ** 2 / (n - ddof)


def numerical_rank(
    data: Any, *, threshold: float = 1e-3, max_dim: int = DEFAULT_MAX_DIM, seed: int = 0
) -> int:
    """#{λ_i > threshold·λ_1} over the covariance spectrum (tunnel-effect definition, threshold 1e-3).

    With N ≤ D the rank is capped by N−1 (a warning says so).
    """
    if not 0 < threshold < 1:
        raise InputError(f"threshold must be in (0, 1), got {threshold}.")
    lam = covariance_spectrum(data, max_dim=max_dim, seed=seed)
    n = _summary(data).n_samples if _is_stats(data) else len(data)
    if n <= lam.shape[0]:
        warnings.warn(
            f"only {n} samples for {lam.shape[0]} dimensions: the numerical rank is capped at {n - 1}.", stacklevel=2
        )
    if lam[0] <= 0:
        return 0
    return int(np.count_nonzero(lam > threshold * lam[0]))


def entropy_rank(values: Any, *, eps: float = 0.0) -> float:
    """exp(−Σ_k p_k log p_k) with p_k = v_k/Σ_j v_j + eps, for a non-negative spectrum ``values``."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0 or not np.all(np.isfinite(v)) or np.any(v < 0):
        raise InputError("the spectrum must be a non-empty vector of finite non-negative values.")
    tot = v.sum()
    if tot <= 0:
        raise InputError("the spectrum is all zeros (constant features); the effective rank is undefined.")
    p = v / tot + eps
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def singular_values(data: Any, *, center: bool = True, max_dim: int = DEFAULT_MAX_DIM, seed: int = 0) -> np.ndarray:
    """Singular values (descending) of the (optionally centred) data matrix; exact from class statistics."""
    if _is_stats(data):
        s = _summary(data)
        return np.sqrt(_sym_eigvals_desc(s.total_scatter if center else s.xtx))
    return _singular_values(_centred_matrix(data, max_dim, seed, center=center))


def effective_rank(data: Any, *, center: bool = True, max_dim: int = DEFAULT_MAX_DIM, seed: int = 0) -> float:
    """Roy & Vetterli effective rank exp(H(σ/‖σ‖₁)) of the singular values of the centred data (1 ≤ erank ≤ D)."""
    return entropy_rank(singular_values(data, center=center, max_dim=max_dim, seed=seed))


def rankme(data: Any, *, eps: float = 1e-7, max_dim: int = DEFAULT_MAX_DIM, seed: int = 0) -> float:
    """RankMe (Garrido et al. 2023): exp(−Σ p_k log p_k), p_k = σ_k/‖σ‖₁ + eps, σ of the *uncentred* X."""
    return entropy_rank(singular_values(data, center=False, max_dim=max_dim, seed=seed), eps=eps)


def rank_report(data: Any, *, threshold: float = 1e-3, max_dim: int = DEFAULT_MAX_DIM, seed: int = 0) -> dict[str, float]:
    """``numerical_rank``, ``effective_rank`` and ``rankme`` in one dict (for records)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nr = numerical_rank(data, threshold=threshold, max_dim=max_dim, seed=seed)
    return {
        "numerical_rank": float(nr),
        "effective_rank": effective_rank(data, max_dim=max_dim, seed=seed),
        "rankme": rankme(data, max_dim=max_dim, seed=seed),
    }
