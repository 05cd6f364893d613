"""Benchmark: task-relatedness cost per model for a 10-model synthetic "zoo" on a 10-class target.

Each "model" m has its own feature dimension d_m (64..512) and quality q_m. In its feature space the
reference task has 10 classes (N_R = 2000) and the target task 10 classes (N_T = 1200, non-uniform
prior). Target class k is reference class sigma(k) moved by a shared affine domain shift, with the class
means perturbed by (1 - q_m): better models keep the reference class structure on the target. Ground
truth per model: accuracy of a logistic-regression probe trained on half of the target and tested on
the other half. Prints per model: wall-clock and process-CPU seconds (labelled and label-free; CPU time
is what the run costs independently of other load on the machine), the three terms, the
bound and the probe accuracy, then Kendall tau between -bound and probe accuracy.

Run:  .venv/bin/python benchmarks/bench_relatedness.py [--quick] [--models N]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
from scipy.stats import kendalltau
from sklearn.linear_model import LogisticRegression

from transferlens.metrics.relatedness import RelatednessConfig, task_relatedness

DIMS = (64, 96, 128, 192, 256, 256, 320, 384, 448, 512)
QUALITY = (0.9, 0.3, 0.7, 0.5, 1.0, 0.2, 0.6, 0.8, 0.4, 0.65)


def make_model_features(d: int, q: float, seed: int, n_ref_per: int = 200, n_tgt: int = 1200):
    rng = np.random.default_rng(seed)
    k = 10
    latent = 16  # class structure lives in a low-dimensional subspace, as in real features
    basis = np.linalg.qr(rng.normal(size=(d, latent)))[0]
    mu_ref = rng.normal(0.0, 2.0, (k, latent))
    sigma = rng.permutation(k)  # target class t <- reference class sigma[t]
    mu_tgt = q * mu_ref[sigma] + (1.0 - q) * rng.normal(0.0, 0.5, (k, latent))

    def feats(mu, y, r):
        return (mu[y] @ basis.T) + 0.35 * r.normal(size=(len(y), d)) + 0.6 * r.normal(size=(len(y), latent)) @ basis.T

    yr = np.repeat(np.arange(k), n_ref_per)
    xr = feats(mu_ref, yr, rng)
    prior = rng.dirichlet(np.full(k, 5.0))
    yt = rng.choice(k, n_tgt, p=prior)
    yt[:k] = np.arange(k)  # every class present
    shift = np.eye(d) + 0.05 * rng.normal(size=(d, d)) / np.sqrt(d)
    xt = feats(mu_tgt, yt, rng) @ shift.T + rng.normal(0.0, 0.5, d)
    return xr, yr, xt, yt


def probe_accuracy(xt: np.ndarray, yt: np.ndarray, seed: int) -> float:
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(yt))
    tr, te = idx[: len(idx) // 2], idx[len(idx) // 2 :]
    clf = LogisticRegression(max_iter=300).fit(xt[tr], yt[tr])
    return float(clf.score(xt[te], yt[te]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n_iter=50, one head: smoke run")
    ap.add_argument("--models", type=int, default=10)
    ap.add_argument("--no-label-free", action="store_true")
    args = ap.parse_args()
    cfg = RelatednessConfig(n_iter=50, head_lipschitz=(0.5,)) if args.quick else RelatednessConfig()
    print(f"# task-relatedness zoo benchmark  python {platform.python_version()}  cpus={os.cpu_count()}  "
          f"load={os.getloadavg()[0]:.2f}  config: n_iter={cfg.n_iter} batch={cfg.batch_size} "
          f"heads={len(cfg.head_lipschitz)} eval_fraction={cfg.eval_fraction} threads={cfg.num_threads}")
    hdr = ("model", "d", "q", "N_R", "N_T", "wall_s", "cpu_s", "wall_lf", "cpu_lf", "L_w", "H", "tau", "W", "tauW", "bound",
           "CE_T", "acc_T", "bound_lf", "probe_acc")
    print(" | ".join(hdr))
    bounds, bounds_lf, probes, secs, secs_lf, cpus, cpus_lf = [], [], [], [], [], [], []
    for m in range(args.models):
        d, q = DIMS[m], QUALITY[m]
        xr, yr, xt, yt = make_model_features(d, q, seed=m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0, c0 = time.perf_counter(), time.process_time()
            res = task_relatedness(xr, yr, xt, yt, config=cfg)
            sec, cpu = time.perf_counter() - t0, time.process_time() - c0
            if args.no_label_free:
                res_lf, sec_lf, cpu_lf = None, float("nan"), float("nan")
            else:
                t0, c0 = time.perf_counter(), time.process_time()
                res_lf = task_relatedness(xr, yr, xt, None, config=cfg)
                sec_lf, cpu_lf = time.perf_counter() - t0, time.process_time() - c0
        acc = probe_accuracy(xt, yt, m)
        t = res.terms
        blf = float("nan") if res_lf is None else res_lf.bound
        bounds.append(t.bound)
        bounds_lf.append(blf)
        probes.append(acc)
        secs.append(sec)
        secs_lf.append(sec_lf)
        cpus.append(cpu)
        cpus_lf.append(cpu_lf)
        row = (f"m{m}", d, q, len(yr), len(yt), f"{sec:.1f}", f"{cpu:.1f}", f"{sec_lf:.1f}", f"{cpu_lf:.1f}", f"{t.reference_loss:.3f}",
               f"{t.label_mismatch:.3f}", f"{t.lipschitz:.3f}", f"{t.wasserstein:.2f}",
               f"{t.distribution_mismatch:.3f}", f"{t.bound:.3f}", f"{t.target_cross_entropy:.3f}",
               f"{t.target_accuracy:.3f}", f"{blf:.3f}", f"{acc:.3f}")
        print(" | ".join(str(v) for v in row), flush=True)
    print(f"# labelled: wall mean {np.mean(secs):.1f} s/model (max {np.max(secs):.1f}), CPU mean "
          f"{np.mean(cpus):.1f} s (max {np.max(cpus):.1f}); label-free: wall mean {np.mean(secs_lf):.1f}, "
          f"CPU mean {np.mean(cpus_lf):.1f} s")
    if args.models >= 3:
        kt = kendalltau(-np.asarray(bounds), probes).statistic
        msg = f"# Kendall tau(-bound, probe acc) = {kt:.3f}"
        if not args.no_label_free:
            msg += f"; label-free: {kendalltau(-np.asarray(bounds_lf), probes).statistic:.3f}"
        print(msg)
    print(f"# load at end={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
