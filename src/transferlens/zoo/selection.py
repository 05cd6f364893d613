"""Choosing ``rank``'s default rule honestly: nested grouped leave-one-group-out over the target suite (issue 18).

A **rule** turns the per-score values of the candidates of one target into one ranking:

- ``("mean", S)``: mean rank over the scores ``S`` (a Borda count; ``len(S) == 1`` is the single score);
- ``("median", S)``: median rank over ``S``: one wildly wrong score cannot move it (for ``|S| = 3``);
- ``("trimmed", S)``: trimmed Borda: per candidate the highest and the lowest of its ranks are dropped,
  the rest averaged (for ``|S| >= 3``).

Ranks are 1 = best among the candidates that have the score; a candidate lacking some scores is ranked
on the rest. When no score of ``S`` exists on a target (e.g. NCTI on the text targets, where it is
constant), the rule falls back to the mean rank over every score, as ``rank`` itself does.

A **procedure** picks a rule from a family (single scores; mean-rank combinations of <= 3 scores; medians;
trimmed Borda counts; all of them) by the best mean weighted τ over the training targets. Its
**held-out** performance is measured by grouped leave-one-group-out: each group of targets (targets that
share a base data set, :func:`.suite.group_of`) is held out in turn, the procedure picks on the others and
is scored on the held-out group. The **nested** procedure also chooses the family: inside each outer
training set, a second leave-one-group-out measures every family's held-out mean weighted τ and the best
family's pick is used. So a combination is only ever chosen because it won *held out* on the inner
folds; when the singles win there, the nested procedure returns the best single score.

What ships (``select_default(...)["default"]``): the nested procedure's pick on all groups only if the
nested procedure's outer held-out mean weighted τ beats that of picking the best single score; otherwise
the single score with the best mean weighted τ over all targets.

Uncertainty: percentile bootstrap 95 % intervals over targets (targets resampled with replacement,
seeded; ``bootstrap_ci``). The targets of one group are correlated, so these intervals are optimistic.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any, Sequence

import numpy as np
from scipy import stats

from ..errors import UsageError

Rule = tuple[str, tuple[str, ...]]
AGGREGATORS = ("mean", "median", "trimmed")
METRICS = ("weighted_tau", "kendall_tau", "regret")


def rank_matrix(table: dict[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """Ranks (1 = best; higher score = better) of the candidates under each score of ``names``, NaN where missing.
    Shape ``(len(names), n_candidates)``."""
    rows = []
    for name in names:
        v = np.asarray(table[name], float)
        r = np.full(v.shape, np.nan)
        ok = np.isfinite(v)
        if ok.any():
            r[ok] = stats.rankdata(-v[ok], method="average")
        rows.append(r)
    return np.stack(rows)


def _trimmed(col: np.ndarray) -> float:
    col = np.sort(col[np.isfinite(col)])
    if col.size == 0:
        return np.nan
    return float(col[1:-1].mean()) if col.size >= 3 else float(col.mean())


def aggregate(table: dict[str, np.ndarray], rule: Rule, fallback: Sequence[str] = ()) -> np.ndarray:
    """The rule's combined score per candidate (higher = better): minus the aggregated rank.

    The scores of the rule that have a finite value on no candidate are ignored; when none is left, the
    mean rank over ``fallback`` is used (all NaN if that is empty too)."""
    how, names = rule
    if how not in AGGREGATORS:
        raise UsageError(f"unknown rank aggregator {how!r}; choose one of {', '.join(AGGREGATORS)}.")
    present = [s for s in names if s in table and np.isfinite(np.asarray(table[s], float)).any()]
    if not present:
        present = [s for s in fallback if s in table and np.isfinite(np.asarray(table[s], float)).any()]
        how = "mean"
    n = len(next(iter(table.values()))) if table else 0
    if not present:
        return np.full(n, np.nan)
    ranks = rank_matrix(table, present)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, handled below
        if how == "mean":
            agg = np.nanmean(ranks, 0)
        elif how == "median":
            agg = np.nanmedian(ranks, 0)
        else:
            agg = np.array([_trimmed(ranks[:, j]) for j in range(ranks.shape[1])])
    return -agg


def candidate_rules(scores: Sequence[str], max_mean: int = 3, median_sizes: Sequence[int] = (3,),
                    trimmed_sizes: Sequence[int] = (4,)) -> dict[str, list[Rule]]:
    """The rule families: ``single``; ``mean`` (mean rank of 2..``max_mean`` scores); ``median`` (median rank of
    each ``median_sizes``-subset, and of all scores); ``trimmed`` (trimmed Borda of each ``trimmed_sizes``-subset,
    and of all scores). Order is deterministic, simpler rules first (ties go to the first)."""
    scores = tuple(scores)
    fam: dict[str, list[Rule]] = {"single": [("mean", (s,)) for s in scores]}
    fam["mean"] = [("mean", c) for k in range(2, max_mean + 1) for c in itertools.combinations(scores, k)]
    fam["median"] = [("median", c) for k in median_sizes for c in itertools.combinations(scores, k)] + [("median", scores)]
    fam["trimmed"] = [("trimmed", c) for k in trimmed_sizes for c in itertools.combinations(scores, k)] + [("trimmed", scores)]
    return fam


def rule_name(rule: Rule) -> str:
    how, names = rule
    if how == "mean" and len(names) == 1:
        return names[0]
    return f"{how}({', '.join(names)})"


def rule_metrics(result: dict, rules: Sequence[Rule], targets: Sequence[str], fallback: Sequence[str] = (),
                 truth: str = "primary") -> dict[str, np.ndarray]:
    """``{metric: array (n_rules, n_targets)}`` of every rule on every target of a ``bench scores`` result."""
    from .bench import compare

    out = {m: np.full((len(rules), len(targets)), np.nan) for m in METRICS}
    for j, t in enumerate(targets):
        tt = result["targets"][t]
        table = {s: np.asarray(v, float) for s, v in tt["scores"].items()}
        y = np.asarray(tt["truth"][truth], float)
        for i, rule in enumerate(rules):
            c = compare(aggregate(table, rule, fallback), y)
            for m in METRICS:
                out[m][i, j] = c[m]
    return out


def logo_folds(groups: Sequence[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Leave-one-group-out folds over target indices: ``(held-out group, train idx, test idx)``, groups in
    order of first appearance; a group is never split."""
    groups = list(groups)
    order = list(dict.fromkeys(groups))
    g = np.asarray(groups, dtype=object)
    return [(h, np.flatnonzero(g != h), np.flatnonzero(g == h)) for h in order]


def pick(wtau: np.ndarray, family: Sequence[int], train: np.ndarray) -> int:
    """The rule of ``family`` (row indices of ``wtau``) with the best mean weighted τ over ``train`` targets
    (NaN-aware; ties and all-NaN: the first)."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, handled below
        means = np.nanmean(wtau[np.asarray(family)][:, train], 1) if len(train) else np.full(len(family), np.nan)
    means = np.where(np.isfinite(means), means, -np.inf)
    return int(family[int(np.argmax(means))])


def _heldout(wtau: np.ndarray, family: Sequence[int], groups: np.ndarray, idx: np.ndarray) -> float:
    """Mean weighted τ over the targets ``idx`` of ``family``'s pick when each of their groups is held out."""
    vals = []
    for _, tr, te in logo_folds(list(groups[idx])):
        chosen = pick(wtau, family, idx[tr])
        vals += list(wtau[chosen, idx[te]])
    vals = np.asarray(vals, float)
    return float(np.nanmean(vals)) if np.isfinite(vals).any() else -np.inf


def nested_selection(metrics: dict[str, np.ndarray], families: dict[str, list[int]], groups: Sequence[str]) -> dict[str, Any]:
    """Grouped leave-one-group-out evaluation of each family's procedure and of the nested procedure.

    Returns per procedure (each family, and ``"nested"``) the held-out ``metrics`` per target (arrays over
    targets, in the column order of ``metrics``) and the rule chosen in each outer fold; and ``"final"``:
    what the nested procedure picks on all groups (family by leave-one-group-out over all of them, then the
    family's best rule on all targets) -- the rule to ship."""
    wtau = metrics["weighted_tau"]
    n = wtau.shape[1]
    g = np.asarray(list(groups), dtype=object)
    if len(g) != n:
        raise UsageError(f"{len(g)} groups for {n} targets.")
    procs = [*families, "nested"]
    held = {p: {m: np.full(n, np.nan) for m in METRICS} for p in procs}
    chosen: dict[str, list[dict]] = {p: [] for p in procs}
    for h, tr, te in logo_folds(g):
        picks = {f: pick(wtau, fam, tr) for f, fam in families.items()}
        inner = {f: _heldout(wtau, fam, g, tr) for f, fam in families.items()}
        best_f = max(families, key=lambda f: inner[f])  # ties: first family (singles)
        picks["nested"] = picks[best_f]
        for p in procs:
            for m in METRICS:
                held[p][m][te] = metrics[m][picks[p], te]
            chosen[p].append({"held_out": h, "rule": int(picks[p]), **({"family": best_f, "inner": inner} if p == "nested" else {})})
    all_idx = np.arange(n)
    inner_all = {f: _heldout(wtau, fam, g, all_idx) for f, fam in families.items()}
    final_f = max(families, key=lambda f: inner_all[f])
    return {"held_out": held, "chosen": chosen,
            "final": {"family": final_f, "rule": pick(wtau, families[final_f], all_idx), "family_heldout_weighted_tau": inner_all}}


def bootstrap_ci(values: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of the finite ``values`` and its percentile bootstrap interval
    (values resampled with replacement, ``n_boot`` times, ``numpy.random.default_rng(seed)``)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    boots = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(1)
    a = (1.0 - level) / 2.0
    return float(v.mean()), float(np.quantile(boots, a)), float(np.quantile(boots, 1.0 - a))


def select_default(result: dict, scores: Sequence[str] | None = None, targets: Sequence[str] | None = None,
                   n_boot: int = 2000, seed: int = 0, fixed: dict[str, Rule] | None = None) -> dict[str, Any]:
    """The nested grouped selection on a ``bench scores`` result: held-out weighted τ, Kendall τ and top-1
    regret with bootstrap CIs per procedure, every single score and ``fixed`` rules as they are (no choice
    involved), and the rule to ship (``"default"``). ``scores``: those the rules may use (default: every score
    of the result but ``bench.NOT_COMBINABLE``)."""
    from .bench import NOT_COMBINABLE
    from .suite import group_of

    targets = list(targets or result["targets"])
    scores = [s for s in (scores or result["scores"]) if s not in NOT_COMBINABLE]
    if len(targets) < 3:
        raise UsageError(f"the selection needs >= 3 targets, got {len(targets)}.")
    groups = [result["targets"][t].get("group") or group_of(t) for t in targets]
    if len(set(groups)) < 3:
        raise UsageError(f"the selection needs targets from >= 3 groups, got {len(set(groups))}.")
    fam_rules = candidate_rules(scores)
    fixed = dict(fixed or {})
    rules: list[Rule] = list(dict.fromkeys([r for rs in fam_rules.values() for r in rs] + list(fixed.values())))
    index = {r: i for i, r in enumerate(rules)}
    families = {f: [index[r] for r in rs] for f, rs in fam_rules.items()}
    families["any"] = [i for f in ("single", "mean", "median", "trimmed") for i in families[f]]
    metrics = rule_metrics(result, rules, targets, fallback=scores)
    nested = nested_selection(metrics, families, groups)

    def summary(per_target: dict[str, np.ndarray]) -> dict[str, Any]:
        return {m: dict(zip(("mean", "low", "high"), bootstrap_ci(per_target[m], n_boot, seed))) for m in METRICS}

    procedures = {p: {**summary(held), "rules_chosen": [rule_name(rules[c["rule"]]) for c in nested["chosen"][p]],
                      **({"families_chosen": [c["family"] for c in nested["chosen"][p]]} if p == "nested" else {})}
                  for p, held in nested["held_out"].items()}
    fixed_rows = {name: summary({m: metrics[m][index[r]] for m in METRICS}) for name, r in
                  [*((s, ("mean", (s,))) for s in scores), *fixed.items()]}
    # what ships: the nested procedure's pick only if that procedure beat picking the best single score
    # held out (outer folds); otherwise the single score that is best on all targets
    single_wins = not procedures["nested"]["weighted_tau"]["mean"] > procedures["single"]["weighted_tau"]["mean"]
    final_idx = pick(metrics["weighted_tau"], families["single"], np.arange(len(targets))) if single_wins else nested["final"]["rule"]
    final = rules[final_idx]
    # paired: held-out wτ of each procedure minus that of each fixed rule, target by target
    paired = {f"{p} - {name}": dict(zip(("mean", "low", "high"), bootstrap_ci(
        nested["held_out"][p]["weighted_tau"] - metrics["weighted_tau"][index[r]], n_boot, seed)))
        for p in ("single", "nested") for name, r in fixed.items()}
    return {
        "targets": targets, "groups": groups, "scores": scores, "n_rules": len(rules),
        "family_sizes": {f: len(v) for f, v in families.items()}, "bootstrap": {"n": n_boot, "seed": seed, "level": 0.95, "over": "targets"},
        "procedures": procedures, "fixed_rules": fixed_rows, "paired_weighted_tau": paired,
        "default": {"aggregator": final[0], "scores": list(final[1]), "name": rule_name(final),
                    "decision": "best single score (no combination won held out)" if single_wins else "nested procedure (beat the single score held out)",
                    "nested_pick": rule_name(rules[nested["final"]["rule"]]), "nested_family": nested["final"]["family"],
                    "family_heldout_weighted_tau": nested["final"]["family_heldout_weighted_tau"]},
        "per_target_heldout_weighted_tau": {p: dict(zip(targets, map(float, nested["held_out"][p]["weighted_tau"]))) for p in nested["held_out"]},
    }


def markdown(sel: dict[str, Any]) -> str:
    """The held-out table (procedures, then fixed rules) with 95 % bootstrap intervals."""

    def cell(d: dict, scale: float = 1.0) -> str:
        if not np.isfinite(d["mean"]):
            return "n/a"
        return f"{d['mean'] * scale:.2f} [{d['low'] * scale:.2f}, {d['high'] * scale:.2f}]"

    lines = [f"{len(sel['targets'])} targets in {len(set(sel['groups']))} groups; {sel['n_rules']} rules; "
             f"95 % percentile bootstrap over targets ({sel['bootstrap']['n']} resamples, seed {sel['bootstrap']['seed']}).", "",
             "| procedure (chosen per outer fold) | held-out wτ | held-out Kendall τ | held-out regret (pts) | rules chosen |",
             "|---|---:|---:|---:|---|"]
    for p, r in sel["procedures"].items():
        chosen = sorted(set(r["rules_chosen"]), key=r["rules_chosen"].index)
        lines.append(f"| {p} | {cell(r['weighted_tau'])} | {cell(r['kendall_tau'])} | {cell(r['regret'], 100)} | {'; '.join(chosen)} |")
    lines += ["", "| fixed rule (no selection) | wτ | Kendall τ | regret (pts) |", "|---|---:|---:|---:|"]
    for name, r in sorted(sel["fixed_rules"].items(), key=lambda kv: -np.nan_to_num(kv[1]["weighted_tau"]["mean"], nan=-9)):
        lines.append(f"| {name} | {cell(r['weighted_tau'])} | {cell(r['kendall_tau'])} | {cell(r['regret'], 100)} |")
    for name, r in sel.get("paired_weighted_tau", {}).items():
        lines += ["", f"Paired held-out wτ difference, {name}: {cell(r)}."]
    d = sel["default"]
    lines += ["", f"Default to ship: **{d['name']}**: {d['decision']}. The nested procedure on all groups would pick "
              f"{d['nested_pick']} (family `{d['nested_family']}`; leave-one-group-out wτ of each family on all groups: "
              + ", ".join(f"{f} {v:.3f}" for f, v in d["family_heldout_weighted_tau"].items()) + ")."]
    return "\n".join(lines) + "\n"
