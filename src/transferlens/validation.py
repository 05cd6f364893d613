"""Input checks shared by every metric, probe and score (in the spirit of sklearn.utils.validation).

All checks raise :class:`transferlens.errors.InputError` with a message that says what is wrong and
how to fix it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError


def as_float_matrix(x: Any, name: str = "features", dtype: type = np.float64) -> np.ndarray:
    """Return ``x`` as a finite 2-D array of ``dtype`` (rows = samples).

    Accepts numpy arrays, torch tensors and nested lists. Rejects empty input, wrong rank and NaN/Inf.
    """
    if hasattr(x, "detach"):  # torch.Tensor without importing torch here
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name} must be numeric, got dtype {arr.dtype}; convert it to floats first.")
    if arr.ndim != 2:
        raise InputError(
            f"{name} must be a 2-D array (n_samples, n_features), got shape {arr.shape}; "
            "flatten or pool each sample to a vector first."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{name} is empty (shape {arr.shape}); pass at least one sample and one feature.")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise InputError(
            f"{name} contain NaN or Inf in {bad} of {arr.shape[0]} rows (values must be finite); "
            "drop or impute those samples."
        )
    return arr


def as_labels(y: Any, n_samples: int | None = None, name: str = "labels") -> np.ndarray:
    """Return integer class labels in ``0..K-1`` as an int64 vector.

    String or non-contiguous labels are refused with a pointer to :func:`encode_labels`, so that the
    meaning of class ``k`` is never silently changed.
    """
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D vector, got shape {arr.shape}.")
    if n_samples is not None and arr.shape[0] != n_samples:
        raise InputError(
            f"{name} has {arr.shape[0]} entries but the features have {n_samples} rows; "
            "they must describe the same samples in the same order."
        )
    if arr.shape[0] == 0:
        raise InputError(f"{name} is empty; pass at least one labelled sample.")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.isfinite(arr).all() and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InputError(
                f"{name} must be integers 0..K-1, got dtype {arr.dtype}; "
                "map them with transferlens.validation.encode_labels(labels)."
            )
    arr = arr.astype(np.int64, copy=False)
    if arr.min() < 0:
        raise InputError(f"{name} must be in 0..K-1, found {arr.min()}; use encode_labels(labels).")
    return arr


def check_features_labels(
    x: Any,
    y: Any,
    *,
    min_classes: int = 2,
    min_per_class: int = 1,
    n_classes: int | None = None,
    name: str = "features",
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate a (features, labels) pair and return ``(X float64, y int64, K)``.

    ``K`` is ``n_classes`` when given (labels must then be < K), else ``max(y) + 1``; every class in
    ``0..K-1`` must be present with at least ``min_per_class`` samples.
    """
    arr = as_float_matrix(x, name=name)
    lab = as_labels(y, n_samples=arr.shape[0])
    k = check_class_counts(lab, min_classes=min_classes, min_per_class=min_per_class, n_classes=n_classes)
    return arr, lab, k


def check_class_counts(
    labels: np.ndarray,
    *,
    min_classes: int = 2,
    min_per_class: int = 1,
    n_classes: int | None = None,
    class_names: list[str] | None = None,
) -> int:
    """Check int labels (from :func:`as_labels`) class by class and return ``K``.

    ``K`` is ``n_classes`` (or ``len(class_names)``) when given, else ``max(labels) + 1``; every class in
    ``0..K-1`` must be present with at least ``min_per_class`` samples. With ``class_names`` (the classes of
    a data source) messages name the classes instead of their indices.
    """
    if labels.size == 0:
        raise InputError("labels is empty; pass at least one labelled sample.")
    if n_classes is None and class_names is not None:
        n_classes = len(class_names)
    k = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    if labels.max() >= k:
        raise InputError(f"labels must be < n_classes={k}, found {labels.max()}.")
    counts = np.bincount(labels, minlength=k)

    def named(idx: np.ndarray) -> list:
        return idx[:10].tolist() if class_names is None else [class_names[i] for i in idx[:10]]

    missing = np.flatnonzero(counts == 0)
    if missing.size:
        if class_names is not None:
            raise InputError(f"class(es) {named(missing)} have no sample; select the classes present with ?classes=...")
        raise InputError(
            f"labels are not contiguous: class(es) {missing[:10].tolist()} of 0..{k - 1} have no sample; "
            "re-encode them with transferlens.validation.encode_labels(labels)."
        )
    if k < min_classes:
        raise InputError(f"need at least {min_classes} classes, got {k}.")
    small = np.flatnonzero(counts < min_per_class)
    if small.size:
        raise InputError(
            f"class(es) {named(small)} have fewer than {min_per_class} samples "
            f"(counts {counts[small[:10]].tolist()}); collect more samples or drop those classes."
        )
    return k


def check_not_constant(x: np.ndarray, name: str = "features") -> np.ndarray:
    """Return ``x`` (2-D) unless every column is constant (zero variance), which carries no information."""
    if x.shape[0] > 1 and not np.any(x.max(axis=0) > x.min(axis=0)):
        raise InputError(
            f"{name} are constant (every one of the {x.shape[1]} dimensions has zero variance over the "
            f"{x.shape[0]} samples); they carry no information: check the layer (dead units?) and the extraction."
        )
    return x


def encode_labels(y: Any) -> tuple[np.ndarray, list]:
    """Map arbitrary labels (strings, gaps) to ``0..K-1``; returns ``(codes, classes)`` sorted."""
    classes, codes = np.unique(np.asarray(y), return_inverse=True)
    return codes.astype(np.int64), classes.tolist()


def check_probabilities(p: Any, n_samples: int | None = None, name: str = "probabilities", atol: float = 1e-4) -> np.ndarray:
    """Validate a row-stochastic matrix (n, C): non-negative, rows summing to 1 within ``atol``."""
    arr = as_float_matrix(p, name=name)
    if n_samples is not None and arr.shape[0] != n_samples:
        raise InputError(f"{name} has {arr.shape[0]} rows but there are {n_samples} samples.")
    if (arr < 0).any():
        raise InputError(f"{name} has negative entries; pass softmax outputs, not logits.")
    s = arr.sum(axis=1)
    worst = float(np.abs(s - 1).max())
    if worst > atol:
        raise InputError(
            f"{name} rows must sum to 1 (worst row sums to {s[np.argmax(np.abs(s - 1))]:.4g}); "
            "apply softmax to the logits first."
        )
    return arr / s[:, None]
