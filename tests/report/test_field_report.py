"""``assess --field DATA``: estimated field accuracy per candidate in the records, the HTML report and the CLI line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from transferlens.assess import assess
from transferlens.cli.main import app
from transferlens.metrics.field import ESTIMATORS
from transferlens.probe.field import MEASURED_ERROR

MODELS = ["zoo:vgg-g50-s16", "zoo:mlp-g50-s16", "zoo:vgg-g50"]
ARGS = dict(top_k=1, gc_samples=0, scores=["knn_accuracy"])


@pytest.fixture(scope="module")
def field_run(spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("field-run")
    return assess(MODELS, spec.TRAIN, out, test=spec.TEST, field=spec.OOD_OK, **ARGS)


def test_field_stage_records_every_estimator_with_its_expected_error(field_run):
    st = field_run["field"]
    assert st["status"] == "ok", st.get("error")
    res = st["result"]
    assert set(res["models"]) == set(MODELS) and res["labels_used"] is False
    assert res["validation"] == "ID test set" and res["expected_error"] == MEASURED_ERROR
    assert res["aol"]["n_pairs"] == 3 and res["aol"]["reason"] is None  # 3 candidates: agreement-on-the-line is fitted
    for r in res["models"].values():
        assert set(r["estimates"]) == set(ESTIMATORS)
        assert all(0.0 <= v <= 1.0 for v in r["estimates"].values())
        assert "measured" not in r  # the field labels are never read


def test_report_and_cli_show_the_field_estimates(field_run, spec):
    html = (field_run["report"] and open(field_run["report"]).read())
    assert 'id="field"' in html and 'id="field-table"' in html and 'href="#field"' in html
    assert html.count("<tr class=") >= 3 and "agreement-on-the-line" in html
    out = field_run["dir"]
    res = CliRunner().invoke(app, ["assess", *sum((["-m", m] for m in MODELS), []), "-d", spec.TRAIN, "--test", spec.TEST,
                                   "--field", spec.OOD_OK, "--top", "1", "--gc-samples", "0", "--scores", "knn_accuracy",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "Estimated accuracy of zoo:" in res.output and "ATC-MC" in res.output and "labels not used" in res.output
    stages = json.loads((field_run["report"] and open(f"{out}/assess.json").read()))["stages"]
    assert {s["name"]: s["status"] for s in stages}["field"] == "cached"  # unchanged inputs: reused


def test_field_equal_to_the_id_validation_data_gives_back_the_id_accuracy(spec, tmp_path):
    # ATC's threshold makes the val fraction above it equal the val accuracy exactly (ties split), so on the same
    # samples ATC returns the ID accuracy; DoC's confidence gap is 0, so it does too.
    run = assess(MODELS, spec.TRAIN, tmp_path / "run", test=spec.TEST, field=spec.TEST, report=False, **ARGS)
    for r in run["field"]["result"]["models"].values():
        est = r["estimates"]
        assert est["atc_maxconf"] == pytest.approx(est["id_accuracy"], abs=1e-12)
        assert est["atc_entropy"] == pytest.approx(est["id_accuracy"], abs=1e-12)
        assert est["doc"] == pytest.approx(est["id_accuracy"], abs=1e-12)


def test_field_labels_are_ignored_and_bad_field_data_fails_only_its_stage(spec, tmp_path):
    # digits-uci has 10 classes where the ID data has 5: fine for --field (labels are not read), unlike --ood
    # (and without --test the probe is validated on a stratified quarter of the ID data, fitted on the rest)
    run = assess(MODELS[:2], spec.TRAIN, tmp_path / "a", field="builtin:digits-uci?split=test&n_per_class=3",
                 report=False, **ARGS)
    res = run["field"]["result"]
    assert res["field"]["n"] == 30 and res["validation"] == "a stratified 25% of the ID data"
    assert all(r["n_val"] == 25 and r["n_field"] == 30 for r in res["models"].values())  # 100 ID samples, 5 classes
    assert res["aol"]["reason"] and ">= 3 models" in res["aol"]["reason"]  # 2 candidates: no line
    assert all(r["estimates"]["aol"] is None for r in res["models"].values())
    bad = assess(MODELS[:1], spec.TRAIN, tmp_path / "b", test=spec.TEST, field="builtin:no-such-source", **ARGS)
    assert bad["field"]["status"] == "failed" and "no-such-source" in bad["field"]["error"]
    assert bad["assess"]["decision"].get("model") == MODELS[0]  # the rest of the run goes on
    assert "The field stage" in open(bad["report"]).read()
