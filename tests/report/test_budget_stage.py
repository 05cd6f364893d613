"""``assess --budget MINUTES``: successive halving of the scores' shortlist inside the workflow (records, decision
sentence, report section, the measured winner probed layer by layer). A fake clock makes the steps deterministic."""

from __future__ import annotations

import itertools

import pytest

from transferlens import budget
from transferlens.assess import assess
from transferlens.assess.config import make_config
from transferlens.assess.decision import _budget_sentence
from transferlens.errors import UsageError

MODELS = ["zoo:vgg-g50-s16", "zoo:mlp-g50-s16", "zoo:vgg-g50"]
ARGS = dict(top_k=1, gc_samples=0, scores=["knn_accuracy"])


@pytest.fixture(scope="module")
def budget_run(spec, tmp_path_factory):
    """Each clock read advances 0.05 fake seconds: a 0.2-minute budget is 240 reads, whatever the machine's speed."""
    ticks = itertools.count()
    mp = pytest.MonkeyPatch()
    mp.setattr(budget, "_now", lambda: 0.05 * next(ticks))
    try:
        out = tmp_path_factory.mktemp("budget-run")
        yield assess(MODELS, spec.TRAIN, out, test=spec.TEST, budget=0.2, budget_top=3, **ARGS)
    finally:
        mp.undo()


def test_budget_stage_fine_tunes_the_top_of_the_ranking(budget_run):
    st = budget_run["budget"]
    assert st["status"] == "ok", st.get("error")
    res = st["result"]
    ranking = budget_run["rank"]["result"]["ranking"]
    assert res["shortlist"] == ranking[:3] and res["minutes"] == 0.2
    assert res["recommended"] in res["shortlist"]
    assert res["seconds"] <= res["budget_seconds"] == 12.0  # fake seconds: the budget is never overrun
    assert all(res["steps"][m] >= 1 for m in res["rounds"][0]["val_accuracy"])


def test_decision_reports_the_measured_winner_and_keeps_the_frozen_feature_pick(budget_run):
    dec = budget_run["assess"]["decision"]
    res = budget_run["budget"]["result"]
    assert dec["budget"] == {"model": res["recommended"], "val_accuracy": res["recommended_val_accuracy"],
                             "agrees": res["recommended"] == dec["model"]}
    sentence = [w for w in dec["why"] if w.startswith("Measured by brief fine-tuning")]
    assert len(sentence) == 1 and res["recommended"] in sentence[0]
    # the measured winner is probed layer by layer too, beside the scores' top-1
    probed = set(budget_run["assess"]["records"]["probes"])
    assert res["recommended"] in probed and budget_run["rank"]["result"]["ranking"][0] in probed


def test_a_measured_winner_outside_the_probe_shortlist_is_probed_too(spec, tmp_path, monkeypatch):
    def last_wins(candidates, make_trainer, n_train, minutes, **kw):  # the stage's wiring, not the halving, is under test
        return {"recommended": candidates[-1], "recommended_val_accuracy": 0.5, "seconds": 1.0, "budget_seconds": 60.0 * minutes,
                "rounds": [], "steps": {}, "n_rounds_planned": 1, "stopped_by_budget": False, "ranking": list(candidates)[::-1]}

    monkeypatch.setattr(budget, "successive_halving", last_wins)
    run = assess(MODELS, spec.TRAIN, tmp_path, test=spec.TEST, budget=1.0, budget_top=3, **ARGS)
    ranking = run["rank"]["result"]["ranking"]
    assert set(run["assess"]["records"]["probes"]) == {ranking[0], ranking[2]}  # top_k=1 plus the measured winner
    dec = run["assess"]["decision"]
    assert dec["budget"]["model"] == ranking[2]
    if dec["model"] != ranking[2]:
        assert any(f"to fine-tune the whole network, {ranking[2]} measured best" in w for w in dec["why"])


def test_report_has_the_budget_section(budget_run):
    html = open(budget_run["report"]).read()
    assert 'id="budget"' in html and 'id="budget-table"' in html and 'href="#budget"' in html
    for m in budget_run["budget"]["result"]["shortlist"]:
        assert m in html


def test_no_budget_means_no_stage_and_no_section(spec, tmp_path):
    run = assess(MODELS[:2], spec.TRAIN, tmp_path, test=spec.TEST, **ARGS)
    assert run["budget"] is None and run["assess"]["decision"]["budget"] is None
    assert 'id="budget"' not in open(run["report"]).read()


def test_text_data_skips_the_budget_stage():
    with pytest.raises(UsageError, match="fine-tunes image models"):
        budget.torch_trainers("builtin:fortunes?split=train&n_per_class=5")


@pytest.mark.parametrize("kw, match", [({"budget": 0.0}, "positive number of minutes"), ({"budget": -1.0}, "positive"),
                                       ({"budget": 1.0, "budget_top": 1}, "budget-top must be >= 2")])
def test_bad_budget_options_are_rejected(kw, match):
    with pytest.raises(UsageError, match=match):
        make_config(["zoo:vgg-g50"], "builtin:digits?split=train&n_per_class=5", **kw)


def test_budget_sentence_says_whether_the_measurement_agrees():
    res = {"recommended": "b", "recommended_val_accuracy": 0.8, "seconds": 50.0, "budget_seconds": 60.0, "shortlist": ["a", "b"],
           "rounds": [{"complete": True}], "n_rounds_planned": 1, "steps": {"a": 10, "b": 12}, "minutes": 1.0,
           "stopped_by_budget": False}
    differs = _budget_sentence(res, "a")
    assert "b did best: 80.0%" in differs and "differs from the frozen-feature pick, a" in differs
    assert "agrees with the frozen-feature pick" in _budget_sentence(res, "b")
    assert "nothing was measured" in _budget_sentence({**res, "recommended": None}, "a")
    assert _budget_sentence(None, "a") is None
