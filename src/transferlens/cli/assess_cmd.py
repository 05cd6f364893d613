"""``transferlens assess``: the main job, from candidates and a small labelled dataset to a decision report."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from ..defaults import DEFAULT_TARGET, DEFAULT_TOP_K
from .common import DEVICE, ON_BAD_FILE, PRECISION, console, err_console, friendly, show_progress

_STYLE = {"ok": "green", "cached": "cyan", "failed": "red", "skipped": "red", "unavailable": "yellow"}


def _printer(progress: bool):
    def on_event(name: str, status: str, detail: str) -> None:
        if status == "start":
            if progress:
                err_console.print(f"[dim]… {name}[/]", highlight=False)
            return
        style = _STYLE.get(status, "white")
        err_console.print(f"[{style}]{status:>11}[/] {name}  [dim]{detail}[/]", highlight=False, soft_wrap=True)

    return on_event


def _print_field(run: dict) -> None:
    """One line: the recommended model's estimated accuracy on the --field data, each estimate with its expected error."""
    from ..report.field import field_line

    line = field_line(run)
    if line:
        console.print(line, highlight=False, soft_wrap=True)


@friendly
def assess_cmd(
    data: str = typer.Option(None, "--data", "-d", help=f"your labelled data URI (default: the built-in '{DEFAULT_TARGET}' target)"),
    model: list[str] = typer.Option(None, "--model", "-m", help="candidate model URI, repeatable (default: the real ImageNet "
                                    "backbones installed here, their random-init twins and three zoo models; for text data "
                                    "the packaged sentence encoders)"),
    test: str = typer.Option(None, "--test", help="ID test data URI (default: a stratified 25% of --data)"),
    ood: list[str] = typer.Option(None, "--ood", help="OOD data URI with the ID classes, repeatable"),
    target: str = typer.Option(None, "--target", help="a built-in target instead of --data (digits, greek, fashion-novel, ...)"),
    top: int = typer.Option(DEFAULT_TOP_K, "--top", help="how many of the best-ranked candidates to probe layer by layer"),
    scores: str = typer.Option(None, "--scores", help="comma-separated transferability scores (default: all but task_relatedness)"),
    finetune: bool = typer.Option(False, "--finetune", help="also fine-tune the winner briefly, FTP vs plain, and compare ID/OOD"),
    finetune_epochs: int = typer.Option(10, "--finetune-epochs", help="epochs of each --finetune run"),
    gc_samples: int = typer.Option(None, "--gc-samples", help="inputs for the geometric-complexity estimate per model (0: skip "
                                   "GC; default 64 for zoo-only runs, 32 with real backbones)"),
    pool: str = typer.Option(None, help="pooling of convolutional maps for the layer-wise stages (default: avg2x2 when every "
                             "candidate is a zoo model, else avg)"),
    seed: int = typer.Option(0, help="seed of splits, episodes, probes and fine-tuning"),
    threads: int = typer.Option(1, help="torch and BLAS threads (1 is fastest for the small zoo models on a shared "
                                "machine; 0 = leave as is)"),
    out: Path = typer.Option(Path("transferlens-out"), "--out", "-o", help="run directory: stage records and report.html"),
    fresh: bool = typer.Option(False, "--fresh", help="recompute every stage instead of reusing unchanged records"),
    field: str = typer.Option(None, "--field", help="unlabelled deployment data URI (labels ignored if present): estimate each "
                              "candidate's accuracy there (ATC, DoC, agreement-on-the-line) with its measured error"),
    budget: float = typer.Option(None, "--budget", help="MINUTES: also fine-tune the scores' top candidates briefly by "
                                 "successive halving within this wall-clock budget and report what was measured (image "
                                 "models; docs/validity.md)"),
    budget_top: int = typer.Option(4, "--budget-top", help="how many of the best-ranked candidates --budget fine-tunes"),
    on_bad_file: str = ON_BAD_FILE,
    device: str = DEVICE,
    precision: str = PRECISION,
) -> None:
    """Which candidate model (and layer) transfers to your data, how robust it is OOD; writes an HTML report.

    With no arguments: crops of 10 real photographs (30 labels per class; OOD: noise, blur, low contrast, low
    resolution) against the real ImageNet backbones installed here (at 128 px), their random-init twins and three
    zoo models.
    """
    from ..assess import assess
    from .assess_summary import print_summary

    progress = show_progress()
    log = logging.getLogger("transferlens")
    level = log.level
    if level > logging.DEBUG:  # without --verbose, the stage lines replace extract's per-file cache messages
        log.setLevel(logging.WARNING)
    try:
        run = assess(list(model) if model else None, data, out, test=test, ood=list(ood) if ood else None, target=target,
                     scores=[s.strip() for s in scores.split(",") if s.strip()] if scores else None, top_k=top, pool=pool,
                     seed=seed, finetune=finetune, finetune_epochs=finetune_epochs, gc_samples=gc_samples, reuse=not fresh, progress=progress,
                     on_event=_printer(progress), threads=threads or None, field=field, budget=budget,
                     budget_top=budget_top)
    finally:
        log.setLevel(level)
    print_summary(run, console)
    _print_field(run)
    if run.get("report_error"):
        err_console.print(f"[bold red]error:[/] the report could not be written: {run['report_error']}", highlight=False)
        raise typer.Exit(1)
    if not run["assess"]["decision"].get("model"):
        raise typer.Exit(1)
