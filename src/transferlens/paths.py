"""Where TransferLens keeps data it derives (caches, extracted files, built zoo models).

``TRANSFERLENS_HOME`` (default ``~/.cache/transferlens``) holds:

- ``features/``: content-addressed feature cache (safetensors)
- ``data/``: files extracted from Debian packages (e.g. ``digits.png``)
- ``zoo/``: built zoo models (safetensors + model cards)
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    root = os.environ.get("TRANSFERLENS_HOME")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "transferlens"


def feature_cache_dir() -> Path:
    return home() / "features"


def data_dir() -> Path:
    return home() / "data"


def zoo_dir() -> Path:
    return home() / "zoo"
