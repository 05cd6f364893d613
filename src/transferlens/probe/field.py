"""Estimated field accuracy of linear probes from unlabelled field features (glue over :mod:`metrics.field`).

For each candidate: a logistic probe (:func:`fit_logistic_probe`, standardised features, C chosen on a
validation split) is fitted on the labelled ID training features; its softmax probabilities on a labelled ID
validation set and on the unlabelled field features feed ATC, DoC and the naive ID accuracy; with >= 3
candidates, agreement-on-the-line uses every candidate's predictions (see :mod:`transferlens.metrics.field`).
A probability model is needed (ATC and DoC read confidences), hence logistic rather than the ridge probe.

``MEASURED_ERROR`` is the mean absolute error (accuracy points) of each estimator measured by
``benchmarks/eval_field.py`` on the zoo (docs/validity.md, "OOD accuracy from unlabelled field data"); it is
shown beside every estimate as its expected error. A test keeps it equal to the committed table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..metrics.field import aol, field_estimates
from ..validation import as_float_matrix, as_labels
from .logistic import LogisticProbe, fit_logistic_probe

#: MAE in accuracy points per estimator over 304 (zoo model, target, shift) triples, measured by
#: ``benchmarks/eval_field.py`` (docs/validity.md; a test keeps it equal to benchmarks/results/field/summary.json)
MEASURED_ERROR: dict[str, float | None] = {"id_accuracy": 32.5, "atc_maxconf": 27.5, "atc_entropy": 29.6, "doc": 28.3,
                                           "aol": 12.4}


@dataclass
class ProbeOutputs:
    """One candidate's probe outputs: probabilities on ID validation and field samples."""

    val_probs: np.ndarray
    val_labels: np.ndarray
    field_probs: np.ndarray
    probe_info: dict

    @property
    def val_pred(self) -> np.ndarray:
        return self.val_probs.argmax(axis=1)

    @property
    def field_pred(self) -> np.ndarray:
        return self.field_probs.argmax(axis=1)


def fit_field_probe(train_x: Any, train_y: Any, *, seed: int = 0) -> LogisticProbe:
    """The logistic probe of the field estimates, fitted on labelled ID training features."""
    ytr = as_labels(train_y, name="train labels")
    return fit_logistic_probe(train_x, ytr, n_classes=int(ytr.max()) + 1, seed=seed)


def probe_outputs(train_x: Any, train_y: Any, val_x: Any, val_y: Any, field_x: Any, *, seed: int = 0,
                  probe: LogisticProbe | None = None) -> ProbeOutputs:
    """Fit the logistic probe on (train_x, train_y) (or use ``probe``); class probabilities on val_x and field_x."""
    if probe is None:
        probe = fit_field_probe(train_x, train_y, seed=seed)
    k = len(probe.model.classes_)
    vy = as_labels(val_y, name="validation labels")
    if vy.max() >= k:
        raise InputError(f"the ID validation labels reach class {int(vy.max())} but the training data has {k} classes.")

    def proba(x: Any, name: str) -> np.ndarray:
        xm = as_float_matrix(x, name=name)
        if xm.shape[1] != probe.mean.shape[0]:
            raise InputError(f"{name} have {xm.shape[1]} columns but the ID features have {probe.mean.shape[0]}.")
        return probe.model.predict_proba((xm - probe.mean) / probe.scale)

    return ProbeOutputs(proba(val_x, "validation features"), vy, proba(field_x, "field features"),
                        {"C": probe.info.get("C")})


def estimate_field(outputs: Mapping[str, ProbeOutputs], field_labels: Any = None) -> dict[str, Any]:
    """Per candidate: ``estimates`` (ID accuracy, ATC x2, DoC, AoL when >= 3 candidates) and, when the field
    labels are given (evaluation only), the ``measured`` field accuracy. ``aol`` records the fitted line or
    why there is none; ``expected_error`` is :data:`MEASURED_ERROR`."""
    names = list(outputs)
    res = aol([outputs[n].val_pred for n in names], next(iter(outputs.values())).val_labels if names else [],
              [outputs[n].field_pred for n in names]) if names else None
    fy = None if field_labels is None else as_labels(field_labels, name="field labels")
    per: dict[str, dict] = {}
    for i, n in enumerate(names):
        o = outputs[n]
        est: dict[str, float | None] = dict(field_estimates(o.val_probs, o.val_labels, o.field_probs))
        est["aol"] = res.estimates[i] if res is not None and res.estimates is not None else None
        row: dict[str, Any] = {"estimates": est, "probe": o.probe_info, "n_val": int(o.val_labels.size),
                               "n_field": int(o.field_probs.shape[0])}
        if fy is not None:
            row["measured"] = float(np.mean(o.field_pred == fy))
        per[n] = row
    aol_info = res.to_dict() if res is not None else {"estimates": None, "reason": "no candidates"}
    aol_info.pop("estimates", None)
    return {"models": per, "aol": aol_info, "expected_error": dict(MEASURED_ERROR)}
