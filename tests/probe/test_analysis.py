"""probe_features / probe_layers: the pipeline on constructed features, geometry wiring, plot, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from transferlens.errors import InputError, UsageError
from transferlens.features import FeatureSet
from transferlens.metrics.collapse import nc1
from transferlens.probe.analysis import probe_features, probe_layers

K, D = 3, 12
CLASSES = ["a", "b", "c"]


def _layers(y, rng, ood: bool):
    """Four layers. ID: the class signal grows with depth. OOD: the signal is there in l0-l1 and is
    replaced by a class-independent pattern from l2 on, so the OOD curve peaks at l1 (a tunnel of length 2)."""
    means = np.random.default_rng(123).standard_normal((K, D)) * 3
    feats = {}
    for j, strength in enumerate([0.5, 1.0, 1.5, 2.0]):
        signal = means[y] * strength
        if ood and j >= 2:
            signal = means[rng.integers(0, K, y.size)] * strength  # labels no longer matter
        feats[f"l{j}"] = (signal + rng.standard_normal((y.size, D)) * 2.0).astype(np.float32)
    return feats


def _fs(n_per_class, seed, ood=False, classes=CLASSES):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(K), n_per_class)
    return FeatureSet(_layers(y, rng, ood), y, list(classes), {"data": f"synthetic{seed}"})


@pytest.fixture(scope="module")
def sets():
    return _fs(120, 0), _fs(60, 1), {"shifted": _fs(60, 2, ood=True), "clean": _fs(60, 3)}


def test_tunnel_found_on_constructed_features(sets):
    train, test, ood = sets
    res = probe_features(train, test, ood)
    assert res.layers == ["l0", "l1", "l2", "l3"]
    assert res.id_accuracy[-1] > 0.9 and res.id_accuracy[-1] >= res.id_accuracy[0]
    shifted = res.ood_accuracy["shifted"]
    assert shifted[1] > 0.8 and shifted[3] < 0.6  # chance is 1/3
    m = res.tunnel.per_set["shifted"]
    assert m.start == 1 and m.length == 2 and m.pct_retained < 70
    assert res.tunnel.per_set["clean"].pct_retained > 95
    np.testing.assert_allclose(res.tunnel.mean_curve, (np.array(shifted) + np.array(res.ood_accuracy["clean"])) / 2)
    assert res.recommendation.index == int(np.argmax(res.tunnel.mean_curve))
    d = res.to_dict()
    assert d["layers"][1]["ood_accuracy"]["shifted"] == shifted[1]
    assert d["tunnel"]["per_set"]["shifted"]["start"] == 1


def test_geometry_matches_metric_modules(sets):
    train, test, _ = sets
    res = probe_features(train, test, {})
    for i, layer in enumerate(res.layers):
        assert res.nc1[i] == pytest.approx(nc1(train.features[layer].astype(np.float64), train.labels), rel=1e-6)
    assert res.tunnel.mean is None and "no OOD data" in res.recommendation.reason


def test_rank_matches_numpy_on_low_rank_data():
    rng = np.random.default_rng(5)
    n, r = 300, 4
    y = np.repeat(np.arange(K), n // K)
    basis = np.linalg.qr(rng.standard_normal((20, r)))[0].T  # r orthonormal rows in R^20
    z = rng.standard_normal((n, r)) * np.array([3.0, 2.0, 1.5, 1.0]) + np.eye(K, r)[y] * 2
    x = z @ basis
    fs = FeatureSet({"low": x.astype(np.float64), "full": rng.standard_normal((n, 20))}, y, CLASSES, {})
    res = probe_features(fs, fs, {})
    assert res.numerical_rank[0] == np.linalg.matrix_rank(x - x.mean(0)) == r
    assert res.numerical_rank[1] == np.linalg.matrix_rank(fs.features["full"]) == 20


def test_class_order_of_ood_set_is_aligned(sets):
    train, test, ood = sets
    clean = ood["clean"]
    order = [2, 0, 1]  # new label i means old class order[i]
    inverse = np.argsort(order)
    reordered = FeatureSet(clean.features, inverse[clean.labels], [CLASSES[o] for o in order], {})
    a = probe_features(train, test, {"x": clean}, geometry=False)
    b = probe_features(train, test, {"x": reordered}, geometry=False)
    assert a.ood_accuracy["x"] == b.ood_accuracy["x"]


@pytest.mark.parametrize("kind", ["lda", "logistic", "adamw"])
def test_other_probe_families_agree_on_easy_layers(sets, kind):
    train, test, ood = sets
    ridge = probe_features(train, test, ood, geometry=False)
    other = probe_features(train, test, ood, probe=kind, geometry=False,
                           probe_options={"epochs": 15} if kind == "adamw" else None)
    assert other.id_accuracy[-1] > 0.85
    assert abs(other.id_accuracy[-1] - ridge.id_accuracy[-1]) < 0.1
    assert other.tunnel.per_set["shifted"].start is not None


def test_plot_writes_png(sets, tmp_path):
    train, test, ood = sets
    res = probe_features(train, test, ood, geometry=False)
    path = res.plot(tmp_path / "curves.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 300


def test_bad_input(sets):
    train, test, ood = sets
    other = _fs(20, 9, classes=["a", "b", "z"])
    with pytest.raises(InputError, match="same classes"):
        probe_features(train, test, {"bad": other})
    with pytest.raises(UsageError, match="unknown probe"):
        probe_features(train, test, probe="svm")
    with pytest.raises(InputError, match="lack layer"):
        probe_features(train, test, layers=["l0", "nope"])
    tiny = FeatureSet({"l0": np.zeros((4, 2), np.float32) + np.arange(4)[:, None]}, np.array([0, 0, 1, 2]), CLASSES, {})
    with pytest.raises(InputError, match=">= 2 training samples"):
        probe_features(tiny, tiny)
    nan = FeatureSet({k: v.copy() for k, v in train.features.items()}, train.labels, CLASSES, {})
    nan.features["l2"][5, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        probe_features(nan, test)


def test_probe_layers_end_to_end_with_a_real_model():
    model = "timm:resnet18?pretrained=false&size=32"
    layers = ["layer1.0", "layer3.0"]
    res = probe_layers(model, "builtin:digits-uci?n_per_class=12&classes=0-3", ["shift:blur:3:builtin:digits-uci?n_per_class=6&classes=0-3&seed=1"],
                       layers, batch_size=64)
    assert res.layers == layers and res.n_train + res.n_test == 48 and len(res.ood_accuracy) == 1
    assert all(0 <= a <= 1 for a in res.id_accuracy)
    assert res.timings["extract_id_seconds"] >= 0 and "probe_seconds" in res.timings
    with pytest.raises(InputError, match="same classes"):
        probe_layers(model, "builtin:digits-uci?n_per_class=12&classes=0-3", ["builtin:digits-uci?n_per_class=6&classes=0-4"], layers)
