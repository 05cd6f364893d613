"""``rank_models``: score candidate models on a target dataset and rank them.

For each model: extract (cached) the features of the chosen layer (default: the penultimate layer, i.e.
the embedding before the classifier) and, when the model has a source classifier head, its logits for
the scores that need source probabilities (LEEP, NCE); compute every requested score; normalise the
zoo-relative scores (NCTI, ETran) across the models; rank the models by each score.

The combined recommendation aggregates the per-score ranks over ``COMBINED_SCORES`` with ``COMBINED_AGGREGATOR``
(mean: a Borda count; median; trimmed: the mean without the best and the worst rank, robust to one score that
fails on a target). Ranks are scale-free, so scores with different units combine without tuning. The rule is
what the nested grouped leave-one-group-out selection chose over the 42-target suite of zoo models joined by all
35 image targets of the suite scored on the real ImageNet pool (``benchmarks/real_selection.py``,
``benchmarks/results/real/selection_with_real.md``, docs/validity.md): **the mean rank of LogME and kNN
accuracy**. Held out over the 77 targets the nested procedure scores mean weighted τ 0.66 [0.60, 0.71] against
0.62 [0.56, 0.68] for the best single score (LogME or kNN accuracy, fold by fold); the rule fixed in advance
ships the combination when the nested procedure is ahead (with the 7 text targets also scored on the real
text pool, 84 targets: nested 0.64 [0.58, 0.69] vs single 0.62, same pick). The difference is small (paired,
target by target, nested − single +0.04 [0.01, 0.06], an optimistic interval: targets of one group are
correlated); docs/validity.md says what it does and does not mean. A test keeps
``COMBINED_SCORES`` / ``COMBINED_AGGREGATOR`` equal to the committed selection. A model lacking one of the
combined scores is ranked on the others; when no candidate has any of them, the mean rank over every computed
score counts.

A model that cannot be loaded, or a score that fails on it, is recorded with its error and the others
go on.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
from scipy.special import softmax
from scipy.stats import rankdata

from .data import load_data
from .errors import InputError, TransferLensError, UsageError
from .features import extract
from .metrics.scores import compute_score, get_score, list_scores, zoo_normalise
from .metrics.scores._common import MIN_PER_CLASS
from .models import resolve_model
from .validation import check_class_counts

RELATEDNESS_SCORES = ("task_relatedness", "task_relatedness_label_free")  # lower is better; need a reference task
DEFAULT_SCORES = ("logme", "leep", "nce", "h_score", "shrinkage_h_score", "gbc", "transrate", "sfda", "ncti", "etran",
                  "pactran_gaussian", "knn_accuracy")
#: chosen by the nested selection over the suite + the real pool (benchmarks/real_selection.py,
#: benchmarks/results/real/selection_with_real.md; docs/validity.md)
COMBINED_SCORES = ("logme", "knn_accuracy")
#: how the per-score ranks combine: "mean" (a Borda count), "median", or "trimmed" (the mean after dropping the
#: best and the worst rank, when >= 3 are there); the same selection chose it
COMBINED_AGGREGATOR = "mean"
_HEAD_NAMES = {"fc", "head", "classifier"}


def is_logits_layer(name: str) -> bool:
    """Whether a layer name is a classifier head (timm/torchvision ``fc``/``head``/``classifier``, zoo ``head``)."""
    parts = name.split(".")
    return parts[-1] in _HEAD_NAMES or parts[0] == "classifier"


def _higher_is_better(name: str) -> bool:
    return False if name in RELATEDNESS_SCORES else get_score(name).higher_is_better


def _zoo_relative(name: str) -> bool:
    return False if name in RELATEDNESS_SCORES else get_score(name).zoo_relative


def reference_task(model: str, reference_data: str | None, max_samples: int = 2000) -> tuple[str, Any]:
    """The reference data URI and head ``(W, b)`` for task-relatedness.

    Zoo models carry both: the source task of their model card (subsampled to about ``max_samples``) and
    their own classifier head. Other models need ``reference_data`` (a labelled URI); their head is then
    retrained on it by the method itself.
    """
    from .uri import parse_uri

    ref = resolve_model(model)
    card = ref.info.get("card")
    if reference_data is None and card is None:
        raise UsageError(f"task-relatedness needs a reference task for {model}: pass --reference-data (only zoo models carry their source data).")
    head = None
    if card is not None:
        module = ref.load().module
        linear = getattr(module, "head", None)
        if linear is not None and hasattr(linear, "weight"):
            head = (linear.weight.detach().double().numpy(), linear.bias.detach().double().numpy())
        if reference_data is None:
            uri = parse_uri(card["source"]["uri"])
            k = int(card["source"]["n_classes"])
            available = (int(card["source"]["n_train"]) + int(card["source"]["n_val"])) // k
            per_class = max(2, min(max_samples // k, available))
            params = {**uri.params, "n_per_class": str(per_class)}
            reference_data = type(uri)(uri.scheme, uri.path, params).canonical()
    return reference_data, head


def _relatedness(model: str, ref: Any, feat_layer: str, fs: Any, use_labels: bool, label_free: bool,
                 reference_data: str | None, pool: str, seed: int) -> tuple[float, dict]:
    from .metrics.relatedness import task_relatedness

    ref_uri, head = reference_task(model, reference_data)
    ref_fs = extract(ref, ref_uri, feat_layer, pool=pool)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = task_relatedness(ref_fs[feat_layer], ref_fs.labels, fs[feat_layer],
                                  None if label_free or not use_labels else fs.labels, reference_head=head, seed=seed)
    record = result.as_record()
    record["warnings"] = sorted(set(record.get("warnings") or []) | {str(w.message) for w in caught})
    record["reference_data"] = ref_uri
    return float(result.terms.bound), record


def _empty_row(model: str) -> dict[str, Any]:
    return {"model": model, "error": None, "layer": None, "scores": {}, "warnings": {}, "seconds": {}}


def score_candidate(model: str, data: Any, names: list[str], *, layer: str = "penultimate", use_labels: bool = True,
                    pca_dim: Any = None, pool: str = "auto", reference_data: str | None = None, seed: int = 0,
                    progress: bool = False) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Score one candidate on ``data`` (a URI, or a loaded ``Dataset``): its record row and raw score results.

    Extracts (cached) the features, computes every score in ``names`` and fills the row; zoo-relative
    scores are left raw (``rank_models`` normalises them across the models). A model that cannot be
    resolved or extracted gives a row with its ``error`` and ``None`` raw results; a failing score gives
    a warning. Module-level and picklable: it is the unit of work of the executors (one Ray task each).
    """
    row = _empty_row(model)
    t0 = time.perf_counter()
    try:
        dataset = load_data(data) if isinstance(data, str) else data
        ref = resolve_model(model)
        fs = extract(ref, dataset, f"{layer},last" if ref.kind == "image" else layer, pool=pool, progress=progress)
    except TransferLensError as exc:
        row["error"] = str(exc)
        return row, None
    feat_layer = fs.layers[0]
    row["layer"] = feat_layer
    row["dim"] = int(fs[feat_layer].shape[1])
    row["seconds"]["extract"] = round(time.perf_counter() - t0, 3)
    logits_layer = fs.layers[-1] if len(fs.layers) > 1 and is_logits_layer(fs.layers[-1]) else None
    source_probs = softmax(fs[logits_layer].astype(np.float64), axis=1) if logits_layer else None
    raw: dict[str, Any] = {}
    for name in names:
        if name in RELATEDNESS_SCORES:
            try:
                value, detail = _relatedness(model, ref, feat_layer, fs, use_labels, name.endswith("label_free"), reference_data, pool, seed)
            except TransferLensError as exc:
                row["warnings"][name] = [f"failed: {exc}"]
                continue
            row["scores"][name] = value
            row["seconds"][name] = round(float(detail.get("seconds") or 0.0), 3)
            row.setdefault("relatedness", {})[name] = {k: detail[k] for k in detail if k not in ("B", "D", "head_candidates")}
            if detail.get("warnings"):
                row["warnings"][name] = list(detail["warnings"])
            continue
        info = get_score(name)
        if info.needs_source_probs and source_probs is None:
            row["warnings"][name] = ["skipped: the model has no source classifier head"]
            continue
        try:
            res = compute_score(name, fs[feat_layer] if info.uses_features else None,
                                fs.labels if use_labels else None, source_probs=source_probs,
                                pca_dim=pca_dim if info.uses_features else None)
        except TransferLensError as exc:
            row["warnings"][name] = [f"failed: {exc}"]
            continue
        raw[name] = res
        row["scores"][name] = res.value
        row["seconds"][name] = round(res.seconds, 4)
        kept = [w for w in res.warnings if not (info.zoo_relative and "zoo-relative" in w)]  # normalised by rank_models
        if kept:
            row["warnings"][name] = kept
    return row, raw


def rank_models(models: list[str], data: str, *, scores: list[str] | None = None, layer: str = "penultimate",
                use_labels: bool = True, pca_dim: Any = None, pool: str = "auto", progress: bool = False,
                reference_data: str | None = None, seed: int = 0, executor: str = "local",
                address: str | None = None) -> dict:
    """Score and rank ``models`` on ``data``; returns a record-ready dict (see ``schemas/rank.schema.json``).

    ``scores`` may include ``task_relatedness`` / ``task_relatedness_label_free`` (the bound; lower is
    better), which need a reference task: zoo models bring theirs, others need ``reference_data``.

    ``executor``: ``local`` scores the models one after another in this process; ``ray`` runs one Ray
    task per model (:func:`score_candidate`), connecting to ``address`` if given (see
    :mod:`transferlens.executors`). The record is the same whichever ran it.

    Example (``ranking``: best first, by the combined mean rank; per-model scores in ``models``)::

        >>> rec = rank_models(["zoo:mlp-g50-s16", "zoo:vgg-g50"], "builtin:digits-uci?n_per_class=10", scores=["logme"])
        >>> rec["ranking"], rec["recommended"]
        (['zoo:mlp-g50-s16', 'zoo:vgg-g50'], 'zoo:mlp-g50-s16')
    """
    from .executors import check_executor, map_tasks

    check_executor(executor, address)
    if len(models) < 1:
        raise UsageError("rank needs at least one --model.")
    if len(set(models)) != len(models):
        raise UsageError("rank got the same --model twice.")
    names = list(scores) if scores else (list(DEFAULT_SCORES) if use_labels else list_scores(label_free=True))
    for name in names:
        if name in RELATEDNESS_SCORES:
            if name == "task_relatedness" and not use_labels:
                raise UsageError("task_relatedness needs labels; without labels use task_relatedness_label_free.")
            continue
        info = get_score(name)
        if not use_labels and info.needs_labels:
            raise UsageError(f"score {name!r} needs labels; without labels use {', '.join(list_scores(label_free=True))}.")
    dataset = load_data(data)
    if use_labels:  # what every labelled score needs, checked once before any model is loaded
        try:
            check_class_counts(dataset.labels, min_per_class=MIN_PER_CLASS, class_names=dataset.class_names)
        except InputError as exc:
            raise InputError(f"{dataset.uri}: {exc} Labelled scores need >= {MIN_PER_CLASS} samples in each of >= 2 "
                             "classes (or rank with --no-labels).") from None
    rows: list[dict] = []
    raw: dict[str, dict[str, Any]] = {}

    def failed(model: str, exc: BaseException) -> tuple[dict[str, Any], None]:
        if not isinstance(exc, TransferLensError):  # a bug: raised, as it always was
            raise exc
        row = _empty_row(model)
        row["error"] = str(exc)
        return row, None

    local = executor == "local"  # in process: the loaded dataset and per-batch progress; remote: the URI
    results = map_tasks(score_candidate, models, executor=executor, address=address, on_error=failed,
                        progress=progress and not local,
                        kwargs={"data": dataset if local else data, "names": names, "layer": layer,
                                "use_labels": use_labels, "pca_dim": pca_dim, "pool": pool,
                                "reference_data": reference_data, "seed": seed, "progress": progress and local})
    for model, (row, model_raw) in zip(models, results):
        rows.append(row)
        if model_raw is not None:
            raw[model] = model_raw
    # zoo-relative scores: combine across the models that have them
    for name in names:
        have = [m for m in raw if name in raw[m]]
        if have and _zoo_relative(name):
            with warnings.catch_warnings(record=True) as caught:  # e.g. a zoo of one model: kept in the rows
                warnings.simplefilter("always")
                values = zoo_normalise(name, [raw[m][name] for m in have])
            for m, v in zip(have, values):
                row = next(r for r in rows if r["model"] == m)
                row["scores"][name] = float(v)
                comps = getattr(raw[m][name], "components", None)
                if comps:  # the per-model parts, so that a caller can combine candidates of several calls
                    row.setdefault("components", {})[name] = {k: float(x) for k, x in comps.items()}
                if caught:
                    row["warnings"].setdefault(name, []).extend(str(w.message) for w in caught)
    combined = _add_ranks(rows, names)
    ok = [r for r in rows if r["error"] is None]
    ranked = sorted(ok, key=lambda r: (r.get("combined_rank") is None, r.get("combined_rank") or 0.0))
    scored = [r for r in ranked if r.get("combined_rank") is not None]  # a model without any score is never recommended
    return {
        "data": dataset.uri, "n_samples": len(dataset), "n_classes": dataset.n_classes, "layer_request": layer,
        "pool": pool, "labels_used": use_labels, "pca_dim": pca_dim, "scores": names,
        "combined": {"method": f"{combined_method(combined)} over scores", "scores": combined},
        "zoo_relative": [n for n in names if _zoo_relative(n)],
        "higher_is_better": {n: _higher_is_better(n) for n in names},
        "ranking": [r["model"] for r in ranked], "recommended": scored[0]["model"] if scored else None,
        "models": rows,
    }


def _add_ranks(rows: list[dict], names: list[str]) -> list[str]:
    """Per-score ranks (1 = best) among the models that have the score, and the combined rank: the ranks over
    ``COMBINED_SCORES`` aggregated by ``COMBINED_AGGREGATOR`` (a model's missing scores are left out), or the mean
    rank over every score when no model has one of those; returns the scores combined."""
    for name in names:
        have = [r for r in rows if name in r["scores"] and np.isfinite(r["scores"][name])]
        if not have:
            continue
        sign = -1.0 if _higher_is_better(name) else 1.0
        ranks = rankdata([sign * r["scores"][name] for r in have], method="average")
        for r, k in zip(have, ranks):
            r.setdefault("ranks", {})[name] = float(k)
    combined = [s for s in COMBINED_SCORES if s in names and any(s in r.get("ranks", {}) for r in rows)]
    aggregate = {"median": np.median, "trimmed": _trimmed_mean}.get(COMBINED_AGGREGATOR, np.mean) if combined else np.mean
    combined = combined or list(names)
    for r in rows:
        got = [r.get("ranks", {}).get(s) for s in combined]
        got = [g for g in got if g is not None]
        r["combined_rank"] = float(aggregate(got)) if got else None
    return combined


def _trimmed_mean(ranks: list[float]) -> float:
    """Mean of the ranks without the best and the worst one (all of them when fewer than 3)."""
    r = np.sort(np.asarray(ranks, dtype=np.float64))
    return float(r[1:-1].mean()) if r.size >= 3 else float(r.mean())


def combined_method(combined: list[str]) -> str:
    """How :func:`_add_ranks` combined ``combined`` (the words the report and the CLI print)."""
    if not set(combined) <= set(COMBINED_SCORES):
        return "mean rank"
    return {"median": "median rank", "trimmed": "trimmed mean rank"}.get(COMBINED_AGGREGATOR, "mean rank")
