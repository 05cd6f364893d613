"""``transferlens report RUN_DIR``: re-render the HTML report of an ``assess`` run from its records."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, friendly


@friendly
def report_cmd(
    run_dir: Path = typer.Argument(..., help="the --out directory of a `transferlens assess` run"),
    out: Path = typer.Option(None, "--out", "-o", help="where to write the HTML (default: RUN_DIR/report.html)"),
    screenshot: Path = typer.Option(None, "--screenshot", help="also save a PNG of the page rendered by headless Chromium"),
) -> None:
    """Render report.html (one self-contained file, no network needed) from a run's records."""
    from ..report.html import render_report

    path = render_report(run_dir, out)
    console.print(f"report: [bold]{path}[/]", highlight=False)
    if screenshot is not None:
        from ..report.browser import open_page

        page = open_page(path, screenshot)
        console.print(f"screenshot: {page.screenshot}", highlight=False)
        for msg in page.console:
            console.print(f"[yellow]page console:[/] {msg}", highlight=False)
