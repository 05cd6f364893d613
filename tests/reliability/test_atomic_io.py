"""Atomic writes: normal file permissions, and temporaries of killed writers cleaned up once stale."""

from __future__ import annotations

import os
import stat
import time

from transferlens import io


def test_atomic_write_gives_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        io._UMASK = None  # re-read the umask set above
        path = io.atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
        io._UMASK = None
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert path.read_text() == "{}"


def test_stale_temporaries_are_removed_and_fresh_ones_kept(tmp_path):
    stale = tmp_path / ".a.json.abc123.tmp"
    fresh = tmp_path / ".a.json.def456.tmp"
    other = tmp_path / ".b.json.abc123.tmp"
    for f in (stale, fresh, other):
        f.write_text("half-written")
    old = time.time() - io.STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    io.atomic_write_text(tmp_path / "a.json", "done")
    assert not stale.exists()  # left by a killed writer of a.json
    assert fresh.exists()  # may be a concurrent writer's
    assert other.exists()  # belongs to another file: its own next write cleans it
    assert (tmp_path / "a.json").read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.json.def456.tmp", ".b.json.abc123.tmp", "a.json"]
