"""The terminal summary printed at the end of ``transferlens assess`` (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from ..report.naming import combined_word


def _pct(v: float | None, at_chance: bool | None = None) -> str:
    """Percent with one decimal, as the recommendation quotes it; ``*`` when within noise of chance."""
    return "-" if v is None else f"{100 * v:.1f}%" + ("*" if at_chance else "")


def _result(stage: dict | None) -> dict | None:
    if stage and stage.get("status") in ("ok", "cached"):
        return stage.get("result")
    return None


def print_summary(run: dict[str, Any], console: Console, max_rows: int = 10) -> None:
    """Recommendation, ranking (top ``max_rows``), probes of the shortlist, fine-tuning, problems, where the report is."""
    a = run["assess"]
    d = a.get("decision") or {}
    text = f"[bold]{d.get('headline')}[/]"
    for w in d.get("why", []):
        text += f"\n• {w}"
    console.print(Panel(text, title="recommendation", border_style="green" if d.get("model") else "red", expand=False),
                  highlight=False)
    rank = _result(run.get("rank"))
    shortlist = a.get("shortlist", [])
    if rank:
        by = {r["model"]: r for r in rank["models"]}
        shown = [s for s in rank["combined"]["scores"]]
        table = Table(title=f"ranking of {len(rank['ranking'])} candidate(s) by the transferability scores", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("model", no_wrap=True)
        table.add_column(combined_word(rank), justify="right")
        for s in shown:
            table.add_column(s, justify="right")
        for i, m in enumerate(rank["ranking"][:max_rows], 1):
            r = by[m]
            table.add_row(str(i), ("▸ " if m in shortlist else "  ") + m, f"{r['combined_rank']:.2f}",
                          *[f"{r['scores'][s]:.4g}" if s in r["scores"] else "-" for s in shown])
        if len(rank["ranking"]) > max_rows:
            table.add_row("", f"... {len(rank['ranking']) - max_rows} more in the report", "", *[""] * len(shown))
        console.print(table)
    probes = {m: _result(st) for m, st in run.get("probes", {}).items()}
    if any(probes.values()):
        evidence = {r["model"]: r for r in d.get("evidence") or []}
        table = Table(title="layer-wise probes of the shortlist (▸)", title_justify="left")
        cols = ("model", "chosen layer", "chosen by", "ID", "mean OOD", "OOD kept at last layer", "tunnel")
        for col in cols:
            table.add_column(col, justify="right" if col in ("ID", "mean OOD", "OOD kept at last layer") else "left",
                             no_wrap=col == "model")
        marked = False
        for m, p in probes.items():
            if not p:
                table.add_row(m, "[red]failed[/]", *[""] * (len(cols) - 2))
                continue
            ev = evidence.get(m)
            index = ev["index"] if ev else p["recommendation"]["index"]
            row = p["layers"][index]
            crit = ev["criterion"] if ev else ((p.get("recommendation") or {}).get("criterion_text") or
                                              ("best mean OOD accuracy" if p.get("ood_data") else "best ID accuracy"))
            mean = (p.get("tunnel") or {}).get("mean") or {}
            at_chance = mean and (mean.get("pct_retained") is None or bool(ev and ev.get("ood_all_at_chance")))
            tunnel = "-" if not mean else ("OOD at chance" if at_chance else "none" if mean.get("start") is None else
                                          f"{mean['strength']}, from {p['layers'][mean['start']]['layer']}")
            kept = "-" if not mean else ("n/a" if at_chance else f"{mean['pct_retained']:.0f}%")
            cells = [_pct(row["id_accuracy"], ev and ev.get("id_at_chance")),
                     _pct(row.get("ood_mean_accuracy"), ev and ev.get("ood_at_chance"))]
            marked = marked or any(c.endswith("*") for c in cells)
            table.add_row(m, row["layer"], crit, *cells, kept, tunnel)
        console.print(table)
        if marked:
            console.print("* within noise of chance (one-sided binomial test, alpha 0.05)", highlight=False)
    fts = {m: _result(st) for m, st in run.get("finetune", {}).items()}
    if any(fts.values()):
        table = Table(title=f"fine-tuning {d.get('model')}", title_justify="left")
        for col in ("method", "ID test", "mean OOD"):
            table.add_column(col, justify="left" if col == "method" else "right")
        from ..probe.chance import finetune_at_chance

        for m, r in fts.items():
            if r:
                f = finetune_at_chance(r)
                table.add_row(m, _pct(r.get("test_accuracy"), f["id"]), _pct(r.get("ood_mean_accuracy"), f["ood_mean"]))
        console.print(table)
    for c in d.get("caveats", []):
        console.print(f"[yellow]![/] {c}", highlight=False, soft_wrap=True)
    counts: dict[str, int] = {}
    for s in a.get("stages", []):
        counts[s["status"]] = counts.get(s["status"], 0) + 1
    console.print("stages: " + ", ".join(f"{n} {k}" for k, n in counts.items()) + f"; {a.get('seconds')} s", highlight=False)
    if run.get("report"):
        console.print(f"report: [bold]{run['report']}[/] (open it in a browser; it needs no network)", highlight=False)
    console.print(f"records: {run['dir']}/assess.json and {run['dir']}/stages/", highlight=False)
