"""The assess workflow: stage records, failures kept local, the decision, and re-runs that redo only what changed."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from transferlens.assess import assess
from transferlens.assess.decision import TIE
from transferlens.io import read_record

TRAIN = "builtin:digits?split=train&classes=0-4&n_per_class=20"  # as in conftest.py


def _statuses(run: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in run["assess"]["stages"]}


def _copy(run: dict, tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(run["dir"], dest)
    return dest


def _rerun(spec, out: Path, **kw) -> dict:
    args = dict(test=spec.TEST, ood=[spec.OOD_OK, spec.OOD_BAD], top_k=spec.TOP_K, finetune=True, finetune_epochs=2, gc_samples=16)
    args.update(kw)
    return assess(spec.MODELS, spec.TRAIN, out, **args)


def test_every_stage_is_recorded_and_failures_stay_local(tiny_run, spec):
    a = tiny_run["assess"]
    shortlist = a["shortlist"]
    assert len(shortlist) == spec.TOP_K and "zoo:no-such-model" not in shortlist
    st = _statuses(tiny_run)
    assert list(st) == ["data", "models", "rank", *[f"probe:{m}" for m in shortlist], *[f"geometry:{m}" for m in shortlist],
                        "finetune:ftp", "finetune:plain"]
    assert all(st[n] == "ok" for n in list(st)[:3 + 2 * spec.TOP_K])
    assert st["finetune:ftp"] == ("ok" if spec.finetune_available else "unavailable")
    for s in a["stages"]:
        rec = read_record(Path(tiny_run["dir"]) / s["record"], "assess-stage")
        assert rec["stage"] == s["name"] and len(rec["inputs_hash"]) == 64
    # the model that cannot be loaded: its error is recorded, the three others are ranked
    rank = tiny_run["rank"]["result"]
    errors = {r["model"]: r["error"] for r in rank["models"]}
    assert "no-such-model" in errors["zoo:no-such-model"]
    assert sorted(rank["ranking"]) == sorted(spec.MODELS[:3])
    # the OOD set with classes the ID data lacks is set aside with its reason; the other one is used
    bad = next(e for e in tiny_run["data"]["result"]["ood"] if e["uri"] == spec.OOD_BAD)
    assert "classes the ID data lacks (5, 6, 7, 8, 9)" in bad["error"]
    for m in shortlist:
        assert tiny_run["probes"][m]["result"]["ood_data"] == [spec.OOD_OK]
    caveats = " ".join(a["decision"]["caveats"])
    assert "digits-uci" in caveats and "zoo:no-such-model" in caveats
    # progress: every stage started and finished, and the report was written
    done = [(n, s) for n, s, _ in tiny_run["events"] if s != "start"]
    assert [n for n, _ in done] == [*st, "report"] and (Path(tiny_run["dir"]) / "report.html").exists()


def test_decision_is_the_most_robust_probed_model(tiny_run):
    d = tiny_run["assess"]["decision"]
    probes = {m: s["result"] for m, s in tiny_run["probes"].items()}

    def best(m: str) -> dict:
        return probes[m]["layers"][probes[m]["recommendation"]["index"]]

    ranking = tiny_run["rank"]["result"]["ranking"]
    top = max(best(m)["ood_mean_accuracy"] for m in probes)
    tied = [m for m in probes if best(m)["ood_mean_accuracy"] >= top - TIE]
    assert d["basis"] == "ood" and d["model"] == min(tied, key=ranking.index)
    assert d["layer"] == probes[d["model"]]["recommendation"]["layer"]
    assert d["headline"] == f"Use {d['model']}, features of layer {d['layer']}."
    assert d["rank_position"] == tiny_run["rank"]["result"]["ranking"].index(d["model"]) + 1
    assert any("transferability scores rank it" in w for w in d["why"])


def test_geometry_has_nc_gc_and_fewshot_curves(tiny_run):
    for m, stage in tiny_run["geometry"].items():
        g = stage["result"]
        layer = tiny_run["probes"][m]["result"]["recommendation"]["layer"]
        assert all(r["nc1"] > 0 for r in g["layers"])
        # GC (backward passes) only on the layers the recommendation uses; NC and ranks on every layer
        with_gc = {r["layer"] for r in g["layers"] if "gc" in r}
        assert layer in with_gc and with_gc == set(g["gc"]["layers"]) and all(r["gc"] > 0 for r in g["layers"] if "gc" in r)
        curve = g["fewshot_curves"][layer]
        # 20 samples per class: 10 queries, so 1, 2, 5 and 10 shots fit and 20 does not
        assert [p["shots"] for p in curve["points"]] == [1, 2, 5, 10] and curve["skipped"] == [20]
        assert curve["n_way"] == 5 and curve["points"][-1]["accuracy"] > 2 * curve["chance"]


def test_rerun_reuses_every_unchanged_stage(tiny_run, spec, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("recomputed a stage whose inputs did not change")

    monkeypatch.setattr("transferlens.ranking.rank_models", boom)
    monkeypatch.setattr("transferlens.probe.analysis.probe_layers", boom)
    monkeypatch.setattr("transferlens.geometry.report.geometry_report", boom)
    monkeypatch.setattr("transferlens.assess.workflow._load_finetune", boom)
    run = _rerun(spec, _copy(tiny_run, tmp_path))
    st = _statuses(run)
    first = _statuses(tiny_run)
    assert st["data"] == st["models"] == "ok"  # cheap: always recomputed
    assert all(st[n] == ("cached" if first[n] == "ok" else first[n]) for n in list(st)[2:]), st
    assert run["assess"]["decision"] == tiny_run["assess"]["decision"]


def test_changed_inputs_recompute_only_what_changed(tiny_run, spec, tmp_path, monkeypatch):
    calls: list[str] = []
    import transferlens.probe.analysis as pa

    real = pa.probe_layers
    monkeypatch.setattr(pa, "probe_layers", lambda m, *a, **k: calls.append(m) or real(m, *a, **k))
    run = _rerun(spec, _copy(tiny_run, tmp_path), top_k=3, finetune=False)
    st = _statuses(run)
    third = run["assess"]["shortlist"][2]
    assert calls == [third]
    assert st["rank"] == "cached" and st[f"probe:{third}"] == "ok" and st[f"geometry:{third}"] == "ok"
    assert all(st[f"probe:{m}"] == "cached" for m in tiny_run["assess"]["shortlist"])


def test_a_new_combination_rule_recomputes_the_rank(tiny_run, spec, tmp_path, monkeypatch):
    """rank's default rule is an input of the rank stage: a record made under another default is not reused (it
    would name the old rule and order the shortlist by it)."""
    import transferlens.ranking as ranking

    monkeypatch.setattr(ranking, "COMBINED_SCORES", ("logme",))
    monkeypatch.setattr(ranking, "COMBINED_AGGREGATOR", "mean")
    run = _rerun(spec, _copy(tiny_run, tmp_path), finetune=False)
    st = _statuses(run)
    stage = next(s for s in run["assess"]["stages"] if s["name"] == "rank")
    rank = read_record(Path(run["dir"]) / stage["record"], "assess-stage")["result"]
    assert st["rank"] == "ok" and rank["combined"]["scores"] == ["logme"]
    logme = {r["model"]: r["scores"]["logme"] for r in rank["models"] if "logme" in r.get("scores", {})}
    assert rank["ranking"][: len(logme)] == sorted(logme, key=logme.get, reverse=True)


def test_finetune_stage_runs_the_loop_for_the_winner(tiny_run, spec, tmp_path, monkeypatch):
    seen = []

    def fake_loop(model, train, method, **kw):
        seen.append((model, train, method, kw["test"], kw["ood"], kw["epochs"]))
        return {"format": "transferlens.finetune/1", "accuracy": {"val": 0.5, "test": 0.75 if method == "ftp" else 0.7,
                                                                   "ood": {spec.OOD_OK: 0.6 if method == "ftp" else 0.4}}}

    monkeypatch.setattr("transferlens.assess.workflow._load_finetune", lambda: fake_loop)
    run = _rerun(spec, _copy(tiny_run, tmp_path), finetune_epochs=1)
    winner = run["assess"]["decision"]["model"]
    assert seen == [(winner, TRAIN, "ftp", spec.TEST, (spec.OOD_OK,), 1), (winner, TRAIN, "plain", spec.TEST, (spec.OOD_OK,), 1)]
    ftp = run["finetune"]["ftp"]["result"]
    assert ftp["test_accuracy"] == 0.75 and ftp["ood_accuracy"] == {spec.OOD_OK: 0.6} and ftp["ood_mean_accuracy"] == 0.6
    assert any("FTP keeps more OOD accuracy than plain fine-tuning (+20.0 points)" in w for w in run["assess"]["decision"]["why"])


def test_missing_finetune_loop_is_reported_as_unavailable(tiny_run, spec, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transferlens.finetune.loop", None)  # import fails
    run = _rerun(spec, _copy(tiny_run, tmp_path), finetune_epochs=1)
    st = _statuses(run)
    assert st["finetune:ftp"] == st["finetune:plain"] == "unavailable"
    assert st["rank"] == "cached" and run["assess"]["decision"]["model"] == tiny_run["assess"]["decision"]["model"]
    assert "transferlens.finetune.loop" in run["finetune"]["ftp"]["error"]


def test_unreadable_train_data_fails_its_stage_and_still_reports(tmp_path):
    run = assess(["zoo:vgg-g50"], "builtin:digits?split=train&n_per_class=100000", tmp_path / "run")
    st = _statuses(run)
    assert st["data"] == "failed" and st["rank"] == "skipped" and "n_per_class" in run["data"]["error"]
    assert run["assess"]["decision"]["model"] is None and run["assess"]["shortlist"] == []
    html = Path(run["report"]).read_text()
    assert "No recommendation" in html and "Stage data failed" in html


@pytest.mark.parametrize("kwargs, message", [
    (dict(models=["zoo:vgg-g50", "zoo:vgg-g50"], data=TRAIN), "given twice"),
    (dict(models=["zoo:vgg-g50"], data=TRAIN, target="digits"), "either --data or --target"),
    (dict(models=["zoo:vgg-g50"], target="nope"), "unknown target"),
    (dict(models=["zoo:vgg-g50"], data=TRAIN, top_k=0), "--top must be >= 1"),
    (dict(models=["zoo:vgg-g50"], data=TRAIN, scores=["logme", "pactran"]), "unknown score 'pactran'"),
])
def test_usage_errors_before_any_stage(tmp_path, kwargs, message):
    from transferlens.errors import UsageError

    with pytest.raises(UsageError, match=message):
        assess(out=tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()


def test_threads_are_capped_during_the_run_and_restored(tiny_run, spec, tmp_path):
    import torch

    torch.set_num_threads(2)
    run = _rerun(spec, _copy(tiny_run, tmp_path), threads=1)
    assert run["assess"]["provenance"]["torch_threads"] == 1 and torch.get_num_threads() == 2
