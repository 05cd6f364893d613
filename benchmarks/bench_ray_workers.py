"""``--executor ray`` with two workers against one (issue 19, item 4): ``rank_models`` over zoo models.

    .venv/bin/python benchmarks/bench_ray_workers.py [--workers 1 2] [--models 4] [--n-per-class 30]

Each worker count runs in a fresh process with a fresh ``TRANSFERLENS_HOME`` (empty feature cache; the real
``data/`` linked in): a local Ray runtime with ``num_cpus=k`` is started first (not timed), then
``rank_models`` scores the first ``--models`` shipped zoo models on ``builtin:digits`` (one Ray task per
model, 1 CPU and 1 torch thread each). Reported: wall seconds of ``rank_models`` and the speed-up.
With GPUs in the runtime and a CUDA device, each task also reserves one GPU (``executors.task_gpus``).
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


def child(k: int, n_models: int, n_per_class: int) -> None:
    from transferlens.executors import init_ray
    from transferlens.ranking import rank_models
    from transferlens.zoo.registry import list_built

    models = [f"zoo:{m}" for m in sorted(list_built())][:n_models]
    init_ray(num_cpus=k)
    t0 = time.perf_counter()
    rec = rank_models(models, f"builtin:digits?n_per_class={n_per_class}", scores=["logme", "h_score", "knn_accuracy"], executor="ray")
    seconds = time.perf_counter() - t0
    failed = [r for r in rec.get("models", []) if r.get("error")]
    print(json.dumps({"workers": k, "models": models, "seconds": round(seconds, 2), "failed": len(failed)}))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--n-per-class", type=int, default=30)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from transferlens.paths import data_dir

    rows = []
    load = os.getloadavg()[0]
    for k in args.workers:
        with tempfile.TemporaryDirectory() as home:
            (Path(home) / "data").symlink_to(data_dir(), target_is_directory=True)
            env = {**os.environ, "TRANSFERLENS_HOME": home, "OMP_NUM_THREADS": "1", "TRANSFERLENS_DEVICE": "cpu"}
            proc = subprocess.run([sys.executable, __file__, "_child", str(k), str(args.models), str(args.n_per_class)],
                                  capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-3000:])
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    base = rows[0]["seconds"]
    for r in rows:
        r["speedup_vs_first"] = round(base / r["seconds"], 2)
    record = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
              "load_at_start": round(load, 2), "command": " ".join(sys.argv), "rows": rows}
    print(json.dumps(record))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
