"""Tiny models: run torch single-threaded (2 shared cores; thread contention makes tiny ops 50x slower)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_thread_torch(one_torch_thread):
    """Every geometry test runs with the root conftest's ``one_torch_thread``."""
