"""The fine-tuning loop (`run_finetune`): every method, exact resume, WiSE-FT end points, FTP's γ constraint,
head replacement, label alignment and user errors. Tiny: a shipped 16x16 zoo model on 40-80 UCI digits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from transferlens.errors import InputError, UsageError
from transferlens.finetune import loop
from transferlens.finetune.loop import run_finetune
from transferlens.finetune.methods import METHODS

MODEL = "zoo:vgg-g50-s16"
TRAIN = "builtin:digits-uci?split=train&n_per_class=8"
TEST = "builtin:digits-uci?split=test&n_per_class=5"
OOD = "shift:blur:3:builtin:digits-uci?split=test&n_per_class=5"
FAST = dict(epochs=2, batch_size=16, threads=1, lr=3e-3)


def _finite(x: object) -> bool:
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return not isinstance(x, float) or math.isfinite(x)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_and_returns_a_finite_record(method: str) -> None:
    rec = run_finetune(MODEL, TRAIN, method, test=TEST, ood=[OOD], **FAST)
    json.dumps(rec, allow_nan=False)  # JSON-able, no NaN
    assert _finite(rec)
    assert rec["method"] == method and rec["seed"] == 0 and rec["hyperparameters"]["lr"] == 3e-3
    assert rec["data"]["n_train"] + rec["data"]["n_val"] == 80 and rec["data"]["n_val"] == 20  # 20 % per class
    assert [h["epoch"] for h in rec["history"]] == [1, 2]
    assert all(h["train_loss"] > 0 and 0 <= h["val_accuracy"] <= 1 for h in rec["history"])
    acc = rec["accuracy"]
    assert 0 <= acc["test"] <= 1 and set(acc["ood"]) == {OOD} and acc["ood_mean"] == acc["ood"][OOD]
    assert rec["cost"]["seconds"] > 0 and rec["cost"]["peak_rss_mib"] > 50 and rec["cost"]["threads"] == 1
    tensors = rec["trace"]["tensors"]
    assert rec["trace"]["epochs"] == [1, 2] and {t["name"] for t in tensors if t["head"]} == {"head.weight", "head.bias"}
    assert all(len(t["distance_l2"]) == 2 and t["distance_l2"][-1] > 0 for t in tensors)  # every tensor moved
    constrained = method in ("ftp", "tpgm")
    assert all((g is not None) == (constrained and not t["head"]) for t in tensors for g in t["gamma"])
    assert any("held out for validation" in n for n in rec["notes"])
    if method == "tpgm":
        assert any("TPGM fits its projection radii" in n for n in rec["notes"])
    assert (rec["linear_probe"] is not None) == (method in ("lpft", "wiseft"))
    assert (rec["wiseft"] is not None) == (method == "wiseft")


@pytest.mark.parametrize("method", ["ftp", "tpgm"])
def test_resume_after_interruption_equals_uninterrupted(method: str, tmp_path: Path, monkeypatch) -> None:
    kw = dict(test=TEST, **{**FAST, "epochs": 3})
    full = run_finetune(MODEL, TRAIN, method, out_dir=tmp_path / "full", **kw)

    real = loop._Run._write_checkpoint
    calls = []

    def killed_after_first_epoch(self, state):  # the checkpoint lands, then the process "dies"
        real(self, state)
        calls.append(state["epoch"])
        raise KeyboardInterrupt

    monkeypatch.setattr(loop._Run, "_write_checkpoint", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_finetune(MODEL, TRAIN, method, out_dir=tmp_path / "cut", **kw)
    monkeypatch.setattr(loop._Run, "_write_checkpoint", real)
    assert calls == [1] and not (tmp_path / "cut" / "record.json").exists()
    resumed = run_finetune(MODEL, TRAIN, method, out_dir=tmp_path / "cut", **kw)

    assert resumed["resumed_from_epoch"] == 1 and full["resumed_from_epoch"] == 0
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
    assert resumed["accuracy"] == full["accuracy"]
    for h_full, h_res in zip(full["history"], resumed["history"], strict=True):
        assert h_res["train_loss"] == pytest.approx(h_full["train_loss"], abs=1e-6)
        assert h_res["val_accuracy"] == h_full["val_accuracy"]
    for t_full, t_res in zip(full["trace"]["tensors"], resumed["trace"]["tensors"], strict=True):
        assert t_res["distance_l2"] == pytest.approx(t_full["distance_l2"], abs=1e-6)
        assert t_res["gamma"] == pytest.approx(t_full["gamma"], abs=1e-6)
    # non-trivial: the constrained layers did move away from the anchor after epoch 1
    assert max(t["distance_l2"][-1] - t["distance_l2"][0] for t in full["trace"]["tensors"] if not t["head"]) > 1e-3
    on_disk = json.loads((tmp_path / "cut" / "record.json").read_text())
    assert on_disk["kind"] == "finetune" and on_disk["accuracy"] == resumed["accuracy"]


def test_checkpoint_of_another_run_is_refused(tmp_path: Path) -> None:
    run_finetune(MODEL, TRAIN, "plain", out_dir=tmp_path, **{**FAST, "epochs": 1})
    with pytest.raises(UsageError, match="checkpoint of a different run"):
        run_finetune(MODEL, TRAIN, "plain", out_dir=tmp_path, **{**FAST, "epochs": 1, "seed": 1})
    again = run_finetune(MODEL, TRAIN, "plain", out_dir=tmp_path, resume=False, **{**FAST, "epochs": 1, "seed": 1})
    assert again["seed"] == 1 and again["resumed_from_epoch"] == 0


def test_wiseft_end_points_are_the_lp_model_and_the_fine_tuned_model() -> None:
    kw = dict(test=TEST, ood=[OOD], **FAST)
    wise = run_finetune(MODEL, TRAIN, "wiseft", alphas=(0.0, 0.5, 1.0), **kw)
    lpft = run_finetune(MODEL, TRAIN, "lpft", **kw)  # same training (LP head, then full fine-tuning)
    sweep = wise["wiseft"]["accuracy"]
    assert wise["wiseft"]["alphas"] == [0.0, 0.5, 1.0] and set(sweep) == {"val", "test", OOD}
    # α = 0: the pretrained backbone with the LP head, as measured before fine-tuning
    assert sweep["val"][0] == wise["linear_probe"]["val_accuracy"]
    assert sweep["test"][0] == wise["linear_probe"]["test_accuracy"] == lpft["linear_probe"]["test_accuracy"]
    assert wise["linear_probe"]["train_accuracy"] > 0.5
    # α = 1: the fine-tuned model of the same run as LP-FT
    for name in ("val", "test"):
        assert sweep[name][2] == lpft["accuracy"][name]
    assert sweep[OOD][2] == lpft["accuracy"]["ood"][OOD]
    # the chosen α has the best validation accuracy, and the final accuracies are that α's
    i = wise["wiseft"]["alphas"].index(wise["wiseft"]["chosen_alpha"])
    assert sweep["val"][i] == max(sweep["val"]) and wise["accuracy"]["test"] == sweep["test"][i]
    # the backbone really changed, so the two end points are different models
    assert max(t["distance_l2"][-1] for t in lpft["trace"]["tensors"] if not t["head"]) > 1e-3


def test_ftp_distance_trace_respects_the_learned_gamma() -> None:
    rec = run_finetune(MODEL, TRAIN, "ftp", **{**FAST, "epochs": 3})
    active = 0
    for t in rec["trace"]["tensors"]:
        if t["head"]:
            assert t["gamma"] == [None] * 3 and t["distance_max_row_l1"][-1] > 1e-3  # the new head is free
            continue
        for gamma, dist in zip(t["gamma"], t["distance_max_row_l1"], strict=True):
            assert gamma >= 1e-8 * (1 - 1e-6)  # γ is float32: its floor 1e-8 is stored as 9.99999994e-9
            assert dist <= gamma * (1 + 1e-5) + 1e-7  # float32 rounding of w0 + ratio·c
            active += dist >= 0.99 * gamma
        assert t["gamma"][-1] > max(t["gamma"][0], 1e-3)  # γ grew from its 1e-8 start
    assert active > 0  # the constraint binds somewhere, so the check is not vacuous


def test_runs_are_deterministic_and_etf_head_trains() -> None:
    a = run_finetune(MODEL, TRAIN, "l2sp", head="etf", **{**FAST, "epochs": 1})
    b = run_finetune(MODEL, TRAIN, "l2sp", head="etf", **{**FAST, "epochs": 1})
    assert a["history"] == [{**h, "seconds": a["history"][0]["seconds"]} for h in b["history"]]
    assert a["trace"]["tensors"] == b["trace"]["tensors"]
    head = {t["name"] for t in a["trace"]["tensors"] if t["head"]}
    assert head == {"head.log_temperature", "head.bias"}  # the ETF weight is a fixed buffer


def test_head_replacement_and_label_alignment() -> None:
    from transferlens.data import load_data
    from transferlens.finetune.prepare import align_labels, find_head, load_backbone, replace_head
    from transferlens.models import resolve_model

    zoo = load_backbone(MODEL).module
    assert replace_head(zoo, 3) == ("head", ["head.weight", "head.bias"]) and zoo.head.out_features == 3
    timm = resolve_model("timm:mobilenetv3_small_050?pretrained=false&size=32").load().module
    path, names = replace_head(timm, 4, "etf")
    assert path == find_head(timm)[0] == "classifier" and names == ["classifier.log_temperature", "classifier.bias"]
    assert timm(torch.zeros(2, 3, 32, 32)).shape == (2, 4)

    sub = load_data("builtin:digits-uci?classes=7,2&n_per_class=2")  # labels 0 = '7', 1 = '2'
    names10 = [str(i) for i in range(10)]
    np.testing.assert_array_equal(align_labels(sub, names10, "x"), np.array([int(sub.class_names[c]) for c in sub.labels]))
    with pytest.raises(InputError, match="classes the train set lacks"):
        align_labels(load_data("builtin:digits-uci?n_per_class=1"), ["1", "2"], "the OOD set")


@pytest.mark.parametrize(
    "args,kwargs,error,needle",
    [
        (("sgd",), {}, UsageError, "unknown fine-tuning method 'sgd'"),
        (("ftp",), {"kappa": 1}, UsageError, "no option 'kappa'"),
        (("lpft",), {"head": "etf"}, UsageError, "fits a linear head"),
        (("plain",), {"ood": ["builtin:digits-uci?split=test&n_per_class=2"]}, InputError, "classes the train set lacks"),
        (("tpgm",), {"val": "builtin:digits-uci?classes=0-2&n_per_class=2"}, InputError, "no sample of class '3'"),
    ],
)
def test_user_errors_are_one_line_messages(args, kwargs, error, needle) -> None:
    with pytest.raises(error, match=needle) as info:
        run_finetune(MODEL, "builtin:digits-uci?classes=0-4&split=train&n_per_class=4", *args, **{**FAST, **kwargs})
    assert "\n" not in str(info.value)


def test_too_little_data_to_hold_out_validation() -> None:
    with pytest.raises(InputError, match="cannot hold out a validation split.*--val"):
        run_finetune(MODEL, "builtin:digits-uci?split=train&n_per_class=1", "tpgm", **FAST)
