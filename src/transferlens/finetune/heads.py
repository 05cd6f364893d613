"""Fixed simplex-ETF classifier heads and the d = K backbone surgery of Zhu et al.

* Zhu, Ding, Zhou, Li, You, Sulam, Qu, "A Geometric Analysis of Neural Collapse with Unconstrained
  Features", NeurIPS 2021, arXiv:2105.02375 (code: github.com/tding1/Neural-Collapse, ``--ETF_fc --fixdim``):
  at the global optimum the classifier is a simplex ETF, so it can be fixed from the start, and the feature
  dimension can be cut to d = K (Shen & Gu 2024, arXiv:2407.10702, show the d = K landscape is benign).
* Yang et al., NeurIPS 2022, arXiv:2203.09081: random partial-orthogonal basis for the ETF.
* Hoffer, Hubara & Soudry, ICLR 2018, arXiv:1801.04540: a fixed classifier needs a learnable scale.

Head weight (K x d, d >= K)::

    W = sqrt(K/(K-1)) (I_K - 11^T/K) U^T,   U (d x K) with orthonormal columns

so every row has unit norm and distinct rows have cosine -1/(K-1). For d = K-1 (the smallest dimension
holding a K-simplex) ``W = sqrt(K/(K-1)) Q R`` with Q (K x (K-1)) an orthonormal basis of 1-perp and R a
rotation (identity for ``basis="axes"``).

**Default = the robust choice.** The official code uses U = the first K axes, frozen, with no logit scale.
On plain non-negative (post-ReLU, un-normalised) features this is seed-fragile: each class is tied to one
coordinate and unit-norm rows give no logit scale (spec ``nc_landscape_dk.md`` section 7B measured 82% +- 9%
test accuracy with some seeds stuck below 100% train accuracy, vs 97.9% +- 0.3% with a random orthogonal U).
So ``SimplexETFHead`` defaults to ``basis="random"`` (seeded, reproducible) **and** a learnable temperature
(log-parametrised, initialised at 1). ``basis="axes", learnable_temperature=False`` reproduces the paper.
Deliberate differences from tding1: the weight is a buffer (never in ``parameters()``, so neither the optimiser
nor weight decay can touch it, and it survives ``state_dict``), d = K-1 is supported, and the MSE repository's
``M * eye(K, fixdim)`` (not an ETF for fixdim < K) is not reproduced.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import InputError, ModelError, UsageError

BASES = ("random", "axes")


def simplex_etf_weight(
    K: int, d: int, basis: str = "random", seed: int = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The K x d simplex-ETF classifier matrix (unit-norm rows, pairwise cosine -1/(K-1)).

    ``basis="axes"``: U = first K coordinate axes (Zhu et al.); ``"random"``: U from a QR of a seeded
    Gaussian matrix (Yang et al.), computed in float64 with a CPU generator, so it is identical everywhere.
    """
    if not isinstance(K, int) or K < 2:
        raise InputError(f"the ETF head needs K >= 2 classes, got K={K!r}.")
    if not isinstance(d, int) or d < K - 1:
        raise InputError(
            f"a K-simplex ETF needs feature dimension d >= K-1 = {K - 1}, got d={d!r}; reduce the number of "
            "classes or widen the features (e.g. reduce_feature_dim(model, K))."
        )
    if basis not in BASES:
        raise UsageError(f"basis must be one of {BASES}, got {basis!r}.")
    gen = torch.Generator().manual_seed(int(seed))
    eye = torch.eye(K, dtype=torch.float64)
    centred = eye - torch.full((K, K), 1.0 / K, dtype=torch.float64)
    if d >= K:
        if basis == "axes":
            Ut = torch.zeros(K, d, dtype=torch.float64)
            Ut[:, :K] = eye
        else:
            q, r = torch.linalg.qr(torch.randn(d, K, generator=gen, dtype=torch.float64))
            Ut = (q * torch.sign(torch.diagonal(r))).T  # sign fix: a unique, well-defined draw
        W = math.sqrt(K / (K - 1)) * centred @ Ut
    else:  # d == K - 1: orthonormal basis of 1-perp, optionally rotated
        q, _ = torch.linalg.qr(centred[:, : K - 1])  # columns span 1-perp
        if basis == "random":
            rq, rr = torch.linalg.qr(torch.randn(K - 1, K - 1, generator=gen, dtype=torch.float64))
            q = q @ (rq * torch.sign(torch.diagonal(rr)))
        W = math.sqrt(K / (K - 1)) * q
    return W.to(dtype)


class SimplexETFHead(nn.Module):
    """Frozen simplex-ETF linear classifier ``logits = tau * h W^T + b``.

    Args:
        K: number of classes.  d: input feature dimension (>= K-1).
        basis: ``"random"`` (default, robust) or ``"axes"`` (Zhu et al.'s official choice).
        learnable_temperature: learn ``tau = exp(log_tau)`` (default True); False fixes ``tau = temperature``.
        temperature: initial / fixed tau (default 1).
        bias: trainable bias (default True, as in the official code) or no bias.
        seed: seed of the random basis.
    """

    def __init__(
        self,
        K: int,
        d: int,
        basis: str = "random",
        learnable_temperature: bool = True,
        temperature: float = 1.0,
        bias: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not (temperature > 0 and math.isfinite(temperature)):
            raise UsageError(f"temperature must be a finite number > 0, got {temperature!r}.")
        self.num_classes = K
        self.in_features = d
        self.basis = basis
        self.register_buffer("weight", simplex_etf_weight(K, d, basis, seed))
        log_tau = torch.tensor(math.log(temperature))
        if learnable_temperature:
            self.log_temperature = nn.Parameter(log_tau)
        else:
            self.register_buffer("log_temperature", log_tau)
        self.bias = nn.Parameter(torch.zeros(K)) if bias else None

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.shape[-1] != self.in_features:
            raise InputError(
                f"SimplexETFHead expects features of size {self.in_features}, got {h.shape[-1]}."
            )
        W = self.weight.to(h.dtype)
        out = self.temperature.to(h.dtype) * (h @ W.T)
        if self.bias is not None:
            out = out + self.bias.to(h.dtype)
        return out

    def extra_repr(self) -> str:
        return (
            f"K={self.num_classes}, d={self.in_features}, basis={self.basis}, "
            f"learnable_temperature={isinstance(self.log_temperature, nn.Parameter)}, bias={self.bias is not None}"
        )


# -------------------------------------------------------------------------------------------- backbone surgery
def _new_norm(old: nn.Module, channels: int) -> nn.Module:
    if not isinstance(old, nn.BatchNorm2d):
        raise ModelError(
            f"reduce_feature_dim supports BatchNorm2d in the last block, found {type(old).__name__}."
        )
    return type(old)(channels, eps=old.eps, momentum=old.momentum, affine=old.affine,
                     track_running_stats=old.track_running_stats)


def _new_conv(old: nn.Conv2d, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(
        old.in_channels, out_channels, old.kernel_size, stride=old.stride, padding=old.padding,
        dilation=old.dilation, groups=1 if old.groups == 1 else _groups_error(old), bias=old.bias is not None,
    )


def _groups_error(conv: nn.Conv2d) -> int:
    raise ModelError(f"cannot shrink a grouped convolution ({conv}) to a new width.")


def _shrink_shortcut(block: nn.Module, in_channels: int, d: int, stride) -> None:
    ds = getattr(block, "downsample", None)
    if ds is None or isinstance(ds, nn.Identity):
        block.downsample = nn.Sequential(
            nn.Conv2d(in_channels, d, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(d)
        )
        return
    if not isinstance(ds, nn.Sequential):
        raise ModelError(f"unsupported shortcut module {type(ds).__name__} in the last residual block.")
    mods = list(ds.children())
    conv_idx = max((i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)), default=None)
    if conv_idx is None:
        raise ModelError("the last block's shortcut has no convolution to resize.")
    mods[conv_idx] = _new_conv(mods[conv_idx], d)
    for j in range(conv_idx + 1, len(mods)):
        if isinstance(mods[j], nn.BatchNorm2d):
            mods[j] = _new_norm(mods[j], d)
    block.downsample = nn.Sequential(*mods)


def reduce_feature_dim(model: nn.Module, d: int) -> nn.Module:
    """Cut a ResNet's penultimate feature dimension to d (Zhu et al. ``--fixdim``), in place.

    The last residual block of ``layer4`` gets its final conv (conv2 of a BasicBlock, conv3 of a Bottleneck)
    and BN resized to d output channels and a (new or resized) 1x1 conv + BN shortcut to d channels; ``fc``
    becomes ``Linear(d, num_classes)`` (replace it by a :class:`SimplexETFHead` for a fixed head). Works for
    torchvision ``resnet*`` / ``resnext`` (ungrouped last conv) and timm ``ResNet`` models; other
    architectures raise ModelError. For ResNet-18 with d = K = 10 this removes about 20.7% of the parameters
    (the 3x3 512->512 conv is replaced by 512->K).
    """
    if not isinstance(d, int) or d < 1:
        raise UsageError(f"feature dimension d must be an integer >= 1, got {d!r}.")
    layer4 = getattr(model, "layer4", None)
    if not isinstance(layer4, nn.Sequential) or len(layer4) == 0:
        raise ModelError(
            f"reduce_feature_dim supports ResNet-family models with a 'layer4' stage (torchvision / timm); "
            f"{type(model).__name__} has none."
        )
    block = layer4[-1]
    se = getattr(block, "se", None)
    if se is not None and not isinstance(se, nn.Identity):
        raise ModelError("the last block has a squeeze-excitation module; resizing it is not supported.")
    if hasattr(block, "conv3") and hasattr(block, "bn3"):  # Bottleneck
        last_conv, last_bn = "conv3", "bn3"
    elif hasattr(block, "conv2") and hasattr(block, "bn2"):  # BasicBlock
        last_conv, last_bn = "conv2", "bn2"
    else:
        raise ModelError(f"unrecognised residual block {type(block).__name__} (expected BasicBlock/Bottleneck).")
    block_in = block.conv1.in_channels
    stride = _block_stride(block)
    setattr(block, last_conv, _new_conv(getattr(block, last_conv), d))
    setattr(block, last_bn, _new_norm(getattr(block, last_bn), d))
    _shrink_shortcut(block, block_in, d, stride)

    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        model.fc = nn.Linear(d, fc.out_features, bias=fc.bias is not None)
    elif isinstance(fc, SimplexETFHead):
        model.fc = SimplexETFHead(fc.num_classes, d, basis=fc.basis,
                                  learnable_temperature=isinstance(fc.log_temperature, nn.Parameter),
                                  bias=fc.bias is not None)
    elif fc is not None and not isinstance(fc, nn.Identity):
        raise ModelError(f"unsupported classifier {type(fc).__name__} at model.fc.")
    for attr in ("num_features", "head_hidden_size"):  # timm bookkeeping
        if isinstance(getattr(model, attr, None), int):
            setattr(model, attr, d)
    return model


def _block_stride(block: nn.Module):
    strides = [m.stride for m in (getattr(block, n, None) for n in ("conv1", "conv2")) if isinstance(m, nn.Conv2d)]
    for s in strides:
        if tuple(s) != (1, 1):
            return s
    return 1


def attach_etf_head(model: nn.Module, num_classes: int | None = None, **head_kwargs) -> nn.Module:
    """Replace ``model.fc`` (a Linear) by a :class:`SimplexETFHead` with the same input size, in place."""
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise ModelError(f"attach_etf_head expects model.fc to be nn.Linear, got {type(fc).__name__}.")
    K = num_classes if num_classes is not None else fc.out_features
    model.fc = SimplexETFHead(K, fc.in_features, **head_kwargs)
    return model
