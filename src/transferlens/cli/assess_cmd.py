"""``transferlens assess``: the main job."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..defaults import DEFAULT_DATA, DEFAULT_MODELS
from .common import console, friendly, show_progress


@friendly
def assess_cmd(
    data: str = typer.Option(None, "--data", "-d", help=f"target data URI (default: {DEFAULT_DATA})"),
    model: list[str] = typer.Option(None, "--model", "-m", help=f"candidate model URI, repeatable (default: {', '.join(DEFAULT_MODELS)})"),
    out: Path = typer.Option(Path("transferlens-out"), "--out", "-o", help="directory for the records"),
    layers: str = typer.Option("all", help="layers to read"),
    pool: str = typer.Option("auto", help="pooling inside the hooks"),
) -> None:
    """Assess candidate models on a target dataset. With no arguments: the embedded default."""
    from ..assess import assess

    record = assess(model or None, data, out, layers=layers, pool=pool, progress=show_progress())
    console.print(f"[bold]{record['data']}[/]: {record['n_samples']} samples, {record['n_classes']} classes, chance {record['chance_accuracy']:.3f}")
    for res in record["models"]:
        table = Table(title=f"{res['model']} ({res['cache']}, {res['seconds']} s)")
        table.add_column("layer")
        table.add_column("dim", justify="right")
        table.add_column("held-out NCC acc", justify="right")
        for row in res["layers"]:
            mark = " [green]<- best[/]" if row["layer"] == res["best_layer"] else ""
            table.add_row(row["layer"], str(row["dim"]), f"{row['ncc_accuracy']:.3f}{mark}")
        console.print(table)
    console.print(f"record: {out / 'assess.json'}")
