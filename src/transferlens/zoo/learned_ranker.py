"""A learned ranker over transferability-score values and model-card features (issue 18, item 2), benchmark only.

Per target ``t`` with candidates ``i = 1..n_t``, a feature vector ``x_ti`` is built from

- the values of the scores (higher = better, as in ``bench scores``), **standardised within the target**:
  ``transform="z"``: ``(s_ti - mean_t(s)) / std_t(s)``; ``transform="rank"``: the same z-score applied to the
  within-target ranks of ``s`` (robust to one extreme value). Both are invariant to any increasing affine
  rescaling ``a * s + b`` (``a > 0``) of a score within a target, so scores on different scales and targets
  become comparable. A score missing on a candidate, or constant within the target (NCTI and ETran on the
  text targets), gives 0 (the target mean): it carries no information there;
- optionally (``use_card=True``) model-card features available for any model a user brings
  (:data:`CARD_FEATURES`): ``log10`` of the parameter count, ``log2`` of the embedding (feature) dimension,
  and the depth fraction of the tapped layer (layer index / largest layer index of that model among the
  target's candidates; 1 for a penultimate embedding), standardised within the target the same way.
  Architecture family or source data set are deliberately not used: they are not known for arbitrary models.

The model is a linear utility ``f(x) = w · x`` fitted by **pairwise logistic ranking** (RankNet, Burges et al.
2005 "Learning to rank using gradient descent", ICML; the pairwise-difference reduction of Joachims 2002
"Optimizing search engines using clickthrough data", KDD, with the logistic instead of the hinge loss):
for every pair ``(i, j)`` of candidates of one training target with ``y_ti != y_tj`` (``y``: the primary
ground truth, fine-tuning accuracy, linear probe for text)

    P(i beats j) = sigmoid(w · (x_ti - x_tj)),

and ``w`` minimises the L2-regularised logistic loss over all pairs (both orientations, no intercept;
each target's pairs weighted ``1 / n_pairs_t`` so every target counts equally), solved by scikit-learn's
``LogisticRegression(C=C, fit_intercept=False)``. A new target's candidates are ranked by ``w · x``.

Evaluation (:func:`evaluate`): the same grouped leave-one-group-out as :mod:`.selection`
(:func:`.selection.logo_folds`, metrics by :func:`.bench.compare`): each group is held out, the ranker is
fitted on the other groups' targets only and scored on the held-out group. The hyper-parameters
(``C`` and the transform) are chosen by an **inner** leave-one-group-out on the outer training groups
(best mean inner held-out weighted τ; ties: the first in grid order), so the held-out numbers are nested.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any, Sequence

import numpy as np
from scipy import stats

from ..errors import UsageError
from .selection import logo_folds

CARD_FEATURES = ("log10_params", "log2_embedding_dim", "depth_fraction")
TRANSFORMS = ("z", "rank")
C_GRID = (0.01, 0.1, 1.0, 10.0)
_LAYER = re.compile(r"^(?P<model>.+)@(?:.*?)(?P<index>\d+)$")


def standardise(x: np.ndarray, transform: str = "z") -> np.ndarray:
    """Column-wise within-target standardisation of ``x`` (candidates × features): z-scores of the values
    (``"z"``) or of their average ranks (``"rank"``); NaN and columns with < 2 distinct finite values give 0."""
    if transform not in TRANSFORMS:
        raise UsageError(f"unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}.")
    x = np.asarray(x, float)
    out = np.zeros_like(x)
    for k in range(x.shape[1]):
        col = x[:, k]
        ok = np.isfinite(col)
        if ok.sum() < 2 or np.ptp(col[ok]) == 0:
            continue
        v = stats.rankdata(col[ok], method="average") if transform == "rank" else col[ok]
        sd = v.std()
        if sd > 0:
            out[ok, k] = (v - v.mean()) / sd
    return out


def card_features(card: dict | None, layer_index: int | None = None, n_layers: int | None = None) -> dict[str, float]:
    """:data:`CARD_FEATURES` of one candidate from its model card (``parameters``; ``arch`` for the embedding
    dimension of a zoo architecture) and, for a tapped layer, its index among ``n_layers``; NaN where unknown."""
    out = {f: float("nan") for f in CARD_FEATURES}
    if card:
        if card.get("parameters"):
            out["log10_params"] = math.log10(float(card["parameters"]))
        dim = card.get("embedding_dim")
        if dim is None and isinstance(card.get("arch"), dict):
            from .archs import build_arch

            try:
                dim = build_arch(card["arch"]["name"], **dict(card["arch"].get("kwargs", {}))).embedding_dim
            except Exception:  # an architecture this version cannot build: unknown dimension
                dim = None
        if dim:
            out["log2_embedding_dim"] = math.log2(float(dim))
    out["depth_fraction"] = 1.0 if layer_index is None else (float(layer_index) / n_layers if n_layers else float("nan"))
    return out


def candidate_card_features(candidates: Sequence[str]) -> np.ndarray:
    """Card features (candidates × :data:`CARD_FEATURES`) of one target's candidate keys: ``zoo:NAME`` reads the
    zoo model card (penultimate embedding); ``MODEL@...N`` is layer ``N`` of ``MODEL`` (its card is not looked
    up: the model, hence parameter count and width, is the same for all its layers and so constant within the
    target; depth fraction = ``N`` / the largest index of ``MODEL`` among the candidates)."""
    from .registry import read_card

    layered = {c: _LAYER.match(c) for c in candidates if not c.startswith("zoo:")}
    deepest: dict[str, int] = {}
    for m in layered.values():
        if m:
            deepest[m["model"]] = max(deepest.get(m["model"], 0), int(m["index"]))
    rows = []
    for c in candidates:
        if c.startswith("zoo:"):
            rows.append(card_features(read_card(c[4:].split("@")[0])))
        elif layered.get(c):
            m = layered[c]
            rows.append(card_features(None, int(m["index"]), deepest[m["model"]]))
        else:
            rows.append(card_features(None))
    return np.array([[r[f] for f in CARD_FEATURES] for r in rows], float)


def target_matrix(scores: dict[str, Sequence[float]], score_names: Sequence[str], card: np.ndarray | None = None,
                  transform: str = "z") -> np.ndarray:
    """The standardised feature matrix (candidates × (scores [+ card features])) of one target."""
    raw = np.array([np.asarray(scores[s], float) for s in score_names]).T
    if card is not None:
        raw = np.hstack([raw, np.asarray(card, float)])
    return standardise(raw, transform)


def pairwise(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Differences ``x_i - x_j`` and labels ``y_i > y_j`` for every pair ``i < j`` of finite, unequal truth, both
    orientations (so the classes are balanced and no intercept is needed)."""
    y = np.asarray(y, float)
    ok = np.flatnonzero(np.isfinite(y))
    i, j = np.triu_indices(len(ok), 1)
    i, j = ok[i], ok[j]
    keep = y[i] != y[j]
    i, j = i[keep], j[keep]
    d = x[i] - x[j]
    lab = (y[i] > y[j]).astype(int)
    return np.vstack([d, -d]), np.concatenate([lab, 1 - lab])


def fit(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], C: float = 1.0) -> np.ndarray:
    """The weights ``w`` of the pairwise logistic ranker on training targets (``xs[t]``: standardised features,
    ``ys[t]``: truth); each target's pairs weigh ``1 / n_pairs_t`` in total."""
    from sklearn.linear_model import LogisticRegression

    ds, ls, ws = [], [], []
    for x, y in zip(xs, ys):
        d, lab = pairwise(x, y)
        if len(lab):
            ds.append(d)
            ls.append(lab)
            ws.append(np.full(len(lab), 1.0 / len(lab)))
    if not ds:
        raise UsageError("the learned ranker got no training pair (every training target has constant or missing truth).")
    d, lab, w = np.vstack(ds), np.concatenate(ls), np.concatenate(ws)
    model = LogisticRegression(C=C, fit_intercept=False, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on separable toy data; the weights are still used
        model.fit(d, lab, sample_weight=w * len(ds))
    return model.coef_[0].copy()


def _prepare(result: dict, targets: Sequence[str], score_names: Sequence[str], use_card: bool) -> dict[str, Any]:
    tabs = [result["targets"][t] for t in targets]
    cards = [candidate_card_features(tt["candidates"]) if use_card else None for tt in tabs]
    mats = {tr: [target_matrix(tt["scores"], score_names, c, tr) for tt, c in zip(tabs, cards)] for tr in TRANSFORMS}
    return {"x": mats, "y": [np.asarray(tt["truth"]["primary"], float) for tt in tabs]}


def _wtau_heldout(data: dict, transform: str, C: float, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    from .bench import compare

    x, y = data["x"][transform], data["y"]
    w = fit([x[k] for k in train], [y[k] for k in train], C)
    return np.array([compare(x[k] @ w, y[k])["weighted_tau"] for k in test])


def _choose(data: dict, groups: np.ndarray, idx: np.ndarray, grid: Sequence[tuple[str, float]]) -> tuple[tuple[str, float], dict]:
    """The grid point with the best mean leave-one-group-out weighted τ over the targets ``idx`` (ties: first)."""
    inner = {}
    for tr_c in grid:
        vals: list[float] = []
        for _, tr, te in logo_folds(list(groups[idx])):
            vals += list(_wtau_heldout(data, *tr_c, idx[tr], idx[te]))
        v = np.asarray(vals, float)
        inner[tr_c] = float(np.nanmean(v)) if np.isfinite(v).any() else -np.inf
    best = max(grid, key=lambda g: inner[g])
    return best, {f"{t} C={c:g}": m for (t, c), m in inner.items()}


def evaluate(result: dict, score_names: Sequence[str], targets: Sequence[str] | None = None, use_card: bool = True,
             transforms: Sequence[str] = TRANSFORMS, Cs: Sequence[float] = C_GRID) -> dict[str, Any]:
    """Nested grouped leave-one-group-out of the learned ranker on a ``bench scores`` result.

    Returns per target (in ``targets`` order) the held-out ``weighted_tau``, ``kendall_tau``, ``regret``; per
    outer fold the held-out group, the training groups, the chosen (transform, C) and the inner means; and
    ``final``: the hyper-parameters chosen by leave-one-group-out on all groups and the weights fitted on all
    targets with them (for the record; never used for the held-out numbers)."""
    from .bench import compare
    from .suite import group_of

    targets = list(targets or result["targets"])
    groups = np.asarray([result["targets"][t].get("group") or group_of(t) for t in targets], dtype=object)
    if len(set(groups)) < 3:
        raise UsageError(f"the learned ranker's nested evaluation needs targets from >= 3 groups, got {len(set(groups))}.")
    grid = [(t, float(c)) for t in transforms for c in Cs]
    data = _prepare(result, targets, score_names, use_card)
    held = {m: np.full(len(targets), np.nan) for m in ("weighted_tau", "kendall_tau", "regret")}
    folds = []
    for h, tr, te in logo_folds(list(groups)):
        (transform, C), inner = _choose(data, groups, tr, grid) if len(grid) > 1 else (grid[0], {})
        x, y = data["x"][transform], data["y"]
        w = fit([x[k] for k in tr], [y[k] for k in tr], C)
        for k in te:
            c = compare(x[k] @ w, y[k])
            for m in held:
                held[m][k] = c[m]
        folds.append({"held_out": h, "train_groups": sorted(set(groups[tr])), "transform": transform, "C": C, "inner_weighted_tau": inner})
    (transform, C), inner_all = _choose(data, groups, np.arange(len(targets)), grid) if len(grid) > 1 else (grid[0], {})
    x, y = data["x"][transform], data["y"]
    w = fit(x, y, C)
    names = list(score_names) + (list(CARD_FEATURES) if use_card else [])
    return {"targets": targets, "groups": list(groups), "held_out": held, "folds": folds,
            "final": {"transform": transform, "C": C, "inner_weighted_tau": inner_all, "weights": dict(zip(names, map(float, w)))}}
