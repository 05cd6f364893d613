"""Successive halving on suite targets at several budgets (issue 18 item 3): the measured part of the budget curve.

    OMP_NUM_THREADS=1 python benchmarks/budget_curve.py OUT.json [--targets T ...] [--budgets 0.25 0.5 1]

Budgets are **CPU minutes of this process** (``time.process_time``: loading the candidates and the data
counts), so the curve does not depend on how loaded the shared machine was; on an idle core wall-clock
minutes are about the same. Each (target, budget) result is appended to OUT.json as it finishes, and a
re-run skips what is there. Compare with the ground truth afterwards (``transferlens.budget.ranking_metrics``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from transferlens.budget import successive_halving, torch_trainers
from transferlens.zoo.suite import SUITE

MODELS = ["zoo:" + m for m in sorted("vgg-g50 vgg-g50-s16 vgg-fashion6 vgg-g50-deep resnet-g50 resnet-fashion6 vit-g50 mlp-g50-s16".split())]
TARGETS = ["digits-20shot", "digits-uci-10shot", "glyph-digits", "fashion-novel", "greek-25", "cyrillic-10shot"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--targets", nargs="+", default=TARGETS)
    ap.add_argument("--budgets", nargs="+", type=float, default=[0.25, 0.5, 1.0])
    args = ap.parse_args()
    done = json.loads(args.out.read_text()) if args.out.exists() else {"models": MODELS, "clock": "time.process_time", "runs": []}
    have = {(r["target"], r["minutes"]) for r in done["runs"]}
    for minutes in args.budgets:
        for target in args.targets:
            if (target, minutes) in have:
                continue
            t0, c0 = time.time(), time.process_time()
            make = torch_trainers(SUITE[target].train, seed=0)
            res = successive_halving(MODELS, make, make.n_train, minutes, clock=time.process_time)
            res.update(target=target, minutes=minutes, wall_seconds=round(time.time() - t0, 1),
                       cpu_seconds_with_data=round(time.process_time() - c0, 1))
            done["runs"].append(res)
            args.out.write_text(json.dumps(done, indent=1))
            print(target, minutes, res["recommended"], res["wall_seconds"], flush=True)


if __name__ == "__main__":
    main()
