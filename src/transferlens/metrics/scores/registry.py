"""Registry of the established transferability scores and a uniform way to call them.

``compute_score(name, features, labels, source_probs=..., pca_dim=..., **options)`` validates the inputs,
optionally reduces the features by PCA (the literature's remedy for N <~ D), times the call and returns a
:class:`ScoreResult` with the value, the reliability warnings and the per-model components of zoo-relative
scores. Zoo-relative scores (NCTI, ETran) are turned into comparable values with :func:`zoo_normalise`.
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ...errors import InputError, UsageError
from ...validation import as_labels, check_class_counts, check_features_labels, check_not_constant
from ._common import MIN_PER_CLASS, auto_pca_dim, check_class_sizes, pca_project, prepare_features
from .etran import etran_components, etran_energy, etran_unnormalised, etran_zoo
from .gbc import gbc
from .hscore import h_score, shrinkage_h_score
from .knn import knn_accuracy
from .leep import leep, nce
from .logme import logme
from .ncti import ncti_components, ncti_unnormalised, ncti_zoo
from .nleep import nleep
from .pactran import pactran_gaussian
from .sfda import sfda
from .transrate import transrate

#: Below this many samples per dimension covariance-based scores get a reliability warning.
_SAMPLES_PER_DIM = 5

# (features, labels, source_probs, options) -> (value, components)
_Array = np.ndarray | None
_Compute = Callable[[_Array, _Array, _Array, dict[str, Any]], tuple[float, dict[str, float]]]


@dataclass(frozen=True)
class ScoreInfo:
    """Metadata of one score. ``options`` are the keyword options its function accepts."""

    name: str
    description: str
    reference: str
    needs_labels: bool
    needs_source_probs: bool
    higher_is_better: bool
    zoo_relative: bool
    label_free: bool
    uses_features: bool
    closed_form: bool  # no iterative optimisation beyond a few fixed-point steps
    unreliable_when_n_le_d: bool  # covariance-based: saturates / is singular when N <= D
    options: tuple[str, ...]
    compute: _Compute = field(repr=False, compare=False)
    zoo_combine: Callable[[Sequence[Mapping[str, float]]], np.ndarray] | None = field(
        default=None, repr=False, compare=False
    )


@dataclass
class ScoreResult:
    """Result of :func:`compute_score`. ``value`` of a zoo-relative score is NOT comparable across models.

    ``seconds`` is the wall-clock of the whole call: validation, the optional PCA and the score itself.
    """

    name: str
    value: float
    higher_is_better: bool
    zoo_relative: bool
    seconds: float
    warnings: list[str]
    components: dict[str, float]
    n_samples: int
    n_features: int | None  # as given
    n_features_used: int | None  # after the optional PCA
    n_classes: int | None
    options: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (floats, ints, strings, lists)."""
        return asdict(self)


def _kw(fn: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY)


def _plain(fn: Callable[..., float]) -> _Compute:
    return lambda x, y, p, o: (float(fn(x, y, **o)), {})


def _ncti(x: Any, y: Any, p: Any, o: dict[str, Any]) -> tuple[float, dict[str, float]]:
    comp = ncti_components(x, y, **o)
    return ncti_unnormalised(comp), comp


def _etran(x: Any, y: Any, p: Any, o: dict[str, Any]) -> tuple[float, dict[str, float]]:
    comp = etran_components(x, y, **o)
    return etran_unnormalised(comp), comp


_LIT = {
    "logme": "You et al., ICML 2021 / JMLR 2022; github.com/thuml/LogME",
    "leep": "Nguyen et al., ICML 2020; thuml/LogME LEEP.py",
    "nce": "Tran et al., ICCV 2019; thuml/LogME NCE.py",
    "nleep": "Li et al., CVPR 2021; TencentARC/SFDA metrics.py::NLEEP",
    "h_score": "Bao et al., ICIP 2019; TLlib tllib/ranking/hscore.py",
    "shrinkage_h_score": "Ibrahim et al., NeurIPS 2021; TLlib regularized_h_score",
    "gbc": "Pandy et al., CVPR 2022; google-research stable_transfer/transferability/gbc.py",
    "transrate": "Huang et al., ICML 2022; TLlib tllib/ranking/transrate.py",
    "sfda": "Shao et al., ECCV 2022; TencentARC/SFDA metrics.py::SFDA_Score",
    "ncti": "Wang et al., ICCV 2023; BUserName/NCTI metrics.py::NCTI_Score",
    "etran": "Gholami et al., ICCV 2023; mgholamikn/ETran metrics.py + tw.py",
    "etran_energy": "Gholami et al., ICCV 2023; mgholamikn/ETran metrics.py::Energy_Score",
    "pactran_gaussian": "Ding et al., ECCV 2022; google-research/pactran_metrics compute_metrics.py",
    "knn_accuracy": "Sorkhei et al., arXiv 2503.18528 (2025); DINO-style k-NN protocol",
}


def _info(name: str, description: str, fn: Callable[..., Any], compute: _Compute, *, labels: bool = True,
          probs: bool = False, higher: bool = True, zoo: Callable[..., np.ndarray] | None = None,
          features: bool = True, closed: bool = True, n_le_d: bool = False) -> ScoreInfo:
    return ScoreInfo(
        name=name, description=description, reference=_LIT[name], needs_labels=labels, needs_source_probs=probs,
        higher_is_better=higher, zoo_relative=zoo is not None, label_free=not labels, uses_features=features,
        closed_form=closed, unreliable_when_n_le_d=n_le_d, options=_kw(fn), compute=compute, zoo_combine=zoo,
    )


SCORES: dict[str, ScoreInfo] = {
    s.name: s
    for s in [
        _info("logme", "Log maximum evidence of Bayesian linear regression on one-hot labels", logme, _plain(logme)),
        _info("leep", "Log expected empirical prediction of the source head (needs source probabilities)", leep,
              lambda x, y, p, o: (leep(p, y, **o), {}), probs=True, features=False),
        _info("nce", "Negative conditional entropy H(Y|Z), Z = argmax of the source head", nce,
              lambda x, y, p, o: (nce(p, y, **o), {}), probs=True, features=False),
        _info("nleep", "LEEP with a Gaussian mixture on PCA features as the 'source head'", nleep, _plain(nleep),
              closed=False),
        _info("h_score", "tr(cov(F)^+ cov(E[F|y])): linear class separability", h_score, _plain(h_score),
              n_le_d=True),
        _info("shrinkage_h_score", "H-score with the Ledoit-Wolf shrunk covariance", shrinkage_h_score,
              _plain(shrinkage_h_score)),
        _info("gbc", "Minus the summed Bhattacharyya overlap of per-class Gaussians (PCA 64)", gbc, _plain(gbc)),
        _info("transrate", "Coding rate of F minus the mean coding rate of each class", transrate,
              _plain(transrate), n_le_d=True),
        _info("sfda", "Self-challenging Fisher discriminant: LDA posterior after ConfMix", sfda, _plain(sfda),
              n_le_d=True),
        _info("ncti", "Neural-collapse index (SELI + NCC - VC), min-max over a zoo", ncti_components, _ncti,
              zoo=ncti_zoo),
        _info("etran", "0.15 energy + 0.85 LDA posterior, min-max over a zoo", etran_components, _etran,
              zoo=etran_zoo),  # the default Euclidean LDA uses no covariance; lda_metric='fisher' warns itself at N <= D
        _info("etran_energy", "ETran's label-free energy term (low tail of logsumexp of the features)",
              etran_energy, lambda x, y, p, o: (etran_energy(x, **o), {}), labels=False),
        _info("pactran_gaussian", "PAC-Bayes bound of a Gaussian-prior linear softmax head (LOWER is better)",
              pactran_gaussian, _plain(pactran_gaussian), higher=False, closed=False),
        _info("knn_accuracy", "Leave-one-out k-NN accuracy (cosine, k=20): the simple baseline", knn_accuracy,
              _plain(knn_accuracy)),
    ]
}


def list_scores(*, label_free: bool | None = None, needs_source_probs: bool | None = None) -> list[str]:
    """Names of the registered scores, optionally filtered by metadata.

    >>> "logme" in list_scores(), list_scores(label_free=True), list_scores(needs_source_probs=True)
    (True, ['etran_energy'], ['leep', 'nce'])
    """
    out = []
    for s in SCORES.values():
        if label_free is not None and s.label_free != label_free:
            continue
        if needs_source_probs is not None and s.needs_source_probs != needs_source_probs:
            continue
        out.append(s.name)
    return out


def get_score(name: str) -> ScoreInfo:
    """Metadata of ``name``; :class:`UsageError` listing the known names otherwise."""
    try:
        return SCORES[name]
    except KeyError:
        raise UsageError(f"unknown score {name!r}; known scores: {', '.join(SCORES)}.") from None


def compute_score(
    name: str,
    features: Any = None,
    labels: Any = None,
    *,
    source_probs: Any = None,
    pca_dim: int | float | str | None = None,
    **options: Any,
) -> ScoreResult:
    """Compute score ``name`` and return a :class:`ScoreResult`.

    ``pca_dim``: reduce the features by exact PCA first -- an int (dimensions), a float in (0, 1)
    (fraction of variance), ``'auto'`` (about N/10 dimensions, at least K, only when that is below D) or
    ``None``. ``options`` are passed to the score function (see ``SCORES[name].options``).
    Raises :class:`InputError` for unusable arrays (including constant features, which carry no information)
    and :class:`UsageError` for a wrong call.

    Example (features X (N, D), labels y in 0..K-1, as ``sklearn.metrics``)::

        >>> import numpy as np
        >>> rng = np.random.default_rng(0); y = np.repeat(np.arange(3), 20)
        >>> X = rng.normal(size=(60, 5)) + 3 * np.eye(5)[y]          # three well separated classes
        >>> r = compute_score("knn_accuracy", X, y)
        >>> r.higher_is_better, r.value
        (True, 0.95)
    """
    info = get_score(name)
    bad = sorted(set(options) - set(info.options))
    if bad:
        raise UsageError(f"score {name!r} has no option(s) {bad}; its options are {list(info.options)}.")
    if info.needs_labels and labels is None:
        raise UsageError(
            f"score {name!r} needs target labels; without labels use one of {list_scores(label_free=True)}."
        )
    if info.needs_source_probs and source_probs is None:
        raise UsageError(f"score {name!r} needs source_probs (softmax of the model's own source head).")
    if info.uses_features and features is None:
        raise UsageError(f"score {name!r} needs features (N, D).")

    start = time.perf_counter()
    notes: list[str] = []
    x = prepare_features(features) if features is not None else None
    if x is not None and info.uses_features:
        check_not_constant(x)
    y = None
    k = None
    if labels is not None and info.needs_labels:
        if x is not None:
            x, y, k = check_features_labels(x, labels, min_per_class=MIN_PER_CLASS)
        else:
            y = as_labels(labels)
            k = check_class_counts(y, min_per_class=MIN_PER_CLASS)
    n = x.shape[0] if x is not None else (y.shape[0] if y is not None else 0)
    d_in = x.shape[1] if x is not None else None
    used_options = dict(options)
    if pca_dim is not None and x is not None and info.uses_features:
        target = auto_pca_dim(x.shape[0], x.shape[1], k) if pca_dim == "auto" else pca_dim
        if isinstance(target, str):
            raise UsageError(f"pca_dim must be an int, a fraction in (0, 1), 'auto' or None; got {pca_dim!r}.")
        if pca_dim != "auto" or target < x.shape[1]:
            x = pca_project(x, target)
            notes.append(f"features reduced by PCA from D={d_in} to {x.shape[1]} dimensions")
        used_options["pca_dim"] = pca_dim
    elif pca_dim is not None:
        notes.append(f"pca_dim ignored: {name!r} does not use the features")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if y is not None:
            check_class_sizes(y, k)
        value, components = info.compute(x, y, source_probs, options)
    seconds = time.perf_counter() - start

    msgs = notes + [str(w.message) for w in caught]
    if info.unreliable_when_n_le_d and x is not None and x.shape[1] < n < _SAMPLES_PER_DIM * x.shape[1]:
        msgs.append(
            f"N={n} < {_SAMPLES_PER_DIM}*D={_SAMPLES_PER_DIM * x.shape[1]}: the covariance estimate behind "
            f"{name} is noisy and biased towards separability; consider pca_dim='auto'."
        )
    if info.zoo_relative:
        msgs.append(
            f"{name} is zoo-relative: 'value' is the un-normalised combination of its components and is not "
            f"comparable across models; rank a zoo with zoo_normalise({name!r}, results)."
        )
    seen: set[str] = set()
    msgs = [m for m in msgs if not (m in seen or seen.add(m))]
    return ScoreResult(
        name=name, value=float(value), higher_is_better=info.higher_is_better, zoo_relative=info.zoo_relative,
        seconds=seconds, warnings=msgs, components={k_: float(v) for k_, v in components.items()}, n_samples=n,
        n_features=d_in, n_features_used=x.shape[1] if x is not None else None, n_classes=k, options=used_options,
    )


def zoo_normalise(name: str, results: Sequence[ScoreResult | Mapping[str, float]]) -> np.ndarray:
    """Comparable values of score ``name`` for the models of one zoo (same target data), in input order.

    For zoo-relative scores (NCTI, ETran) this applies the papers' min-max combination of the
    per-model components (``ScoreResult.components`` or the component dicts); for the other scores it
    returns the values unchanged. Orientation is the score's own (see ``higher_is_better``).
    """
    info = get_score(name)
    if not results:
        raise InputError("zoo_normalise needs at least one result.")
    if info.zoo_combine is None:
        return np.array([r.value if isinstance(r, ScoreResult) else r["value"] for r in results], dtype=np.float64)
    comps = []
    for r in results:
        if isinstance(r, ScoreResult):
            if r.name != name:
                raise InputError(f"zoo_normalise({name!r}) got a result of score {r.name!r}.")
            comps.append(r.components)
        else:
            comps.append(r)
    if len(comps) < 2:
        warnings.warn(f"{name} over a zoo of one model is constant (0).", stacklevel=2)
    return info.zoo_combine(comps)
