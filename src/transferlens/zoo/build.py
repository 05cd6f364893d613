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
              progress: Callable[[str, float], None] | None = None) -> list[dict]:
    """Build the recipes (``only`` names, else all; ``tiny``: the 3-model test zoo) under ``root``."""
    from .train import train_recipe

    root = root or zoo_root()
    recipes = [get_recipe(n) for n in only] if only else list((TINY if tiny else RECIPES).values())
    cards = []
    for recipe in recipes:
        dest = root / recipe.name
        if is_built(recipe, root):
            log.info("zoo: %s already built, skipping", recipe.name)
            cards.append(json.loads((dest / CARD).read_text()))
            continue
        t0 = time.perf_counter()
        resumed = (dest.with_name(dest.name + ".partial") / "checkpoint.pt").exists()
        card = train_recipe(recipe, dest, progress)
        log.info("zoo: built %s%s in %.1f s, source accuracy %.3f", recipe.name, " (resumed)" if resumed else "",
                 time.perf_counter() - t0, card["source_accuracy"] or float("nan"))
        cards.append(card)
    return cards
