"""Atomic file writes and versioned JSON records.

Every artefact is written to a temporary file in the destination directory and moved into place with
``os.replace``, so a crash (even SIGKILL) never leaves a half-written file under the final name. The file
gets the permissions of a normal ``open()`` (0666 minus the umask, not ``mkstemp``'s 0600), so a shared
cache or a report stays readable by others. A temporary left by a killed writer (``.NAME.*.tmp``) is removed
by the next write of NAME once it is older than :data:`STALE_TMP_SECONDS` (younger ones may belong to a
concurrent writer).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__
from .errors import CacheError


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) and check it is writable; raise CacheError naming the fix otherwise."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheError(f"cannot create directory {p}: {exc.strerror}; choose another --out / TRANSFERLENS_HOME.") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise CacheError(f"directory {p} is not writable; choose another --out / TRANSFERLENS_HOME.")
    return p


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Fail early, creating nothing, when ``path`` could not be created or written: its nearest existing
    ancestor must be a writable directory. Commands call it before their work, so a bad ``--out`` costs nothing."""
    p = Path(path)
    existing = p
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise CacheError(f"cannot create directory {p}: {existing} is a file, not a directory; choose another --out.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CacheError(f"cannot create directory {p}: {existing} is not writable; choose another --out.")
    return p


#: a writer's temporary file older than this is taken as left behind by a killed process
STALE_TMP_SECONDS = 3600.0


_UMASK: int | None = None


def _umask() -> int:
    """The process umask (read once: ``os.umask`` can only be read by setting it)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


def _remove_stale_temporaries(dest: Path) -> None:
    cutoff = time.time() - STALE_TMP_SECONDS
    for tmp in dest.parent.glob(f".{dest.name}.*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
        except OSError:  # already gone (another writer cleaned it) or not ours to remove
            pass


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically rename the temporary file to ``path``."""
    dest = Path(path)
    ensure_writable_dir(dest.parent)
    _remove_stale_temporaries(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return dest


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None  # JSON has no NaN/Inf; null means "not available"
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return _to_jsonable(obj.to_dict())
    return obj


def write_record(path: str | os.PathLike, kind: str, payload: dict, schema_version: int = 1) -> Path:
    """Write a typed, versioned JSON record ``{"kind", "schema_version", "transferlens_version", "created", ...}``."""
    record = {
        "kind": kind,
        "schema_version": schema_version,
        "transferlens_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **_to_jsonable(payload),
    }
    return atomic_write_text(path, json.dumps(record, indent=2, allow_nan=False) + "\n")


def read_record(path: str | os.PathLike, kind: str | None = None) -> dict:
    """Read a record written by :func:`write_record`; check its kind when given."""
    p = Path(path)
    try:
        record = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CacheError(f"record {p} does not exist.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CacheError(f"record {p} is corrupt ({exc}); delete it and re-run the command that wrote it.") from None
    if kind is not None and record.get("kind") != kind:
        raise CacheError(f"record {p} is a {record.get('kind')!r} record, expected {kind!r}.")
    return record
