"""Pretraining of one zoo recipe on CPU, resumable after an interruption.

Training: AdamW, cosine learning-rate schedule with one warm-up epoch, label smoothing; augmentation is
a random translation (±12.5 % of the side) and rotation (±10°) applied to the whole batch on the fly.
Recipes with ``gc_lambda > 0`` add ``gc_lambda · GĈ(model, x)`` (Hutchinson, one Rademacher probe, on a
sub-batch) to the loss: the geometric-complexity regulariser of Dherin et al. / Munn et al.
Every epoch writes a checkpoint (model, optimizer, scheduler, RNG and curve) into ``NAME.partial/``;
a restarted build continues from the last finished epoch. The finished model is written as
``model.safetensors`` + ``card.json`` and the folder is renamed into place in one step.
"""

from __future__ import annotations

import math
import platform
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import __version__
from ..data import ImageSpec, load_data
from ..data.base import stratified_split
from ..io import atomic_write_text
from ..geometry.complexity import GCRegularizer
from .archs import build_arch
from .recipes import Recipe

MEAN, STD = 0.5, 0.5
# The GC penalty (gc_lambda > 0) is estimated on the first GC_SUBBATCH images of each batch (1 probe).
GC_SUBBATCH = 32


def source_tensors(recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    data = load_data(recipe.source_uri())
    x = data.images(np.arange(len(data)), ImageSpec(recipe.size, 1))
    return (x - MEAN) / STD, torch.from_numpy(data.labels), data.class_names


def augment_batch(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(10)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * 0.25  # grid units: 0.25 = 12.5 % of the side
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            correct += int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
    return correct / max(1, x.shape[0])


def train_recipe(recipe: Recipe, dest: Path, progress: Callable[[str, float], None] | None = None) -> dict:
    """Train ``recipe`` and write ``dest/{model.safetensors, card.json}``; resume from ``dest.partial``."""
    from safetensors.torch import save_file

    partial = dest.with_name(dest.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    ckpt_path = partial / "checkpoint.pt"

    torch.manual_seed(recipe.seed)
    x, y, class_names = source_tensors(recipe)
    train_idx, val_idx = stratified_split(y.numpy(), 0.1, recipe.seed)
    xt, yt = x[train_idx], y[train_idx]
    xv, yv = x[val_idx], y[val_idx]

    model = build_arch(recipe.arch, **recipe.full_arch_kwargs())
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=recipe.lr)
    steps_per_epoch = math.ceil(len(train_idx) / recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    warm = min(steps_per_epoch, total)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    gen = torch.Generator().manual_seed(recipe.seed)
    gc_reg = GCRegularizer(model, recipe.gc_lambda, n_probes=1, seed=recipe.seed) if recipe.gc_lambda > 0 else None
    curve: list[dict] = []
    start_epoch = 0
    seconds_before = 0.0
    if ckpt_path.exists():
        try:
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            if state.get("fingerprint") == recipe.fingerprint():
                model.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                gen.set_state(state["generator"])
                if gc_reg is not None:
                    gc_reg.generator.set_state(state["gc_generator"])
                curve, start_epoch, seconds_before = list(state["curve"]), int(state["epoch"]), float(state["seconds"])
        except Exception:  # a checkpoint torn by a kill mid-write is not possible (atomic), but be safe
            start_epoch = 0
    t0 = time.perf_counter()
    for epoch in range(start_epoch, recipe.epochs):
        model.train()
        perm = torch.randperm(len(train_idx), generator=gen)
        running, seen = 0.0, 0
        for i in range(0, len(perm), recipe.batch_size):
            idx = perm[i : i + recipe.batch_size]
            xb, yb = xt[idx], yt[idx]
            if recipe.augment:
                xb = augment_batch(xb, gen)
            loss = F.cross_entropy(model(xb), yb, label_smoothing=recipe.label_smoothing)
            if gc_reg is not None:
                loss = loss + gc_reg(xb[:GC_SUBBATCH])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach()) * len(idx)
            seen += len(idx)
            if progress is not None:
                progress(recipe.name, (epoch + seen / len(perm)) / recipe.epochs)
        curve.append({"epoch": epoch + 1, "train_loss": round(running / seen, 5), "val_accuracy": round(_evaluate(model, xv, yv), 5)})
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"fingerprint": recipe.fingerprint(), "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "generator": gen.get_state(),
                    "gc_generator": gc_reg.generator.get_state() if gc_reg is not None else None, "curve": curve, "epoch": epoch + 1,
                    "seconds": seconds_before + time.perf_counter() - t0}, tmp)
        tmp.replace(ckpt_path)
    seconds = seconds_before + time.perf_counter() - t0
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(partial / "model.safetensors"))
    card = {
        "name": recipe.name,
        "description": recipe.description,
        "recipe": {k: v for k, v in recipe.__dict__.items()},
        "recipe_fingerprint": recipe.fingerprint(),
        "arch": {"name": recipe.arch, "kwargs": recipe.full_arch_kwargs()},
        "input": {"size": recipe.size, "channels": 1, "mean": [MEAN], "std": [STD]},
        "source": {"uri": recipe.source_uri(), "n_classes": len(class_names), "n_train": len(train_idx), "n_val": len(val_idx)},
        "source_accuracy": curve[-1]["val_accuracy"] if curve else None,
        "training_curve": curve,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "build_seconds": round(seconds, 1),
        "built_with": {"transferlens": __version__, "torch": torch.__version__, "machine": platform.machine(), "threads": torch.get_num_threads()},
    }
    import json

    atomic_write_text(partial / "card.json", json.dumps(card, indent=2))
    ckpt_path.unlink(missing_ok=True)
    if dest.exists():
        shutil.rmtree(dest)
    partial.rename(dest)
    return card
