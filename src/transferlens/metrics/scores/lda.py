r"""Shrinkage linear discriminant analysis shared by SFDA and ETran.

Both reference repositories (TencentARC/SFDA ``metrics.py::SFDA``, mgholamikn/ETran ``metrics.py::LDA``)
fit a Fisher LDA with

    S_w = sum_c p_c cov(F_c)            (population covariances, p_c = n_c / N)
    S~_w = (1 - lam) S_w + lam tr(S_w)/D I,    lam = max(exp(-5 lambda_max(S_w)), 1e-10)

then solve ``eigh(S_b, S~_w)`` and score class c by ``x coef_c + b_c`` with ``coef = mu V V^T`` and
``b_c = -1/2 mu_c coef_c + log p_c``. Because all D generalised eigenvectors are kept and
``V^T S~_w V = I``, ``V V^T = S~_w^{-1}`` exactly: the class scores are the ordinary shrinkage-LDA
discriminants ``x S~_w^{-1} mu_c - 1/2 mu_c S~_w^{-1} mu_c + log p_c`` and S_b plays no role. We therefore
solve with a Cholesky factor of S~_w (O(D^3/3)) instead of a generalised eigenproblem (same result,
several times faster).

ETran's copy calls ``np.linalg.eigh(inv(S~_w) @ S_b)`` on a *non-symmetric* matrix; ``eigh`` reads
only one triangle and returns orthonormal vectors, so there ``V V^T = I`` and the "LDA" is a Euclidean
nearest-mean softmax ``x mu_c - 1/2 ||mu_c||^2 + log p_c``. ``metric='euclidean'`` reproduces that.

``lambda_max`` is computed exactly (Lanczos) rather than with the reference's 3 power iterations.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from ...errors import UsageError
from ._common import class_means, gram, softmax_rows, warn_unreliable


def within_class_cov(x: np.ndarray, y: np.ndarray, means: np.ndarray) -> np.ndarray:
    """S_w = sum_c p_c cov(F_c) = 1/N sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T."""
    resid = x - means[y]
    return gram(resid) / x.shape[0]


def largest_eigenvalue(s: np.ndarray) -> float:
    """Largest eigenvalue of a symmetric PSD matrix (Lanczos for large D, dense otherwise)."""
    d = s.shape[0]
    if d <= 64:
        return float(np.linalg.eigvalsh(s)[-1])
    val = scipy.sparse.linalg.eigsh(s, k=1, which="LA", v0=np.ones(d), return_eigenvectors=False, tol=1e-8)
    return float(val[0])


def sfda_shrinkage(s_w: np.ndarray) -> float:
    """SFDA's adaptive shrinkage ``max(exp(-5 lambda_max(S_w)), 1e-10)`` (scale-dependent by design)."""
    return max(float(np.exp(-5.0 * largest_eigenvalue(s_w))), 1e-10)


def shrink(s: np.ndarray, lam: float) -> np.ndarray:
    """``(1 - lam) S + lam tr(S)/D I``."""
    out = (1.0 - lam) * s
    out[np.diag_indices_from(out)] += lam * float(np.trace(s)) / s.shape[0]
    return out


def _solve_spd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        cho = scipy.linalg.cho_factor(a, lower=True, check_finite=False)
        return scipy.linalg.cho_solve(cho, b, check_finite=False)
    except np.linalg.LinAlgError:
        warn_unreliable("LDA: the shrunk within-class covariance is singular; using a pseudo-inverse.")
        return np.linalg.pinv(a, rcond=1e-12, hermitian=True) @ b


def lda_posterior(
    x: np.ndarray, y: np.ndarray, n_classes: int, *, shrinkage: float | None = None, metric: str = "fisher"
) -> tuple[np.ndarray, float]:
    """Class posteriors p(c | x_i) (N, K) of the shrinkage LDA fitted on (x, y), and the shrinkage used.

    ``shrinkage=None`` uses :func:`sfda_shrinkage`. ``metric='fisher'`` uses S~_w^{-1} (the papers);
    ``'euclidean'`` uses the identity (what ETran's code computes, see module docstring).
    """
    if metric not in ("fisher", "euclidean"):
        raise UsageError(f"metric must be 'fisher' or 'euclidean', got {metric!r}")
    means, counts = class_means(x, y, n_classes)
    priors = counts / x.shape[0]
    lam = shrinkage
    if metric == "fisher":
        s_w = within_class_cov(x, y, means)
        if lam is None:
            lam = sfda_shrinkage(s_w)
        coef = _solve_spd(shrink(s_w, lam), means.T).T  # (K, D) = mu S~_w^{-1}
    else:
        coef = means
        lam = float("nan") if lam is None else lam
    intercept = -0.5 * np.einsum("kd,kd->k", means, coef) + np.log(priors)
    return softmax_rows(x @ coef.T + intercept[None, :]), float(lam)
