"""``transferlens bench scores``: which transferability score predicts the zoo's measured transfer."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from ..errors import UsageError
from ..progress import progress_bar
from .common import console, friendly, show_progress

app = typer.Typer(help="Benchmarks on the embedded zoo.", no_args_is_help=True)


@app.command("scores")
@friendly
def scores_cmd(
    ground_truth: Path = typer.Option(Path("zoo-ground-truth/ground_truth.json"), "--ground-truth", help="the table of `transferlens zoo evaluate`"),
    score: list[str] = typer.Option(None, "--score", help="score name (repeatable; default: every score and both task-relatedness variants)"),
    target: list[str] = typer.Option(None, "--target", help="target name (repeatable; default: every target in the ground truth)"),
    out: Path = typer.Option(Path("zoo-ground-truth"), "--out", help="folder for bench_scores.json / .md"),
    cache: Path = typer.Option(None, "--cache", help="keep each target's scores here (default: OUT/score-cache); processes given "
                               "disjoint --target sets can share it, and a last run over all targets assembles the table"),
    executor: str = typer.Option("local", help="local (in this process) | ray (one Ray task per target)"),
    address: str = typer.Option(None, help="Ray cluster for --executor ray: auto, or ray://host:10001 (default: a local Ray runtime)"),
    suite: bool = typer.Option(False, "--suite", help="default targets: the suite's (zoo/suite.py), and choose rank's default rule by "
                               "nested grouped leave-one-group-out (selection.md)"),
) -> None:
    """Weighted Kendall tau, Kendall tau, Pearson and top-1 regret of every score against the ground truth."""
    from ..executors import check_executor
    from ..zoo.bench import markdown, run_bench, write_bench

    check_executor(executor, address)

    try:
        table = json.loads(ground_truth.read_text())
    except OSError:
        raise UsageError(f"no ground truth at {ground_truth}; run `transferlens zoo evaluate` first (or pass --ground-truth).") from None
    except ValueError as exc:
        raise UsageError(f"{ground_truth} is not a ground-truth table ({exc}); re-run `transferlens zoo evaluate`.") from None
    if table.get("format", "").split("/")[0] != "transferlens.ground-truth":
        raise UsageError(f"{ground_truth} is not a ground-truth table of `transferlens zoo evaluate`.")
    with progress_bar("bench", TextColumn("[bold]bench[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, enabled=show_progress(), unit="targets") as bar:
        task = bar.add_task("scoring", total=None)
        result = run_bench(table, score or None, target or None, progress=lambda t, i, n: bar.update(task, description=t, completed=i, total=n),
                           cache_dir=cache or out / "score-cache", executor=executor, address=address, suite=suite)
    jpath, mpath = write_bench(result, out)
    console.print(markdown(result))
    if result.get("selection"):
        from ..zoo.selection import markdown as selection_markdown

        console.print(selection_markdown(result["selection"]))
        mpath = f"{mpath}, {out / 'selection.md'}"
    console.print(f"-> {mpath}, {jpath}")
