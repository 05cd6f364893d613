"""Bounded-memory benchmark (issue 10): NC measures, a transferability score and ridge probes streamed over N samples.

    .venv/bin/python benchmarks/bench_streaming.py                       # N = 10k, 100k, 1M at D = 256, K = 100
    .venv/bin/python benchmarks/bench_streaming.py --ns 10000 1000000 --out benchmarks/results/streaming.json

Each N runs in a fresh subprocess (numpy + transferlens only, 1 BLAS thread). Batches of 10,000 float32 rows
(K Gaussian classes, class means 0.1·N(0, I), unit noise) are generated on the fly and each is fed once to

- ``ClassStats.update`` of the training stream (float64 class statistics, O(K·D + D²) memory), from which come
  NC1-NC3 + CDNV + numerical rank / RankMe (``neural_collapse``, ``rank_report``), the H-score
  (``h_score_stats``, Bao et al. 2019) and a ridge probe (``select_alpha``: α chosen on a 10,000-sample
  validation batch from one eigendecomposition);
- the probe, on a held-out stream of N/10 samples (at least 10,000), scored batch by batch.

Reported: wall and CPU seconds per phase, throughput (samples per second of the accumulate phase, batch
generation included) and the child's peak RSS (``VmHWM``). The aim: peak RSS independent of N.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_geometry import _Clock, _make_batch, _rss_mb  # noqa: E402  (benchmarks share their helpers)


def stream_one(n: int, d: int = 256, k: int = 100, batch: int = 10_000) -> dict:
    from transferlens.metrics import collapse, rank
    from transferlens.metrics.scores import h_score_stats
    from transferlens.metrics.stats import ClassStats
    from transferlens.probe.ridge import select_alpha

    base_rss = _rss_mb()
    rng = np.random.default_rng(1)
    means = (rng.standard_normal((k, d)) * 0.1).astype(np.float32)  # overlapping classes: the probe accuracy is informative
    x_val, y_val = _make_batch(rng, means, batch)
    stats = ClassStats(k, d)
    clk = _Clock()
    done = 0
    while done < n:
        m = min(batch, n - done)
        stats.update(*_make_batch(rng, means, m))
        done += m
    t_acc = clk.lap()
    summary = stats.compute()
    nc = collapse.neural_collapse(summary, center="classes")
    ranks = rank.rank_report(summary)
    t_nc = clk.lap()
    h = h_score_stats(summary)
    t_h = clk.lap()
    probe, sel = select_alpha(summary, x_val, y_val)
    t_fit = clk.lap()
    n_test, correct, seen = max(batch, n // 10), 0, 0
    while seen < n_test:
        m = min(batch, n_test - seen)
        xb, yb = _make_batch(rng, means, m)
        correct += int(np.sum(probe.predict(xb) == yb))
        seen += m
    t_eval = clk.lap()
    return {"N": n, "D": d, "K": k, "batch": batch, "rss_at_start_mib": round(base_rss, 1), "peak_rss_mib": round(_rss_mb(), 1),
            "accumulate_s": t_acc, "throughput_samples_per_s": round(n / max(t_acc["wall"], 1e-9)),
            "nc_and_ranks_s": t_nc, "h_score_s": t_h, "ridge_select_alpha_s": t_fit, "probe_eval_s": t_eval,
            "n_test": n_test, "nc1": nc["nc1"], "cdnv": nc["cdnv"], "numerical_rank": ranks["numerical_rank"],
            "h_score": h, "ridge_alpha": probe.alpha, "ridge_test_accuracy": correct / n_test}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/streaming.json"))
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(stream_one(args.one)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    rows = []
    for n in args.ns:
        proc = subprocess.run([sys.executable, __file__, "--one", str(n)], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.exit(f"N={n} failed:\n{proc.stderr[-2000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"N={n:>9,}: accumulate {row['accumulate_s']['wall']:.1f} s ({row['throughput_samples_per_s']:,}/s), "
              f"NC+ranks {row['nc_and_ranks_s']['wall']:.2f} s, H {row['h_score_s']['wall']:.3f} s, "
              f"ridge α {row['ridge_select_alpha_s']['wall']:.2f} s, eval {row['probe_eval_s']['wall']:.1f} s; "
              f"peak RSS {row['peak_rss_mib']} MiB; NC1 {row['nc1']:.4g}, H {row['h_score']:.4g}, probe acc {row['ridge_test_accuracy']:.4f}",
              flush=True)
    record = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_at_end": os.getloadavg()},
              "blas_threads": 1, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(args.out)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
