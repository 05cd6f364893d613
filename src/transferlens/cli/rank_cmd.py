"""``transferlens rank``."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import typer
from rich.table import Table

from ..errors import TransferLensError, UsageError
from ..io import atomic_write_text, check_writable_dir, write_record
from ..report.naming import combined_word
from .common import DEVICE, ON_BAD_FILE, PRECISION, console, data_skipped, friendly, show_progress

log = logging.getLogger("transferlens")


def _pca(value: str | None):
    if value is None or value == "none":
        return None
    if value == "auto":
        return "auto"
    return float(value) if "." in value else int(value)


def _why_unscored(row: dict) -> str:
    """Why a model row has no combined rank: its error, else its first failed or skipped score."""
    failures = [m for msgs in row["warnings"].values() for m in msgs if m.startswith(("failed", "skipped"))]
    return row["error"] or (failures or ["no score of the combined ranking"])[0]


@friendly
def rank_cmd(
    data: str = typer.Option(..., "--data", "-d", help="target data URI (labelled unless --no-labels)"),
    model: list[str] = typer.Option(..., "--model", "-m", help="candidate model URI (repeatable)"),
    scores: str = typer.Option(None, help="comma-separated scores (default: all closed-form ones; see docs)"),
    layer: str = typer.Option("penultimate", help="penultimate | last | a layer name"),
    no_labels: bool = typer.Option(False, "--no-labels", help="score without target labels (label-free scores only)"),
    pca_dim: str = typer.Option(None, help="reduce features by PCA first: an int, a variance fraction, or auto"),
    reference_data: str = typer.Option(None, help="labelled reference task for task_relatedness (zoo models bring their own)"),
    seed: int = typer.Option(0, help="seed of the stochastic scores"),
    budget: float = typer.Option(None, "--budget", help="MINUTES: then fine-tune the shortlist briefly by successive halving within "
                                 "this wall-clock budget and recommend from measured validation accuracy (image models; docs/validity.md)"),
    budget_top: int = typer.Option(4, "--budget-top", help="size of the shortlist that --budget fine-tunes (the top of the ranking)"),
    out: Path = typer.Option(Path("transferlens-out"), "--out", "-o", help="directory for rank.json and rank.csv"),
    executor: str = typer.Option("local", help="local (in this process) | ray (one Ray task per model)"),
    address: str = typer.Option(None, help="Ray cluster for --executor ray: auto, or ray://host:10001 (default: start a local Ray runtime)"),
    on_bad_file: str = ON_BAD_FILE,
    device: str = DEVICE,
    precision: str = PRECISION,
) -> None:
    """Rank candidate models on a target dataset with transferability scores."""
    from ..executors import check_executor
    from ..ranking import rank_models

    check_executor(executor, address)
    check_writable_dir(out)
    if budget is not None and (budget <= 0 or budget_top < 2):
        raise UsageError(f"--budget needs a positive number of minutes and --budget-top >= 2, got {budget} and {budget_top}.")
    record = rank_models(list(model), data, scores=scores.split(",") if scores else None, layer=layer,
                         use_labels=not no_labels, pca_dim=_pca(pca_dim), progress=show_progress(),
                         reference_data=reference_data, seed=seed, executor=executor, address=address)
    if record["recommended"] is None:  # nothing to rank: an error, and no rank.json that looks like a result
        reasons = "; ".join(f"{r['model']}: {_why_unscored(r)}" for r in record["models"])
        raise TransferLensError(f"no candidate could be scored on {record['data']}: {reasons}")
    names = record["scores"]
    table = Table(title=f"ranking on {record['data']} ({record['n_samples']} samples, {record['n_classes']} classes)")
    table.add_column("#", justify="right")
    table.add_column("model", no_wrap=True)  # a model name is never folded or cut
    table.add_column("combined\n" + combined_word(record), justify="right")
    for n in names:
        table.add_column(n + ("*" if n in record["zoo_relative"] else ""), justify="right")
    by_model = {r["model"]: r for r in record["models"]}
    for i, m in enumerate(record["ranking"], 1):
        r = by_model[m]
        cells = [f"{r['scores'][n]:.4g}" if n in r["scores"] else "-" for n in names]
        table.add_row(str(i), m, f"{r['combined_rank']:.2f}" if r["combined_rank"] is not None else "-", *cells)
    for r in record["models"]:
        if r["error"]:
            table.add_row("!", r["model"], "[red]failed[/]", *([""] * len(names)))
    console.print(table)
    if record["zoo_relative"]:
        console.print("* zoo-relative: only meaningful compared across these models.")
    n_warn = 0
    for r in record["models"]:
        if r["error"]:
            console.print(f"[red]{r['model']}[/]: {r['error']}")
        for n, msgs in r["warnings"].items():
            for msg in msgs:
                n_warn += 1
                log.debug("%s %s: %s", r["model"], n, msg)
    if n_warn:
        console.print(f"[yellow]{n_warn} reliability warning(s)[/] (e.g. N <= D): see rank.json, or run `transferlens -v rank ...`.")
    console.print(f"recommended: [bold]{record['recommended']}[/] ({combined_word(record)} over {', '.join(record['combined']['scores'])})")
    if budget is not None:
        from ..budget import rank_budget

        record["budget"] = halving = rank_budget(record, data, budget, top=budget_top)
        for rnd in halving["rounds"]:
            accs = ", ".join(f"{m} {a:.3f}" for m, a in sorted(rnd["val_accuracy"].items(), key=lambda kv: -kv[1]))
            console.print(f"halving round {rnd['round']}: {rnd['steps']} steps on {rnd['subset']} samples, {rnd['seconds']:.0f} s"
                          f"{'' if rnd['complete'] else ' (cut by the budget)'}: val acc {accs}")
        if halving["recommended"] is None:
            console.print(f"[yellow]the budget ({budget} min) ran out before any candidate was fine-tuned[/]: the recommendation "
                          "stays the scores'; give --budget more minutes.")
        else:
            console.print(f"measured recommendation: [bold]{halving['recommended']}[/] (validation accuracy "
                          f"{halving['recommended_val_accuracy']:.3f} after {halving['seconds']:.0f} s of {halving['budget_seconds']:.0f} s)")
    write_record(out / "rank.json", "rank", {**record, "data_skipped": data_skipped(data)})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "layer", "combined_rank", *names, *[f"seconds_{n}" for n in names], "error"])
    for r in record["models"]:
        w.writerow([r["model"], r["layer"], r["combined_rank"], *[r["scores"].get(n, "") for n in names],
                    *[r["seconds"].get(n, "") for n in names], r["error"] or ""])
    atomic_write_text(out / "rank.csv", buf.getvalue())
    console.print(f"records: {out / 'rank.json'}, {out / 'rank.csv'}")
