"""CPU / GPU agreement (``@pytest.mark.gpu``: skipped without CUDA; ``scripts/test_gpu.sh`` runs them).

Stated tolerances (GPU against the CPU reference):
- extraction, fp32: per-sample relative error ‖f_gpu − f_cpu‖ / ‖f_cpu‖ < 1e-2 (cuDNN may run convolutions in
  TF32, 10-bit mantissa); bf16 / fp16 autocast: cosine similarity > 0.99 per sample;
- fine-tuning, fp32: first-epoch train loss within 2 % (relative), every method finite on the GPU;
- AdamW probe: weights within 1e-3 (absolute), same predictions on ≥ 95 % of the samples;
- geometric complexity: within 2 % (relative; same probes, drawn on the CPU).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gpu

MODEL = "timm:resnet18?pretrained=false&size=32"
DATA = "builtin:digits?n_per_class=5"
FT_MODEL = "zoo:vgg-g50-s16"
TRAIN = "builtin:digits-uci?split=train&n_per_class=8"
TEST = "builtin:digits-uci?split=test&n_per_class=5"
FAST = dict(epochs=2, batch_size=16, lr=3e-3)


def _rel_rows(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(b, axis=1), 1e-12)).max())


def _cos_rows(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def test_auto_is_the_gpu(monkeypatch):
    from transferlens.device import ENV_DEVICE, resolve_device

    monkeypatch.delenv(ENV_DEVICE, raising=False)
    assert resolve_device("auto").type == "cuda" and resolve_device("cuda:0") == torch.device("cuda", 0)


def test_extract_gpu_agrees_with_cpu(tmp_path):
    from transferlens.features import extract

    cpu = extract(MODEL, DATA, ["global_pool", "layer2.1"], cache_dir=tmp_path, device="cpu")
    gpu = extract(MODEL, DATA, ["global_pool", "layer2.1"], cache_dir=tmp_path, device="cuda")
    assert gpu.provenance["device"].startswith("cuda") and gpu.provenance["cache_key"] != cpu.provenance["cache_key"]
    for layer in cpu.layers:
        assert gpu[layer].dtype == np.float32 and _rel_rows(gpu[layer], cpu[layer]) < 1e-2
    for precision in ("bf16", "fp16"):
        half = extract(MODEL, DATA, ["global_pool"], cache_dir=tmp_path, device="cuda", precision=precision)
        assert half.provenance["precision"] == precision and _cos_rows(half["global_pool"], cpu["global_pool"]) > 0.99


@pytest.mark.parametrize("method", ["plain", "l2sp", "lpft", "wiseft", "tpgm", "ftp"])
def test_every_finetune_method_runs_on_the_gpu(method):
    from transferlens.finetune.loop import run_finetune

    rec = run_finetune(FT_MODEL, TRAIN, method, test=TEST, device="cuda", **FAST)
    assert rec["device"]["device"].startswith("cuda")
    assert all(math.isfinite(h["train_loss"]) for h in rec["history"]) and 0 <= rec["accuracy"]["test"] <= 1


def test_finetune_gpu_agrees_with_cpu_and_runs_half_precision():
    from transferlens.finetune.loop import run_finetune

    cpu = run_finetune(FT_MODEL, TRAIN, "ftp", test=TEST, device="cpu", **FAST)
    gpu = run_finetune(FT_MODEL, TRAIN, "ftp", test=TEST, device="cuda", **FAST)
    a, b = gpu["history"][0]["train_loss"], cpu["history"][0]["train_loss"]
    assert abs(a - b) < 0.02 * b
    for precision in ("bf16", "fp16"):
        rec = run_finetune(FT_MODEL, TRAIN, "ftp", test=TEST, device="cuda", precision=precision, **FAST)
        assert all(math.isfinite(h["train_loss"]) for h in rec["history"]) and rec["device"]["precision"] == precision


def test_optimizer_state_lives_on_the_parameters_device():
    from transferlens.finetune.optim.ftp import FTPAdamW

    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)).cuda()
    opt = FTPAdamW(net, lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        net(torch.randn(8, 6, device="cuda")).pow(2).mean().backward()
        opt.step()
    tensors = [v for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor)]
    assert tensors and all(t.device.type == "cuda" for t in tensors)


def test_adamw_probe_gpu_agrees_with_cpu():
    from transferlens.probe.adamw import fit_adamw_probe

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 16)), np.repeat(np.arange(3), 100)
    x[:, 0] += y
    a = fit_adamw_probe(x, y, epochs=5, seed=1, device="cpu")
    b = fit_adamw_probe(x, y, epochs=5, seed=1, device="cuda")
    assert b.info["device"].startswith("cuda") and np.abs(a.weight - b.weight).max() < 1e-3
    assert np.mean(a.predict(x) == b.predict(x)) >= 0.95


def test_gc_gpu_agrees_with_cpu():
    from transferlens.geometry.complexity import gc_stochastic

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))
    x = torch.rand(16, 3, 8, 8)
    cpu = gc_stochastic(net, x, n_probes=4, seed=3)
    gpu = gc_stochastic(net.cuda(), x.cuda(), n_probes=4, seed=3)
    assert abs(gpu.value - cpu.value) < 0.02 * cpu.value


def test_geometry_report_on_the_gpu():
    from transferlens.geometry.report import geometry_report

    rec = geometry_report(MODEL, DATA, "global_pool", gc_samples=8, gc_probes=2, n_episodes=5, device="cuda")
    assert rec["device"].startswith("cuda") and math.isfinite(rec["layers"][0]["gc"])


def test_budget_trainer_runs_on_the_gpu_and_agrees_with_cpu_at_step_zero():
    """assess/rank --budget: the model and the tensors go to the device; before any step both devices give the same
    validation accuracy (same new head, same weights), and training steps run there."""
    from transferlens.budget import torch_trainers

    cpu = torch_trainers(TRAIN, seed=0, device="cpu")(FT_MODEL)
    gpu = torch_trainers(TRAIN, seed=0, device="cuda")(FT_MODEL)
    assert next(gpu.module.parameters()).is_cuda and gpu.x_train.is_cuda and gpu.y_val.is_cuda
    assert abs(cpu.evaluate() - gpu.evaluate()) <= 1.0 / len(cpu.y_val) + 1e-9  # at most one borderline sample
    gpu.train(3, subset=32)
    assert gpu.steps_done == 3 and all(torch.isfinite(p).all() for p in gpu.module.parameters())
