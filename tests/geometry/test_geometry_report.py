"""The geometry workflow and its CLI command on a small offline model."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from transferlens.cli.main import app
from transferlens.geometry.complexity import gc_exact
from transferlens.geometry.report import _pooled_tap, geometry_report
from transferlens.models import resolve_model

MODEL = "timm:resnet18?pretrained=false&size=16"
DATA = "builtin:digits-uci?n_per_class=6"


def test_report_fields_and_gc_agrees_with_exact():
    rec = geometry_report(MODEL, DATA, "layer2.1,global_pool", gc_samples=6, gc_probes=64, n_episodes=10)
    assert [r["layer"] for r in rec["layers"]] == ["layer2.1", "global_pool"]
    for row in rec["layers"]:
        for key in ("nc1", "cdnv", "numerical_rank", "rankme", "fewshot_accuracy", "gc", "gc_se"):
            assert np.isfinite(row[key]), key
        assert 0.0 <= row["fewshot_accuracy"] <= 1.0 and row["gc"] > 0
    # the stochastic GC of the report is within 4 standard errors of the exact GC on the same inputs
    from transferlens.data import load_data

    m = resolve_model(MODEL).load()
    d = load_data(DATA)
    pos = np.sort(np.random.default_rng(0).choice(len(d), size=6, replace=False))
    exact = gc_exact(_pooled_tap(m, "global_pool", "auto"), m.prepare(d, pos)).value
    row = rec["layers"][1]
    assert abs(row["gc"] - exact) <= 4 * row["gc_se"] + 1e-9


def test_geometry_cli_writes_record(tmp_path):
    result = CliRunner().invoke(app, ["geometry", "--model", MODEL, "--data", DATA, "--layers", "penultimate",
                                      "--gc-samples", "4", "--gc-probes", "2", "--episodes", "5", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rec = json.loads((tmp_path / "geometry.json").read_text())
    assert rec["kind"] == "geometry" and rec["layers"][0]["layer"] == "global_pool"


def test_gc_layers_limits_the_costly_estimate_and_keeps_its_value():
    full = geometry_report(MODEL, DATA, "layer2.1,global_pool", gc_samples=6, gc_probes=8, n_episodes=5)
    some = geometry_report(MODEL, DATA, "layer2.1,global_pool", gc_samples=6, gc_probes=8, n_episodes=5, gc_layers=["global_pool"])
    assert "gc" not in some["layers"][0] and some["gc"]["layers"] == ["global_pool"]
    assert some["layers"][1]["gc"] == full["layers"][1]["gc"]  # same inputs, same probes: the same estimate
    assert some["layers"][0]["nc1"] == full["layers"][0]["nc1"]
