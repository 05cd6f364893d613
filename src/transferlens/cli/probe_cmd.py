"""``transferlens probe``: layer-wise ID/OOD linear probes, the tunnel, ranks, NC1 and a recommended layer."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table

from ..errors import UsageError
from .common import DEVICE, ON_BAD_FILE, PRECISION, console, data_skipped, friendly, show_progress

PROBES = ("ridge", "lda", "logistic", "adamw")  # = transferlens.probe.analysis.PROBES (not imported: keeps start-up fast)


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _acc(v: float | None, at_chance: bool | None = None, collapsed: bool | None = None) -> str:
    """An accuracy as the recommendation quotes it (percent, one decimal), * when at chance, † when collapsed."""
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" + ("*" if at_chance else "") + ("†" if collapsed else "")


@friendly
def probe_cmd(
    model: str = typer.Option(..., "--model", "-m", help="model URI, e.g. timm:resnet18?pretrained=false&size=32"),
    data: str = typer.Option(..., "--data", "-d", help="ID data URI (split into train/test unless --test is given)"),
    ood: list[str] = typer.Option([], "--ood", help="OOD data URI with the ID classes; repeat for several sets"),
    test: str = typer.Option(None, "--test", help="separate ID test data URI (default: a stratified split of --data)"),
    layers: str = typer.Option("all", help="all | penultimate | last | comma-separated names or positions"),
    pool: str = typer.Option("avg2x2", help="pooling inside the hooks: avg2x2 (paper), avg, max, cls, mean, auto"),
    probe: str = typer.Option("ridge", help=f"probe: {' | '.join(PROBES)} (adamw = the paper's reference, slow)"),
    test_fraction: float = typer.Option(0.25, help="ID test share when --test is not given"),
    val_fraction: float = typer.Option(0.1, help="share of ID train held out to choose the regulariser / epoch"),
    seed: int = typer.Option(0, help="seed of the splits (and of the adamw probe)"),
    size: int = typer.Option(None, help="input resolution for image models (default: the model's own)"),
    batch_size: int = typer.Option(64, help="samples per forward pass"),
    threads: int = typer.Option(1, help="BLAS threads for the probes (1 is fastest on a shared machine; 0 = leave as is)"),
    out: Path = typer.Option(None, "--out", "-o", help="directory for probe.json and probe.png"),
    no_cache: bool = typer.Option(False, "--no-cache", help="recompute features even if cached"),
    on_bad_file: str = ON_BAD_FILE,
    device: str = DEVICE,
    precision: str = PRECISION,
) -> None:
    """Probe every layer on ID and OOD data: accuracies, % OOD retained, Pearson, alignment, tunnel, rank, NC1."""
    from ..io import check_writable_dir, write_record
    from ..probe.analysis import probe_layers

    if probe not in PROBES:
        raise UsageError(f"--probe must be one of {', '.join(PROBES)}, got {probe!r}.")
    if not 0 < test_fraction < 1 or not 0 < val_fraction < 1:
        raise UsageError("--test-fraction and --val-fraction must be in (0, 1).")
    if out is not None:
        check_writable_dir(out)
    res = probe_layers(model, data, ood, layers, id_test=test, test_fraction=test_fraction, pool=pool, size=size,
                       probe=probe, val_fraction=val_fraction, seed=seed, blas_threads=threads or None, batch_size=batch_size, cache=not no_cache,
                       progress=show_progress())
    chance = res.chance.get("id", 1 / len(res.class_names))
    table = Table(title=f"{res.probe} probes of {model}: {res.n_train} ID train, {res.n_test} ID test, "
                        f"{len(res.class_names)} classes (chance {100 * chance:.1f}%)")
    table.add_column("#", justify="right")
    table.add_column("layer")
    table.add_column("dim", justify="right")
    table.add_column("ID", justify="right")
    for i in range(len(res.ood_data)):
        table.add_column(f"OOD{i + 1}", justify="right")
    if res.ood_data:
        table.add_column("OOD mean", justify="right")
    table.add_column("rank", justify="right")
    table.add_column("RankMe", justify="right")
    table.add_column("NC1", justify="right")
    mean = res.ood_mean
    marked = False
    for i, name in enumerate(res.layers):
        c = res.checks[i] if i < len(res.checks) else {"id": None, "ood": {}, "ood_mean_at_chance": None}
        cid, cood = c["id"], c["ood"]
        row = [str(i), name, str(res.dims[i]), _acc(res.id_accuracy[i], cid and cid.at_chance, cid and cid.collapsed)]
        row += [_acc(res.ood_accuracy[u][i], u in cood and cood[u].at_chance, u in cood and cood[u].collapsed)
                for u in res.ood_data]
        if mean is not None:
            row.append(_acc(mean[i], c["ood_mean_at_chance"]))
        marked = marked or any(("*" in x or "†" in x) for x in row[3:])
        row += [_fmt(res.numerical_rank[i], ".0f"), _fmt(res.rankme[i], ".1f"), _fmt(res.nc1[i], ".3g")]
        style = "bold green" if i == res.recommendation.index else None
        table.add_row(*row, style=style)
    console.print(table)
    if marked:
        console.print(f"* within noise of chance (one-sided binomial test, alpha {res.chance.get('alpha', 0.05)}); "
                      f"† collapsed: one class takes >= {100 * res.chance.get('collapse_share', 0.8):.0f}% of the predictions",
                      highlight=False)
    for i, uri in enumerate(res.ood_data):
        m = res.tunnel.per_set[uri]
        if m.pct_retained is None:
            console.print(f"OOD{i + 1} {uri}: [yellow]at chance at every layer[/] (best {100 * m.peak_accuracy:.1f}% vs chance "
                          f"{100 * res.chance['ood'][uri]:.1f}%): no % retained, no tunnel", highlight=False)
            continue
        start = "none" if m.start is None else f"{res.layers[m.start]} (#{m.start}, length {m.length})"
        console.print(f"OOD{i + 1} {uri}: {m.pct_retained:.1f}% retained ({m.strength}), Pearson {_fmt(m.pearson, '.2f')}, "
                      f"alignment {m.alignment:.3f}, tunnel start {start}", highlight=False)
    if res.tunnel.mean is not None:
        m = res.tunnel.mean
        if m.pct_retained is None:
            console.print("mean OOD curve: [yellow]at chance at every layer[/]: no % retained, no tunnel", highlight=False)
        else:
            start = "none" if m.start is None else f"{res.layers[m.start]} (#{m.start}, length {m.length})"
            console.print(f"mean OOD curve: {m.pct_retained:.1f}% retained ({m.strength}), Pearson {_fmt(m.pearson, '.2f')}, "
                          f"tunnel start {start}", highlight=False)
    rec = res.recommendation
    console.print(f"[bold]recommended layer ({rec.criterion_text}):[/] {rec.layer}: {rec.reason}", highlight=False)
    for note in res.warnings[:5]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if len(res.warnings) > 5:
        console.print(f"[yellow]note:[/] ... and {len(res.warnings) - 5} more in the record", highlight=False)
    if out is not None:
        write_record(out / "probe.json", "probe", {**res.to_dict(), "data_skipped": data_skipped(data, test, *ood)})
        res.plot(out / "probe.png")
        console.print(f"wrote {out / 'probe.json'} and {out / 'probe.png'}")
