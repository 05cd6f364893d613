"""``transferlens zoo build|list|evaluate|targets``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import UsageError
from ..zoo import registry
from ..zoo.build import build_zoo
from ..zoo.recipes import RECIPES, TINY
from ..progress import progress_bar
from .common import DEVICE, PRECISION, console, friendly, show_progress

app = typer.Typer(help="The embedded model zoo: small backbones pretrained here, on CPU.", no_args_is_help=True)


@app.command("build")
@friendly
def build_cmd(
    only: list[str] = typer.Option(None, "--only", help="build only this recipe (repeatable)"),
    tiny: bool = typer.Option(False, "--tiny", help="build the 3-model test zoo (seconds)"),
    executor: str = typer.Option("local", help="local (in this process) | ray (one Ray task per model)"),
    address: str = typer.Option(None, help="Ray cluster for --executor ray: auto, or ray://host:10001 (default: a local Ray runtime)"),
) -> None:
    """Build (pretrain) the zoo models that are missing; finished ones are skipped, interrupted ones resume."""
    from ..executors import check_executor

    check_executor(executor, address)
    with progress_bar("zoo build", TextColumn("[bold]zoo[/] {task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), console=console, enabled=show_progress()) as bar:
        tasks: dict[str, int] = {}

        def report(name: str, fraction: float) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=1.0)
            bar.update(tasks[name], completed=fraction)

        cards = build_zoo(only or None, tiny=tiny, progress=report, executor=executor, address=address)
    console.print(f"{len(cards)} zoo model(s) ready in {registry.zoo_root()}")


@app.command("list")
@friendly
def list_cmd(recipes: bool = typer.Option(False, "--recipes", help="list every recipe, built or not")) -> None:
    """List the zoo models with their model cards."""
    table = Table(title="zoo")
    for col in ("name", "arch", "source", "size", "aug", "source acc", "params", "build s", "description"):
        table.add_column(col, overflow="fold", no_wrap=col == "name")  # a model name is never folded or cut
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


@app.command("evaluate")
@friendly
def evaluate_cmd(
    model: list[str] = typer.Option(None, "--model", help="zoo model name (repeatable; default: every built model)"),
    target: list[str] = typer.Option(None, "--target", help="target name (repeatable; default: all, see `zoo targets`)"),
    seeds: int = typer.Option(3, "--seeds", min=1, help="number of seeds (0..n-1)"),
    epochs: int = typer.Option(None, "--finetune-epochs", min=1, help="override the protocol's fine-tuning epochs"),
    lrs: str = typer.Option(None, "--finetune-lrs", help="override the protocol's fine-tuning learning rates (comma-separated)"),
    suite: bool = typer.Option(False, "--suite", help="every target of the suite (zoo/suite.py: >= 30 image + >= 6 text targets)"),
    shard: str = typer.Option("0/1", "--shard", help="i/n: evaluate every n-th (model, target) pair from i, for parallel processes"),
    out: Path = typer.Option(Path("zoo-ground-truth"), "--out", help="folder for ground_truth.json / .csv"),
    executor: str = typer.Option("local", help="local (in this process) | ray (one Ray task per model x target pair)"),
    address: str = typer.Option(None, help="Ray cluster for --executor ray: auto, or ray://host:10001 (default: a local Ray runtime)"),
    pool: str = typer.Option("zoo", "--pool", help="candidates: zoo (the zoo models) | real (ImageNet backbones, their random-init "
                             "twins and >= 5 taps of each, MiniLM + mpnet layers for text; probe + NCC only) | all"),
    device: str = DEVICE,
    precision: str = PRECISION,
) -> None:
    """Ground truth: linear-probe, few-shot NCC and fine-tuning accuracy (ID and OOD) of every model x target."""
    from dataclasses import replace

    from ..executors import check_executor

    from ..zoo.evaluate import Protocol, evaluate_zoo, ground_truth_table, write_table

    check_executor(executor, address)
    protocol = Protocol(seeds=tuple(range(seeds)))
    if epochs is not None:
        protocol = replace(protocol, finetune_epochs=epochs)
    if lrs:
        try:
            protocol = replace(protocol, finetune_lrs=tuple(float(v) for v in lrs.split(",")))
        except ValueError:
            raise UsageError(f"--finetune-lrs must be comma-separated numbers, got {lrs!r}.") from None
    if suite:
        from ..zoo.suite import SUITE

        if target:
            raise UsageError("give either --suite or --target, not both.")
        target = list(SUITE)
    try:
        index, count = (int(v) for v in shard.split("/"))
        assert 0 <= index < count
    except (ValueError, AssertionError):
        raise UsageError(f"--shard must be i/n with 0 <= i < n, got {shard!r}.") from None
    with progress_bar("zoo evaluate", TextColumn("[bold]evaluate[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, enabled=show_progress(), unit="results") as bar:
        task = bar.add_task("", total=None)

        def report(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        records = evaluate_zoo(model or None, target or None, protocol, progress=report, shard=(index, count),
                               executor=executor, address=address, pool=pool)
    jpath, cpath = write_table(ground_truth_table(records), out)
    console.print(f"{len(records)} results ({len(records) // max(1, len(protocol.seeds))} model x target pairs) -> {cpath}, {jpath}, {out / 'ground_truth.md'}")


@app.command("targets")
@friendly
def targets_cmd(suite: bool = typer.Option(False, "--suite", help="list the suite's targets with their CV group")) -> None:
    """List the transfer targets of the zoo benchmark."""
    from ..zoo.suite import SUITE, group_of
    from ..zoo.targets import TARGETS

    table = Table(title="suite targets" if suite else "targets")
    for col in ("name", "kind", "group", "train", "test", "OOD sets", "description"):
        table.add_column(col, overflow="fold")
    for t in (SUITE if suite else TARGETS).values():
        table.add_row(t.name, t.kind, group_of(t.name), t.train, t.test, str(len(t.ood)), t.description)
    console.print(table)
