"""The HTML decision report of an ``assess`` run: one self-contained file (inline CSS, JS and PNG plots)."""

from .html import build_html, render_report
from .run import load_run

__all__ = ["build_html", "load_run", "render_report"]
