"""Shared CLI plumbing: console, logging, and turning user errors into one-line messages + exit codes."""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Any, Callable

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from ..errors import TransferLensError

console = Console(stderr=False)
err_console = Console(stderr=True)

# Shared by every command that reads data; `friendly` applies it (transferlens.data.on_bad_file) around the command.
ON_BAD_FILE = typer.Option(
    "skip", "--on-bad-file", metavar="skip|error",
    help="an unreadable image, a non-image file in a class folder, a CSV row with empty text or label: skip it "
    "(warned, counted in the records) or stop with an error",
)


def setup_logging(verbose: bool = False) -> None:
    logger = logging.getLogger("transferlens")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


def show_progress() -> bool:
    return err_console.is_terminal and os.environ.get("CI") is None


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command; a TransferLensError becomes ``error: <message>`` on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            if kwargs.get("on_bad_file") is not None:  # the --on-bad-file option of a command that reads data
                from ..data.files import on_bad_file

                with on_bad_file(kwargs["on_bad_file"]):
                    return fn(*args, **kwargs)
            return fn(*args, **kwargs)
        except TransferLensError as exc:  # the message is plain text: no markup, no :emoji: codes (URIs contain colons)
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True, emoji=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def data_skipped(*datasets: str | None) -> dict | None:
    """What the file sources among these data URIs skipped: ``{uri: {"count", "total", "examples"}}`` (count 0
    included), None when none of them reads files (builtin:, npz:)."""
    from ..data import load_data, skipped_summary

    out = {}
    for uri in datasets:
        if uri and ("imagefolder:" in uri or "csv:" in uri):  # the sources that can skip (also inside shift:)
            summary = skipped_summary(load_data(uri))
            if summary is not None:
                out[uri] = summary
    return out or None


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True, emoji=False)
    sys.exit(code)
