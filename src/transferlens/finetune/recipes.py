"""Fine-tuning recipes: plain fine-tuning, LP-FT, WiSE-FT, and an optimizer factory for every method.

* **Plain fine-tuning**: all weights trained by a torch optimizer (:func:`make_optimizer`, ``"plain"``).
* **LP-FT** (Kumar, Raghunathan, Jones, Ma, Liang, "Fine-Tuning can Distort Pretrained Features and
  Underperform Out-of-Distribution", ICLR 2022; code github.com/AnanyaKumar/transfer_learning): stage 1
  fits only the head on frozen features (:func:`freeze_all_but` + a training loop, or in closed form with
  :func:`fit_linear_probe_head`, an L2-regularised multinomial logistic regression as their ``log_reg_sk``),
  stage 2 fine-tunes everything from that head, usually with a smaller learning rate.
* **WiSE-FT** (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022; code
  github.com/mlfoundations/wise-ft ``wise_ft()``): ``θ_α = (1 − α) θ_0 + α θ_ft`` on every floating entry
  of the state dict (:func:`interpolate_state_dicts`), swept over α (:func:`wise_ft_sweep`).  It needs a
  meaningful θ_0 head (zero-shot or the LP head); a random head makes the interpolation meaningless.
  Integer entries (e.g. BatchNorm ``num_batches_tracked``) cannot be interpolated and are taken from
  θ_ft (θ_0 at α = 0).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from transferlens.errors import InputError, UsageError
from transferlens.finetune.optim.ftp import FTPSGD, FTPAdam, FTPAdamW, split_excluded

__all__ = [
    "METHODS",
    "make_optimizer",
    "freeze_all_but",
    "fit_linear_probe_head",
    "interpolate_state_dicts",
    "wise_ft_sweep",
]

METHODS = ("plain", "l2sp", "lpft", "wiseft", "tpgm", "ftp")

_BASES: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
_FTP: dict[str, type[torch.optim.Optimizer]] = {"sgd": FTPSGD, "adam": FTPAdam, "adamw": FTPAdamW}


def make_optimizer(
    model: nn.Module,
    method: str,
    *,
    optimizer: str = "adamw",
    lr: float,
    head: Iterable[str | Tensor] = (),
    anchors: Mapping[str, Tensor] | None = None,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """The optimizer for a fine-tuning ``method`` over the model's trainable parameters.

    ``"ftp"`` gives :class:`FTPSGD` / :class:`FTPAdam` / :class:`FTPAdamW` with ``exclude=head`` (extra FTP
    keywords such as ``k`` go in ``kwargs``); every other method uses the plain torch optimizer (L2-SP,
    TPGM, LP-FT and WiSE-FT act through the loss, a projector or the schedule, not the optimizer).
    ``kwargs`` are passed to the optimizer (``momentum``, ``weight_decay``, ...).
    """
    if method not in METHODS:
        raise UsageError(f"unknown fine-tuning method {method!r}; choose one of {', '.join(METHODS)}")
    if optimizer not in _BASES:
        raise UsageError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(_BASES)}")
    if not float(lr) > 0:
        raise UsageError(f"learning rate must be > 0, got {lr}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise InputError("the model has no trainable parameters; unfreeze the layers to fine-tune")
    if method == "ftp":
        return _FTP[optimizer](named, lr=lr, exclude=list(head), anchors=anchors, **kwargs)
    head = list(head)
    if head:  # validate names even when they are not used by the optimizer, so typos surface early
        _, hit = split_excluded(named, head)
        missing = [e for i, e in enumerate(head) if i not in hit]
        if missing:
            raise InputError(f"head entries {missing} match no trainable parameter of the model")
    return _BASES[optimizer](named, lr=lr, **kwargs)


def freeze_all_but(model: nn.Module, trainable: Iterable[str | Tensor]) -> list[str]:
    """LP stage: set ``requires_grad=False`` on every parameter except ``trainable`` (the head).

    Returns the names of the parameters it froze, so :func:`unfreeze` style restoration is
    ``for n, p in model.named_parameters(): if n in frozen: p.requires_grad_(True)``.
    Note: BatchNorm running statistics still update in ``train()`` mode; use ``model.eval()`` for a
    strict linear probe.
    """
    named = list(model.named_parameters())
    keep = list(trainable) if not isinstance(trainable, str | Tensor) else [trainable]
    flags, hit = split_excluded(named, keep)
    missing = [e if isinstance(e, str) else "<tensor>" for i, e in enumerate(keep) if i not in hit]
    if missing:
        raise InputError(f"trainable entries {missing} match no parameter of the model")
    frozen = []
    for (name, p), is_trainable in zip(named, flags):
        if not is_trainable and p.requires_grad:
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def fit_linear_probe_head(
    head: nn.Linear,
    features: np.ndarray | Tensor,
    labels: np.ndarray | Tensor | Sequence[int],
    *,
    C: float = 1.0,
    max_iter: int = 2000,
) -> float:
    """Closed-form-ish LP: fit an L2-regularised multinomial logistic regression (sklearn, lbfgs) on
    frozen features and copy it into ``head`` (rows in label order 0..K-1).  Returns train accuracy.

    ``head.out_features`` must equal the number of classes K, labels must be ``0..K-1`` and every class
    must occur (else InputError).  With K == 2 sklearn fits one logit ``w``; the head gets ``±w/2``
    (same softmax).
    """
    from sklearn.linear_model import LogisticRegression

    from transferlens.validation import check_features_labels

    x = features.detach().cpu().numpy() if isinstance(features, Tensor) else np.asarray(features)
    y = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    k = head.out_features
    x, y, _ = check_features_labels(x, y, n_classes=k)
    if x.shape[1] != head.in_features:
        raise InputError(f"features have {x.shape[1]} dims but the head expects {head.in_features}")
    clf = LogisticRegression(C=C, max_iter=max_iter)
    clf.fit(x, y)
    coef, intercept = clf.coef_, clf.intercept_
    if k == 2:
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(coef, dtype=head.weight.dtype))
        if head.bias is not None:
            head.bias.copy_(torch.as_tensor(intercept, dtype=head.bias.dtype))
    return float(clf.score(x, y))


def interpolate_state_dicts(
    theta0: Mapping[str, Tensor], theta1: Mapping[str, Tensor], alpha: float
) -> dict[str, Tensor]:
    """WiSE-FT: ``(1 − α) θ0 + α θ1`` for floating entries; integer entries from θ1 (θ0 if α == 0)."""
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0 or alpha != alpha:
        raise UsageError(f"WiSE-FT alpha must lie in [0, 1], got {alpha}")
    if set(theta0) != set(theta1):
        diff = sorted(set(theta0) ^ set(theta1))[:5]
        raise InputError(f"the two state dicts have different keys (e.g. {diff}); they must be the same model")
    out = {}
    for key, a in theta0.items():
        b = theta1[key]
        if tuple(a.shape) != tuple(b.shape):
            raise InputError(f"'{key}' has shape {tuple(a.shape)} vs {tuple(b.shape)}; not the same model")
        if a.is_floating_point():
            if alpha == 0.0:
                out[key] = a.detach().clone()
            elif alpha == 1.0:
                out[key] = b.detach().clone()
            else:
                out[key] = torch.lerp(a.detach(), b.detach().to(a.device, a.dtype), alpha)
        else:
            out[key] = (a if alpha == 0.0 else b).detach().clone()
    return out


def wise_ft_sweep(
    model: nn.Module,
    theta0: Mapping[str, Tensor],
    theta1: Mapping[str, Tensor],
    evaluate: Callable[[nn.Module], Any],
    alphas: Sequence[float] = tuple(i / 10 for i in range(11)),
) -> list[tuple[float, Any]]:
    """Evaluate ``evaluate(model)`` at every interpolation ``θ_α``; the model's weights are restored after.

    Returns ``[(alpha, evaluate result), ...]`` in the order of ``alphas``.  Pick α on ID validation data.
    """
    original = copy.deepcopy(model.state_dict())
    results = []
    try:
        for alpha in alphas:
            model.load_state_dict(interpolate_state_dicts(theta0, theta1, alpha))
            results.append((float(alpha), evaluate(model)))
    finally:
        model.load_state_dict(original)
    return results
