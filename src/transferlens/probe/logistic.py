"""Multinomial logistic-regression probe fitted with L-BFGS, C chosen on a validation split.

``sklearn.linear_model.LogisticRegression(solver="lbfgs")`` (multinomial softmax, L2 penalty 1/(2C)‖W‖²)
on features standardised with the training statistics; C is swept over a log grid on a stratified
validation split, warm-started from the previous C (small C first), then refitted on all training data.
This is the CLIP-style linear-probe protocol (Radford et al. 2021, App. A.3), the closest closed-loop
relative of the AdamW probe of Harun et al. (NeurIPS 2024) that needs no learning-rate schedule.
It runs on the CPU whatever ``--device`` says: scikit-learn has no GPU path, and the fit on (N, D) pooled
features is small next to the extraction that produced them (which does run on the device).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from ..data.base import stratified_split
from ..errors import InputError
from ..validation import as_float_matrix, as_labels, check_features_labels

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


@dataclass
class LogisticProbe:
    model: LogisticRegression
    mean: np.ndarray
    scale: np.ndarray
    info: dict = field(default_factory=dict)

    def decision_function(self, x: Any) -> np.ndarray:
        xm = as_float_matrix(x)
        if xm.shape[1] != self.mean.shape[0]:
            raise InputError(f"features have {xm.shape[1]} columns but the probe was fitted on {self.mean.shape[0]}.")
        return self.model.decision_function((xm - self.mean) / self.scale)

    def predict(self, x: Any) -> np.ndarray:
        return np.argmax(self.decision_function(x), axis=1)

    def score(self, x: Any, y: Any) -> float:
        return float(np.mean(self.predict(x) == as_labels(y, n_samples=np.shape(x)[0])))


def _fit(x: np.ndarray, y: np.ndarray, c: float, max_iter: int, warm: LogisticRegression | None) -> tuple[LogisticRegression, bool]:
    model = LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter, warm_start=warm is not None)
    if warm is not None:
        model.coef_, model.intercept_ = warm.coef_.copy(), warm.intercept_.copy()
        model.classes_ = warm.classes_
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    return model, any(issubclass(w.category, ConvergenceWarning) for w in caught)


def fit_logistic_probe(
    x: Any,
    y: Any,
    *,
    n_classes: int | None = None,
    cs: Any = DEFAULT_CS,
    val_fraction: float = 0.1,
    seed: int = 0,
    max_iter: int = 500,
) -> LogisticProbe:
    """Standardise, choose C on a validation split (max accuracy, ties → smaller C), refit on all data."""
    xm, lab, k = check_features_labels(x, y, n_classes=n_classes, min_per_class=2)
    grid = sorted(float(c) for c in np.asarray(cs, dtype=np.float64).reshape(-1))
    if not grid or any(not (np.isfinite(c) and c > 0) for c in grid):
        raise InputError("cs must be a non-empty list of positive finite numbers.")
    mean = xm.mean(axis=0)
    scale = xm.std(axis=0)
    scale[scale <= 1e-12] = 1.0
    xs = (xm - mean) / scale
    fit_idx, val_idx = stratified_split(lab, val_fraction, seed)
    accs, warm, not_converged = [], None, []
    for c in grid:
        warm, bad = _fit(xs[fit_idx], lab[fit_idx], c, max_iter, warm)
        accs.append(float(np.mean(warm.predict(xs[val_idx]) == lab[val_idx])))
        if bad:
            not_converged.append(c)
    best = int(np.argmax(accs))
    model, bad = _fit(xs, lab, grid[best], max_iter, None)
    if bad:
        warnings.warn(f"L-BFGS did not converge in {max_iter} iterations at C={grid[best]}; raise max_iter.", stacklevel=2)
    info = {"C": grid[best], "cs": grid, "val_accuracy": accs, "not_converged": not_converged + ([grid[best]] if bad else [])}
    return LogisticProbe(model, mean, scale, info)
