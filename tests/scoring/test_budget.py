"""Successive halving within a budget (transferlens.budget): fake clocks count steps; no timing asserts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transferlens import budget
from transferlens.errors import UsageError


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FakeTrainer:
    """Validation accuracy q * (1 - exp(-steps / 8)); every step costs ``cost`` fake seconds."""

    def __init__(self, q: float, clock: FakeClock, cost: float, log: list) -> None:
        self.q, self.clock, self.cost, self.steps, self.log = q, clock, cost, 0, log

    def train(self, steps: int, subset: int) -> None:
        self.steps += steps
        self.clock.t += steps * self.cost
        self.log.append((steps, subset))

    def evaluate(self) -> float:
        return self.q * (1.0 - math.exp(-self.steps / 8.0))


def _run(qualities: dict[str, float], minutes: float, cost: float = 1.0, **kw):
    clock, log = FakeClock(), []
    res = budget.successive_halving(list(qualities), lambda c: FakeTrainer(qualities[c], clock, cost, log), n_train=400,
                                    minutes=minutes, clock=clock, **kw)
    return res, log


def test_halving_keeps_the_planted_best_and_halves():
    q = {"a": 0.6, "b": 0.7, "c": 0.5, "d": 0.9, "e": 0.4, "f": 0.65, "g": 0.55, "h": 0.3}  # best listed 4th
    res, log = _run(q, minutes=10)
    assert res["recommended"] == "d" and res["ranking"][0] == "d"
    assert [len(r["val_accuracy"]) for r in res["rounds"]] == [8, 4, 2] and res["n_rounds_planned"] == 3
    assert res["rounds"][-1]["survivors"] == ["d"] and not res["stopped_by_budget"]
    assert [r["subset"] for r in res["rounds"]] == [100, 200, 400]  # nested subsets, the last round all of them
    assert res["steps"]["d"] > res["steps"]["a"] > res["steps"]["h"] > 0  # survivors trained longer


@pytest.mark.parametrize("minutes,cost", [(1.0, 1.0), (0.5, 0.7), (2.0, 3.0)])
def test_budget_is_respected_in_steps(minutes, cost):
    q = {f"m{i}": 0.5 + 0.05 * i for i in range(5)}
    res, log = _run(q, minutes=minutes, cost=cost)
    total = sum(res["steps"].values())
    assert total == sum(s for s, _ in log)
    allowed = math.ceil(60 * minutes / cost)  # a step starts only before the deadline
    assert total <= allowed and total >= 0.8 * allowed  # and the budget is used, not wasted
    assert res["seconds"] <= 60 * minutes + cost


def test_budget_cut_in_round_zero_recommends_from_what_was_measured():
    q = {"a": 0.5, "b": 0.9, "c": 0.7, "d": 0.2}
    res, _ = _run(q, minutes=5 / 60)  # 5 fake seconds: 2 + 2 steps, then one more
    assert res["stopped_by_budget"] and not res["rounds"][0]["complete"]
    assert sum(res["steps"].values()) == 5 and res["recommended"] == "b"


def test_bad_arguments():
    with pytest.raises(UsageError, match="positive"):
        _run({"a": 0.5, "b": 0.6}, minutes=0)
    with pytest.raises(UsageError, match="at least one"):
        budget.successive_halving([], lambda c: None, 10, 1.0)


def test_ranking_metrics_against_truth():
    res = {"ranking": ["a", "b", "c", "d"], "recommended": "a"}
    got = budget.ranking_metrics(res, {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6})
    assert got["weighted_tau"] == pytest.approx(1.0) and got["regret"] == 0.0
    got = budget.ranking_metrics({**res, "recommended": "b"}, {"a": 0.8, "b": 0.6, "c": 0.7, "d": 0.9})
    assert got["regret"] == pytest.approx(0.3)


def test_real_fine_tuning_keeps_the_pretrained_model_over_its_random_init_twin():
    """The shipped zoo:vgg-g50 against the same architecture with random weights, on 4 digit classes."""
    import torch

    data = "builtin:digits?classes=0-3&n_per_class=15"
    make = budget.torch_trainers(data, seed=0, lr=1e-3)
    clock = FakeClock()

    def factory(name: str):
        t = make("zoo:vgg-g50")
        if name == "random-init":
            torch.manual_seed(1)
            for m in t.module.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            t._opt = torch.optim.AdamW(t.module.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        inner = t.train

        def train(steps: int, subset: int) -> None:
            inner(steps, subset)
            clock.t += steps  # one fake second per step

        t.train = train  # type: ignore[method-assign]
        return t

    res = budget.successive_halving(["random-init", "pretrained"], factory, make.n_train, minutes=0.3, clock=clock)
    assert res["recommended"] == "pretrained" and sum(res["steps"].values()) <= 18
    assert res["val_accuracy"]["pretrained"] > res["val_accuracy"]["random-init"]
    with pytest.raises(UsageError, match="image"):
        budget.torch_trainers("builtin:fortunes?n_per_class=5")


def test_rank_budget_cli(tmp_path, monkeypatch):
    """`rank --budget` fine-tunes the top of the ranking and records the halving in rank.json."""
    import json

    from typer.testing import CliRunner

    from transferlens.cli.main import app

    runner = CliRunner()
    args = ["rank", "--data", "builtin:digits?classes=0-3&n_per_class=10", "--model", "zoo:mlp-g50-s16", "--model", "zoo:vgg-g50-s16",
            "--model", "zoo:vgg-g50", "--scores", "logme,knn_accuracy", "--out", str(tmp_path)]
    bad = runner.invoke(app, [*args, "--budget", "0"])
    assert bad.exit_code != 0 and "--budget needs a positive number of minutes" in bad.output
    # clocks that tick per reading: deterministic, no wall-clock wait. 10 s per reading: the budget is gone at once
    ticks = iter(range(10**6))
    monkeypatch.setattr(budget, "_now", lambda: 10.0 * next(ticks))
    res = runner.invoke(app, [*args, "--budget", "0.05", "--budget-top", "2"])
    assert res.exit_code == 0, res.output
    rec = json.loads((tmp_path / "rank.json").read_text())
    assert rec["budget"]["shortlist"] == rec["ranking"][:2] and rec["budget"]["recommended"] is None
    assert "ran out before any candidate" in res.output and rec["recommended"] == rec["ranking"][0]
    # 0.05 s per reading: 3 s = 60 readings, about one per step
    monkeypatch.setattr(budget, "_now", lambda: 0.05 * next(ticks))
    res = runner.invoke(app, [*args, "--budget", "0.05", "--budget-top", "2"])
    assert res.exit_code == 0, res.output
    halving = json.loads((tmp_path / "rank.json").read_text())["budget"]
    assert halving["recommended"] in rec["ranking"][:2] and halving["rounds"][0]["complete"]
    assert 0 < sum(halving["steps"].values()) <= 60 and set(halving["val_accuracy"]) == set(rec["ranking"][:2])
    assert "measured recommendation" in res.output and "halving round 0" in res.output
