"""The decision, the agreement of the scores and few-shot curves, on small hand-made records."""

from __future__ import annotations

import numpy as np
import pytest

from transferlens.assess import decide, fewshot_curve, score_agreement
from transferlens.report.naming import data_label

OOD = ["shift:blur:3:builtin:digits?split=test", "builtin:digits-uci?split=test"]


def _rank(order: list[str], scores: dict[str, list[float]]) -> dict:
    """A rank record: ``scores[name][i]`` is model ``order[i]``'s rank by that score."""
    rows = []
    for i, m in enumerate(order):
        ranks = {s: float(v[i]) for s, v in scores.items()}
        rows.append({"model": m, "error": None, "layer": "flatten", "scores": {s: -r for s, r in ranks.items()},
                     "ranks": ranks, "combined_rank": float(np.mean(list(ranks.values()))), "warnings": {}})
    ranked = sorted(rows, key=lambda r: r["combined_rank"])
    rank = {"ranking": [r["model"] for r in ranked], "models": rows, "scores": list(scores),
            "combined": {"scores": list(scores)}}
    rank["agreement"] = score_agreement(rank)
    return rank


def _probe(id_acc: list[float], ood_mean: list[float]) -> dict:
    layers = [{"layer": f"l{i}", "index": i, "id_accuracy": a, "ood_mean_accuracy": o,
               "ood_accuracy": {OOD[0]: o, OOD[1]: o}} for i, (a, o) in enumerate(zip(id_acc, ood_mean))]
    best = int(np.lexsort((np.arange(len(layers)), -np.array(id_acc), -np.array(ood_mean)))[0])
    peak = int(np.argmax(ood_mean))
    start = peak if peak < len(layers) - 1 and ood_mean[peak] > ood_mean[-1] else None
    mean = {"start": start, "length": 0 if start is None else len(layers) - 1 - peak,
            "pct_retained": 100 * ood_mean[-1] / max(ood_mean), "strength": "strong"}
    return {"layers": layers, "ood_data": OOD, "chance_accuracy": 0.1, "recommendation": {"layer": f"l{best}", "index": best},
            "tunnel": {"mean": mean}}


def test_the_most_robust_probed_model_wins_and_the_tunnel_is_explained():
    rank = _rank(["a", "b", "c"], {"s1": [1, 2, 3], "s2": [1, 3, 2]})
    probes = {"a": _probe([0.9, 0.95, 0.97], [0.5, 0.55, 0.6]), "b": _probe([0.8, 0.9, 0.92], [0.6, 0.7, 0.4])}
    d = decide({}, None, rank, probes, {}, [])
    assert d["model"] == "b" and d["layer"] == "l1" and d["basis"] == "ood" and d["rank_position"] == 2
    why = " ".join(d["why"])
    assert "70.0% on average over 2 OOD sets (blur (severity 3), digits-uci)" in why
    assert "not of the last layer l2" in why
    assert "If only in-distribution accuracy matters, a (its best ID layer l2) is ahead" in why
    assert "The scores' favourite, a, was probed too" in why


def test_measured_differences_within_noise_are_broken_by_the_scores():
    rank = _rank(["a", "b"], {"s1": [1, 2]})
    probes = {"a": _probe([0.9, 0.95], [0.5, 0.595]), "b": _probe([0.9, 0.95], [0.5, 0.6])}
    d = decide({}, None, rank, probes, {}, [])
    assert d["model"] == "a" and "the transferability scores break the tie" in " ".join(d["why"])
    probes["b"] = _probe([0.9, 0.95], [0.5, 0.62])
    assert decide({}, None, rank, probes, {}, [])["model"] == "b"


def test_without_ood_the_best_id_probe_wins():
    rank = _rank(["a", "b"], {"s1": [1, 2]})
    pa, pb = _probe([0.7, 0.8], [0.1, 0.1]), _probe([0.9, 0.85], [0.1, 0.1])
    for p in (pa, pb):
        p["ood_data"] = []
        for row in p["layers"]:
            row["ood_mean_accuracy"], row["ood_accuracy"] = None, {}
    pa["recommendation"] = {"layer": "l1", "index": 1}
    pb["recommendation"] = {"layer": "l0", "index": 0}
    d = decide({}, None, rank, {"a": pa, "b": pb}, {}, [])
    assert d["model"] == "b" and d["basis"] == "id" and "No OOD data was given" in " ".join(d["why"])


def test_without_probes_the_scores_decide_and_without_scores_nothing_is_recommended():
    rank = _rank(["a", "b"], {"s1": [2, 1]})
    d = decide({}, None, rank, {}, {}, ["Stage probe:b failed: x"])
    assert d["model"] == "b" and d["basis"] == "scores" and d["layer"] == "flatten"
    assert any("scores alone" in c for c in d["caveats"]) and "Stage probe:b failed: x" in d["caveats"]
    d = decide({}, None, None, {}, {}, ["Stage data failed: y"])
    assert d["model"] is None and d["headline"].startswith("No recommendation") and d["caveats"] == ["Stage data failed: y"]


def test_a_model_without_any_score_is_never_recommended():
    rank = _rank(["a", "b"], {"s1": [2, 1]})
    for row in rank["models"]:  # loaded, but every score failed: no combined rank
        row.update(scores={}, ranks={}, combined_rank=None)
    d = decide({}, None, rank, {}, {}, [])
    assert d["model"] is None and d["headline"].startswith("No recommendation")
    rank = _rank(["a", "b"], {"s1": [2, 1]})
    rank["models"][1].update(scores={}, ranks={}, combined_rank=None)  # b unscored: a is the only candidate
    assert decide({}, None, rank, {}, {}, [])["model"] == "a"


def test_score_agreement_is_kendall_tau_with_the_combined_order():
    rank = _rank(list("abcd"), {"same": [1, 2, 3, 4], "also": [1, 2, 3, 4], "reverse": [4, 3, 2, 1]})
    agree = score_agreement(rank)
    # combined mean ranks: 2, 2.33, 2.67, 3 -> same order as "same"
    assert agree["per_score"]["same"] == pytest.approx(1.0) and agree["per_score"]["reverse"] == pytest.approx(-1.0)
    assert agree["per_model"]["a"] == {"best_rank": 1.0, "worst_rank": 4.0, "n_first": 2, "n_scores": 3}
    assert score_agreement(_rank(["a", "b"], {"s": [1, 2]}))["per_score"]["s"] is None  # < 3 models: undefined


def test_fewshot_curve_rises_with_shots_on_separable_data():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 12)
    x = rng.normal(size=(4, 8))[y] * 1.5 + rng.normal(size=(48, 8))
    c = fewshot_curve(x, y, (1, 5, 20), n_episodes=50)
    assert c["n_query"] == 6 and [p["shots"] for p in c["points"]] == [1, 5] and c["skipped"] == [20]
    assert c["points"][1]["accuracy"] > c["points"][0]["accuracy"] > 0.25
    noise = fewshot_curve(rng.normal(size=(48, 8)), y, (5,), n_episodes=200)
    assert abs(noise["points"][0]["accuracy"] - 0.25) < 0.08


@pytest.mark.parametrize("uri, label", [
    ("shift:gaussian_noise:3:builtin:digits?split=test&n_per_class=100", "gaussian noise (severity 3)"),
    ("builtin:digits-uci?split=test&n_per_class=40", "digits-uci"),
    ("imagefolder:/data/field/photos?split=test", "photos"),
])
def test_data_labels(uri, label):
    assert data_label(uri) == label
