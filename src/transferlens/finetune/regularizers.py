"""L2-SP: an L2 penalty towards the pretrained starting point (plus plain L2 on the new head).

Reference: X. Li, Y. Grandvalet, F. Davoine, "Explicit Inductive Bias for Transfer Learning with
Convolutional Networks", ICML 2018.
Canonical code: thuml Transfer-Learning-Library,
``tllib/regularization/delta.py`` (``SPRegularization`` / ``L2Regularization``); their example uses
``loss = ce + 0.01·Σ½‖w_S − w_S⁰‖² + 0.01·Σ½‖w_head‖²``.  Clean-room reimplementation::

    Ω(w) = (α/2) Σ_{backbone} ‖w − w⁰‖²  +  (β/2) Σ_{head} ‖w‖²,      ∇Ω = α (w − w⁰)  |  β w

"Head" = the parameters with no pretrained counterpart, named like FTP's ``exclude``.  Frozen parameters
(``requires_grad=False`` when the regulariser is built) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from transferlens.errors import InputError, UsageError
from transferlens.finetune.optim.ftp import normalize_param_name, split_trainable

__all__ = ["L2SP"]


class L2SP(nn.Module):
    """L2-SP penalty ``Ω(w)``; call it to get a differentiable scalar to add to the loss.

    Args:
        model: the model being fine-tuned (not registered as a submodule).
        alpha: weight of the pull towards the anchor on backbone parameters (reference default 0.01).
        beta: weight of plain L2 on head parameters (reference default 0.01).
        head: parameters with no pretrained counterpart (names, fnmatch patterns or tensors).
        anchors: pretrained values by parameter name; default: the model's values now.

    ``add_grad_()`` adds ``∇Ω`` to the existing ``.grad`` in place (same result as backpropagating
    ``Ω``, without building a graph), for use between ``backward()`` and ``optimizer.step()``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        alpha: float = 0.01,
        beta: float = 0.01,
        head: Iterable[str | Tensor] = (),
        anchors: Mapping[str, Tensor] | None = None,
    ) -> None:
        super().__init__()
        if not (float(alpha) >= 0 and float(beta) >= 0):
            raise UsageError(f"L2-SP weights must be >= 0, got alpha={alpha}, beta={beta}")
        named, flags = split_trainable(model, head, "L2-SP head")
        src = {normalize_param_name(k): v for k, v in anchors.items()} if anchors is not None else None
        self.alpha, self.beta = float(alpha), float(beta)
        self.backbone: list[Tensor] = []
        self.anchors: list[Tensor] = []
        self.head: list[Tensor] = []
        for (name, p), is_head in zip(named, flags):
            if is_head:
                self.head.append(p)
                continue
            key = normalize_param_name(name)
            if src is None:
                a = p.detach().clone()
            else:
                if key not in src or tuple(src[key].shape) != tuple(p.shape):
                    raise InputError(f"no anchor of matching shape for '{key}' in `anchors`; put it in `head`")
                a = src[key].detach().to(device=p.device, dtype=p.dtype).clone()
            self.backbone.append(p)
            self.anchors.append(a)

    def forward(self) -> Tensor:
        """``Ω(w)`` as a differentiable scalar (float32 or the parameters' dtype)."""
        dev = (self.backbone or self.head)[0].device
        total = torch.zeros((), device=dev)
        if self.backbone and self.alpha:
            sq = sum((p - a).pow(2).sum() for p, a in zip(self.backbone, self.anchors))
            total = total + 0.5 * self.alpha * sq
        if self.head and self.beta:
            total = total + 0.5 * self.beta * sum(p.pow(2).sum() for p in self.head)
        return total

    @torch.no_grad()
    def add_grad_(self) -> None:
        """``p.grad += α (p − p⁰)`` (backbone) and ``p.grad += β p`` (head); creates missing grads."""
        for ps, anchors, w in ((self.backbone, self.anchors, self.alpha), (self.head, None, self.beta)):
            if not ps or w == 0:
                continue
            for p in ps:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            grads = [p.grad for p in ps]
            if anchors is None:
                torch._foreach_add_(grads, ps, alpha=w)
            else:
                diff = torch._foreach_sub(ps, anchors)
                torch._foreach_add_(grads, diff, alpha=w)
