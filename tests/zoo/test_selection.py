"""Nested grouped selection of rank's default rule (zoo/selection.py) on synthetic bench results."""

from __future__ import annotations

import numpy as np
import pytest

from transferlens.zoo import selection


def _result(n_groups: int = 4, per_group: int = 3, n_cand: int = 10, seed: int = 0) -> dict:
    """A bench result where score 'good' is the truth plus small noise and the others are noise (or worse)."""
    rng = np.random.default_rng(seed)
    targets = {}
    for g in range(n_groups):
        for k in range(per_group):
            truth = rng.uniform(0.3, 0.9, n_cand)
            targets[f"g{g}-t{k}"] = {"group": f"g{g}", "truth": {"primary": truth.tolist()}, "scores": {
                "good": (truth + rng.normal(0, 0.02, n_cand)).tolist(),
                "noise1": rng.normal(size=n_cand).tolist(),
                "noise2": rng.normal(size=n_cand).tolist(),
                "anti": (-truth).tolist(),
            }}
    return {"scores": ["good", "noise1", "noise2", "anti"], "targets": targets}


def test_planted_best_score_is_picked_held_out_and_shipped():
    sel = selection.select_default(_result(), n_boot=200, fixed={"reversed": ("mean", ("anti",))})
    d = sel["paired_weighted_tau"]["single - reversed"]  # held-out "good" minus the reversed score's -1, per target
    assert d["mean"] == pytest.approx(sel["procedures"]["single"]["weighted_tau"]["mean"] + 1.0) and d["low"] > 1.5
    assert sel["default"]["scores"] == ["good"] and sel["default"]["aggregator"] == "mean"
    assert set(sel["procedures"]["single"]["rules_chosen"]) == {"good"}
    assert sel["procedures"]["nested"]["weighted_tau"]["mean"] > 0.8
    assert sel["fixed_rules"]["anti"]["weighted_tau"]["mean"] == pytest.approx(-1.0)
    assert "| nested |" in selection.markdown(sel)


def test_median_rank_is_robust_to_one_reversed_score():
    truth = np.arange(6, dtype=float)
    table = {"a": truth + 0.1, "b": truth * 2, "c": -truth}
    med = selection.aggregate(table, ("median", ("a", "b", "c")))
    assert np.array_equal(np.argsort(-med), np.argsort(-truth))  # the reversed score is outvoted
    assert np.ptp(selection.aggregate(table, ("mean", ("a", "b", "c")))) < np.ptp(med)  # the mean is pulled flat
    # trimmed Borda by hand: ranks of candidate 0 under a, b, c are 6, 6, 1 -> drop 6 and 1 -> 6
    assert selection.aggregate(table, ("trimmed", ("a", "b", "c")))[0] == pytest.approx(-6.0)


def test_missing_scores_fall_back_to_the_mean_rank_of_all():
    table = {"a": np.array([3.0, 2.0, 1.0]), "b": np.array([np.nan] * 3)}
    got = selection.aggregate(table, ("mean", ("b",)), fallback=("a", "b"))
    assert np.array_equal(got, -np.array([1.0, 2.0, 3.0]))
    assert np.isnan(selection.aggregate(table, ("mean", ("b",)))).all()


def test_grouped_folds_never_split_a_group():
    rng = np.random.default_rng(3)
    groups = list(rng.choice(["a", "b", "c", "d", "e"], size=40))
    folds = selection.logo_folds(groups)
    assert sorted(h for h, _, _ in folds) == sorted(set(groups))
    covered = np.concatenate([te for _, _, te in folds])
    assert sorted(covered.tolist()) == list(range(40))  # every target held out exactly once
    for h, tr, te in folds:
        assert {groups[i] for i in te} == {h} and h not in {groups[i] for i in tr}


def test_bootstrap_ci_contains_the_mean_and_is_deterministic():
    v = np.random.default_rng(1).normal(0.5, 0.2, 25)
    m, lo, hi = selection.bootstrap_ci(v, n_boot=500, seed=7)
    assert m == pytest.approx(v.mean()) and lo < m < hi
    assert selection.bootstrap_ci(v, n_boot=500, seed=7) == (m, lo, hi)
    assert selection.bootstrap_ci(v, n_boot=500, seed=8) != (m, lo, hi)
    assert selection.bootstrap_ci([np.nan, 0.3, 0.3], n_boot=50) == (0.3, 0.3, 0.3)  # NaN dropped, constant data


def test_nested_selection_does_not_see_the_held_out_group():
    """A score perfect only on one group's targets and reversed elsewhere is never chosen for that group."""
    res = _result(n_groups=4)
    for name, t in res["targets"].items():
        truth = np.asarray(t["truth"]["primary"])
        t["scores"]["local"] = (truth if t["group"] == "g0" else -truth).tolist()
    res["scores"].append("local")
    sel = selection.select_default(res, n_boot=100)
    folds = dict(zip(dict.fromkeys(sel["groups"]), sel["procedures"]["single"]["rules_chosen"]))
    assert folds["g0"] == "good"  # chosen without g0, where "local" is reversed
    assert sel["per_target_heldout_weighted_tau"]["single"]["g0-t0"] < 1.0  # "good" is noisy, "local" would be 1
    with pytest.raises(Exception, match=">= 3 groups"):
        selection.select_default({"scores": ["good"], "targets": {k: v for k, v in res["targets"].items() if v["group"] in ("g0", "g1")}})


def test_a_combination_ships_only_when_it_wins_held_out():
    """Two scores, each the truth plus independent noise: their mean rank beats either one on held-out groups."""
    rng = np.random.default_rng(5)
    targets = {}
    for g in range(6):
        for k in range(4):
            truth = rng.uniform(0.3, 0.9, 12)
            targets[f"g{g}-t{k}"] = {"group": f"g{g}", "truth": {"primary": truth.tolist()}, "scores": {
                "a": (truth + rng.normal(0, 0.15, 12)).tolist(), "b": (truth + rng.normal(0, 0.15, 12)).tolist(),
                "c": rng.normal(size=12).tolist()}}
    sel = selection.select_default({"scores": ["a", "b", "c"], "targets": targets}, n_boot=100)
    nested, single = sel["procedures"]["nested"]["weighted_tau"]["mean"], sel["procedures"]["single"]["weighted_tau"]["mean"]
    assert nested > single and sel["default"]["decision"].startswith("nested")
    assert sel["default"]["name"] == "mean(a, b)" and nested > single + 0.05


def test_rank_default_is_what_the_committed_suite_selection_chose():
    """ranking.COMBINED_SCORES / COMBINED_AGGREGATOR must be the default of the committed nested selection over the
    suite + the real pool (benchmarks/results/real/selection_with_real.json, made by benchmarks/real_selection.py from
    benchmarks/results/zoo-suite/bench_scores.json and the real-pool tables); re-running either with another result
    must update both."""
    import json
    from pathlib import Path

    from transferlens.ranking import COMBINED_AGGREGATOR, COMBINED_SCORES, DEFAULT_SCORES
    from transferlens.zoo.bench import NOT_COMBINABLE

    root = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    union = json.loads((root / "real" / "selection_with_real.json").read_text())
    sel = union["selection"]
    d = sel["default"]
    assert d["aggregator"] == COMBINED_AGGREGATOR and tuple(d["scores"]) == COMBINED_SCORES
    assert set(COMBINED_SCORES) <= set(DEFAULT_SCORES) and not set(COMBINED_SCORES) & set(NOT_COMBINABLE)
    if len(COMBINED_SCORES) == 1:  # a single score ships only when no procedure with combinations beat it held out
        assert sel["procedures"]["nested"]["weighted_tau"]["mean"] <= sel["procedures"]["single"]["weighted_tau"]["mean"]
    else:  # a combination ships only when the nested procedure beat the single-score procedure held out
        assert sel["procedures"]["nested"]["weighted_tau"]["mean"] > sel["procedures"]["single"]["weighted_tau"]["mean"]
        assert d["name"] == f"{COMBINED_AGGREGATOR}({', '.join(COMBINED_SCORES)})"
    # the union holds the whole committed suite and real-pool targets of >= 7 base data sets
    suite = json.loads((root / "zoo-suite" / "bench_scores.json").read_text())["selection"]
    assert set(suite["targets"]) <= set(sel["targets"]) and len(suite["targets"]) >= 36
    assert sum(t.startswith("real:") for t in sel["targets"]) >= 8 and len(set(sel["groups"])) >= 7
