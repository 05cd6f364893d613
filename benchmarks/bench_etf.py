"""Benchmark: CIFAR-style ResNet-18 with a fixed simplex-ETF head at d = K = 10 vs the standard model.

Usage:
    .venv/bin/python benchmarks/bench_etf.py                 # all variants, batch 128, 5 timed steps
    .venv/bin/python benchmarks/bench_etf.py --steps 3 --batch 128
    .venv/bin/python benchmarks/bench_etf.py digits --batch 128 --epochs 300   # learned vs ETF head, digits (docs/etf_experiment.md)

Each variant runs in a fresh subprocess so its peak resident memory (ru_maxrss) is its own. Reported: total
and trainable parameters, peak RSS, RSS growth during training (peak minus RSS after building model, data and
optimizer), and the median SGD step time (forward + backward + step, momentum 0.9, wd 5e-4, random data).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ("standard", "etf_head_d512", "etf_d10")


def build(variant: str, K: int = 10):
    import torch.nn as nn
    import torchvision

    from transferlens.finetune.heads import SimplexETFHead, reduce_feature_dim

    m = torchvision.models.resnet18(num_classes=K)
    m.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)  # CIFAR stem
    m.maxpool = nn.Identity()
    if variant == "etf_d10":
        reduce_feature_dim(m, K)
        m.fc = SimplexETFHead(K, K)
    elif variant == "etf_head_d512":
        m.fc = SimplexETFHead(K, 512)
    elif variant != "standard":
        raise SystemExit(f"unknown variant {variant}")
    return m


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_variant(variant: str, batch: int, steps: int, threads: int) -> dict:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    m = build(variant)
    n_total = sum(p.numel() for p in m.parameters())
    n_train = sum(p.numel() for p in m.parameters() if p.requires_grad)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    m.train()
    rss_before = _rss_mib()
    times = []
    for i in range(steps + 1):  # step 0 = warm-up (allocates momentum buffers)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        if i > 0:
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return {"variant": variant, "params_total": n_total, "params_trainable": n_train,
            "peak_rss_mib": round(peak, 1), "rss_before_train_mib": round(rss_before, 1),
            "train_rss_growth_mib": round(peak - rss_before, 1), "step_s_median": round(statistics.median(times), 3),
            "step_s_all": [round(t, 3) for t in times], "batch": batch, "threads": threads}


def bench(args) -> None:
    rows = []
    for v in VARIANTS:
        load0 = os.getloadavg()[0]
        out = subprocess.run(
            [sys.executable, __file__, "_one", v, "--batch", str(args.batch), "--steps", str(args.steps),
             "--threads", str(args.threads)],
            check=True, capture_output=True, text=True,
        ).stdout
        row = json.loads(out.strip().splitlines()[-1])
        row["loadavg_1min_start"] = round(load0, 2)
        rows.append(row)
        print(json.dumps(row))
    base = rows[0]
    print("\nvariant         params     trainable  d-params  peak RSS MiB  train RSS growth MiB  step s (median)")
    for r in rows:
        dp = 100.0 * (r["params_total"] - base["params_total"]) / base["params_total"]
        print(f"{r['variant']:14s} {r['params_total']:>10,d} {r['params_trainable']:>10,d} {dp:+7.2f}%"
              f" {r['peak_rss_mib']:>12.0f} {r['train_rss_growth_mib']:>20.0f} {r['step_s_median']:>14.2f}")
    print(f"load average after: {os.getloadavg()}")


# ------------------------------------------------------------------------------------------- digits experiment
def digits(args) -> None:
    """Learned head vs fixed ETF head on sklearn's digits (offline), MLP 64->256->d, >= 3 seeds."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from torch import nn

    from transferlens.finetune.heads import SimplexETFHead
    from transferlens.ufm.theory import nc_metrics

    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    K = 10

    def make(d: int, head: str, seed: int, bn: bool):
        torch.manual_seed(seed)
        layers = [nn.Linear(64, 256), nn.BatchNorm1d(256, affine=False) if bn else nn.Identity(), nn.ReLU(),
                  nn.Linear(256, d), nn.BatchNorm1d(d, affine=False) if bn else nn.Identity(), nn.ReLU()]
        body = nn.Sequential(*layers)
        if head == "learned":
            fc = nn.Linear(d, K)
        elif head == "etf_axes_fixed":  # the official construction: U = axes, no temperature
            fc = SimplexETFHead(K, d, basis="axes", learnable_temperature=False, seed=seed)
        else:  # library default: random U + learnable temperature
            fc = SimplexETFHead(K, d, seed=seed)
        return body, fc

    full = [(bn, d, head) for bn in (False, True) for d in (K, 256)
            for head in ("learned", "etf_default", "etf_axes_fixed")]
    core = [(False, K, "learned"), (False, K, "etf_default"), (False, K, "etf_axes_fixed"),
            (True, K, "learned"), (True, K, "etf_default"), (True, K, "etf_axes_fixed"),
            (True, 256, "learned"), (True, 256, "etf_default")]
    configs = full if args.full else core
    results = []
    for bn, d, head in configs:
        for seed in range(args.seeds):
            Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
            Xtr_t = torch.tensor(Xtr, dtype=torch.float32)
            ytr_t = torch.tensor(ytr)
            Xte_t = torch.tensor(Xte, dtype=torch.float32)
            body, fc = make(d, head, seed, bn)
            params = [p for p in list(body.parameters()) + list(fc.parameters()) if p.requires_grad]
            opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)
            E = args.epochs
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, [E // 3, 2 * E // 3], 0.1)
            g = torch.Generator().manual_seed(seed)
            t0 = time.perf_counter()
            for _ in range(E):
                body.train()
                perm = torch.randperm(len(ytr_t), generator=g)
                for i in range(0, len(perm), args.batch):
                    idx = perm[i : i + args.batch]
                    if len(idx) < 2:
                        continue
                    opt.zero_grad()
                    nn.functional.cross_entropy(fc(body(Xtr_t[idx])), ytr_t[idx]).backward()
                    opt.step()
                sched.step()
            body.eval()
            with torch.no_grad():
                Htr = body(Xtr_t)
                tr_acc = (fc(Htr).argmax(1) == ytr_t).float().mean().item()
                te_acc = (fc(body(Xte_t)).argmax(1).numpy() == yte).mean()
            W = fc.weight.detach().double().numpy()
            nc = nc_metrics(W, Htr.double().numpy().T, ytr)
            row = {"bn": bn, "d": d, "head": head, "seed": seed, "train_acc": tr_acc, "test_acc": float(te_acc),
                   "nc1": nc["nc1"], "nc2": nc["nc2"], "nc3": nc["nc3"], "seconds": time.perf_counter() - t0}
            results.append(row)
            print(json.dumps(row), flush=True)
    print("\nfeatures        d    head            train acc (min)   test acc mean+-sd      NC1     NC3")
    for bn, d, head in configs:
        rs = [r for r in results if r["bn"] == bn and r["d"] == d and r["head"] == head]
        te = np.array([r["test_acc"] for r in rs]) * 100
        print(f"{'BN->ReLU' if bn else 'ReLU (no BN)':14s} {d:4d}  {head:15s} "
              f"{min(r['train_acc'] for r in rs) * 100:8.1f}%        {te.mean():6.2f} +- {te.std(ddof=1):4.2f}"
              f"   {np.mean([r['nc1'] for r in rs]):7.3f} {np.mean([r['nc3'] for r in rs]):7.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", default="bench", choices=["bench", "digits", "_one"])
    ap.add_argument("variant", nargs="?")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--full", action="store_true", help="digits: all 12 (features, d, head) cells")
    args = ap.parse_args()
    if args.mode == "_one":
        print(json.dumps(run_variant(args.variant, args.batch, args.steps, args.threads)))
    elif args.mode == "digits":
        digits(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
