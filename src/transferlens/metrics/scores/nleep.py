r"""NLEEP: LEEP with the source head replaced by a Gaussian mixture fitted on the target features.

Li, Jia, Chen, Zhu, et al. "Ranking Neural Checkpoints", CVPR 2021. Reference code: TencentARC/SFDA
``metrics.py::NLEEP`` (also google-research ``stable_transfer/transferability/nleep.py`` and
google-research/pactran_metrics ``gmm_estimator``).

    1. PCA keeping ``pca_variance`` (0.8) of the variance;
    2. GaussianMixture(n_components = component_ratio * K) (full covariances), posteriors theta(x);
    3. NLEEP = LEEP(theta, y) = 1/N sum_i log sum_z P(y_i | z) theta_z(x_i).       (higher is better)

The paper's NLEEP keeps LEEP's log; the SFDA / ETran / NCTI repositories drop it (``log=False``).
Those repos use ``component_ratio = 5`` (1 for Food and Pets); the pactran_metrics copy uses
``max(min(K, 0.2 N), 0.1 N)`` components instead. The GMM is fitted by EM (k-means initialisation),
so the value depends on ``random_state``; it is the slowest of the non-gradient scores.
Differences: PCA is exact (eigh) rather than sklearn's default solver; the number of components is
capped at N // 2 so that every component can own samples (warned); ``max_dim`` optionally caps the
PCA dimension (not in the reference) because a full-covariance GMM with hundreds of dimensions is
very slow and under-determined.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UsageError
from ._common import pca_project, prepare_labelled, warn_unreliable
from .leep import leep_from_probs


def nleep(
    features: Any,
    labels: Any,
    *,
    component_ratio: float = 5.0,
    pca_variance: float = 0.8,
    max_dim: int | None = None,
    covariance_type: str = "full",
    log: bool = True,
    random_state: int = 0,
    max_iter: int = 100,
) -> float:
    """NLEEP score (see module docstring); higher is better."""
    if not 0.0 < pca_variance < 1.0:
        raise UsageError(f"pca_variance must be a fraction in (0, 1), got {pca_variance!r}.")
    x, y, k = prepare_labelled(features, labels)
    from sklearn.mixture import GaussianMixture  # lazy import (slow)
    n = x.shape[0]
    z = pca_project(x, pca_variance) if x.shape[1] > 1 else x - x.mean(axis=0)
    if max_dim is not None and z.shape[1] > max_dim:
        z = z[:, :max_dim]
    n_comp = max(1, int(round(component_ratio * k)))
    if n_comp > n // 2:
        warn_unreliable(f"NLEEP: {n_comp} mixture components for {n} samples; capped at {n // 2}.")
        n_comp = max(1, n // 2)
    gmm = GaussianMixture(
        n_components=n_comp, covariance_type=covariance_type, random_state=random_state, max_iter=max_iter
    ).fit(z)
    if not gmm.converged_:
        warn_unreliable(f"NLEEP: the Gaussian mixture did not converge in {max_iter} EM iterations.")
    theta = gmm.predict_proba(z)
    return leep_from_probs(theta, y, k, log=log)
