"""Progress off a terminal: plain log lines (CI, pipes, log files), never a rich bar; hub libraries' bars off."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from transferlens.progress import LogProgress

TL = [sys.executable, "-m", "transferlens.cli.main"]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TRANSFERLENS_PROGRESS", "COLUMNS")}
    env.update(TRANSFERLENS_HOME=str(home), OMP_NUM_THREADS="1", **extra)
    return env


def test_non_tty_extract_prints_progress_log_lines(tmp_path: Path) -> None:
    data = "builtin:digits-uci?n_per_class=20"  # 200 samples: batches of 64 end at 64, 128, 192, 200
    cmd = [*TL, "extract", "--model", "zoo:mlp-g50-s16", "--data", data, "--no-cache", "--batch-size", "64"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env=_env(tmp_path / "home", TRANSFERLENS_PROGRESS_INTERVAL="0"))
    assert res.returncode == 0, res.stderr
    line = re.compile(r"^INFO +extract: zoo:mlp-g50-s16 on " + re.escape(data) + r" (\d+)/200 samples \((\d+)%\), \d+ s$")
    found = [line.match(s) for s in res.stderr.splitlines()]
    done = [(int(m[1]), int(m[2])) for m in found if m]
    assert done == [(64, 32), (128, 64), (192, 96), (200, 100)], res.stderr
    assert "━" not in res.stderr and "\x1b[" not in res.stderr  # no rich bar, no cursor control in a log
    # off: no progress lines
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env=_env(tmp_path / "home", TRANSFERLENS_PROGRESS_INTERVAL="0", TRANSFERLENS_PROGRESS="0"))
    assert res.returncode == 0 and "extract: zoo:mlp-g50-s16" not in res.stderr, res.stderr


def test_log_progress_rate_limit_and_final_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="transferlens.progress")
    with LogProgress("job", unit="items", every=3600) as bar:  # a fast task: no line at all
        t = bar.add_task("quick", total=10)
        for _ in range(10):
            bar.advance(t)
    assert caplog.messages == []
    with LogProgress("job", unit="items", every=0) as bar:  # every update logs; the finish adds no duplicate
        t = bar.add_task("slow", total=4)
        bar.advance(t, 3)
        bar.update(t, description="slow, renamed", advance=1)
    assert caplog.messages == ["job: slow 3/4 items (75%), 0 s", "job: slow, renamed 4/4 items (100%), 0 s"]
    caplog.clear()
    with LogProgress("zoo build", every=0) as bar:  # a fraction (total 1.0) shows as a percentage
        t = bar.add_task("vgg-g50", total=1.0)
        bar.update(t, completed=0.25)
    assert caplog.messages == ["zoo build: vgg-g50 25%, 0 s"]


def test_progress_survives_quieted_package_logger(caplog: pytest.LogCaptureFixture) -> None:
    """``assess`` quiets ``transferlens`` to WARNING; its progress lines must still come through."""
    caplog.handler.setLevel(logging.INFO)  # the capturing handler takes INFO; the loggers' levels are the real ones
    parent = logging.getLogger("transferlens")
    old = parent.level
    parent.setLevel(logging.WARNING)
    try:
        with LogProgress("extract", unit="samples", every=0) as bar:
            bar.advance(bar.add_task("m on d", total=2), 2)
    finally:
        parent.setLevel(old)
    assert caplog.messages == ["extract: m on d 2/2 samples (100%), 0 s"]


def test_hub_progress_bars_are_off_inside_commands(tmp_path: Path) -> None:
    code = ("from transferlens.cli.common import setup_logging; setup_logging()\n"
            "import tqdm, huggingface_hub.utils as u, transformers.utils.logging as tl\n"
            "print(tqdm.tqdm(range(3)).disable, u.are_progress_bars_disabled(), tl.is_progress_bar_enabled(), tl.get_verbosity())")
    env = {k: v for k, v in _env(tmp_path).items() if k not in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "True", "False", str(logging.ERROR)]
