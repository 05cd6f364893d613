"""transferlens.device: resolving --device / --precision, the using() scope, cache-key numerics, fail-fast CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from transferlens.device import (ENV_DEVICE, ENV_PRECISION, autocast, check_precision, device_provenance, numerics_key,
                                 oom_hint, resolve, resolve_device, using)
from transferlens.errors import ModelError, UsageError

NO_GPU = not torch.cuda.is_available()


def test_cpu_and_auto_without_gpu(monkeypatch):
    monkeypatch.delenv(ENV_DEVICE, raising=False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected


@pytest.mark.skipif(not NO_GPU, reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_without_gpu_is_one_usage_line(spec):
    with pytest.raises(UsageError) as err:
        resolve_device(spec)
    msg = str(err.value)
    assert "\n" not in msg and "no CUDA GPU" in msg and "--device cpu" in msg


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "cuda:-1", "gpu", ""])
def test_unknown_device_names(spec):
    if spec == "":
        assert resolve_device(spec).type in ("cpu", "cuda", "mps")  # empty = auto
        return
    with pytest.raises(UsageError, match="not a device|no CUDA GPU|CUDA device"):
        resolve_device(spec)


def test_precision_values():
    assert [check_precision(p) for p in ("fp32", "BF16", " fp16 ")] == ["fp32", "bf16", "fp16"]
    with pytest.raises(UsageError, match="--precision must be one of fp32, bf16, fp16"):
        check_precision("fp8")


def test_numerics_key_keeps_reference_keys():
    cpu = torch.device("cpu")
    assert numerics_key(cpu, "fp32") is None
    assert numerics_key(cpu, "bf16") == "cpu/bf16"
    assert numerics_key(torch.device("cuda", 0), "fp32") == "cuda/fp32"  # GPU float32 is not bit-identical to CPU


def test_using_scope_sets_default_and_environment_then_restores(monkeypatch):
    monkeypatch.delenv(ENV_DEVICE, raising=False)
    monkeypatch.setenv(ENV_PRECISION, "fp32")
    with using("cpu", "bf16") as (dev, p):
        assert (dev.type, p) == ("cpu", "bf16")
        assert resolve("auto", None) == (torch.device("cpu"), "bf16")
        assert check_precision("fp16") == "fp16"  # an explicit value wins over the scope
        assert (os.environ[ENV_DEVICE], os.environ[ENV_PRECISION]) == ("cpu", "bf16")
        with using("cpu", "fp16"):
            assert check_precision(None) == "fp16"
        assert check_precision(None) == "bf16"
    assert ENV_DEVICE not in os.environ and os.environ[ENV_PRECISION] == "fp32"
    assert check_precision(None) == "fp32"


def test_environment_pins_auto(monkeypatch):
    monkeypatch.setenv(ENV_DEVICE, "cpu")
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setenv(ENV_PRECISION, "bf16")
    assert check_precision(None) == "bf16"


def test_autocast_is_noop_for_fp32_and_casts_matmuls_for_bf16():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    cpu = torch.device("cpu")
    with autocast(cpu, "fp32"):
        assert (a @ b).dtype == torch.float32
    with autocast(cpu, "bf16"):
        assert (a @ b).dtype == torch.bfloat16


def test_provenance_fields():
    prov = device_provenance(torch.device("cpu"), "bf16")
    assert prov["device"] == "cpu" and prov["precision"] == "bf16" and prov["torch"] == torch.__version__
    assert prov["cuda"] is None and prov["device_name"]


def test_oom_hint_names_a_smaller_batch():
    with pytest.raises(ModelError, match=r"batch size 64; try --batch-size 32"):
        with oom_hint(64, "extracting m"):
            raise torch.OutOfMemoryError("CUDA out of memory")
    with oom_hint(8):  # other errors pass through unchanged
        pass


@pytest.mark.skipif(not NO_GPU, reason="checks the refusal on a machine without CUDA")
def test_cli_cuda_without_gpu_fails_fast_with_one_line(tmp_path: Path):
    exe = Path(sys.executable).with_name("transferlens")
    for extra in (["extract", "-m", "timm:resnet18?pretrained=false", "-d", "builtin:digits?n_per_class=5"],
                  ["finetune", "-m", "zoo:vgg-g50", "-d", "builtin:digits?n_per_class=5"]):
        proc = subprocess.run([str(exe), *extra, "--device", "cuda"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "COLUMNS": "200"})
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1 and lines[0].startswith("error: --device cuda") and "no NVIDIA GPU" in lines[0]
        assert "use --device cpu or auto" in lines[0] and proc.stdout == ""


def test_cli_bad_precision_is_a_usage_error():
    exe = Path(sys.executable).with_name("transferlens")
    proc = subprocess.run([str(exe), "extract", "-m", "timm:resnet18?pretrained=false", "-d", "builtin:digits?n_per_class=5",
                           "--device", "cpu", "--precision", "fp8"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--precision must be one of fp32, bf16, fp16" in proc.stderr


def test_ray_tasks_reserve_a_gpu_only_for_cuda_runs():
    from transferlens.executors import task_gpus

    assert task_gpus(2, "cuda") == 1 and task_gpus(2, "cuda:1") == 1 and task_gpus(1, "auto") == 1
    assert task_gpus(2, "cpu") == 0 and task_gpus(0, "cuda") == 0 and task_gpus(0, "auto") == 0
