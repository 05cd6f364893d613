"""GBC and ETran variants against the zoo ground truth (issue 18, item 5).

The same protocol as ``transferlens bench scores`` (penultimate features of every zoo model on each image
target's train set, the scores oriented higher = better, weighted Kendall tau against the ground truth of
``benchmarks/results/zoo/ground_truth.json``), for the score variants the bench does not expose:
GBC ``variant='exact'|'reference'`` and ETran ``lda_metric='fisher'|'euclidean'``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/score_variants.py --out benchmarks/results/zoo/score_variants.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from transferlens.features import extract
from transferlens.metrics.scores import compute_score, zoo_normalise
from transferlens.zoo.bench import REPORT_TARGETS, SELECTION_TARGETS, compare, primary_truth
from transferlens.zoo.targets import TARGETS

VARIANTS = {"gbc[exact]": ("gbc", {"variant": "exact"}), "gbc[reference]": ("gbc", {"variant": "reference"}),
            "etran[fisher]": ("etran", {"lda_metric": "fisher"}), "etran[euclidean]": ("etran", {"lda_metric": "euclidean"})}
TRUTHS = ("primary", "probe", "ncc", "finetune_ood")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ground-truth", type=Path, default=Path("benchmarks/results/zoo/ground_truth.json"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/zoo/score_variants.json"))
    a = ap.parse_args()
    summary = json.loads(a.ground_truth.read_text())["summary"]
    t0 = time.perf_counter()
    per_target: dict[str, dict] = {}
    for target, tg in TARGETS.items():
        entries = [e for e in summary if e["target"] == target and e["model"].startswith("zoo:")]
        if tg.modality != "image" or not entries:
            continue
        results: dict[str, list] = {v: [] for v in VARIANTS}
        for e in entries:
            fs = extract(e["model"], tg.train, "penultimate", pool="auto")
            x = fs[fs.layers[0]]
            for v, (name, opts) in VARIANTS.items():
                results[v].append(compute_score(name, x, fs.labels, **opts))
        truths = {g: np.array([primary_truth(e) if g == "primary" else e.get(g, np.nan) for e in entries], float)
                  for g in TRUTHS}
        per_target[target] = {}
        for v, (name, _) in VARIANTS.items():
            vals = zoo_normalise(name, results[v])
            per_target[target][v] = {"values": vals.tolist(),
                                     **{g: compare(vals, truths[g])["weighted_tau"] for g in TRUTHS}}
        print(target, {v: round(per_target[target][v]["primary"], 3) for v in VARIANTS}, flush=True)

    def mean(v: str, g: str, ts: tuple[str, ...] | list[str]) -> float:
        xs = [per_target[t][v][g] for t in ts if t in per_target and np.isfinite(per_target[t][v][g])]
        return float(np.mean(xs)) if xs else float("nan")

    table = {v: {"all": {g: mean(v, g, list(per_target)) for g in TRUTHS},
                 "selection_half": mean(v, "primary", SELECTION_TARGETS),
                 "report_half": mean(v, "primary", REPORT_TARGETS)} for v in VARIANTS}
    out = {"targets": per_target, "mean_weighted_tau": table, "seconds": round(time.perf_counter() - t0, 1)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    for v, row in table.items():
        print(f"{v:18s} " + "  ".join(f"{g} {row['all'][g]:.3f}" for g in TRUTHS)
              + f"  selection {row['selection_half']:.3f}  report {row['report_half']:.3f}")


if __name__ == "__main__":
    main()
