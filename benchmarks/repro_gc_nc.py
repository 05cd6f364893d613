"""Small-scale reproduction of the GC -> neural collapse -> few-shot chain (Munn, Dherin & Gonzalvo 2024).

    .venv/bin/python benchmarks/repro_gc_nc.py [--seeds 2] [--epochs 60] [--out results.json]

Data: sklearn's bundled digits (load_digits, 1797 images 8x8, offline), pixels / 16. Source = classes 0-5
(80% train / 20% test), held-out target = classes 6-9 (all their samples).
Model: MLP 64 -> 128 -> 128 -> 32 (ReLU) embedding + linear head to 6 classes; plain SGD (no momentum),
cross-entropy, fixed number of epochs. One knob varied at a time from the base (lr 0.05, batch 32, wd 0,
GC weight 0): learning rate, batch size, weight decay and the explicit GC regulariser.
Measured per run: source-train GC of the embedding (exact), source CDNV, target CDNV (classes 6-9),
4-way 5-shot NCC accuracy on the target classes (600 episodes, 15 queries), Hessian trace of the source
loss (Hutchinson, 30 probes, 512 samples), source train/test accuracy. Reported: Spearman correlations with
p-values across all runs, whatever they are.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.datasets import load_digits
from torch import nn

from transferlens.geometry.complexity import GCRegularizer, gc_exact
from transferlens.geometry.flatness import HessianOperator, hessian_trace
from transferlens.metrics.collapse import cdnv
from transferlens.metrics.fewshot import few_shot_eval

BASE = {"lr": 0.05, "batch": 32, "wd": 0.0, "gc": 0.0}
GRID = {
    "lr": [0.01, 0.02, 0.1, 0.2],
    "batch": [8, 16, 64, 128],
    "wd": [1e-4, 1e-3, 5e-3, 1e-2],
    "gc": [1e-3, 1e-2, 1e-1, 1.0],
}


def data(seed: int = 0):
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    src = y < 6
    rng = np.random.default_rng(seed)
    idx = rng.permutation(np.flatnonzero(src))
    cut = int(0.8 * idx.size)
    tr, te = idx[:cut], idx[cut:]
    tgt = np.flatnonzero(~src)
    t = torch.from_numpy
    return (t(x[tr]), t(y[tr])), (t(x[te]), t(y[te])), (t(x[tgt]), t(y[tgt] - 6))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 32))
        self.head = nn.Linear(32, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def run(cfg: dict, seed: int, epochs: int, splits) -> dict:
    (xtr, ytr), (xte, yte), (xtg, ytg) = splits
    torch.manual_seed(seed)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=cfg["lr"], weight_decay=cfg["wd"])
    crit = nn.CrossEntropyLoss()
    reg = GCRegularizer(net.embed, weight=cfg["gc"], n_probes=1, seed=seed) if cfg["gc"] > 0 else None
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(xtr.shape[0], generator=gen)
        for s in range(0, xtr.shape[0], cfg["batch"]):
            b = perm[s : s + cfg["batch"]]
            opt.zero_grad()
            loss = crit(net(xtr[b]), ytr[b])
            if reg is not None:
                loss = loss + reg(xtr[b])
            if not torch.isfinite(loss):
                return {**cfg, "seed": seed, "diverged": True}
            loss.backward()
            opt.step()
    train_s = time.perf_counter() - t0
    net.eval()
    with torch.no_grad():
        acc_tr = float((net(xtr).argmax(1) == ytr).float().mean())
        acc_te = float((net(xte).argmax(1) == yte).float().mean())
        ftr = net.embed(xtr).double().numpy()
        ftg = net.embed(xtg).double().numpy()
    gc = gc_exact(net.embed, xtr, batch_size=256).value
    fs = few_shot_eval(ftg, ytg.numpy(), n_way=4, k_shot=5, n_query=15, n_episodes=600, seed=0)
    sub = torch.randperm(xtr.shape[0], generator=torch.Generator().manual_seed(0))[:512]
    htr = hessian_trace(HessianOperator.from_model(net, crit, (xtr[sub], ytr[sub])), n_probes=30, seed=0)
    return {
        **cfg, "seed": seed, "diverged": False, "train_s": train_s, "acc_train": acc_tr, "acc_test": acc_te,
        "gc_source": gc, "cdnv_source": cdnv(ftr, ytr.numpy()), "cdnv_target": cdnv(ftg, ytg.numpy()),
        "fewshot_acc": fs.mean, "fewshot_ci95": fs.ci95, "hessian_trace": htr.value,
    }


def configs() -> list[tuple[str, dict]]:
    out = [("base", dict(BASE))]
    for knob, vals in GRID.items():
        for v in vals:
            out.append((knob, {**BASE, knob: v}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)  # tiny model: threads only add contention on a shared 2-core machine
    splits = data()
    rows = []
    t0 = time.perf_counter()
    for knob, cfg in configs():
        for seed in range(args.seeds):
            r = run(cfg, seed, args.epochs, splits)
            r["knob"] = knob
            rows.append(r)
            if r["diverged"]:
                print(f"{knob:5s} {cfg} seed {seed}: diverged", flush=True)
                continue
            print(f"{knob:5s} lr={cfg['lr']:<5} B={cfg['batch']:<4} wd={cfg['wd']:<6} gc={cfg['gc']:<6} seed={seed} "
                  f"acc_tr={r['acc_train']:.3f} acc_te={r['acc_test']:.3f} GC={r['gc_source']:.3f} "
                  f"CDNVs={r['cdnv_source']:.4f} CDNVt={r['cdnv_target']:.4f} 5shot={r['fewshot_acc']:.4f} "
                  f"trH={r['hessian_trace']:.2f} ({r['train_s']:.1f}s)", flush=True)
    ok = [r for r in rows if not r["diverged"]]
    pairs = [("gc_source", "cdnv_target"), ("gc_source", "fewshot_acc"), ("cdnv_target", "fewshot_acc"),
             ("gc_source", "cdnv_source"), ("cdnv_source", "cdnv_target"), ("hessian_trace", "gc_source")]
    corr = {}
    print(f"\nSpearman correlations over {len(ok)} runs (all knobs pooled):")
    for a, b in pairs:
        rho, p = spearmanr([r[a] for r in ok], [r[b] for r in ok])
        corr[f"{a}~{b}"] = {"rho": float(rho), "p": float(p), "n": len(ok)}
        print(f"  rho({a}, {b}) = {rho:+.3f}  (p = {p:.2g})")
    print("\nPer knob (rho with the knob value; n = 5 values x seeds):")
    per_knob = {}
    for knob in GRID:
        sel = [r for r in ok if r["knob"] in (knob, "base")]
        per_knob[knob] = {}
        line = []
        for m in ("gc_source", "cdnv_target", "fewshot_acc"):
            rho, p = spearmanr([r[knob] for r in sel], [r[m] for r in sel])
            per_knob[knob][m] = {"rho": float(rho), "p": float(p), "n": len(sel)}
            line.append(f"{m} {rho:+.2f} (p={p:.2g})")
        print(f"  {knob:5s}: " + ", ".join(line))
    print(f"\ntotal time {time.perf_counter() - t0:.0f}s")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"runs": rows, "spearman": corr, "per_knob": per_knob, "epochs": args.epochs}, fh, indent=1)


if __name__ == "__main__":
    main()
