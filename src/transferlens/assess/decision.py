"""The recommendation of a run, and why, in plain words.

The scores shortlist the ``top_k`` best-ranked candidates (combined rank); the layer-wise probes then
measure them directly on held-out data. The recommended model is the shortlisted one whose recommended
layer has the best mean OOD probe accuracy; without OOD sets, the best ID probe accuracy. Measured
accuracies within ``TIE`` (1 point, about the standard error of an accuracy on a thousand samples) of the
best count as a tie, broken by the scores' order. Without any probe result it falls back to the scores'
favourite.

Chance-level evidence (:mod:`transferlens.probe.chance`: one-sided binomial test against the majority-label
rate): when every shortlisted model's probe is at chance on the OOD sets at every layer, the OOD evidence is
said to be at chance and the choice rests on ID accuracy (``basis = "id"``); an OOD set at chance for every
model, ID accuracy at chance, collapsed probes and fine-tuned accuracies at chance become caveats or are said
in the sentences. Every layer named says by which criterion it was chosen, and the accuracies quoted are
those of the recommendation table (:func:`evidence_rows`) in the same format.
"""

from __future__ import annotations

from typing import Any

from ..probe.chance import evidence as probe_evidence
from ..probe.chance import finetune_at_chance, layer_flags
from ..report.naming import combined_word, data_label, fmt_pct

#: Measured accuracies closer than this to the best are a tie (broken by the transferability scores).
TIE = 0.01


def _best_layer(probe: dict) -> dict:
    return probe["layers"][probe["recommendation"]["index"]]


def _best_id_row(probe: dict) -> dict:
    """The layer with the best ID probe accuracy (ties: the earlier layer)."""
    return max(probe["layers"], key=lambda r: (r["id_accuracy"], -r["index"]))


def _chosen_row(probe: dict, use_ood: bool) -> dict:
    """The layer the decision uses: the record's recommendation when OOD decides, else the best ID layer."""
    return _best_layer(probe) if use_ood else _best_id_row(probe)


def _probe_key(probe: dict, use_ood: bool) -> float:
    row = _chosen_row(probe, use_ood)
    value = row.get("ood_mean_accuracy") if use_ood else row.get("id_accuracy")
    return -1.0 if value is None else float(value)


def _criterion(probe: dict, use_ood: bool) -> str:
    if not use_ood:
        return "best ID accuracy"
    return (probe.get("recommendation") or {}).get("criterion_text") or "best mean OOD accuracy"


def _ood_chance(probe: dict) -> float | None:
    return (probe.get("chance") or {}).get("ood_mean", probe.get("chance_accuracy"))


def _id_chance(probe: dict) -> float | None:
    return (probe.get("chance") or {}).get("id", probe.get("chance_accuracy"))


def _finetune_sentence(finetunes: dict[str, dict], epochs: Any, probe_row: dict | None, criterion: str | None = None) -> str | None:
    done = {m: r for m, r in finetunes.items() if r and r.get("test_accuracy") is not None}
    if not done:
        return None
    parts, flags = [], {m: finetune_at_chance(r) for m, r in done.items()}
    for method, rec in done.items():
        ood, f = rec.get("ood_mean_accuracy"), flags[method]
        parts.append(f"{method} {fmt_pct(rec['test_accuracy'])} ID" + (" (at chance)" if f["id"] else "")
                     + (f", {fmt_pct(ood)} mean OOD" + (" (at chance)" if f["ood_mean"] else "") if ood is not None else ""))
    text = f"Fine-tuned for {epochs} epoch(s): " + "; ".join(parts) + "."
    chance = next((f["chance"] for f in flags.values() if f["chance"] is not None), None)
    at = f" (chance {fmt_pct(chance)})" if chance is not None else ""
    if all(f["id"] for f in flags.values()):
        text += f" No fine-tune learned the task: every ID test accuracy is at chance{at}."
    if "ftp" in done and "plain" in done:
        a, b = done["ftp"].get("ood_mean_accuracy"), done["plain"].get("ood_mean_accuracy")
        fa, fb = flags["ftp"]["ood_mean"], flags["plain"]["ood_mean"]
        if a is not None and b is not None and fa and fb:
            text += (f" FTP and plain fine-tuning cannot be compared out of distribution: both are at chance on the OOD "
                     f"sets{at}.")
        elif a is not None and b is not None:
            diff = 100.0 * (a - b)
            verdict = "keeps more OOD accuracy" if diff > 0.5 else ("keeps less OOD accuracy" if diff < -0.5 else "makes no clear OOD difference")
            text += f" FTP {verdict} than plain fine-tuning ({diff:+.1f} points)"
            dead = [m for m, f in (("FTP", fa), ("plain fine-tuning", fb)) if f]
            text += (f"; {dead[0]} is at chance out of distribution{at}." if dead else ".")
    if probe_row is not None:
        ood = probe_row.get("ood_mean_accuracy")
        how = f" ({criterion})" if criterion else ""
        text += (f" For comparison, the linear probe on frozen features of the recommended layer {probe_row['layer']}{how}: "
                 f"{fmt_pct(probe_row['id_accuracy'])} ID" + (f", {fmt_pct(ood)} mean OOD." if ood is not None else "."))
    return text


def _is_twin(uri: str) -> bool:
    return "pretrained=false" in uri.split("?", 1)[-1] if "?" in uri else False


def _pretraining_sentences(model: str, rows: dict[str, dict], probed: dict[str, dict], use_ood: bool) -> list[str]:
    """What pretraining buys on this target, with numbers: the recommended model against its random-init twin, and,
    when a zoo model or a random-init network wins, against the best real pretrained backbone. The measure is the
    probe's (mean OOD or ID) accuracy when both were probed, else the leave-one-out kNN accuracy on the training
    data that the rank stage measured for every candidate."""
    from .config import random_init_twin

    def knn(m: str) -> float | None:
        v = (rows.get(m) or {}).get("scores", {}).get("knn_accuracy")
        return None if v is None else float(v)

    def compare(a: str, b: str) -> tuple[str, float, float] | None:
        if a in probed and b in probed:
            what = "mean OOD" if use_ood else "held-out ID"
            return f"{what} linear-probe accuracy", _probe_key(probed[a], use_ood), _probe_key(probed[b], use_ood)
        ka, kb = knn(a), knn(b)
        if ka is None or kb is None:
            return None
        return "leave-one-out kNN accuracy on the training data", ka, kb

    out = []
    twin = random_init_twin(model)
    if not _is_twin(model) and twin in rows:
        c = compare(model, twin)
        if c:
            gain = 100 * (c[1] - c[2])
            verdict = "ImageNet pretraining pays here" if gain > 100 * TIE else "ImageNet pretraining buys nothing measurable here"
            out.append(f"{verdict}: {model} vs the same architecture with random weights, {fmt_pct(c[1])} vs {fmt_pct(c[2])} "
                       f"{c[0]} ({gain:+.1f} points).")
    real = [m for m in rows if not m.startswith("zoo:") and not _is_twin(m) and random_init_twin(m) in rows]
    if real and (model.startswith("zoo:") or _is_twin(model)):
        best = max(real, key=lambda m: (compare(m, model) or ("", -1.0, 0.0))[1])
        c = compare(model, best)
        if c:
            kind = "zoo model" if model.startswith("zoo:") else "randomly initialised network"
            out.append(f"A {kind} beats the real pretrained backbones on this target: {model} {fmt_pct(c[1])} vs "
                       f"{fmt_pct(c[2])} for the best of them, {best} ({c[0]}, {100 * (c[1] - c[2]):+.1f} points).")
    return out


def evidence_rows(probes: dict[str, dict], use_ood: bool | None = None) -> list[dict]:
    """One row per probed model, the numbers the recommendation quotes: the chosen layer and its criterion, its
    ID and mean OOD accuracy, the chance levels, the best ID layer, the last layer's mean OOD accuracy, the share
    of the best OOD accuracy the last layer keeps (None when the OOD evidence is at chance), and the flags."""
    if use_ood is None:
        use_ood = _use_ood(probes)[0]
    rows = []
    for m, p in probes.items():
        if not p or not p.get("layers"):
            continue
        has_ood = bool(p.get("ood_data"))
        row, ib, last = _chosen_row(p, use_ood and has_ood), _best_id_row(p), p["layers"][-1]
        ev = probe_evidence(p)
        flags = layer_flags(p)[row["index"]]
        mean = (p.get("tunnel") or {}).get("mean") or {}
        rows.append({"model": m, "layer": row["layer"], "index": row["index"], "criterion": _criterion(p, use_ood and has_ood),
                     "id_accuracy": row["id_accuracy"], "ood_mean_accuracy": row.get("ood_mean_accuracy"),
                     "id_chance": _id_chance(p), "ood_chance": _ood_chance(p) if has_ood else None,
                     "id_at_chance": flags["id"], "ood_at_chance": flags["ood_mean"] if has_ood else None,
                     "best_id_layer": ib["layer"], "best_id_accuracy": ib["id_accuracy"], "last_layer": last["layer"],
                     "last_ood_mean_accuracy": last.get("ood_mean_accuracy"),
                     "pct_retained": mean.get("pct_retained") if has_ood and not ev["ood_at_chance"] else None,
                     "ood_all_at_chance": ev["ood_at_chance"], "id_all_at_chance": ev["id_at_chance"],
                     "ood_sets_at_chance": ev["ood_sets_at_chance"]})
    return rows


def _use_ood(probed: dict[str, dict]) -> tuple[bool, bool]:
    """(use OOD accuracy to decide, the OOD evidence is at chance for every model that has OOD sets)."""
    with_ood = [p for p in probed.values() if p and p.get("ood_data")]
    dead = bool(with_ood) and all(probe_evidence(p)["ood_at_chance"] is True for p in with_ood)
    return bool(with_ood) and not dead, dead


def _budget_sentence(budget: dict | None, model: str) -> str | None:
    """What the ``--budget`` stage measured, beside the frozen-feature pick ``model`` (None when it did not run)."""
    if not budget:
        return None
    best, acc = budget.get("recommended"), budget.get("recommended_val_accuracy")
    used, total = budget.get("seconds"), budget.get("budget_seconds")
    n = len(budget.get("shortlist") or [])
    if best is None:
        return (f"The budget stage ({budget.get('minutes')} min) ran out before any of the {n} shortlisted candidates was "
                "fine-tuned, so nothing was measured; give --budget more minutes.")
    rounds = budget.get("rounds") or []
    n_done = sum(1 for r in rounds if r.get("complete"))
    steps = budget.get("steps", {}).get(best)
    text = (f"Measured by brief fine-tuning of the whole network (successive halving of the scores' top {n}, "
            f"{n_done} of {budget.get('n_rounds_planned')} round(s) complete, {used:.0f} s of the {total:.0f} s budget), "
            f"{best} did best: {fmt_pct(acc)} validation accuracy after {steps} step(s).")
    if best == model:
        text += " That agrees with the frozen-feature pick."
    else:
        text += (f" That differs from the frozen-feature pick, {model}: to fine-tune the whole network, {best} measured best; "
                 f"to use frozen features, {model} (a short budget is a noisy measurement: on the benchmark suite small "
                 "budgets did not rank better than the zero-budget scores, docs/validity.md).")
    if budget.get("stopped_by_budget"):
        text += " The budget cut the last round short; a longer budget would measure more."
    return text


def decide(config: dict, data: dict | None, rank: dict | None, probes: dict[str, dict], finetunes: dict[str, dict],
           problems: list[str], budget: dict | None = None) -> dict[str, Any]:
    """Pick the model and layer; return ``{model, layer, headline, why, caveats, basis, ...}``.

    ``budget``: the result of the successive-halving stage (:func:`transferlens.budget.successive_halving`); it adds
    a sentence and a ``budget`` field (measured winner) but does not change the frozen-feature recommendation."""
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
    use_ood, ood_dead = _use_ood(probed)
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
    why.append(f"The transferability scores rank it #{pos} of {len(ranking)} candidate{'s' * (len(ranking) > 1)} ({combined_word(rank)} "
               f"{row['combined_rank']:.1f} over {', '.join(combined)}{first}).")
    layer, layer_index, n_layers, criterion = row.get("layer"), None, None, None
    if probed:
        p = probed[model]
        best = _chosen_row(p, use_ood)
        criterion = _criterion(p, use_ood)
        layer, layer_index, n_layers = best["layer"], best["index"], len(p["layers"])
        chance = _id_chance(p)
        evs = {m: probe_evidence(q) for m, q in probed.items()}
        id_dead = all(e["id_at_chance"] is True for e in evs.values())
        if ood_dead:
            uris = list(dict.fromkeys(u for q in probed.values() for u in q.get("ood_data") or []))
            top = max((r.get("ood_mean_accuracy") or 0.0) for q in probed.values() for r in q["layers"])
            oc = _ood_chance(p)
            why.append(f"The OOD evidence is at chance: on {', '.join(data_label(u) for u in uris)}, every shortlisted model's "
                       f"linear probe is within noise of chance at every layer (best mean OOD {fmt_pct(top)}"
                       + (f" vs chance {fmt_pct(oc)}" if oc is not None else "") + "), so robustness out of distribution "
                       "could not be measured and the choice rests on held-out ID accuracy.")
            caveats.append("The OOD sets carry no evidence: every probe is at chance on them. Check them (a shift so strong "
                           "that it destroys the images? labels that do not match the ID classes?).")
        if use_ood:
            names = ", ".join(data_label(u) for u in p["ood_data"])
            lead = f"Among the {len(probed)} shortlisted models it holds up best out of distribution: a" if len(probed) > 1 else "A"
            why.append(f"{lead} linear probe on "
                       f"its layer {layer} (chosen by {criterion}) gets {fmt_pct(best['id_accuracy'])} on held-out ID data and "
                       f"{fmt_pct(best['ood_mean_accuracy'])} on average over {len(p['ood_data'])} OOD set{'s' * (len(p['ood_data']) > 1)} ({names}); "
                       f"chance is {fmt_pct(chance)}.")
            last = p["layers"][-1]
            mean = (p.get("tunnel") or {}).get("mean") or {}
            if (best["index"] < len(p["layers"]) - 1 and mean.get("start") is not None and mean.get("pct_retained") is not None
                    and not evs[model]["ood_at_chance"]):
                why.append(f"Take the features of {layer}, not of the last layer {last['layer']}: the last layer keeps only "
                           f"{mean['pct_retained']:.0f}% of the best OOD accuracy ({fmt_pct(last.get('ood_mean_accuracy'))} vs "
                           f"{fmt_pct(max(r.get('ood_mean_accuracy') or 0.0 for r in p['layers']))} mean OOD; a "
                           f"{mean.get('strength', '')} tunnel of {mean['length']} layer(s)).")
            elif best["index"] < len(p["layers"]) - 1 and fmt_pct(best["ood_mean_accuracy"]) == fmt_pct(last.get("ood_mean_accuracy")):
                why.append(f"Layer {layer} and the last layer {last['layer']} are equally robust ({fmt_pct(best['ood_mean_accuracy'])} "
                           f"mean OOD); {layer} is taken for its ID accuracy ({fmt_pct(best['id_accuracy'])} vs "
                           f"{fmt_pct(last['id_accuracy'])}) or, equal there too, as the earlier layer.")
            elif best["index"] < len(p["layers"]) - 1:
                why.append(f"Layer {layer} is slightly more robust than the last layer {last['layer']} "
                           f"({fmt_pct(best['ood_mean_accuracy'])} vs {fmt_pct(last.get('ood_mean_accuracy'))} mean OOD).")
            else:
                why.append("There is no OOD tunnel to avoid: the last layer is also the most robust one.")
            id_best = max(probed, key=lambda m: (_best_id_row(probed[m])["id_accuracy"], -ranking.index(m)))
            ib, own = _best_id_row(probed[id_best]), _best_id_row(p)
            if id_best != model and ib["id_accuracy"] > own["id_accuracy"] + TIE:
                why.append(f"If only in-distribution accuracy matters, {id_best} (its best ID layer {ib['layer']}) is ahead on "
                           f"ID data: {fmt_pct(ib['id_accuracy'])} vs at best {fmt_pct(own['id_accuracy'])}.")
            for u in p["ood_data"]:
                if all(u in e["ood_sets_at_chance"] for m, e in evs.items() if u in (probed[m].get("ood_data") or [])):
                    caveats.append(f"OOD set {data_label(u)} is at chance for every shortlisted model at every layer: it carries "
                                   "no evidence about robustness (a shift that destroys the images? other labels?), and it "
                                   "lowers every model's mean OOD accuracy alike.")
        else:
            lead = f"Among the {len(probed)} shortlisted models its" if len(probed) > 1 else "Its"
            tail = (" No OOD data was given, so robustness was not measured." if not ood_dead else "")
            why.append(f"{lead} layer {layer} (chosen by {criterion}) gives the best held-out ID accuracy "
                       f"with a linear probe: {fmt_pct(best['id_accuracy'])} (chance {fmt_pct(chance)}).{tail}")
        if id_dead:
            top_id = max(r["id_accuracy"] for q in probed.values() for r in q["layers"])
            why.append(f"But the ID evidence is at chance too: every shortlisted model's probe is within noise of chance on "
                       f"held-out ID data at every layer (best {fmt_pct(top_id)} vs chance {fmt_pct(chance)}), so no measurement "
                       "supports this choice.")
            caveats.append("No shortlisted model's features separate the ID classes (every probe at chance): check the labels "
                           "and the data, or try other models.")
        elif evs[model]["id_at_chance"] is True:
            caveats.append(f"{model}'s probe is at chance on held-out ID data at every layer.")
        fl = layer_flags(p)[best["index"]]
        collapsed = (["ID"] if fl["id_collapsed"] else []) + [data_label(u) for u, v in fl["ood_collapsed"].items() if v]
        if collapsed:
            caveats.append(f"At layer {layer}, {model}'s probe predicts one class for most samples of {', '.join(collapsed)} "
                           "(collapsed); its accuracy there says little about the features.")
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
    why += _pretraining_sentences(model, rows, probed, use_ood)
    ft = _finetune_sentence(finetunes, config.get("finetune_epochs"),
                            _chosen_row(probed[model], use_ood) if model in probed else None, criterion)
    if ft:
        why.append(ft)
    bs = _budget_sentence(budget, model)
    if bs:
        why.append(bs)
    n_warn = sum(len(v) for v in row.get("warnings", {}).values())
    if n_warn:
        caveats.append(f"{n_warn} reliability warning(s) on its scores (small N for the dimension, saturation); "
                       "see the ranking table.")
    headline = f"Use {model}" + (f", features of layer {layer}" if layer else "") + "."
    return {"model": model, "layer": layer, "layer_index": layer_index, "n_layers": n_layers, "rank_position": pos,
            "n_candidates": len(ranking), "headline": headline, "why": why, "caveats": caveats, "basis": basis,
            "criterion": criterion, "ood_evidence_at_chance": ood_dead if probed else None,
            "evidence": evidence_rows(probed, use_ood) if probed else [],
            "budget": {"model": budget.get("recommended"), "val_accuracy": budget.get("recommended_val_accuracy"),
                       "agrees": budget.get("recommended") == model} if budget else None}
