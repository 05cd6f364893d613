"""The main workflow: from candidate models and a few hundred labelled samples to a per-layer summary.

This is the foundation's version of ``transferlens assess``: it extracts every layer of each candidate
(cached) and summarises how well each layer separates the classes, with a held-out nearest-class-centre
accuracy. Later stages (transferability scores, OOD probes, fine-tuning, the HTML report) grow from here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import load_data
from .data.base import stratified_split
from .features import FeatureSet, extract
from .io import write_record

from .defaults import DEFAULT_DATA, DEFAULT_MODELS  # noqa: E402 (re-exported)


def holdout_ncc_accuracy(x: np.ndarray, y: np.ndarray, test_fraction: float = 0.5, seed: int = 0) -> float:
    """Nearest-class-centre accuracy: class means from a stratified train half, accuracy on the other half.

    Features are centred and L2-normalised first (cosine NCC), the usual few-shot protocol.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    train, test = stratified_split(y, test_fraction, seed)
    k = int(y.max()) + 1
    centres = np.zeros((k, x.shape[1]))
    np.add.at(centres, y[train], x[train])
    centres /= np.bincount(y[train], minlength=k).clip(1)[:, None]
    d2 = (x[test] ** 2).sum(1)[:, None] - 2 * x[test] @ centres.T + (centres**2).sum(1)[None]
    return float((d2.argmin(1) == y[test]).mean())


@dataclass
class LayerSummary:
    layer: str
    dim: int
    ncc_accuracy: float
    mean_norm: float

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def summarise(fs: FeatureSet) -> list[LayerSummary]:
    rows = []
    for layer in fs.layers:
        x = fs[layer]
        rows.append(LayerSummary(layer, int(x.shape[1]), holdout_ncc_accuracy(x, fs.labels), float(np.linalg.norm(x, axis=1).mean())))
    return rows


def assess(models: list[str] | None = None, data: str | None = None, out: str | Path = "transferlens-out", *,
           layers: str = "all", pool: str = "auto", progress: bool = False) -> dict:
    """Extract all layers of each model on ``data`` and write ``assess.json`` with per-layer summaries."""
    models = list(models or DEFAULT_MODELS)
    dataset = load_data(data or DEFAULT_DATA)
    results = []
    for model in models:
        t0 = time.perf_counter()
        fs = extract(model, dataset, layers, pool=pool, progress=progress)
        rows = summarise(fs)
        best = max(rows, key=lambda r: r.ncc_accuracy)
        results.append({
            "model": model, "cache": fs.provenance.get("cache"), "seconds": round(time.perf_counter() - t0, 2),
            "layers": [r.to_dict() for r in rows], "best_layer": best.layer, "best_ncc_accuracy": best.ncc_accuracy,
        })
    record = {
        "data": dataset.uri, "n_samples": len(dataset), "n_classes": dataset.n_classes,
        "chance_accuracy": 1.0 / dataset.n_classes, "models": results,
    }
    write_record(Path(out) / "assess.json", "assess", record)
    return record
