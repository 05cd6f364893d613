"""The report's figures, drawn from the JSON records with matplotlib, returned as inline PNG data URIs.

Only ``matplotlib.figure.Figure`` is used (no pyplot state), so rendering is thread-safe and headless.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from .naming import data_label

DPI = 100


def to_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _finite(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def rank_heatmap(rank: dict) -> str:
    """Models (best first) x scores: each cell the model's rank by that score (1 = best), the combined rank last."""
    by = {r["model"]: r for r in rank["models"]}
    models = list(rank["ranking"])
    scores = list(rank["scores"])
    cols = scores + ["combined"]
    m = np.full((len(models), len(cols)), np.nan)
    for i, name in enumerate(models):
        ranks = by[name].get("ranks") or {}
        for j, s in enumerate(scores):
            if s in ranks:
                m[i, j] = ranks[s]
        if by[name].get("combined_rank") is not None:
            m[i, -1] = by[name]["combined_rank"]
    h = max(2.6, 0.32 * len(models) + 1.6)
    fig = Figure(figsize=(max(6.5, 0.55 * len(cols) + 3.2), h))
    ax = fig.add_subplot(1, 1, 1)
    cmap = matplotlib.colormaps["viridis_r"].with_extremes(bad="0.9")
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, aspect="auto", vmin=1, vmax=max(len(models), 2))
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([c + ("*" if c in rank["combined"]["scores"] else "") for c in cols], rotation=50, ha="right", fontsize=8)
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels([_short(x, 32) for x in models], fontsize=8)
    if len(models) * len(cols) <= 400:
        for i in range(len(models)):
            for j in range(len(cols)):
                if np.isfinite(m[i, j]):
                    v = m[i, j]
                    ax.text(j, i, f"{v:.0f}" if v == int(v) else f"{v:.1f}", ha="center", va="center", fontsize=6.5,
                            color="black" if v <= (len(models) + 1) / 2 else "white")
    ax.axvline(len(cols) - 1.5, color="white", lw=2)
    cb = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    cb.set_label("rank (1 = best)", fontsize=8)
    ax.set_title("Rank of each candidate by each score (* = in the combined rank)", fontsize=9)
    fig.tight_layout()
    return to_data_uri(fig)


def probe_curves(probe: dict, title: str) -> str:
    """:func:`probe_figure` as an inline PNG."""
    return to_data_uri(probe_figure(probe, title))


def probe_figure(probe: dict, title: str) -> Figure:
    """Absolute ID and OOD probe accuracy per layer (never divided by a curve's maximum: that hides a collapse to
    chance), the chance level dashed, layers within noise of chance as hollow markers, curves at chance at every
    layer labelled so, the mean-OOD tunnel shaded, the recommended layer starred with its criterion."""
    from ..probe.chance import layer_flags

    layers = [r["layer"] for r in probe["layers"]]
    flags = layer_flags(probe)
    x = np.arange(len(layers))
    fig = Figure(figsize=(max(6.0, 0.45 * len(x) + 3.5), 3.8))
    ax = fig.add_subplot(1, 1, 1)
    mean = (probe.get("tunnel") or {}).get("mean")
    ood_dead = bool(probe.get("ood_data")) and bool(flags) and all(f["ood_mean"] is True for f in flags)
    if mean and mean.get("start") is not None and mean.get("pct_retained") is not None and not ood_dead:
        ax.axvspan(mean["start"], len(x) - 1, color="0.88", zorder=0, label=f"OOD tunnel ({mean['length']} layer(s))")

    def curve(values: list, at: list, style: str, color: str, lw: float, label: str, alpha: float = 1.0) -> None:
        v = _finite(values)
        dead = bool(at) and all(f is True for f in at)
        ax.plot(x, v, style, color=color, lw=lw, ms=4, alpha=alpha, label=label + (" (at chance)" if dead else ""))
        hollow = [i for i, f in enumerate(at) if f is True and np.isfinite(v[i])]
        if hollow:
            ax.plot(x[hollow], v[hollow], "o", ms=7, mfc="white", mec=color, ls="none", zorder=4)

    curve([r["id_accuracy"] for r in probe["layers"]], [f["id"] for f in flags], "-o", "C0", 2, "ID (held out)")
    for i, uri in enumerate(probe.get("ood_data") or []):
        curve([r["ood_accuracy"].get(uri) for r in probe["layers"]], [f["ood"].get(uri) for f in flags], "--", f"C{i + 2}", 1,
              f"OOD: {_short(data_label(uri), 34)}", 0.85)
    if probe.get("ood_data"):
        curve([r.get("ood_mean_accuracy") for r in probe["layers"]], [f["ood_mean"] for f in flags], "-s", "C1", 2, "OOD mean")
    rec = probe.get("recommendation") or {}
    if rec.get("index") is not None:
        row = probe["layers"][rec["index"]]
        by_ood = bool(probe.get("ood_data")) and rec.get("criterion", "ood_mean") == "ood_mean"
        y = row.get("ood_mean_accuracy") if by_ood else row["id_accuracy"]
        crit = rec.get("criterion_text") or ("best mean OOD accuracy" if by_ood else "best ID accuracy")
        ax.plot([rec["index"]], [y], marker="*", color="C3", ms=16, ls="none", zorder=5, label=f"recommended ({crit})")
    chance = probe.get("chance") or {}
    levels = {"chance": chance.get("id", probe.get("chance_accuracy"))}
    if probe.get("ood_data") and chance.get("ood_mean") is not None and abs(chance["ood_mean"] - (levels["chance"] or 0)) > 1e-9:
        levels = {"ID chance": levels["chance"], "OOD chance": chance["ood_mean"]}
    for (name, v), col in zip(levels.items(), ("0.4", "C1")):
        if v is not None:
            ax.axhline(v, color=col, lw=1, ls="--", alpha=0.8, label=f"{name} ({100 * v:.1f}%)")
    ax.set_xticks(x)
    ax.set_xticklabels([_short(n, 18) for n in layers], rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("probe accuracy (hollow: at chance)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), framealpha=0.9)
    fig.tight_layout()
    return fig


def geometry_layers(geometry: dict, title: str) -> str:
    """Left: NC1 and CDNV per layer (log); right: geometric complexity per layer with its standard error."""
    rows = geometry["layers"]
    names = [r["layer"] for r in rows]
    x = np.arange(len(names))
    fig = Figure(figsize=(max(7.5, 0.6 * len(x) + 4.5), 3.6))
    ax1 = fig.add_subplot(1, 2, 1)
    for key, style, label in (("nc1", "-o", "NC1 (within / between class)"), ("cdnv", "-s", "CDNV")):
        v = _finite([r.get(key) for r in rows])
        if np.isfinite(v).any():
            ax1.plot(x, np.where(v > 0, v, np.nan), style, ms=4, label=label)
    ax1.set_yscale("log")
    ax1.set_title("neural collapse (lower = more collapsed)", fontsize=9)
    ax1.legend(fontsize=7)
    ax2 = fig.add_subplot(1, 2, 2)
    gc = _finite([r.get("gc") for r in rows])
    if np.isfinite(gc).any():
        se = _finite([r.get("gc_se") for r in rows])
        m = np.isfinite(gc) & (gc > 0)  # GC may be estimated on a few layers only (assess: the recommended ones)
        ax2.errorbar(np.asarray(x)[m], gc[m], yerr=np.nan_to_num(se[m]), fmt="-o", ms=4, color="C2", capsize=3)
        ax2.set_yscale("log")
        ax2.set_title("geometric complexity E‖∂f/∂x‖² (± s.e.)", fontsize=9)
    else:
        ax2.text(0.5, 0.5, "not computed\n(text model, or --gc-samples 0)", ha="center", va="center", transform=ax2.transAxes, fontsize=9)
        ax2.set_title("geometric complexity", fontsize=9)
    for ax in (ax1, ax2):
        ax.set_xticks(x)
        ax.set_xticklabels([_short(n, 16) for n in names], rotation=45, ha="right", fontsize=7)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return to_data_uri(fig)


def fewshot_shots(geometry: dict, title: str) -> str:
    """Few-shot (all classes, nearest class centre) accuracy vs labelled samples per class, with 95% CIs."""
    fig = Figure(figsize=(6.0, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    chance = None
    drawn = 0
    for i, (layer, curve) in enumerate((geometry.get("fewshot_curves") or {}).items()):
        pts = curve.get("points") or []
        chance = curve.get("chance", chance)
        if not pts:
            continue
        s = np.array([p["shots"] for p in pts])
        a = np.array([p["accuracy"] for p in pts])
        ci = np.array([p["ci95"] for p in pts])
        ax.plot(s, a, "-o", ms=4, color=f"C{i}", label=f"layer {_short(layer, 24)}")
        ax.fill_between(s, a - ci, a + ci, color=f"C{i}", alpha=0.15)
        drawn += 1
    if chance is not None:
        ax.axhline(chance, color="0.5", lw=0.8, ls=":", label="chance")
    if not drawn:
        ax.text(0.5, 0.5, "too few samples per class for few-shot episodes", ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("labelled samples per class (shots)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_data_uri(fig)


def finetune_bars(finetunes: dict[str, dict], title: str, chance: float | None = None) -> str:
    """Grouped bars: ID test accuracy and each OOD accuracy, one colour per fine-tuning method; chance dashed."""
    methods = list(finetunes)
    oods: list[str] = []
    for rec in finetunes.values():
        oods += [u for u in rec.get("ood_accuracy", {}) if u not in oods]
    groups = ["ID test"] + [data_label(u) for u in oods] + (["OOD mean"] if oods else [])
    fig = Figure(figsize=(max(6.0, 1.1 * len(groups) + 2.5), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(groups))
    for i, m in enumerate(methods):
        rec = finetunes[m]
        vals = [rec.get("test_accuracy")] + [rec.get("ood_accuracy", {}).get(u) for u in oods]
        if oods:
            vals.append(rec.get("ood_mean_accuracy"))
        v = _finite(vals)
        bars = ax.bar(x + (i - (len(methods) - 1) / 2) * width, np.nan_to_num(v), width, label=m, color=f"C{i}")
        for b, val in zip(bars, v):
            if math.isfinite(val):
                ax.text(b.get_x() + b.get_width() / 2, val + 0.01, f"{100 * val:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels([_short(g, 22) for g in groups], rotation=20, ha="right", fontsize=8)
    if chance is not None:
        ax.axhline(chance, color="0.4", lw=1, ls="--", label=f"chance ({100 * chance:.1f}%)")
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return to_data_uri(fig)
