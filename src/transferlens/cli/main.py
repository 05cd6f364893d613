"""The ``transferlens`` command. Every command is a thin layer over one library call."""

from __future__ import annotations

import typer

from . import bench_cmd, data_cmd, models_cmd, ufm, zoo_cmd
from .assess_cmd import assess_cmd
from .common import setup_logging
from .extract_cmd import extract_cmd
from .geometry_cmd import geometry_cmd
from .probe_cmd import probe_cmd
from .rank_cmd import rank_cmd

app = typer.Typer(
    name="transferlens",
    help="Which pretrained model (and layer) transfers to your small dataset, how robust it is out of "
    "distribution, and how to fine-tune it without losing that. Start with `transferlens assess`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_cmd.app, name="data")
app.add_typer(models_cmd.app, name="models")
app.add_typer(zoo_cmd.app, name="zoo")
app.add_typer(bench_cmd.app, name="bench")
app.command("layers")(models_cmd.layers_cmd)
app.command("extract")(extract_cmd)
app.command("assess")(assess_cmd)
app.command("geometry")(geometry_cmd)
app.command("rank")(rank_cmd)
app.command("probe")(probe_cmd)
from .report_cmd import report_cmd; app.command("report")(report_cmd)  # noqa: E402, E702 (one line: main.py is shared)
from .finetune_cmd import finetune_cmd; app.command("finetune")(finetune_cmd)  # noqa: E402, E702 (one line: main.py is shared)
ufm.register(app)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="more log output")) -> None:
    setup_logging(verbose)


if __name__ == "__main__":
    app()
