r"""TransRate: coding-rate difference between all features and the features of each class.

Huang, Huang, Sun, Wang. "Frustratingly Easy Transferability Estimation", ICML 2022. Reference code:
TLlib ``tllib/ranking/transrate.py`` (the copy every later benchmark uses):

    F <- F - mean(F)                                   (centred once, globally)
    R(Z) = 1/2 logdet( I_D + Z^T Z / (n_Z eps) ),      eps = 1e-4
    TrR  = R(F) - 1/K sum_c R(F_c)                     (unweighted class mean; higher is better)

The paper's rate is written in the MCR^2 style (d/(n eps^2) scaling, class terms weighted by n_c/N);
that form is unverified here, so the default follows the TLlib code, and ``class_weighting='size'``
gives the n_c/N-weighted class term. Rotation-invariant. Not scale-invariant because eps is absolute,
although when every class covariance has eigenvalues >> eps the (D/2) log s^2 shifts of R(F) and of each
R(F_c) cancel and the score barely moves with the scale s.

Speed: R(F_c) uses Sylvester's identity ``det(I_D + A^T A) = det(I_{n_c} + A A^T)``, so each class
costs an n_c x n_c Cholesky instead of a D x D one (TLlib: K log-determinants of D x D matrices).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UsageError
from ._common import gram, prepare_labelled, warn_unreliable


def _logdet_spd(m: np.ndarray) -> float:
    sign, logdet = np.linalg.slogdet(m)
    if sign <= 0:  # cannot happen for I + PSD; guard against round-off
        evals = np.clip(np.linalg.eigvalsh(m), 1e-300, None)
        return float(np.sum(np.log(evals)))
    return float(logdet)


def coding_rate(z: np.ndarray, eps: float = 1e-4) -> float:
    """R(Z) = 1/2 logdet(I + Z^T Z / (n eps)) via the smaller of the two Gram matrices."""
    n, d = z.shape
    g = gram(z) if d <= n else z @ z.T
    m = g / (n * eps)
    m[np.diag_indices_from(m)] += 1.0
    return 0.5 * _logdet_spd(m)


def transrate(features: Any, labels: Any, *, eps: float = 1e-4, class_weighting: str = "uniform") -> float:
    """TransRate (TLlib definition, see module docstring); higher is better."""
    if class_weighting not in ("uniform", "size"):
        raise UsageError(f"class_weighting must be 'uniform' or 'size', got {class_weighting!r}")
    x, y, k = prepare_labelled(features, labels)
    n, d = x.shape
    if n <= d:
        warn_unreliable(
            f"TransRate with N={n} <= D={d}: coding rates grow with the sample count and saturate; "
            "compare models only at equal D or use pca_dim."
        )
    xc = x - x.mean(axis=0, keepdims=True)
    total = coding_rate(xc, eps)
    order = np.argsort(y, kind="stable")
    bounds = np.searchsorted(y[order], np.arange(k + 1))
    rates = np.array([coding_rate(xc[order[bounds[c]:bounds[c + 1]]], eps) for c in range(k)])
    counts = np.diff(bounds).astype(np.float64)
    weights = np.full(k, 1.0 / k) if class_weighting == "uniform" else counts / n
    return float(total - np.sum(weights * rates))
