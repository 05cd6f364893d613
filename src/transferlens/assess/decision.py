"""The recommendation of a run, and why, in plain words.

The scores shortlist the ``top_k`` best-ranked candidates (combined mean rank); the layer-wise probes then
measure them directly on held-out data. The recommended model is the shortlisted one whose recommended
layer has the best mean OOD probe accuracy; without OOD sets, the best ID probe accuracy. Measured
accuracies within ``TIE`` (1 point, about the standard error of an accuracy on a thousand samples) of the
best count as a tie, broken by the scores' order. Without any probe result it falls back to the scores'
favourite.
"""

from __future__ import annotations

from typing import Any

from ..report.naming import data_label, fmt_pct

#: Measured accuracies closer than this to the best are a tie (broken by the transferability scores).
TIE = 0.01


def _best_layer(probe: dict) -> dict:
    return probe["layers"][probe["recommendation"]["index"]]


def _best_id_row(probe: dict) -> dict:
    """The layer with the best ID probe accuracy (ties: the earlier layer)."""
    return max(probe["layers"], key=lambda r: (r["id_accuracy"], -r["index"]))


def _probe_key(probe: dict, use_ood: bool) -> float:
    row = _best_layer(probe)
    value = row.get("ood_mean_accuracy") if use_ood else row.get("id_accuracy")
    return -1.0 if value is None else float(value)


def _finetune_sentence(finetunes: dict[str, dict], epochs: Any, probe_row: dict | None) -> str | None:
    done = {m: r for m, r in finetunes.items() if r and r.get("test_accuracy") is not None}
    if not done:
        return None
    parts = []
    for method, rec in done.items():
        ood = rec.get("ood_mean_accuracy")
        parts.append(f"{method} {fmt_pct(rec['test_accuracy'])} ID" + (f", {fmt_pct(ood)} mean OOD" if ood is not None else ""))
    text = f"Fine-tuned for {epochs} epoch(s): " + "; ".join(parts) + "."
    if "ftp" in done and "plain" in done:
        a, b = done["ftp"].get("ood_mean_accuracy"), done["plain"].get("ood_mean_accuracy")
        if a is not None and b is not None:
            diff = 100.0 * (a - b)
            verdict = "keeps more OOD accuracy" if diff > 0.5 else ("keeps less OOD accuracy" if diff < -0.5 else "makes no clear OOD difference")
            text += f" FTP {verdict} than plain fine-tuning ({diff:+.1f} points)."
    if probe_row is not None:
        ood = probe_row.get("ood_mean_accuracy")
        text += (f" For comparison, the linear probe on frozen features of {probe_row['layer']}: "
                 f"{fmt_pct(probe_row['id_accuracy'])} ID" + (f", {fmt_pct(ood)} mean OOD." if ood is not None else "."))
    return text


def decide(config: dict, data: dict | None, rank: dict | None, probes: dict[str, dict], finetunes: dict[str, dict],
           problems: list[str]) -> dict[str, Any]:
    """Pick the model and layer; return ``{model, layer, headline, why, caveats, basis, ...}``."""
    caveats = list(problems)
    rows = {r["model"]: r for r in (rank or {}).get("models") or []}
    # a candidate that loaded but got no score at all has no combined rank: it cannot be recommended
    ranking = [m for m in (rank or {}).get("ranking") or [] if rows.get(m, {}).get("combined_rank") is not None]
    if not ranking:
        head = "No recommendation: no candidate model could be scored (see the problems below)."
        return {"model": None, "layer": None, "headline": head, "why": [], "caveats": caveats, "basis": None}
    combined = rank["combined"]["scores"]
    agreement = rank.get("agreement", {}).get("per_model", {})
    probed = {m: p for m, p in probes.items() if p and m in rows}
    use_ood = any(p.get("ood_data") for p in probed.values())
    if probed:
        best_key = max(_probe_key(p, use_ood) for p in probed.values())
        tied = sorted((m for m in probed if _probe_key(probed[m], use_ood) >= best_key - TIE), key=ranking.index)
        model, basis = tied[0], "ood" if use_ood else "id"
    else:
        model, basis = ranking[0], "scores"
    pos = ranking.index(model) + 1
    row = rows[model]
    why = []
    agree = agreement.get(model, {})
    first = f"; {agree['n_first']} of {agree['n_scores']} of these scores put it first" if agree.get("n_scores") else ""
    why.append(f"The transferability scores rank it #{pos} of {len(ranking)} candidate{'s' * (len(ranking) > 1)} (mean rank "
               f"{row['combined_rank']:.1f} over {', '.join(combined)}{first}).")
    layer, layer_index, n_layers = row.get("layer"), None, None
    if probed:
        p = probed[model]
        best = _best_layer(p)
        layer, layer_index, n_layers = best["layer"], best["index"], len(p["layers"])
        chance = p.get("chance_accuracy")
        if use_ood:
            names = ", ".join(data_label(u) for u in p["ood_data"])
            lead = f"Among the {len(probed)} shortlisted models it holds up best out of distribution: a" if len(probed) > 1 else "A"
            why.append(f"{lead} linear probe on "
                       f"its layer {layer} gets {fmt_pct(best['id_accuracy'])} on held-out ID data and "
                       f"{fmt_pct(best['ood_mean_accuracy'])} on average over {len(p['ood_data'])} OOD set{'s' * (len(p['ood_data']) > 1)} ({names}); "
                       f"chance is {fmt_pct(chance)}.")
            last = p["layers"][-1]
            mean = (p.get("tunnel") or {}).get("mean") or {}
            if best["index"] < len(p["layers"]) - 1 and mean.get("start") is not None:
                why.append(f"Take the features of {layer}, not of the last layer {last['layer']}: the last layer keeps only "
                           f"{mean['pct_retained']:.0f}% of the best OOD accuracy (a {mean.get('strength', '')} tunnel of "
                           f"{mean['length']} layer(s)).")
            elif best["index"] < len(p["layers"]) - 1:
                why.append(f"Layer {layer} is slightly more robust than the last layer {last['layer']} "
                           f"({fmt_pct(best['ood_mean_accuracy'])} vs {fmt_pct(last.get('ood_mean_accuracy'))} mean OOD).")
            else:
                why.append("There is no OOD tunnel to avoid: the last layer is also the most robust one.")
            id_best = max(probed, key=lambda m: (_best_id_row(probed[m])["id_accuracy"], -ranking.index(m)))
            ib, own = _best_id_row(probed[id_best]), _best_id_row(p)
            if id_best != model and ib["id_accuracy"] > own["id_accuracy"] + TIE:
                why.append(f"If only in-distribution accuracy matters, {id_best} ({ib['layer']}) is ahead on ID data: "
                           f"{fmt_pct(ib['id_accuracy'])} vs at best {fmt_pct(own['id_accuracy'])}.")
        else:
            lead = f"Among the {len(probed)} shortlisted models its" if len(probed) > 1 else "Its"
            why.append(f"{lead} layer {layer} gives the best held-out ID accuracy "
                       f"with a linear probe: {fmt_pct(best['id_accuracy'])} (chance {fmt_pct(chance)}). No OOD data was "
                       "given, so robustness was not measured.")
        others = [m for m in tied if m != model]
        if others:
            vals = ", ".join(f"{m} ({fmt_pct(_probe_key(probed[m], use_ood))})" for m in others)
            where = "out of distribution" if use_ood else "in distribution"
            why.append(f"Measured {where}, {vals} {'does' if len(others) == 1 else 'do'} as well: within {100 * TIE:.0f} point "
                       f"of its {fmt_pct(_probe_key(probed[model], use_ood))}, which is within noise, so the transferability "
                       "scores break the tie.")
        if pos > 1:
            top = ranking[0]
            if top in probed:
                why.append(f"The scores' favourite, {top}, was probed too and does clearly worse on the measured accuracy "
                           f"({fmt_pct(_probe_key(probed[top], use_ood))} vs {fmt_pct(_probe_key(probed[model], use_ood))}).")
    else:
        caveats.append("No layer-wise probe succeeded, so this rests on the transferability scores alone.")
    ft = _finetune_sentence(finetunes, config.get("finetune_epochs"), _best_layer(probed[model]) if model in probed else None)
    if ft:
        why.append(ft)
    n_warn = sum(len(v) for v in row.get("warnings", {}).values())
    if n_warn:
        caveats.append(f"{n_warn} reliability warning(s) on its scores (small N for the dimension, saturation); "
                       "see the ranking table.")
    headline = f"Use {model}" + (f", features of layer {layer}" if layer else "") + "."
    return {"model": model, "layer": layer, "layer_index": layer_index, "n_layers": n_layers, "rank_position": pos,
            "n_candidates": len(ranking), "headline": headline, "why": why, "caveats": caveats, "basis": basis}
