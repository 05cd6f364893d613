"""rank's combined rank: the median of the per-score ranks over COMBINED_SCORES (robust to one failing score)."""

from __future__ import annotations

import numpy as np
import pytest

from transferlens import ranking
from transferlens.report.naming import combined_word


def _rows(table: dict[str, list[float]]) -> list[dict]:
    n = len(next(iter(table.values())))
    return [{"model": f"m{i}", "scores": {s: v[i] for s, v in table.items() if np.isfinite(v[i])}} for i in range(n)]


def test_combined_rank_is_the_median_of_the_three_ranks_and_one_reversed_score_is_outvoted(monkeypatch):
    monkeypatch.setattr(ranking, "COMBINED_SCORES", ("logme", "ncti", "etran"))
    monkeypatch.setattr(ranking, "COMBINED_AGGREGATOR", "median")
    truth = np.arange(5, dtype=float)  # m4 is best
    rows = _rows({"logme": list(truth), "ncti": list(2 * truth), "etran": list(-truth), "knn_accuracy": list(-truth)})
    used = ranking._add_ranks(rows, ["logme", "ncti", "etran", "knn_accuracy"])
    assert used == ["logme", "ncti", "etran"]  # knn_accuracy is shown, not combined
    got = [r["combined_rank"] for r in rows]
    by_hand = [float(np.median([5 - i, 5 - i, i + 1])) for i in range(5)]  # ranks 1 = best
    assert got == pytest.approx(by_hand)
    assert np.argmin(got) == 4 and got == sorted(got, reverse=True)  # the reversed ETran is outvoted


def test_a_model_without_one_score_is_ranked_on_the_others(monkeypatch):
    monkeypatch.setattr(ranking, "COMBINED_SCORES", ("logme", "ncti", "etran"))
    monkeypatch.setattr(ranking, "COMBINED_AGGREGATOR", "median")
    rows = _rows({"logme": [1.0, 2.0, 3.0], "ncti": [1.0, 3.0, 2.0], "etran": [np.nan, 1.0, 2.0]})
    ranking._add_ranks(rows, ["logme", "ncti", "etran"])
    assert rows[0]["combined_rank"] == pytest.approx(3.0)  # median of its logme and ncti ranks (3, 3)
    assert rows[1]["combined_rank"] == pytest.approx(2.0)  # ranks 2, 1, 2


def test_without_any_combined_score_every_score_counts_by_mean_rank(monkeypatch):
    monkeypatch.setattr(ranking, "COMBINED_SCORES", ("logme", "ncti", "etran"))
    rows = _rows({"leep": [1.0, 2.0, 3.0], "nce": [3.0, 2.0, 1.0], "sfda": [1.0, 3.0, 2.0]})
    assert ranking._add_ranks(rows, ["leep", "nce", "sfda"]) == ["leep", "nce", "sfda"]
    assert rows[0]["combined_rank"] == pytest.approx(np.mean([3, 1, 3]))
    assert ranking.combined_method(["leep", "nce", "sfda"]) == "mean rank"
    assert combined_word({"combined": {"method": "mean rank (Borda) over scores"}}) == "mean rank"
    assert combined_word({"combined": {"method": "median rank over scores"}}) == "median rank"


def test_trimmed_mean_rank_drops_the_best_and_the_worst(monkeypatch):
    names = ["logme", "leep", "ncti", "knn_accuracy"]  # all higher-is-better
    monkeypatch.setattr(ranking, "COMBINED_SCORES", tuple(names))
    monkeypatch.setattr(ranking, "COMBINED_AGGREGATOR", "trimmed")
    rows = _rows(dict(zip(names, ([3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [3.0, 1.0, 2.0]))))
    ranking._add_ranks(rows, names)
    # ranks m0: 1, 1, 3, 1 -> drop a 1 and the 3 -> 1; m1: 2, 2, 2, 3 -> 2; m2: 3, 3, 1, 2 -> mean(2, 3) = 2.5
    assert [r["combined_rank"] for r in rows] == pytest.approx([1.0, 2.0, 2.5])
    assert ranking.combined_method(names) == "trimmed mean rank"
    rows = _rows(dict(zip(names, ([2.0, 1.0], [1.0, 2.0], [np.nan, np.nan], [np.nan, np.nan]))))
    ranking._add_ranks(rows, names)  # two ranks left: their mean
    assert [r["combined_rank"] for r in rows] == pytest.approx([1.5, 1.5])
