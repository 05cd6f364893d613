"""TPGM: Trainable Projected Gradient Method (bi-level projection radii fitted on validation data).

Reference: J. Tian, X. Dai, C.-Y. Ma, Z. He, Y.-C. Liu, Z. Kira, "Trainable Projected Gradient Method for
Robust Fine-tuning", CVPR 2023 (arXiv 2303.10720); official code github.com/PotatoTian/TPGM
(``DomainNet_ResNet_Exp/utils/tpgm.py`` @ 8d18db0).  Clean-room reimplementation.

Per constrained tensor ``w`` with anchor ``w0`` and deviation ``c = w - w0``:

* norm ``n = Σ_{dims≥1} |c|`` per row (``"mars"``; 1-D tensors: total L1) or ``n = ‖c‖_F`` (``"l2"``);
* a scalar radius γ, set to ``min(n)/2`` at the first call and clipped to ``[1e-8, max(n)]`` before use;
* projected weight ``w' = w0 + hardtanh(γ / (n + 1e-8), 0, 1) · c``.

Projection update (:meth:`TPGM.fit`): ``max_iters`` Adam steps (lr ``lr`` = 1e-2) on the radii, each
minimising the validation loss of the model evaluated (eval mode) at the projected weights; the model
weights are constants.  Projection (:meth:`TPGM.project_`): write ``w'`` into the model in place.
The official training loop calls both after every optimizer step (``proj_freq`` = 1) with
``max_iters`` = 1 and ``"mars"`` (DomainNet), or once post hoc with 200 iterations and ``"l2"`` (ViT).

Differences from the official code: the projected forward pass uses ``torch.func.functional_call``
instead of deep-copying the model at every call; the radii and their Adam state are saved by
``state_dict()`` (as module extra state); exclusion names are checked.
"""

from __future__ import annotations

import copy

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from transferlens.errors import InputError, UsageError
from transferlens.finetune.optim.ftp import normalize_param_name, row_l1, split_trainable

__all__ = ["TPGM"]

_EPS = 1e-8
Batches = Iterator[tuple[Tensor, Tensor]] | Iterable[tuple[Tensor, Tensor]]


def _norm(c: Tensor, mode: str) -> Tensor:
    if mode == "l2":
        return torch.linalg.vector_norm(c)
    return row_l1(c)


class TPGM(nn.Module):
    """Per-tensor projection radii trained on validation data (TPGM, Tian et al., CVPR 2023).

    Args:
        model: the model being fine-tuned (not registered as a submodule, not saved with this module).
        exclude: parameters with no pretrained counterpart (names, fnmatch patterns or tensors).
        anchors: pretrained values by parameter name; default: the model's values now.
        norm: ``"mars"`` (row-wise L1, DomainNet default) or ``"l2"`` (Frobenius, ViT default).
        lr: Adam learning rate of the radii (reference ``proj_lr`` 1e-2).
        loss_fn: ``loss_fn(outputs, targets)``; default cross-entropy.

    Use: after each ``optimizer.step()``, ``tpgm.step(val_batches)`` (fit then project), or
    ``tpgm.fit(...)`` / ``tpgm.project_()`` separately.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        exclude: Iterable[str | Tensor] = (),
        anchors: Mapping[str, Tensor] | None = None,
        norm: str = "mars",
        lr: float = 1e-2,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        if norm not in ("mars", "l2"):
            raise UsageError(f"TPGM norm must be 'mars' or 'l2', got {norm!r}")
        if not float(lr) > 0:
            raise UsageError(f"TPGM learning rate must be > 0, got {lr}")
        named, flags = split_trainable(model, exclude, "TPGM exclude")
        src = {normalize_param_name(k): v for k, v in anchors.items()} if anchors is not None else None
        self.__dict__["_model"] = model  # plain reference: not a submodule, not in state_dict
        self.names: list[str] = []
        self._params: list[Tensor] = []
        self._anchors: list[Tensor] = []
        for (name, p), excluded in zip(named, flags):
            if excluded:
                continue
            key = normalize_param_name(name)
            if src is None:
                a = p.detach().clone()
            else:
                if key not in src or tuple(src[key].shape) != tuple(p.shape):
                    raise InputError(f"no anchor of matching shape for '{key}' in `anchors`; exclude it")
                a = src[key].detach().to(device=p.device, dtype=p.dtype).clone()
            self.names.append(name)
            self._params.append(p)
            self._anchors.append(a)
        self.norm = norm
        self.radii = nn.ParameterList(
            [nn.Parameter(torch.zeros((), dtype=torch.float32, device=p.device)) for p in self._params]
        )
        self.initialised = False
        self.loss_fn = loss_fn or F.cross_entropy
        self.optimizer = torch.optim.Adam(self.radii.parameters(), lr=float(lr))

    # ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _deviations(self) -> tuple[list[Tensor], list[Tensor]]:
        """``c`` and clipped-radius-ready norms of every constrained tensor; initialises / clips radii."""
        cs, ns = [], []
        for p, a, r in zip(self._params, self._anchors, self.radii):
            c = p.detach() - a
            n = _norm(c, self.norm)
            if not self.initialised:
                r.copy_(n.min() / 2)
            r.copy_(torch.minimum(r.clamp_min(_EPS), n.max().to(r.dtype)))  # hardtanh(γ, 1e-8, max n)
            cs.append(c)
            ns.append(n)
        self.initialised = True
        return cs, ns

    def projected(self, cs: list[Tensor], ns: list[Tensor]) -> dict[str, Tensor]:
        """Projected weights by name, differentiable w.r.t. the radii."""
        out = {}
        for name, a, c, n, r in zip(self.names, self._anchors, cs, ns, self.radii):
            ratio = F.hardtanh(r.to(c.dtype) / (n + _EPS), 0.0, 1.0)
            out[name] = a + ratio * c
        return out

    def _next_batch(self, batches: Batches) -> tuple[Tensor, Tensor]:
        if isinstance(batches, Iterator):
            try:
                return next(batches)
            except StopIteration:
                raise InputError("TPGM ran out of validation batches; pass an endless iterator") from None
        if self.__dict__.get("_val_source") is not batches:  # e.g. a DataLoader: iterate it across calls
            self.__dict__["_val_source"], self.__dict__["_val_iter"] = batches, iter(batches)
        try:
            return next(self.__dict__["_val_iter"])
        except StopIteration:  # epoch over: start again, as the reference loop does
            self.__dict__["_val_iter"] = iter(batches)
            try:
                return next(self.__dict__["_val_iter"])
            except StopIteration:
                raise InputError("TPGM validation data is empty") from None

    def fit(self, batches: Batches, max_iters: int = 1) -> float:
        """Projection update: ``max_iters`` Adam steps of the radii on validation batches ``(x, y)``.

        ``batches``: an iterator (consumed with ``next()``) or an iterable such as a DataLoader (iterated
        across calls and restarted when exhausted).  Returns the last validation loss.
        """
        if max_iters < 1:
            raise UsageError(f"max_iters must be >= 1, got {max_iters}")
        model = self.__dict__["_model"]
        cs, ns = self._deviations()
        was_training = model.training
        model.eval()
        last = float("nan")
        try:
            for _ in range(max_iters):
                x, y = self._next_batch(batches)
                with torch.enable_grad():
                    out = functional_call(model, self.projected(cs, ns), (x,), strict=False)
                    loss = self.loss_fn(out, y)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                self.optimizer.step()
                with torch.no_grad():
                    for r, n in zip(self.radii, ns):
                        r.copy_(torch.minimum(r.clamp_min(_EPS), n.max().to(r.dtype)))
                last = float(loss.detach())
        finally:
            model.train(was_training)
        return last

    @torch.no_grad()
    def project_(self) -> None:
        """Projection: write ``w0 + hardtanh(γ/(n+1e-8), 0, 1)·c`` into the model's parameters."""
        cs, ns = self._deviations()
        for p, w in zip(self._params, self.projected(cs, ns).values()):
            p.copy_(w)

    def step(self, batches: Batches, max_iters: int = 1) -> float:
        """``fit`` then ``project_`` (what the official loop does after each optimizer step)."""
        loss = self.fit(batches, max_iters)
        self.project_()
        return loss

    def radii_by_name(self) -> dict[str, float]:
        """Current radius per constrained tensor (host sync; for logging)."""
        return {n: float(r.detach()) for n, r in zip(self.names, self.radii)}

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "initialised": self.initialised,
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "names": list(self.names),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        saved = [normalize_param_name(n) for n in state.get("names", [])]
        if saved != [normalize_param_name(n) for n in self.names]:
            raise InputError("TPGM state is from a model with different constrained parameters")
        self.initialised = bool(state["initialised"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
