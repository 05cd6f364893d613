"""Label-free field-accuracy estimators: hand computations, exact recoveries, invariances, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from transferlens.errors import InputError, UsageError
from transferlens.metrics.field import (
    aol,
    aol_from_rates,
    atc,
    atc_threshold,
    confidence,
    doc,
    field_estimates,
    id_accuracy,
)

# 6 validation samples, 2 classes.        max-conf  label  argmax  correct
VAL = np.array([[0.90, 0.10],  # 0.90      0      0       yes
                [0.80, 0.20],  # 0.80      0      0       yes
                [0.30, 0.70],  # 0.70      1      1       yes
                [0.60, 0.40],  # 0.60      1      0       no
                [0.45, 0.55],  # 0.55      1      1       yes
                [0.35, 0.65]])  # 0.65     0      1       no
VAL_Y = np.array([0, 0, 1, 1, 1, 0])
# 4 field samples: max-conf 0.95, 0.60, 0.66, 0.50
FIELD = np.array([[0.95, 0.05], [0.40, 0.60], [0.66, 0.34], [0.50, 0.50]])


def test_atc_by_hand() -> None:
    # c = 4 correct of 6.  Val scores sorted: 0.90 0.80 0.70 0.65 | 0.60 0.55  ->  t = s_(4) = 0.65, tie weight 1
    # (one score equals t, 3 are above: w = (4 - 3) / 1).  Field: 0.95 > t, 0.60 < t, 0.66 > t, 0.50 < t -> 2/4.
    th = atc_threshold(VAL, VAL_Y)
    assert th.threshold == pytest.approx(0.65)
    assert th.tie_weight == 1.0
    assert atc(VAL, VAL_Y, FIELD) == pytest.approx(0.5)
    assert th.fraction_above(confidence(VAL)) == pytest.approx(4 / 6)  # the defining property on the val set


def test_atc_entropy_equals_maxconf_for_two_classes() -> None:
    # with K = 2 the negative entropy is an increasing function of max p, so the thresholded counts agree
    assert atc(VAL, VAL_Y, FIELD, score="entropy") == pytest.approx(atc(VAL, VAL_Y, FIELD, score="maxconf"))


def test_doc_by_hand() -> None:
    # acc = 4/6; mean val max-conf = (0.9+0.8+0.7+0.6+0.55+0.65)/6 = 0.7; mean field = (0.95+0.6+0.66+0.5)/4 = 0.6775
    assert doc(VAL, VAL_Y, FIELD) == pytest.approx(4 / 6 - (0.7 - 0.6775))
    assert id_accuracy(VAL, VAL_Y) == pytest.approx(4 / 6)


def test_atc_ties_are_split_so_val_accuracy_is_matched() -> None:
    # val max-conf 0.9, 0.7, 0.7, 0.7, 0.5, 0.5 with 3 correct: t = 0.7, one above, three at t -> w = (3-1)/3 = 2/3
    conf = np.array([0.9, 0.7, 0.7, 0.7, 0.5, 0.5])
    val = np.stack([conf, 1 - conf], axis=1)
    y = np.array([0, 0, 1, 1, 0, 1])  # argmax is 0 everywhere: samples 0, 1, 4 correct
    th = atc_threshold(val, y)
    assert (th.threshold, th.tie_weight) == (pytest.approx(0.7), pytest.approx(2 / 3))
    field = np.stack([np.array([0.7, 0.7, 0.8, 0.6]), 1 - np.array([0.7, 0.7, 0.8, 0.6])], axis=1)
    assert atc(val, y, field) == pytest.approx((2 / 3 + 2 / 3 + 1 + 0) / 4)


def test_atc_on_the_validation_data_returns_its_accuracy() -> None:
    rng = np.random.default_rng(0)
    for k in (2, 5):
        logits = np.round(rng.normal(size=(40, k)), 1)  # rounding makes ties
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        y = rng.integers(0, k, size=40)
        y[:k] = np.arange(k)
        for score in ("maxconf", "entropy"):
            assert atc(p, y, p, score=score) == pytest.approx(id_accuracy(p, y), abs=1e-12)


def test_atc_edge_cases() -> None:
    y = VAL.argmax(axis=1)  # every val sample correct: t = the smallest val score (0.55)
    assert atc_threshold(VAL, y).threshold == pytest.approx(0.55)
    assert atc(VAL, y, FIELD) == pytest.approx(3 / 4)  # only the 0.50 field sample is below every val score
    assert atc(VAL, 1 - y, FIELD) == 0.0  # nothing correct: estimate 0
    with pytest.raises(UsageError, match="maxconf"):
        atc(VAL, VAL_Y, FIELD, score="margin")
    with pytest.raises(InputError):
        atc(VAL, VAL_Y, np.ones((3, 3)) / 3)  # class count mismatch


def test_doc_is_clipped() -> None:
    sure = np.array([[1.0, 0.0]] * 4)
    unsure = np.array([[0.5, 0.5]] * 4)
    assert doc(unsure, [0, 0, 0, 1], sure) == pytest.approx(1.0)  # 0.75 + 0.5 clipped
    assert doc(sure, [1, 1, 1, 1], unsure) == 0.0  # 0 - 0.5 clipped


def test_aol_recovers_a_planted_probit_line_exactly() -> None:
    a, b = 0.8, -0.3
    ida = np.array([0.6, 0.75, 0.9, 0.82, 0.7, 0.95])
    fa = norm.cdf(a * norm.ppf(ida) + b)
    acc = np.array([0.7, 0.8, 0.85, 0.9])
    res = aol_from_rates(ida, fa, acc)
    assert res.slope == pytest.approx(a) and res.intercept == pytest.approx(b)
    np.testing.assert_allclose(res.estimates, norm.cdf(a * norm.ppf(acc) + b), atol=1e-12)


def test_aol_from_predictions_matches_hand_agreements() -> None:
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    m1 = np.array([0, 1, 2, 0, 1, 2, 0, 1])  # acc 1
    m2 = np.array([0, 1, 2, 0, 1, 2, 1, 1])  # acc 7/8
    m3 = np.array([0, 1, 0, 0, 2, 2, 0, 1])  # acc 6/8
    f1 = np.array([0, 1, 2, 0])
    f2 = np.array([0, 1, 0, 0])
    f3 = np.array([1, 1, 0, 2])
    res = aol([m1, m2, m3], y, [f1, f2, f3])
    # pairs (1,2) (1,3) (2,3): ID agreement 7/8, 6/8, 5/8; field agreement 3/4, 1/4, 2/4
    assert res.id_agreement == pytest.approx([7 / 8, 6 / 8, 5 / 8])
    assert res.field_agreement == pytest.approx([3 / 4, 1 / 4, 2 / 4])
    ref = aol_from_rates([7 / 8, 6 / 8, 5 / 8], [0.75, 0.25, 0.5], [1.0, 7 / 8, 6 / 8], n_id=8, n_field=4)
    assert res.estimates == pytest.approx(ref.estimates)
    assert all(0.0 < e < 1.0 for e in res.estimates)  # acc = 1 is clipped to 1 - 1/16 before the probit


def test_aol_needs_three_members_and_id_spread() -> None:
    res = aol([np.array([0, 1]), np.array([0, 0])], [0, 1], [np.array([1]), np.array([1])])
    assert res.estimates is None and ">= 3 models" in res.reason
    flat = aol_from_rates([0.8, 0.8, 0.8], [0.6, 0.7, 0.5], [0.9, 0.9, 0.9])
    assert flat.estimates is None and "no line" in flat.reason


def test_field_estimates_bundle() -> None:
    est = field_estimates(VAL, VAL_Y, FIELD)
    assert est == pytest.approx({"id_accuracy": 4 / 6, "atc_maxconf": 0.5, "atc_entropy": 0.5,
                                 "doc": 4 / 6 - 0.0225})


def test_measured_error_shown_in_reports_equals_the_committed_table() -> None:
    # the expected errors assess --field prints come from benchmarks/eval_field.py's committed summary (docs/validity.md)
    import json
    from pathlib import Path

    from transferlens.probe.field import MEASURED_ERROR

    summary = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "field" / "summary.json"
    table = json.loads(summary.read_text())["estimators"]
    assert MEASURED_ERROR == {e: round(table[e]["mae_points"], 1) for e in table}
