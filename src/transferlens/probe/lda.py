"""Shrinkage linear discriminant analysis as a closed-form probe.

A thin wrapper over ``sklearn.discriminant_analysis.LinearDiscriminantAnalysis(solver="lsqr",
shrinkage="auto")``: the pooled within-class covariance is shrunk towards a scaled identity with the
Ledoit–Wolf coefficient (Ledoit & Wolf, J. Multivariate Anal. 2004), computed by scikit-learn on
standardised features, and the class scores are x Σ⁻¹μ_cᵀ − ½ μ_c Σ⁻¹ μ_cᵀ + log π_c. No validation
split is needed (the shrinkage is estimated). A fixed ``shrinkage`` in [0, 1] is also accepted.

Listed in the spec (§5.4) as part of the fast-probe family next to the ridge probe; H24 itself uses
AdamW probes only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from ..errors import InputError
from ..validation import as_float_matrix, as_labels, check_features_labels


@dataclass
class LDAProbe:
    model: LinearDiscriminantAnalysis
    info: dict = field(default_factory=dict)

    def predict(self, x: Any) -> np.ndarray:
        xm = as_float_matrix(x)
        if xm.shape[1] != self.model.n_features_in_:
            raise InputError(f"features have {xm.shape[1]} columns but the probe was fitted on {self.model.n_features_in_}.")
        return self.model.predict(xm).astype(np.int64)

    def score(self, x: Any, y: Any) -> float:
        return float(np.mean(self.predict(x) == as_labels(y, n_samples=np.shape(x)[0])))


def fit_lda_probe(x: Any, y: Any, *, n_classes: int | None = None, shrinkage: float | str = "auto") -> LDAProbe:
    """Fit shrinkage LDA; every class needs at least 2 samples."""
    xm, lab, k = check_features_labels(x, y, n_classes=n_classes, min_per_class=2)
    if not (shrinkage == "auto" or (isinstance(shrinkage, (int, float)) and 0 <= float(shrinkage) <= 1)):
        raise InputError(f"shrinkage must be 'auto' or a number in [0, 1], got {shrinkage!r}.")
    model = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrinkage)
    model.fit(xm, lab)
    return LDAProbe(model, {"shrinkage": shrinkage, "n_train": int(xm.shape[0])})
