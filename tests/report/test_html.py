"""The HTML report as a file: self-contained, every section and plot present, failures shown, re-rendered from records."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from transferlens.report import build_html, load_run, render_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def expected_plots(run: dict) -> list[str]:
    """The figures a run's report must hold: the ranking, three per shortlisted model, fine-tuning when it ran."""
    names = ["rank-heatmap"]
    for i, _ in enumerate(run["assess"]["shortlist"], 1):
        names += [f"probe-{i}", f"geometry-{i}", f"fewshot-{i}"]
    if any(st["status"] == "ok" for st in run["finetune"].values()):
        names.append("finetune")
    return names


def test_report_is_self_contained_with_every_section_and_plot(tiny_run):
    html = Path(tiny_run["report"]).read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    # nothing to fetch: no external src/href, no @import or url() to another host
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "@import" not in html and not re.search(r"url\(\s*['\"]?(https?:)?//", html)
    # the recommendation comes first
    order = [html.index(f'<section id="{s}"') for s in ("recommendation", "ranking", "candidates", "finetune", "data", "stages", "provenance")]
    assert order == sorted(order)
    d = tiny_run["assess"]["decision"]
    assert f'<p class="headline">Use {d["model"]}, features of layer {d["layer"]}.</p>' in html
    # every plot is an inline PNG that decodes
    for name in expected_plots(tiny_run):
        m = re.search(rf'data-plot="{name}"[^>]*><img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
        assert m, f"plot {name} missing"
        png = base64.b64decode(m.group(1))
        assert png.startswith(PNG_MAGIC) and len(png) > 5000
    assert "data-plot-error" not in html
    # sortable tables with numeric sort keys; every score is a column of the ranking table
    assert html.count('class="sortable"') >= 4
    ranking = html[html.index('id="ranking-table"'):]
    ranking = ranking[: ranking.index("</table>")]
    for score in tiny_run["rank"]["result"]["scores"]:
        assert f">{score}" in ranking
    assert "agreement (τ)" in ranking and 'data-sort="0.' in ranking


def test_failures_are_in_the_report(tiny_run):
    html = Path(tiny_run["report"]).read_text(encoding="utf-8")
    assert "zoo:no-such-model" in html and "could not be scored" in html
    assert "classes the ID data lacks (5, 6, 7, 8, 9)" in html
    for s in tiny_run["assess"]["stages"]:
        assert f"<td class=\"text\">{s['name']}</td>" in html


def test_rerender_from_records_only(tiny_run, tmp_path):
    out = render_report(tiny_run["dir"], tmp_path / "again.html")
    again = out.read_text(encoding="utf-8")
    assert again == build_html(load_run(tiny_run["dir"]))
    # same content as the report the run wrote (plots are deterministic)
    assert again == Path(tiny_run["report"]).read_text(encoding="utf-8")


def test_a_failed_probe_stage_shows_its_error_and_the_rest_renders(tiny_run):
    run = load_run(tiny_run["dir"])
    model = run["assess"]["shortlist"][0]
    run["probes"][model] = {"status": "failed", "error": "layer foo could not be tapped", "result": None}
    html = build_html(run)
    assert "The layer-wise probe" in html and "layer foo could not be tapped" in html
    assert 'data-plot="probe-1"' not in html and 'data-plot="geometry-1"' in html and 'data-plot="probe-2"' in html
