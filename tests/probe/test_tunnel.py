"""Tunnel metrics on constructed curves, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr

from transferlens.errors import InputError
from transferlens.probe.tunnel import (
    analyse_tunnel,
    id_ood_alignment,
    m23_onset,
    pct_ood_retained,
    pearson_id_ood,
    recommend_layer,
    tunnel_metrics,
    tunnel_start,
    tunnel_strength,
)

ID = [0.30, 0.50, 0.70, 0.80, 0.90, 0.95]


def test_no_tunnel_monotone_ood():
    ood = [0.10, 0.20, 0.30, 0.40, 0.50, 0.60]
    m = tunnel_metrics(ID, ood, n_classes=10)
    assert m.pct_retained == 100.0
    assert m.start is None and m.length == 0
    assert m.strength == "negligible"
    assert m.peak_layer == 5


def test_tunnel_hand_computed():
    ood = [0.20, 0.40, 0.60, 0.50, 0.40, 0.30]
    m = tunnel_metrics(ID, ood, n_classes=10)
    assert m.pct_retained == pytest.approx(50.0)  # 0.30 / 0.60
    assert (m.start, m.length) == (2, 3)  # layers 2..5, length n - l_m = 5 - 2
    assert m.peak_accuracy == 0.6 and m.last_accuracy == 0.3
    assert m.strength == "strong"
    assert m.alignment == pytest.approx((0.95 - 0.1) * (0.30 - 0.1))
    a, b = np.array(ID), np.array(ood)
    expected = np.sum((a - a.mean()) * (b - b.mean())) / np.sqrt(np.sum((a - a.mean()) ** 2) * np.sum((b - b.mean()) ** 2))
    assert m.pearson == pytest.approx(expected, abs=1e-12)
    assert m.m23_onset == 5  # first layer with ID >= 0.95 * 0.95 = 0.9025 (0.90 at layer 4 is below)


def test_m23_onset_hand_computed():
    # 0.95 * 0.95 = 0.9025: only the last layer reaches it
    assert m23_onset(ID) == 5
    assert m23_onset([0.2, 0.91, 0.92, 0.95]) == 1  # 0.91 >= 0.9025
    assert m23_onset([0.2, 0.5, 0.8, 1.0], fraction=0.8) == 2


def test_plateau_reaching_the_last_layer_is_not_a_tunnel():
    assert tunnel_start([0.2, 0.6, 0.6, 0.6]) == (None, 0)
    assert pct_ood_retained([0.2, 0.6, 0.6, 0.6]) == 100.0
    assert tunnel_start([0.2, 0.6, 0.6, 0.59]) == (1, 2)  # first maximum starts the tunnel


def test_peak_at_first_layer():
    assert tunnel_start([0.8, 0.4, 0.2]) == (0, 2)
    assert pct_ood_retained([0.8, 0.4, 0.2]) == pytest.approx(25.0)


def test_pearson_matches_scipy_and_constant_curve_is_nan():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1, 12), rng.uniform(0, 1, 12)
    assert pearson_id_ood(a, b) == pytest.approx(pearsonr(a, b)[0], abs=1e-12)
    with pytest.warns(UserWarning, match="constant"):
        assert np.isnan(pearson_id_ood([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]))


def test_alignment_of_paper_example():
    # H24: VGGm-11, 32x32, no aug, NINCO: (0.5222 - 0.01) * (0.5153 - 1/64) = 0.256
    assert id_ood_alignment(0.5222, 0.5153, 100, 64) == pytest.approx(0.2560, abs=5e-4)
    assert id_ood_alignment(0.1, 0.1, 10) == pytest.approx(0.0)


def test_strength_bins():
    assert [tunnel_strength(v) for v in (100, 95, 94.9, 90, 85, 80, 79.9, 0)] == [
        "negligible", "negligible", "weak", "weak", "medium", "medium", "strong", "strong"]


def test_analysis_of_several_sets_and_their_mean():
    ood = {"a": [0.2, 0.6, 0.3, 0.3], "b": [0.2, 0.3, 0.5, 0.5]}
    res = analyse_tunnel([0.3, 0.6, 0.8, 0.9], ood, n_classes=4)
    assert res.per_set["a"].start == 1 and res.per_set["b"].start is None
    np.testing.assert_allclose(res.mean_curve, [0.2, 0.45, 0.4, 0.4])
    assert res.mean.start == 1 and res.mean.length == 2
    assert res.mean.pct_retained == pytest.approx(100 * 0.4 / 0.45)
    assert res.average_of_sets["pct_retained"] == pytest.approx((50.0 + 100.0) / 2)


def test_recommendation_best_mean_ood_ties_broken_by_id():
    layers = ["l0", "l1", "l2", "l3"]
    rec = recommend_layer(layers, [0.5, 0.6, 0.9, 0.95], {"a": [0.2, 0.5, 0.5, 0.3], "b": [0.2, 0.5, 0.5, 0.1]})
    assert rec.index == 2 and rec.layer == "l2" and "tied" in rec.reason
    rec = recommend_layer(layers, [0.5, 0.6, 0.9, 0.95], {"a": [0.2, 0.3, 0.4, 0.5]})
    assert rec.index == 3 and "no OOD tunnel" in rec.reason
    rec = recommend_layer(layers, [0.5, 0.9, 0.9, 0.8], None)
    assert rec.index == 1 and "no OOD data" in rec.reason


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.01, 1.0), min_size=2, max_size=20))
def test_retained_and_tunnel_are_consistent(curve):
    pct = pct_ood_retained(curve)
    start, length = tunnel_start(curve)
    assert 0 < pct <= 100
    assert (start is None) == (pct == 100.0)
    if start is not None:
        assert length == len(curve) - 1 - start and curve[start] == max(curve)
    # scale invariance of the shape metrics
    assert pct_ood_retained([0.5 * v for v in curve]) == pytest.approx(pct)


def test_bad_input():
    with pytest.raises(InputError, match="fractions"):
        pct_ood_retained([10, 50, 40])  # percent instead of fractions
    with pytest.raises(InputError, match="NaN"):
        tunnel_start([0.1, float("nan")])
    with pytest.raises(InputError, match="same layers"):
        tunnel_metrics([0.1, 0.2], [0.1, 0.2, 0.3], 10)
    with pytest.raises(InputError, match="undefined"):
        pct_ood_retained([0.0, 0.0])
    with pytest.raises(InputError):
        id_ood_alignment(0.5, 1.5, 10)
    with pytest.raises(InputError):
        recommend_layer(["a"], [0.1, 0.2])
    with pytest.raises(InputError):
        tunnel_start(np.zeros((2, 2)))
