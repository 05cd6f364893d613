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
            return fn(*args, **kwargs)
        except TransferLensError as exc:  # the message is plain text: no markup, no :emoji: codes (URIs contain colons)
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True, emoji=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True, emoji=False)
    sys.exit(code)
