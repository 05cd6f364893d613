"""The pairwise logistic learned ranker (zoo/learned_ranker.py) on synthetic bench results."""

from __future__ import annotations

import numpy as np
import pytest

from transferlens.zoo import learned_ranker as lr


def _result(n_groups: int = 4, per_group: int = 3, n_cand: int = 8, seed: int = 0) -> dict:
    """Targets where the truth is a monotone (non-linear) function of score 'good', on a different scale and
    offset per target; the other scores are noise."""
    rng = np.random.default_rng(seed)
    targets = {}
    for g in range(n_groups):
        for k in range(per_group):
            good = rng.normal(size=n_cand)
            a, b = rng.uniform(0.1, 50), rng.normal(0, 100)
            targets[f"g{g}-t{k}"] = {"group": f"g{g}", "candidates": [f"m{i}" for i in range(n_cand)],
                                     "truth": {"primary": (1 / (1 + np.exp(-2 * good))).tolist()}, "scores": {
                                         "good": (a * good + b).tolist(),
                                         "noise1": rng.normal(size=n_cand).tolist(),
                                         "noise2": (rng.normal(size=n_cand) * 1e3).tolist()}}
    return {"scores": ["good", "noise1", "noise2"], "targets": targets}


def test_recovers_a_monotone_truth_held_out():
    ev = lr.evaluate(_result(), ["good", "noise1", "noise2"], use_card=False, Cs=(0.1, 1.0))
    assert np.all(ev["held_out"]["weighted_tau"] > 0.9)
    assert np.mean(ev["held_out"]["kendall_tau"]) > 0.9
    assert np.nanmax(ev["held_out"]["regret"]) < 1e-12  # the best candidate is always put first
    w = ev["final"]["weights"]
    assert w["good"] > 5 * max(abs(w["noise1"]), abs(w["noise2"]))


@pytest.mark.parametrize("transform", lr.TRANSFORMS)
def test_standardisation_is_invariant_to_affine_rescaling_within_a_target(transform):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 3))
    x[2, 1] = np.nan
    y = x.copy()
    y[:, 0] = 1e4 * x[:, 0] - 3.0
    y[:, 1] = 0.01 * x[:, 1] + 7.0
    np.testing.assert_allclose(lr.standardise(x, transform), lr.standardise(y, transform), atol=1e-10)
    z = lr.standardise(x, transform)
    assert z[2, 1] == 0.0  # missing: the target mean
    np.testing.assert_allclose(z[:, 0].mean(), 0.0, atol=1e-12)
    assert np.all(lr.standardise(np.ones((5, 2)), transform) == 0)  # constant within the target: no information


def test_pairs_are_balanced_and_skip_ties_and_missing_truth():
    x = np.arange(8, dtype=float).reshape(4, 2)
    d, lab = lr.pairwise(x, np.array([0.1, 0.1, 0.5, np.nan]))
    assert len(lab) == 4 and lab.sum() == 2  # pairs (0,2), (1,2), both orientations; tie (0,1) and NaN skipped
    np.testing.assert_allclose(d[:2], [[-4, -4], [-2, -2]])


def test_folds_never_train_on_the_held_out_group():
    res = _result(seed=3)
    ev = lr.evaluate(res, ["good", "noise1", "noise2"], use_card=False, Cs=(1.0,))
    for f in ev["folds"]:
        assert f["held_out"] not in f["train_groups"] and len(f["train_groups"]) == 3
    # corrupting the truth of one group cannot change that group's held-out results (it is never trained on)
    bad = {**res, "targets": {t: ({**tt, "truth": {"primary": (-np.asarray(tt["truth"]["primary"])).tolist()}} if tt["group"] == "g0" else tt)
                              for t, tt in res["targets"].items()}}
    ev_bad = lr.evaluate(bad, ["good", "noise1", "noise2"], use_card=False, Cs=(1.0,))
    g0 = [i for i, g in enumerate(ev["groups"]) if g == "g0"]
    np.testing.assert_allclose(ev_bad["held_out"]["weighted_tau"][g0], -ev["held_out"]["weighted_tau"][g0], atol=1e-12)
    others = [i for i, g in enumerate(ev["groups"]) if g != "g0"]
    assert np.mean(ev_bad["held_out"]["weighted_tau"][others]) < np.mean(ev["held_out"]["weighted_tau"][others])


def test_card_features_of_layers_and_cards():
    f = lr.card_features({"parameters": 1000, "embedding_dim": 64})
    assert f == pytest.approx({"log10_params": 3.0, "log2_embedding_dim": 6.0, "depth_fraction": 1.0})
    x = lr.candidate_card_features(["st:enc@hidden_states.2", "st:enc@hidden_states.4", "other"])
    np.testing.assert_allclose(x[:2, 2], [0.5, 1.0])
    assert np.isnan(x[:, :2]).all() and x[2, 2] == 1.0
