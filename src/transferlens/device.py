"""One device and precision policy for the whole library.

* :func:`resolve_device`: ``auto`` (the CUDA GPU when one is visible, else Apple MPS, else the CPU),
  ``cpu``, ``cuda``, ``cuda:N``, ``mps`` → a :class:`torch.device`. A device that is not there fails at
  once (before any data or model is loaded) with one :class:`~transferlens.errors.UsageError` line;
  ``torch.cuda.is_available()`` answers in milliseconds and initialises no CUDA context.
* :func:`check_precision`: ``fp32`` (default), ``bf16``, ``fp16``. The two half precisions run the forward
  pass under :func:`torch.autocast` (:func:`autocast`); parameters, optimizer state and the features that
  come back stay float32 (features are pooled and returned as float32 exactly as on the fp32 path).
* :func:`device_provenance`: what every record stores about where and how it was computed.
* :func:`oom_hint`: a CUDA out-of-memory error becomes one line naming the batch size to try.
* :func:`using`: the process-wide default for ``device="auto"`` / ``precision=None`` within a block (the CLI's
  ``--device`` / ``--precision`` wrap each command in it, so every stage below a command runs there). It also
  sets ``TRANSFERLENS_DEVICE`` / ``TRANSFERLENS_PRECISION`` for worker processes started inside the block; outside
  any block those variables, when set, are the default (``TRANSFERLENS_DEVICE=cpu`` pins a GPU machine to the CPU).

CPU + fp32 is the reference path: no autocast context, no device copy, so results are bit-identical to a
build without this module.
"""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Iterator

import torch

from .errors import ModelError, UsageError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
DEVICE_HELP = "auto | cpu | cuda | cuda:N | mps (auto: the GPU when present, else the CPU)"
PRECISION_HELP = "fp32 | bf16 | fp16: autocast precision of the forward pass (features and weights stay float32)"
ENV_DEVICE, ENV_PRECISION = "TRANSFERLENS_DEVICE", "TRANSFERLENS_PRECISION"
_scope: list[tuple[str, str]] = []  # (device, precision) of the innermost `using` block


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The torch device named by ``spec``; UsageError (one line) when it is not available here."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto" and _scope:
        return torch.device(_scope[-1][0])
    if text == "auto" and os.environ.get(ENV_DEVICE, "auto").strip().lower() not in ("", "auto"):
        return resolve_device(os.environ[ENV_DEVICE])
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available():
            raise UsageError("--device mps: Apple MPS is not available on this machine; use --device cpu or auto.")
        return torch.device("mps")
    kind, _, index = text.partition(":")
    if kind == "cuda" and (not index or index.isdigit()):
        if not torch.cuda.is_available():
            built = f"PyTorch {torch.__version__}" + (f" built for CUDA {torch.version.cuda}" if torch.version.cuda else " without CUDA")
            raise UsageError(f"--device {text}: no CUDA GPU is visible here ({built}); use --device cpu or auto.")
        n = torch.cuda.device_count()
        i = int(index) if index else torch.cuda.current_device()
        if i >= n:
            raise UsageError(f"--device {text}: this machine has {n} CUDA device(s), numbered 0..{n - 1}.")
        return torch.device("cuda", i)
    raise UsageError(f"--device {spec!r} is not a device; use {DEVICE_HELP.split(' (')[0]}.")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def check_precision(precision: str | None) -> str:
    """``fp32`` / ``bf16`` / ``fp16`` (None → the :func:`using` default, else ``TRANSFERLENS_PRECISION``, else
    fp32); UsageError otherwise."""
    if precision is None:
        precision = _scope[-1][1] if _scope else (os.environ.get(ENV_PRECISION) or "fp32")
    p = precision.strip().lower()
    if p not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    return p


def resolve(device: str | torch.device | None = "auto", precision: str | None = None) -> tuple[torch.device, str]:
    """Both checks at once (precision first: it needs no hardware), for the top of a command."""
    p = check_precision(precision)
    return resolve_device(device), p


@contextlib.contextmanager
def using(device: str | torch.device | None = "auto", precision: str | None = None) -> Iterator[tuple[torch.device, str]]:
    """Within the block, ``device="auto"`` means ``device`` and ``precision=None`` means ``precision`` (both
    checked on entry: a missing GPU fails here, in milliseconds). Yields the resolved pair."""
    dev, p = resolve(device, precision)
    saved = {k: os.environ.get(k) for k in (ENV_DEVICE, ENV_PRECISION)}
    _scope.append((str(dev), p))
    os.environ[ENV_DEVICE], os.environ[ENV_PRECISION] = str(dev), p
    try:
        yield dev, p
    finally:
        _scope.pop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to the precision's dtype on ``device``; a no-op context for fp32."""
    p = check_precision(precision)
    if p == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[p])


def is_reference(device: torch.device, precision: str) -> bool:
    """CPU + fp32: the path whose results (and cache keys) are those of the code before devices existed."""
    return device.type == "cpu" and check_precision(precision) == "fp32"


def numerics_key(device: torch.device, precision: str) -> str | None:
    """What a cache key must add for results computed on ``device`` at ``precision``: None for the reference
    (CPU, fp32; keys unchanged), else ``"<device type>/<precision>"`` (GPU float32 is not bit-identical to CPU)."""
    return None if is_reference(device, precision) else f"{device.type}/{check_precision(precision)}"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return platform.processor() or platform.machine() or "cpu"


def device_provenance(device: torch.device, precision: str = "fp32") -> dict:
    """``{"device", "device_name", "precision", "torch", "cuda"}`` for a record."""
    return {"device": str(device), "device_name": device_name(device), "precision": check_precision(precision),
            "torch": torch.__version__, "cuda": torch.version.cuda if device.type == "cuda" else None}


@contextlib.contextmanager
def oom_hint(batch_size: int, what: str = "this run", option: str = "--batch-size") -> Iterator[None]:
    """Turn ``torch.OutOfMemoryError`` into one line: the batch size that did not fit and one to try (half)."""
    try:
        yield
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        smaller = max(1, batch_size // 2)
        raise ModelError(f"{what} ran out of GPU memory at batch size {batch_size}; try {option} {smaller} "
                         "(or --precision bf16, or --device cpu).") from None


def move_batch(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device`` (no copy when it is there already; pinned host memory is copied asynchronously)."""
    if x.device == device:
        return x
    return x.to(device, non_blocking=x.is_pinned())
