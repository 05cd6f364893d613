"""Small architectures for the embedded zoo, built by name from a model card's ``arch`` entry.

Each network declares ``transferlens_taps`` (the layers ``--layers all`` reads: the stem, every block,
the penultimate embedding and the logits) and ``embedding_dim``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from ..errors import ModelError


class VGGNet(nn.Module):
    """VGG-style plain CNN: stages of (conv3x3-BN-ReLU) × depth, max-pool between stages (optionally not
    after the first ``no_pool_stages`` stages, the tunnel papers' "no early pooling" variant), global
    average pool, linear head."""

    def __init__(self, num_classes: int, in_chans: int = 1, widths: tuple[int, ...] = (32, 64, 128), depth: int = 1, no_pool_stages: int = 0):
        super().__init__()
        layers: list[nn.Module] = []
        taps: list[str] = []
        c = in_chans
        for s, w in enumerate(widths):
            block: list[nn.Module] = []
            for _ in range(depth):
                block += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c = w
            if s >= no_pool_stages:
                block.append(nn.MaxPool2d(2))
            layers.append(nn.Sequential(*block))
            taps.append(f"stages.{s}")
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.head = nn.Linear(c, num_classes)
        self.embedding_dim = c
        self.transferlens_taps = taps + ["flatten", "head"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.flatten(self.pool(self.stages(x))))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.short(x))


class SmallResNet(nn.Module):
    """CIFAR-style ResNet (3×3 stem, no max-pool), ``blocks`` basic blocks per stage."""

    def __init__(self, num_classes: int, in_chans: int = 1, widths: tuple[int, ...] = (16, 32, 64), blocks: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages, taps, c = [], ["stem"], widths[0]
        for s, w in enumerate(widths):
            for b in range(blocks):
                stages.append(BasicBlock(c, w, 2 if (b == 0 and s > 0) else 1))
                taps.append(f"blocks.{len(stages) - 1}")
                c = w
        self.blocks = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.head = nn.Linear(c, num_classes)
        self.embedding_dim = c
        self.transferlens_taps = taps + ["flatten", "head"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.flatten(self.pool(self.blocks(self.stem(x)))))


class MLPNet(nn.Module):
    """Fully connected network on flattened pixels: (Linear-ReLU) × len(widths), linear head."""

    def __init__(self, num_classes: int, in_chans: int = 1, size: int = 16, widths: tuple[int, ...] = (256, 128)):
        super().__init__()
        self.flatten_input = nn.Flatten()
        layers, taps, c = [], [], in_chans * size * size
        for i, w in enumerate(widths):
            layers.append(nn.Sequential(nn.Linear(c, w), nn.ReLU(inplace=True)))
            taps.append(f"layers.{i}")
            c = w
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)
        self.embedding_dim = c
        self.transferlens_taps = taps + ["head"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.flatten_input(x)))


class TinyViT(nn.Module):
    """A small Vision Transformer: patch embedding, CLS token, ``depth`` pre-norm encoder blocks."""

    def __init__(self, num_classes: int, in_chans: int = 1, size: int = 32, patch: int = 4, dim: int = 64, depth: int = 4, heads: int = 4):
        super().__init__()
        self.patch_embed = nn.Conv2d(in_chans, dim, patch, patch)
        n = (size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[
            nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
            for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.embedding_dim = dim
        self.transferlens_taps = [f"blocks.{i}" for i in range(depth)] + ["norm", "head"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1) + self.pos
        t = self.norm(self.blocks(t))
        return self.head(t[:, 0])


ARCHS: dict[str, Callable[..., nn.Module]] = {"vgg": VGGNet, "resnet": SmallResNet, "mlp": MLPNet, "vit": TinyViT}


def build_arch(name: str, **kwargs) -> nn.Module:
    if name not in ARCHS:
        raise ModelError(f"unknown zoo architecture {name!r}; known: {', '.join(ARCHS)}.")
    for key in ("widths",):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    try:
        return ARCHS[name](**kwargs)
    except TypeError as exc:
        raise ModelError(f"zoo architecture {name!r} does not take {kwargs}: {exc}") from None
