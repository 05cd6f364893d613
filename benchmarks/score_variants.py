"""GBC and ETran variants against the zoo ground truth (issue 18, item 5).

The same protocol as ``transferlens bench scores`` (penultimate features of every zoo model on each image
target's train set, the scores oriented higher = better, weighted Kendall tau against the ground truth of
``benchmarks/results/zoo/ground_truth.json``), for the score variants the bench does not expose:
GBC ``variant='exact'|'reference'`` and ETran ``lda_metric='fisher'|'euclidean'``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/score_variants.py --out benchmarks/results/zoo/score_variants.json

``--suite``: the same on every image target of the target suite (:data:`transferlens.zoo.suite.SUITE`), with
the candidates and ground truth of ``benchmarks/results/zoo-suite/bench_scores.json`` (features requested as
``rank_models`` does, ``"penultimate,last"`` with ``pool="auto"``, so they come from the feature cache), and the
held-out decision per family (GBC: exact vs reference; ETran: fisher vs euclidean):

- grouped leave-one-group-out over the suite's groups (:func:`transferlens.zoo.selection.logo_folds`): on each
  outer fold the variant with the better mean weighted tau (primary truth: fine-tuning accuracy) on the other
  groups is picked (:func:`~transferlens.zoo.selection.pick`, ties: the current default) and scored on the
  held-out group; reported with each fixed variant and the paired per-target difference (other - default),
  each with a 95 % percentile bootstrap interval over targets (:func:`~transferlens.zoo.selection.bootstrap_ci`).
- Decision rule, fixed before the suite was scored: the non-default variant becomes the default iff the
  procedure picks it in a majority of the outer folds AND its paired held-out mean difference to the current
  default (primary truth) is > 0.01; otherwise (including a difference within 0.01) the current default stays.
  The bootstrap interval is reported, not required to exclude 0 (targets of one group are correlated, so it is
  optimistic anyway).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/score_variants.py --suite   # -> benchmarks/results/zoo-suite/score_variants.{json,md}
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


#: Per family: (current default, the other variant); the decision rule is in the module docstring.
FAMILIES = {"gbc": ("gbc[exact]", "gbc[reference]"), "etran": ("etran[fisher]", "etran[euclidean]")}
SUITE_TRUTHS = ("primary", "probe", "ncc", "finetune_ood")
MARGIN = 0.01


def heldout_decision(wtau: dict[str, dict[str, float]], targets: list[str], groups: list[str], family: tuple[str, str],
                     n_boot: int = 2000, seed: int = 0) -> dict:
    """Grouped leave-one-group-out choice between the two variants of ``family`` (default first) on ``wtau[variant][target]``."""
    from transferlens.zoo.selection import bootstrap_ci, logo_folds, pick

    a, b = family
    w = np.array([[wtau[v][t] for t in targets] for v in family], float)
    held = np.full(len(targets), np.nan)
    chosen = []
    for h, tr, te in logo_folds(groups):
        c = pick(w, [0, 1], tr)  # ties and all-NaN: the first, the current default
        held[te] = w[c, te]
        chosen.append({"held_out": h, "n_targets": int(len(te)), "variant": family[c]})

    def ci(x: np.ndarray) -> dict[str, float]:
        return dict(zip(("mean", "low", "high"), bootstrap_ci(x, n_boot, seed)))

    final = family[pick(w, [0, 1], np.arange(len(targets)))]
    n_b = sum(c["variant"] == b for c in chosen)
    diff = ci(w[1] - w[0])
    switch = n_b > len(chosen) / 2 and diff["mean"] > MARGIN
    return {"procedure": ci(held), "fixed": {a: ci(w[0]), b: ci(w[1])}, f"paired {b} - {a}": diff,
            f"paired procedure - {a}": ci(held - w[0]), "folds": chosen, "folds_picking_other": n_b,
            "pick_on_all_groups": final, "per_target_procedure": dict(zip(targets, map(float, held))),
            "decision": b if switch else a, "switch": bool(switch),
            "rule": f"switch to {b} iff the procedure picks it in > half of the folds and the paired mean difference > {MARGIN}"}


def suite_main(a: argparse.Namespace) -> None:
    from transferlens.models import resolve_model
    from transferlens.zoo.selection import bootstrap_ci
    from transferlens.zoo.suite import SUITE, group_of

    bench = json.loads(a.bench.read_text())
    t0 = time.perf_counter()
    per_target: dict[str, dict] = {}
    check: dict[str, float] = {"gbc[exact]": 0.0, "etran[fisher]": 0.0}  # max |old default variant - bench column|
    for target, tt in bench["targets"].items():
        if target not in SUITE or SUITE[target].modality != "image":
            continue
        train = SUITE[target].train
        results: dict[str, list] = {v: [] for v in VARIANTS}
        for model in tt["candidates"]:
            ref = resolve_model(model)
            fs = extract(ref, train, "penultimate,last", pool="auto")  # as rank_models: the bench's cache entries
            x = fs[fs.layers[0]]
            for v, (name, opts) in VARIANTS.items():
                results[v].append(compute_score(name, x, fs.labels, **opts))
        truths = {g: np.array([np.nan if z is None else z for z in tt["truth"][g]], float) for g in SUITE_TRUTHS}
        row: dict = {"group": group_of(target), "kind": tt["kind"], "candidates": tt["candidates"]}
        for v, (name, _) in VARIANTS.items():
            vals = zoo_normalise(name, results[v])
            row[v] = {"values": vals.tolist(), **{g: compare(vals, truths[g])["weighted_tau"] for g in SUITE_TRUTHS}}
            if v in check:
                check[v] = max(check[v], float(np.nanmax(np.abs(vals - np.asarray(tt["scores"][name], float)))))
        per_target[target] = row
        print(target, {v: round(row[v]["primary"], 3) for v in VARIANTS}, f"{time.perf_counter() - t0:.0f} s", flush=True)

    targets = list(per_target)
    groups = [per_target[t]["group"] for t in targets]
    means = {v: {g: dict(zip(("mean", "low", "high"), bootstrap_ci([per_target[t][v][g] for t in targets]))) for g in SUITE_TRUTHS}
             for v in VARIANTS}
    decisions = {f: {g: heldout_decision({v: {t: per_target[t][v][g] for t in targets} for v in fam}, targets, groups, fam)
                     for g in ("primary", "probe")} for f, fam in FAMILIES.items()}
    out_what_if = what_if_bench(bench, per_target)
    out = {"bench": str(a.bench), "what_if_bench_with_new_columns": out_what_if, "targets": per_target, "groups": sorted(set(groups)), "n_targets": len(targets),
           "mean_weighted_tau": means, "heldout": decisions, "decision_truth": "primary",
           "default_matches_bench_max_abs_diff": check, "seconds": round(time.perf_counter() - t0, 1)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    a.out.with_suffix(".md").write_text(suite_markdown(out))
    print(suite_markdown(out))


def what_if_bench(bench: dict, per_target: dict, columns: dict[str, str] | None = None) -> dict:
    """rank's default selection (:func:`transferlens.zoo.selection.select_default`, as in ``bench scores --suite``) on
    the committed bench table with its gbc / etran columns replaced by ``columns`` (score -> variant), for the record:
    the committed table's selection is that of the old defaults."""
    import copy

    from transferlens.ranking import COMBINED_AGGREGATOR, COMBINED_SCORES
    from transferlens.zoo.selection import select_default

    columns = columns or {"gbc": "gbc[reference]", "etran": "etran[euclidean]"}
    out = {}
    for label, res in (("committed", bench), ("new columns", copy.deepcopy(bench))):
        if label == "new columns":
            for t, row in per_target.items():
                tt = res["targets"][t]
                for s, v in columns.items():
                    tt["scores"][s] = row[v]["values"]
                    for g, truth in tt["truth"].items():
                        tt["metrics"][s][g] = compare(np.asarray(row[v]["values"], float),
                                                      np.array([np.nan if z is None else z for z in truth], float))
        sel = select_default(res, fixed={f"{COMBINED_AGGREGATOR}({', '.join(COMBINED_SCORES)}) (rank's default now)": (COMBINED_AGGREGATOR, COMBINED_SCORES)})
        means = {s: float(np.nanmean([res["targets"][t]["metrics"][s]["primary"]["weighted_tau"] for t in sel["targets"]]))
                 for s in sel["scores"]}
        out[label] = {"default": sel["default"]["name"], "decision": sel["default"]["decision"],
                      "nested_heldout_wtau": sel["procedures"]["nested"]["weighted_tau"],
                      "single_heldout_wtau": sel["procedures"]["single"]["weighted_tau"],
                      "single_rules_chosen": sel["procedures"]["single"]["rules_chosen"],
                      "mean_wtau_top5": dict(sorted(means.items(), key=lambda kv: -kv[1])[:5])}
    return out


def suite_markdown(out: dict) -> str:
    def c(d: dict) -> str:
        return f"{d['mean']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"

    lines = [f"{out['n_targets']} image targets of the suite in {len(out['groups'])} groups; weighted tau, mean over targets "
             "with a 95 % percentile bootstrap interval over targets (2000 resamples, seed 0).", "",
             "| variant | " + " | ".join(f"wτ {g}" for g in SUITE_TRUTHS) + " |", "|---|" + "---:|" * len(SUITE_TRUTHS)]
    for v, row in out["mean_weighted_tau"].items():
        lines.append(f"| {v} | " + " | ".join(c(row[g]) for g in SUITE_TRUTHS) + " |")
    for f, by_truth in out["heldout"].items():
        for g, d in by_truth.items():
            a, b = FAMILIES[f]
            lines += ["", f"**{f}, truth {g}** (grouped leave-one-group-out, {len(d['folds'])} folds): procedure held-out wτ "
                      f"{c(d['procedure'])}; fixed {a} {c(d['fixed'][a])}, fixed {b} {c(d['fixed'][b])}; paired {b} - {a} "
                      f"{c(d[f'paired {b} - {a}'])}; procedure - {a} {c(d[f'paired procedure - {a}'])}; folds picking {b}: "
                      f"{d['folds_picking_other']}/{len(d['folds'])} ("
                      + ", ".join(f"{x['held_out']}: {x['variant']}" for x in d["folds"]) + f"); rule's decision: **{d['decision']}**"
                      + (" (decision truth)" if g == out["decision_truth"] else " (for the record)") + "."]
    lines += ["", "Per target wτ against the primary truth:", "", "| target | group | " + " | ".join(VARIANTS) + " |",
              "|---|---|" + "---:|" * len(VARIANTS)]
    for t, row in out["targets"].items():
        lines.append(f"| {t} | {row['group']} | " + " | ".join(f"{row[v]['primary']:.3f}" for v in VARIANTS) + " |")
    for label, w in out["what_if_bench_with_new_columns"].items():
        what = {"committed": "as committed (gbc / etran with the old defaults)",
                "new columns": "with its gbc / etran columns replaced by the new defaults' values"}.get(label, label)
        lines += ["", f"rank's default selection on the bench table {what}: **{w['default']}** "
                  f"({w['decision']}); held-out wτ nested {c(w['nested_heldout_wtau'])}, single {c(w['single_heldout_wtau'])} "
                  f"(single picks per fold: {', '.join(w['single_rules_chosen'])}); best mean wτ over all targets: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in w["mean_wtau_top5"].items()) + "."]
    lines += ["", f"The bench's gbc / etran columns (computed with the defaults before this decision) vs gbc[exact] / etran[fisher] here, max |difference|: "
              + ", ".join(f"{k} {v:.2e}" for k, v in out["default_matches_bench_max_abs_diff"].items())
              + f". Wall time {out['seconds']} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ground-truth", type=Path, default=Path("benchmarks/results/zoo/ground_truth.json"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--suite", action="store_true", help="the image targets of the suite, with the held-out decision")
    ap.add_argument("--bench", type=Path, default=Path("benchmarks/results/zoo-suite/bench_scores.json"))
    a = ap.parse_args()
    if a.suite:
        a.out = a.out or Path("benchmarks/results/zoo-suite/score_variants.json")
        suite_main(a)
        return
    a.out = a.out or Path("benchmarks/results/zoo/score_variants.json")
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
