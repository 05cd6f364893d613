"""``transferlens models list`` and ``transferlens layers MODEL``."""

from __future__ import annotations

import typer
from rich.table import Table

from .common import console, friendly

app = typer.Typer(help="Model sources.", no_args_is_help=True)


@app.command("list")
@friendly
def list_cmd() -> None:
    """List the model URI schemes and the models available offline on this machine."""
    from ..models import list_model_sources

    table = Table(title="model sources")
    table.add_column("uri", overflow="fold")
    table.add_column("description", overflow="fold")
    for row in list_model_sources():
        table.add_row(row["uri"], row["description"])
    console.print(table)


@friendly
def layers_cmd(
    model: str = typer.Argument(..., help="a model URI, e.g. timm:resnet18?pretrained=false"),
    all_modules: bool = typer.Option(False, "--all-modules", help="list every named module, not only the default taps"),
    pool: str = typer.Option("auto", help="pooling used to report the stored dimension"),
    size: int = typer.Option(None, help="input resolution for image models"),
) -> None:
    """List the tappable layers of MODEL with their output shapes and pooled dimensions."""
    import torch

    from ..features import _load_with_size
    from ..models import resolve_model
    from ..models.taps import check_pool, pool_output

    check_pool(pool)
    ref = resolve_model(model)
    loaded = _load_with_size(ref, size)
    taps = loaded.layer_names()
    names = loaded.all_module_names() if all_modules else taps
    shapes: dict[str, tuple] = {}
    pooled: dict[str, int] = {}
    if hasattr(loaded, "tapped"):
        modules = dict(loaded.module.named_modules())
        handles = []

        def hook_for(name):
            def hook(_m, _i, out):
                t = out if isinstance(out, torch.Tensor) else next((o for o in (out if isinstance(out, (tuple, list)) else []) if isinstance(o, torch.Tensor)), None)
                if t is not None:
                    shapes[name] = tuple(t.shape[1:])
                    pooled[name] = int(pool_output(t, pool, loaded.has_cls_token).shape[1])
            return hook

        for n in names:
            handles.append(modules[n].register_forward_hook(hook_for(n)))
        try:
            loaded.forward(loaded.example_input(2))
        finally:
            for h in handles:
                h.remove()
    else:
        out = loaded.forward_layers(loaded.example_input(2), [n for n in names], pool)
        for n, t in out.items():
            pooled[n] = int(t.shape[1])
    table = Table(title=f"layers of {ref.uri}" + (f" at {loaded.spec.size}x{loaded.spec.size}" if getattr(loaded, "spec", None) else ""))
    table.add_column("#", justify="right")
    table.add_column("layer")
    table.add_column("default tap")
    table.add_column("output shape")
    table.add_column(f"pooled ({pool})", justify="right")
    for i, n in enumerate(names):
        table.add_row(str(i), n, "yes" if n in taps else "", str(shapes.get(n, "")), str(pooled.get(n, "-")))
    console.print(table)
