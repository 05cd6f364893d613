"""``zoo:NAME``: a model of the project's own zoo, loaded from its card and safetensors weights."""

from __future__ import annotations

from typing import Any

from ..data.base import ImageSpec
from ..errors import ModelError
from ..uri import URI
from ..zoo import registry
from .sources import ModelRef, _apply_weights, file_digest


def resolve_zoo(uri: URI) -> ModelRef:
    uri.check_params(set())
    card = registry.read_card(uri.path)
    weights = registry.model_dir(uri.path) / registry.WEIGHTS
    if not weights.exists():
        raise ModelError(f"zoo model {uri.path!r} has no weights; rebuild with `transferlens zoo build --only {uri.path}`.")
    identity = f"{uri.canonical()}|sha={file_digest(weights)}"

    def load() -> Any:
        from ..zoo.archs import build_arch
        from .adapters import HookedImageModel

        arch = card["arch"]
        module = build_arch(arch["name"], **arch.get("kwargs", {}))
        _apply_weights(module, weights, str(uri))
        spec = card["input"]
        return HookedImageModel(
            str(uri), module, ImageSpec(int(spec["size"]), int(spec["channels"])),
            tuple(spec.get("mean", [0.5])), tuple(spec.get("std", [0.5])), has_cls_token=arch["name"] == "vit",
            info={"card": card},
        )

    return ModelRef(uri.canonical(), "image", identity, load, info={"card": card})
