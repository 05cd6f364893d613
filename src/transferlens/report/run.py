"""Read a run directory written by ``transferlens assess``: ``assess.json`` and the stage records it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CacheError, UsageError
from ..io import read_record


def _stage(run_dir: Path, rel: str | None) -> dict | None:
    """The full stage record (status, error, result), or a synthetic failed one when the file is unusable."""
    if not rel:
        return None
    try:
        return read_record(run_dir / rel, "assess-stage")
    except CacheError as exc:
        return {"status": "failed", "error": str(exc), "result": None}


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """``{"dir", "assess", "data", "models", "rank", "probes", "geometry", "finetune"}``; stage entries are records."""
    d = Path(run_dir)
    if not (d / "assess.json").exists():
        if not d.exists():
            raise UsageError(f"{d} does not exist; pass the --out directory of a `transferlens assess` run.")
        raise UsageError(f"{d} has no assess.json; pass the --out directory of a `transferlens assess` run.")
    rec = read_record(d / "assess.json", "assess")
    refs = rec.get("records", {})
    return {
        "dir": str(d),
        "assess": rec,
        "data": _stage(d, refs.get("data")),
        "models": _stage(d, refs.get("models")),
        "rank": _stage(d, refs.get("rank")),
        "probes": {m: _stage(d, r) for m, r in refs.get("probes", {}).items()},
        "geometry": {m: _stage(d, r) for m, r in refs.get("geometry", {}).items()},
        "finetune": {m: _stage(d, r) for m, r in refs.get("finetune", {}).items()},
        "field": _stage(d, refs.get("field")),
        "budget": _stage(d, refs.get("budget")),
    }


def result(stage: dict | None) -> dict | None:
    """The result of a stage record when it succeeded, else None."""
    if stage and stage.get("status") in ("ok", "cached") and stage.get("result") is not None:
        return stage["result"]
    return None
