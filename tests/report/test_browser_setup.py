"""The set-up installs Debian's chromium for the report test as root, and a failure is only a note."""

from __future__ import annotations

import subprocess
from pathlib import Path

from transferlens.data import debian


def _no_browser(monkeypatch, tmp_path: Path, root: bool) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(debian, "BROWSER", debian.DebianData("report-browser", "chromium", tmp_path / "no-chromium"))
    monkeypatch.setattr(debian.shutil, "which", lambda name: None)
    monkeypatch.setattr(debian, "_is_root", lambda: root)
    monkeypatch.setattr(debian, "_apt", lambda *a: calls.append(a) or subprocess.CompletedProcess(a, 100, "", "E: no chromium"))
    return calls


def test_root_installs_chromium_and_a_failure_is_a_note(monkeypatch, tmp_path, capsys):
    calls = _no_browser(monkeypatch, tmp_path, root=True)
    debian._install_browser(have_apt=True)
    assert calls == [("install", "-y", "-q", "chromium"), ("update", "-q"), ("install", "-y", "-q", "chromium")]
    out = capsys.readouterr().out
    assert "apt-get install chromium failed" in out and "will be skipped" in out


def test_not_root_prints_the_command(monkeypatch, tmp_path, capsys):
    calls = _no_browser(monkeypatch, tmp_path, root=False)
    debian._install_browser(have_apt=True)
    assert calls == [] and "sudo apt-get install chromium" in capsys.readouterr().out
