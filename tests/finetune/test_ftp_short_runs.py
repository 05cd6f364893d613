"""FTP in short runs (issue 17, item 5): ``gamma_lr="auto"`` opens the constraint over the run's steps.

γ moves by about ``gamma_lr`` per step, so the reference 1e-2 keeps it below ~S/100 after S steps; in a
32-step run that pinned the backbone. The auto rule is ``min(0.1, max(1e-2, 3 / S))`` and a run whose
``S · gamma_lr < 3`` warns.
"""

from __future__ import annotations

import math
import warnings

import pytest

from transferlens.errors import UsageError
from transferlens.finetune.loop import run_finetune
from transferlens.finetune.methods import ftp_gamma_lr, method_options, parse_option

MODEL = "zoo:vgg-g50-s16"
TRAIN = "builtin:digits-uci?split=train&n_per_class=8"  # 64 train + 16 val; batch 16 -> 4 steps per epoch
RUN = dict(epochs=8, batch_size=16, threads=1, lr=3e-3)  # 32 steps


@pytest.mark.parametrize(("steps", "expected"), [(8, 0.1), (30, 0.1), (32, 3 / 32), (150, 0.02), (300, 0.01), (5000, 0.01), (None, 0.01)])
def test_auto_gamma_lr_is_the_closed_form(steps: int | None, expected: float) -> None:
    value, _ = ftp_gamma_lr("auto", steps)
    assert value == pytest.approx(expected, rel=1e-12)


def test_warning_exactly_when_gamma_cannot_open_to_three() -> None:
    assert ftp_gamma_lr("auto", 30)[1] is None and ftp_gamma_lr(0.01, 300)[1] is None and ftp_gamma_lr(0.1, 30)[1] is None
    short = ftp_gamma_lr("auto", 8)[1]
    assert short is not None and "8 steps" in short and "at least 30 steps" in short
    explicit = ftp_gamma_lr(0.01, 32)[1]
    assert explicit is not None and "gamma_lr=0.01 over 32 steps" in explicit and "raise gamma_lr" in explicit


def test_gamma_lr_option_parses_auto_and_numbers_and_rejects_junk() -> None:
    assert method_options("ftp", {})["gamma_lr"] == "auto"
    assert method_options("ftp", dict([parse_option("ftp", "gamma_lr=0.05")]))["gamma_lr"] == 0.05
    assert method_options("ftp", dict([parse_option("ftp", "gamma_lr=auto")]))["gamma_lr"] == "auto"
    for bad in ("fast", "0", "-1", "nan"):
        with pytest.raises(UsageError, match="gamma_lr must be 'auto' or a number > 0"):
            method_options("ftp", {"gamma_lr": bad})


def _backbone_distance(rec: dict) -> float:
    return math.sqrt(sum(t["distance_l2"][-1] ** 2 for t in rec["trace"]["tensors"] if not t["head"]))


def test_auto_default_no_longer_pins_the_backbone_in_a_32_step_run() -> None:
    """The case of the issue, tiny: 32 steps. Plain fine-tuning moves the backbone by ‖Δθ‖₂ ≈ 2.6; the old
    default (gamma_lr 1e-2) moved it 0.29 (γ ≤ ~0.3 row-L1) and warns; the auto default (3/32) moves it 1.3."""
    plain = _backbone_distance(run_finetune(MODEL, TRAIN, "plain", **RUN))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = run_finetune(MODEL, TRAIN, "ftp", gamma_lr=0.01, **RUN)
    assert any("gamma_lr=0.01 over 32 steps" in str(w.message) for w in caught)
    assert any("gamma_lr=0.01 over 32 steps" in n for n in old["notes"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        auto = run_finetune(MODEL, TRAIN, "ftp", **RUN)
    assert not any("FTP with gamma_lr" in str(w.message) for w in caught)
    assert auto["hyperparameters"]["gamma_lr"] == pytest.approx(3 / 32) and old["hyperparameters"]["gamma_lr"] == 0.01
    d_old, d_auto = _backbone_distance(old), _backbone_distance(auto)
    assert d_old < 0.2 * plain  # pinned: under a fifth of plain fine-tuning's move
    assert d_auto > 0.4 * plain and d_auto > 3 * d_old
    assert d_auto < plain  # still constrained: FTP's projection remains active
    # every constrained radius is within what 32 Adam steps of size gamma_lr can open (+ one step of slack)
    gammas = [g for t in auto["trace"]["tensors"] if not t["head"] for g in t["gamma"]]
    assert max(gammas) <= 33 * 3 / 32 * 1.05
