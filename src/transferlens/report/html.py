"""``render_report(run_dir)``: one self-contained HTML file (inline CSS, JS and PNG plots) from a run's records.

Order: the recommendation and why, in plain words; stage problems; the ranking (heatmap + sortable table
with every score and its agreement); per shortlisted model the layer-wise ID/OOD curves with the tunnel,
NC and GC per layer and few-shot accuracy vs shots; fine-tuning ID vs OOD; data; provenance.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Callable

from ..io import atomic_write_text
from ..probe.chance import evidence as probe_evidence
from ..probe.chance import finetune_at_chance, layer_flags
from . import plots
from .assets import CSS, JS
from .naming import combined_word, data_label, fmt_pct
from .run import load_run, result


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(v: Any, spec: str = ".4g") -> tuple[str, str]:
    """(display text, sort key) of a number; missing values sort last."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–", ""
    return format(v, spec), repr(float(v))


def _td(v: Any, spec: str = ".4g", title: str | None = None, cls: str | None = None) -> str:
    text, key = _num(v, spec)
    t = f' title="{esc(title)}"' if title else ""
    c = f' class="{cls}"' if cls else ""
    return f'<td data-sort="{key}"{t}{c}>{text}</td>'


def _pct_td(v: Any, at_chance: bool | None = None, collapsed: bool | None = None) -> str:
    """A percentage cell; ``*`` (class ``chance``) when the accuracy is within noise of chance, ``†`` when collapsed."""
    text, key = _num(v)
    mark = ("*" if at_chance else "") + ("†" if collapsed else "")
    title = "; ".join(t for t, f in (("within noise of chance", at_chance), ("one class takes most predictions", collapsed)) if f)
    extra = f' class="chance" title="{esc(title)}"' if mark else ""
    return f'<td data-sort="{key}"{extra}>{(fmt_pct(v) if key else text) + mark}</td>'


CHANCE_NOTE = ("* within noise of chance (one-sided binomial test of accuracy > chance, α = 0.05; chance = the majority "
               "label rate); † collapsed: one class takes ≥ 80% of the probe's predictions.")


def _criterion_text(probe: dict) -> str:
    rec = probe.get("recommendation") or {}
    return rec.get("criterion_text") or ("best mean OOD accuracy" if probe.get("ood_data") else "best ID accuracy")


def _badge(status: str) -> str:
    return f'<span class="badge {esc(status)}">{esc(status)}</span>'


def _figure(name: str, src: str, alt: str, caption: str) -> str:
    return (f'<figure class="plot" data-plot="{esc(name)}" id="plot-{esc(name)}"><img src="{src}" alt="{esc(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _safe_plot(name: str, draw: Callable[[], str], alt: str, caption: str) -> str:
    """A figure, or a visible note when the plot cannot be drawn (the rest of the report still renders)."""
    try:
        return _figure(name, draw(), alt, caption)
    except Exception as exc:  # a plot must never take the report down
        return f'<div class="box problem" data-plot-error="{esc(name)}">Plot {esc(name)} could not be drawn: {esc(exc)}</div>'


def _problem(stage: dict | None, what: str) -> str:
    if stage is None:
        return f'<div class="box info">{esc(what)}: not run.</div>'
    return (f'<div class="box problem">{esc(what)} {_badge(stage.get("status", "failed"))}: '
            f'{esc(stage.get("error") or "no result")}</div>')


# ------------------------------------------------------------------------------------------------ sections
def _recommendation(a: dict) -> str:
    d = a.get("decision") or {}
    why = "".join(f"<li>{esc(w)}</li>" for w in d.get("why", []))
    cav = "".join(f"<li>{esc(c)}</li>" for c in d.get("caveats", []))
    basis = {"ood": "measured out-of-distribution probe accuracy of the shortlist",
             "id": "measured in-distribution probe accuracy of the shortlist",
             "scores": "transferability scores only"}.get(d.get("basis") or "", "")
    out = ['<section id="recommendation"><h2>Recommendation</h2>', f'<p class="headline">{esc(d.get("headline"))}</p>']
    if d.get("ood_evidence_at_chance"):
        out.append('<div class="box problem" id="ood-at-chance">The OOD evidence is at chance: every shortlisted model\'s '
                   "probe is within noise of chance on the OOD sets at every layer, so robustness was not measured.</div>")
    if basis:
        out.append(f'<p class="muted">Decided by: {esc(basis)}.</p>')
    if why:
        out.append(f"<h3>Why</h3><ul class=\"why\">{why}</ul>")
    if d.get("evidence"):
        out.append(_evidence_table(d["evidence"]))
    if cav:
        out.append(f"<h3>Caveats and problems</h3><ul class=\"caveats\">{cav}</ul>")
    out.append("</section>")
    return "".join(out)


def _evidence_table(rows: list[dict]) -> str:
    """The numbers the recommendation quotes, per probed model (``decision["evidence"]``), in the same format."""
    body = []
    for r in rows:
        kept = r.get("pct_retained")
        kept_txt = (f"{kept:.0f}%" if kept is not None else ("n/a: OOD at chance" if r.get("ood_all_at_chance") else "–"))
        chance = fmt_pct(r.get("id_chance")) + (f" / {fmt_pct(r['ood_chance'])}" if r.get("ood_chance") is not None else "")
        body.append(f'<tr><td class="text">{esc(r["model"])}</td><td class="text">{esc(r["layer"])}</td>'
                    f'<td class="text">{esc(r["criterion"])}</td>{_pct_td(r["id_accuracy"], r.get("id_at_chance"))}'
                    f'{_pct_td(r.get("ood_mean_accuracy"), r.get("ood_at_chance"))}<td class="text">{esc(chance)}</td>'
                    f'<td class="text">{esc(r["best_id_layer"])}</td>{_pct_td(r["best_id_accuracy"])}'
                    f'<td class="text">{esc(r["last_layer"])}</td>{_pct_td(r.get("last_ood_mean_accuracy"))}'
                    f'<td data-sort="{"" if kept is None else kept}">{esc(kept_txt)}</td></tr>')
    return ('<div class="scroll"><table class="sortable" id="evidence-table"><thead><tr><th class="text">model</th>'
            '<th class="text">chosen layer</th><th class="text">chosen by</th><th>ID probe</th><th>mean OOD</th>'
            '<th class="text">chance ID / OOD</th><th class="text">best ID layer</th><th>its ID</th><th class="text">last layer</th>'
            '<th>its mean OOD</th><th title="share of the best mean OOD accuracy the last layer keeps">OOD kept at last layer</th>'
            f'</tr></thead><tbody>{"".join(body)}</tbody></table></div><p class="muted">{esc(CHANCE_NOTE)}</p>')


def _stages(a: dict) -> str:
    rows = []
    for s in a.get("stages", []):
        rows.append(f'<tr class="{"failed" if s["status"] in ("failed", "skipped") else ""}"><td class="text">{esc(s["name"])}</td>'
                    f'<td class="text">{_badge(s["status"])}</td>{_td(s.get("seconds"), ".1f")}'
                    f'<td class="wrap">{esc(s.get("error") or "")}</td></tr>')
    return ('<section id="stages"><h2>Stages</h2><p class="muted">Each stage\'s record is in <code>stages/</code>; a re-run '
            'reuses every record whose inputs did not change (<em>cached</em>).</p><div class="scroll">'
            '<table class="sortable" id="stages-table"><thead><tr><th class="text">stage</th><th class="text">status</th>'
            '<th>seconds</th><th class="text">error</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table></div></section>")


def _ranking(run: dict) -> str:
    st = run.get("rank")
    rank = result(st)
    out = ['<section id="ranking"><h2>Ranking by transferability scores</h2>']
    if rank is None:
        out.append(_problem(st, "The ranking stage"))
        return "".join(out) + "</section>"
    if not rank.get("ranking"):
        errors = "".join(f"<li>{esc(r['model'])}: {esc(r.get('error'))}</li>" for r in rank.get("models", []) if r.get("error"))
        return "".join(out) + f'<div class="box problem">No candidate could be scored.<ul>{errors}</ul></div></section>'
    combined = rank["combined"]["scores"]
    shortlist = set(run["assess"].get("shortlist", []))
    out.append(f'<p>{len(rank["ranking"])} candidate(s) scored on {esc(rank["data"])} ({rank["n_samples"]} samples, '
               f'{rank["n_classes"]} classes) at their penultimate layer. The combined recommendation is the {combined_word(rank)} over '
               f'{esc(", ".join(combined))}; the {len(shortlist)} best go on to the layer-wise probes (marked ▸). '
               "Agreement: Kendall's τ of each score's order with the combined order (1 = identical, 0 = unrelated). "
               "* = zoo-relative score (only meaningful among these candidates).</p>")
    out.append(_safe_plot("rank-heatmap", lambda: plots.rank_heatmap(rank), "rank of each model by each score",
                          "Rank of every candidate by every score; a column that looks like the combined one agrees with it."))
    names = rank["scores"]
    head = "".join(f'<th title="{"higher" if rank["higher_is_better"].get(n) else "lower"} is better">{esc(n)}'
                   f'{"*" if n in rank["zoo_relative"] else ""}</th>' for n in names)
    agree = (rank.get("agreement") or {})
    per_model = agree.get("per_model", {})
    rows = []
    by = {r["model"]: r for r in rank["models"]}
    for i, m in enumerate(rank["ranking"], 1):
        r = by[m]
        pm = per_model.get(m, {})
        spread = f'{pm["best_rank"]:.0f}–{pm["worst_rank"]:.0f}' if pm.get("best_rank") is not None else "–"
        cells = "".join(_td(r["scores"].get(n), ".4g", title=f"rank {r.get('ranks', {}).get(n, '–')}") for n in names)
        n_warn = sum(len(v) for v in r.get("warnings", {}).values())
        warn_title = esc("; ".join(f"{k}: {w}" for k, v in r.get("warnings", {}).items() for w in v))
        mark = "▸ " if m in shortlist else ""
        rows.append(f'<tr class="{"best" if i == 1 else ""}"><td data-sort="{i}">{i}</td><td class="text" data-sort="{esc(m)}">'
                    f'{mark}{esc(m)}</td>{_td(r.get("combined_rank"), ".2f")}<td data-sort="{pm.get("best_rank", "")}">{spread}</td>'
                    f'{_td(pm.get("n_first"), "d")}{cells}<td title="{warn_title}" data-sort="{n_warn}">{n_warn or ""}</td></tr>')
    for r in rank["models"]:
        if r.get("error"):
            rows.append(f'<tr class="failed"><td data-sort="">!</td><td class="text">{esc(r["model"])}</td>'
                        f'<td class="wrap" colspan="{len(names) + 4}">could not be scored: {esc(r["error"])}</td></tr>')
    foot = "".join(_td((agree.get("per_score") or {}).get(n), ".2f") for n in names)
    out.append('<div class="scroll"><table class="sortable" id="ranking-table"><thead><tr><th>#</th><th class="text">model</th>'
               f'<th title="{combined_word(rank)} over the combined scores">combined</th><th title="best–worst rank over the combined scores">'
               f'rank spread</th><th title="combined scores that put it first">#1 votes</th>{head}<th>warnings</th></tr></thead>'
               f'<tbody>{"".join(rows)}</tbody><tfoot><tr><td></td><td class="text">agreement (τ)</td><td></td><td></td><td></td>'
               f"{foot}<td></td></tr></tfoot></table></div></section>")
    return "".join(out)


def _layer_table(model_i: int, probe: dict | None, geo: dict | None) -> str:
    rows_p = {r["layer"]: r for r in (probe or {}).get("layers", [])}
    rows_g = {r["layer"]: r for r in (geo or {}).get("layers", [])}
    layers = list(dict.fromkeys([*rows_p, *rows_g]))
    rec = ((probe or {}).get("recommendation") or {}).get("layer")
    flags = {r["layer"]: f for r, f in zip(probe["layers"], layer_flags(probe))} if probe else {}
    rows = []
    for name in layers:
        p, g = rows_p.get(name, {}), rows_g.get(name, {})
        f = flags.get(name) or {"id": None, "ood_mean": None, "id_collapsed": None, "ood_collapsed": {}}
        rows.append(f'<tr class="{"best" if name == rec else ""}"><td class="text">{esc(name)}</td>{_td(p.get("dim") or g.get("dim"), "d")}'
                    f'{_pct_td(p.get("id_accuracy"), f["id"], f["id_collapsed"])}'
                    f'{_pct_td(p.get("ood_mean_accuracy"), f["ood_mean"], any(f["ood_collapsed"].values()))}{_td(g.get("nc1"), ".3g")}'
                    f'{_td(g.get("cdnv"), ".3g")}{_td(g.get("gc"), ".3g")}{_td(g.get("numerical_rank", p.get("numerical_rank")), ".0f")}'
                    f'{_pct_td(g.get("fewshot_accuracy"))}</tr>')
    crit = f" (bold: the recommended layer, by {esc(_criterion_text(probe))})" if probe else ""
    return (f'<details><summary>per-layer numbers{crit}</summary><div class="scroll"><table class="sortable" id="layers-{model_i}">'
            '<thead><tr><th class="text">layer</th><th>dim</th><th>ID probe</th><th>OOD mean</th><th>NC1</th><th>CDNV</th>'
            '<th>GC</th><th>rank</th><th title="5-way 5-shot NCC">few-shot</th></tr></thead><tbody>'
            + "".join(rows) + f'</tbody></table></div><p class="muted">{esc(CHANCE_NOTE)}</p></details>')


def _candidate(i: int, model: str, run: dict) -> str:
    pst, gst = run["probes"].get(model), run["geometry"].get(model)
    probe, geo = result(pst), result(gst)
    out = [f'<article class="candidate" id="candidate-{i}"><h3>{i}. {esc(model)}</h3>']
    if probe:
        rec = probe["recommendation"]
        row = probe["layers"][rec["index"]]
        mean = (probe.get("tunnel") or {}).get("mean")
        ev = probe_evidence(probe)
        tunnel = ""
        if mean and (mean.get("pct_retained") is None or ev["ood_at_chance"]):  # older records computed it anyway
            tunnel = "; the mean OOD accuracy is at chance at every layer, so there is no % retained and no tunnel"
        elif mean:
            start = "none" if mean.get("start") is None else f'from {probe["layers"][mean["start"]]["layer"]}, {mean["length"]} layer(s)'
            last = probe["layers"][-1]
            peak = max(r.get("ood_mean_accuracy") or 0.0 for r in probe["layers"])
            tunnel = (f'; the last layer {esc(last["layer"])} keeps {mean["pct_retained"]:.0f}% of the best mean OOD accuracy '
                      f'({fmt_pct(last.get("ood_mean_accuracy"))} vs {fmt_pct(peak)}; {esc(mean["strength"])} tunnel: {esc(start)})')
        ood_txt = f', {fmt_pct(row.get("ood_mean_accuracy"))} mean OOD' if probe.get("ood_data") else ""
        out.append(f'<p>Recommended layer <strong>{esc(rec["layer"])}</strong> (by {esc(_criterion_text(probe))}): '
                   f'{fmt_pct(row["id_accuracy"])} ID{ood_txt}{tunnel}. <span class="muted">{esc(rec["reason"])}</span></p>')
        notes = []
        if ev["id_at_chance"]:
            notes.append("ID: the probe is at chance at every layer")
        notes += [f"OOD {data_label(u)}: at chance at every layer" for u in ev["ood_sets_at_chance"]]
        if ev["collapsed_layers_id"]:
            notes.append(f"ID: collapsed predictions at {', '.join(ev['collapsed_layers_id'][:6])}")
        notes += [f"OOD {data_label(u)}: collapsed predictions at {', '.join(ls[:6])}" for u, ls in ev["collapsed_ood"].items()]
        if notes:
            out.append('<div class="box problem chance-warning"><strong>Chance-level evidence.</strong> '
                       + "; ".join(esc(n) for n in notes) + ". Numbers from these curves measure noise.</div>")
        out.append(_safe_plot(f"probe-{i}", lambda: plots.probe_curves(probe, f"{model}: {probe['probe']} probe per layer"),
                              f"ID and OOD probe accuracy per layer of {model}",
                              f"Linear ({esc(probe['probe'])}) probes trained on {probe['n_train']} ID samples, tested on "
                              f"{probe['n_test']} held-out ID samples and on each OOD set; absolute accuracy, dashed: chance, "
                              "hollow markers: within noise of chance. Grey: the OOD tunnel (layers after "
                              f"the mean OOD peak, where OOD accuracy falls). ★: the recommended layer ({esc(_criterion_text(probe))})."))
    else:
        out.append(_problem(pst, "The layer-wise probe"))
    if geo:
        fs = geo.get("fewshot", {})
        out.append('<div class="grid2">')
        out.append(_safe_plot(f"geometry-{i}", lambda: plots.geometry_layers(geo, f"{model}: geometry per layer"),
                              f"NC and GC per layer of {model}",
                              "Neural collapse NC1 = tr(Σ_W Σ_B⁺)/K and CDNV per layer (lower: classes are tighter); geometric "
                              f"complexity of the pooled layer output w.r.t. the input pixels ({geo.get('gc', {}).get('samples', 0)} "
                              "samples, random projections)."))
        out.append(_safe_plot(f"fewshot-{i}", lambda: plots.fewshot_shots(geo, f"{model}: few-shot accuracy vs shots"),
                              f"few-shot accuracy vs shots of {model}",
                              "Nearest-class-centre accuracy over all classes with k labelled samples per class (mean over "
                              "episodes, band: 95% CI); how far a handful of labels gets you without training."))
        out.append("</div>")
        if fs:
            out.append(f'<p class="muted">Few-shot column below: {fs.get("n_way")}-way {fs.get("k_shot")}-shot episodes.</p>')
    else:
        out.append(_problem(gst, "The geometry stage"))
    if probe or geo:
        out.append(_layer_table(i, probe, geo))
    out.append("</article>")
    return "".join(out)


def _candidates(run: dict) -> str:
    shortlist = run["assess"].get("shortlist", [])
    out = ['<section id="candidates"><h2>Shortlisted candidates, layer by layer</h2>']
    if not shortlist:
        out.append('<div class="box problem">No candidate was shortlisted (the ranking produced no scored model).</div>')
    for i, m in enumerate(shortlist, 1):
        out.append(_candidate(i, m, run))
    return "".join(out) + "</section>"


def _finetune(run: dict) -> str:
    cfg = run["assess"].get("config", {})
    out = ['<section id="finetune"><h2>Fine-tuning the winner: ID vs OOD</h2>']
    if not cfg.get("finetune"):
        out.append('<div class="box info">Not run. Add <code>--finetune</code> to fine-tune the recommended model briefly with '
                   "FTP (projection-constrained) and plain fine-tuning and compare their ID and OOD accuracy.</div>")
        return "".join(out) + "</section>"
    done = {m: result(st) for m, st in run["finetune"].items() if result(st)}
    for m, st in run["finetune"].items():
        if not result(st):
            out.append(_problem(st, f"Fine-tuning with {m}"))
    if done:
        oods = list(dict.fromkeys(u for r in done.values() for u in r.get("ood_accuracy", {})))
        head = "".join(f"<th>{esc(data_label(u))}</th>" for u in oods)
        fl = {m: finetune_at_chance(r) for m, r in done.items()}
        rows = "".join(f'<tr><td class="text">{esc(m)}</td>{_pct_td(r.get("test_accuracy"), fl[m]["id"])}'
                       + "".join(_pct_td(r.get("ood_accuracy", {}).get(u), fl[m]["ood"].get(u)) for u in oods)
                       + f'{_pct_td(r.get("ood_mean_accuracy"), fl[m]["ood_mean"])}</tr>' for m, r in done.items())
        chance = next((f["chance"] for f in fl.values() if f["chance"] is not None), None)
        model = run["assess"].get("decision", {}).get("model")
        out.append(f'<p>{esc(model)} fine-tuned for {cfg.get("finetune_epochs")} epoch(s) with each method (seed {cfg.get("seed")}).</p>')
        out.append('<div class="scroll"><table class="sortable" id="finetune-table"><thead><tr><th class="text">method</th>'
                   f'<th>ID test</th>{head}<th>OOD mean</th></tr></thead><tbody>{rows}</tbody></table></div>')
        if chance is not None:
            out.append(f'<p class="muted">Chance is {fmt_pct(chance)} (1/K); * within noise of chance (one-sided binomial '
                       "test, α = 0.05, on the set's size).</p>")
        if sum(1 for f in fl.values() if f["ood_mean"]) >= 2:
            out.append('<div class="box problem" id="finetune-ood-at-chance">The fine-tuned models are at chance on the OOD '
                       "sets: their OOD accuracies cannot be compared.</div>")
        out.append(_safe_plot("finetune", lambda: plots.finetune_bars(done, f"{model}: fine-tuned, ID vs OOD", chance),
                              "fine-tuning ID vs OOD accuracy", "Test accuracy after fine-tuning, ID and on each OOD set."))
    return "".join(out) + "</section>"


def _optional_section(run: dict, key: str, title: str, what: str) -> tuple[list[str], dict | None]:
    """The opening of an optional stage's section and the stage's result: ``([], None)`` when the stage did not
    run (no section), the section with its problem box and ``None`` when it failed."""
    st = run.get(key)
    if st is None:
        return [], None
    out = [f'<section id="{key}"><h2>{esc(title)}</h2>']
    res = result(st)
    if res is None:
        out.append(_problem(st, what) + "</section>")
    return out, res


def _budget(run: dict) -> str:
    """``assess --budget``: the successive-halving rounds (steps, subset, validation accuracy of every candidate);
    empty when no budget was given."""
    out, res = _optional_section(run, "budget", "Measured: brief fine-tuning within the budget", "The budget stage")
    if res is None:
        return "".join(out)
    cands = list(res.get("shortlist") or res.get("ranking") or [])
    out.append(f'<p>Successive halving of the scores\' top {len(cands)} (every weight trained, a new linear head, AdamW; '
               f'validation accuracy on a stratified 20 % of the ID data): {res.get("seconds", 0):.0f} s used of '
               f'{res.get("budget_seconds", 0):.0f} s. Measured winner: <b>{esc(res.get("recommended"))}</b> '
               f'({fmt_pct(res.get("recommended_val_accuracy"))}).</p>')
    head = "".join(f'<th>round {r["round"]}<br><span class="muted">{r["steps"]} steps, {r["subset"]} images'
                   f'{"" if r.get("complete") else ", cut"}</span></th>' for r in res.get("rounds") or [])
    rows = "".join(f'<tr><td class="text">{esc(c)}</td>'
                   + "".join(_pct_td(r["val_accuracy"].get(c)) if c in r["val_accuracy"] else "<td>–</td>"
                             for r in res.get("rounds") or [])
                   + f'<td>{res.get("steps", {}).get(c, 0)}</td></tr>' for c in cands)
    out.append(f'<div class="scroll"><table id="budget-table"><thead><tr><th class="text">model</th>{head}<th>steps</th>'
               f'</tr></thead><tbody>{rows}</tbody></table></div>')
    out.append('<p class="muted">A short budget is a noisy measurement: on the benchmark suite, budgets of 0.25-2 CPU-minutes '
               "ranked worse than the zero-budget scores (docs/validity.md). The recommendation above stays the frozen-feature one.</p>")
    return "".join(out) + "</section>"


def _field(run: dict) -> str:
    """``assess --field``: every candidate's estimated accuracy on the unlabelled field data, each estimator with its
    expected error (MAE measured on the zoo, docs/validity.md); empty when no --field data was given."""
    from .field import LABELS, estimator_order, field_focus, field_line

    out, res = _optional_section(run, "field", "Field accuracy, estimated from unlabelled data", "The field stage")
    if res is None:
        return "".join(out)
    names, err = estimator_order(res), res.get("expected_error") or {}
    out.append(f'<p class="headline" id="field-line">{esc(field_line(run))}</p>')
    out.append(f'<p class="muted">A logistic probe on each candidate\'s ID features, validated on {esc(res.get("validation"))}; '
               "the field labels are never read. ATC (Garg et al. 2022) and DoC (Guillory et al. 2021) read the probe's "
               "confidence on the field samples; agreement-on-the-line (Baek et al. 2022) maps each candidate's ID accuracy "
               "through the line that the candidates' pairwise agreement follows from ID to field data (it assumes accuracy "
               "follows the same line). The expected error is the mean absolute error of each estimator measured against "
               "labelled OOD sets on the zoo (docs/validity.md).</p>")
    aol = res.get("aol") or {}
    if aol.get("reason"):
        out.append(f'<div class="box info">Agreement-on-the-line not available: {esc(aol["reason"])}</div>')
    focus = field_focus(run)
    head = "".join(f'<th title="expected error ±{err[n]:.1f} points">{esc(LABELS[n])}<br><span class="muted">±'
                   f'{err[n]:.1f} pts</span></th>' if err.get(n) is not None else f"<th>{esc(LABELS[n])}</th>" for n in names)
    rows = "".join(f'<tr class="{"winner" if m == focus else ""}"><td class="text">{esc(m)}</td>'
                   + "".join(_pct_td(r.get("estimates", {}).get(n)) for n in names) + "</tr>"
                   for m, r in res.get("models", {}).items())
    out.append('<div class="scroll"><table class="sortable" id="field-table"><thead><tr><th class="text">model</th>'
               f"{head}</tr></thead><tbody>{rows}</tbody></table></div>")
    for m, e in (res.get("errors") or {}).items():
        out.append(f'<div class="box problem">{esc(m)} was not estimated: {esc(e)}</div>')
    return "".join(out) + "</section>"


def _data(run: dict) -> str:
    st = run.get("data")
    d = result(st)
    out = ['<section id="data"><h2>Data</h2>']
    if d is None:
        return "".join(out) + _problem(st, "The data stage") + "</section>"
    rows = []

    def row(role: str, e: dict | None, uri: str | None, error: str | None) -> None:
        e = e or {}
        rows.append(f'<tr class="{"failed" if error else ""}"><td class="text">{esc(role)}</td><td class="text"><code>{esc(uri)}</code></td>'
                    f'{_td(e.get("n"), "d")}{_td(e.get("n_classes"), "d")}<td class="wrap">{esc(error or "used")}</td></tr>')

    row("ID train", d["train"], d["train"]["uri"], None)
    cfg = run["assess"].get("config", {})
    if cfg.get("test"):
        row("ID test", d.get("test"), cfg["test"], d.get("test_error"))
    else:
        rows.append('<tr><td class="text">ID test</td><td class="text wrap" colspan="4">a stratified 25% of the ID data</td></tr>')
    for e in d.get("ood", []):
        row(f"OOD: {e.get('label')}", e, e["uri"], e.get("error"))
    classes = ", ".join(d["train"]["class_names"][:30]) + (" ..." if len(d["train"]["class_names"]) > 30 else "")
    out.append('<div class="scroll"><table class="sortable" id="data-table"><thead><tr><th class="text">role</th>'
               '<th class="text">data URI</th><th>samples</th><th>classes</th><th class="text">status</th></tr></thead><tbody>'
               + "".join(rows) + f'</tbody></table></div><p class="muted">Classes: {esc(classes)}</p></section>')
    return "".join(out)


def _provenance(run: dict) -> str:
    a = run["assess"]
    p = a.get("provenance", {})
    cfg = a.get("config", {})
    versions = ", ".join(f"{k} {v}" for k, v in p.get("versions", {}).items() if v)
    models = result(run.get("models")) or {"models": []}
    mrows = "".join(f'<tr class="{"failed" if m.get("error") else ""}"><td class="text">{esc(m["model"])}</td>'
                    f'<td class="wrap"><code>{esc(m.get("identity") or m.get("error"))}</code></td></tr>' for m in models["models"])
    kv = [("run directory", run["dir"]), ("command", p.get("command") or "(library call)"), ("started", a.get("started")),
          ("finished", a.get("finished")), ("wall time", f'{a.get("seconds")} s'), ("target", cfg.get("target") or "user data"),
          ("seed", cfg.get("seed")), ("scores", ", ".join(cfg.get("scores", []))), ("top-k probed", cfg.get("top_k")),
          ("pooling / probe", f'{cfg.get("pool")} / {cfg.get("probe")}'), ("versions", versions), ("platform", p.get("platform")),
          ("CPUs / torch threads", f'{p.get("cpu_count")} / {p.get("torch_threads")}'),
          ("record", f'{a.get("kind")} v{a.get("schema_version")}, transferlens {a.get("transferlens_version")}')]
    body = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in kv)
    return ('<section id="provenance"><h2>Provenance</h2>'
            f'<dl class="kv">{body}</dl><h3>Models</h3><div class="scroll"><table class="sortable" id="models-table"><thead><tr>'
            f'<th class="text">model</th><th class="text">identity (cache key: URI, weights digest)</th></tr></thead><tbody>{mrows}'
            "</tbody></table></div></section>")


def build_html(run: dict) -> str:
    """The full page for a loaded run (see :func:`transferlens.report.run.load_run`)."""
    a = run["assess"]
    cfg = a.get("config", {})
    target = cfg.get("target") or "user data"
    sub = (f'{esc(cfg.get("train"))} ({esc(target)}) · {len(cfg.get("models", []))} candidate(s) · '
           f'{len(cfg.get("ood", []))} OOD set(s) · {esc(a.get("finished"))}')
    nav = "".join(f'<a href="#{k}">{v}</a>' for k, v in (("recommendation", "Recommendation"), ("ranking", "Ranking"),
                  ("candidates", "Candidates"), ("budget", "Budget"), ("field", "Field"), ("finetune", "Fine-tuning"),
                  ("data", "Data"), ("stages", "Stages"), ("provenance", "Provenance"))
                  if k not in ("field", "budget") or run.get(k) is not None)
    body = "".join([_recommendation(a), _ranking(run), _candidates(run), _budget(run), _field(run), _finetune(run), _data(run), _stages(a),
                    _provenance(run)])
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>TransferLens report: {esc(target)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>TransferLens report</h1><p>{sub}</p></header><nav>{nav}</nav><main>{body}</main>"
            f"<script>{JS}</script></body></html>\n")


def render_report(run_dir: str | Path, out: str | Path | None = None, *, run: dict | None = None) -> Path:
    """Write ``report.html`` (or ``out``) for the run in ``run_dir``; returns its path."""
    run = run if run is not None else load_run(run_dir)
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    return atomic_write_text(path, build_html(run))
