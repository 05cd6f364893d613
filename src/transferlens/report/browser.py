"""Open a report in headless Chromium (Debian ``chromium``): the rendered DOM, console messages, a screenshot.

Chromium runs with no sandbox (root in containers), no GPU, background networking off and every host
name unresolvable, so a page that tried to fetch anything from the network would show it as an error.
With ``--enable-logging=stderr --v=0`` every console message and uncaught exception of the page is
logged as an ``INFO:CONSOLE`` line, which :func:`open_page` collects.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_CONSOLE = re.compile(r"(INFO|WARNING|ERROR|VERBOSE\d*):CONSOLE[^\]]*\]\s*(.*)")


def find_chromium() -> str | None:
    """The path of a Chromium binary on PATH, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageResult:
    dom: str
    console: list[str] = field(default_factory=list)
    screenshot: Path | None = None
    stderr: str = ""


def _flags(profile: str) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--disable-default-apps", "--no-first-run", "--mute-audio",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
            f"--user-data-dir={profile}"]


def console_messages(stderr: str) -> list[str]:
    """The page's console messages (``console.*`` calls and uncaught exceptions) from Chromium's log."""
    out = []
    for line in stderr.splitlines():
        m = _CONSOLE.search(line)
        if m:
            out.append(m.group(2).strip())
        elif "Uncaught" in line:
            out.append(line.strip())
    return out


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UsageError(f"headless Chromium did not finish within {timeout:.0f} s.") from None


def open_page(html: str | Path, screenshot: str | Path | None = None, *, width: int = 1280, height: int = 2200,
              timeout: float = 120.0, chromium: str | None = None) -> PageResult:
    """Load ``html`` (a file) in headless Chromium; return the DOM after the load event and the console messages.

    With ``screenshot``, also save a ``width`` x ``height`` PNG of the top of the page.
    """
    exe = chromium or find_chromium()
    if exe is None:
        raise UsageError("headless Chromium is not installed (Debian: `apt-get install chromium`; scripts/setup.sh does it as root).")
    url = Path(html).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="tl-chromium-") as profile:
        dump = _run([exe, *_flags(profile), "--dump-dom", url], timeout)
        messages = console_messages(dump.stderr)
        stderr = dump.stderr
        shot = None
        if screenshot is not None:
            shot = Path(screenshot).resolve()
            shot.parent.mkdir(parents=True, exist_ok=True)
            snap = _run([exe, *_flags(profile), f"--screenshot={shot}", f"--window-size={width},{height}", url], timeout)
            messages += [m for m in console_messages(snap.stderr) if m not in messages]
            stderr += snap.stderr
            if not shot.exists():
                raise UsageError(f"headless Chromium wrote no screenshot: {snap.stderr.strip()[-300:]}")
    if dump.returncode != 0 or "<html" not in dump.stdout.lower():
        raise UsageError(f"headless Chromium failed on {html} (exit {dump.returncode}): {dump.stderr.strip()[-300:]}")
    return PageResult(dom=dump.stdout, console=messages, screenshot=shot, stderr=stderr)
