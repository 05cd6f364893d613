"""Benchmark of the representation-geometry library (issue 3).

    .venv/bin/python benchmarks/bench_geometry.py              # all three parts
    .venv/bin/python benchmarks/bench_geometry.py --part nc    # only one of: nc, stream, gc
    .venv/bin/python benchmarks/bench_geometry.py --threads 1  # 1 BLAS + 1 torch thread (shared machine)

Parts
  nc      all NC measures + CDNV + ranks for N=100,000 x D=512, K=100 (features in memory, float32)
  stream  N up to 1,000,000 x D=256, K=100 streamed in batches of 10,000 through ClassStats; each N runs in
          a fresh subprocess and reports its peak RSS (resource.getrusage ru_maxrss)
  gc      exact vs stochastic geometric complexity of a random-init torchvision ResNet-18 tapped at its
          penultimate layer (avgpool, 512-d) on 32x32 inputs
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings

import numpy as np


def _rss_mb() -> float:
    """Peak RSS of this process in MiB: VmHWM (reset by execve, unlike ru_maxrss which a child inherits)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


class _Clock:
    """Wall and CPU (process) seconds; CPU time is what an idle machine would show for 1 thread."""

    def __init__(self) -> None:
        self.w, self.c = time.perf_counter(), time.process_time()

    def lap(self) -> dict:
        w, c = time.perf_counter(), time.process_time()
        out = {"wall": round(w - self.w, 3), "cpu": round(c - self.c, 3)}
        self.w, self.c = w, c
        return out


def _make_batch(rng: np.random.Generator, means: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    k, d = means.shape
    y = rng.integers(0, k, size=n)
    x = means[y] + rng.standard_normal((n, d), dtype=np.float32)
    return x.astype(np.float32, copy=False), y


def _all_measures(stats, weight, bias, features=None):
    from transferlens.metrics import collapse, rank

    timings, out = {}, {}
    clk = _Clock()
    s = stats.compute()
    timings["compute_summary"] = clk.lap()
    out.update(collapse.neural_collapse(s, weight=weight, center="classes"))
    timings["nc1_nc2_nc3_cdnv"] = clk.lap()
    if features is not None:
        out["nc4"] = collapse.nc4(features, weight, bias, means=s.means)
        timings["nc4_pass"] = clk.lap()
    out.update(rank.rank_report(s))
    timings["ranks_from_stats"] = clk.lap()
    return out, timings


def part_nc() -> dict:
    from transferlens.metrics.stats import ClassStats

    n, d, k = 100_000, 512, 100
    rng = np.random.default_rng(0)
    means = (rng.standard_normal((k, d)) * 0.5).astype(np.float32)
    x, y = _make_batch(rng, means, n)
    weight = rng.standard_normal((k, d))
    bias = rng.standard_normal(k)
    total = _Clock()
    clk = _Clock()
    st = ClassStats(k, d).update(x, y)
    t_acc = clk.lap()
    res, timings = _all_measures(st, weight, bias, features=x)
    timings = {"accumulate": t_acc, **timings, "total": total.lap()}
    # array path of the ranks (full SVD of the 100k x 512 matrix), for comparison only
    from transferlens.metrics import rank

    clk = _Clock()
    er = rank.effective_rank(x)
    t_svd = clk.lap()
    return {"N": n, "D": d, "K": k, "timings_s": timings, "results": res,
            "effective_rank_from_array_svd": er, "array_svd_seconds": t_svd, "peak_rss_mb": _rss_mb()}


def stream_one(n: int, d: int = 256, k: int = 100, batch: int = 10_000) -> dict:
    from transferlens.metrics.stats import ClassStats

    base_rss = _rss_mb()
    rng = np.random.default_rng(1)
    means = (rng.standard_normal((k, d)) * 0.5).astype(np.float32)
    weight = rng.standard_normal((k, d))
    bias = rng.standard_normal(k)
    st = ClassStats(k, d)
    clk = _Clock()
    done = 0
    while done < n:
        m = min(batch, n - done)
        xb, yb = _make_batch(rng, means, m)
        st.update(xb, yb)
        done += m
    t_acc = clk.lap()  # includes generating the random batches
    res, timings = _all_measures(st, weight, bias)  # NC4 needs a 2nd pass; see NCCAgreement
    return {"N": n, "D": d, "K": k, "batch": batch, "generate_and_accumulate_s": t_acc,
            "measures_s": {"wall": round(sum(t["wall"] for t in timings.values()), 3),
                           "cpu": round(sum(t["cpu"] for t in timings.values()), 3)},
            "rss_at_start_mb": base_rss, "peak_rss_mb": _rss_mb(), "nc1": res["nc1"], "cdnv": res["cdnv"],
            "numerical_rank": res["numerical_rank"]}


def part_stream(ns: list[int], threads: int | None = None) -> list[dict]:
    out = []
    for n in ns:
        cmd = [sys.executable, __file__, "--stream-one", str(n)]
        if threads:
            cmd += ["--threads", str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def part_gc(n_images: int = 8, probes=(1, 4, 16, 64), seeds: int = 10) -> dict:
    import torch
    import torchvision

    from transferlens.geometry.complexity import LayerTap, gc_exact, gc_stochastic

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    tap = LayerTap(model, "avgpool")
    x = torch.randn(n_images, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    clk = _Clock()
    ex = gc_exact(tap, x, batch_size=2, method="vmap")
    t_exact = clk.lap()
    rows = []
    for m in probes:
        vals, ses, times, cpus = [], [], [], []
        for s in range(seeds):
            clk = _Clock()
            r = gc_stochastic(tap, x, n_probes=m, seed=s, batch_size=n_images)
            lap = clk.lap()
            times.append(lap["wall"])
            cpus.append(lap["cpu"])
            vals.append(r.value)
            ses.append(r.se)
        vals = np.array(vals)
        rows.append({"probes": m, "mean_wall_s": float(np.mean(times)), "mean_cpu_s": float(np.mean(cpus)),
                     "rel_rmse": float(np.sqrt(np.mean((vals - ex.value) ** 2)) / ex.value),
                     "mean_reported_rel_se": float(np.mean(ses) / ex.value), "values": vals.tolist()})
    return {"model": "torchvision resnet18(weights=None), eval, tap avgpool (512-d)", "input": f"{n_images}x3x32x32 N(0,1)",
            "exact_gc": ex.value, "exact_time_s": t_exact, "exact_per_image_wall_s": t_exact["wall"] / n_images,
            "stochastic": rows, "torch_threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["nc", "stream", "gc", "all"], default="all")
    ap.add_argument("--stream-one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--stream-ns", default="100000,250000,1000000")
    ap.add_argument("--gc-images", type=int, default=8)
    ap.add_argument("--gc-seeds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None,
                    help="limit BLAS (threadpoolctl) and torch intra-op threads; default: library defaults")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from threadpoolctl import threadpool_info, threadpool_limits

    limiter = threadpool_limits(limits=args.threads) if args.threads else None
    if args.stream_one is not None:  # child: numpy only (no torch import inflating the RSS)
        print(json.dumps(stream_one(args.stream_one)))
        return
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# load average at start: {os.getloadavg()}; BLAS: "
          f"{[(i['internal_api'], i['num_threads']) for i in threadpool_info()]}; torch threads: "
          f"{torch.get_num_threads()}", flush=True)
    report = {}
    if args.part in ("stream", "all"):  # first, while this parent process is still small
        report["stream"] = part_stream([int(v) for v in args.stream_ns.split(",")], args.threads)
        print(json.dumps({"stream": report["stream"]}, indent=1), flush=True)
    if args.part in ("nc", "all"):
        report["nc"] = part_nc()
        print(json.dumps({"nc": report["nc"]}, indent=1), flush=True)
    if args.part in ("gc", "all"):
        report["gc"] = part_gc(n_images=args.gc_images, seeds=args.gc_seeds)
        print(json.dumps({"gc": report["gc"]}, indent=1), flush=True)
    print(f"# load average at end: {os.getloadavg()}", flush=True)
    del limiter


if __name__ == "__main__":
    main()
