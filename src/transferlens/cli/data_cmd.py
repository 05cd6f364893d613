"""``transferlens data list|show``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from .common import ON_BAD_FILE, console, friendly

app = typer.Typer(help="Data sources: list them, or show what a URI selects.", no_args_is_help=True)


@app.command("list")
@friendly
def list_cmd() -> None:
    """List the data sources, and whether the built-in ones are available on this machine."""
    from ..data import list_sources

    table = Table(title="data sources", show_lines=False)
    for col in ("uri", "kind", "available", "description"):
        table.add_column(col, overflow="fold")
    for row in list_sources():
        ok = "[green]yes[/]" if row["available"] else f"[red]no[/]: {row['note']}"
        table.add_row(row["uri"], row["kind"], ok, row["description"])
    console.print(table)


@app.command("show")
@friendly
def show_cmd(
    uri: str = typer.Argument(..., help="a data URI, e.g. builtin:digits?n_per_class=30 or shift:blur:3:builtin:digits"),
    grid: Path = typer.Option(None, help="write a PNG grid of samples (image data) to this file"),
    size: int = typer.Option(32, help="image size for the grid"),
    on_bad_file: str = ON_BAD_FILE,
) -> None:
    """Summarise a data URI: kind, size, classes and their counts; optionally a PNG grid of samples."""
    from ..data import ImageSpec, load_data

    data = load_data(uri)
    counts = data.class_counts()
    console.print(f"[bold]{data.uri}[/]: {data.kind}, {len(data)} samples, {data.n_classes} classes")
    table = Table(show_header=True)
    table.add_column("class")
    table.add_column("name")
    table.add_column("count", justify="right")
    for c, (name, n) in enumerate(zip(data.class_names, counts)):
        if c >= 40:
            table.add_row("...", f"({data.n_classes - 40} more)", "")
            break
        table.add_row(str(c), name, str(int(n)))
    console.print(table)
    if data.kind == "text":
        for t in data.texts(np.arange(min(3, len(data)))):
            console.print(f"  [dim]{t[:120]!r}[/]")
    if grid is not None:
        if data.kind != "image":
            raise typer.BadParameter("--grid needs image data")
        from ..io import atomic_write
        from PIL import Image

        per_class = 8
        rows = []
        for c in range(min(data.n_classes, 20)):
            pos = np.flatnonzero(data.labels == c)[:per_class]
            imgs = data.images(pos, ImageSpec(size, 3)).permute(0, 2, 3, 1).numpy()
            row = np.concatenate(list(imgs) + [np.zeros((size, size, 3), np.float32)] * (per_class - len(imgs)), axis=1)
            rows.append(row)
        sheet = (np.concatenate(rows, axis=0) * 255).astype(np.uint8)
        atomic_write(grid, lambda tmp: Image.fromarray(sheet).save(tmp, format="PNG"))
        console.print(f"wrote {grid}")
