"""``transferlens assess`` and ``transferlens report`` on the command line: terminal summary, exit codes, one-line errors."""

from __future__ import annotations

from typer.testing import CliRunner

from transferlens.cli.main import app

runner = CliRunner()


def test_assess_prints_a_summary_and_writes_the_report(spec, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["assess", "-m", "zoo:mlp-g50-s16", "-m", "zoo:vgg-g50-s16", "-d", spec.TRAIN, "--test", spec.TEST,
                              "--ood", spec.OOD_OK, "--top", "1", "--gc-samples", "8", "-o", str(out)])
    assert res.exit_code == 0, res.output
    for text in ("recommendation", "Use zoo:", "ranking of 2 candidate(s)", "layer-wise probes", "report:", "records:"):
        assert text in res.output
    assert (out / "report.html").exists() and (out / "assess.json").exists()
    # re-render only
    (out / "report.html").unlink()
    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "report.html").stat().st_size > 10_000


def test_assess_usage_errors_are_one_line(spec, tmp_path):
    res = runner.invoke(app, ["assess", "-d", spec.TRAIN, "--target", "digits", "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "either --data or --target" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["assess", "-m", "zoo:vgg-g50", "-m", "zoo:vgg-g50", "-d", spec.TRAIN, "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "given twice" in res.output


def test_assess_without_a_recommendation_exits_1_but_keeps_the_report(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["assess", "-m", "zoo:no-such-model", "-d", "builtin:digits?split=train&n_per_class=5", "-o", str(out)])
    assert res.exit_code == 1, res.output
    assert "No recommendation" in res.output and "no-such-model" in res.output
    assert "No recommendation" in (out / "report.html").read_text()


def test_report_of_a_directory_without_a_run(tmp_path):
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "no assess.json" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_default_help_names_the_builtin_target():
    res = runner.invoke(app, ["assess", "--help"])
    assert res.exit_code == 0 and "digits" in res.output and "--finetune" in res.output
