"""How well do label-free estimators predict a probe's OOD accuracy? (issue 18, item 4)

For every (zoo model, target, OOD shift): a logistic probe is fitted on the target's labelled train features
(penultimate layer, the layer ``rank`` scores), ATC (max-confidence and entropy), DoC, agreement-on-the-line
(over the 19 zoo models as the ensemble) and the naive ID accuracy estimate the probe's accuracy on the OOD
set from its features alone (labels withheld); the OOD labels then give the measured accuracy. The ID
validation set of ATC / DoC is the target's test split. Reports, per estimator, the mean absolute error in
accuracy points and Spearman / Kendall rank correlation between estimate and measurement (over all triples,
and the mean within each (target, shift) across models).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/eval_field.py --out benchmarks/results/field

Writes ``triples.csv`` (one row per triple) and ``summary.json`` (the table of docs/validity.md).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import platform
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from transferlens.features import extract
from transferlens.metrics.field import ESTIMATORS
from transferlens.probe.field import estimate_field, fit_field_probe, probe_outputs
from transferlens.zoo.registry import list_built
from transferlens.zoo.targets import TARGETS

SHIFTS = ("gaussian_noise", "blur", "contrast", "pixelate")
SEVERITIES = (2, 4)
DEFAULT_TARGETS = ("digits", "fashion-novel")


def _features(model: str, uri: str) -> tuple[np.ndarray, np.ndarray]:
    fs = extract(model, uri, "penultimate", pool="auto")
    return fs[fs.layers[0]].astype(np.float64), np.asarray(fs.labels)


def run(targets: list[str], models: list[str], shifts: list[str], severities: list[int]) -> list[dict]:
    rows = []
    for t in targets:
        tg = TARGETS[t]
        feats = {m: (_features(m, tg.train), _features(m, tg.test)) for m in models}
        probes = {m: fit_field_probe(*feats[m][0], seed=0) for m in models}
        for shift in shifts:
            for sev in severities:
                ood = f"shift:{shift}:{sev}:{tg.test}"
                outs, fy = {}, None
                for m in models:
                    (xtr, ytr), (xv, yv) = feats[m]
                    xf, fy = _features(m, ood)
                    outs[m] = probe_outputs(xtr, ytr, xv, yv, xf, probe=probes[m])
                res = estimate_field(outs, field_labels=fy)
                for m in models:
                    r = res["models"][m]
                    rows.append({"target": t, "shift": shift, "severity": sev, "model": m, "measured": r["measured"],
                                 **{e: r["estimates"][e] for e in ESTIMATORS}})
                print(f"{t} {shift}:{sev} done ({len(models)} models; AoL slope {res['aol'].get('slope')})", flush=True)
    return rows


def summarise(rows: list[dict]) -> dict:
    out = {}
    meas = np.array([r["measured"] for r in rows])
    groups = sorted({(r["target"], r["shift"], r["severity"]) for r in rows})
    for e in ESTIMATORS:
        est = np.array([np.nan if r[e] is None else r[e] for r in rows], dtype=np.float64)
        ok = np.isfinite(est)
        if not ok.any():
            out[e] = None
            continue
        within_s, within_k = [], []
        for g in groups:
            idx = [i for i, r in enumerate(rows) if (r["target"], r["shift"], r["severity"]) == g and ok[i]]
            if len(idx) >= 3 and np.ptp(est[idx]) > 0 and np.ptp(meas[idx]) > 0:
                within_s.append(spearmanr(est[idx], meas[idx]).statistic)
                within_k.append(kendalltau(est[idx], meas[idx]).statistic)
        err = 100 * (est[ok] - meas[ok])
        out[e] = {"n": int(ok.sum()), "mae_points": float(np.mean(np.abs(err))), "bias_points": float(np.mean(err)),
                  "max_abs_points": float(np.max(np.abs(err))),
                  "spearman_all": float(spearmanr(est[ok], meas[ok]).statistic),
                  "kendall_all": float(kendalltau(est[ok], meas[ok]).statistic),
                  "spearman_within_mean": float(np.mean(within_s)) if within_s else None,
                  "kendall_within_mean": float(np.mean(within_k)) if within_k else None,
                  "mae_points_by_severity": {str(sev): float(np.mean(np.abs(100 * (est[i] - meas[i]))))
                                             for sev in sorted({r["severity"] for r in rows})
                                             for i in [np.array([j for j, r in enumerate(rows) if r["severity"] == sev and ok[j]])]
                                             if i.size}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", action="append", help=f"targets (default: {', '.join(DEFAULT_TARGETS)})")
    ap.add_argument("--model", action="append", help="zoo model names (default: every built zoo model)")
    ap.add_argument("--shift", action="append", help=f"shifts (default: {', '.join(SHIFTS)})")
    ap.add_argument("--severity", action="append", type=int, help=f"severities (default: {SEVERITIES})")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/field"))
    a = ap.parse_args()
    models = [f"zoo:{m}" for m in (a.model or list_built())]
    targets = a.target or list(DEFAULT_TARGETS)
    t0, started = time.perf_counter(), dt.datetime.now(dt.timezone.utc)
    rows = run(targets, models, a.shift or list(SHIFTS), a.severity or list(SEVERITIES))
    summary = {"estimators": summarise(rows), "n_triples": len(rows), "targets": targets, "models": models,
               "shifts": a.shift or list(SHIFTS), "severities": a.severity or list(SEVERITIES),
               "started": started.isoformat(timespec="seconds"), "seconds": round(time.perf_counter() - t0, 1),
               "machine": f"{platform.platform()}, {platform.processor() or platform.machine()}"}
    a.out.mkdir(parents=True, exist_ok=True)
    with open(a.out / "triples.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for e, s in summary["estimators"].items():
        if s:
            print(f"{e:12s} MAE {s['mae_points']:5.1f}  bias {s['bias_points']:+5.1f}  spearman {s['spearman_all']:.2f}  "
                  f"kendall {s['kendall_all']:.2f}  within-shift spearman {s['spearman_within_mean']}")
    print(f"{len(rows)} triples in {summary['seconds']} s")


if __name__ == "__main__":
    main()
