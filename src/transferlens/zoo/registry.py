"""The registry of built zoo models: ``$TRANSFERLENS_HOME/zoo/NAME/{card.json, model.safetensors}``.

A model card holds the recipe (``arch`` name + kwargs, source data, training settings, seed), the input
spec (``size``, ``channels``, ``mean``, ``std``) and the build's results (source accuracy, training
curve, build time). ``zoo:NAME`` loads the weights into the architecture the card names.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ModelError, UsageError
from ..paths import zoo_dir

CARD = "card.json"
WEIGHTS = "model.safetensors"


def zoo_root() -> Path:
    """Where ``transferlens zoo build`` writes: ``$TRANSFERLENS_HOME/zoo``."""
    return zoo_dir()


def shipped_root() -> Path:
    """Models that ship inside the package (built by the same recipes), used when not built locally."""
    return Path(__file__).parent / "shipped"


def model_dir(name: str) -> Path:
    local = zoo_root() / name
    if (local / CARD).exists() or not (shipped_root() / name / CARD).exists():
        return local
    return shipped_root() / name


def read_card(name: str) -> dict:
    path = model_dir(name) / CARD
    if not path.exists():
        built = ", ".join(list_built()) or "none built yet"
        raise UsageError(f"no zoo model {name!r} (built: {built}); build the zoo with `transferlens zoo build`.")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ModelError(f"zoo model card {path} is corrupt ({exc}); rebuild with `transferlens zoo build --only {name}`.") from None


def list_built() -> list[str]:
    names: set[str] = set()
    for root in (zoo_root(), shipped_root()):
        if root.is_dir():
            names |= {d.name for d in root.iterdir() if (d / CARD).exists() and (d / WEIGHTS).exists()}
    return sorted(names)
