"""Registry, uniform call, warnings and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transferlens.errors import InputError, UsageError
from transferlens.metrics.scores import SCORES, compute_score, get_score, list_scores, zoo_normalise

LABELLED = sorted(n for n, s in SCORES.items() if s.needs_labels)


def test_registry_metadata_is_consistent():
    expected = {"logme", "leep", "nce", "nleep", "h_score", "shrinkage_h_score", "gbc", "transrate", "sfda",
                "ncti", "etran", "etran_energy", "pactran_gaussian", "knn_accuracy"}
    assert set(SCORES) == expected
    assert {n for n, s in SCORES.items() if s.zoo_relative} == {"ncti", "etran"}
    assert {n for n, s in SCORES.items() if s.needs_source_probs} == {"leep", "nce"}
    assert {n for n, s in SCORES.items() if not s.higher_is_better} == {"pactran_gaussian"}
    assert list_scores(label_free=True) == ["etran_energy"]
    for s in SCORES.values():
        assert s.description and s.reference
        assert s.label_free == (not s.needs_labels)
    assert "max_iter" in get_score("logme").options and "k" in get_score("knn_accuracy").options


def test_result_record_is_json_ready(make_planted):
    x, y = make_planted()
    r = compute_score("logme", x, y)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["name"] == "logme" and d["value"] == pytest.approx(r.value)
    assert d["n_samples"] == 240 and d["n_features"] == 12 and d["n_classes"] == 4
    assert r.seconds >= 0 and r.warnings == [] and r.higher_is_better and not r.zoo_relative


def test_label_free_score_runs_without_labels(make_planted):
    x, _ = make_planted()
    r = compute_score("etran_energy", x)
    assert np.isfinite(r.value) and r.n_classes is None


def test_labelled_score_without_labels_is_a_usage_error(make_planted):
    x, _ = make_planted()
    with pytest.raises(UsageError, match="etran_energy"):
        compute_score("logme", x)


def test_usage_errors(make_planted):
    x, y = make_planted()
    with pytest.raises(UsageError, match="unknown score"):
        compute_score("logmee", x, y)
    with pytest.raises(UsageError, match="no option"):
        compute_score("logme", x, y, k=3)
    with pytest.raises(UsageError, match="source_probs"):
        compute_score("leep", x, y)
    with pytest.raises(UsageError, match="pca_dim"):
        compute_score("logme", x, y, pca_dim="half")


def test_zoo_relative_scores_carry_components_and_a_warning(make_planted):
    rs = [compute_score("ncti", *make_planted(strength=s, seed=1)) for s in (0.2, 1.0)]
    assert all(r.zoo_relative and set(r.components) == {"seli", "ncc", "vc"} for r in rs)
    assert any("zoo-relative" in w for w in rs[0].warnings)
    vals = zoo_normalise("ncti", rs)
    assert vals.shape == (2,) and vals[1] > vals[0]
    with pytest.raises(InputError):
        zoo_normalise("etran", rs)
    plain = [compute_score("logme", *make_planted(strength=s)) for s in (0.2, 1.0)]
    np.testing.assert_allclose(zoo_normalise("logme", plain), [r.value for r in plain])


def test_n_below_d_warns_and_pca_auto_reduces(make_planted):
    x, y = make_planted(n=60, d=100, k=3, strength=1.0)
    r = compute_score("sfda", x, y)
    assert any("N=60 <= D=100" in w for w in r.warnings)
    r_pca = compute_score("sfda", x, y, pca_dim="auto")
    assert r_pca.n_features == 100 and r_pca.n_features_used == 6  # max(N // 10, K) = 6
    assert any("reduced by PCA" in w for w in r_pca.warnings)
    assert not any("<= D" in w for w in r_pca.warnings)
    h = compute_score("h_score", x, y)
    assert any("saturates" in w for w in h.warnings)
    assert h.value == pytest.approx(2.0, abs=1e-6)  # K - 1: the saturation the warning is about


def test_few_samples_per_dimension_warned_only_for_covariance_scores(make_planted):
    x, y = make_planted(n=120, d=40, k=3, strength=1.0)  # D < N < 5 D
    assert any("5*D=200" in w for w in compute_score("transrate", x, y).warnings)
    assert not any("5*D" in w for w in compute_score("logme", x, y).warnings)
    assert not any("5*D" in w for w in compute_score("transrate", x, y, pca_dim=20).warnings)


def test_tiny_classes_are_warned(make_planted):
    x, y = make_planted(n=40, d=3, k=2)
    y = y.copy()
    y[:3] = 2  # class 2 has 3 samples
    r = compute_score("logme", x, y)
    assert any("fewer than 5 samples" in w for w in r.warnings)


# ------------------------------------------------------------------------------------------- bad input
def _inputs(name, make_planted, make_source_probs):
    x, y = make_planted(n=40, d=5, k=3)
    p = make_source_probs(y) if SCORES[name].needs_source_probs else None
    return x, y, p


@pytest.mark.parametrize("name", LABELLED)
def test_shape_mismatch(name, make_planted, make_source_probs):
    x, y, p = _inputs(name, make_planted, make_source_probs)
    with pytest.raises(InputError, match="same samples"):
        compute_score(name, x, y[:-1], source_probs=p)


@pytest.mark.parametrize("name", LABELLED)
@pytest.mark.parametrize("bad", ["gap", "negative", "strings", "fractional", "2d"])
def test_labels_not_in_0_to_k_minus_1(name, bad, make_planted, make_source_probs):
    x, y, p = _inputs(name, make_planted, make_source_probs)
    labels = {"gap": np.where(y == 2, 5, y), "negative": y - 1, "strings": np.array(["a", "b", "c", "d"] * 10)[:40],
              "fractional": y + 0.5, "2d": np.stack([y, y], axis=1)}[bad]
    with pytest.raises(InputError):
        compute_score(name, x, labels, source_probs=p)


@pytest.mark.parametrize("name", LABELLED)
def test_class_with_one_sample(name, make_planted, make_source_probs):
    x, y, p = _inputs(name, make_planted, make_source_probs)
    y = y.copy()
    y[0] = 3  # class 3 has a single sample
    with pytest.raises(InputError, match="fewer than 2 samples"):
        compute_score(name, x, y, source_probs=p)


@pytest.mark.parametrize("name", sorted(n for n, s in SCORES.items() if s.uses_features))
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_inf_features(name, value, make_planted):
    x, y = make_planted(n=40, d=5, k=3)
    x = x.copy()
    x[3, 1] = value
    with pytest.raises(InputError, match="NaN or Inf"):
        compute_score(name, x, y)


@pytest.mark.parametrize("name", ["leep", "nce"])
def test_bad_source_probabilities(name, make_planted, make_source_probs):
    x, y, p = _inputs(name, make_planted, make_source_probs)
    with pytest.raises(InputError, match="sum to 1"):
        compute_score(name, x, y, source_probs=p * 1.1)
    with pytest.raises(InputError, match="negative"):
        compute_score(name, x, y, source_probs=p - 0.5)
    with pytest.raises(InputError, match="rows"):
        compute_score(name, x, y, source_probs=p[:-1])
    with pytest.raises(InputError, match="NaN or Inf"):
        bad = p.copy()
        bad[0, 0] = np.nan
        compute_score(name, x, y, source_probs=bad)


def test_single_class_is_refused(make_planted):
    x, _ = make_planted(n=20, d=3, k=2)
    with pytest.raises(InputError, match="at least 2 classes"):
        compute_score("logme", x, np.zeros(20, dtype=int))
