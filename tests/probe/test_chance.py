"""Chance-level and collapsed probes (issue 17, item 2): the statistical test, the record, the tunnel, the plot."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transferlens.errors import InputError
from transferlens.features import FeatureSet
from transferlens.probe.analysis import curves_figure, probe_features
from transferlens.probe.chance import (
    binomial_p_value,
    chance_level,
    check_predictions,
    evidence,
    is_at_chance,
    is_collapsed,
    layer_flags,
    mean_at_chance,
)
from transferlens.probe.tunnel import analyse_tunnel, recommend_layer, tunnel_metrics

K, D = 4, 10
CLASSES = ["a", "b", "c", "d"]


def _brute_p(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


@pytest.mark.parametrize("k,n,p", [(10, 50, 0.1), (8, 50, 0.1), (0, 20, 0.25), (20, 20, 0.25), (31, 120, 0.2)])
def test_binomial_p_value_is_the_upper_tail(k, n, p):
    assert binomial_p_value(k / n, n, p) == pytest.approx(_brute_p(k, n, p), rel=1e-9, abs=1e-15)


def test_at_chance_thresholds_match_hand_computed_tails():
    # n = 50, chance 0.1: P(X >= 9) = 0.058 > 0.05 (at chance), P(X >= 10) = 0.0245 (not)
    assert is_at_chance(9 / 50, 50, 0.1) is True and is_at_chance(10 / 50, 50, 0.1) is False
    assert is_at_chance(0.0, 50, 0.1) is True  # below chance is no evidence of signal
    assert is_at_chance(0.5, None, 0.1) is None and is_at_chance(None, 50, 0.1) is None
    # the mean of two equally large sets is the pooled test
    assert mean_at_chance([0.16, 0.20], [50, 50], [0.1, 0.1]) == is_at_chance(0.18, 100, 0.1)
    with pytest.raises(InputError):
        binomial_p_value(1.5, 10, 0.1)


def test_chance_level_is_the_majority_label_rate():
    assert chance_level([0, 1, 2, 3], 4) == 0.25
    assert chance_level([0] * 7 + [1, 2, 3], 4) == pytest.approx(0.7)
    assert chance_level([], 5) == 0.2


def test_collapse_needs_three_classes_and_more_than_the_labels_explain():
    y = np.repeat(np.arange(4), 10)
    assert is_collapsed(np.zeros(40, int), y, 4)  # one class for everything
    assert not is_collapsed(y, y, 4)  # perfect predictions
    assert not is_collapsed(np.zeros(40, int), np.repeat([0, 1], 20), 2)  # binary: never flagged
    skew = np.array([0] * 34 + [1, 2, 3] * 2)  # 85 % of the labels are class 0
    assert not is_collapsed(skew, skew, 4)  # correct predictions on a skewed set are not a collapse
    assert is_collapsed(np.zeros(40, int), skew, 4)  # 100 % >= (1 + 0.85) / 2
    c = check_predictions(np.zeros(40, int), y, 4)
    assert c.accuracy == 0.25 and c.chance == 0.25 and c.at_chance and c.collapsed and c.majority_share == 1.0


def _sets(seed: int = 0):
    """ID: separable classes at every layer. OOD 'noise': features independent of the labels (at chance).
    OOD 'one-class': every sample sits on class a's mean (a collapsed probe). OOD 'clean': like ID."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((K, D)) * 4

    def fs(n, kind, s):
        r = np.random.default_rng(s)
        y = np.repeat(np.arange(K), n)
        feats = {}
        for j in range(3):
            if kind == "noise":
                x = r.standard_normal((y.size, D)) * 4
            elif kind == "one-class":
                x = means[np.zeros_like(y)] + r.standard_normal((y.size, D)) * 0.3
            else:
                x = means[y] + r.standard_normal((y.size, D)) * (1.0 + j)
            feats[f"l{j}"] = x.astype(np.float32)
        return FeatureSet(feats, y, list(CLASSES), {"data": kind})

    return fs(60, "id", 1), fs(30, "id", 2), {"noise": fs(30, "noise", 3), "one-class": fs(30, "one-class", 4),
                                               "clean": fs(30, "id", 5)}


def test_chance_level_ood_set_gets_no_tunnel_and_a_warning():
    train, test, ood = _sets()
    res = probe_features(train, test, {"noise": ood["noise"], "clean": ood["clean"]}, geometry=False)
    assert all(res.at_chance("noise")) and not any(res.at_chance("id"))
    noise = res.tunnel.per_set["noise"]
    assert noise.pct_retained is None and noise.start is None and noise.length is None and noise.pearson is None
    assert noise.strength == "at chance" and "at chance at every layer" in noise.note
    clean = res.tunnel.per_set["clean"]
    assert clean.pct_retained is not None and clean.note is None
    # the per-set average uses the sets that have a value
    assert res.tunnel.average_of_sets["pct_retained"] == pytest.approx(clean.pct_retained)
    d = res.to_dict()
    assert d["layers"][0]["at_chance"]["ood"]["noise"] is True and d["layers"][0]["at_chance"]["id"] is False
    assert d["chance"]["ood"]["noise"] == 0.25 and d["chance"]["alpha"] == 0.05
    assert any(w.startswith("OOD noise: the probe is at chance at every layer") for w in d["warnings"])
    assert d["tunnel"]["per_set"]["noise"]["pct_retained"] is None
    ev = evidence(d)
    assert ev["ood_sets_at_chance"] == ["noise"] and ev["ood_at_chance"] is False and ev["id_at_chance"] is False


def test_recommendation_falls_back_to_id_when_all_ood_evidence_is_at_chance():
    train, test, ood = _sets()
    res = probe_features(train, test, {"noise": ood["noise"]}, geometry=False)
    rec = res.recommendation
    assert rec.criterion == "id" and rec.criterion_text == "best ID accuracy"
    assert rec.index == int(np.lexsort((np.arange(3), -np.array(res.id_accuracy)))[0])
    assert "mean OOD accuracy is at chance at every layer" in rec.reason and "chance 25.0%" in rec.reason
    assert rec.warning and res.tunnel.mean.pct_retained is None
    assert res.to_dict()["recommendation"]["criterion_text"] == "best ID accuracy"


def test_collapsed_predictions_are_recorded_per_layer():
    train, test, ood = _sets()
    res = probe_features(train, test, {"one-class": ood["one-class"]}, geometry=False)
    d = res.to_dict()
    shares = [row["majority_prediction_share"]["ood"]["one-class"] for row in d["layers"]]
    assert all(s >= 0.8 for s in shares) and all(row["collapsed"]["ood"]["one-class"] for row in d["layers"])
    assert not any(row["collapsed"]["id"] for row in d["layers"])
    assert any("collapsed" in w and w.startswith("OOD one-class") for w in d["warnings"])
    # every sample is labelled a..d evenly and predicted a: 25 % = chance, so also at chance
    assert all(res.at_chance("one-class"))
    assert evidence(d)["collapsed_ood"] == {"one-class": ["l0", "l1", "l2"]}


def test_old_records_are_tested_from_their_sizes():
    """Records written before these fields existed: flags recomputed from accuracies, sizes and 1/K."""
    rec = {"n_classes": 10, "n_test": 50, "n_ood": {"o": 50}, "ood_data": ["o"],
           "layers": [{"layer": "l0", "id_accuracy": 0.9, "ood_accuracy": {"o": 0.12}},
                      {"layer": "l1", "id_accuracy": 0.95, "ood_accuracy": {"o": 0.16}}]}
    flags = layer_flags(rec)
    assert [f["id"] for f in flags] == [False, False] and [f["ood"]["o"] for f in flags] == [True, True]
    assert evidence(rec)["ood_at_chance"] is True
    del rec["n_ood"]
    assert evidence(rec)["ood_at_chance"] is None  # undecided, not "at chance"


def test_tunnel_functions_take_the_flags():
    ood = [0.30, 0.27, 0.24]
    m = tunnel_metrics([0.5, 0.7, 0.9], ood, 4, ood_at_chance=[True, True, True])
    assert m.pct_retained is None and m.start is None and m.strength == "at chance"
    m = tunnel_metrics([0.5, 0.7, 0.9], ood, 4, ood_at_chance=[False, True, True])  # a real peak: a real tunnel
    assert m.pct_retained == pytest.approx(80.0) and m.start == 0
    with pytest.raises(InputError):
        tunnel_metrics([0.5, 0.7, 0.9], ood, 4, ood_at_chance=[True])
    a = analyse_tunnel([0.25, 0.26, 0.24], {"o": ood}, 4, id_at_chance=[True] * 3)
    assert a.per_set["o"].pearson is None and a.per_set["o"].m23_onset is None
    rec = recommend_layer(["l0", "l1", "l2"], [0.25, 0.26, 0.24], None, id_at_chance=[True] * 3, chance=0.25)
    assert rec.criterion == "id" and "at chance at every layer" in rec.warning


def test_probe_plot_shows_absolute_accuracy_and_a_dashed_chance_line():
    train, test, ood = _sets()
    res = probe_features(train, test, {"noise": ood["noise"], "clean": ood["clean"]}, geometry=False)
    ax = curves_figure(res).axes[0]
    by_label = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_allclose(by_label["ID"].get_ydata(), res.id_accuracy)  # not divided by its maximum
    noise = next(ln for lab, ln in by_label.items() if lab.startswith("OOD: noise"))
    assert "at chance at every layer" in noise.get_label()
    np.testing.assert_allclose(noise.get_ydata(), res.ood_accuracy["noise"])
    chance = next(ln for lab, ln in by_label.items() if lab.startswith("chance"))
    assert chance.get_linestyle() == "--" and np.allclose(chance.get_ydata(), 0.25)
    assert ax.get_ylim() == (0, 1.02)


def test_probe_cli_marks_chance_cells_and_drops_the_retained_figure(tmp_path):
    import typer
    from typer.testing import CliRunner

    from transferlens.cli.probe_cmd import probe_cmd
    from transferlens.io import read_record

    app = typer.Typer()
    app.command("probe")(probe_cmd)
    app.command("noop")(lambda: None)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(K), 20)
    np.savez(tmp_path / "id.npz", features=np.eye(K, 6)[y] * 4 + rng.standard_normal((y.size, 6)), labels=y,
             class_names=np.array(CLASSES))
    np.savez(tmp_path / "ood.npz", features=rng.standard_normal((y.size, 6)) * 4, labels=y, class_names=np.array(CLASSES))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["probe", "-m", "timm:unused", "-d", f"npz:{tmp_path / 'id.npz'}",
                                   "--ood", f"npz:{tmp_path / 'ood.npz'}", "-o", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "at chance at every layer" in res.output and "% retained (" not in res.output
    assert "* within noise of chance" in res.output and "recommended layer (best ID accuracy)" in res.output
    rec = read_record(out / "probe.json", kind="probe")
    assert rec["layers"][0]["at_chance"]["ood"][f"npz:{tmp_path / 'ood.npz'}"] is True
    assert any("the OOD evidence of this set is at chance" in w for w in rec["warnings"])


def test_a_tie_with_the_last_layer_is_not_called_a_loss():
    rec = recommend_layer(["l0", "l1", "l2"], [0.6, 0.98, 0.96], {"o": [0.5, 0.69, 0.69]})
    assert rec.index == 1 and "keeps only" not in rec.reason
    assert "the last layer l2 is as good out of distribution (69.0%), but its ID accuracy is lower (96.0% vs 98.0%)" in rec.reason
    rec = recommend_layer(["l0", "l1", "l2"], [0.6, 0.98, 0.98], {"o": [0.5, 0.69, 0.69]})
    assert rec.index == 1 and "the earlier layer is taken" in rec.reason
