r"""NCTI: Neural Collapse inspired Transferability Index, a zoo-relative score.

Wang, Li, et al. "How Far Pre-trained Models Are from Neural Collapse on the Target Dataset Informs their
Transferability", ICCV 2023. Reference code: BUserName/NCTI (``metrics.py::NCTI_Score`` and the zoo
combination in ``evaluate_metric_group1_cpu.py``).

    1. Z = PCA_64(F);  lam = max(exp(-sum of the 32 largest PCA variances), 1e-10)
    2. LDA on (Z, y): sklearn ``LinearDiscriminantAnalysis(solver='eigen', shrinkage=lam)``, or
       ``solver='svd'`` when lam hits the 1e-10 floor (as in the reference)
    3. S_seli = || centred LDA projection of Z ||_*                 (nuclear norm)
       S_ncc  = 1/N sum_i p(y_i | z_i)                            (LDA posterior of the true class)
       S_vc   = log sum_c || P_c ||_*,  P_c = the rows of the posterior matrix of class c
    4. NCTI = minmax(S_seli) + minmax(S_ncc) - minmax(S_vc), min-max over the candidate models.

Caveat (measured on planted-signal toys, see the tests): S_vc is largest at *intermediate* separability
(confident posteriors of a class form a rank-1 matrix of nuclear norm sqrt(n_c), near-uniform ones a
smaller one, noisy intermediate ones the largest), so NCTI is not monotone in signal strength: on a
4-class toy with separations 0.1 / 0.4 / 1.2 the zoo scores were 0 / -0.43 / 1.54. This is the reference
definition and is kept.

NCTI is only meaningful across a zoo: :func:`ncti_components` gives the per-model parts and
:func:`ncti_zoo` the scores of a zoo (higher is better). Differences: PCA is exact (eigh) rather than
sklearn's randomized solver; with fewer than 64 dimensions (or N <= 64) all available axes are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._common import minmax, pca_project, prepare_labelled


def ncti_components(features: Any, labels: Any, *, n_components: int = 64, top_var: int = 32) -> dict[str, float]:
    """Per-model NCTI parts ``{'seli', 'ncc', 'vc'}`` (combine across a zoo with :func:`ncti_zoo`)."""
    x, y, k = prepare_labelled(features, labels)
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis  # lazy import (slow)
    z = pca_project(x, int(n_components))
    var = z.var(axis=0, ddof=1)  # = sklearn PCA.explained_variance_ (descending)
    lam = max(float(np.exp(-np.sum(var[:top_var]))), 1e-10)
    if lam == 1e-10:
        clf = LinearDiscriminantAnalysis(solver="svd")
    else:
        clf = LinearDiscriminantAnalysis(solver="eigen", shrinkage=lam)
    low = clf.fit_transform(z, y)
    low = low - low.mean(axis=0, keepdims=True)
    seli = float(np.linalg.svd(low, compute_uv=False).sum())
    probs = clf.predict_proba(z)
    ncc = float(probs[np.arange(x.shape[0]), y].mean())
    nuc = sum(float(np.linalg.svd(probs[y == c], compute_uv=False).sum()) for c in range(k))
    return {"seli": seli, "ncc": ncc, "vc": float(np.log(nuc))}


def ncti_unnormalised(components: Mapping[str, float]) -> float:
    """S_seli + S_ncc - S_vc without the zoo min-max: NOT comparable across models; diagnostics only."""
    return components["seli"] + components["ncc"] - components["vc"]


def ncti_zoo(components: Sequence[Mapping[str, float]]) -> np.ndarray:
    """NCTI of every model of a zoo: minmax(S_seli) + minmax(S_ncc) - minmax(S_vc); higher is better."""
    seli = np.array([c["seli"] for c in components], dtype=np.float64)
    ncc = np.array([c["ncc"] for c in components], dtype=np.float64)
    vc = np.array([c["vc"] for c in components], dtype=np.float64)
    return minmax(seli) + minmax(ncc) - minmax(vc)
