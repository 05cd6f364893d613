"""The scorer benchmark (``transferlens bench scores``): which transferability score predicts transfer.

For every target, every score ranks the candidates (zoo models; layers of the text encoder for text
targets) from the target's train set; each ranking is compared with each ground truth of
:mod:`.evaluate` (mean over seeds) by

- weighted Kendall τ (``scipy.stats.weightedtau`` with its default hyperbolic weigher, ground truth
  first, as in You et al. 2021 "LogME" and later work): disagreements among the best models weigh most;
- Kendall τ-b and Pearson r;
- top-1 regret: accuracy of the best candidate minus that of the candidate the score puts first
  (accuracy points, 0 = the score picks the best model).

Scores where lower is better (the task-relatedness bounds) are negated first. The combined
recommendation of ``rank`` (a mean rank over a set of scores) is **chosen on the selection half of the
targets** (``SELECTION_TARGETS``, fixed in advance) by mean weighted τ against the primary ground truth
(fine-tuning accuracy where it exists, else linear-probe accuracy) and **reported on the other half**. Only
scores cheap enough for ``rank``'s default take part (``NOT_COMBINABLE``: the task-relatedness bounds);
what the rule picks without that restriction is recorded too (``combined_unrestricted``).

Text targets: each layer of the text encoder is scored in its own ``rank_models`` call, so the zoo-relative
scores (NCTI, ETran) are constant there and count as not available.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy import stats

from ..errors import UsageError
from ..io import atomic_write_text
from .suite import SUITE, group_of, lookup_target
from .targets import TARGETS

FORMAT = "transferlens.bench-scores/1"
#: Part of every score-cache key: bump it when a score's definition or the scoring of candidates changes, so that a
#: cache filled by older code is recomputed, not reused (2: GBC / ETran reference defaults and zoo-relative scores
#: combined across all candidates of a target, issue 18).
SCORES_VERSION = 2
GROUND_TRUTHS = ("finetune", "probe", "ncc", "finetune_ood", "probe_ood")
# Fixed before any result was seen: half of the targets (one of each kind where possible) choose the
# combined recommendation; the other half only report it. digits and digits-10shot share a test set,
# so they sit in different halves.
SELECTION_TARGETS = ("digits", "fashion-novel", "cyrillic-5shot", "fortunes")
REPORT_TARGETS = ("digits-uci", "glyph-digits", "greek", "digits-10shot")
MAX_COMBINATION = 3


def primary_truth(entry: dict) -> float:
    """Fine-tuning accuracy when the candidate was fine-tuned, else linear-probe accuracy."""
    return entry["finetune"] if entry.get("finetune") is not None else entry["probe"]


def compare(score: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Weighted τ, Kendall τ, Pearson r and top-1 regret of ``score`` (higher = predicted better) vs ``truth``."""
    score, truth = np.asarray(score, float), np.asarray(truth, float)
    ok = np.isfinite(score) & np.isfinite(truth)
    score, truth = score[ok], truth[ok]
    if score.size < 3 or np.ptp(score) == 0 or np.ptp(truth) == 0:
        return {"weighted_tau": float("nan"), "kendall_tau": float("nan"), "pearson": float("nan"), "regret": float("nan"), "n": int(score.size)}
    return {
        "weighted_tau": float(stats.weightedtau(truth, score).statistic),
        "kendall_tau": float(stats.kendalltau(truth, score).statistic),
        "pearson": float(stats.pearsonr(truth, score).statistic),
        "regret": float(truth.max() - truth[int(np.argmax(score))]),
        "n": int(score.size),
    }


def mean_rank_score(table: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    """The combined score: minus the mean rank (1 = best) over ``names`` (models lacking one are ranked on the rest)."""
    ranks = []
    for name in names:
        v = table[name]
        r = np.full(v.shape, np.nan)
        ok = np.isfinite(v)
        r[ok] = stats.rankdata(-v[ok], method="average")
        ranks.append(r)
    stacked = np.stack(ranks)
    n = np.isfinite(stacked).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, -np.nansum(stacked, 0) / n, np.nan)


def score_target(target: str, candidates: list[dict], scores: list[str], train: str | None = None) -> dict[str, Any]:
    """Scores (signed: higher = better) of the candidates on ``target``'s train set (``train``: its data URI,
    default ``TARGETS[target].train``), and seconds per score."""
    from ..metrics.scores import zoo_normalise
    from ..ranking import RELATEDNESS_SCORES, _higher_is_better, rank_models

    by_layer: dict[str, list[str]] = {}
    for c in candidates:
        by_layer.setdefault(c["layer_request"], []).append(c["model"])
    values: dict[str, dict[str, float]] = {s: {} for s in scores}
    seconds: dict[str, list[float]] = {s: [] for s in scores}
    parts: dict[str, dict[str, dict]] = {}  # zoo-relative score -> candidate -> its components
    for layer, models in by_layer.items():
        is_zoo = all(m.startswith("zoo:") for m in models)
        wanted = [s for s in scores if is_zoo or s not in RELATEDNESS_SCORES]
        record = rank_models(models, train or lookup_target(target).train, scores=wanted, layer=layer)
        for row in record["models"]:
            key = row["model"] if layer == "penultimate" else f"{row['model']}@{layer}"
            for s in wanted:
                v = row["scores"].get(s)
                if v is not None:
                    values[s][key] = float(v) if _higher_is_better(s) else -float(v)
                if s in row["seconds"]:
                    seconds[s].append(float(row["seconds"][s]))
            for s, comps in (row.get("components") or {}).items():
                parts.setdefault(s, {})[key] = comps
    # zoo-relative scores (NCTI, ETran) are min-max combinations over a zoo: the zoo is every candidate of the
    # target, not one layer group (a group of one model, e.g. one layer of one text encoder, would be constant 0)
    for s, by_key in parts.items():
        if len(by_key) > 1 and len(by_layer) > 1:
            keys = list(by_key)
            combined = zoo_normalise(s, [by_key[k] for k in keys])
            values[s] = {k: (float(v) if _higher_is_better(s) else -float(v)) for k, v in zip(keys, combined)}
    return {"values": values, "seconds": {s: (float(np.mean(v)) if v else None) for s, v in seconds.items()}}


def _cached_score_target(target: str, cands: list[dict], scores: list[str], cache_dir: Path | None,
                         train: str | None = None) -> dict[str, Any]:
    """:func:`score_target`, stored per (target, candidates, scores) in ``cache_dir`` so that processes can
    split the targets between them and an interrupted bench resumes."""
    if cache_dir is None:
        return score_target(target, cands, scores, train)
    key = hashlib.sha256(json.dumps([FORMAT, SCORES_VERSION, target, cands, scores], sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{target}-{key}.json"
    if path.exists():
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass  # a corrupt entry is recomputed and overwritten
    scored = score_target(target, cands, scores, train)
    atomic_write_text(path, json.dumps(scored, default=float))
    return scored


def score_target_task(item: tuple[str, list[dict], str], *, scores: list[str], cache_dir: Path | None) -> dict[str, Any]:
    """One target's scores, ``item = (target, candidates, train URI)``: the unit of work of the executors."""
    target, cands, train = item
    return _cached_score_target(target, cands, scores, cache_dir, train)


def run_bench(ground_truth: dict, scores: list[str] | None = None, targets: list[str] | None = None,
              progress: Callable[[str, int, int], None] | None = None, cache_dir: Path | None = None,
              executor: str = "local", address: str | None = None, suite: bool = False) -> dict[str, Any]:
    """Score every target's candidates and compare with the ground truth table of :mod:`.evaluate`.

    ``suite``: by default every target of :data:`.suite.SUITE` in the ground truth (else of ``TARGETS``), and the
    result gets the nested grouped selection of :mod:`.selection` (``result["selection"]``).

    ``cache_dir``: keep each target's scores there (see :func:`_cached_score_target`). ``executor="ray"``
    scores the targets as parallel Ray tasks (:mod:`transferlens.executors`), with the same result."""
    from ..executors import check_executor, map_tasks
    from ..metrics.scores import list_scores
    from ..ranking import RELATEDNESS_SCORES

    check_executor(executor, address)

    scores = list(scores) if scores else list_scores() + list(RELATEDNESS_SCORES)
    summary = ground_truth["summary"]
    present = sorted({e["target"] for e in summary})
    targets = list(targets) if targets else [t for t in (SUITE if suite else TARGETS) if t in present]
    missing = [t for t in targets if t not in present]
    if missing:
        raise UsageError(f"the ground truth has no results for target(s) {', '.join(missing)}; run `transferlens zoo evaluate` first.")
    per_target: dict[str, Any] = {}
    entries_of = {t: [e for e in summary if e["target"] == t] for t in targets}
    plan = {t: [{"model": e["model"], "layer_request": "penultimate" if e["model"].startswith("zoo:") else e["layer"], "key": e["candidate"]}
                for e in entries_of[t]] for t in targets}
    remote: dict[str, Any] = {}
    if executor != "local":  # every target at once; below, the table is assembled from the results
        items = [(t, plan[t], lookup_target(t).train) for t in targets]
        remote = dict(zip(targets, map_tasks(score_target_task, items, executor=executor, address=address, label=lambda it: it[0],
                                             kwargs={"scores": scores, "cache_dir": cache_dir}, progress=progress is not None)))
    for i, target in enumerate(targets):
        entries, cands = entries_of[target], plan[target]
        t0 = time.perf_counter()
        scored = remote[target] if target in remote else _cached_score_target(target, cands, scores, cache_dir)
        keys = [c["key"] for c in cands]
        table = {s: np.array([scored["values"][s].get(k, np.nan) for k in keys]) for s in scores}
        truths = {g: np.array([e.get(g, np.nan) if g != "primary" else primary_truth(e) for e in entries], float) for g in (*GROUND_TRUTHS, "primary")}
        metrics = {s: {g: compare(table[s], truths[g]) for g in truths} for s in scores}
        per_target[target] = {"kind": lookup_target(target).kind, "group": group_of(target), "candidates": keys, "scores": {s: table[s].tolist() for s in scores},
                              "truth": {g: v.tolist() for g, v in truths.items()}, "metrics": metrics,
                              "seconds_per_candidate": scored["seconds"], "wall_seconds": round(time.perf_counter() - t0, 1)}
        if progress is not None:
            progress(target, i + 1, len(targets))
    result = {"format": FORMAT, "ground_truth_protocol": ground_truth["protocol"], "scores": scores, "targets": per_target,
              "selection_targets": [t for t in SELECTION_TARGETS if t in per_target],
              "report_targets": [t for t in REPORT_TARGETS if t in per_target]}
    result["averages"] = average_metrics(result)
    result["combined"] = choose_combination(result)
    result["combined_unrestricted"] = choose_combination(result, exclude=())  # for the record: what cost-blind selection picks
    if suite:
        from ..ranking import COMBINED_AGGREGATOR, COMBINED_SCORES
        from .selection import select_default

        result["selection"] = select_default(result, fixed={f"{COMBINED_AGGREGATOR}({', '.join(COMBINED_SCORES)}) (rank's default now)": (COMBINED_AGGREGATOR, COMBINED_SCORES)})
    return result


def average_metrics(result: dict, targets: list[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """Mean of each metric over ``targets`` (default: all) per score and ground truth (NaN-aware)."""
    targets = targets or list(result["targets"])
    out: dict[str, dict[str, dict[str, float]]] = {}
    for s in result["scores"]:
        out[s] = {}
        for g in (*GROUND_TRUTHS, "primary"):
            vals = {m: [result["targets"][t]["metrics"][s][g][m] for t in targets if g in result["targets"][t]["metrics"][s]] for m in ("weighted_tau", "kendall_tau", "pearson", "regret")}
            out[s][g] = {m: (float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")) for m, v in vals.items()}
    return out


def _mean_wtau(result: dict, names: tuple[str, ...], targets: list[str]) -> float:
    taus = []
    for t in targets:
        tt = result["targets"][t]
        table = {s: np.array(tt["scores"][s], float) for s in names}
        if not all(np.isfinite(table[s]).any() for s in names):
            continue
        taus.append(compare(mean_rank_score(table, names), np.array(tt["truth"]["primary"]))["weighted_tau"])
    return float(np.nanmean(taus)) if taus and np.isfinite(taus).any() else float("nan")


#: Left out of the combined recommendation: the task-relatedness bounds cost 30-50 s per candidate (every
#: other score < 1.1 s), so ``rank`` computes them only on request and its default cannot depend on them.
NOT_COMBINABLE = ("task_relatedness", "task_relatedness_label_free")


def choose_combination(result: dict, exclude: tuple[str, ...] = NOT_COMBINABLE) -> dict[str, Any]:
    """Pick the mean-rank combination (up to ``MAX_COMBINATION`` scores, none of ``exclude``) on the selection targets."""
    sel, rep = result["selection_targets"], result["report_targets"]
    if not sel:
        return {}
    usable = [s for s in result["scores"] if s not in exclude and all(np.isfinite(result["targets"][t]["scores"][s]).sum() >= 3 for t in sel if t in result["targets"] and lookup_target(t).modality == "image")]
    best, best_tau = None, -np.inf
    for k in range(1, MAX_COMBINATION + 1):
        for combo in itertools.combinations(usable, k):
            tau = _mean_wtau(result, combo, sel)
            if np.isfinite(tau) and tau > best_tau + 1e-12:
                best, best_tau = combo, tau
    singles_sel = {s: _mean_wtau(result, (s,), sel) for s in usable}
    singles_rep = {s: _mean_wtau(result, (s,), rep) for s in usable}
    best_single_sel = max(singles_sel, key=lambda s: singles_sel[s] if np.isfinite(singles_sel[s]) else -np.inf)
    best_single_rep = max(singles_rep, key=lambda s: singles_rep[s] if np.isfinite(singles_rep[s]) else -np.inf) if rep else None
    return {
        "scores": list(best or ()), "selection_weighted_tau": best_tau,
        "report_weighted_tau": _mean_wtau(result, tuple(best or ()), rep) if rep and best else float("nan"),
        "best_single_on_selection": best_single_sel, "its_report_weighted_tau": singles_rep.get(best_single_sel, float("nan")),
        "best_single_on_report": best_single_rep, "best_single_report_weighted_tau": singles_rep.get(best_single_rep, float("nan")) if best_single_rep else float("nan"),
        "single_scores_selection": singles_sel, "single_scores_report": singles_rep,
        "truth": "primary (fine-tuning accuracy; linear probe for text targets)", "max_combination": MAX_COMBINATION,
        "excluded": list(exclude),
    }


def markdown(result: dict) -> str:
    """The scorer table (mean over targets) and the per-target weighted τ against the primary ground truth."""
    av = result["averages"]
    lines = ["| score | wτ finetune | wτ probe | wτ ncc | wτ finetune OOD | τ finetune | r finetune | regret finetune (pts) | s / candidate |",
             "|---|---|---|---|---|---|---|---|---|"]

    def f(x: float, scale: float = 1.0) -> str:
        return "n/a" if x is None or not np.isfinite(x) else f"{x * scale:.2f}"

    for s in result["scores"]:
        secs = [result["targets"][t]["seconds_per_candidate"].get(s) for t in result["targets"]]
        secs = [x for x in secs if x is not None]
        a = av[s]
        lines.append(f"| {s} | {f(a['finetune']['weighted_tau'])} | {f(a['probe']['weighted_tau'])} | {f(a['ncc']['weighted_tau'])} | "
                     f"{f(a['finetune_ood']['weighted_tau'])} | {f(a['finetune']['kendall_tau'])} | {f(a['finetune']['pearson'])} | "
                     f"{f(a['finetune']['regret'], 100)} | {f(float(np.mean(secs)) if secs else float('nan'))} |")
    targets = list(result["targets"])
    lines += ["", "Weighted τ against the primary ground truth, per target:", "",
              "| score | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
    for s in result["scores"]:
        lines.append(f"| {s} | " + " | ".join(f(result["targets"][t]["metrics"][s]["primary"]["weighted_tau"]) for t in targets) + " |")
    c = result.get("combined") or {}
    if c:
        lines += ["", f"Combined recommendation chosen on {', '.join(result['selection_targets'])}: mean rank of "
                  f"**{', '.join(c['scores'])}** (selection wτ {f(c['selection_weighted_tau'])}); on the report targets "
                  f"{', '.join(result['report_targets'])} its mean wτ is **{f(c['report_weighted_tau'])}**, against "
                  f"{f(c['its_report_weighted_tau'])} for the best single score on the selection half ({c['best_single_on_selection']}) "
                  f"and {f(c['best_single_report_weighted_tau'])} for the best single score on the report half itself ({c['best_single_on_report']})."
                  + (f" Excluded from the combination: {', '.join(c['excluded'])} (cost)." if c.get("excluded") else "")]
    u = result.get("combined_unrestricted") or {}
    if u and u.get("scores") != c.get("scores"):
        lines += ["", f"Without that exclusion the same rule picks **{', '.join(u['scores'])}** (selection wτ "
                  f"{f(u['selection_weighted_tau'])}, report wτ {f(u['report_weighted_tau'])})."]
    return "\n".join(lines) + "\n"


def write_bench(result: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    jpath = atomic_write_text(out / "bench_scores.json", json.dumps(result, indent=1, default=float))
    mpath = atomic_write_text(out / "bench_scores.md", markdown(result))
    if result.get("selection"):
        from .selection import markdown as selection_markdown

        atomic_write_text(out / "selection.md", selection_markdown(result["selection"]))
    return Path(jpath), Path(mpath)
