"""``geometry_report``: per-layer representation geometry of a model on a labelled dataset.

For every requested layer (features extracted once, cached): neural collapse (NC1, NC2, CDNV),
ranks (numerical, effective, RankMe), few-shot n-way k-shot nearest-class-centre accuracy, and the
geometric complexity GC = E_x ‖∂f(x)/∂x‖²_F of the *pooled* layer output f with respect to the input
pixels in [0, 1] (the model's own normalisation is part of f), estimated with random projections and
reported with its standard error. Image models only for GC; text models get everything else.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch

from ..data import load_data
from ..features import extract
from ..metrics.collapse import neural_collapse
from ..metrics.fewshot import few_shot_eval
from ..metrics.rank import rank_report
from ..models import resolve_model
from ..models.taps import pool_output
from .complexity import LayerTap, gc_stochastic


def _pooled_tap(model: Any, layer: str, pool: str):
    tap = LayerTap(model.module, layer, flatten=False)

    def fn(x: torch.Tensor) -> torch.Tensor:
        out = tap((x - model._mean) / model._std)
        return pool_output(out, pool, model.has_cls_token)

    return fn


def geometry_report(model: str, data: str, layers: str = "all", *, pool: str = "auto", n_way: int = 5, k_shot: int = 5,
                    n_episodes: int = 200, gc_samples: int = 64, gc_probes: int = 8, seed: int = 0,
                    size: int | None = None, progress: bool = False, device: str | torch.device | None = "auto",
                    gc_layers: list[str] | None = None) -> dict:
    """Geometry of each layer of ``model`` on ``data``; returns a record-ready dict.

    ``gc_layers``: the layers whose geometric complexity is estimated (default: every layer). GC costs
    ``gc_probes`` backward passes over ``gc_samples`` images per layer, which dominates on real backbones at
    224 px; the other measures are computed on every layer.

    ``device`` (:func:`transferlens.device.resolve_device`): extraction and the GC backward passes run there
    (GC in float32 whatever the precision: it differentiates with respect to the pixels)."""
    from ..device import resolve_device

    dev = resolve_device(device)
    ref = resolve_model(model)
    dataset = load_data(data)
    fs = extract(ref, dataset, layers, pool=pool, size=size, progress=progress, device=dev)
    n_way = min(n_way, len(fs.class_names))
    smallest = int(np.bincount(fs.labels).min())
    n_query = min(15, smallest - k_shot)  # as many queries as the smallest class allows, at most 15
    loaded = None
    if gc_samples > 0 and ref.kind == "image":
        from ..features import _load_with_size

        loaded = _load_with_size(ref, size)
        rng = np.random.default_rng(seed)
        gc_pos = np.sort(rng.choice(len(dataset), size=min(gc_samples, len(dataset)), replace=False))
        gc_inputs = loaded.prepare(dataset, gc_pos)
        if dev.type != "cpu":
            loaded.to(dev)  # fp32: GC needs input gradients at full precision
            gc_inputs = gc_inputs.to(dev)
    rows = []
    for layer in fs.layers:
        x = fs[layer]
        row: dict[str, Any] = {"layer": layer, "dim": int(x.shape[1])}
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            row.update({k: float(v) for k, v in neural_collapse(x, fs.labels).items() if k.startswith(("nc", "cdnv"))})
            row.update(rank_report(x, seed=seed))
            if n_query >= 1:
                shot = few_shot_eval(x, fs.labels, n_way=n_way, k_shot=k_shot, n_query=n_query, n_episodes=n_episodes, seed=seed)
                row["fewshot_accuracy"], row["fewshot_ci95"] = shot.mean, shot.ci95
            else:
                warnings.warn(f"few-shot skipped: the smallest class has {smallest} samples, k_shot={k_shot} needs more")
        row["warnings"] = sorted({str(w.message) for w in caught})
        if loaded is not None and (gc_layers is None or layer in gc_layers):
            gc = gc_stochastic(_pooled_tap(loaded, layer, pool), gc_inputs, n_probes=gc_probes, seed=seed)
            row["gc"], row["gc_se"] = gc.value, gc.se
        row["seconds"] = round(time.perf_counter() - t0, 3)
        rows.append(row)
    return {
        "model": ref.uri, "data": dataset.uri, "n_samples": fs.n_samples, "n_classes": len(fs.class_names), "pool": pool,
        "fewshot": {"n_way": n_way, "k_shot": k_shot, "n_query": max(n_query, 0), "n_episodes": n_episodes, "classifier": "ncc"},
        "gc": {"samples": gc_samples if loaded is not None else 0, "probes": gc_probes, "input": "pixels in [0, 1]",
               "layers": list(gc_layers) if gc_layers is not None else "all"},
        "seed": seed, "layers": rows, "device": str(dev),
    }
