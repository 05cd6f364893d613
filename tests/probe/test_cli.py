"""``probe_cmd`` (registered by the lead as ``transferlens probe``): record, plot, table, one-line errors."""

from __future__ import annotations

import numpy as np
import typer
from typer.testing import CliRunner

from transferlens.cli.probe_cmd import probe_cmd
from transferlens.io import read_record

app = typer.Typer()
app.command("probe")(probe_cmd)
app.command("noop")(lambda: None)  # keeps "probe" a sub-command, as in the real CLI
runner = CliRunner()


def _npz(path, seed, n=40, classes=("x", "y"), shift=0.0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(classes)), n // len(classes))
    x = np.eye(len(classes), 6)[y] * 3 + rng.standard_normal((len(y), 6)) + shift
    np.savez(path, features=x, labels=y, class_names=np.array(classes))
    return f"npz:{path}"


def test_probe_command_writes_record_and_plot(tmp_path):
    id_uri = _npz(tmp_path / "id.npz", 0)
    ood_uri = _npz(tmp_path / "ood.npz", 1, shift=0.5)
    out = tmp_path / "out"
    res = runner.invoke(app, ["probe", "--model", "timm:unused", "--data", id_uri, "--ood", ood_uri, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "recommended layer" in res.output and "OOD1" in res.output
    rec = read_record(out / "probe.json", kind="probe")
    assert rec["n_train"] + rec["n_test"] == 40 and rec["layers"][0]["layer"] == "features"
    assert rec["ood_data"] == [ood_uri] and rec["recommendation"]["layer"] == "features"
    assert (out / "probe.png").stat().st_size > 1000


def test_probe_command_errors_are_one_line(tmp_path):
    id_uri = _npz(tmp_path / "id.npz", 0)
    other = _npz(tmp_path / "other.npz", 1, classes=("x", "q"))
    res = runner.invoke(app, ["probe", "--model", "timm:unused", "--data", id_uri, "--ood", other])
    assert res.exit_code == 1 and "same classes" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["probe", "--model", "timm:unused", "--data", id_uri, "--probe", "svm"])
    assert res.exit_code == 2 and "--probe must be one of" in res.output


def test_cli_probe_names_match_the_library():
    from transferlens.cli import probe_cmd as cmd
    from transferlens.probe.analysis import PROBES

    assert cmd.PROBES == PROBES
