"""``transferlens geometry``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..io import check_writable_dir, write_record
from .common import DEVICE, ON_BAD_FILE, PRECISION, console, data_skipped, friendly, show_progress


@friendly
def geometry_cmd(
    model: str = typer.Option(..., "--model", "-m", help="model URI"),
    data: str = typer.Option(..., "--data", "-d", help="labelled data URI, e.g. builtin:digits?n_per_class=50"),
    layers: str = typer.Option("all", help="layers to analyse"),
    pool: str = typer.Option("auto", help="pooling inside the hooks"),
    size: int = typer.Option(None, help="input resolution for image models"),
    shots: int = typer.Option(5, help="k in the n-way k-shot nearest-class-centre evaluation"),
    ways: int = typer.Option(5, help="n in the n-way k-shot evaluation"),
    episodes: int = typer.Option(200, help="few-shot episodes"),
    gc_samples: int = typer.Option(64, help="inputs for the geometric-complexity estimate (0: skip GC)"),
    gc_probes: int = typer.Option(8, help="random projections per input for GC"),
    seed: int = typer.Option(0, help="seed of episodes, GC samples and probes"),
    out: Path = typer.Option(Path("transferlens-out"), "--out", "-o", help="directory for geometry.json"),
    on_bad_file: str = ON_BAD_FILE,
    device: str = DEVICE,
    precision: str = PRECISION,
) -> None:
    """Neural collapse, ranks, few-shot NCC accuracy and geometric complexity of every layer."""
    from ..geometry.report import geometry_report

    check_writable_dir(out)
    record = geometry_report(model, data, layers, pool=pool, n_way=ways, k_shot=shots, n_episodes=episodes,
                             gc_samples=gc_samples, gc_probes=gc_probes, seed=seed, size=size, progress=show_progress())
    table = Table(title=f"geometry of {record['model']} on {record['data']} ({record['n_samples']} samples, {record['n_classes']} classes)")
    cols = [("layer", "layer", "{}"), ("dim", "dim", "{}"), ("NC1", "nc1", "{:.3g}"), ("CDNV", "cdnv", "{:.3g}"),
            ("rank", "numerical_rank", "{:.0f}"), ("RankMe", "rankme", "{:.1f}"),
            (f"{record['fewshot']['n_way']}w{shots}s NCC", "fewshot_accuracy", "{:.3f}"), ("GC", "gc", "{:.3g}")]
    for title, _, _ in cols:
        table.add_column(title, justify="left" if title == "layer" else "right")
    for row in record["layers"]:
        table.add_row(*[fmt.format(row[key]) if row.get(key) is not None else "-" for _, key, fmt in cols])
    console.print(table)
    path = write_record(out / "geometry.json", "geometry", {**record, "data_skipped": data_skipped(data)})
    console.print(f"record: {path}")
