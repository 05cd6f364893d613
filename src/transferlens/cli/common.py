"""Shared CLI plumbing: console, logging, and turning user errors into one-line messages + exit codes."""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Any, Callable

import typer
from rich.console import Console, ConsoleDimensions
from rich.logging import RichHandler
from rich.markup import escape

from ..errors import TransferLensError
from .preflight import check_paths

class _Console(Console):
    """Off a terminal (a pipe, a log file, CI) and without ``COLUMNS``, wide enough that tables keep their natural
    width: a model name is never folded or cut for want of 80 columns."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal and not self._environ.get("COLUMNS", "").isdigit():
            return ConsoleDimensions(max(size.width, 400), size.height)
        return size


console = _Console(stderr=False)
err_console = Console(stderr=True)

# Shared by every command that reads data; `friendly` applies it (transferlens.data.on_bad_file) around the command.
ON_BAD_FILE = typer.Option(
    "skip", "--on-bad-file", metavar="skip|error",
    help="an unreadable image, a non-image file in a class folder, a CSV row with empty text or label: skip it "
    "(warned, counted in the records) or stop with an error",
)


# --device / --precision of every command that runs a model; `friendly` checks them first (a missing GPU fails in
# milliseconds, before any data or model loads) and runs the command inside transferlens.device.using.
DEVICE = typer.Option("auto", "--device", metavar="auto|cpu|cuda[:N]|mps",
                      help="where models run: auto (the GPU when present, else the CPU), cpu, cuda, cuda:N or mps")
PRECISION = typer.Option("fp32", "--precision", metavar="fp32|bf16|fp16",
                         help="autocast precision of forward passes (features, weights and optimizer state stay float32)")


def _no_gpu_check(device: str) -> None:
    """``--device cuda[:N]`` on a machine without any NVIDIA device node fails here, before torch is imported."""
    import glob

    spec = device.strip().lower()
    if spec.startswith("cuda") and not glob.glob("/dev/nvidia[0-9]*") and not os.path.exists("/dev/dxg"):
        from ..errors import UsageError

        raise UsageError(f"--device {spec}: this machine has no NVIDIA GPU (no /dev/nvidia* device); use --device cpu or auto.")


def _in_device_scope(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` inside ``transferlens.device.using(device, precision)`` when it takes those options."""

    @functools.wraps(fn)
    def scoped(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("device") is None and kwargs.get("precision") is None:
            return fn(*args, **kwargs)
        from ..device import using  # imports torch (seconds on a loaded machine)

        with using(kwargs.get("device"), kwargs.get("precision")):
            return fn(*args, **kwargs)

    return scoped


def setup_logging(verbose: bool = False) -> None:
    logger = logging.getLogger("transferlens")
    if not any(isinstance(h, (RichHandler, _PlainHandler)) for h in logger.handlers):
        if err_console.is_terminal:
            handler: logging.Handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
            handler.setFormatter(logging.Formatter("%(message)s"))
        else:  # a pipe, a log file, CI: one unwrapped line per record
            handler = _PlainHandler()
        logger.addHandler(handler)
    from ..progress import quiet_hub_progress

    quiet_hub_progress()  # no tqdm / huggingface_hub / transformers bars or chatter inside our commands
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


class _PlainHandler(logging.StreamHandler):
    """``LEVEL    message`` lines on the current ``sys.stderr`` (looked up per record, as rich's console does)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)-8s %(message)s"))

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def show_progress() -> bool:
    """Whether commands report progress: a live bar on a terminal, periodic log lines elsewhere (see
    :mod:`transferlens.progress`); ``TRANSFERLENS_PROGRESS=0`` turns both off."""
    return os.environ.get("TRANSFERLENS_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command; a TransferLensError becomes ``error: <message>`` on stderr and its exit code."""
    fn = _in_device_scope(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            _no_gpu_check(str(kwargs.get("device") or "auto"))  # before anything imports torch
            check_paths(kwargs, fn.__name__)  # missing data / model files and unwritable --out, before anything imports torch
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
