"""The ``field`` stage of ``assess --field DATA``: each candidate's accuracy on unlabelled deployment data, estimated.

Per candidate (every model the rank stage scored): penultimate features of the ID train set (the same
extraction as the rank stage, so it is cached), of a labelled ID validation set (the ID test set, else a
stratified 25 % of the ID data, the probe then fitted on the other 75 %) and of the field data, whose labels
are never read. A logistic probe on the ID features gives the naive ID-accuracy estimate, ATC, DoC and, with
>= 3 candidates, agreement-on-the-line (:mod:`transferlens.probe.field`, :mod:`transferlens.metrics.field`),
each shown with its measured expected error (docs/validity.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import load_data
from ..data.base import stratified_split
from ..errors import InputError, TransferLensError

VAL_FRACTION = 0.25


def _features(model: str, uri: str) -> tuple[np.ndarray, np.ndarray]:
    from ..features import extract
    from ..models import resolve_model

    ref = resolve_model(model)
    fs = extract(ref, uri, "penultimate,last" if ref.kind == "image" else "penultimate", pool="auto")  # = the rank stage's
    return fs[fs.layers[0]].astype(np.float64), np.asarray(fs.labels)


def describe_field(uri: str) -> dict:
    """Size and fingerprint of the field data (its labels, if any, are not used)."""
    ds = load_data(uri)
    return {"uri": uri, "canonical": ds.uri, "n": len(ds), "kind": ds.kind, "fingerprint": ds.fingerprint}


def assess_field(models: list[str], train: str, field: str, *, test: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Estimated field accuracy of a logistic probe per candidate (see module docstring); failures per model are kept."""
    from ..probe.field import estimate_field, fit_field_probe, probe_outputs

    info = describe_field(field)
    outputs, errors, dims = {}, {}, {}
    for m in models:
        try:
            xtr, ytr = _features(m, train)
            if test is not None:
                xv, yv = _features(m, test)
            else:
                fit_idx, val_idx = stratified_split(ytr, VAL_FRACTION, seed)
                xtr, ytr, xv, yv = xtr[fit_idx], ytr[fit_idx], xtr[val_idx], ytr[val_idx]
            xf, _ = _features(m, field)  # labels ignored
            outputs[m] = probe_outputs(xtr, ytr, xv, yv, xf, probe=fit_field_probe(xtr, ytr, seed=seed))
            dims[m] = int(xtr.shape[1])
        except TransferLensError as exc:
            errors[m] = str(exc)
    if not outputs:
        raise InputError(f"no candidate could be evaluated on the field data {field}: "
                         + "; ".join(f"{m}: {e}" for m, e in list(errors.items())[:3]))
    rec = estimate_field(outputs)
    for m, d in dims.items():
        rec["models"][m]["dim"] = d
    rec.update({"field": info, "validation": "ID test set" if test is not None else f"a stratified {VAL_FRACTION:.0%} of the ID data",
                "errors": errors, "labels_used": False})
    return rec
