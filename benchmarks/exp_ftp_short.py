"""FTP in short runs (issue 17, item 5): plain vs FTP ID/OOD accuracy and how far the backbone moved.

Usage: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/exp_ftp_short.py '[{"method": "plain"}, {"method": "ftp", "gamma_lr": 0.01}]'

Each config (a JSON object: ``method``, optional ``lr``, ``epochs`` (10) and method options such as ``k``,
``gamma_lr``, ``gamma_init``) runs on seeds 0, 1, 2: ``zoo:vgg-g50`` fine-tuned on
``builtin:digits?split=train&n_per_class=10`` (80 train / 20 validation, batch 32: 3 steps per epoch), tested
on 200 digits of the test split and their gaussian_noise / blur / contrast (severity 3) versions. Prints per
config: test (ID) accuracy, mean OOD accuracy (mean ± sd over seeds), the backbone's ‖θ − θ₀‖₂ and the
median over backbone tensors of FTP's final γ (row-L1).
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np
import torch

TEST = "builtin:digits?split=test&n_per_class=20"


def main() -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    from transferlens.finetune.loop import run_finetune

    for cfg in json.loads(sys.argv[1]):
        cfg = dict(cfg)
        method, lr, epochs = cfg.pop("method"), cfg.pop("lr", None), cfg.pop("epochs", 10)
        tests, oods, dists, gammas = [], [], [], []
        t0 = time.perf_counter()
        for seed in (0, 1, 2):
            r = run_finetune("zoo:vgg-g50", "builtin:digits?split=train&n_per_class=10", method, test=TEST,
                             ood=[f"shift:{n}:3:{TEST}" for n in ("gaussian_noise", "blur", "contrast")],
                             epochs=epochs, seed=seed, lr=lr, resume=False, threads=1, **cfg)
            bb = [x for x in r["trace"]["tensors"] if not x["head"]]
            dists.append(float(np.sqrt(sum(x["distance_l2"][-1] ** 2 for x in bb))))
            g = [x["gamma"][-1] for x in bb if x["gamma"][-1] is not None]
            gammas.append(float(np.median(g)) if g else float("nan"))
            tests.append(r["accuracy"]["test"])
            oods.append(r["accuracy"]["ood_mean"])
        print(f"{method:5s} epochs={epochs:3d} steps={r['cost']['steps']:3d} lr={r['hyperparameters']['lr']} {cfg} "
              f"(gamma_lr used: {r['hyperparameters'].get('gamma_lr')}): ID={np.mean(tests) * 100:.1f}±{np.std(tests) * 100:.1f} "
              f"OOD={np.mean(oods) * 100:.1f}±{np.std(oods) * 100:.1f} backbone |dθ|2={np.mean(dists):.3f} "
              f"median γ={np.mean(gammas):.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
