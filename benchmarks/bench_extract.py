"""Peak memory and time of extracting every layer of a ResNet-18 at 32x32.

Usage: .venv/bin/python benchmarks/bench_extract.py [N ...]   (default: 2000 10000)

Each N runs in a fresh subprocess (so peak RSS is its own), with the feature cache off. Reports peak RSS,
wall-clock, the bytes of the pooled features kept, and the bytes the full (unpooled) maps of the same
layers would take, to show that memory follows the pooled sizes.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time

MODEL = "timm:resnet18?pretrained=false&size=32"


def child(n: int) -> None:
    import torch

    from transferlens.features import extract
    from transferlens.models import resolve_model

    torch.set_num_threads(2)
    per_class = n // 10
    data = f"builtin:fashion-mnist?n_per_class={per_class}"
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    fs = extract(MODEL, data, "all", pool="avg2x2", batch_size=128, cache=False)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pooled = sum(a.nbytes for a in fs.features.values())
    m = resolve_model(MODEL).load()
    shapes = {}
    handles = [dict(m.module.named_modules())[name].register_forward_hook(
        lambda _m, _i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:]))) for name in fs.layers]
    with torch.inference_mode():
        m.module(torch.zeros(1, 3, 32, 32))
    for h in handles:
        h.remove()
    full = sum(4 * n * int(torch.tensor(s).prod()) for s in shapes.values())
    print(json.dumps({"n": n, "layers": len(fs.layers), "seconds": round(seconds, 1), "images_per_s": round(n / seconds, 1),
                      "peak_rss_mb": round(peak / 1024, 1), "rss_before_extract_mb": round(rss0 / 1024, 1),
                      "pooled_features_mb": round(pooled / 2**20, 1), "full_maps_would_be_mb": round(full / 2**20, 1)}))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(int(sys.argv[2]))
        return
    sizes = [int(a) for a in sys.argv[1:]] or [2000, 10000]
    print(f"# {platform.machine()}, {platform.python_version()}, load {open('/proc/loadavg').read().split()[:3]}")
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--child", str(n)], capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
