"""Successive halving on suite targets at several budgets (issue 18 item 3): the measured part of the budget curve.

    OMP_NUM_THREADS=1 python benchmarks/budget_curve.py OUT.json [--targets T ...] [--budgets 0.25 0.5 1]
    python benchmarks/budget_curve.py OUT.json --report BENCH_SCORES.json --rules logme mean:ncti,pactran_gaussian,knn_accuracy

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


def report(runs_path: Path, bench_path: Path, rules: list[str]) -> str:
    """Markdown: per budget, mean weighted τ and top-1 regret (vs the bench's primary ground truth, i.e. fine-tuning
    accuracy) of the halving's ranking over the targets it ran on, with bootstrap 95 % CIs; beside them the
    zero-budget point of each score rule in ``rules`` (a single score, or ``mean:a,b,c``) on the same targets."""
    import numpy as np

    from transferlens.budget import ranking_metrics
    from transferlens.zoo.bench import compare
    from transferlens.zoo.selection import aggregate, bootstrap_ci

    runs = json.loads(runs_path.read_text())["runs"]
    bench = json.loads(bench_path.read_text())
    truth = {t: dict(zip(v["candidates"], v["truth"]["primary"])) for t, v in bench["targets"].items()}
    runs = [r for r in runs if r["target"] in truth]
    targets = sorted({r["target"] for r in runs})

    def cell(vals: list[float], scale: float = 1.0) -> str:
        m, lo, hi = bootstrap_ci(vals, n_boot=2000, seed=0)
        return f"{m * scale:.2f} [{lo * scale:.2f}, {hi * scale:.2f}]"

    lines = [f"Targets ({len(targets)}): {', '.join(targets)}.", "",
             "| budget (CPU min) | wτ vs fine-tuning | regret (pts) | CPU s used (mean) |", "|---|---:|---:|---:|"]
    for rule in rules:
        how, _, names = rule.partition(":") if ":" in rule else ("mean", "", rule)
        w, g = [], []
        for t in targets:
            tt = bench["targets"][t]
            table = {s: np.asarray(v, float) for s, v in tt["scores"].items()}
            c = compare(aggregate(table, (how, tuple(names.split(","))), fallback=list(table)), np.asarray(tt["truth"]["primary"], float))
            w.append(c["weighted_tau"]), g.append(c["regret"])
        lines.append(f"| 0 (scores: {rule}) | {cell(w)} | {cell(g, 100)} | - |")
    for minutes in sorted({r["minutes"] for r in runs}):
        rs = [r for r in runs if r["minutes"] == minutes]
        ms = [ranking_metrics(r, truth[r["target"]]) for r in rs]
        lines.append(f"| {minutes:g} | {cell([m['weighted_tau'] for m in ms])} | {cell([m['regret'] for m in ms], 100)} | "
                     f"{np.mean([r['seconds'] for r in rs]):.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--report", type=Path, default=None, help="a bench_scores.json: print the curve against its ground truth")
    ap.add_argument("--rules", nargs="+", default=["logme"], help="zero-budget score rules for --report")
    ap.add_argument("--targets", nargs="+", default=TARGETS)
    ap.add_argument("--budgets", nargs="+", type=float, default=[0.25, 0.5, 1.0])
    args = ap.parse_args()
    if args.report:
        print(report(args.out, args.report, args.rules))
        return
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
