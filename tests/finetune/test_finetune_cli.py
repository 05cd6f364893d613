"""`transferlens finetune`: writes record.json, prints the summary, errors are one line; under torchrun (2 gloo
processes on CPU) it trains with DistributedDataParallel to the same weights as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from transferlens.cli.main import app

runner = CliRunner()
MODEL = "zoo:vgg-g50-s16"
TRAIN = "builtin:digits-uci?classes=0-4&split=train&n_per_class=8"
TEST = "builtin:digits-uci?classes=0-4&split=test&n_per_class=4"


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_finetune_writes_record_and_prints_summary(tmp_path: Path) -> None:
    ood = f"shift:contrast:3:{TEST}"
    code, out = run("finetune", "--model", MODEL, "--data", TRAIN, "--test", TEST, "--ood", ood, "--method", "wiseft",
                    "--epochs", "1", "--batch-size", "16", "--threads", "1", "--set", "alphas=0,1", "--out", str(tmp_path))
    assert code == 0, out
    rec = json.loads((tmp_path / "record.json").read_text())
    assert rec["kind"] == "finetune" and rec["method"] == "wiseft" and rec["wiseft"]["alphas"] == [0.0, 1.0]
    assert rec["data"]["n_classes"] == 5 and set(rec["accuracy"]["ood"]) == {ood}
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "checkpoint.pt").exists()
    assert "ID test" in out and "OOD mean" in out and "WiSE-FT" in out and "record.json" in out
    assert f"{100 * rec['accuracy']['test']:.1f}" in out


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["--method", "sgd"], 2, "unknown fine-tuning method 'sgd'"),
        (["--method", "ftp", "--set", "kappa=1"], 2, "no option 'kappa'"),
        (["--method", "ftp", "--set", "k=strong"], 2, "k='strong' is not a float"),
        (["--head", "etf", "--method", "lpft"], 2, "fits a linear head"),
        (["--ood", "builtin:digits-uci?split=test&n_per_class=2"], 1, "classes the train set lacks"),
        (["--method", "tpgm", "--val", "builtin:digits-uci?classes=0-2&n_per_class=2"], 1, "no sample of class '3'"),
    ],
)
def test_finetune_errors_are_one_line(args: list[str], code: int, needle: str) -> None:
    got, out = run("finetune", "--model", MODEL, "--data", TRAIN, "--epochs", "1", *args)
    assert got == code, out
    assert needle in out and "Traceback" not in out
    assert len([line for line in out.splitlines() if line.strip()]) == 1


def test_torchrun_two_processes_match_one_process(tmp_path: Path) -> None:
    """DDP (gloo) with the global batch split over 2 ranks equals one process on the whole batch; only rank 0
    writes. The model has no BatchNorm (whose batch statistics would stay per rank), so the match is exact."""
    args = ["finetune", "--model", "zoo:mlp-g50-s16", "--data", "builtin:digits-uci?split=train&n_per_class=4",
            "--method", "ftp", "--epochs", "2", "--batch-size", "16", "--lr", "3e-3"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "transferlens.cli.main", *args, "--out", str(tmp_path / "ddp")]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("torchrun did not finish within 180 s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1  # rank 0 alone prints and writes
    code, out = run(*args, "--threads", "1", "--out", str(tmp_path / "one"))
    assert code == 0, out

    ddp = json.loads((tmp_path / "ddp" / "record.json").read_text())
    one = json.loads((tmp_path / "one" / "record.json").read_text())
    assert ddp["cost"]["world_size"] == 2 and ddp["cost"]["threads"] == max(1, (os.cpu_count() or 1) // 2) and one["cost"]["world_size"] == 1
    for h_ddp, h_one in zip(ddp["history"], one["history"], strict=True):
        assert h_ddp["train_loss"] == pytest.approx(h_one["train_loss"], abs=1e-5)
        assert h_ddp["val_accuracy"] == h_one["val_accuracy"]
    for t_ddp, t_one in zip(ddp["trace"]["tensors"], one["trace"]["tensors"], strict=True):
        if not t_one["head"]:
            assert t_ddp["gamma"] == pytest.approx(t_one["gamma"], rel=1e-4)
    a, b = load_file(tmp_path / "ddp" / "model.safetensors"), load_file(tmp_path / "one" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)
