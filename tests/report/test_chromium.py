"""The report in a real browser: headless Chromium loads it offline, runs its script without console errors,
decodes every plot, and the screenshot shows a page (not a blank one)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from transferlens.report.assets import JS
from transferlens.report.browser import find_chromium, open_page

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="headless Chromium is not installed "
                                "(Debian package 'chromium'; scripts/setup.sh installs it when run as root)")


def _body_attrs(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body))


def test_report_renders_without_console_errors(tiny_run, tmp_path):
    shot = tmp_path / "report.png"
    page = open_page(tiny_run["report"], shot, width=1280, height=1800)
    assert page.console == [], page.console
    attrs = _body_attrs(page.dom)
    names = ["rank-heatmap"] + [f"{k}-{i}" for i in range(1, len(tiny_run["assess"]["shortlist"]) + 1)
                                for k in ("probe", "geometry", "fewshot")]
    if any(st["status"] == "ok" for st in tiny_run["finetune"].values()):
        names.append("finetune")
    assert attrs.get("data-ready") == "1"  # the inline script ran to its end
    assert attrs.get("data-images-ok") == f"{len(names)}/{len(names)}"  # every <img> decoded after the load event
    assert '<section id="recommendation">' in page.dom and tiny_run["assess"]["decision"]["headline"] in page.dom
    for name in names:
        assert f'data-plot="{name}"' in page.dom
    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert img.shape == (1800, 1280)
    assert img.std() > 20 and (img < 100).mean() > 0.01  # dark text and plots on a light page, not a blank frame


def test_console_errors_are_caught(tmp_path):
    """The check above can fail: a page with a console message and an uncaught exception is reported."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><p>x</p><script>console.error("boom"); missingFunction();</script></body></html>')
    res = open_page(page)
    assert any("boom" in m for m in res.console)
    assert any("Uncaught ReferenceError" in m for m in res.console)


def test_sortable_table_sorts_numbers_numerically_and_blanks_last(tmp_path):
    page = tmp_path / "sort.html"
    rows = "".join(f'<tr><td data-sort="{k}">{k or "-"}</td></tr>' for k in ("10", "", "2", "1.5"))
    page.write_text('<!DOCTYPE html><html><body><table class="sortable"><thead><tr><th>v</th></tr></thead>'
                    f"<tbody>{rows}</tbody></table><script>{JS}</script><script>"
                    'var th = document.querySelector("th"); var order = function () { return Array.prototype.map.call('
                    'document.querySelectorAll("tbody td"), function (c) { return c.textContent; }).join(","); };'
                    'th.click(); document.body.setAttribute("data-asc", order());'
                    'th.click(); document.body.setAttribute("data-desc", order());</script></body></html>')
    res = open_page(page)
    attrs = _body_attrs(res.dom)
    assert res.console == []
    assert attrs["data-asc"] == "1.5,2,10,-" and attrs["data-desc"] == "10,2,1.5,-"
