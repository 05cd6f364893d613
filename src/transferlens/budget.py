"""Measure, don't only predict: brief fine-tuning of a shortlist by successive halving within a time budget.

Successive halving (Jamieson & Talwalkar, AISTATS 2016; the inner loop of Hyperband, Li et al., JMLR 2018):
with ``n`` candidates there are ``R = ceil(log_eta n)`` rounds. In round ``r`` every survivor is trained
(continuing from where it stopped) for the same number of steps on a nested subset of the train part, its
validation accuracy is measured, and the best ``ceil(n_r / eta)`` survive; after the last round one is
left, the recommendation.

The budget is wall-clock seconds measured by ``clock`` from the start (loading the candidates counts):

- round ``r`` gets ``remaining / (R - r)`` seconds, shared equally in *steps* by its survivors:
  ``steps_r = floor(round seconds / sum of the survivors' measured seconds per step)``, clipped to
  ``[min_steps, max_steps]``; before any step has been timed (round 0) every candidate first trains
  ``min_steps`` steps, which time it;
- before every step the clock is read, and nothing starts once the budget is spent. A round cut short
  is not used to eliminate: the recommendation comes from the last complete round (or, when even round 0
  was cut, from the candidates measured so far).

The subset of round ``r`` has ``N * eta^(r - R + 1)`` of the ``N`` train-part samples (at least two
batches; the last round uses all). Fine-tuning: a new linear head, every weight trained by AdamW at a
constant rate (no schedule: the number of steps is not known in advance), BatchNorm in train mode.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from .errors import UsageError


_now = time.monotonic  # the default clock (module attribute, so that tests can replace it)


class Trainer(Protocol):
    """One candidate being fine-tuned: ``train(steps, subset)`` continues training on the first ``subset``
    train-part samples; ``evaluate()`` is the validation accuracy now."""

    def train(self, steps: int, subset: int) -> None: ...

    def evaluate(self) -> float: ...


@dataclass
class TorchTrainer:
    """Fine-tunes an image network with a new linear head on tensors (AdamW, constant ``lr``)."""

    module: Any
    x_train: Any
    y_train: Any
    x_val: Any
    y_val: Any
    n_classes: int
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch: int = 32
    seed: int = 0
    steps_done: int = 0
    _opt: Any = field(default=None, repr=False)
    _order: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import torch

        from .finetune.prepare import replace_head

        torch.manual_seed(self.seed)
        replace_head(self.module, self.n_classes)
        self._opt = torch.optim.AdamW(self.module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        # nested subsets: the first `subset` samples of one seeded permutation
        self._order = torch.randperm(self.x_train.shape[0], generator=torch.Generator().manual_seed(self.seed))
        self._gen = torch.Generator().manual_seed(self.seed + 1)

    def train(self, steps: int, subset: int) -> None:
        import torch
        import torch.nn.functional as F

        pool = self._order[: max(2, min(subset, self.x_train.shape[0]))]
        self.module.train()
        for _ in range(steps):
            idx = pool[torch.randint(0, pool.numel(), (min(self.batch, pool.numel()),), generator=self._gen)]
            loss = F.cross_entropy(self.module(self.x_train[idx]), self.y_train[idx])
            self._opt.zero_grad(set_to_none=True)
            loss.backward()
            self._opt.step()
            self.steps_done += 1

    def evaluate(self) -> float:
        from .finetune.prepare import accuracy

        return accuracy(self.module, self.x_val, self.y_val)


def torch_trainers(data: Any, val_fraction: float = 0.2, seed: int = 0, device: str | None = "auto",
                   **kwargs: Any) -> Callable[[str], TorchTrainer]:
    """A factory ``uri -> TorchTrainer`` for image models on ``data`` (URI or Dataset), split once into a
    stratified train part and ``val_fraction`` validation part (drawn by ``seed``). Each model and its tensors
    go to ``device`` (``auto``: the command's ``--device``, else the GPU when present); training is float32."""
    from .data import load_data
    from .data.base import stratified_split
    from .device import resolve_device
    from .finetune.prepare import image_tensors, load_backbone

    dev = resolve_device(device)

    ds = load_data(data) if isinstance(data, str) else data
    if ds.kind != "image":
        raise UsageError(f"--budget fine-tunes image models; {ds.uri} is {ds.kind} data.")
    tr, va = stratified_split(ds.labels, val_fraction, seed)
    if len(tr) < 2 or len(va) < 1:
        raise UsageError(f"--budget needs a validation split: {ds.uri} has {len(ds)} samples; use more labelled data.")

    def make(uri: str) -> TorchTrainer:
        import torch

        bb = load_backbone(uri)
        x, y = image_tensors(bb.loaded, ds)
        t_tr, t_va = torch.from_numpy(tr), torch.from_numpy(va)
        trainer = TorchTrainer(bb.module, x[t_tr].to(dev), y[t_tr].to(dev), x[t_va].to(dev), y[t_va].to(dev), ds.n_classes,
                               seed=seed, **kwargs)
        trainer.module.to(dev)  # after the new head exists, so the head moves too
        return trainer

    make.n_train = len(tr)  # type: ignore[attr-defined]
    return make


def successive_halving(candidates: Sequence[str], make_trainer: Callable[[str], Trainer], n_train: int, minutes: float, *,
                       eta: int = 2, min_steps: int = 2, max_steps: int = 10_000, batch: int = 32,
                       clock: Callable[[], float] | None = None) -> dict[str, Any]:
    """Successive halving of ``candidates`` (best-predicted first: ties keep this order) within ``minutes``.

    Returns ``recommended``, ``ranking`` (by the round reached, then the last validation accuracy),
    ``rounds`` (per round: steps, subset size, accuracies, survivors, seconds, complete), ``steps`` per
    candidate, ``seconds`` used and ``budget_seconds``."""
    clock = clock or _now  # seconds; default time.monotonic
    cands = list(dict.fromkeys(candidates))
    if not cands:
        raise UsageError("successive halving needs at least one candidate.")
    if minutes <= 0:
        raise UsageError(f"--budget must be a positive number of minutes, got {minutes}.")
    if eta < 2:
        raise UsageError(f"eta must be >= 2, got {eta}.")
    budget = 60.0 * minutes
    t0 = clock()
    deadline = t0 + budget
    n_rounds = max(1, math.ceil(math.log(len(cands), eta) - 1e-9)) if len(cands) > 1 else 1
    trainers: dict[str, Trainer] = {}
    sec_per_step: dict[str, float] = {}
    steps: dict[str, int] = {c: 0 for c in cands}
    last_acc: dict[str, float] = {}
    reached: dict[str, int] = {c: -1 for c in cands}
    rounds: list[dict[str, Any]] = []
    survivors = cands
    stopped = False
    for r in range(n_rounds):
        start = clock()
        if start >= deadline:
            break
        subset = n_train if r == n_rounds - 1 else max(min(n_train, 2 * batch), int(n_train * eta ** (r - n_rounds + 1)))
        if all(c in sec_per_step for c in survivors):
            per_round = (deadline - start) / (n_rounds - r)
            n_steps = int(per_round / max(1e-9, sum(sec_per_step[c] for c in survivors)))
        else:
            n_steps = None  # round 0: min_steps first (which times every candidate), then the rest planned
        accs: dict[str, float] = {}
        complete = True
        for c in survivors:
            if c not in trainers:
                if clock() >= deadline:
                    complete = False
                    break
                trainers[c] = make_trainer(c)
            want = min_steps if n_steps is None else min(max(n_steps, min_steps), max_steps)
            done = _train_until(trainers[c], want, subset, deadline, clock, sec_per_step, c)
            steps[c] += done
            if done < want:
                complete = False
                if done == 0:
                    break
            accs[c] = float(trainers[c].evaluate())
            last_acc[c] = accs[c]
            reached[c] = r
            if not complete:
                break
        if complete and n_steps is None and r == 0:  # round 0: the planned remainder of its steps
            per_round = (deadline - clock()) / n_rounds
            extra = min(int(per_round / max(1e-9, sum(sec_per_step[c] for c in survivors))), max_steps - min_steps)
            for c in survivors:
                if extra <= 0:
                    break
                done = _train_until(trainers[c], extra, subset, deadline, clock, sec_per_step, c)
                steps[c] += done
                accs[c] = last_acc[c] = float(trainers[c].evaluate())
                if done < extra:
                    complete = False
                    break
            n_steps = min_steps + max(0, extra)
        order = sorted(accs, key=lambda c: (-accs[c], cands.index(c)))
        keep = order[: math.ceil(len(survivors) / eta)] if complete else list(survivors)
        rounds.append({"round": r, "steps": n_steps if n_steps is not None else min_steps, "subset": subset, "val_accuracy": accs,
                       "survivors": keep, "seconds": round(clock() - start, 3), "complete": complete})
        if not complete:
            stopped = True
            break
        survivors = keep
    ranking = sorted(cands, key=lambda c: (-reached[c], -last_acc.get(c, -1.0), cands.index(c)))
    complete_rounds = [x for x in rounds if x["complete"]]
    if complete_rounds:
        last = complete_rounds[-1]
        recommended = max(last["survivors"], key=lambda c: (last["val_accuracy"].get(c, -1.0), -cands.index(c)))
        best_acc = last["val_accuracy"].get(recommended)
    else:
        measured = [c for c in cands if c in last_acc]
        recommended = max(measured, key=lambda c: (last_acc[c], -cands.index(c))) if measured else None
        best_acc = last_acc.get(recommended) if recommended else None
    return {"method": "successive halving", "eta": eta, "budget_seconds": budget, "seconds": round(clock() - t0, 3),
            "stopped_by_budget": stopped or len(complete_rounds) < n_rounds, "n_rounds_planned": n_rounds, "rounds": rounds,
            "steps": steps, "recommended": recommended, "recommended_val_accuracy": best_acc,
            "val_accuracy": last_acc, "ranking": ranking}


def _train_until(trainer: Trainer, steps: int, subset: int, deadline: float, clock: Callable[[], float],
                 sec_per_step: dict[str, float], name: str) -> int:
    """Train up to ``steps`` steps one at a time, never starting one after ``deadline``; updates the
    candidate's measured seconds per step (mean over this call)."""
    done = 0
    t = clock()
    while done < steps and clock() < deadline:
        trainer.train(1, subset)
        done += 1
    if done:
        sec_per_step[name] = (clock() - t) / done
    return done


def rank_budget(record: dict, data: str, minutes: float, top: int = 4, **kwargs: Any) -> dict[str, Any]:
    """Successive halving on the ``top`` candidates of a ``rank_models`` record (image models only)."""
    if top < 2:
        raise UsageError(f"--budget-top must be >= 2 (a shortlist to choose from), got {top}.")
    shortlist = record["ranking"][:top]
    if not shortlist:
        raise UsageError("no scored candidate to fine-tune.")
    make = torch_trainers(data)
    result = successive_halving(shortlist, make, make.n_train, minutes, **kwargs)  # type: ignore[attr-defined]
    result["shortlist"] = shortlist
    return result


def ranking_metrics(result: dict[str, Any], truth: dict[str, float]) -> dict[str, float]:
    """Weighted τ and top-1 regret of a halving's ranking against ``truth`` (e.g. full fine-tuning accuracy)."""
    from .zoo.bench import compare

    names = [c for c in result["ranking"] if c in truth]
    n = len(names)
    score = np.array([n - i for i in range(n)], float)  # the ranking as a score: first = highest
    y = np.array([truth[c] for c in names], float)
    out = compare(score, y)
    if result.get("recommended") in truth:
        out["regret"] = float(y.max() - truth[result["recommended"]])
    return out
