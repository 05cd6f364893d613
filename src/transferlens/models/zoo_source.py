"""``zoo:NAME``: a model of the project's own zoo, loaded from its card and safetensors weights."""

from __future__ import annotations

import difflib
from typing import Any

from ..data.base import ImageSpec
from ..errors import ModelError, UsageError
from ..uri import URI
from ..zoo import registry
from .sources import ModelRef, _apply_weights, file_digest


def check_zoo_name(name: str) -> None:
    """Refuse a name that is neither built nor a recipe, suggesting the close names (difflib ratio >= 0.6)
    among the built models and the recipes; a recipe that is not built is told how to build it."""
    if (registry.model_dir(name) / registry.CARD).exists():
        return
    from ..zoo.recipes import RECIPES, TINY

    built = registry.list_built()
    if name in RECIPES or name in TINY:
        how = "transferlens zoo build --tiny" if name in TINY else f"transferlens zoo build --only {name}"
        raise UsageError(f"zoo model {name!r} is not built yet; build it with `{how}` (built: {', '.join(built) or 'none'}).")
    close = difflib.get_close_matches(name, sorted(set(built) | set(RECIPES) | set(TINY)), n=3, cutoff=0.6)
    if close:
        raise UsageError(f"no zoo model {name!r}; did you mean {' or '.join(repr(c) for c in close)}?")
    raise UsageError(f"no zoo model {name!r} (built: {', '.join(built) or 'none'}); `transferlens zoo list --recipes` lists every recipe.")


def resolve_zoo(uri: URI) -> ModelRef:
    uri.check_params(set())
    check_zoo_name(uri.path)
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
