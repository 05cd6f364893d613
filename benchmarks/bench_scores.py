"""Wall-clock of every registered transferability score at N=10,000, D=2048, K=100 (issue 4, item 2).

Run:  .venv/bin/python benchmarks/bench_scores.py [--n 10000 --d 2048 --k 100 --timeout 900 --only logme,sfda]

Synthetic features stand in for penultimate features: K class means plus noise with a power-law spectrum
(variance ~ 1/j in a random rotation), so that PCA-based scores see a realistic decay (80 % of the variance
in ~80 dimensions). Source-head probabilities for LEEP/NCE come from a random 1000-class linear head.
Each score runs in a forked child process (so a runaway one can be stopped at --timeout) and is timed by
``compute_score`` (validation included, data generation excluded); ``cpu_s`` is the child's CPU time
(all threads), a load-independent companion of the wall-clock on a shared machine. BLAS threads: library default unless
``--blas-threads`` is given.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time

import numpy as np


def make_data(n: int, d: int, k: int, c_s: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % k)
    std = np.arange(1, d + 1, dtype=np.float64) ** -0.5
    rot = np.linalg.qr(rng.normal(size=(d, d)))[0]
    means = 0.3 * rng.normal(size=(k, d)) * std
    x = (means[y] + rng.normal(size=(n, d)) * std) @ rot.T
    logits = x @ rng.normal(size=(d, c_s)) * 2.0
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return x, y, p


def _child(conn, name: str, x, y, p, opts: dict) -> None:
    from transferlens.metrics.scores import SCORES, compute_score

    try:
        cpu0 = time.process_time()
        r = compute_score(name, x, y, source_probs=p if SCORES[name].needs_source_probs else None, **opts)
        conn.send(("ok", r.value, r.seconds, time.process_time() - cpu0, r.warnings))
    except Exception as exc:  # report, do not crash the benchmark
        conn.send(("error", repr(exc), float("nan"), float("nan"), []))
    conn.close()


def run_one(name: str, x, y, p, opts: dict, timeout: float):
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, name, x, y, p, opts))
    start = time.perf_counter()
    proc.start()
    child.close()
    if parent.poll(timeout):
        out = parent.recv()
        proc.join()
        return out
    proc.kill()
    proc.join()
    return ("timeout", None, time.perf_counter() - start, float("nan"), [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--source-classes", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--only", type=str, default="", help="comma-separated run labels (as printed)")
    ap.add_argument("--blas-threads", type=int, default=0, help="limit BLAS/OpenMP threads (0 = library default)")
    args = ap.parse_args()
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads)  # process-wide; inherited by the forked children

    from transferlens.metrics.scores import SCORES

    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}, "
          f"numpy {np.__version__}, blas threads {args.blas_threads or 'default'}; "
          f"load average before: {os.getloadavg()}")
    t0 = time.perf_counter()
    x, y, p = make_data(args.n, args.d, args.k, args.source_classes)
    print(f"data: N={args.n} D={args.d} K={args.k} C_s={args.source_classes} "
          f"(generated in {time.perf_counter() - t0:.1f} s)")

    runs: list[tuple[str, str, dict]] = [(n, n, {}) for n in SCORES]
    # NLEEP with its reference defaults is the slow one; also time a capped variant (not the reference).
    runs.append(("nleep[max_dim=32+diag]", "nleep", {"max_dim": 32, "covariance_type": "diag"}))
    runs.append(("sfda[pca_dim=auto]", "sfda", {"pca_dim": "auto"}))
    only = {s for s in args.only.split(",") if s}
    if only:
        runs = [r for r in runs if r[0] in only]

    print(f"{'score':<26}{'closed':>7}{'wall_s':>9}{'cpu_s':>9}{'<5s':>5}  {'value':>14}  notes")
    for label, name, opts in runs:
        status, value, secs, cpu, warns = run_one(name, x, y, p, opts, args.timeout)
        closed = "yes" if SCORES[name].closed_form else "no"
        if status == "ok":
            ok = "yes" if secs < 5.0 else "NO"
            note = "; ".join(w[:90] for w in warns if "zoo-relative" not in w)
            print(f"{label:<26}{closed:>7}{secs:>9.2f}{cpu:>9.2f}{ok:>5}  {value:>14.6g}  {note}", flush=True)
        elif status == "timeout":
            print(f"{label:<26}{closed:>7}{'>' + format(args.timeout, '.0f'):>9}{'-':>9}{'NO':>5}  {'-':>14}  "
                  "stopped at the timeout", flush=True)
        else:
            print(f"{label:<26}{closed:>7}{'-':>9}{'-':>9}{'-':>5}  {'-':>14}  ERROR {value}", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
