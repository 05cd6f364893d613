"""The terminal summary printed at the end of ``transferlens assess`` (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


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
        table.add_column("mean rank", justify="right")
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
        table = Table(title="layer-wise probes of the shortlist (▸)", title_justify="left")
        for col in ("model", "best layer", "ID", "mean OOD", "OOD kept at last layer", "tunnel"):
            table.add_column(col, justify="left" if col in ("model", "best layer", "tunnel") else "right", no_wrap=col == "model")
        for m, p in probes.items():
            if not p:
                table.add_row(m, "[red]failed[/]", "", "", "", "")
                continue
            row = p["layers"][p["recommendation"]["index"]]
            mean = (p.get("tunnel") or {}).get("mean") or {}
            tunnel = "-" if not mean else ("none" if mean.get("start") is None else
                                          f"{mean['strength']}, from {p['layers'][mean['start']]['layer']}")
            kept = f"{mean['pct_retained']:.0f}%" if mean else "-"
            table.add_row(m, row["layer"], _pct(row["id_accuracy"]), _pct(row.get("ood_mean_accuracy")), kept, tunnel)
        console.print(table)
    fts = {m: _result(st) for m, st in run.get("finetune", {}).items()}
    if any(fts.values()):
        table = Table(title=f"fine-tuning {d.get('model')}", title_justify="left")
        for col in ("method", "ID test", "mean OOD"):
            table.add_column(col, justify="left" if col == "method" else "right")
        for m, r in fts.items():
            if r:
                table.add_row(m, _pct(r.get("test_accuracy")), _pct(r.get("ood_mean_accuracy")))
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
