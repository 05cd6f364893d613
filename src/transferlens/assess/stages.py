"""Stage records of a run: each stage's result is a JSON record keyed by the hash of its inputs.

``StageRunner.run(name, inputs, fn)`` reuses ``<run>/stages/<name>.json`` when it holds a successful result
for the same inputs (and code version); otherwise it calls ``fn()`` and writes the record, atomically. A
user-caused failure (:class:`TransferLensError`) or a bug is caught and recorded with its message, so one
failing stage never loses the results of the others; ``KeyboardInterrupt`` still stops the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import CacheError, TransferLensError
from ..io import _to_jsonable, read_record, write_record

log = logging.getLogger("transferlens")

#: Bump when a stage's computation changes, so old records are recomputed.
STAGE_CODE_VERSION = "2"  # 2: probe records carry chance/collapse flags (issue 17)
KIND = "assess-stage"

# status values: ok (computed now), cached (reused), failed, unavailable (a missing optional part), skipped
Event = Callable[[str, str, str], None]  # (stage name, status, detail)


class StageUnavailable(TransferLensError):
    """A stage that cannot run in this installation (an optional component is missing)."""


class StageSkipped(TransferLensError):
    """A stage that has nothing to do because an earlier stage failed."""


@dataclass
class StageOutcome:
    name: str
    status: str
    seconds: float
    result: dict | None
    error: str | None
    path: Path

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "cached")

    def summary(self) -> dict:
        return {"name": self.name, "status": self.status, "seconds": round(self.seconds, 3), "error": self.error,
                "record": f"stages/{self.path.name}"}


def stage_filename(name: str) -> str:
    """A file name for a stage name such as ``probe:zoo:vgg-g50`` (readable, collision-free)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80]
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}.json"


def inputs_hash(name: str, inputs: dict) -> str:
    payload = {"stage": name, "inputs": _to_jsonable(inputs), "code": STAGE_CODE_VERSION, "version": __version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class StageRunner:
    """Runs stages into ``run_dir/stages``; ``on_event(name, status, detail)`` reports progress."""

    def __init__(self, run_dir: str | Path, on_event: Event | None = None, reuse: bool = True) -> None:
        self.dir = Path(run_dir) / "stages"
        self.on_event = on_event
        self.reuse = reuse
        self.outcomes: list[StageOutcome] = []

    def _emit(self, name: str, status: str, detail: str = "") -> None:
        if self.on_event is not None:
            self.on_event(name, status, detail)

    def _cached(self, path: Path, digest: str) -> dict | None:
        if not self.reuse or not path.exists():
            return None
        try:
            rec = read_record(path, KIND)
        except CacheError as exc:
            log.warning("ignoring stage record: %s", exc)
            return None
        if rec.get("inputs_hash") == digest and rec.get("status") == "ok":
            return rec
        return None

    def run(self, name: str, inputs: dict, fn: Callable[[], dict], *, cache: bool = True) -> StageOutcome:
        """Reuse or compute stage ``name``; ``cache=False`` always recomputes (cheap stages)."""
        path = self.dir / stage_filename(name)
        digest = inputs_hash(name, inputs)
        rec = self._cached(path, digest) if cache else None
        if rec is not None:
            out = StageOutcome(name, "cached", float(rec.get("seconds") or 0.0), rec.get("result"), None, path)
            self._emit(name, "cached", "unchanged inputs, result reused")
            self.outcomes.append(out)
            return out
        self._emit(name, "start", "")
        t0 = time.perf_counter()
        result: dict | None = None
        error = tb = None
        try:
            result = fn()
            status = "ok"
        except StageUnavailable as exc:
            status, error = "unavailable", str(exc)
        except StageSkipped as exc:
            status, error = "skipped", str(exc)
        except TransferLensError as exc:
            status, error = "failed", str(exc)
        except Exception as exc:  # a bug: keep the other stages' results, record the traceback
            status, error = "failed", f"internal error ({type(exc).__name__}: {exc}); please report it with the record"
            tb = traceback.format_exc()
            log.debug("stage %s crashed:\n%s", name, tb)
        seconds = time.perf_counter() - t0
        write_record(path, KIND, {"stage": name, "status": status, "inputs_hash": digest, "inputs": inputs,
                                  "seconds": round(seconds, 3), "error": error, "traceback": tb, "result": result})
        out = StageOutcome(name, status, seconds, _to_jsonable(result) if result is not None else None, error, path)
        self._emit(name, status, error or f"{seconds:.1f} s")
        self.outcomes.append(out)
        return out
