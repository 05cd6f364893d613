"""The one-call study, its record/plots, and the ``ufm`` CLI command on a tiny problem."""

import json

import pytest
import typer
from typer.testing import CliRunner

from transferlens.cli.ufm import _parse_dims, register
from transferlens.errors import UsageError
from transferlens.ufm.run import UFMRunConfig, run_ufm, write_outputs

SMALL = dict(K=4, d=4, n=2, lambda_w=1e-2, lambda_h=1e-2, n_seeds=2, gd_steps=400, escape_steps=3000,
             escape_eps=(1e-4, 1e-6), sweep_dims=(1, 2, 3, 4, 5))


@pytest.mark.parametrize("loss,bias,lb", [("ce", "free", 0.0), ("mse", "reg", 1e-2), ("mse", "none", 0.0)])
def test_run_passes_all_theory_checks_and_writes_outputs(tmp_path, loss, bias, lb):
    res = run_ufm(UFMRunConfig(loss=loss, bias=bias, lambda_b=lb, **SMALL))
    assert res.checks and res.all_passed, [c for c in res.checks if not c.passed]
    names = " ".join(c.name for c in res.checks)
    assert "origin lambda_min" in names and "#zero eigenvalues" in names and "escapes" in names
    if bias != "none":
        assert "d-sweep" in names
        nc2 = {row["d"]: row["nc2"] for row in res.sweep}
        assert all((nc2[d] < 1e-6) == (d >= 3) for d in nc2)
    plots = loss == "ce"  # rendering is the slow part: draw the PNGs once
    paths = write_outputs(res, tmp_path, plots=plots)
    rec = json.loads(paths["record"].read_text())
    assert rec["kind"] == "ufm" and rec["all_passed"] is True
    assert rec["certificates"]["origin"]["kind"] == "strict saddle"
    if plots:
        for key in ("trajectory", "spectra", "sweep", "escape"):
            assert paths[key].stat().st_size > 1000 and paths[key].read_bytes()[:4] == b"\x89PNG"


def test_run_reports_a_case_outside_the_theory_without_failing():
    res = run_ufm(UFMRunConfig(loss="ce", **{**SMALL, "d": 2, "sweep_dims": (2, 3)}))
    assert res.theory == {"covered": False, "reason": res.theory["reason"]}
    assert res.all_passed  # certificates still apply: origin and optimum


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _main() -> None:  # makes "ufm" a sub-command, as in the real CLI
        pass

    return app


def test_cli_writes_the_record(tmp_path):
    out = tmp_path / "o"
    args = ["ufm", "--loss", "mse", "--K", "3", "--d", "3", "--n", "2", "--lambda-w", "1e-2", "--lambda-h", "1e-2",
            "--seeds", "1", "--gd-steps", "200", "--sweep-dims", "1-4", "--no-plots", "--out", str(out)]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "all checks passed" in result.output
    rec = json.loads((out / "ufm.json").read_text())
    assert rec["config"]["K"] == 3 and rec["config"]["loss"] == "mse"
    assert rec["sweep"][0]["d"] == 1 and not list(out.glob("*.png"))


@pytest.mark.parametrize(
    "extra",
    [["--loss", "hinge"], ["--bias", "reg"], ["--lambda-b", "0.1"], ["--seeds", "0"], ["--lambda-w", "-1"],
     ["--sweep-dims", "a-b"], ["--K", "1"]],
)
def test_cli_user_mistakes_raise_usage_error(tmp_path, extra):
    result = CliRunner().invoke(_app(), ["ufm", "--out", str(tmp_path), *extra])
    assert isinstance(result.exception, UsageError), result.output


def test_parse_dims():
    assert _parse_dims("1-3,7") == (1, 2, 3, 7)
    assert _parse_dims(None) is None
