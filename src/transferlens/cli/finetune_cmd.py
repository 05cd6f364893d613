"""``transferlens finetune``: robust fine-tuning of one model on a small labelled set, ID and OOD accuracy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from .common import DEVICE, ON_BAD_FILE, PRECISION, console, friendly, show_progress


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


@friendly
def finetune_cmd(
    model: str = typer.Option(..., "--model", "-m", help="model URI, e.g. zoo:vgg-g50 or timm:resnet18?pretrained=false&size=32"),
    data: str = typer.Option(..., "--data", "-d", help="train data URI, e.g. builtin:digits?split=train&n_per_class=10"),
    val: str = typer.Option(None, "--val", help="validation data URI (default: a stratified 20% split of --data)"),
    test: str = typer.Option(None, "--test", help="ID test data URI"),
    ood: list[str] = typer.Option([], "--ood", help="OOD data URI with (a subset of) the train classes; repeatable"),
    method: str = typer.Option("ftp", "--method", help="ftp | tpgm | l2sp | lpft | wiseft | plain"),
    epochs: int = typer.Option(10, "--epochs", help="training epochs"),
    lr: float = typer.Option(None, "--lr", help="AdamW learning rate (default: 1e-3; lpft 3e-4)"),
    batch_size: int = typer.Option(32, "--batch-size", help="global batch size (split over torchrun processes)"),
    seed: int = typer.Option(0, "--seed", help="seed of the head, the validation split and the batch order"),
    head: str = typer.Option("linear", "--head", help="new classifier: linear | etf (fixed simplex ETF)"),
    option: list[str] = typer.Option([], "--set", help="method option key=value, e.g. --set k=0.5 (ftp), "
                                     "--set alpha=0.1 (l2sp), --set alphas=0,0.5,1 (wiseft); repeatable"),
    threads: int = typer.Option(None, "--threads", help="torch threads (default: unchanged; torchrun: cpus / processes)"),
    out: Path = typer.Option(None, "--out", "-o", help="directory for record.json, model.safetensors and the checkpoint"),
    no_resume: bool = typer.Option(False, "--no-resume", help="start over even if --out holds a checkpoint of this run"),
    on_bad_file: str = ON_BAD_FILE,
    device: str = DEVICE,
    precision: str = PRECISION,
) -> None:
    """Fine-tune a model with a robust method; per-epoch loss and validation accuracy, ID test and OOD accuracy."""
    from ..finetune.loop import run_finetune
    from ..finetune.methods import method_options, parse_option
    from ..io import check_writable_dir

    method_options(method, {})  # an unknown method fails here, before anything is loaded
    if out is not None:
        check_writable_dir(out)
    kwargs = dict(parse_option(method, text) for text in option)
    main = int(os.environ.get("RANK", "0")) == 0
    rec = run_finetune(model, data, method, val=val, test=test, ood=ood, epochs=epochs, lr=lr, batch_size=batch_size,
                       seed=seed, head=head, threads=threads, out_dir=out, resume=not no_resume,
                       progress=main and show_progress(), **kwargs)
    if main:
        _summary(rec, out)


def _summary(rec: dict[str, Any], out: Path | None) -> None:
    hp, d = rec["hyperparameters"], rec["data"]
    console.print(f"[bold]{rec['method']}[/] on {rec['model']}: {d['n_train']} train, {d['n_val']} val, {d['n_classes']} classes; "
                  f"{hp['epochs']} epochs, lr {hp['lr']:g}, batch {hp['batch_size']}, {rec['head']} head, seed {rec['seed']}", highlight=False)
    history = Table(title="training")
    for col in ("epoch", "train loss", "val acc %"):
        history.add_column(col, justify="right")
    for h in rec["history"]:
        history.add_row(str(h["epoch"]), f"{h['train_loss']:.4f}", _pct(h["val_accuracy"]))
    console.print(history)
    acc = rec["accuracy"]
    table = Table(title="final model" + (f" (alpha {rec['wiseft']['chosen_alpha']:g})" if rec["wiseft"] else ""))
    table.add_column("set")
    table.add_column("accuracy %", justify="right")
    if rec["linear_probe"] is not None:
        table.add_column("LP head only %", justify="right")
    lp = rec["linear_probe"] or {}
    rows = [("validation", acc["val"], lp.get("val_accuracy")), ("ID test", acc["test"], lp.get("test_accuracy"))]
    rows += [(f"OOD {uri}", v, None) for uri, v in acc["ood"].items()]
    if acc["ood_mean"] is not None:
        rows.append(("OOD mean", acc["ood_mean"], None))
    for name, v, v_lp in rows:
        table.add_row(name, _pct(v), *([_pct(v_lp)] if rec["linear_probe"] is not None else []), style="bold" if name == "ID test" else None)
    console.print(table)
    if rec["wiseft"]:
        _wiseft_table(rec)
    cost = rec["cost"]
    console.print(f"{cost['seconds']:.1f} s ({cost['train_seconds']:.1f} s training, {cost['steps']} steps), peak RSS "
                  f"{cost['peak_rss_mib']:.0f} MiB, {cost['threads']} thread(s) x {cost['world_size']} process(es)", highlight=False)
    for note in rec["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if out is not None:
        console.print(f"wrote {out / 'record.json'} and {out / 'model.safetensors'}")


def _wiseft_table(rec: dict[str, Any]) -> None:
    w = rec["wiseft"]
    table = Table(title="WiSE-FT sweep", caption="(1 - alpha) (pretrained + LP head) + alpha fine-tuned; alpha chosen on val")
    names = [n for n in w["accuracy"] if n not in ("val", "test")]
    for col in ("alpha", "val %", "test %", *(["OOD mean %"] if names else [])):
        table.add_column(col, justify="right")
    for i, alpha in enumerate(w["alphas"]):
        ood = [w["accuracy"][n][i] for n in names]
        test = w["accuracy"]["test"][i] if "test" in w["accuracy"] else None
        table.add_row(f"{alpha:g}", _pct(w["accuracy"]["val"][i]), _pct(test), *([_pct(sum(ood) / len(ood))] if names else []),
                      style="bold green" if alpha == w["chosen_alpha"] else None)
    console.print(table)
