"""The papers' claims on the real pretrained models (issue 16; results in docs/real_models.md).

Each part is resumable: every unit's result is a JSON file under ``--out`` (default
benchmarks/results/real/units/), skipped when present.

    python benchmarks/real_models.py finetune  --target photos --size 96 --epochs 10 --seeds 0 1 2
    python benchmarks/real_models.py geometry  --target photos --target digits --target fashion-novel
    python benchmarks/real_models.py scores    --target digits --zoo-ground-truth benchmarks/results/zoo/ground_truth.json
    python benchmarks/real_models.py summary   # the Markdown tables of docs/real_models.md from the units + ground truth

- ``finetune``: claim (c), plain vs FTP vs LP-FT fine-tuning of ImageNet MobileNetV2 (the loop of
  ``transferlens finetune`` with each method's defaults), ID test and OOD accuracy, per seed.
- ``geometry``: claim (d), geometric complexity (stochastic Jacobian estimate), NC1 and 5-way 5-shot NCC of the
  penultimate layer of every real backbone and its random-init twin (``transferlens geometry``'s report).
- ``summary``: claims (a), (b) and the per-layer tables from ``zoo evaluate --pool real`` ground truth
  (``--ground-truth``), plus (c) and (d) from the units.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "real"


def _unit(out: Path, *parts: str) -> Path:
    safe = [p.replace(":", "_").replace("/", "_").replace("?", "_").replace("&", "_").replace("=", "-") for p in parts]
    return out / "units" / Path(*safe).with_suffix(".json")


def _save(path: Path, rec: dict) -> None:
    from transferlens.io import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(rec, indent=1, default=float))


def run_finetune(args: argparse.Namespace) -> None:
    from transferlens.finetune.loop import run_finetune as finetune
    from transferlens.zoo.targets import TARGETS

    for target_name in args.target:
        t = TARGETS[target_name]
        model = f"{args.model}?size={args.size}"
        for seed in args.seeds:
            for method in args.methods:
                path = _unit(args.out, "finetune", target_name, model, f"{method}-e{args.epochs}-seed{seed}")
                if path.exists():
                    continue
                t0 = time.perf_counter()
                rec = finetune(model, t.train, method, test=t.test, ood=tuple(t.ood), epochs=args.epochs, seed=seed,
                               out_dir=args.out / "work" / path.stem / target_name, resume=True, device="cpu")
                acc = rec["accuracy"]
                _save(path, {"target": target_name, "model": model, "method": method, "epochs": args.epochs, "seed": seed,
                             "test": acc.get("test"), "ood": acc.get("ood"), "ood_mean": acc.get("ood_mean"),
                             "val": acc.get("val"), "lr": rec.get("hyperparameters", {}).get("lr"),
                             "seconds": round(time.perf_counter() - t0, 1), "notes": rec.get("notes")})
                print(f"{target_name} {method} seed {seed}: test {acc.get('test'):.3f} ood {acc.get('ood_mean')} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)


def run_geometry(args: argparse.Namespace) -> None:
    from transferlens.geometry.report import geometry_report
    from transferlens.zoo.evaluate import REAL_IMAGE_MODELS, real_uri
    from transferlens.zoo.targets import TARGETS

    for target_name in args.target:
        t = TARGETS[target_name]
        for model in REAL_IMAGE_MODELS:
            for pretrained in (True, False):
                uri = real_uri(model, pretrained, args.size)
                path = _unit(args.out, "geometry", target_name, uri)
                if path.exists():
                    continue
                t0 = time.perf_counter()
                g = geometry_report(uri, t.train, "penultimate", gc_samples=args.gc_samples, seed=0, device="cpu")
                _save(path, {"target": target_name, "model": uri, "pretrained": pretrained, "report": g,
                             "seconds": round(time.perf_counter() - t0, 1)})
                print(f"{target_name} {uri}: {time.perf_counter() - t0:.0f} s", flush=True)


def run_scores(args: argparse.Namespace) -> None:
    """Claim (a): every default score against the measured probe accuracy at model level (penultimate layer), on
    the pooled candidates of ``--ground-truth`` (real backbones + twins) and ``--zoo-ground-truth`` (the zoo)."""
    from transferlens.ranking import COMBINED_AGGREGATOR, COMBINED_SCORES, DEFAULT_SCORES
    from transferlens.zoo.bench import _cached_score_target, compare
    from transferlens.zoo.selection import aggregate

    entries = [e for path in (args.ground_truth, args.zoo_ground_truth) for e in _gt_entries(path)
               if e["candidate"] == e["model"]]
    out = {}
    for target in args.target:
        es = [e for e in entries if e["target"] == target]
        cands = [{"model": e["model"], "layer_request": "penultimate", "key": e["candidate"]} for e in es]
        t0 = time.perf_counter()
        scores = list(DEFAULT_SCORES) + ["nleep"]
        scored = _cached_score_target(target, cands, scores, args.out / "score-cache")
        pools = {"all": [True] * len(es), "real": [not e["model"].startswith("zoo:") for e in es],
                 "zoo": [e["model"].startswith("zoo:") for e in es]}
        res = {}
        table = {name: np.array([scored["values"][name].get(c["key"], np.nan) for c in cands], float) for name in scores}
        rule = f"rank default: {COMBINED_AGGREGATOR}({', '.join(COMBINED_SCORES)})"
        table[rule] = aggregate(table, (COMBINED_AGGREGATOR, COMBINED_SCORES), fallback=tuple(scores))
        for name in [*scores, rule]:
            vals = table[name]
            for truth in ("probe", "probe_ood"):
                t = np.array([e.get(truth, np.nan) for e in es], float)
                for pool, mask in pools.items():
                    m = np.array(mask)
                    res.setdefault(name, {})[f"{pool}:{truth}"] = compare(vals[m], t[m])
        out[target] = {"n": {p: int(sum(m)) for p, m in pools.items()}, "metrics": res, "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{target}: {time.perf_counter() - t0:.0f} s", flush=True)
    path = args.out / "scores.json"
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update(out)  # one target per invocation is fine: the other targets' rows are kept
    _save(path, merged)


def scores_across_targets(out: Path) -> str:
    """Per score: mean over the image targets of weighted τ, Kendall τ and top-1 regret against the probe accuracy
    (all candidates: real backbones + twins + zoo), 95 % percentile bootstrap over targets."""
    from transferlens.zoo.selection import bootstrap_ci

    path = out / "scores.json"
    if not path.exists():
        return "(no score comparison yet)"
    data = json.loads(path.read_text())
    targets = sorted(data)
    names = sorted({n for d in data.values() for n in d["metrics"]})
    lines = [f"Over {len(targets)} image targets ({', '.join(targets)}); mean [95 % bootstrap CI over targets].", "",
             "| score | weighted τ | Kendall τ | top-1 regret (points) | wτ, real backbones + twins only | wτ vs probe OOD |",
             "|---|---:|---:|---:|---:|---:|"]

    def ci(name: str, key: str, metric: str, scale: float = 1.0, digits: int = 2) -> tuple[str, float]:
        vals = [data[t]["metrics"][name][key].get(metric) for t in targets if name in data[t]["metrics"]]
        vals = [scale * v for v in vals if v is not None and np.isfinite(v)]
        if not vals:
            return "-", -9.0
        m, lo, hi = bootstrap_ci(vals)
        return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]", m

    rows = []
    for name in names:
        w, key = ci(name, "all:probe", "weighted_tau")
        rows.append((key, f"| {name} | {w} | {ci(name, 'all:probe', 'kendall_tau')[0]} | "
                          f"{ci(name, 'all:probe', 'regret', 100.0, 1)[0]} | {ci(name, 'real:probe', 'weighted_tau')[0]} | "
                          f"{ci(name, 'all:probe_ood', 'weighted_tau')[0]} |"))
    lines += [r for _, r in sorted(rows, key=lambda kv: -kv[0])]
    return "\n".join(lines)


def scores_table(out: Path) -> str:
    path = out / "scores.json"
    if not path.exists():
        return "(no score comparison yet)"
    data = json.loads(path.read_text())
    lines = []
    for target, d in data.items():
        n = d["n"]
        lines += [f"#### {target}: weighted τ (top-1 regret, points) of each score against the measured linear-probe accuracy",
                  "", f"| score | all {n['all']} candidates | real backbones + twins ({n['real']}) | zoo ({n['zoo']}) | "
                  f"all, vs probe OOD |", "|---|---:|---:|---:|---:|"]
        rows = sorted(d["metrics"].items(), key=lambda kv: -np.nan_to_num(kv[1]["all:probe"]["weighted_tau"], nan=-9))
        for name, m in rows:
            def cell(key: str) -> str:
                c = m[key]
                w, r = c.get("weighted_tau"), c.get("regret")
                return "-" if w is None or not np.isfinite(w) else f"{w:.2f} ({100 * r:.1f})"
            lines.append(f"| {name} | {cell('all:probe')} | {cell('real:probe')} | {cell('zoo:probe')} | {cell('all:probe_ood')} |")
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ summary
def _gt_entries(path: Path) -> list[dict]:
    return json.loads(path.read_text())["summary"] if path.exists() else []


def _short(uri: str) -> str:
    base, _, query = uri.partition("?")
    name = base.split(":", 1)[1]
    return f"{name} (random init)" if "pretrained=false" in query else f"{name} (ImageNet)"


def layer_tables(entries: list[dict]) -> str:
    """Per target and real backbone: probe accuracy ID / OOD per tap, ImageNet vs random init."""
    from transferlens.zoo.evaluate import REAL_IMAGE_MODELS, REAL_TAPS

    lines = []
    for target in sorted({e["target"] for e in entries}):
        rows = {(e["model"], e["layer"]): e for e in entries if e["target"] == target}
        lines += [f"#### {target}", "", "Linear-probe accuracy % (ID test / mean OOD), mean over seeds.", ""]
        for model in REAL_IMAGE_MODELS:
            pre = [m for (m, _l) in rows if m.split("?")[0] == model and "pretrained=false" not in m]
            rnd = [m for (m, _l) in rows if m.split("?")[0] == model and "pretrained=false" in m]
            if not pre:
                continue
            lines += [f"| {model.split(':', 1)[1]} tap | ImageNet ID | ImageNet OOD | random-init ID | random-init OOD | ImageNet − random ID |",
                      "|---|---:|---:|---:|---:|---:|"]
            for tap in REAL_TAPS[model]:
                a = rows.get((pre[0], tap))
                b = rows.get((rnd[0], tap)) if rnd else None
                if a is None:
                    continue

                def pct(e: dict | None, col: str) -> str:
                    return "-" if e is None or e.get(col) is None else f"{100 * e[col]:.1f}"

                gap = "-" if b is None else f"{100 * (a['probe'] - b['probe']):+.1f}"
                lines.append(f"| {tap} | {pct(a, 'probe')} | {pct(a, 'probe_ood')} | {pct(b, 'probe')} | {pct(b, 'probe_ood')} | {gap} |")
            lines.append("")
    return "\n".join(lines)


def pretraining_gap_summary(entries: list[dict]) -> str:
    """One row per target and backbone: what ImageNet buys over the random-init twin (probe ID accuracy) at the
    best tap of each and at the last tap, and which tap is best for each."""
    from transferlens.zoo.evaluate import REAL_IMAGE_MODELS, REAL_TAPS

    lines = ["| target | backbone | best tap ImageNet (ID %) | best tap random init (ID %) | gap at the best taps | gap at the last tap |",
             "|---|---|---|---|---:|---:|"]
    for target in sorted({e["target"] for e in entries}):
        for model in REAL_IMAGE_MODELS:
            def taps(pretrained: bool) -> dict[str, dict]:
                return {e["layer"]: e for e in entries if e["target"] == target and e["model"].split("?")[0] == model
                        and ("pretrained=false" not in e["model"]) == pretrained and e["layer"] in REAL_TAPS[model]}
            a, b = taps(True), taps(False)
            if not a or not b:
                continue
            ba, bb = max(a, key=lambda t: a[t]["probe"]), max(b, key=lambda t: b[t]["probe"])
            last = REAL_TAPS[model][-1]
            gap_last = "-" if last not in a or last not in b else f"{100 * (a[last]['probe'] - b[last]['probe']):+.1f}"
            lines.append(f"| {target} | {model.split(':', 1)[1]} | {ba} ({100 * a[ba]['probe']:.1f}) | {bb} ({100 * b[bb]['probe']:.1f}) | "
                         f"{100 * (a[ba]['probe'] - b[bb]['probe']):+.1f} | {gap_last} |")
    return "\n".join(lines)


def text_tables(entries: list[dict]) -> str:
    """Text encoders: linear-probe and 5-shot NCC accuracy of every hidden state, per fortunes target."""
    if not entries:
        return "(no text ground truth yet)"
    lines = []
    models = sorted({e["model"] for e in entries})
    for target in sorted({e["target"] for e in entries}):
        lines += [f"#### {target}", "", "| model | " + " | ".join(f"h{i}" for i in range(1, 13)) + " | best |",
                  "|---|" + "---:|" * 13]
        for model in models:
            rows = {e["layer"]: e for e in entries if e["target"] == target and e["model"] == model}
            if not rows:
                continue
            cells = [f"{100 * rows[f'hidden_states.{i}']['probe']:.1f}" if f"hidden_states.{i}" in rows else "" for i in range(1, 13)]
            best = max(rows, key=lambda k: rows[k]["probe"])
            lines.append(f"| {model.split(':', 1)[1]} | " + " | ".join(cells) + f" | {best.split('.')[-1]} ({100 * rows[best]['probe']:.1f} ± "
                         f"{100 * rows[best]['probe_std']:.1f}) |")
        lines.append("")
    return "\n".join(lines)


def tunnel_summary(entries: list[dict]) -> str:
    """Claim (b): where along each pretrained backbone ID and OOD probe accuracy peak, and how much OOD accuracy
    the last tap has lost against the best tap (the tunnel: late layers that compress away what OOD data needs)."""
    from transferlens.zoo.evaluate import REAL_IMAGE_MODELS, REAL_TAPS

    lines = ["| target | backbone | best ID tap (ID %) | best OOD tap (OOD %) | last tap ID / OOD % | OOD lost at the last tap (points) |",
             "|---|---|---|---|---|---:|"]
    for target in sorted({e["target"] for e in entries}):
        for model in REAL_IMAGE_MODELS:
            rows = {e["layer"]: e for e in entries if e["target"] == target and e["model"].split("?")[0] == model
                    and "pretrained=false" not in e["model"] and e["layer"] in REAL_TAPS[model]}
            if len(rows) < len(REAL_TAPS[model]) or any(r.get("probe_ood") is None for r in rows.values()):
                continue
            taps = [t for t in REAL_TAPS[model]]
            best_id = max(taps, key=lambda t: rows[t]["probe"])
            best_ood = max(taps, key=lambda t: rows[t]["probe_ood"])
            last = rows[taps[-1]]
            lost = 100 * (rows[best_ood]["probe_ood"] - last["probe_ood"])
            lines.append(f"| {target} | {model.split(':', 1)[1]} | {best_id} ({100 * rows[best_id]['probe']:.1f}) | "
                         f"{best_ood} ({100 * rows[best_ood]['probe_ood']:.1f}) | {100 * last['probe']:.1f} / "
                         f"{100 * last['probe_ood']:.1f} | {lost:.1f} |")
    return "\n".join(lines)


def model_level_table(entries: list[dict]) -> str:
    """Model level (penultimate layer): ImageNet backbones, their twins and (if present) the zoo."""
    lines = []
    for target in sorted({e["target"] for e in entries}):
        rows = [e for e in entries if e["target"] == target and e["layer"] in ("penultimate",) or
                (e["target"] == target and e["candidate"] == e["model"])]
        rows = sorted({e["candidate"]: e for e in rows}.values(), key=lambda e: -e["probe"])
        lines += [f"#### {target}", "", "| candidate | probe % | probe OOD % | 5-shot NCC % |", "|---|---:|---:|---:|"]
        for e in rows:
            name = _short(e["model"]) if not e["model"].startswith("zoo:") else e["model"]
            ood = "-" if e.get("probe_ood") is None else f"{100 * e['probe_ood']:.1f} ± {100 * e['probe_ood_std']:.1f}"
            lines.append(f"| {name} | {100 * e['probe']:.1f} ± {100 * e['probe_std']:.1f} | {ood} | {100 * e['ncc']:.1f} ± {100 * e['ncc_std']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def finetune_table(out: Path) -> str:
    units = [json.loads(p.read_text()) for p in sorted((out / "units" / "finetune").rglob("*.json"))]
    if not units:
        return "(no fine-tuning units yet)"
    groups: dict[tuple, list[dict]] = {}
    for u in units:
        groups.setdefault((u["target"], u["model"], u["epochs"], u["method"]), []).append(u)
    lines = ["| target | model | epochs | method | seeds | ID test % | OOD mean % | s per run |", "|---|---|---:|---|---:|---:|---:|---:|"]
    for (target, model, epochs, method), us in sorted(groups.items()):
        test = np.array([u["test"] for u in us]) * 100
        ood = np.array([u["ood_mean"] for u in us if u["ood_mean"] is not None]) * 100
        sd = lambda a: float(a.std(ddof=1)) if a.size > 1 else 0.0  # noqa: E731
        lines.append(f"| {target} | {model} | {epochs} | {method} | {len(us)} | {test.mean():.1f} ± {sd(test):.1f} | "
                     f"{(f'{ood.mean():.1f} ± {sd(ood):.1f}' if ood.size else '-')} | {np.mean([u['seconds'] for u in us]):.0f} |")
    return "\n".join(lines)


def geometry_table(out: Path, entries: list[dict]) -> str:
    from scipy import stats

    units = [json.loads(p.read_text()) for p in sorted((out / "units" / "geometry").rglob("*.json"))]
    if not units:
        return "(no geometry units yet)"
    probe = {(e["target"], e["model"]): e for e in entries if e["candidate"] == e["model"]}
    lines = ["| target | model | GC (± SE) | NC1 | 5-way 5-shot NCC % | probe % (ground truth) |", "|---|---|---:|---:|---:|---:|"]
    by_target: dict[str, list[tuple[float, float, float]]] = {}
    for u in units:
        layer = u["report"]["layers"][0]
        gc, se = layer.get("gc"), layer.get("gc_se")
        nc1, fs = layer.get("nc1"), layer.get("fewshot_accuracy")
        gt = probe.get((u["target"], u["model"]))
        gt_text = "-" if gt is None else f"{100 * gt['probe']:.1f}"
        lines.append(f"| {u['target']} | {_short(u['model'])} | {gc:.3g} ± {se:.2g} | {nc1:.3g} | {100 * fs:.1f} | {gt_text} |")
        by_target.setdefault(u["target"], []).append((gc, nc1, fs))
    lines.append("")
    lines.append("| target | n models | Spearman(GC, few-shot) | Spearman(NC1, few-shot) |")
    lines.append("|---|---:|---:|---:|")
    for target, vals in by_target.items():
        a = np.array(vals)
        if len(a) >= 4:
            r_gc = stats.spearmanr(a[:, 0], a[:, 2])
            r_nc = stats.spearmanr(a[:, 1], a[:, 2])
            lines.append(f"| {target} | {len(a)} | {r_gc.statistic:+.2f} (p {r_gc.pvalue:.2g}) | {r_nc.statistic:+.2f} (p {r_nc.pvalue:.2g}) |")
    return "\n".join(lines)


def run_summary(args: argparse.Namespace) -> None:
    entries = _gt_entries(args.ground_truth)
    text = _gt_entries(args.text_ground_truth)
    parts = [f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}; generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             "### Model level", "", model_level_table(entries), "### What ImageNet buys, per target and backbone", "",
             pretraining_gap_summary(entries), "", "### Layer level", "", layer_tables(entries),
             "### Text encoders, every hidden state", "", "Linear-probe accuracy % per hidden state (mean over seeds).", "",
             text_tables(text),
             "### Tunnel", "", tunnel_summary(entries), "", "### Scores vs measured accuracy", "", scores_across_targets(args.out), "",
             "Suite targets on the real pool (8 real candidates + the suite's 8 zoo models; `--out "
             "benchmarks/results/real/suite`):", "", scores_across_targets(args.out / "suite"), "", scores_table(args.out), "",
             "### Fine-tuning", "", finetune_table(args.out), "",
             "### Geometry", "", geometry_table(args.out, entries), ""]
    text = "\n".join(parts)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text(text)
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["finetune", "geometry", "scores", "summary"])
    ap.add_argument("--target", action="append", default=None)
    ap.add_argument("--model", default="torchvision:mobilenet_v2")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["plain", "ftp", "lpft"])
    ap.add_argument("--gc-samples", type=int, default=32)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--ground-truth", type=Path, default=DEFAULT_OUT / "ground_truth.json")
    ap.add_argument("--zoo-ground-truth", type=Path, default=DEFAULT_OUT / "zoo" / "ground_truth.json")
    ap.add_argument("--text-ground-truth", type=Path, default=DEFAULT_OUT / "text" / "ground_truth.json")
    args = ap.parse_args()
    args.target = args.target or ["photos"]
    if args.part == "finetune":
        args.size = args.size or 96
        run_finetune(args)
    elif args.part == "geometry":
        from transferlens.zoo.evaluate import REAL_SIZE

        args.size = args.size or REAL_SIZE
        run_geometry(args)
    elif args.part == "scores":
        run_scores(args)
    else:
        run_summary(args)


if __name__ == "__main__":
    main()
