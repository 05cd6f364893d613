"""Extraction on a device: CPU + fp32 is bit-identical to the plain forward loop and keeps its cache keys;
other precisions get their own keys; DataLoader workers change nothing but where images are decoded."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from transferlens import __version__
from transferlens.data import load_data
from transferlens.features import FEATURE_CODE_VERSION, FeatureSet, auto_workers, extract
from transferlens.models import resolve_model

MODEL = "timm:resnet18?pretrained=false&size=32"
DATA = "builtin:digits?n_per_class=3"
LAYERS = ["global_pool", "layer2.1"]


def _reference_loop(model_uri: str, data_uri: str, layers: list[str], batch_size: int) -> dict[str, np.ndarray]:
    """What extract computed before devices existed: hooks + module((x - mean) / std) per batch, on the CPU."""
    m = resolve_model(model_uri).load()
    data = load_data(data_uri)
    out: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    with m.tapped(layers, "auto") as captured, torch.inference_mode():
        for start in range(0, len(data), batch_size):
            x = m.prepare(data, np.arange(start, min(start + batch_size, len(data))))
            captured.clear()
            m.module((x - m._mean) / m._std)
            for name in layers:
                out[name].append(captured[name].numpy())
    return {name: np.concatenate(v) for name, v in out.items()}


def test_cpu_fp32_is_the_reference_path_with_unchanged_cache_key(tmp_path: Path, one_torch_thread):
    default = extract(MODEL, DATA, LAYERS, batch_size=7, cache_dir=tmp_path / "a")
    cpu = extract(MODEL, DATA, LAYERS, batch_size=7, cache_dir=tmp_path / "b", device="cpu", precision="fp32")
    ref = _reference_loop(MODEL, DATA, LAYERS, 7)
    for name in LAYERS:
        assert cpu[name].dtype == np.float32
        assert np.array_equal(cpu[name], ref[name]) and np.array_equal(default[name], ref[name])
    assert cpu.provenance["device"] == "cpu" and cpu.provenance["precision"] == "fp32"
    # the key is the sha256 of exactly the payload used before devices existed (today's cache stays valid)
    ds = load_data(DATA)
    payload = {"model": resolve_model(MODEL).identity, "data": ds.uri, "data_fingerprint": ds.fingerprint, "n": len(ds),
               "layers": LAYERS, "pool": "auto", "spec": repr("native"), "code": f"{FEATURE_CODE_VERSION}|{__version__}"}
    assert cpu.provenance["cache_key"] == hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:40]
    assert default.provenance["cache_key"] == cpu.provenance["cache_key"]


def test_bf16_has_its_own_cache_entry_and_stays_close(tmp_path: Path, one_torch_thread):
    fp32 = extract(MODEL, DATA, ["global_pool"], cache_dir=tmp_path, device="cpu")
    bf16 = extract(MODEL, DATA, ["global_pool"], cache_dir=tmp_path, device="cpu", precision="bf16")
    assert bf16.provenance["cache"] == "miss" and bf16.provenance["precision"] == "bf16"
    assert bf16.provenance["cache_key"] != fp32.provenance["cache_key"]
    a, b = fp32["global_pool"], bf16["global_pool"]
    assert b.dtype == np.float32 and not np.array_equal(a, b)  # autocast really ran in bfloat16
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.99  # bf16 keeps 8 bits of mantissa: the same features up to rounding
    again = extract(MODEL, DATA, ["global_pool"], cache_dir=tmp_path, device="cpu", precision="bf16")
    assert again.provenance["cache"] == "hit" and np.array_equal(again["global_pool"], b)


def test_cli_device_cpu_gives_the_same_file_as_no_flag(tmp_path: Path):
    exe = Path(sys.executable).with_name("transferlens")
    digests = []
    for i, extra in enumerate(([], ["--device", "cpu", "--precision", "fp32"])):
        out = tmp_path / f"f{i}.safetensors"
        env = {**os.environ, "TRANSFERLENS_HOME": str(tmp_path / f"home{i}"), "OMP_NUM_THREADS": "1"}
        env.pop("TRANSFERLENS_DEVICE", None)
        proc = subprocess.run([str(exe), "extract", "-m", MODEL, "-d", DATA, "--layers", "global_pool", "--no-cache",
                               "-o", str(out), *extra], capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        from safetensors import safe_open

        with safe_open(str(out), framework="numpy") as fh:
            digests.append(fh.metadata()["digest"])
        assert FeatureSet.load(out).provenance["device"] == "cpu"
    assert digests[0] == digests[1]


def _image_folder(root: Path) -> Path:
    """3 classes x 12 images: gray and RGB, sizes 20..47 px, content seeded by the index."""
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(12):
            s = 20 + (7 * i + c) % 28
            arr = rng.integers(0, 256, size=(s, s + 3) if i % 2 else (s, s, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / f"c{c}" / f"{i:02d}.png")
    return root


@pytest.mark.parametrize("prefix,query", [("", ""), ("shift:blur:3:", "?n_per_class=9&seed=2")])
def test_dataloader_workers_give_identical_features(tmp_path: Path, prefix: str, query: str, one_torch_thread):
    uri = f"{prefix}imagefolder:{_image_folder(tmp_path / 'imgs')}{query}"
    inline = extract(MODEL, uri, ["global_pool"], batch_size=5, cache=False, num_workers=0, device="cpu")
    workers = extract(MODEL, uri, ["global_pool"], batch_size=5, cache_dir=tmp_path / "c", num_workers=2, device="cpu")
    assert workers.provenance["num_workers"] == 2 and inline.provenance["num_workers"] == 0
    assert np.array_equal(inline["global_pool"], workers["global_pool"])
    assert np.array_equal(inline.labels, workers.labels)
    # the worker count is not part of the cache key
    hit = extract(MODEL, uri, ["global_pool"], batch_size=5, cache_dir=tmp_path / "c", num_workers=0, device="cpu")
    assert hit.provenance["cache"] == "hit"


def test_auto_workers_only_for_files_and_enough_batches(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("TRANSFERLENS_WORKERS", raising=False)
    folder = load_data(f"imagefolder:{_image_folder(tmp_path / 'imgs')}")
    assert auto_workers(load_data(DATA), 2) == 0  # built-in: already in memory
    assert auto_workers(folder, 16) == 0  # 36 images, fewer than 4 batches of 16
    cpus = os.cpu_count() or 1
    assert auto_workers(folder, 4) == (0 if cpus < 4 else min(4, cpus - 2))  # a core left for the model's threads
    monkeypatch.setenv("TRANSFERLENS_WORKERS", "3")
    assert auto_workers(load_data(DATA), 2) == 3
