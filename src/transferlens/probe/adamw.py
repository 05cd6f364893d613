"""The reference probe of Harun et al. (NeurIPS 2024): a linear layer trained with AdamW.

Recipe (H24 App. A.3–A.6; ``cnn_experiments/linear_probe2.py`` of github.com/yousuf907/Tunnel): one
``nn.Linear(D, K)`` with W ~ N(0, 0.01²), b = 0; AdamW at a flat learning rate 1e-3, weight decay 0;
30 epochs; cross-entropy with label smoothing 0.1; raw (unstandardised) features.

Deliberate differences: the paper reports the *best test* accuracy over the 30 epochs (model selection
on the test set); here the epoch is chosen on a validation split (``x_val``/``y_val``) and its weights
are kept, or the last epoch is used without validation data. Batches are drawn by index from an
in-memory tensor (no DataLoader), with a seeded generator, so runs are deterministic (on the device of
``device``, the GPU under ``auto`` when present). The batch size
defaults to 256 (the official loader; the paper's text says 128).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..validation import as_float_matrix, as_labels, check_features_labels


@dataclass
class AdamWProbe:
    """A trained linear probe: scores = ((x − mean)/scale) @ weight.T + bias."""

    weight: np.ndarray  # (K, D)
    bias: np.ndarray  # (K,)
    mean: np.ndarray
    scale: np.ndarray
    info: dict = field(default_factory=dict)

    def decision_function(self, x: Any) -> np.ndarray:
        xm = as_float_matrix(x)
        if xm.shape[1] != self.weight.shape[1]:
            raise InputError(f"features have {xm.shape[1]} columns but the probe was fitted on {self.weight.shape[1]}.")
        return ((xm - self.mean) / self.scale) @ self.weight.T + self.bias

    def predict(self, x: Any) -> np.ndarray:
        return np.argmax(self.decision_function(x), axis=1)

    def score(self, x: Any, y: Any) -> float:
        return float(np.mean(self.predict(x) == as_labels(y, n_samples=np.shape(x)[0])))


def fit_adamw_probe(
    x: Any,
    y: Any,
    x_val: Any = None,
    y_val: Any = None,
    *,
    n_classes: int | None = None,
    epochs: int = 30,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 256,
    label_smoothing: float = 0.1,
    init_std: float = 0.01,
    standardize: bool = False,
    seed: int = 0,
    device: str | torch.device | None = "auto",
) -> AdamWProbe:
    """Train the reference probe; with validation data the best-validation epoch is kept.

    ``device`` (:func:`transferlens.device.resolve_device`; ``auto`` = the GPU when present): where the layer
    trains. The initial weights and the batch order come from a CPU generator seeded by ``seed`` on every
    device; on the CPU the probe is bit-identical to before devices existed."""
    xm, lab, k = check_features_labels(x, y, n_classes=n_classes)
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise InputError(f"epochs and batch_size must be >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}.")
    mean = xm.mean(axis=0) if standardize else np.zeros(xm.shape[1])
    scale = xm.std(axis=0) if standardize else np.ones(xm.shape[1])
    if standardize:
        scale[scale <= 1e-12] = 1.0
    xt = torch.from_numpy(((xm - mean) / scale).astype(np.float32))
    yt = torch.from_numpy(lab)
    has_val = x_val is not None
    if has_val:
        xv_np = as_float_matrix(x_val, name="validation features")
        yv = torch.from_numpy(as_labels(y_val, n_samples=xv_np.shape[0], name="validation labels"))
        if xv_np.shape[1] != xm.shape[1]:
            raise InputError(f"validation features have {xv_np.shape[1]} columns, the training features {xm.shape[1]}.")
        xv = torch.from_numpy(((xv_np - mean) / scale).astype(np.float32))
    gen = torch.Generator().manual_seed(int(seed))
    lin = torch.nn.Linear(xm.shape[1], k)
    with torch.no_grad():
        lin.weight.normal_(0.0, init_std, generator=gen)
        lin.bias.zero_()
    from ..device import resolve_device

    dev = resolve_device(device)
    if dev.type != "cpu":
        lin.to(dev)
        xt, yt = xt.to(dev), yt.to(dev)
        if has_val:
            xv, yv = xv.to(dev), yv.to(dev)
    opt = torch.optim.AdamW(lin.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    n = xt.shape[0]
    best = (-1.0, None, -1)
    history = []
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen).to(dev)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(lin(xt[idx]), yt[idx]).backward()
            opt.step()
        if has_val:
            with torch.no_grad():
                acc = float((lin(xv).argmax(1) == yv).float().mean())
            history.append(acc)
            if acc > best[0]:
                best = (acc, (lin.weight.detach().clone(), lin.bias.detach().clone()), epoch)
    if has_val and best[1] is not None:
        w, b = best[1]
    else:
        w, b = lin.weight.detach(), lin.bias.detach()
    info = {"epochs": epochs, "lr": lr, "weight_decay": weight_decay, "batch_size": batch_size,
            "label_smoothing": label_smoothing, "standardize": standardize, "seed": seed,
            "best_epoch": best[2] if has_val else epochs - 1, "val_accuracy": history}
    info["device"] = str(dev)
    return AdamWProbe(w.cpu().numpy().astype(np.float64), b.cpu().numpy().astype(np.float64), mean, scale, info)
