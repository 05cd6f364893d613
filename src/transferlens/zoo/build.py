"""Build zoo models from their recipes; finished models are skipped, interrupted ones resume."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

from .recipes import RECIPES, TINY, Recipe, get_recipe
from .registry import CARD, WEIGHTS, zoo_root

log = logging.getLogger("transferlens")


def is_built(recipe: Recipe, root: Path) -> bool:
    d = root / recipe.name
    try:
        card = json.loads((d / CARD).read_text())
    except (OSError, ValueError):
        return False
    return (d / WEIGHTS).exists() and card.get("recipe_fingerprint") == recipe.fingerprint()


def build_zoo(only: list[str] | None = None, tiny: bool = False, root: Path | None = None,
              progress: Callable[[str, float], None] | None = None, executor: str = "local",
              address: str | None = None) -> list[dict]:
    """Build the recipes (``only`` names, else all; ``tiny``: the 3-model test zoo) under ``root``.

    ``executor="ray"`` trains the missing models as parallel Ray tasks, one per recipe
    (:mod:`transferlens.executors`; ``root`` must be on a filesystem the workers share). Training on CPU is
    deterministic for a given torch thread count: a Ray task uses 1 thread, so its weights equal a local
    build's with ``torch.set_num_threads(1)``."""
    from ..executors import check_executor, map_tasks

    check_executor(executor, address)
    root = root or zoo_root()
    recipes = [get_recipe(n) for n in only] if only else list((TINY if tiny else RECIPES).values())
    if executor == "local":
        return [build_one(r, root=root, progress=progress) for r in recipes]
    todo = [r for r in recipes if not is_built(r, root)]
    map_tasks(build_one, todo, executor=executor, address=address, label=lambda r: r.name, kwargs={"root": root},
              progress=progress is not None)
    return [build_one(r, root=root) for r in recipes]  # all built now: reads the cards


def build_one(recipe: Recipe, *, root: Path, progress: Callable[[str, float], None] | None = None) -> dict:
    """Build one recipe under ``root`` (skipped when built, resumed when interrupted); returns its card."""
    from .train import train_recipe

    dest = root / recipe.name
    if is_built(recipe, root):
        log.info("zoo: %s already built, skipping", recipe.name)
        return json.loads((dest / CARD).read_text())
    t0 = time.perf_counter()
    resumed = (dest.with_name(dest.name + ".partial") / "checkpoint.pt").exists()
    card = train_recipe(recipe, dest, progress)
    log.info("zoo: built %s%s in %.1f s, source accuracy %.3f", recipe.name, " (resumed)" if resumed else "",
             time.perf_counter() - t0, card["source_accuracy"] or float("nan"))
    return card
