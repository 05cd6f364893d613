"""Experiment: every robust fine-tuning method x seeds x zoo models x few-label targets, ID and OOD accuracy and cost.

For each unit (model, target, method, seed) ``transferlens.finetune.loop.run_finetune`` fine-tunes the shipped zoo
model on the target's train set (validation: a stratified 20 % split drawn by the seed) and scores the final model
on the target's test set and its OOD sets (``transferlens.zoo.targets.TARGETS``). Each unit runs in its own
subprocess with one torch thread, so its peak RSS (ru_maxrss) is its own; ``--jobs`` units run at a time.

Resumable: a finished unit is ``OUT/units/<model>/<target>/<method>/seed<s>.json`` and is skipped on a re-run; an
interrupted unit resumes from its per-epoch checkpoint in ``OUT/runs/...``. At the end (and with ``--summarise``
alone) the units are aggregated into ``OUT/summary.json``, ``OUT/summary.md`` and ``OUT/units.csv`` (one line per
unit; what the repository keeps, with the summaries): mean ± sd over seeds of the ID test
accuracy, the mean OOD accuracy, wall-clock seconds and peak RSS per (target, model, method), and a per-method
average over all (model, target) cells. With ``--lrs``, every seed runs each rate and keeps the one with the best
validation accuracy (model selection on ID validation data only, as the FTP/TPGM papers do).

Run:  .venv/bin/python benchmarks/exp_finetune.py [--models vgg-g50 resnet-g50 vit-g50]
          [--targets digits-10shot fashion-novel] [--seeds 3] [--epochs 10] [--lrs 1e-3 3e-3] [--jobs 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("plain", "l2sp", "lpft", "wiseft", "tpgm", "ftp")
FORMAT = "transferlens.exp-finetune/1"


def unit_path(out: Path, unit: dict[str, Any]) -> Path:
    lr = "" if unit["lr"] is None else f"-lr{unit['lr']:g}"
    return out / "units" / unit["model"] / unit["target"] / unit["method"] / f"seed{unit['seed']}{lr}.json"


def run_unit(unit: dict[str, Any], out: Path) -> None:
    """Run one unit in this process and write its JSON (called in the subprocess)."""
    from transferlens.finetune.loop import run_finetune
    from transferlens.io import atomic_write_text
    from transferlens.zoo.targets import TARGETS

    target = TARGETS[unit["target"]]
    rel = unit_path(out, unit).relative_to(out / "units").with_suffix("")
    rec = run_finetune(f"zoo:{unit['model']}", target.train, unit["method"], test=target.test, ood=list(target.ood),
                       epochs=unit["epochs"], lr=unit["lr"], batch_size=unit["batch_size"], seed=unit["seed"],
                       threads=1, out_dir=out / "runs" / rel)
    path = unit_path(out, unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"format": FORMAT, "unit": unit, "record": rec}, indent=1))


def _readable(path: Path, unit: dict[str, Any]) -> bool:
    try:
        return json.loads(path.read_text()).get("unit") == unit
    except (OSError, ValueError):
        return False


def run_all(units: list[dict[str, Any]], out: Path, jobs: int) -> list[str]:
    """Run the missing units, ``jobs`` subprocesses at a time; returns the failures."""
    todo = [u for u in units if not _readable(unit_path(out, u), u)]
    print(f"{len(units)} units, {len(units) - len(todo)} done, {len(todo)} to run ({jobs} at a time)", flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    running: list[tuple[subprocess.Popen, dict[str, Any], float]] = []
    failures: list[str] = []
    done = 0
    while todo or running:
        while todo and len(running) < jobs:
            u = todo.pop(0)
            cmd = [sys.executable, __file__, "--unit", json.dumps(u), "--out", str(out)]
            running.append((subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), u, time.time()))
        time.sleep(0.2)
        for item in list(running):
            proc, u, t0 = item
            if proc.poll() is None:
                continue
            running.remove(item)
            done += 1
            name = f"{u['model']} {u['target']} {u['method']} seed {u['seed']}" + ("" if u["lr"] is None else f" lr {u['lr']:g}")
            err = proc.stderr.read() if proc.stderr else ""
            if proc.returncode != 0:
                failures.append(f"{name}: exit {proc.returncode}: {err.strip().splitlines()[-1] if err.strip() else ''}")
                print(f"[{done}] FAILED {failures[-1]}", flush=True)
                continue
            acc = json.loads(unit_path(out, u).read_text())["record"]["accuracy"]
            print(f"[{done}/{done + len(todo) + len(running)}] {name}: ID {acc['test']:.3f} OOD {acc['ood_mean']:.3f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
    return failures


def _ms(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def write_units_csv(out: Path) -> Path:
    """One line per finished unit (every learning rate of a grid): accuracies per OOD set, cost, FTP's final γ.

    The compact record that is committed; the unit JSONs (per-epoch history and γ trace) and the run
    folders (checkpoints) stay local."""
    import csv
    import io

    from transferlens.io import atomic_write_text

    rows = []
    for f in sorted(out.glob("units/*/*/*/*.json")):
        u = json.loads(f.read_text())
        r, unit = u["record"], u["unit"]
        row = {"model": unit["model"], "target": unit["target"], "method": unit["method"], "seed": unit["seed"],
               "epochs": unit["epochs"], "lr": r["hyperparameters"]["lr"], "steps": r["cost"]["steps"],
               "val": r["accuracy"]["val"], "test": r["accuracy"]["test"], "ood_mean": r["accuracy"]["ood_mean"]}
        for uri, acc in (r["accuracy"]["ood"] or {}).items():
            row["ood_" + uri.split(":")[1]] = acc
        row["seconds"] = round(r["cost"]["seconds"], 2)
        row["peak_rss_mib"] = round(r["cost"]["peak_rss_mib"], 1)
        gammas = sorted(t["gamma"][-1] for t in (r.get("trace") or {}).get("tensors", [])
                        if not t.get("head") and t.get("gamma") and t["gamma"][-1] is not None)
        row["ftp_gamma_final_median"] = round(float(np.median(gammas)), 4) if unit["method"] == "ftp" and gammas else ""
        rows.append(row)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, keys, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return Path(atomic_write_text(out / "units.csv", buf.getvalue()))


def summarise(out: Path) -> dict[str, Any]:
    """Aggregate every unit JSON under ``out`` into summary.json and summary.md."""
    from transferlens.io import atomic_write_text

    runs: dict[tuple[str, str, str, int], list[dict]] = {}
    for path in sorted((out / "units").rglob("seed*.json")):
        data = json.loads(path.read_text())
        u = data["unit"]
        runs.setdefault((u["target"], u["model"], u["method"], u["seed"]), []).append(data)
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for (target, model, method, _seed), items in runs.items():  # learning rate chosen on validation, ties: smaller
        best = max(items, key=lambda d: (d["record"]["accuracy"]["val"], -d["record"]["hyperparameters"]["lr"]))
        groups.setdefault((target, model, method), []).append({**best, "grid": len(items)})
    rows = []
    for (target, model, method), items in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], METHODS.index(kv[0][2]))):
        recs = [d["record"] for d in items]
        row: dict[str, Any] = {"target": target, "model": model, "method": method, "n_seeds": len(recs),
                               "epochs": items[0]["unit"]["epochs"], "lr_grid": max(d["grid"] for d in items),
                               "lrs": sorted({r["hyperparameters"]["lr"] for r in recs})}
        for key, values in (("id", [r["accuracy"]["test"] for r in recs]), ("ood", [r["accuracy"]["ood_mean"] for r in recs]),
                            ("seconds", [r["cost"]["seconds"] for r in recs]), ("train_seconds", [r["cost"]["train_seconds"] for r in recs]),
                            ("peak_rss_mib", [r["cost"]["peak_rss_mib"] for r in recs])):
            row[key], row[f"{key}_sd"] = _ms(values)
        if method == "wiseft":
            row["wiseft_alpha"], row["wiseft_alpha_sd"] = _ms([r["wiseft"]["chosen_alpha"] for r in recs])
        rows.append(row)
    per_method = []
    for method in METHODS:
        cells = [r for r in rows if r["method"] == method]
        if cells:
            per_method.append({"method": method, "cells": len(cells), "id": float(np.mean([c["id"] for c in cells])),
                               "ood": float(np.mean([c["ood"] for c in cells])), "seconds": float(np.mean([c["seconds"] for c in cells])),
                               "peak_rss_mib": float(np.mean([c["peak_rss_mib"] for c in cells]))})
    import torch

    summary = {"format": FORMAT, "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
               "rows": rows, "per_method": per_method}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    atomic_write_text(out / "summary.md", markdown(summary))
    write_units_csv(out)
    return summary


def markdown(summary: dict[str, Any]) -> str:
    def pm(row: dict, key: str, scale: float = 100.0, fmt: str = ".1f") -> str:
        return f"{scale * row[key]:{fmt}} ± {scale * row[key + '_sd']:{fmt}}"

    lines = [f"# Robust fine-tuning on the zoo ({summary['created']})", "",
             f"Machine: {summary['machine']['cpus']} CPUs, {summary['machine']['platform']}, torch {summary['machine']['torch']}; "
             "one thread per unit. Accuracies in %, mean ± sd over seeds; OOD = mean over the target's OOD sets; "
             "seconds = wall-clock of one `run_finetune` (data, training, evaluation); RSS = peak of the unit's process. "
             "With a learning-rate grid, each seed's rate is chosen on validation accuracy (`lr` lists the chosen ones; "
             "the selection costs `grid` runs).", ""]
    for target in sorted({r["target"] for r in summary["rows"]}):
        lines += [f"## {target}", "", "| model | method | seeds | epochs | lr | grid | ID test | OOD mean | seconds | peak RSS MiB |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in (r for r in summary["rows"] if r["target"] == target):
            lrs = ", ".join(f"{v:g}" for v in r["lrs"])
            lines.append(f"| {r['model']} | {r['method']} | {r['n_seeds']} | {r['epochs']} | {lrs} | {r['lr_grid']} | {pm(r, 'id')} | "
                         f"{pm(r, 'ood')} | {pm(r, 'seconds', 1.0)} | {r['peak_rss_mib']:.0f} |")
        lines.append("")
    lines += ["## Per method, averaged over every (model, target) cell", "",
              "| method | cells | ID test | OOD mean | seconds | peak RSS MiB |", "|---|---:|---:|---:|---:|---:|"]
    for m in summary["per_method"]:
        lines.append(f"| {m['method']} | {m['cells']} | {100 * m['id']:.1f} | {100 * m['ood']:.1f} | {m['seconds']:.1f} | {m['peak_rss_mib']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["vgg-g50", "resnet-g50", "vit-g50"], help="zoo model names")
    ap.add_argument("--targets", nargs="+", default=["digits-10shot", "fashion-novel"], help="names in transferlens.zoo.targets")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..n-1")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lrs", type=float, nargs="+", default=None,
                    help="learning-rate grid, chosen per seed on validation accuracy (default: each method's own rate)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--jobs", type=int, default=2, help="units run at a time (one thread each)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/finetune"))
    ap.add_argument("--summarise", action="store_true", help="only aggregate the finished units")
    ap.add_argument("--unit", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.unit:
        run_unit(json.loads(args.unit), args.out)
        return
    if not args.summarise:
        from transferlens.zoo.targets import TARGETS

        unknown = [t for t in args.targets if t not in TARGETS or TARGETS[t].modality != "image"]
        if unknown:
            raise SystemExit(f"unknown or non-image target(s) {unknown}; image targets: "
                             f"{[t.name for t in TARGETS.values() if t.modality == 'image']}")
        units = [{"model": m, "target": t, "method": meth, "seed": s, "epochs": args.epochs, "lr": lr, "batch_size": args.batch_size}
                 for t in args.targets for m in args.models for meth in args.methods for s in range(args.seeds)
                 for lr in (args.lrs or [None])]
        t0 = time.time()
        failures = run_all(units, args.out, args.jobs)
        print(f"finished in {time.time() - t0:.0f} s", flush=True)
        if failures:
            print("failures:\n  " + "\n  ".join(failures), file=sys.stderr)
    summary = summarise(args.out)
    print(f"{len(summary['rows'])} (target, model, method) rows -> {args.out / 'summary.md'}, {args.out / 'summary.json'}")
    if not args.summarise and failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
