"""``transferlens zoo build|list``."""

from __future__ import annotations

import json

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..zoo import registry
from ..zoo.build import build_zoo
from ..zoo.recipes import RECIPES, TINY
from .common import console, friendly, show_progress

app = typer.Typer(help="The embedded model zoo: small backbones pretrained here, on CPU.", no_args_is_help=True)


@app.command("build")
@friendly
def build_cmd(
    only: list[str] = typer.Option(None, "--only", help="build only this recipe (repeatable)"),
    tiny: bool = typer.Option(False, "--tiny", help="build the 3-model test zoo (seconds)"),
) -> None:
    """Build (pretrain) the zoo models that are missing; finished ones are skipped, interrupted ones resume."""
    with Progress(TextColumn("[bold]zoo[/] {task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console, disable=not show_progress()) as bar:
        tasks: dict[str, int] = {}

        def report(name: str, fraction: float) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=1.0)
            bar.update(tasks[name], completed=fraction)

        cards = build_zoo(only or None, tiny=tiny, progress=report)
    console.print(f"{len(cards)} zoo model(s) ready in {registry.zoo_root()}")


@app.command("list")
@friendly
def list_cmd(recipes: bool = typer.Option(False, "--recipes", help="list every recipe, built or not")) -> None:
    """List the zoo models with their model cards."""
    table = Table(title="zoo")
    for col in ("name", "arch", "source", "size", "aug", "source acc", "params", "build s", "description"):
        table.add_column(col, overflow="fold")
    built = set(registry.list_built())
    names = list(RECIPES) if recipes else sorted(built)
    for name in names:
        if name in built:
            card = json.loads((registry.model_dir(name) / registry.CARD).read_text())
            r = card["recipe"]
            table.add_row(name, r["arch"], r["source"], str(r["size"]), "yes" if r["augment"] else "no",
                          f"{card['source_accuracy']:.3f}", f"{card['parameters']:,}", str(card["build_seconds"]), card["description"])
        else:
            r = RECIPES.get(name) or TINY[name]
            table.add_row(name, r.arch, r.source, str(r.size), "yes" if r.augment else "no", "[dim]not built[/]", "", "", r.description)
    console.print(table)
    if not built:
        console.print("no zoo model built yet: run `transferlens zoo build` (or `--tiny` for the test zoo).")
