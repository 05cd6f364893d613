"""Progress of long loops: a live rich bar on a terminal, plain periodic log lines everywhere else.

On a terminal (stderr is a TTY and ``CI`` is unset) :func:`progress_bar` returns a ``rich.progress.Progress``.
Otherwise (a pipe, a log file, CI) it returns a :class:`LogProgress` with the same calls (``add_task``,
``advance``, ``update``) that logs one line per task at most every ``TRANSFERLENS_PROGRESS_INTERVAL``
seconds (default 10) on the ``transferlens.progress`` logger, e.g.::

    extract: zoo:vgg-g50 on builtin:digits 640/2000 images (32%), 12 s

and a last line when a task that logged finishes. That logger is at INFO on its own, so a command that
quiets ``transferlens`` to WARNING still shows progress. :func:`quiet_hub_progress` keeps the progress
bars and advisory chatter of tqdm, huggingface_hub and transformers out of the output (called once by the
CLI, before those libraries are imported).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

log = logging.getLogger("transferlens.progress")
log.setLevel(logging.INFO)

DEFAULT_INTERVAL = 10.0


def interval() -> float:
    """Seconds between two log lines of one task (``TRANSFERLENS_PROGRESS_INTERVAL``, default 10; 0: every update)."""
    try:
        return max(0.0, float(os.environ.get("TRANSFERLENS_PROGRESS_INTERVAL", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def live() -> bool:
    """Whether a live bar can be drawn: stderr is an interactive terminal and ``CI`` is unset."""
    from rich.console import Console

    return Console(stderr=True).is_terminal and os.environ.get("CI") is None


def _count(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) and not value.is_integer() else f"{int(value)}"


class LogProgress:
    """The part of ``rich.progress.Progress`` the loops use, reported as log lines (see the module docstring)."""

    def __init__(self, label: str, unit: str = "", every: float | None = None) -> None:
        self.label, self.unit = label, unit
        self.every = interval() if every is None else every
        self.tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            for task in self.tasks:
                self._finish(task)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **_: Any) -> int:
        task = len(self.tasks)
        now = time.monotonic()
        self.tasks[task] = {"description": description, "total": total, "completed": completed, "start": now,
                            "last": now, "logged": False, "finished": False}
        return task

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def update(self, task: int, *, description: str | None = None, completed: float | None = None,
               total: float | None = None, advance: float | None = None, **_: Any) -> None:
        t = self.tasks[task]
        if description is not None:
            t["description"] = description
        if total is not None:
            t["total"] = total
        if completed is not None:
            t["completed"] = completed
        if advance is not None:
            t["completed"] += advance
        now = time.monotonic()
        if t["total"] is not None and t["completed"] >= t["total"]:
            self._finish(task)
        elif now - t["last"] >= self.every:
            self._log(t, now)

    def _finish(self, task: int) -> None:
        t = self.tasks[task]
        now = time.monotonic()
        changed = t["logged"] is False or t["logged"] != (t["completed"], t["description"])  # no repeated line
        if not t["finished"] and changed and (t["logged"] or now - t["start"] >= self.every):
            self._log(t, now)
        t["finished"] = True

    def _log(self, t: dict[str, Any], now: float) -> None:
        t["last"], t["logged"] = now, (t["completed"], t["description"])
        done, total = t["completed"], t["total"]
        if total is None:
            where = f"{_count(done)} {self.unit}".rstrip()
        elif isinstance(total, float) and total == 1.0:  # a fraction (zoo build)
            where = f"{100 * done:.0f}%"
        else:
            where = f"{_count(done)}/{_count(total)} {self.unit}".rstrip() + f" ({100 * done / max(total, 1e-12):.0f}%)"
        log.info("%s: %s %s, %.0f s", self.label, t["description"], where, now - t["start"])


def progress_bar(label: str, *columns: Any, enabled: bool = True, unit: str = "", console: Any = None,
                 transient: bool = False) -> Any:
    """A context manager with ``add_task`` / ``advance`` / ``update``: a rich bar made of ``columns`` on a
    terminal, :class:`LogProgress` lines elsewhere, nothing when ``enabled`` is False."""
    from rich.progress import Progress

    if not enabled:
        return Progress(*columns, disable=True)
    if live():
        from rich.console import Console

        return Progress(*columns, console=console or Console(stderr=True), transient=transient)
    return LogProgress(label, unit)


def quiet_hub_progress() -> None:
    """Keep tqdm / huggingface_hub / transformers / sentence-transformers progress bars and advisory
    messages out of our output (environment defaults, so an explicit setting by the user wins; the
    libraries' own switches too when they are already imported)."""
    for key, value in (("TQDM_DISABLE", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_VERBOSITY", "error"),
                       ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1")):
        os.environ.setdefault(key, value)
    import sys

    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
        sys.modules["transformers"].utils.logging.set_verbosity_error()
