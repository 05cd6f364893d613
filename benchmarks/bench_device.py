"""Throughput per device and precision, against the bare ``model(x)`` loop on the same batches (issue 19).

Usage::

    .venv/bin/python benchmarks/bench_device.py --device cpu --precision fp32 [--n 64] [--batch 16] [--out FILE]
    .venv/bin/python benchmarks/bench_device.py --device cuda --precision fp32,bf16,fp16 --n 2048 --batch 128

For each model (``torchvision:mobilenet_v2?pretrained=false`` and ``timm:resnet50?pretrained=false``, 224 px)
and each precision:

* **extract**: images/s of :func:`transferlens.features.extract` (penultimate layer, cache off, model already
  loaded) over an image folder of ``--n`` generated 224x224 PNGs: decode, resize, hooks, pooling, copy back;
  ``bare``: images/s of ``model((x - mean) / std)`` under ``inference_mode`` + autocast over the *same*
  batches, already decoded in host memory (moved to the device inside the timed loop, as ours must).
* **finetune**: optimizer steps/s of :func:`transferlens.finetune.loop.run_finetune` (method ``plain``,
  AdamW, 1 epoch; the record's ``train_seconds / steps``) and of the bare loop ``loss = CE(model(x), y);
  backward; AdamW step`` over the same number of batches of the same size.

``overhead = bare images/s / our images/s`` (= our time / bare time; 1.00 is no overhead). Each timing is
the best of ``--repeats`` runs after one warm-up batch. Results: one JSON object per row in ``--out``
(default ``benchmarks/results/device/<device>-<date>.jsonl``) and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

MODELS = ("torchvision:mobilenet_v2?pretrained=false", "timm:resnet50?pretrained=false")


def make_folder(root: Path, n: int, size: int = 224, classes: int = 2) -> Path:
    """``n`` smooth RGB PNGs (gradients + low noise: realistic decode cost, small files), ``classes`` folders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(n):
        c = i % classes
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        a, b, ph = rng.uniform(0.5, 3.0, size=3)
        base = np.stack([np.sin(a * 6 * xx + ph), np.cos(b * 6 * yy - ph), np.sin(3 * (xx + yy) + a)], axis=2)
        img = np.clip((base * 0.5 + 0.5) * 255 + rng.normal(0, 6, size=base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"c{c}" / f"{i:06d}.png")
    return root


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _best(fn, repeats: int, dev: torch.device) -> float:
    times = []
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_extract(uri: str, folder: Path, dev: torch.device, precision: str, batch: int, repeats: int, workers: int | None) -> dict:
    from transferlens.data import load_data
    from transferlens.device import autocast
    from transferlens.features import extract
    from transferlens.models import resolve_model

    data = load_data(f"imagefolder:{folder}")
    ref = resolve_model(uri)
    loaded = ref.load().to(dev, precision)
    ref.loader = lambda: loaded  # time the extraction, not the model construction
    n = len(data)
    with tempfile.TemporaryDirectory() as cache:
        extract(ref, data.subset(np.arange(min(batch, n))), "penultimate", batch_size=batch, cache=False, cache_dir=cache,
                device=dev, precision=precision, num_workers=0)  # warm-up (and the layer memo)
        box: dict = {}

        def ours() -> None:
            box["fs"] = extract(ref, data, "penultimate", batch_size=batch, cache=False, cache_dir=cache, device=dev,
                                precision=precision, num_workers=workers)

        t_ours = _best(ours, repeats, dev)
    used_workers = box["fs"].provenance.get("num_workers")
    batches = [data.images(np.arange(s, min(s + batch, n)), loaded.spec) for s in range(0, n, batch)]
    mean, std, module = loaded._mean, loaded._std, loaded.module

    def bare() -> None:
        with torch.inference_mode(), autocast(dev, precision):
            for x in batches:
                module((x.to(dev, non_blocking=False) - mean) / std)

    with torch.inference_mode(), autocast(dev, precision):
        module((batches[0].to(dev) - mean) / std)  # warm-up
    t_bare = _best(bare, repeats, dev)
    return {"task": "extract", "unit": "images/s", "ours": n / t_ours, "bare": n / t_bare, "overhead": t_ours / t_bare,
            "n": n, "batch": batch, "workers": used_workers}


def bench_finetune(uri: str, folder: Path, dev: torch.device, precision: str, batch: int, repeats: int) -> dict:
    import torch.nn.functional as F

    from transferlens.data import load_data
    from transferlens.device import autocast
    from transferlens.finetune.loop import run_finetune
    from transferlens.finetune.prepare import image_tensors, load_backbone, replace_head

    data_uri = f"imagefolder:{folder}"
    recs = [run_finetune(uri, data_uri, "plain", epochs=1, batch_size=batch, device=dev, precision=precision)
            for _ in range(repeats)]
    steps = recs[0]["cost"]["steps"]
    ours = max(r["cost"]["steps"] / r["cost"]["train_seconds"] for r in recs)
    # bare: same architecture + new head, same number of steps of the same batch size
    bb = load_backbone(uri)
    net = bb.module
    replace_head(net, 2, "linear", 0)
    net.to(dev).train()
    ds = load_data(data_uri)
    x, y = image_tensors(bb.loaded, ds)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(dev.type) if precision == "fp16" else None
    idx = [torch.arange(i * batch, (i + 1) * batch) % len(x) for i in range(steps)]

    def step(ix: torch.Tensor) -> None:
        xb, yb = x[ix].to(dev), y[ix].to(dev)
        with autocast(dev, precision):
            loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    step(idx[0])  # warm-up

    def bare() -> None:
        for ix in idx:
            step(ix)

    t_bare = _best(bare, repeats, dev)
    bare_rate = steps / t_bare
    return {"task": "finetune", "unit": "steps/s", "ours": ours, "bare": bare_rate, "overhead": bare_rate / ours,
            "n": len(ds), "batch": batch, "steps": steps}


def machine(dev: torch.device) -> str:
    from transferlens.device import device_name

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{device_name(dev)}; {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"load {load:.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", help="comma-separated: fp32,bf16,fp16")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--n", type=int, default=64, help="images in the extraction folder")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ft-n", type=int, default=40, help="images in the fine-tuning folder (80 %% train)")
    ap.add_argument("--ft-batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers of extract (default: automatic)")
    ap.add_argument("--tasks", default="extract,finetune")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    from transferlens.device import resolve_device

    dev = resolve_device(args.device)
    stamp = dt.datetime.now(dt.timezone.utc)
    out = args.out or Path(__file__).parent / "results" / "device" / f"{dev.type}-{stamp:%Y%m%d-%H%M}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    info = {"date": stamp.isoformat(timespec="seconds"), "machine": machine(dev), "command": " ".join(["python", *sys.argv]),
            "python": platform.python_version()}
    print(f"# bench_device {info['date']} | {info['machine']}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ex_folder = make_folder(Path(tmp) / "extract", args.n)
        ft_folder = make_folder(Path(tmp) / "finetune", args.ft_n)
        for precision in args.precision.split(","):
            for uri in args.models.split(","):
                for task in args.tasks.split(","):
                    t0 = time.perf_counter()
                    try:
                        if task == "extract":
                            row = bench_extract(uri, ex_folder, dev, precision, args.batch, args.repeats, args.workers)
                        else:
                            row = bench_finetune(uri, ft_folder, dev, precision, args.ft_batch, args.repeats)
                    except Exception as exc:  # a row that fails is reported, the others still run
                        row = {"task": task, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
                    row.update({"model": uri, "device": str(dev), "precision": precision, "seconds": round(time.perf_counter() - t0, 1), **info})
                    rows.append(row)
                    with open(out, "a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(_line(row), flush=True)
    print(f"# wrote {out}")
    return 0 if all("error" not in r for r in rows) else 1


def _line(r: dict) -> str:
    if "error" in r:
        return f"| {r['model']} | {r['device']} | {r['precision']} | {r['task']} | error: {r['error']} |"
    fmt = (lambda v: f"{v:.2f}") if r["unit"] == "steps/s" else (lambda v: f"{v:.1f}")
    extra = f"workers {r['workers']}" if r["task"] == "extract" else f"{r['steps']} steps"
    return (f"| {r['model']} | {r['device']} | {r['precision']} | {r['task']} ({r['unit']}) | {fmt(r['ours'])} | "
            f"{fmt(r['bare'])} | {r['overhead']:.2f} | n={r['n']}, batch {r['batch']}, {extra} |")


if __name__ == "__main__":
    sys.exit(main())
