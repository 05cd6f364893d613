r"""GBC: Gaussian Bhattacharyya Coefficient.

Pándy, Agostinelli, Uijlings, Ferrari, Mensink. "Transferability Estimation using Bhattacharyya Class
Separability", CVPR 2022. Reference code: google-research ``stable_transfer/transferability/gbc.py``
(config ``gbc.pca_reduction = 64``, ``gaussian_type = 'spherical'``).

Features are first reduced by PCA to ``n_components`` (64) dimensions. Each class c is a Gaussian with mean
mu_c and per-dimension (population) variance sigma_c floored at 1e-4; the spherical variant replaces
sigma_c by its mean over dimensions. With sigma = (sigma_1 + sigma_2) / 2:

    D_B(c1, c2) = 1/8 sum_d (mu1 - mu2)^2 / sigma + 1/2 [ sum_d log sigma - 1/2 sum_d log sigma1
                                                                      - 1/2 sum_d log sigma2 ]
    GBC = - sum_{c1} sum_{c2 != c1} exp(-D_B(c1, c2))                 (<= 0, higher is better)

**Variants** (``variant=``; they differ only for the spherical type). ``'reference'`` (default) is what the
reference code computes: ``get_bhattacharyya_distance`` turns the variances into scalars (their mean) before
``compute_bhattacharyya_distance`` sums ``log(avg_sigma)`` over a scalar, so the log term is counted once,
not d times: log sigma - 1/2 log sigma1 - 1/2 log sigma2 (the mean-distance term is summed over d in both).
``'exact'`` is the Bhattacharyya distance of two isotropic Gaussians in d dimensions, whose log-determinant
term is d log sigma - d/2 log sigma1 - d/2 log sigma2, as written above. With d = 64 the two GBC values
differ by up to 3x on the zoo and can order models differently.

Why ``'reference'`` is the default (issue 18): on the 35 image targets of the target suite (7 groups;
``benchmarks/score_variants.py --suite``, ``benchmarks/results/zoo-suite/score_variants.json``), grouped
leave-one-group-out picks ``'reference'`` in 7 of 7 folds; mean weighted tau against fine-tuning accuracy
0.409 [95 % bootstrap over targets 0.273, 0.529] vs 0.374 [0.234, 0.496] for ``'exact'``, paired
difference 0.035 [-0.001, 0.069] (against linear-probe accuracy 0.590 vs 0.549, +0.040 [0.005, 0.080]). The rule,
fixed before the run: switch iff the procedure picks the other variant in most folds and the paired mean
difference exceeds 0.01. Small, and the interval touches 0: the reference code's variant is at least not
worse. Until 2026-12-04 the default was ``'exact'`` (docs/zoo.md, "Score variants").

All K^2 pairs are computed at once. Spherical GBC is invariant to rotations and isotropic scaling of the
features as long as no variance hits the 1e-4 floor. Difference: PCA is exact (eigh, deterministic)
instead of the reference's sklearn PCA; with D <= n_components no projection is done (it would only rotate).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UsageError
from ._common import class_means, pca_project, prepare_labelled, warn_unreliable

_VAR_FLOOR = 1e-4
#: ``'reference'`` (default): google-research's log-variance term (once); ``'exact'``: that of a d-dimensional spherical Gaussian
GBC_VARIANTS = ("reference", "exact")


def gbc(features: Any, labels: Any, *, n_components: int | None = 64, gaussian_type: str = "spherical",
        variant: str = "reference") -> float:
    """Gaussian Bhattacharyya Coefficient (see module docstring); higher (closer to 0) is better.

    ``variant``: ``'reference'`` (default; google-research's code: the log-variance term once) or ``'exact'``
    (log-determinant term of a d-dimensional spherical Gaussian, d times); the diagonal type is the same in both.
    """
    if gaussian_type not in ("spherical", "diagonal"):
        raise UsageError(f"gaussian_type must be 'spherical' or 'diagonal', got {gaussian_type!r}")
    if variant not in GBC_VARIANTS:
        raise UsageError(f"GBC variant must be one of {', '.join(GBC_VARIANTS)}, got {variant!r}")
    x, y, k = prepare_labelled(features, labels)
    if n_components is not None and x.shape[1] > n_components:
        x = pca_project(x, int(n_components))
    means, counts = class_means(x, y, k)
    resid = x - means[y]
    var, _ = class_means(resid * resid, y, k)  # population variance per class and dimension
    if (var < _VAR_FLOOR).any():
        frac = float((var < _VAR_FLOOR).mean())
        if frac > 0.05:
            warn_unreliable(f"GBC: {frac:.0%} of per-class variances are below the 1e-4 floor (scale-dependent).")
    var = np.maximum(var, _VAR_FLOOR)
    d = x.shape[1]
    if gaussian_type == "spherical":
        s = var.mean(axis=1)  # (K,)
        avg = 0.5 * (s[:, None] + s[None, :])
        sq_dist = np.sum(means**2, axis=1)[:, None] + np.sum(means**2, axis=1)[None, :] - 2.0 * means @ means.T
        sq_dist = np.clip(sq_dist, 0.0, None)
        first = sq_dist / avg / 8.0
        log_s = np.log(s)
        times = d if variant == "exact" else 1  # the reference code sums the log of a scalar: once
        second = times * (np.log(avg) - 0.5 * log_s[:, None] - 0.5 * log_s[None, :])
    else:
        avg = 0.5 * (var[:, None, :] + var[None, :, :])  # (K, K, d)
        diff2 = (means[:, None, :] - means[None, :, :]) ** 2
        first = np.sum(diff2 / avg, axis=2) / 8.0
        log_v = np.log(var).sum(axis=1)
        second = np.log(avg).sum(axis=2) - 0.5 * log_v[:, None] - 0.5 * log_v[None, :]
    db = first + 0.5 * second
    bc = np.exp(-db)
    np.fill_diagonal(bc, 0.0)
    return float(-bc.sum())
