"""Fine-tuning and the AdamW probe on a device: CPU + fp32 unchanged, half precisions run (autocast, fp16 scaler)
and are recorded; the optimizers keep their state on the parameters' device."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from transferlens.finetune.loop import run_finetune
from transferlens.probe.adamw import fit_adamw_probe

MODEL = "zoo:vgg-g50-s16"
TRAIN = "builtin:digits-uci?split=train&n_per_class=8"
TEST = "builtin:digits-uci?split=test&n_per_class=5"
FAST = dict(epochs=2, batch_size=16, threads=1, lr=3e-3)


def test_cpu_fp32_explicit_equals_default(tmp_path):
    a = run_finetune(MODEL, TRAIN, "ftp", test=TEST, **FAST)
    b = run_finetune(MODEL, TRAIN, "ftp", test=TEST, device="cpu", precision="fp32", **FAST)
    assert [(h["train_loss"], h["val_accuracy"]) for h in a["history"]] == [(h["train_loss"], h["val_accuracy"]) for h in b["history"]]
    assert a["accuracy"] == b["accuracy"] and a["trace"] == b["trace"]
    assert b["device"]["device"] == "cpu" and b["device"]["precision"] == "fp32"


@pytest.mark.parametrize("method,precision", [("ftp", "bf16"), ("l2sp", "fp16"), ("tpgm", "bf16")])
def test_half_precision_runs_on_cpu_and_is_recorded(tmp_path, method: str, precision: str):
    rec = run_finetune(MODEL, TRAIN, method, test=TEST, device="cpu", precision=precision, out_dir=tmp_path, **FAST)
    assert rec["device"]["precision"] == precision
    assert all(math.isfinite(h["train_loss"]) and h["train_loss"] > 0 for h in rec["history"])
    assert 0 <= rec["accuracy"]["test"] <= 1
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ("scaler" in state) == (precision == "fp16")
    ref = run_finetune(MODEL, TRAIN, method, test=TEST, device="cpu", **FAST)
    assert rec["history"][0]["train_loss"] != ref["history"][0]["train_loss"]  # autocast changed the arithmetic
    assert abs(rec["history"][0]["train_loss"] - ref["history"][0]["train_loss"]) < 0.1 * ref["history"][0]["train_loss"]


def test_adamw_probe_cpu_default_unchanged():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 5)), np.repeat(np.arange(3), 20)
    a = fit_adamw_probe(x, y, epochs=3, seed=1)
    b = fit_adamw_probe(x, y, epochs=3, seed=1, device="cpu")
    assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias) and b.info["device"] == "cpu"
