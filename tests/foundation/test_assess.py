"""The foundation's per-layer summary."""

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
