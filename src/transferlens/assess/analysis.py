"""Small computations of the workflow: held-out NCC, few-shot accuracy vs shots, agreement of the scores."""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from scipy.stats import kendalltau

from ..data.base import stratified_split
from ..metrics.fewshot import few_shot_eval


def holdout_ncc_accuracy(x: np.ndarray, y: np.ndarray, test_fraction: float = 0.5, seed: int = 0) -> float:
    """Nearest-class-centre accuracy: class means from a stratified train half, accuracy on the other half.

    Features are centred and L2-normalised first (cosine NCC), the usual few-shot protocol.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    train, test = stratified_split(y, test_fraction, seed)
    k = int(y.max()) + 1
    centres = np.zeros((k, x.shape[1]))
    np.add.at(centres, y[train], x[train])
    centres /= np.bincount(y[train], minlength=k).clip(1)[:, None]
    d2 = (x[test] ** 2).sum(1)[:, None] - 2 * x[test] @ centres.T + (centres**2).sum(1)[None]
    return float((d2.argmin(1) == y[test]).mean())


def fewshot_curve(x: np.ndarray, y: np.ndarray, shots: Sequence[int] = (1, 2, 5, 10, 20), *, n_episodes: int = 100,
                  seed: int = 0) -> dict:
    """K-way k-shot nearest-class-centre accuracy for each k in ``shots`` (K = every class of the task).

    Queries per class: half the smallest class, at most 15; shot counts the smallest class cannot supply
    besides the queries are left out (listed in ``skipped``).
    """
    y = np.asarray(y)
    k = int(y.max()) + 1
    smallest = int(np.bincount(y, minlength=k).min())
    n_query = min(15, max(1, smallest // 2))
    points, skipped = [], []
    for s in sorted(set(int(v) for v in shots)):
        if s < 1 or s + n_query > smallest or k < 2:
            skipped.append(s)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = few_shot_eval(x, y, n_way=k, k_shot=s, n_query=n_query, n_episodes=n_episodes, seed=seed)
        points.append({"shots": s, "accuracy": r.mean, "ci95": r.ci95})
    return {"n_way": k, "n_query": n_query, "n_episodes": n_episodes, "classifier": "ncc", "points": points,
            "skipped": skipped, "chance": 1.0 / k if k else None}


def score_agreement(rank: dict) -> dict:
    """How far each score agrees with the combined ranking: Kendall's tau over the scored models (1 = same order).

    Also, per model, the spread of its ranks over the combined scores (min, max) and how many put it first.
    """
    rows = [r for r in rank.get("models", []) if r.get("error") is None and r.get("combined_rank") is not None]
    combined_scores = rank.get("combined", {}).get("scores", [])
    per_score: dict[str, float | None] = {}
    for name in rank.get("scores", []):
        have = [r for r in rows if name in (r.get("ranks") or {})]
        if len(have) < 3:
            per_score[name] = None
            continue
        a = [r["ranks"][name] for r in have]
        b = [r["combined_rank"] for r in have]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tau = kendalltau(a, b).statistic
        per_score[name] = None if not np.isfinite(tau) else float(tau)
    per_model = {}
    for r in rows:
        ranks = [r["ranks"][s] for s in combined_scores if s in (r.get("ranks") or {})]
        per_model[r["model"]] = {"best_rank": min(ranks) if ranks else None, "worst_rank": max(ranks) if ranks else None,
                                 "n_first": int(sum(v == 1.0 for v in ranks)), "n_scores": len(ranks)}
    combined_taus = [per_score[s] for s in combined_scores if per_score.get(s) is not None]
    return {"method": "Kendall tau of each score's ranking vs the combined mean rank", "per_score": per_score,
            "mean_tau_combined_scores": float(np.mean(combined_taus)) if combined_taus else None, "per_model": per_model}
