"""Named layer taps: which layers of a network can be read, and how their outputs are pooled.

Pooling happens inside the forward hook, so a convolutional map is reduced to a vector before it is
stored; extracting every layer of a network costs memory proportional to the pooled sizes only.

Pooling modes (``pool=``):

- ``auto``: conv maps (B, C, H, W) → global average; token sequences (B, T, D) → CLS token when the model
  has one, else the mean token; vectors unchanged.
- ``avg``: global average over space (or tokens). ``avg2x2``: adaptive 2×2 average then flatten, 4·C
  values (the tunnel-effect papers' choice; maps already ≤ 2×2 are flattened as they are).
- ``max``: global max. ``cls``: first token. ``mean``: mean token. ``flatten``: everything (large!).
"""

from __future__ import annotations

import difflib
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError

POOL_MODES = ("auto", "avg", "avg2x2", "max", "cls", "mean", "flatten")

_SKIP = (nn.Dropout, nn.Dropout2d, nn.Identity)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Tanh, nn.Sigmoid, nn.Hardswish, nn.Mish)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def check_pool(mode: str) -> str:
    if mode not in POOL_MODES:
        raise UsageError(f"unknown pooling {mode!r}; choose one of {', '.join(POOL_MODES)}.")
    return mode


def pool_output(t: torch.Tensor, mode: str, has_cls_token: bool = False, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Reduce a layer output to (B, D) according to ``mode`` (see module docstring)."""
    if t.ndim == 2:
        return t
    if t.ndim == 4:
        if mode in ("auto", "avg", "mean"):
            return t.mean(dim=(2, 3))
        if mode == "avg2x2":
            if t.shape[2] <= 2 and t.shape[3] <= 2:
                return t.flatten(1)
            return F.adaptive_avg_pool2d(t, 2).flatten(1)
        if mode == "max":
            return t.amax(dim=(2, 3))
        if mode == "flatten":
            return t.flatten(1)
        raise UsageError(f"pooling {mode!r} does not apply to convolutional maps {tuple(t.shape)}; use avg, avg2x2, max or flatten.")
    if t.ndim == 3:
        if mode == "cls" or (mode == "auto" and has_cls_token):
            return t[:, 0]
        if mode in ("auto", "mean", "avg", "avg2x2"):
            if mask is not None:
                m = mask.to(t.dtype).unsqueeze(-1)
                return (t * m).sum(1) / m.sum(1).clamp_min(1.0)
            return t.mean(dim=1)
        if mode == "max":
            return t.amax(dim=1)
        if mode == "flatten":
            return t.flatten(1)
    return t.flatten(1)


def default_taps(model: nn.Module) -> list[str]:
    """The layers ``--layers all`` reads: the top-level children in order, with containers
    (``Sequential`` / ``ModuleList``, e.g. ResNet's ``layer1`` or a ViT's ``blocks``) expanded into their
    blocks. Dropout / identity modules are skipped; in a container of primitive operations only the
    activations and poolings are tapped (a conv's output before its BN and ReLU is rarely wanted)."""
    declared = getattr(model, "transferlens_taps", None)
    if declared:
        return list(declared)
    taps: list[str] = []
    for name, child in model.named_children():
        taps += _expand(name, child)
    return taps


def _expand(name: str, module: nn.Module) -> list[str]:
    if isinstance(module, _SKIP):
        return []
    if isinstance(module, (nn.Sequential, nn.ModuleList)) and len(module) > 1:
        children = list(module.named_children())
        primitive = all(len(list(c.children())) == 0 for _, c in children)
        if primitive:
            marked = [f"{name}.{n}" for n, c in children if isinstance(c, _ACTIVATIONS + _POOLS)]
            return marked or [f"{name}.{n}" for n, c in children if not isinstance(c, _SKIP)]
        return [f"{name}.{n}" for n, c in children if not isinstance(c, _SKIP)]
    return [name]


def resolve_layers(requested: str | Iterable[str] | None, available: list[str], all_modules: Iterable[str], model_uri: str) -> list[str]:
    """Turn ``--layers`` into layer names.

    ``all`` (or None): every default tap. ``penultimate`` / ``last``: the last two / last default taps.
    Otherwise comma-separated names (any module name works, not only default taps) or integer positions
    in the default list (``-1`` is the last).
    """
    if requested is None:
        return list(available)
    tokens = [t.strip() for t in (requested.split(",") if isinstance(requested, str) else requested) if t.strip()]
    if not tokens:
        raise UsageError("--layers is empty; use all, penultimate, last, names or positions.")
    known = set(all_modules) | set(available)
    out: list[str] = []
    for tok in tokens:
        if tok == "all":
            out += available
        elif tok == "last":
            out.append(available[-1])
        elif tok == "penultimate":
            out.append(available[-2] if len(available) > 1 else available[-1])
        elif tok in known:
            out.append(tok)
        else:
            try:
                out.append(available[int(tok)])
                continue
            except (ValueError, IndexError):
                pass
            close = difflib.get_close_matches(tok, list(known), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"{model_uri} has no layer {tok!r}.{hint} List layers with `transferlens layers {model_uri}`.")
    return list(dict.fromkeys(out))
