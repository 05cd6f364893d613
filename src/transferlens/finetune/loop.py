"""The fine-tuning loop behind ``transferlens finetune``: one model, one few-label task, one method.

:func:`run_finetune` loads a model and data by URI, puts a new K-way head on the model (linear, or a fixed
simplex ETF), trains every weight with AdamW under a cosine schedule (per step) and one of the methods of
:mod:`.methods` (plain, L2-SP, LP-FT, WiSE-FT, TPGM, FTP), and returns a JSON-able record: per-epoch
train loss (cross-entropy) and validation accuracy, the final ID test and OOD accuracies, cost, and a
per-tensor trace of ``‖θ − θ₀‖₂``, ``max_rows ‖θ − θ₀‖₁`` (FTP/TPGM's MARS units) and FTP's γ / TPGM's
radius per epoch, where θ₀ is the starting point (pretrained backbone + the new or LP-fitted head).

* Validation: ``val`` if given, else a stratified ``val_fraction`` split of the train set drawn by
  ``seed``; the model is trained on the rest. The final model is the last epoch's (WiSE-FT: the α with
  the best validation accuracy, ties to the α nearest 0.5, then the smaller).
* Checkpoints: with ``out_dir``, every epoch writes ``checkpoint.pt`` atomically (model, θ₀, optimizer
  state incl. FTP's γ and moments, TPGM's radii, scheduler, RNG, history); a later call with the same
  settings resumes from it and ends with the same weights as an uninterrupted run. The end of a run
  writes ``record.json`` and ``model.safetensors`` (the final weights).
* Under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in DistributedDataParallel (gloo), each
  rank trains on its DistributedSampler share of every batch (``batch_size`` is the global batch), and
  only rank 0 writes (see :mod:`.dist`).
* Device and precision (:mod:`transferlens.device`): the model, its optimizer state (created on the
  parameters' device by the FTP / TPGM / AdamW optimizers) and every batch live on ``device``; the
  images are prepared on the CPU and moved one batch at a time. ``precision`` bf16 / fp16 runs the training
  forward pass and loss under autocast (fp16 with a gradient scaler, gradients unscaled before L2-SP adds
  its term); weights, optimizer state and evaluation stay float32. Under torchrun on GPUs each rank takes
  ``cuda:LOCAL_RANK`` and the group uses NCCL for CUDA tensors (gloo for the CPU reductions).
* Deterministic for a fixed seed, thread count and world size on CPU; CPU + fp32 is the reference path
  (nothing moved, no autocast), and only other devices or precisions enter the checkpoint fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import load_data
from ..data.base import Dataset, stratified_split
from ..errors import CacheError, InputError, UsageError
from ..device import device_provenance
from ..io import atomic_write, write_record
from .dist import DistContext, epoch_positions, join
from .methods import DEFAULT_LR, Regime, fit_lp_head, method_options
from .optim.ftp import normalize_param_name, row_l1
from .prepare import HEADS, accuracy_count, image_tensors, load_aligned, load_backbone, replace_head

__all__ = ["FORMAT", "run_finetune"]

FORMAT = "transferlens.finetune/1"
CHECKPOINT = "checkpoint.pt"
Pair = tuple[Tensor, Tensor]


def run_finetune(
    model: str,
    train: str,
    method: str = "ftp",
    *,
    val: str | None = None,
    test: str | None = None,
    ood: Sequence[str] = (),
    epochs: int = 10,
    lr: float | None = None,
    batch_size: int = 32,
    seed: int = 0,
    head: str = "linear",
    weight_decay: float = 1e-4,
    val_fraction: float = 0.2,
    threads: int | None = None,
    out_dir: Path | None = None,
    resume: bool = True,
    progress: bool = False,
    device: str | torch.device | None = "auto",
    precision: str | None = None,
    **method_kwargs: Any,
) -> dict[str, Any]:
    """Fine-tune ``model`` on ``train`` with ``method``; evaluate on ``val``, ``test`` and every ``ood`` set.

    ``lr`` defaults to :data:`~.methods.DEFAULT_LR` of the method; ``method_kwargs`` are the method's
    options (:data:`~.methods.OPTIONS`, e.g. ``k=0.5`` for FTP, ``alpha=0.1`` for L2-SP). ``threads``:
    torch intra-op threads for this call (default: unchanged; under torchrun ``cpus // world``).
    ``device`` / ``precision``: see :func:`transferlens.device.resolve` (``auto``: the GPU when present).
    Returns the record (also written to ``out_dir/record.json`` by rank 0): ``hyperparameters``, ``data``
    (sizes, classes), ``history`` (per epoch: train loss, val accuracy, lr, seconds), ``accuracy`` (val, test,
    ood per URI, ood_mean), ``linear_probe`` (LP-FT / WiSE-FT: the LP head's accuracies before fine-tuning),
    ``wiseft`` (every α's accuracies, the chosen α), ``trace`` (per tensor and epoch: γ, ``distance_l2``,
    ``distance_max_row_l1``), ``cost`` (wall-clock ``seconds`` over all sessions, ``train_seconds`` of the
    training steps, ``peak_rss_mib`` = max over ranks of ru_maxrss, threads, world size) and ``notes``.
    """
    from ..device import numerics_key, resolve

    dev, precision = resolve(device, precision)
    opts = method_options(method, method_kwargs)
    lr = DEFAULT_LR[method] if lr is None else float(lr)
    _check_args(method, head, epochs, lr, batch_size, weight_decay, val_fraction, threads)
    ctx = join(dev.type)
    if ctx.world > 1 and dev.type == "cuda":  # one GPU per rank
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", ctx.rank)) % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    before = torch.get_num_threads()
    try:
        if threads or ctx.world > 1:
            torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // ctx.world))
        settings = dict(model=model, train=train, method=method, val=val, epochs=epochs, lr=lr, batch_size=batch_size,
                        seed=seed, head=head, weight_decay=weight_decay,
                        val_fraction=None if val is not None else val_fraction, options=opts, world_size=ctx.world)
        if numerics_key(dev, precision) is not None:
            settings["numerics"] = numerics_key(dev, precision)
        return _Run(settings, test, list(ood), ctx, out_dir, resume, progress, dev, precision).execute()
    finally:
        torch.set_num_threads(before)
        ctx.close()


def _check_args(method: str, head: str, epochs: int, lr: float, batch_size: int, weight_decay: float,
                val_fraction: float, threads: int | None) -> None:
    if head not in HEADS:
        raise UsageError(f"head must be one of {', '.join(HEADS)}, got {head!r}.")
    if head == "etf" and method in ("lpft", "wiseft"):
        raise UsageError(f"{method} fits a linear head in closed form (the LP stage); use head 'linear'.")
    if epochs < 1 or batch_size < 2:
        raise UsageError(f"epochs must be >= 1 and batch size >= 2, got {epochs} and {batch_size}.")
    if not (lr > 0 and math.isfinite(lr)) or not weight_decay >= 0:
        raise UsageError(f"learning rate must be > 0 and weight decay >= 0, got {lr} and {weight_decay}.")
    if not 0 < val_fraction < 1:
        raise UsageError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    if threads is not None and threads < 0:
        raise UsageError(f"threads must be >= 1 (or 0 / None to leave as is), got {threads}.")


def _fingerprint(settings: dict[str, Any], identity: str) -> str:
    return hashlib.sha256(json.dumps({**settings, "identity": identity}, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _split_validation(train_ds: Dataset, fraction: float, seed: int, method: str) -> tuple[Dataset, Dataset, str]:
    counts = train_ds.class_counts()
    small = int(np.argmin(counts))
    if counts[small] < 2:
        raise InputError(f"cannot hold out a validation split: class {train_ds.class_names[small]!r} has "
                         f"{counts[small]} training sample(s); pass a validation set (--val) or more training data.")
    tr, va = stratified_split(train_ds.labels, fraction, seed)
    note = (f"no validation set given: {len(va)} of the {len(train_ds)} train samples ({fraction:.0%} per class, "
            f"seed {seed}) are held out for validation; the model trains on the other {len(tr)}")
    if method == "tpgm":
        note += "; TPGM fits its projection radii on them"
    return train_ds.subset(tr), train_ds.subset(va), note


class _Run:
    """One call of :func:`run_finetune` (state shared by its stages)."""

    def __init__(self, settings: dict[str, Any], test: str | None, ood: list[str], ctx: DistContext,
                 out_dir: Path | None, resume: bool, progress: bool, device: torch.device | None = None,
                 precision: str = "fp32") -> None:
        self.s, self.test, self.ood, self.ctx = settings, test, ood, ctx
        self.device, self.precision = device or torch.device("cpu"), precision
        self.scaler = torch.amp.GradScaler(self.device.type) if precision == "fp16" else None
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.resume, self.progress = resume, progress
        self.t0 = time.perf_counter()
        self.notes: list[str] = []

    # ------------------------------------------------------------------------------------------ data
    def _load_data(self) -> None:
        s = self.s
        train_ds = load_data(s["train"])
        if train_ds.n_classes < 2:
            raise InputError(f"the train set {s['train']} has {train_ds.n_classes} class; fine-tuning needs at least 2.")
        self.class_names = list(train_ds.class_names)
        if s["val"] is None:
            train_ds, val_ds, note = _split_validation(train_ds, s["val_fraction"], s["seed"], s["method"])
            self.notes.append(note)
            val_y = val_ds.labels
        else:
            val_ds, val_y = load_aligned(s["val"], self.class_names, "the validation set")
            lacking = sorted(set(range(len(self.class_names))) - set(val_y.tolist()))
            if s["method"] == "tpgm" and lacking:
                raise InputError(f"TPGM fits its projection radii on validation data, but {s['val']} has no sample of "
                                 f"class {self.class_names[lacking[0]]!r}; pass a validation set with every train class.")
        self.datasets: dict[str, tuple[Dataset, np.ndarray]] = {"train": (train_ds, train_ds.labels), "val": (val_ds, val_y)}
        if self.test is not None:
            self.datasets["test"] = load_aligned(self.test, self.class_names, "the test set")
        for uri in self.ood:  # loaded (and checked) before training, turned into tensors after it
            self.datasets[uri] = load_aligned(uri, self.class_names, "the OOD set")

    def _tensors(self, name: str) -> Pair:
        ds, y = self.datasets[name]
        return image_tensors(self.backbone.loaded, ds, y)

    # ------------------------------------------------------------------------------------ evaluation
    def _accuracy(self, module: nn.Module, xy: Pair) -> float:
        """Accuracy with the samples sharded over ranks and the counts summed (float64)."""
        x, y = xy
        sl = slice(self.ctx.rank, None, self.ctx.world)
        if self.device.type == "cpu":
            count = accuracy_count(module, x[sl], y[sl])
        else:
            count = sum(accuracy_count(module, xb.to(self.device), yb.to(self.device)) for xb, yb in zip(x[sl].split(512), y[sl].split(512)))
        correct, n = self.ctx.sum([count, float(x[sl].shape[0])])
        return correct / max(1.0, n)

    # ------------------------------------------------------------------------------------- checkpoint
    def _read_checkpoint(self) -> dict[str, Any] | None:
        if self.out_dir is None or not self.resume or not (self.out_dir / CHECKPOINT).exists():
            return None
        path = self.out_dir / CHECKPOINT
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CacheError(f"checkpoint {path} is unreadable ({str(exc)[:120]}); delete it or start over without resuming.") from None
        if state.get("format") != FORMAT or state.get("fingerprint") != self.fingerprint:
            raise UsageError(f"{self.out_dir} holds a checkpoint of a different run (other model, data or settings); "
                             f"use another output directory, or start over without resuming.")
        return state

    def _write_checkpoint(self, state: dict[str, Any]) -> None:
        if self.out_dir is not None and self.ctx.is_main:
            atomic_write(self.out_dir / CHECKPOINT, lambda tmp: torch.save(state, tmp))

    # ----------------------------------------------------------------------------------------- trace
    @torch.no_grad()
    def _trace_point(self, net: nn.Module, theta0: dict[str, Tensor], gammas: dict[str, float]) -> dict[str, list]:
        """Per trainable tensor: [γ or None, ‖θ−θ₀‖₂, max row-L1 of θ−θ₀] (float64)."""
        point = {}
        for name, p in net.named_parameters():
            if not p.requires_grad:
                continue
            key = normalize_param_name(name)
            if self.device.type == "mps":  # MPS has no float64: the trace is computed on the CPU
                d = p.detach().cpu().double() - theta0[name].cpu().double()
            else:
                d = p.detach().double() - theta0[name].double()
            point[key] = [gammas.get(key), float(torch.linalg.vector_norm(d)), float(row_l1(d).max())]
        return point

    def _trace_record(self, points: list[dict[str, list]]) -> dict[str, Any]:
        names = list(points[0]) if points else []
        tensors = [{"name": n, "head": n in self.head_names, "gamma": [p[n][0] for p in points],
                    "distance_l2": [p[n][1] for p in points], "distance_max_row_l1": [p[n][2] for p in points]}
                   for n in names]
        kind = {"ftp": "FTP gamma (row-L1)", "tpgm": f"TPGM radius ({self.s['options'].get('norm')})"}.get(self.s["method"])
        return {"epochs": list(range(1, len(points) + 1)), "gamma_kind": kind, "tensors": tensors}

    # ------------------------------------------------------------------------------------------- run
    def execute(self) -> dict[str, Any]:
        s, ctx = self.s, self.ctx
        self._load_data()
        self.backbone = load_backbone(s["model"])
        self.fingerprint = _fingerprint(s, self.backbone.identity)
        net = self.backbone.module
        torch.manual_seed(s["seed"])
        head_path, self.head_names = replace_head(net, len(self.class_names), s["head"], s["seed"])
        train, val = self._tensors("train"), self._tensors("val")
        if self.device.type != "cpu":
            net.to(self.device)
        ckpt = self._read_checkpoint()
        lp = None
        if ckpt is not None:
            net.load_state_dict(ckpt["theta0"])
            lp = ckpt["lp"]
        elif s["method"] in ("lpft", "wiseft"):
            lp = {"C": s["options"]["lp_C"], "train_accuracy": fit_lp_head(net, head_path, *train, s["options"]["lp_C"])}
        ddp: nn.Module = net
        if ctx.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            ddp = nn.parallel.DistributedDataParallel(net, device_ids=ids)  # broadcasts rank 0's weights
        theta0 = {k: v.detach().clone() for k, v in net.state_dict().items()}
        per_rank = math.ceil(len(train[0]) / ctx.world)
        b = math.ceil(s["batch_size"] / ctx.world)
        steps_per_epoch = sum(1 for i in range(0, per_rank, b) if min(b, per_rank - i) >= 2)
        if steps_per_epoch == 0:
            raise InputError(f"{len(train[0])} training samples make no batch of >= 2 per process; add data or use fewer processes.")
        regime = Regime(s["method"], s["options"], net, self.head_names, lr=s["lr"], weight_decay=s["weight_decay"],
                        val_batches=self._val_batches(val), total_steps=s["epochs"] * steps_per_epoch)
        self.notes += regime.notes
        self.options_used = regime.opts  # FTP's gamma_lr=auto resolved to its value
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(regime.optimizer, T_max=s["epochs"] * steps_per_epoch)
        history: list[dict[str, Any]] = []
        points: list[dict[str, list]] = []
        start, elapsed_before, train_seconds = 0, 0.0, 0.0
        if ckpt is not None:
            net.load_state_dict(ckpt["model"])
            regime.load_state_dict(ckpt["regime"])
            sched.load_state_dict(ckpt["scheduler"])
            torch.set_rng_state(ckpt["rng"])
            if self.scaler is not None and ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
            history, points, start = list(ckpt["history"]), list(ckpt["trace"]), int(ckpt["epoch"])
            elapsed_before, train_seconds = float(ckpt["elapsed"]), float(ckpt["train_seconds"])
            self.notes.append(f"resumed from the checkpoint of epoch {start} in {self.out_dir}")
        elif lp is not None:
            lp["val_accuracy"] = self._accuracy(net, val)
            if "test" in self.datasets:
                lp["test_accuracy"] = self._accuracy(net, self._tensors("test"))
        bar = _progress_bar(self.progress and ctx.is_main)
        with bar:
            task = bar.add_task(s["method"], total=s["epochs"] * steps_per_epoch, completed=start * steps_per_epoch)
            for epoch in range(start, s["epochs"]):
                t_epoch = time.perf_counter()
                loss = self._train_epoch(ddp, regime, sched, train, epoch, b, epoch * steps_per_epoch, lambda: bar.advance(task))
                train_seconds += time.perf_counter() - t_epoch
                val_acc = self._accuracy(net, val)
                history.append({"epoch": epoch + 1, "train_loss": loss, "val_accuracy": val_acc,
                                "lr": float(sched.get_last_lr()[0]), "seconds": time.perf_counter() - t_epoch})
                points.append(self._trace_point(net, theta0, regime.gammas()))
                bar.update(task, description=f"{s['method']} epoch {epoch + 1}/{s['epochs']} loss {loss:.3f} val {val_acc:.3f}")
                self._write_checkpoint({
                    "format": FORMAT, "fingerprint": self.fingerprint, "epoch": epoch + 1, "model": net.state_dict(),
                    "theta0": theta0, "regime": regime.state_dict(), "scheduler": sched.state_dict(),
                    "rng": torch.get_rng_state(), "history": history, "trace": points, "lp": lp,
                    **({"scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
                    "elapsed": elapsed_before + time.perf_counter() - self.t0, "train_seconds": train_seconds,
                })
        final, wise = self._final_accuracies(net, theta0, val)
        record = self._record(history, points, final, wise, lp, start, elapsed_before, train_seconds, steps_per_epoch)
        if self.out_dir is not None and ctx.is_main:
            from safetensors.torch import save_file

            atomic_write(self.out_dir / "model.safetensors",
                         lambda tmp: save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp)))
            write_record(self.out_dir / "record.json", "finetune", record)
        return record

    def _train_epoch(self, ddp: nn.Module, regime: Regime, sched: Any, train: Pair, epoch: int, b: int, step: int,
                     advance: Any) -> float:
        """One epoch over this rank's samples in batches of ``b``; returns the mean cross-entropy over all ranks."""
        ddp.train()
        pos = epoch_positions(len(train[0]), self.s["seed"], epoch, self.ctx)
        loss_sum, seen = 0.0, 0.0
        for i in range(0, len(pos), b):
            idx = torch.tensor(pos[i : i + b])
            if idx.numel() < 2:  # BatchNorm cannot train on one sample (same on every rank)
                continue
            if self.device.type == "cpu" and self.precision == "fp32":  # the reference path, unchanged
                loss = F.cross_entropy(ddp(train[0][idx]), train[1][idx])
            else:
                from ..device import autocast

                xb, yb = train[0][idx].to(self.device, non_blocking=True), train[1][idx].to(self.device, non_blocking=True)
                with autocast(self.device, self.precision):
                    loss = F.cross_entropy(ddp(xb), yb)
            regime.optimizer.zero_grad(set_to_none=True)
            if self.scaler is None:
                loss.backward()
                regime.after_backward()
                regime.optimizer.step()
            else:  # fp16: scaled loss; true gradients before L2-SP's term; the step is skipped on inf/NaN
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(regime.optimizer)
                regime.after_backward()
                self.scaler.step(regime.optimizer)
                self.scaler.update()
            regime.after_step(step)
            sched.step()
            step += 1
            loss_sum += float(loss.detach()) * idx.numel()
            seen += idx.numel()
            advance()
        loss_sum, seen = self.ctx.sum([loss_sum, seen])
        return loss_sum / seen

    def _val_batches(self, val: Pair) -> list[Pair]:
        """Validation batches for TPGM, in an order drawn by the seed (cycled by :class:`~.methods.Regime`)."""
        if self.s["method"] != "tpgm":
            return []
        order = torch.randperm(len(val[0]), generator=torch.Generator().manual_seed(self.s["seed"]))
        return [(val[0][idx].to(self.device), val[1][idx].to(self.device)) for idx in order.split(self.s["batch_size"])]

    def _final_accuracies(self, net: nn.Module, theta0: dict[str, Tensor], val: Pair) -> tuple[dict[str, float], dict | None]:
        from .recipes import interpolate_state_dicts, wise_ft_sweep

        sets = {"val": val, **{name: self._tensors(name) for name in self.datasets if name not in ("train", "val")}}

        def evaluate(module: nn.Module) -> dict[str, float]:
            return {name: self._accuracy(module, xy) for name, xy in sets.items()}

        if self.s["method"] != "wiseft":
            return evaluate(net), None
        alphas = self.s["options"]["alphas"]
        theta1 = {k: v.detach().clone() for k, v in net.state_dict().items()}
        sweep = wise_ft_sweep(net, theta0, theta1, evaluate, alphas)
        best = max(range(len(sweep)), key=lambda i: (sweep[i][1]["val"], -abs(sweep[i][0] - 0.5), -sweep[i][0]))
        net.load_state_dict(interpolate_state_dicts(theta0, theta1, sweep[best][0]))
        wise = {"alphas": [a for a, _ in sweep], "chosen_alpha": sweep[best][0],
                "accuracy": {name: [r[name] for _, r in sweep] for name in sets}}
        return sweep[best][1], wise

    def _record(self, history: list[dict], points: list[dict], final: dict[str, float], wise: dict | None, lp: dict | None,
                start: int, elapsed_before: float, train_seconds: float, steps_per_epoch: int) -> dict[str, Any]:
        s, ctx = self.s, self.ctx
        ood_acc = {uri: final[uri] for uri in self.ood}
        accuracy = {"val": final["val"], "test": final.get("test"), "ood": ood_acc,
                    "ood_mean": float(np.mean(list(ood_acc.values()))) if ood_acc else None}
        peak = ctx.max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)  # Linux: KiB
        seconds = time.perf_counter() - self.t0
        return {
            "format": FORMAT, "method": s["method"], "model": self.backbone.uri, "model_identity": self.backbone.identity,
            "train": s["train"], "val": s["val"], "test": self.test, "ood": list(self.ood), "seed": s["seed"], "head": s["head"],
            "hyperparameters": {"epochs": s["epochs"], "lr": s["lr"], "batch_size": s["batch_size"], "optimizer": "adamw",
                                "weight_decay": s["weight_decay"], "schedule": "cosine, stepped per batch",
                                "val_fraction": s["val_fraction"], **getattr(self, "options_used", s["options"])},
            "data": {"class_names": self.class_names, "n_classes": len(self.class_names),
                     **{f"n_{k}": len(self.datasets[k][0]) for k in ("train", "val", "test") if k in self.datasets},
                     "n_ood": {uri: len(self.datasets[uri][0]) for uri in self.ood}},
            "history": history, "accuracy": accuracy, "linear_probe": lp, "wiseft": wise,
            "trace": self._trace_record(points),
            "cost": {"seconds": elapsed_before + seconds, "seconds_this_call": seconds, "train_seconds": train_seconds,
                     "peak_rss_mib": peak, "threads": torch.get_num_threads(), "world_size": ctx.world,
                     "steps": s["epochs"] * steps_per_epoch},
            "device": device_provenance(self.device, self.precision),
            "resumed_from_epoch": start, "notes": self.notes,
        }


def _progress_bar(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from ..progress import progress_bar  # a live bar on a terminal, periodic log lines elsewhere

    return progress_bar("finetune", TextColumn("[bold]finetune[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), enabled=enabled, unit="steps")
