"""Recipes of the embedded zoo: small vision backbones pretrained on the built-in sources, on CPU.

The recipes vary one factor at a time around a base model, so that the variables the transfer and OOD
papers name actually vary across the zoo:

- architecture family: plain VGG-style CNN (with and without early pooling), CIFAR-style ResNet, small
  ViT, MLP; depth and width;
- training resolution (16 vs 32) and augmentation on / off;
- source diversity: 10, 50 and 500 glyph classes at a fixed image budget; Fashion-MNIST (6 classes)
  instead of glyphs;
- learning rate, batch size, weight decay and the geometric-complexity regulariser (which move GC).

Sources never contain the target classes of :mod:`transferlens.zoo.targets`: glyph sources draw from the
``source`` charset (Latin, extended Latin, IPA, Armenian, Georgian, symbols: no digits, Greek or
Cyrillic) and the Fashion-MNIST source keeps classes 0-5 (classes 6-9 are a novel-class target).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

# Images per source, whatever the number of classes (the "fixed image budget").
IMAGE_BUDGET = 9000


@dataclass(frozen=True)
class Recipe:
    name: str
    arch: str
    arch_kwargs: dict = field(default_factory=dict)
    source: str = "glyphs-50"
    size: int = 32
    augment: bool = True
    epochs: int = 12
    lr: float = 2e-3
    batch_size: int = 128
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    gc_lambda: float = 0.0
    seed: int = 0
    budget: int = IMAGE_BUDGET
    description: str = ""

    @property
    def n_source_classes(self) -> int:
        kind, _, n = self.source.partition("-")
        return int(n) if kind == "glyphs" else 6

    def source_uri(self) -> str:
        """The data URI of the source task (fixed image budget, split=train)."""
        kind, _, n = self.source.partition("-")
        if kind == "glyphs":
            per_class = self.budget // int(n)
            return f"builtin:glyphs?charset=source&n_classes={n}&n={per_class}&render_size=32&seed={1000 + self.seed}"
        if kind == "fashion":
            return f"builtin:fashion-mnist?classes=0-5&split=train&n_per_class={self.budget // 6}&seed={self.seed}"
        raise ValueError(f"unknown zoo source {self.source!r}")

    def full_arch_kwargs(self) -> dict:
        kwargs = {"num_classes": self.n_source_classes, "in_chans": 1, **self.arch_kwargs}
        if self.arch in ("mlp", "vit"):
            kwargs["size"] = self.size
        return kwargs

    def fingerprint(self) -> str:
        """A digest of everything that determines the trained weights."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


BASE = Recipe("vgg-g50", "vgg", {"widths": [16, 32, 64], "depth": 1}, description="base: VGG-style CNN, 50 glyph classes, 32 px, augmentation")


def _variant(name: str, description: str, **changes) -> Recipe:
    return replace(BASE, name=name, description=description, **changes)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        BASE,
        _variant("vgg-g50-noaug", "base without augmentation", augment=False),
        _variant("vgg-g50-s16", "base at 16 px", size=16),
        _variant("vgg-g50-s16-noaug", "16 px, no augmentation", size=16, augment=False),
        _variant("vgg-g10", "10 source classes at the same image budget", source="glyphs-10"),
        _variant("vgg-g500", "500 source classes at the same image budget", source="glyphs-500"),
        _variant("vgg-fashion6", "Fashion-MNIST classes 0-5 as source", source="fashion-6"),
        _variant("vgg-g50-nopool", "no pooling after the first stage (finer early features)", arch_kwargs={"widths": [16, 32, 64], "depth": 1, "no_pool_stages": 1}),
        _variant("vgg-g50-deep", "two convs per stage", arch_kwargs={"widths": [16, 32, 64], "depth": 2}),
        _variant("vgg-g50-wide", "twice the width", arch_kwargs={"widths": [32, 64, 128], "depth": 1}),
        _variant("vgg-g50-lr-high", "learning rate x4", lr=8e-3),
        _variant("vgg-g50-bs32", "batch size 32", batch_size=32),
        _variant("vgg-g50-wd-high", "weight decay 5e-2", weight_decay=5e-2),
        _variant("vgg-g50-gc-low", "GC regulariser, lambda 1e-3", gc_lambda=1e-3),
        _variant("vgg-g50-gc-high", "GC regulariser, lambda 1e-2", gc_lambda=1e-2),
        _variant("resnet-g50", "CIFAR-style ResNet, one block per stage", arch="resnet", arch_kwargs={"widths": [16, 32, 64], "blocks": 1}),
        _variant("resnet-fashion6", "ResNet on Fashion-MNIST classes 0-5", arch="resnet", arch_kwargs={"widths": [16, 32, 64], "blocks": 1}, source="fashion-6"),
        _variant("vit-g50", "small ViT (patch 4, dim 64, depth 4)", arch="vit", arch_kwargs={"patch": 4, "dim": 64, "depth": 4, "heads": 4}),
        _variant("mlp-g50-s16", "MLP on 16x16 pixels", arch="mlp", arch_kwargs={"widths": [256, 128]}, size=16),
    )
}

TINY: dict[str, Recipe] = {
    r.name: r
    for r in (
        replace(BASE, name="tiny-vgg", arch_kwargs={"widths": [8, 16], "depth": 1}, source="glyphs-10", size=16, epochs=1, budget=400, description="tiny test model"),
        replace(BASE, name="tiny-mlp", arch="mlp", arch_kwargs={"widths": [32]}, source="glyphs-10", size=16, epochs=1, budget=400, description="tiny test model"),
        replace(BASE, name="tiny-resnet", arch="resnet", arch_kwargs={"widths": [8, 16], "blocks": 1}, source="fashion-6", size=16, epochs=1, budget=300, description="tiny test model"),
    )
}


def get_recipe(name: str) -> Recipe:
    if name in RECIPES:
        return RECIPES[name]
    if name in TINY:
        return TINY[name]
    from ..errors import UsageError

    raise UsageError(f"no zoo recipe {name!r}; recipes: {', '.join(RECIPES)} (tiny: {', '.join(TINY)}).")
