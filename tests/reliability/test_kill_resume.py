"""SIGKILL every long job mid-run, resume it, and compare with an uninterrupted run (issue 10, item 3).

Each test starts the real CLI in a subprocess (own ``TRANSFERLENS_HOME``, one thread), waits for a progress
marker on disk that shows the job is mid-run (a checkpoint, a finished unit, a stage record), sends SIGKILL,
and then checks that

* nothing half-written is left under a final name: every JSON parses, every safetensors / checkpoint / PNG /
  HTML reads completely (feature-cache entries also pass their content digest), and the only ``*.tmp``
  files are the hidden temporaries of atomic writes (``.<name>.<random>.tmp``) that the kill interrupted;
* the same command, re-run, finishes, keeps what was finished before the kill (byte-identical files, no
  redo), adds no temporary file of its own, and produces the output of an uninterrupted run in a fresh
  home: JSON records equal once timing fields are dropped (:func:`stable`), weights and features equal
  **bitwise** (same code, same inputs, one thread: nothing may differ, so no tolerance is used).

A kill can land inside an atomic write (write + fsync + rename): the hidden temporary file then stays, since
SIGKILL leaves no chance to remove it and no later run sweeps it (harmless: no reader opens ``.*.tmp``).
The extract test kills inside the cache write on purpose; the other markers come right after a write and a
whole epoch / unit / stage before the next one, but e.g. ``zoo evaluate`` writes ``digests.json`` right after
a unit, so such orphans are tolerated (and only those) everywhere. The re-run and the reference run happen
in this process (CliRunner, torch and BLAS pinned to one thread like the subprocess); the reference runs
while the subprocess is being killed, so the two share the machine's cores. No test asserts on time: a job
that finishes before its marker fails with a message, and a watchdog only guards against a hang.

The KeyboardInterrupt variant of the zoo build is ``tests/zoo/test_zoo_build.py::
test_interrupted_build_resumes_to_the_same_weights``; :func:`test_zoo_build_tiny` is its SIGKILL variant.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from transferlens.cli.main import app
from transferlens.features import FeatureSet
from transferlens.zoo import recipes

# The tiny zoo with a tiny-mlp that trains long enough (4 epochs of 23 batches) to be killed between two of
# its per-epoch checkpoints; the other two tiny recipes are unchanged (1 epoch each).
TINY_MLP = replace(recipes.TINY["tiny-mlp"], epochs=4, batch_size=16)
PATCH_TINY_MLP = (
    "from dataclasses import replace\n"
    "from transferlens.zoo import recipes\n"
    "recipes.TINY['tiny-mlp'] = replace(recipes.TINY['tiny-mlp'], epochs=4, batch_size=16)\n"
)
CLI = "import sys\nfrom transferlens.cli.main import app\nsys.argv[0] = 'transferlens'\napp()\n"
WATCHDOG_SECONDS = 600  # only against a hang; never reached by a healthy run
UCI = "builtin:digits-uci"


# ------------------------------------------------------------------------------------------------ helpers
_VOLATILE_TOKENS = {"seconds", "second", "time", "timing", "timings", "date", "wall", "created", "elapsed", "started",
                    "finished", "rss"}


def _volatile(key: str) -> bool:
    tokens = set(re.split(r"[^a-z0-9]+", key.lower()))
    return bool(tokens & _VOLATILE_TOKENS) or key == "resumed_from_epoch"


def stable(obj: Any) -> Any:
    """``obj`` without the fields that differ between two identical runs: timings, dates, memory, the resume
    bookkeeping (``resumed_from_epoch``, "resumed from ..." notes) and the stage status cached/ok."""
    if isinstance(obj, dict):
        out = {k: stable(v) for k, v in obj.items() if not _volatile(k)}
        if out.get("status") == "cached":
            out["status"] = "ok"
        return out
    if isinstance(obj, list):
        return [stable(v) for v in obj if not (isinstance(v, str) and v.startswith("resumed from"))]
    return obj


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSFERLENS_")}
    env.update(TRANSFERLENS_HOME=str(home), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               CI="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


class KilledRun:
    """``transferlens ARGS`` in a subprocess, SIGKILLed as soon as ``marker()`` is true (polled every 5 ms by a
    watcher thread, so the caller can run the reference meanwhile)."""

    def __init__(self, args: list[str], home: Path, marker: Callable[[], bool], *, prelude: str = "") -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home, self.marker = home, marker
        self.log = home.parent / f"{home.name}-killed.log"
        self._log_fh = open(self.log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-c", prelude + CLI, *args], env=env_for(home), cwd=home.parent,
                                     stdout=self._log_fh, stderr=subprocess.STDOUT)
        self.killed = False
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        deadline = time.monotonic() + WATCHDOG_SECONDS
        while self.proc.poll() is None:
            if self.marker():
                os.kill(self.proc.pid, signal.SIGKILL)
                self.killed = True
                return
            if time.monotonic() > deadline:
                self.proc.kill()
                return
            time.sleep(0.005)

    def wait(self) -> None:
        """Reap the process; fail unless it died of our SIGKILL (not a crash, not a finished run)."""
        self._thread.join()
        rc = self.proc.wait()
        self._log_fh.close()
        output = self.log.read_text(errors="replace")[-3000:]
        assert self.killed, f"the job ended (exit {rc}) before its progress marker appeared:\n{output}"
        assert rc == -signal.SIGKILL, f"expected death by SIGKILL, got exit {rc}:\n{output}"


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """The subprocess's thread settings (OMP_NUM_THREADS=1) for an in-process run: same numbers, bitwise."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def run_cli(args: list[str], home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``transferlens ARGS`` in this process with ``TRANSFERLENS_HOME=home``; returns the output."""
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("TRANSFERLENS_HOME", str(home))
    monkeypatch.setenv("CI", "1")
    with one_thread():
        res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, (res.output, res.exception)
    return res.output


def _png_ok(data: bytes) -> bool:
    return data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")


# io.atomic_write's temporary files: ``.<final name>.<8 random characters>.tmp`` (tempfile.mkstemp)
ATOMIC_TEMP = re.compile(r"^\.(?P<final>.+)\.[a-z0-9_]{8}\.tmp$")


def check_files(*roots: Path) -> tuple[list[Path], list[Path]]:
    """Every artefact under ``roots`` reads completely; returns (files checked, orphaned temporary files).

    A SIGKILL that lands inside an atomic write leaves its hidden temporary file behind (nothing can remove
    it at that moment); such orphans are returned so the caller can check that a resumed run adds none. Any
    other ``*.tmp`` file, and any final-named file that does not read, fails the test.
    """
    from safetensors import safe_open
    from safetensors.numpy import load_file

    files, orphans = [], []
    for root in roots:
        for p in [root] if root.is_file() else sorted(root.rglob("*")):
            if p.is_symlink() or not p.is_file():
                continue
            if p.name.endswith(".tmp"):
                # train.py's own per-epoch temp inside NAME.partial/ is replaced by the next epoch's checkpoint
                assert ATOMIC_TEMP.match(p.name) or (p.name == "checkpoint.tmp" and p.parent.name.endswith(".partial")), \
                    f"temporary file under a visible name: {p}"
                orphans.append(p)
                continue
            files.append(p)
            if p.suffix == ".json":
                read_json(p)
            elif p.suffix == ".safetensors":
                with safe_open(str(p), framework="numpy") as fh:
                    is_featureset = (fh.metadata() or {}).get("format") == "transferlens.featureset/1"
                FeatureSet.load(p) if is_featureset else load_file(str(p))  # FeatureSet.load checks the digest
            elif p.suffix == ".pt":
                torch.load(p, map_location="cpu", weights_only=True)
            elif p.suffix == ".png":
                assert _png_ok(p.read_bytes()), f"truncated PNG {p}"
            elif p.suffix == ".html":
                assert p.read_text(encoding="utf-8").rstrip().endswith("</html>"), f"truncated HTML {p}"
    return files, orphans


def assert_resumed_cleanly(killed_orphans: list[Path], *roots: Path) -> None:
    """After the re-run: everything reads, and the only temporary files are orphans of the kill itself."""
    _, orphans = check_files(*roots)
    assert set(orphans) <= set(killed_orphans), f"the resumed run left temporary files: {orphans}"


def snapshot(paths: list[Path]) -> dict[Path, tuple[int, bytes]]:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in paths}


def assert_untouched(before: dict[Path, tuple[int, bytes]]) -> None:
    """Files finished before the kill are kept as they were: not rewritten, not redone."""
    for p, (mtime, data) in before.items():
        assert p.exists(), f"{p} vanished on resume"
        assert p.stat().st_mtime_ns == mtime and p.read_bytes() == data, f"{p} was redone on resume"


def assert_same_tensors(a: Path, b: Path) -> None:
    from safetensors.numpy import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    for k in ta:
        assert ta[k].dtype == tb[k].dtype and np.array_equal(ta[k], tb[k]), f"{a.name}: tensor {k} differs"


def assert_same_featureset(a: Path, b: Path) -> None:
    fa, fb = FeatureSet.load(a), FeatureSet.load(b)
    assert fa.layers == fb.layers and fa.class_names == fb.class_names
    assert np.array_equal(fa.labels, fb.labels)
    for name in fa.layers:
        assert fa[name].dtype == fb[name].dtype and np.array_equal(fa[name], fb[name]), name
    assert stable(fa.provenance) == stable(fb.provenance)


def exists(pattern: str, root: Path, count: int = 1) -> Callable[[], bool]:
    return lambda: len(list(root.glob(pattern))) >= count


# ------------------------------------------------------------------------------------------------ extract
EXTRACT = ["extract", "-m", "zoo:vgg-g50-s16", "-d", f"{UCI}?n_per_class=25", "--batch-size", "1"]
PAUSE_BEFORE_CACHE_RENAME = (
    "import os, pathlib, time\n"
    "_replace = os.replace\n"
    "def _paused(src, dst, *a, **k):\n"
    "    if str(dst).endswith('.safetensors') and pathlib.Path(dst).parent.name == 'features':\n"
    "        pathlib.Path(os.environ['TRANSFERLENS_HOME'], 'paused').write_text(str(src))\n"
    "        time.sleep(3600)\n"
    "    return _replace(src, dst, *a, **k)\n"
    "os.replace = _paused\n"
)


def test_extract(tmp_path, monkeypatch):
    home, ref_home = tmp_path / "home", tmp_path / "ref"
    out, ref_out = tmp_path / "out.safetensors", tmp_path / "ref.safetensors"
    # killed *inside* the atomic write of the cache entry, after the 250 forward passes: the temporary file is
    # complete, the rename has not happened (a kill during the forward passes leaves only the layer-name memo)
    killed = KilledRun(EXTRACT + ["-o", str(out)], home, lambda: (home / "paused").exists(), prelude=PAUSE_BEFORE_CACHE_RENAME)
    run_cli(EXTRACT + ["-o", str(ref_out)], ref_home, monkeypatch)
    killed.wait()
    (home / "paused").unlink()
    _, orphans = check_files(home)
    assert list(home.glob("features/taps/*.json"))  # the memo written before the forward passes is intact
    # SIGKILL gives no chance to remove the temporary file: it stays, hidden and named after its entry
    (temp,) = [p for p in orphans if p.parent.name == "features"]
    assert re.fullmatch(r"[0-9a-f]{40}\.safetensors", ATOMIC_TEMP.match(temp.name)["final"])
    assert not list(home.glob("features/*.safetensors")), "a cache entry appeared under its final name before its rename"
    assert not out.exists()

    # the same command finishes and gives the features of an uninterrupted run, bitwise
    run_cli(EXTRACT + ["-o", str(out)], home, monkeypatch)
    assert_resumed_cleanly(orphans, home, out)
    assert_same_featureset(out, ref_out)
    (entry,) = home.glob("features/*.safetensors")
    (ref_entry,) = ref_home.glob("features/*.safetensors")
    assert entry.name == ref_entry.name  # content-addressed: the same key
    assert_same_featureset(entry, ref_entry)


# ------------------------------------------------------------------------------------------------ zoo build
@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory) -> Path:
    """An uninterrupted ``transferlens zoo build --tiny`` (with :data:`TINY_MLP`) in a fresh home."""
    home = tmp_path_factory.mktemp("tiny-zoo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(recipes.TINY, "tiny-mlp", TINY_MLP)
        run_cli(["zoo", "build", "--tiny"], home, mp)
    return home


def test_zoo_build_tiny(tmp_path, monkeypatch, tiny_zoo):
    home = tmp_path / "home"
    zoo = home / "zoo"
    # killed in tiny-mlp's second epoch: tiny-vgg is finished, tiny-mlp has a checkpoint, tiny-resnet is not started
    killed = KilledRun(["zoo", "build", "--tiny"], home, exists("zoo/tiny-mlp.partial/checkpoint.pt", home),
                       prelude=PATCH_TINY_MLP)
    killed.wait()
    _, orphans = check_files(home)
    finished = [zoo / "tiny-vgg" / "card.json", zoo / "tiny-vgg" / "model.safetensors"]
    assert all(p.exists() for p in finished)
    ckpt = torch.load(zoo / "tiny-mlp.partial" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert 1 <= ckpt["epoch"] < TINY_MLP.epochs
    assert not (zoo / "tiny-mlp").exists() and not (zoo / "tiny-resnet").exists()
    before = snapshot(finished)

    monkeypatch.setitem(recipes.TINY, "tiny-mlp", TINY_MLP)
    run_cli(["zoo", "build", "--tiny"], home, monkeypatch)
    assert_untouched(before)  # tiny-vgg is not rebuilt
    assert not list(zoo.glob("*.partial"))
    assert_resumed_cleanly(orphans, home)
    for name in recipes.TINY:
        assert_same_tensors(zoo / name / "model.safetensors", tiny_zoo / "zoo" / name / "model.safetensors")
        card, ref = read_json(zoo / name / "card.json"), read_json(tiny_zoo / "zoo" / name / "card.json")
        assert stable(card) == stable(ref), name  # incl. the training curve of the resumed tiny-mlp


# ------------------------------------------------------------------------------------------------ zoo evaluate
EVALUATE = ["zoo", "evaluate", "--model", "tiny-mlp", "--model", "tiny-vgg", "--target", "digits-uci", "--seeds", "2",
            "--finetune-epochs", "1"]


def test_zoo_evaluate(tmp_path, monkeypatch, tiny_zoo):
    home, ref_home = tmp_path / "home", tmp_path / "ref"
    gt, ref_gt = tmp_path / "gt", tmp_path / "gt-ref"
    for h in (home, ref_home):
        shutil.copytree(tiny_zoo / "zoo", h / "zoo")
    # killed once both seeds of tiny-mlp are written, while tiny-vgg is being evaluated
    killed = KilledRun(EVALUATE + ["--out", str(gt)], home, exists("zoo-eval/**/seed*.json", home, count=2))
    run_cli(EVALUATE + ["--out", str(ref_gt)], ref_home, monkeypatch)
    killed.wait()
    _, orphans = check_files(home)
    units = sorted(home.glob("zoo-eval/**/seed*.json"))
    assert len(units) == 2 and all("tiny-mlp" in str(u) for u in units)
    assert not gt.exists()
    before = snapshot(units)

    run_cli(EVALUATE + ["--out", str(gt)], home, monkeypatch)
    assert_untouched(before)  # the finished units are reused, not recomputed
    assert_resumed_cleanly(orphans, home, gt)
    got, ref = sorted(home.glob("zoo-eval/**/seed*.json")), sorted(ref_home.glob("zoo-eval/**/seed*.json"))
    assert [p.relative_to(home) for p in got] == [p.relative_to(ref_home) for p in ref] and len(got) == 4
    for a, b in zip(got, ref):
        assert stable(read_json(a)) == stable(read_json(b)), a
    assert stable(read_json(gt / "ground_truth.json")) == stable(read_json(ref_gt / "ground_truth.json"))
    for name in ("ground_truth.csv", "ground_truth.md"):
        assert (gt / name).read_text() == (ref_gt / name).read_text()


# ------------------------------------------------------------------------------------------------ probe
PROBE = ["probe", "-m", "zoo:vgg-g50-s16", "-d", f"{UCI}?n_per_class=20",
         "--ood", f"shift:blur:3:{UCI}?split=test&n_per_class=12",
         "--ood", f"shift:gaussian_noise:3:{UCI}?split=test&n_per_class=12", "--batch-size", "1"]


def test_probe(tmp_path, monkeypatch):
    home, ref_home = tmp_path / "home", tmp_path / "ref"
    out, ref_out = tmp_path / "out", tmp_path / "ref-out"
    # killed after the ID features are cached, while the first OOD set is being extracted
    killed = KilledRun(PROBE + ["--out", str(out)], home, exists("features/*.safetensors", home))
    run_cli(PROBE + ["--out", str(ref_out)], ref_home, monkeypatch)
    killed.wait()
    files, orphans = check_files(home)
    assert len(list(home.glob("features/*.safetensors"))) == 1 and not out.exists()
    before = snapshot([p for p in files if p.suffix == ".safetensors"])

    run_cli(PROBE + ["--out", str(out)], home, monkeypatch)
    assert_untouched(before)  # the cached ID features are reused
    assert_resumed_cleanly(orphans, home, out)
    assert stable(read_json(out / "probe.json")) == stable(read_json(ref_out / "probe.json"))
    assert (out / "probe.png").read_bytes() == (ref_out / "probe.png").read_bytes()
    for entry in home.glob("features/*.safetensors"):
        assert_same_featureset(entry, ref_home / "features" / entry.name)


# ------------------------------------------------------------------------------------------------ finetune
FINETUNE = ["finetune", "-m", "zoo:vgg-g50-s16", "-d", f"{UCI}?split=train&n_per_class=20",
            "--test", f"{UCI}?split=test&n_per_class=5", "--ood", f"shift:blur:3:{UCI}?split=test&n_per_class=5",
            "--method", "ftp", "--epochs", "6", "--batch-size", "16", "--threads", "1"]


def test_finetune(tmp_path, monkeypatch):
    home, ref_home = tmp_path / "home", tmp_path / "ref"
    out, ref_out = tmp_path / "out", tmp_path / "ref-out"
    # killed in epoch 2 of 6, right after the first per-epoch checkpoint
    killed = KilledRun(FINETUNE + ["--out", str(out)], home, exists("checkpoint.pt", out))
    run_cli(FINETUNE + ["--out", str(ref_out)], ref_home, monkeypatch)
    killed.wait()
    _, orphans = check_files(home, out)
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert 1 <= ckpt["epoch"] < 6
    assert not (out / "record.json").exists() and not (out / "model.safetensors").exists()

    run_cli(FINETUNE + ["--out", str(out)], home, monkeypatch)
    assert_resumed_cleanly(orphans, home, out)
    rec, ref = read_json(out / "record.json"), read_json(ref_out / "record.json")
    assert rec["resumed_from_epoch"] >= ckpt["epoch"] and ref["resumed_from_epoch"] == 0
    assert stable(rec) == stable(ref)  # history, accuracies, per-tensor FTP gamma trace
    assert_same_tensors(out / "model.safetensors", ref_out / "model.safetensors")


# ------------------------------------------------------------------------------------------------ assess
ASSESS = ["assess", "-m", "zoo:vgg-g50-s16", "-m", "zoo:vgg-g50-s16-noaug", "-d", f"{UCI}?n_per_class=20",
          "--ood", f"shift:blur:3:{UCI}?split=test&n_per_class=5", "--top", "1", "--scores", "logme,knn_accuracy",
          "--gc-samples", "0", "--finetune", "--finetune-epochs", "4"]


def test_assess(tmp_path, monkeypatch):
    home, ref_home = tmp_path / "home", tmp_path / "ref"
    out, ref_out = tmp_path / "out", tmp_path / "ref-out"
    # killed inside the last stages: rank, probe and geometry are recorded, FTP fine-tuning has a checkpoint
    killed = KilledRun(ASSESS + ["--out", str(out)], home, exists("finetune/ftp-*/checkpoint.pt", out))
    run_cli(ASSESS + ["--out", str(ref_out)], ref_home, monkeypatch)
    killed.wait()
    _, orphans = check_files(home, out)
    assert not (out / "assess.json").exists() and not (out / "report.html").exists()
    done = {p.name.split("-")[0].split("_")[0]: p for p in (out / "stages").glob("*.json")}
    assert {"rank", "probe", "geometry"} <= set(done) and "finetune" not in done
    before = snapshot([done["rank"], done["probe"], done["geometry"]])

    run_cli(ASSESS + ["--out", str(out)], home, monkeypatch)
    assert_untouched(before)  # finished stages are reused, not recomputed
    assert_resumed_cleanly(orphans, home, out)
    run, ref = read_json(out / "assess.json"), read_json(ref_out / "assess.json")
    status = {s["name"].split(":")[0]: s["status"] for s in run["stages"]}
    assert status["rank"] == status["probe"] == status["geometry"] == "cached"
    assert stable(run) == stable(ref)
    names = sorted(p.name for p in (out / "stages").glob("*.json"))
    assert names == sorted(p.name for p in (ref_out / "stages").glob("*.json"))
    for name in names:
        assert stable(read_json(out / "stages" / name)) == stable(read_json(ref_out / "stages" / name)), name
    ftp = read_json(next((out / "stages").glob("finetune_ftp-*.json")))["result"]["record"]
    assert ftp["resumed_from_epoch"] >= 1  # the fine-tuning stage continued from its checkpoint
    for method in ("ftp", "plain"):
        (a,) = out.glob(f"finetune/{method}-*/model.safetensors")
        (b,) = ref_out.glob(f"finetune/{method}-*/model.safetensors")
        assert_same_tensors(a, b)
