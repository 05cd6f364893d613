"""One-pass feature extraction into a :class:`FeatureSet`, with a content-addressed cache.

``extract(model, data, layers)`` runs **one forward pass per batch** for all requested layers; each layer's
output is pooled inside its forward hook, so only pooled vectors are kept (preallocated float32 arrays).

The cache key is the sha256 of: model identity (URI + weights digest, or the recipe that determines random
weights), data URI + file fingerprint, resolved layer names, pooling, image spec and
``FEATURE_CODE_VERSION``. Entries are safetensors files written atomically; each stores a digest of its
arrays, checked on load, so a truncated or corrupt entry is detected, reported and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .data import Dataset, load_data
from .errors import CacheError, UsageError
from .io import atomic_write
from .models import resolve_model
from .models.sources import ModelRef
from .models.taps import check_pool, resolve_layers
from .paths import feature_cache_dir

log = logging.getLogger("transferlens")

FEATURE_CODE_VERSION = "1"


@dataclass
class FeatureSet:
    """Pooled features of several layers of one model on one dataset.

    ``features[layer]`` is a float32 array (N, D_layer); ``labels`` int64 (N,) in 0..K-1.
    """

    features: dict[str, np.ndarray]
    labels: np.ndarray
    class_names: list[str]
    provenance: dict = field(default_factory=dict)

    @property
    def layers(self) -> list[str]:
        return list(self.features)

    @property
    def n_samples(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, layer: str) -> np.ndarray:
        if layer not in self.features:
            raise UsageError(f"no layer {layer!r} in this FeatureSet; it has {', '.join(self.features)}.")
        return self.features[layer]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        from safetensors.numpy import save_file

        arrays = {f"layer/{name}": np.ascontiguousarray(arr, dtype=np.float32) for name, arr in self.features.items()}
        arrays["labels"] = np.ascontiguousarray(self.labels, dtype=np.int64)
        meta = {
            "format": "transferlens.featureset/1",
            "layers": json.dumps(self.layers),
            "class_names": json.dumps(self.class_names),
            "provenance": json.dumps(self.provenance),
            "digest": _digest(arrays),
        }
        return atomic_write(path, lambda tmp: save_file(arrays, str(tmp), metadata=meta))

    @classmethod
    def load(cls, path: str | Path) -> "FeatureSet":
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="numpy") as fh:
                meta = fh.metadata() or {}
                arrays = {k: fh.get_tensor(k) for k in fh.keys()}
            if meta.get("format") != "transferlens.featureset/1":
                raise ValueError("not a TransferLens feature file")
            if meta.get("digest") != _digest(arrays):
                raise ValueError("content digest mismatch")
            layers = json.loads(meta["layers"])
            return cls(
                features={name: arrays[f"layer/{name}"] for name in layers},
                labels=arrays["labels"],
                class_names=json.loads(meta["class_names"]),
                provenance=json.loads(meta["provenance"]),
            )
        except FileNotFoundError:
            raise CacheError(f"feature file {path} does not exist.") from None
        except Exception as exc:
            raise CacheError(f"feature file {path} is corrupt ({str(exc)[:120]}).") from None


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cache_key(model_identity: str, data: Dataset, layers: list[str], pool: str, spec: Any, numerics: str | None = None) -> str:
    """sha256 of what determines the features. ``numerics`` (:func:`transferlens.device.numerics_key`) is None on
    the reference path (CPU, fp32), which keeps the keys of every existing cache entry; else it is part of the key."""
    payload = {
        "model": model_identity,
        "data": data.uri,
        "data_fingerprint": data.fingerprint,
        "n": len(data),
        "layers": layers,
        "pool": pool,
        "spec": repr(spec),
        "code": f"{FEATURE_CODE_VERSION}|{__version__}",
    }
    if numerics is not None:
        payload["numerics"] = numerics
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:40]


def extract(
    model: str | ModelRef,
    data: str | Dataset,
    layers: str | list[str] | None = "all",
    *,
    pool: str = "auto",
    batch_size: int = 64,
    size: int | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    device: str | torch.device | None = "auto",
    precision: str | None = None,
    num_workers: int | None = None,
) -> FeatureSet:
    """Features of ``layers`` of ``model`` on ``data``, from the cache when possible.

    ``model`` and ``data`` are URIs or resolved objects. ``layers``: ``all`` / ``penultimate`` / ``last``
    / names / positions (see :func:`transferlens.models.taps.resolve_layers`). ``size`` overrides the
    model's input resolution for image models.

    ``device``: ``auto`` / ``cpu`` / ``cuda[:N]`` / ``mps`` (:func:`transferlens.device.resolve_device`; checked
    first, so a missing GPU fails before anything loads); ``precision``: ``fp32`` / ``bf16`` / ``fp16`` autocast
    of the forward pass (None: the :func:`transferlens.device.using` default, fp32). Features come back float32 on the CPU either way; CPU + fp32 is bit-identical to the
    code before devices existed and keeps its cache keys, any other combination gets its own cache entries.
    ``num_workers``: image decoding and resizing in that many DataLoader worker processes (None: automatic,
    see :func:`auto_workers`; 0: in this process). The result does not depend on it.

    Example (``fs[layer]`` is an (N, D) float32 array, ``fs.labels`` int64 in 0..K-1)::

        >>> fs = extract("zoo:mlp-g50-s16", "builtin:digits-uci?n_per_class=10", "all")
        >>> fs.layers, fs["head"].shape, fs.labels.shape
        (['layers.0', 'layers.1', 'head'], (100, 50), (100,))
    """
    from .device import device_provenance, numerics_key, resolve

    dev, precision = resolve(device, precision)
    check_pool(pool)
    if batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {batch_size}.")
    dataset = load_data(data) if isinstance(data, str) else data
    if len(dataset) == 0:
        raise UsageError(f"{dataset.uri} selects no samples.")
    if dataset.kind == "features":
        return FeatureSet({"features": dataset.feature_matrix()}, dataset.labels.copy(), list(dataset.class_names),
                          {"model": None, "data": dataset.uri, "layers": ["features"], "pool": None})
    ref = resolve_model(model) if isinstance(model, str) else model
    if ref.kind != dataset.kind:
        raise UsageError(f"{ref.uri} takes {ref.kind} but {dataset.uri} holds {dataset.kind}; pair image models with image data and text models with text data.")

    root = Path(cache_dir) if cache_dir is not None else feature_cache_dir()
    loaded = None
    layer_request = layers if layers is not None else ref.info.get("default_layers", "all")  # st: sentence_embedding
    names = _layer_names_without_loading(ref, layer_request, root)
    if names is None:  # needs the model to resolve names
        loaded = _load_with_size(ref, size)
        names = _resolve_and_remember(loaded, ref, layer_request, root)
    spec_repr = f"size={size}" if size is not None else "native"
    key = cache_key(ref.identity, dataset, names, pool, spec_repr, numerics_key(dev, precision))
    path = root / f"{key}.safetensors"
    if cache and path.exists():
        t0 = time.perf_counter()
        try:
            fs = FeatureSet.load(path)
            log.info("cache hit: %d layers x %d samples of %s on %s from %s (%.2f s)", len(fs.layers), fs.n_samples, ref.uri, dataset.uri, path, time.perf_counter() - t0)
            fs.provenance["cache"] = "hit"
            return fs
        except CacheError as exc:
            log.warning("%s Rebuilding it.", exc)
            path.unlink(missing_ok=True)

    if loaded is None:
        loaded = _load_with_size(ref, size)
        names = _resolve_and_remember(loaded, ref, layer_request, root)
    if hasattr(loaded, "to") and (dev.type != "cpu" or precision != "fp32" or getattr(loaded, "device", dev) != dev):
        loaded.to(dev, precision)
    workers = auto_workers(dataset, batch_size) if num_workers is None else int(num_workers)
    t0 = time.perf_counter()
    from .device import oom_hint

    with oom_hint(batch_size, f"extracting {ref.uri}"):
        feats = _run(loaded, dataset, names, pool, batch_size, progress, workers)
    seconds = time.perf_counter() - t0
    provenance = {
        "model": ref.uri, "model_identity": ref.identity, "data": dataset.uri, "layers": names, "pool": pool,
        "input": repr(getattr(loaded, "spec", None)), "n_samples": len(dataset), "seconds": round(seconds, 3),
        "torch": torch.__version__, "transferlens": __version__, "cache_key": key,
        **device_provenance(dev, precision), "num_workers": workers,
    }
    fs = FeatureSet(feats, dataset.labels.copy(), list(dataset.class_names), provenance)
    log.info("extracted %d layers x %d samples of %s on %s in %.1f s", len(names), len(dataset), ref.uri, dataset.uri, seconds)
    if cache:
        fs.save(path)
    fs.provenance["cache"] = "miss"
    return fs


def _taps_memo_path(ref: ModelRef, root: Path) -> Path:
    return root / "taps" / (hashlib.sha256(ref.identity.encode()).hexdigest()[:32] + ".json")


def _resolve_and_remember(model: Any, ref: ModelRef, request: str | list[str], root: Path) -> list[str]:
    """Resolve layer names on the loaded model and remember its default taps and module names, so the
    next call with the same model can find its cache entry without loading the model."""
    from .io import atomic_write_text

    taps, modules = model.layer_names(), model.all_module_names()
    names = resolve_layers(request, taps, modules, ref.uri)
    try:
        atomic_write_text(_taps_memo_path(ref, root), json.dumps({"taps": taps, "modules": modules}))
    except Exception:  # an optimisation only
        pass
    return names


def _layer_names_without_loading(ref: ModelRef, request: str | list[str], root: Path) -> list[str] | None:
    try:
        memo = json.loads(_taps_memo_path(ref, root).read_text())
        return resolve_layers(request, memo["taps"], memo["modules"], ref.uri)
    except Exception:
        return None


def _load_with_size(ref: ModelRef, size: int | None) -> Any:
    from .data import ImageSpec

    model = ref.load()
    if size is not None:
        if model.kind != "image":
            raise UsageError(f"--size applies to image models; {ref.uri} is a {model.kind} model.")
        model.spec = ImageSpec(size, model.spec.channels)
    return model


def auto_workers(data: Dataset, batch_size: int) -> int:
    """DataLoader workers for image decoding: 0 for non-image data, for sources held in memory (built-ins,
    whose loader only slices an array), for fewer than 4 batches (starting a worker costs more than it
    saves) and where processes cannot be forked (macOS, Windows: a source's loader is a closure, which
    spawned workers could not receive), and on machines with fewer than 4 CPUs (the model's threads leave no
    core free: measured slower on 2 cores, docs/BENCHMARKS.md); else ``min(4, cpus - 2)``.
    ``TRANSFERLENS_WORKERS`` overrides it."""
    import os

    env = os.environ.get("TRANSFERLENS_WORKERS")
    if env is not None and env.strip().isdigit():
        return int(env)
    if data.kind != "image" or not data.info.get("lazy_files") or len(data) < 4 * batch_size or not _can_fork():
        return 0
    cpus = os.cpu_count() or 1
    return 0 if cpus < 4 else min(4, cpus - 2)


def _can_fork() -> bool:
    import multiprocessing as mp
    import sys

    return sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()


class _ImageBatches(torch.utils.data.Dataset):
    """Batch ``i`` = images of positions ``[i*b, (i+1)*b)`` at ``spec``, decoded where it is called (a worker)."""

    def __init__(self, data: Dataset, spec: Any, n: int, batch_size: int) -> None:
        self.data, self.spec, self.n, self.b = data, spec, n, batch_size

    def __len__(self) -> int:
        return (self.n + self.b - 1) // self.b

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data.images(np.arange(i * self.b, min((i + 1) * self.b, self.n)), self.spec)


def _batches(model: Any, data: Dataset, n: int, batch_size: int, workers: int) -> Any:
    """``(positions, inputs)`` per batch, in the model's ``batch_order`` (text: by length) or as stored; image
    batches prepared in ``workers`` processes when > 0."""
    starts = range(0, n, batch_size)
    spec = getattr(model, "spec", None)
    if workers <= 0 or data.kind != "image" or spec is None or not _can_fork():
        # text models batch by length (less padding, as SentenceTransformer.encode); others in order
        order = model.batch_order(data) if hasattr(model, "batch_order") else np.arange(n)
        for start in starts:
            positions = order[start : start + batch_size]
            yield positions, model.prepare(data, positions)
        return
    if data.kind != model.kind:
        model.prepare(data, np.arange(0))  # the adapter's own kind check, before any worker starts
    pin = getattr(model, "device", torch.device("cpu")).type == "cuda"
    loader = torch.utils.data.DataLoader(_ImageBatches(data, spec, n, batch_size), batch_size=None, shuffle=False,
                                         num_workers=workers, pin_memory=pin, prefetch_factor=2, persistent_workers=False,
                                         multiprocessing_context="fork")
    for start, inputs in zip(starts, loader):
        yield np.arange(start, min(start + batch_size, n)), inputs


def _run(model: Any, data: Dataset, layers: list[str], pool: str, batch_size: int, progress: bool,
         workers: int = 0) -> dict[str, np.ndarray]:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from .progress import progress_bar  # a live bar on a terminal, periodic log lines elsewhere

    n = len(data)
    out: dict[str, np.ndarray] = {}
    with progress_bar("extract", TextColumn("[bold]extract[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), enabled=progress, unit="samples", transient=True) as bar:
        task = bar.add_task(f"{model.uri} on {data.uri}", total=n)
        hooked = hasattr(model, "tapped")
        ctx = model.tapped(layers, pool) if hooked else None
        captured = ctx.__enter__() if ctx is not None else None
        try:
            for positions, inputs in _batches(model, data, n, batch_size, workers):
                if hooked:
                    captured.clear()
                    model.forward(inputs)
                    missing = [name for name in layers if name not in captured]
                    if missing:
                        raise UsageError(f"{model.uri}: layer(s) {', '.join(missing)} produced no tensor output.")
                    batch = {name: captured[name] for name in layers}
                else:
                    batch = model.forward_layers(inputs, layers, pool)
                for name, t in batch.items():
                    arr = t.detach().float().cpu().numpy()
                    if name not in out:
                        out[name] = np.empty((n, arr.shape[1]), dtype=np.float32)
                    out[name][positions] = arr
                bar.advance(task, len(positions))
        finally:
            if ctx is not None:
                ctx.__exit__(None, None, None)
    return out
