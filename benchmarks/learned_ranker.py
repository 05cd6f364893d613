"""Does a learned ranker beat LogME alone held out on the target suite? (issue 18, item 2)

The pairwise logistic ranker of :mod:`transferlens.zoo.learned_ranker` (RankNet / Joachims 2002 pairwise
reduction, scikit-learn ``LogisticRegression``) over the within-target standardised values of the 14
combinable scores, with and without model-card features (log10 parameters, log2 embedding dimension, depth
fraction of the layer), on the committed suite result ``benchmarks/results/zoo-suite/bench_scores.json``
(42 targets, 8 groups; primary truth: fine-tuning accuracy, linear probe for text). Grouped
leave-one-group-out as in :mod:`transferlens.zoo.selection`, nested: the transform (z-score / rank z-score)
and ``C`` (0.01, 0.1, 1, 10) are chosen per outer fold by an inner leave-one-group-out on the training groups.
95 % percentile bootstrap intervals over targets (:func:`transferlens.zoo.selection.bootstrap_ci`, 2000
resamples, seed 0); paired per-target differences against LogME alone.

Decision rule, fixed before any number was computed: the **primary** ranker is "scores + card features,
nested". It is offered as an option only if its held-out mean weighted τ is above LogME alone's AND the
95 % bootstrap interval of the paired per-target difference (ranker - LogME) excludes 0 (its lower end > 0).
Otherwise it stays a benchmark-only module and the negative result is documented. The scores-only ranker is
reported for information and does not enter the decision. ``rank``'s default is not changed either way.

Post hoc (added after the first run, which chose the smallest C of the grid in 7 of 8 outer folds; not part of
the decision): the nested ranker with the grid extended down to C = 1e-4, and every fixed (transform, C) of
(z, rank) × (1e-6, 1e-4, 1e-2, 1) evaluated by plain leave-one-group-out (no inner choice, so the best of these
rows is an optimistic, selected-on-the-test-folds number).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/learned_ranker.py   # -> benchmarks/results/zoo-suite/learned_ranker.{json,md}
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from transferlens.zoo import learned_ranker as lr
from transferlens.zoo.bench import NOT_COMBINABLE, compare
from transferlens.zoo.selection import METRICS, bootstrap_ci

HERE = Path(__file__).resolve().parent
DEFAULT_IN = HERE / "results" / "zoo-suite" / "bench_scores.json"


def _ci(v: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    return dict(zip(("mean", "low", "high"), bootstrap_ci(v, n_boot, seed)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", type=Path, default=DEFAULT_IN)
    ap.add_argument("--out", type=Path, default=DEFAULT_IN.parent)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    result = json.loads(args.bench.read_text())
    targets = list(result["targets"])
    scores = [s for s in result["scores"] if s not in NOT_COMBINABLE]
    truth = {t: np.asarray(result["targets"][t]["truth"]["primary"], float) for t in targets}
    logme = {m: np.array([compare(np.asarray(result["targets"][t]["scores"]["logme"], float), truth[t])[m] for t in targets])
             for m in METRICS}
    runs = {}
    for name, use_card in (("learned ranker: scores + card features (primary)", True), ("learned ranker: scores only", False)):
        s0 = time.perf_counter()
        runs[name] = lr.evaluate(result, scores, targets, use_card=use_card)
        runs[name]["seconds"] = round(time.perf_counter() - s0, 1)
    s0 = time.perf_counter()
    post = {"post hoc: nested, C grid 1e-4..10": lr.evaluate(result, scores, targets, use_card=True, Cs=(1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0))}
    for tr in lr.TRANSFORMS:
        for C in (1e-6, 1e-4, 1e-2, 1.0):
            post[f"post hoc: fixed {tr}, C={C:g}"] = lr.evaluate(result, scores, targets, use_card=True, transforms=(tr,), Cs=(C,))
    post_seconds = round(time.perf_counter() - s0, 1)
    rows = {name: {m: _ci(r["held_out"][m], args.n_boot, args.seed) for m in METRICS} for name, r in runs.items()}
    rows["LogME alone (fixed; the selection's pick in all 8 folds)"] = {m: _ci(logme[m], args.n_boot, args.seed) for m in METRICS}
    paired = {name: {m: _ci(r["held_out"][m] - logme[m], args.n_boot, args.seed) for m in METRICS} for name, r in runs.items()}
    post_rows = {name: {"weighted_tau": _ci(r["held_out"]["weighted_tau"], args.n_boot, args.seed),
                        "paired_weighted_tau_vs_logme": _ci(r["held_out"]["weighted_tau"] - logme["weighted_tau"], args.n_boot, args.seed),
                        "chosen": [(f["transform"], f["C"]) for f in r["folds"]]} for name, r in post.items()}
    primary = "learned ranker: scores + card features (primary)"
    p_mean = rows[primary]["weighted_tau"]["mean"]
    l_mean = rows["LogME alone (fixed; the selection's pick in all 8 folds)"]["weighted_tau"]["mean"]
    wins = bool(p_mean > l_mean and paired[primary]["weighted_tau"]["low"] > 0)
    out = {
        "format": "transferlens.learned-ranker/1", "bench": str(args.bench.relative_to(HERE.parent)) if args.bench.is_relative_to(HERE.parent) else args.bench.name,
        "n_targets": len(targets), "n_groups": len(set(runs[primary]["groups"])), "scores": scores, "card_features": list(lr.CARD_FEATURES),
        "grid": {"transforms": list(lr.TRANSFORMS), "C": list(lr.C_GRID)}, "bootstrap": {"n": args.n_boot, "seed": args.seed, "level": 0.95, "over": "targets"},
        "decision_rule": "ship as an option only if the primary ranker's held-out mean wτ > LogME alone's and the paired 95 % CI (ranker - LogME) has low > 0",
        "decision": "wins held out: offer as an option" if wins else "does not win held out: benchmark only, rank's default unchanged",
        "rows": rows, "paired_vs_logme": paired, "post_hoc": post_rows,
        "folds": {name: r["folds"] for name, r in runs.items()}, "final": {name: r["final"] for name, r in runs.items()},
        "per_target_heldout_weighted_tau": {**{name: dict(zip(targets, map(float, r["held_out"]["weighted_tau"]))) for name, r in runs.items()},
                                            "logme": dict(zip(targets, map(float, logme["weighted_tau"])))},
        "seconds": {**{name: r["seconds"] for name, r in runs.items()}, "post hoc rows": post_seconds, "total": round(time.perf_counter() - t0, 1)},
        "machine": f"{platform.machine()} {platform.system()}, python {platform.python_version()}",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learned_ranker.json").write_text(json.dumps(out, indent=1, default=float) + "\n")
    (args.out / "learned_ranker.md").write_text(markdown(out))
    print(markdown(out))


def markdown(out: dict) -> str:
    def cell(d: dict, scale: float = 1.0) -> str:
        return f"{d['mean'] * scale:.2f} [{d['low'] * scale:.2f}, {d['high'] * scale:.2f}]" if np.isfinite(d["mean"]) else "n/a"

    lines = [f"{out['n_targets']} targets in {out['n_groups']} groups; grouped leave-one-group-out, transform and C chosen by an inner "
             f"leave-one-group-out per outer fold (grid: {', '.join(out['grid']['transforms'])} × C {', '.join(f'{c:g}' for c in out['grid']['C'])}); "
             f"95 % percentile bootstrap over targets ({out['bootstrap']['n']} resamples, seed {out['bootstrap']['seed']}).", "",
             "| ranker | held-out wτ | held-out Kendall τ | held-out top-1 regret (pts) | paired wτ − LogME |", "|---|---:|---:|---:|---:|"]
    for name, r in out["rows"].items():
        p = out["paired_vs_logme"].get(name)
        lines.append(f"| {name} | {cell(r['weighted_tau'])} | {cell(r['kendall_tau'])} | {cell(r['regret'], 100)} | {cell(p['weighted_tau']) if p else '—'} |")
    lines += ["", "Hyper-parameters chosen per outer fold (held-out group: transform, C):", ""]
    for name, folds in out["folds"].items():
        lines.append(f"- {name}: " + "; ".join(f"{f['held_out']}: {f['transform']}, {f['C']:g}" for f in folds))
    lines += ["", "Weights fitted on all 42 targets with the hyper-parameters chosen by leave-one-group-out on all groups (for the record):", ""]
    for name, f in out["final"].items():
        top = sorted(f["weights"].items(), key=lambda kv: -abs(kv[1]))
        lines.append(f"- {name} ({f['transform']}, C {f['C']:g}): " + ", ".join(f"{k} {v:+.2f}" for k, v in top))
    lines += ["", "Post hoc (after the first run chose the smallest C in 7 of 8 folds; not part of the decision; the fixed rows are "
              "plain leave-one-group-out with card features, so the best of them is selected on the test folds):", "",
              "| variant | held-out wτ | paired wτ − LogME |", "|---|---:|---:|"]
    for name, r in out["post_hoc"].items():
        lines.append(f"| {name} | {cell(r['weighted_tau'])} | {cell(r['paired_weighted_tau_vs_logme'])} |")
    lines += ["", f"Decision rule (fixed before the run): {out['decision_rule']}. **Decision: {out['decision']}.**",
              f"", f"Time: {out['seconds']['total']} s wall in total ({', '.join(f'{k}: {v} s' for k, v in out['seconds'].items() if k != 'total')})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
