"""Image folders that stream (issue 19, item 3): peak RSS of ``extract`` flat in N, and the DataLoader speed-up.

    .venv/bin/python benchmarks/bench_imagefolder.py rss   --ns 2000 20000          # peak RSS vs N (32 px model)
    .venv/bin/python benchmarks/bench_imagefolder.py speed --n 256 --src 224          # workers 0 vs auto at 224 px

``rss``: for each N, a folder of N generated PNGs (``--src`` px, 10 classes) is extracted in a fresh subprocess
(``timm:resnet18?pretrained=false&size=32``, layer ``global_pool``, batch 64, cache off, DataLoader workers
automatic). Reported: the peak RSS of the extracting process (``VmHWM``, MiB; the DataLoader workers are forks
that share its pages and hold at most ``2 x batch`` decoded images each), wall seconds, and the bytes of the
features kept (N x 512 float32, the only part that must grow with N).

``speed``: one folder, extracted at 224 px by ``--model`` with ``num_workers=0`` (decode + resize in the main
process, as before issue 19) and with the automatic worker count, alternating, best of ``--repeats``.

The folders are generated once under ``--root`` (default ``tl-bench-imagefolder`` in the system temporary folder) and reused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_folder(root: Path, n: int, size: int, classes: int = 10) -> Path:
    """``n`` smooth RGB PNGs of ``size`` px in ``classes`` folders (kept when already complete)."""
    from PIL import Image

    folder = root / f"n{n}-s{size}"
    done = folder / ".complete"
    if done.exists():
        return folder
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(n):
        c = i % classes
        (folder / f"c{c}").mkdir(parents=True, exist_ok=True)
        a, b, ph = rng.uniform(0.5, 3.0, size=3)
        base = np.stack([np.sin(a * 6 * xx + ph), np.cos(b * 6 * yy - ph), np.sin(3 * (xx + yy) + a)], axis=2)
        img = np.clip((base * 0.5 + 0.5) * 255 + rng.normal(0, 6, size=base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"c{c}" / f"{i:06d}.png")
    done.write_text("ok")
    return folder


def _vmhwm_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def child_rss(folder: str, model: str, batch: int) -> None:
    from transferlens.features import extract

    t0 = time.perf_counter()
    fs = extract(model, f"imagefolder:{folder}", "global_pool", batch_size=batch, cache=False, device="cpu")
    seconds = time.perf_counter() - t0
    print(json.dumps({"n": fs.n_samples, "peak_rss_mib": round(_vmhwm_mib(), 1),
                      "seconds": round(seconds, 1), "features_mib": round(sum(a.nbytes for a in fs.features.values()) / 2**20, 1),
                      "workers": fs.provenance.get("num_workers")}))


def run_rss(args: argparse.Namespace) -> list[dict]:
    rows = []
    for n in args.ns:
        folder = make_folder(args.root, n, args.src)
        proc = subprocess.run([sys.executable, __file__, "_child", str(folder), args.rss_model, str(args.batch)],
                              capture_output=True, text=True, env={**os.environ, "TRANSFERLENS_DEVICE": "cpu"})
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(row, flush=True)
    return rows


def run_speed(args: argparse.Namespace) -> list[dict]:
    import tempfile

    import torch

    from transferlens.data import load_data
    from transferlens.features import auto_workers, extract
    from transferlens.models import resolve_model

    folder = make_folder(args.root, args.n, args.src)
    data = load_data(f"imagefolder:{folder}")
    ref = resolve_model(args.model)
    loaded = ref.load()
    ref.loader = lambda: loaded
    auto = auto_workers(data, args.batch) if args.workers is None else args.workers
    best: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as cache:
        extract(ref, data.subset(np.arange(args.batch)), "penultimate", batch_size=args.batch, cache=False, cache_dir=cache,
                device="cpu", num_workers=0)  # warm-up
        for _ in range(args.repeats):
            for w in (0, auto):
                t0 = time.perf_counter()
                extract(ref, data, "penultimate", batch_size=args.batch, cache=False, cache_dir=cache, device="cpu", num_workers=w)
                best[w] = min(best.get(w, float("inf")), time.perf_counter() - t0)
    row = {"model": args.model, "n": len(data), "src_px": args.src, "batch": args.batch, "threads": torch.get_num_threads(),
           "seconds_inline": round(best[0], 2), "seconds_workers": round(best[auto], 2), "workers": auto,
           "images_per_s_inline": round(len(data) / best[0], 1), "images_per_s_workers": round(len(data) / best[auto], 1),
           "speedup": round(best[0] / best[auto], 2)}
    print(row, flush=True)
    return [row]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child_rss(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("rss", "speed"))
    ap.add_argument("--ns", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--src", type=int, default=None, help="stored image size in px (rss: 64, speed: 224)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--model", default="torchvision:mobilenet_v2?pretrained=false")
    ap.add_argument("--rss-model", default="timm:resnet18?pretrained=false&size=32")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "tl-bench-imagefolder")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.src = args.src or (64 if args.mode == "rss" else 224)
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    load = os.getloadavg()[0]
    rows = run_rss(args) if args.mode == "rss" else run_speed(args)
    record = {"date": stamp, "load_at_start": round(load, 2), "cpus": os.cpu_count(), "command": " ".join(sys.argv), "rows": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(record) + "\n")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
