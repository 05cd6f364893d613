"""From URIs to tensors and a model with a new head: what every fine-tuning run (and ``zoo evaluate``) needs.

* :func:`load_backbone`: a model URI → the image network, its input spec and normalisation;
* :func:`image_tensors`: a dataset → normalised images ``(x − mean)/std`` and int64 labels;
* :func:`align_labels`: a dataset's labels in the train set's class order (OOD/test sets may hold a
  subset of the classes, in any order; a class the train set lacks is an error);
* :func:`find_head` / :func:`replace_head`: swap the classifier for a new ``nn.Linear`` or a fixed
  :class:`~transferlens.finetune.heads.SimplexETFHead` with K outputs;
* :func:`head_inputs`: the penultimate features (the head's input, on the CPU), for a linear probe;
* :func:`accuracy`: top-1 accuracy in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..data import load_data
from ..data.base import Dataset
from ..errors import InputError, ModelError, UsageError

HEADS = ("linear", "etf")


@dataclass
class Backbone:
    """A loaded image network with the preprocessing its weights expect."""

    uri: str
    identity: str
    loaded: Any  # the HookedImageModel adapter: ``module``, ``prepare``, ``_mean``, ``_std``

    @property
    def module(self) -> nn.Module:
        return self.loaded.module


def load_backbone(uri: str) -> Backbone:
    """Resolve and load an image model URI (``zoo:``, ``timm:``, ``torchvision:``, ``file:``)."""
    from ..models import resolve_model

    ref = resolve_model(uri)
    if ref.kind != "image":
        raise UsageError(f"fine-tuning supports image models; {uri} is a {ref.kind} model.")
    return Backbone(ref.uri, ref.identity, ref.load())


def image_tensors(loaded: Any, ds: Dataset, labels: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
    """All images of ``ds`` at the model's spec, normalised, and the labels (``labels`` overrides)."""
    x = loaded.prepare(ds, np.arange(len(ds)))
    y = ds.labels if labels is None else labels
    return (x - loaded._mean) / loaded._std, torch.from_numpy(np.asarray(y, dtype=np.int64))


def align_labels(ds: Dataset, class_names: list[str], what: str) -> np.ndarray:
    """``ds.labels`` re-indexed to ``class_names`` (the train set's order); InputError for unknown classes."""
    index = {name: i for i, name in enumerate(class_names)}
    missing = [name for name in ds.class_names if name not in index]
    if missing:
        shown = ", ".join(map(repr, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise InputError(f"{what} {ds.uri} has classes the train set lacks ({shown}); "
                         f"use data with the train classes only (classes=...).")
    mapping = np.array([index[name] for name in ds.class_names], dtype=np.int64)
    return mapping[ds.labels]


def load_aligned(uri: str, class_names: list[str], what: str) -> tuple[Dataset, np.ndarray]:
    """Load a data URI and align its labels to ``class_names``."""
    ds = load_data(uri)
    return ds, align_labels(ds, class_names, what)


def find_head(module: nn.Module) -> tuple[str, nn.Module]:
    """Dotted path and module of the classifier: timm's ``get_classifier()``, else ``head`` / ``fc`` /
    ``classifier``, else the last ``nn.Linear``."""
    get = getattr(module, "get_classifier", None)
    if callable(get):
        target = get()
        for name, m in module.named_modules():
            if name and m is target:
                return name, m
    for attr in ("head", "fc", "classifier"):
        m = getattr(module, attr, None)
        if isinstance(m, nn.Linear):
            return attr, m
    linears = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ModelError(f"{type(module).__name__} has no linear classifier to replace.")
    return linears[-1]


def replace_head(module: nn.Module, n_classes: int, kind: str = "linear", seed: int = 0) -> tuple[str, list[str]]:
    """Replace the classifier by a new K-way head in place; returns its path and parameter names.

    ``kind="linear"``: ``nn.Linear`` (torch's default init from the global RNG); ``"etf"``: a fixed
    simplex-ETF weight with a learnable temperature and bias (Zhu et al., NeurIPS 2021; see :mod:`.heads`).
    """
    from .heads import SimplexETFHead

    if kind not in HEADS:
        raise UsageError(f"head must be one of {', '.join(HEADS)}, got {kind!r}.")
    path, old = find_head(module)
    if not isinstance(old, nn.Linear):
        raise ModelError(f"the classifier {path} of {type(module).__name__} is a {type(old).__name__}, not nn.Linear.")
    new: nn.Module
    if kind == "linear":
        new = nn.Linear(old.in_features, n_classes)
    else:
        new = SimplexETFHead(n_classes, old.in_features, seed=seed)
    parent_path, _, attr = path.rpartition(".")
    setattr(module.get_submodule(parent_path) if parent_path else module, attr, new)
    return path, [f"{path}.{n}" for n, _ in new.named_parameters()]


@torch.no_grad()
def head_inputs(module: nn.Module, head_path: str, x: Tensor, batch: int = 256) -> Tensor:
    """The inputs of the head module (penultimate features) for all of ``x``, in eval mode."""
    captured: list[Tensor] = []
    hook = module.get_submodule(head_path).register_forward_hook(lambda _m, inp, _out: captured.append(inp[0].detach()))
    module.eval()
    dev = next(module.parameters()).device
    try:
        for i in range(0, x.shape[0], batch):
            module(x[i : i + batch].to(dev))
    finally:
        hook.remove()
    return torch.cat(captured).flatten(1).cpu()


def accuracy_count(module: nn.Module, x: Tensor, y: Tensor, batch: int = 512) -> int:
    """Number of correct top-1 predictions of ``module`` (eval mode) on ``(x, y)``."""
    module.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            correct += int((module(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
    return correct


def accuracy(module: nn.Module, x: Tensor, y: Tensor, batch: int = 512) -> float:
    """Top-1 accuracy of ``module`` in eval mode (0 for an empty set)."""
    return accuracy_count(module, x, y, batch) / max(1, int(x.shape[0]))
