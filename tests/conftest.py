"""Test isolation: every test session gets its own TRANSFERLENS_HOME (feature cache, zoo, memo files),
with the extracted Debian data of the real home linked in so built-in sources keep working."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory: pytest.TempPathFactory):
    from transferlens.paths import data_dir

    real_data = data_dir()
    home = tmp_path_factory.mktemp("tlhome")
    if real_data.exists():
        (home / "data").symlink_to(real_data, target_is_directory=True)
    # packaged models reassembled once per machine (all-mpnet-base-v2: 438 MB), not once per test session
    real_models = data_dir().parent / "models"
    real_models.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(real_models, target_is_directory=True)
    old = os.environ.get("TRANSFERLENS_HOME")
    os.environ["TRANSFERLENS_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # fail fast instead of waiting on a network that is not there
    # the suite's numbers are CPU numbers (bit-identical to the references); the @gpu tests ask for CUDA themselves
    os.environ.setdefault("TRANSFERLENS_DEVICE", "cpu")
    yield home
    if old is None:
        os.environ.pop("TRANSFERLENS_HOME", None)
    else:
        os.environ["TRANSFERLENS_HOME"] = old


@pytest.fixture
def one_torch_thread():
    """One torch intra-op thread for the test: tiny models run fastest that way on a shared 2-core machine, and
    float reductions then happen in the same order as in a 1-thread worker (Ray task, subprocess)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fresh_cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"
