"""rank's default chosen on the suite *with the real ImageNet pool added* (issues 16 and 18).

The 42-target suite (``benchmarks/results/zoo-suite/bench_scores.json``: 8 zoo models, reduced-protocol
fine-tuning as primary truth) is joined by the 8 built-in image targets scored on the real pool
(``benchmarks/real_models.py scores``: 4 ImageNet backbones + 4 random-init twins + 19 zoo models at their
penultimate layer, linear-probe accuracy as primary truth: the real backbones were not fine-tuned) and, when
``benchmarks/results/real/suite/`` exists, by suite targets scored on the real pool (8 real candidates + the
suite's 8 zoo models, their probe accuracy from the suite's one-seed ground truth), and by the text targets
scored on the real text pool when their bench tables exist (``benchmarks/results/real/text/bench/``,
``benchmarks/results/real/suite/text/bench/``: every hidden state of all-MiniLM-L6-v2 and all-mpnet-base-v2 as
candidates, linear-probe accuracy as truth, like the suite's text targets). A real
target keeps the cross-validation group of its base data set (``zoo.suite.group_of``), so ``real:digits`` is
held out together with the suite's digits targets. The rule families, the nested grouped leave-one-group-out
and the bootstrap are those of ``transferlens bench scores --suite`` (:func:`transferlens.zoo.selection.select_default`),
on the scores both tables have.

    python benchmarks/real_selection.py    # -> benchmarks/results/real/selection_with_real.{json,md}
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REAL = HERE / "results" / "real"


def real_entries(real_out: Path, targets: list[str], zoo_gt: dict[str, Path], real_gt: Path) -> tuple[dict, list[str]]:
    """Bench-result entries ``real:<target>`` from the score cache of ``real_models.py scores``."""
    from transferlens.ranking import DEFAULT_SCORES
    from transferlens.zoo.bench import _cached_score_target
    from transferlens.zoo.suite import group_of

    scores = list(DEFAULT_SCORES) + ["nleep"]  # exactly the list real_models.py scores with (the cache key)
    out = {}
    for target in targets:
        entries = [e for path in (real_gt, zoo_gt.get(target, zoo_gt["*"])) for e in json.loads(path.read_text())["summary"]
                   if e["target"] == target and e["candidate"] == e["model"]]
        cands = [{"model": e["model"], "layer_request": "penultimate", "key": e["candidate"]} for e in entries]
        scored = _cached_score_target(target, cands, scores, real_out / "score-cache")
        out[f"real:{target}"] = {
            "group": group_of(target), "kind": "real-pool", "candidates": [c["key"] for c in cands],
            "scores": {s: [scored["values"][s].get(c["key"], np.nan) for c in cands] for s in scores},
            "truth": {"primary": [e["probe"] for e in entries], "probe": [e["probe"] for e in entries]},
        }
    return out, scores


def text_entries(paths: list[Path], scores: list[str]) -> dict:
    """Entries ``real:<target>`` from ``transferlens bench scores`` tables of the real text pool (layer candidates)."""
    out = {}
    for path in paths:
        if not path.exists():
            continue
        for target, e in json.loads(path.read_text())["targets"].items():
            out[f"real:{target}"] = {"group": e["group"], "kind": "real-pool-text", "candidates": e["candidates"],
                                     "scores": {s: e["scores"][s] for s in scores},
                                     "truth": {"primary": e["truth"]["probe"], "probe": e["truth"]["probe"]}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite-bench", type=Path, default=HERE / "results" / "zoo-suite" / "bench_scores.json")
    ap.add_argument("--real-out", type=Path, default=REAL)
    ap.add_argument("--suite-real", type=Path, default=REAL / "suite",
                    help="real-pool ground truth and scores of suite targets (zoo candidates from the suite's ground truth)")
    ap.add_argument("--text-bench", type=Path, nargs="*",
                    default=[REAL / "text" / "bench" / "bench_scores.json", REAL / "suite" / "text" / "bench" / "bench_scores.json"],
                    help="bench tables of text targets on the real text pool (left out when absent)")
    ap.add_argument("--out", type=Path, default=REAL / "selection_with_real.json")
    a = ap.parse_args()
    from transferlens.ranking import COMBINED_AGGREGATOR, COMBINED_SCORES
    from transferlens.zoo.selection import markdown, select_default

    t0 = time.perf_counter()
    suite = json.loads(a.suite_bench.read_text())
    targets = sorted(json.loads((a.real_out / "scores.json").read_text()))
    zoo_gt = {"photos": a.real_out / "zoo" / "ground_truth.json", "*": HERE / "results" / "zoo" / "ground_truth.json"}
    real, real_scores = real_entries(a.real_out, targets, zoo_gt, a.real_out / "ground_truth.json")
    if (a.suite_real / "scores.json").exists():  # suite targets on the real pool: 8 real + the suite's 8 zoo models
        more = sorted(json.loads((a.suite_real / "scores.json").read_text()))
        extra, _ = real_entries(a.suite_real, more, {"*": a.suite_bench.parent / "ground_truth.json"},
                                a.suite_real / "ground_truth.json")
        real.update(extra)
    real.update(text_entries(a.text_bench, real_scores))
    scores = [s for s in suite["scores"] if s in real_scores]
    union = {"scores": scores, "targets": {**{t: suite["targets"][t] for t in suite["selection"]["targets"]}, **real}}
    fixed = {f"{COMBINED_AGGREGATOR}({', '.join(COMBINED_SCORES)}) (rank's default now)": (COMBINED_AGGREGATOR, tuple(COMBINED_SCORES))}
    sel = select_default(union, scores=scores, fixed=fixed)
    # the same rules on the real targets alone, as they are (no selection): how each does on the real pool
    real_only = {t: np.array(sel["per_target_heldout_weighted_tau"].get("single", {}).get(t, np.nan)) for t in real}
    out = {"suite_bench": str(a.suite_bench.relative_to(HERE.parent)), "real_targets": list(real), "scores": scores,
           "n_targets": len(union["targets"]), "selection": sel, "seconds": round(time.perf_counter() - t0, 1)}
    a.out.write_text(json.dumps(out, indent=1, default=float) + "\n")
    md = markdown(sel)
    a.out.with_suffix(".md").write_text(f"Suite ({len(suite['selection']['targets'])} targets) + real pool ({len(real)} targets: "
                                        f"{', '.join(real)}); scores: {', '.join(scores)}.\n\n" + md)
    print(md)
    print(f"{time.perf_counter() - t0:.0f} s; held-out single-score wτ on the real targets: "
          + ", ".join(f"{t} {float(v):.2f}" for t, v in real_only.items()))


if __name__ == "__main__":
    main()
