"""Checks of a command's local paths before anything heavy is imported, so a typo fails in milliseconds.

``check_paths(options)`` looks at the options of the command being run (the keyword arguments typer passes)
and raises the same error, with the same message, that loading would raise seconds later, after torch:

- data URIs (``data``, ``test``, ``val``, ``ood``, ``reference_data``, ``uri``), also inside ``shift:``:
  ``imagefolder:PATH`` must be a folder, ``csv:PATH`` and ``npz:PATH`` files (:class:`DataError`);
- a single model URI (``model``; a list of candidates is not checked: ``rank`` and ``assess`` report a
  model that cannot load in its row and go on with the others): ``file:PATH`` must be a file, and
  ``weights=PATH`` of ``timm:`` / ``torchvision:`` too (:class:`ModelError`);
- output paths (``out``, ``grid``): the folder to create (the path itself, or its parent for a file output:
  ``extract --out``, ``report --out``, ``data show --grid``) needs a writable folder as its nearest existing
  ancestor (:class:`CacheError`, the message of :func:`transferlens.io.check_writable_dir`).

Only the standard library and :mod:`transferlens.uri` are imported here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from ..errors import CacheError, DataError, ModelError, UsageError
from ..uri import parse_uri

DATA_OPTIONS = ("data", "test", "val", "ood", "reference_data", "uri")
OUT_OPTIONS = {"out": "--out", "grid": "--grid"}
FILE_OUTPUTS = {("extract_cmd", "out"), ("report_cmd", "out"), ("show_cmd", "grid")}  # (command, option): a file
_FILE_SCHEMES = {"imagefolder": True, "csv": False, "npz": False}  # scheme -> expects a folder


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        yield from (v for v in value if isinstance(v, str))


def check_data_uri(text: str) -> None:
    """Raise :class:`DataError` when ``text`` (possibly ``shift:NAME:SEVERITY:DATA``) names a missing local path."""
    text = text.strip()
    while text.lower().startswith("shift:"):
        parts = text.split(":", 3)
        if len(parts) < 4:
            return  # malformed: the loader's own message explains the syntax
        text = parts[3].strip()
    if ":" not in text:
        return
    scheme, rest = text.split(":", 1)
    scheme = scheme.strip().lower()
    if scheme not in _FILE_SCHEMES:
        return
    path = rest.partition("?")[0]
    if not path:
        return
    p, is_dir = Path(path).expanduser(), _FILE_SCHEMES[scheme]
    if not p.exists():
        raise DataError(f"{scheme}:{path}: no such {'folder' if is_dir else 'file'}.")
    if is_dir != p.is_dir():
        raise DataError(f"{scheme}:{path}: expected a {'folder' if is_dir else 'file'}.")


def check_model_uri(text: str) -> None:
    """Raise :class:`ModelError` when ``file:PATH`` or ``?weights=PATH`` names a missing file."""
    if ":" not in text:
        return
    try:
        uri = parse_uri(text.strip(), what="model")
    except UsageError:
        return  # the resolver's message is the better one
    if uri.scheme == "file" and uri.path and not Path(uri.path).expanduser().is_file():
        raise ModelError(f"file:{uri.path}: no such file.")
    if uri.scheme in ("timm", "torchvision") and "weights" in uri.params:
        weights = Path(uri.params["weights"]).expanduser()
        if not weights.is_file():
            raise ModelError(f"{uri}: weights file {weights} does not exist.")


def check_output(path: Any, option: str, is_file: bool = False) -> None:
    """Raise :class:`CacheError` when the folder of the output ``path`` (``path`` itself, or its parent when
    ``is_file``) could not be created or written: its nearest existing ancestor is a file or not writable."""
    folder = Path(path).parent if is_file else Path(path)
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise CacheError(f"cannot create directory {folder}: {existing} is a file, not a directory; choose another {option}.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CacheError(f"cannot create directory {folder}: {existing} is not writable; choose another {option}.")


def check_paths(options: dict[str, Any], command: str = "") -> None:
    """Check the local paths among the ``options`` of ``command`` (its function name; see the module docstring)."""
    for key in DATA_OPTIONS:
        for text in _strings(options.get(key)):
            check_data_uri(text)
    if isinstance(options.get("model"), str):
        check_model_uri(options["model"])
    for key, flag in OUT_OPTIONS.items():
        if isinstance(options.get(key), (str, Path)):
            check_output(options[key], flag, is_file=(command, key) in FILE_OUTPUTS)
