r"""SFDA: Self-challenging Fisher Discriminant Analysis.

Shao, Zhao, Ge, Li, Luo. "Not All Models Are Equal: Predicting Model Transferability in a
Self-challenging Fisher Space", ECCV 2022. Reference code: TencentARC/SFDA ``metrics.py::SFDA_Score``.

    1. p = shrinkage-LDA posterior on (F, y), lam = max(exp(-5 lambda_max(S_w)), 1e-10)  (see ``lda.py``)
    2. p <- softmax(p) (the probabilities are softened by a second softmax, as in the reference)
    3. ConfMix:  x_i <- p_{y_i}(x_i) x_i + (1 - p_{y_i}(x_i)) mean_{c != y_i} mu_c
    4. refit the LDA on the mixed features with the same lam; SFDA = 1/N sum_i p(y_i | x_i)

No log (the reference drops it "for stability"). Higher is better, at most 1. Rotation-invariant; not
scale-invariant (lam depends on the scale of S_w). The reference mutates the caller's feature array
in ConfMix; this function does not. With N <= D the score saturates at 1.0 for any features (SFDA
issue #5; the reporter fixed it with PCA to 32 dims): use ``pca_dim``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import class_means, prepare_labelled, softmax_rows, warn_unreliable
from .lda import lda_posterior


def sfda(features: Any, labels: Any, *, shrinkage: float | None = None) -> float:
    """SFDA score (see module docstring); higher is better."""
    x, y, k = prepare_labelled(features, labels)
    n, d = x.shape
    if n <= d:
        warn_unreliable(
            f"SFDA with N={n} <= D={d}: the within-class covariance is singular and SFDA saturates "
            "near 1.0 for any features; use pca_dim (e.g. 'auto' or 32)."
        )
    probs, lam = lda_posterior(x, y, k, shrinkage=shrinkage)
    soft = softmax_rows(probs)
    means, _ = class_means(x, y, k)
    outer = (means.sum(axis=0, keepdims=True) - means) / (k - 1)  # mean of the other classes' means
    p_true = soft[np.arange(n), y][:, None]
    mixed = p_true * x + (1.0 - p_true) * outer[y]
    probs2, _ = lda_posterior(mixed, y, k, shrinkage=lam)
    score = float(probs2[np.arange(n), y].mean())
    if score > 0.999:
        warn_unreliable(
            "SFDA is saturated (> 0.999): it no longer separates models (SFDA issue #5); reduce D with pca_dim."
        )
    return score
